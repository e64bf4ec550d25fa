"""Replay parsing and the command line's edge: durations, times, validation, help."""

from __future__ import annotations

import argparse
import io
import threading
from pathlib import Path

import pytest

from pagestream_simulator.cli import (
    DEFAULT_SIM_RATE,
    MAX_DEFAULT_SIM_RATE,
    UsageError,
    build_parser,
    config_from_args,
    main,
    parse_duration,
    parse_start_time,
)
from pagestream_simulator.replay import (
    NO_DEVICE_KEY,
    UNPARSEABLE,
    ReplayConfig,
    ReplayTally,
    describe,
    iter_lines,
    replay_records,
)


def test_lines_lose_only_their_terminator() -> None:
    data = b'{"a":1}\n\n{"b":2}\r\nnot json\n  spaced  \nlast-without-newline'
    assert list(iter_lines(io.BytesIO(data))) == [
        b'{"a":1}',
        b"",
        b'{"b":2}',
        b"not json",
        b"  spaced  ",
        b"last-without-newline",
    ]
    assert list(iter_lines(io.BytesIO(b"one\n"))) == [b"one"]
    assert list(iter_lines(io.BytesIO(b""))) == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            b'{"device_id":"d-1","collection":"checkout","time_stamp":1700000000}',
            (b"d-1", "checkout", 1700000000),
        ),
        (b'{"device_id":"","collection":"x"}', (NO_DEVICE_KEY, "x", None)),
        (b'{"device_id":7,"time_stamp":"1700000000"}', (NO_DEVICE_KEY, UNPARSEABLE, None)),
        (b'{"time_stamp":true}', (NO_DEVICE_KEY, UNPARSEABLE, None)),
        (b"[1,2]", (NO_DEVICE_KEY, UNPARSEABLE, None)),
        (b'{"device_id":"d', (NO_DEVICE_KEY, UNPARSEABLE, None)),
        (b"\xff\xfe", (NO_DEVICE_KEY, UNPARSEABLE, None)),
        (b"", (NO_DEVICE_KEY, UNPARSEABLE, None)),
    ],
)
def test_describe_reads_what_it_can(line: bytes, expected: tuple) -> None:
    assert describe(line) == expected


def test_replay_yields_every_line_as_is_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    lines = [
        b'{"device_id":"a","collection":"view_product_detail","time_stamp":1700000000}',
        b"{broken",
        b"",
        b'{"device_id":"b","collection":"checkout","time_stamp":1700000001}',
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    tally = ReplayTally()
    out = list(replay_records(ReplayConfig(path), tally, threading.Event()))
    assert [value for _, value, _ in out] == lines
    assert [key for key, _, _ in out] == [b"a", NO_DEVICE_KEY, NO_DEVICE_KEY, b"b"]
    assert tally.lines == 4 and tally.unparseable == 2


def test_keep_timing_stops_promptly_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "slow.jsonl"
    path.write_bytes(
        b'{"device_id":"a","time_stamp":1700000000}\n{"device_id":"a","time_stamp":1700003600}\n'
    )
    stop = threading.Event()
    records = replay_records(ReplayConfig(path, keep_timing=True), ReplayTally(), stop)
    assert next(records)[0] == b"a"
    stop.set()  # the next line is an hour away: the iterator must end, not sleep
    assert list(records) == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("250ms", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1w", "-5s", "soon"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_start_times() -> None:
    assert parse_start_time("1700000000") == 1_700_000_000
    assert parse_start_time("2026-11-02") == 1_793_577_600
    assert parse_start_time("2026-11-02T01:00:00+01:00") == 1_793_577_600
    assert parse_start_time("2026-11-02T00:00:00Z") == 1_793_577_600
    with pytest.raises(argparse.ArgumentTypeError):
        parse_start_time("yesterday")


def config(argv: list[str], env: dict[str, str] | None = None):
    return config_from_args(build_parser().parse_args(argv), env or {}, now=1_800_000_000.0)


def test_defaults_and_environment() -> None:
    c = config([], {"PAGESTREAM_KAFKA_BOOTSTRAP_SERVERS": "k:1", "PAGESTREAM_KAFKA_TOPIC": "t"})
    assert (c.producer.bootstrap_servers, c.producer.topic) == ("k:1", "t")
    assert c.rate == 100 and c.generator.sim_rate == 100
    assert c.generator.start_time == 1_800_000_000.0 and not c.generator.daily_rhythm
    c = config(["--bootstrap-servers", "x:9", "--topic", "u"], {"PAGESTREAM_KAFKA_TOPIC": "t"})
    assert (c.producer.bootstrap_servers, c.producer.topic) == ("x:9", "u")


def test_simulated_time_turns_the_daily_rhythm_on() -> None:
    c = config(["--max-speed", "--start-time", "2026-11-02", "--seed", "4"])
    assert c.rate == 0 and c.generator.sim_rate == DEFAULT_SIM_RATE
    assert c.generator.daily_rhythm and c.generator.seed == 4
    assert not config(["--start-time", "2026-11-02", "--no-daily-rhythm"]).generator.daily_rhythm


def test_the_default_simulated_rate_follows_the_rate_up_to_a_cap() -> None:
    assert config(["--rate", "2500"]).generator.sim_rate == 2500
    assert config(["--rate", "150000"]).generator.sim_rate == MAX_DEFAULT_SIM_RATE
    assert config(["--rate", "150000", "--sim-rate", "20000"]).generator.sim_rate == 20000


def test_a_live_counted_burst_ends_at_about_now() -> None:
    # As fast as possible, 50,000 events at 100 simulated events/s span 500 s: they are
    # stamped from now - 500 s, not into the future (which consumers would reject).
    c = config(["--max-speed", "--count", "50000"])
    assert c.generator.start_time == 1_800_000_000.0 - 500
    assert config(["--rate", "10", "--count", "50000"]).generator.start_time == 1_800_000_000.0


def test_fault_options_reach_the_config() -> None:
    c = config(
        [
            *("--duplicate-rate", "0.01", "--malformed-rate", "0.02", "--late-rate", "0.03"),
            *("--late-by", "3h", "--clock-skew", "5m", "--bot-share", "0.2"),
        ]
    )
    assert (c.faults.duplicate_rate, c.faults.malformed_rate, c.faults.late_rate) == (
        0.01,
        0.02,
        0.03,
    )
    assert c.faults.late_by_seconds == 10_800
    assert c.generator.clock_skew_seconds == 300 and c.generator.bot_share == 0.2


@pytest.mark.parametrize(
    "argv",
    [
        ["--keep-timing"],
        ["--replay", "/nonexistent/capture.jsonl"],
        ["--count", "-1"],
        ["--rate", "-5"],
        ["--compression", "none", "--linger-ms", "-1"],
        ["--create-topic", "0"],
    ],
)
def test_invalid_combinations_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        config(argv)


def test_replay_rejects_fault_injection(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"{}\n")
    with pytest.raises(UsageError, match="replay"):
        config(["--replay", str(path), "--malformed-rate", "0.1"])
    assert config(["--replay", str(path), "--keep-timing"]).rate == 0


def test_main_reports_usage_errors_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--count", "-1"]) == 2
    assert "count must be >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--bot-share", "2"])
    assert exit_info.value.code == 2


def test_help_documents_every_knob(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--rate", "--max-speed", "--count", "--duration", "--seed", "--duplicate-rate",
        "--malformed-rate", "--late-rate", "--late-by", "--clock-skew", "--bot-share",
        "--start-time", "--replay", "--keep-timing", "--speedup", "--manifest",
        "--metrics-port", "truncated_json",
    ):  # fmt: skip
        assert option in text
