"""Live mode without a broker: events are held until their time (on an injected clock), and a
warm-started generator runs at its steady rate from the first second, on the wall clock."""

from __future__ import annotations

import threading
import time
from collections import Counter

import jsonschema
import orjson
import pytest

from pagestream_common.contract import event_json_schema
from pagestream_simulator.cli import build_parser, config_from_args
from pagestream_simulator.generator import EventGenerator, GeneratorConfig
from pagestream_simulator.producer import ProducerSettings
from pagestream_simulator.runner import RunConfig, _Pacer, hold_until_due

START = 1_800_000_000.0
VALIDATOR = jsonschema.Draft202012Validator(event_json_schema())


def cli_config(argv: list[str]) -> RunConfig:
    return config_from_args(build_parser().parse_args(argv), {}, now=START)


class FakeClock:
    """A clock that only moves when someone waits on it; records each wait."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def test_an_event_is_passed_on_no_earlier_than_its_time() -> None:
    clock = FakeClock(100.0)
    due = iter([99.0, 100.0, 100.5, 100.502, 103.0])
    times: list[float] = []
    out = []
    current = 0.0

    def next_due() -> float:
        nonlocal current
        current = next(due)
        return current

    for event in hold_until_due("abcde", next_due, clock, clock.wait, slack=0.005):
        assert clock.now >= current  # never early
        times.append(clock.now)
        out.append(event)
    assert out == list("abcde")
    # Due already: no wait. Then one wait to 5 ms past 100.5 (which also covers 100.502),
    # and one to 5 ms past 103.
    assert clock.waits == pytest.approx([0.505, 2.5])
    assert times == pytest.approx([100.0, 100.0, 100.505, 100.505, 103.005])


def test_a_wait_cut_short_is_resumed() -> None:
    clock = FakeClock(0.0)

    def short_wait(seconds: float) -> bool:
        clock.waits.append(seconds)
        clock.now += seconds / 2  # a spurious early wake-up
        return False

    released = list(hold_until_due([1], lambda: 1.0, clock, short_wait, slack=0.0))
    assert released == [1] and clock.now >= 1.0 and len(clock.waits) > 1


def test_stopping_while_held_drops_the_held_event_unread() -> None:
    drawn: list[int] = []

    def events():
        for i in range(3):
            drawn.append(i)
            yield i

    stop_on_second_wait = iter([False, True])
    clock = FakeClock(0.0)
    dues = iter([0.0, 5.0, 6.0])
    released = list(
        hold_until_due(events(), lambda: next(dues), clock, lambda s: next(stop_on_second_wait))
    )
    # Event 1 was drawn but never passed on: nothing downstream counts it.
    assert released == [0] and drawn == [0, 1]


def warm(seed: int, sim_rate: float, at: float = START) -> EventGenerator:
    generator = EventGenerator(
        GeneratorConfig(seed=seed, start_time=START - 3600, sim_rate=sim_rate, daily_rhythm=False)
    )
    generator.warm_start(lambda: at)
    return generator


def events_per_second(generator: EventGenerator, seconds: float) -> list[int]:
    """Events per simulated second over the first ``seconds`` after the start."""
    start = generator.now
    counts: Counter[int] = Counter()
    while True:
        next(generator)
        if generator.now >= start + seconds:
            return [counts[s] for s in range(int(seconds))]
        counts[int(generator.now - start)] += 1


def test_a_cold_generator_starts_at_a_fraction_of_its_rate() -> None:
    # The defect warm_start() exists for: with no visitor on the site yet, a minute of
    # simulated time holds well under half the events a steady minute does.
    cold = EventGenerator(GeneratorConfig(seed=3, start_time=START, sim_rate=500))
    assert sum(events_per_second(cold, 60)) < 0.5 * 500 * 60


def test_a_warm_start_runs_at_the_steady_rate_from_the_first_seconds() -> None:
    sim_rate = 500.0
    generator = warm(3, sim_rate)
    # About 30 open sessions per event/s (human think times ~40 s, five events a session).
    assert 20 * sim_rate < generator.open_sessions_at_start < 40 * sim_rate
    assert len(generator.heap) == generator.open_sessions_at_start
    first = events_per_second(generator, 60)
    later = events_per_second(generator, 300)
    # The first 10 s, the first minute and the following five minutes: all at the steady rate
    # (a little under sim_rate: checkouts end some sessions early).
    assert sum(first[:10]) / 10 == pytest.approx(sim_rate, rel=0.1)
    assert sum(first) / 60 == pytest.approx(sim_rate, rel=0.05)
    assert sum(later) / 300 == pytest.approx(sim_rate, rel=0.04)
    assert sum(first) / 60 == pytest.approx(sum(later) / 300, rel=0.05)


def test_a_warm_start_begins_at_the_clock_and_counts_only_sessions_started_after() -> None:
    generator = warm(8, 200.0, at=START + 12.75)
    assert generator.start_time == generator.now == START + 12.75
    assert generator.sessions_started == 0
    events = generator.take(5_000)
    # Events come out in time order from the start on; some continue open sessions (not
    # counted as started), the rest come from sessions that arrive after the start.
    assert min(e[4]["time_stamp"] for e in events) >= int(START + 12.75)
    assert 0 < generator.sessions_started < 5_000
    for *_, event in events:
        errors = list(VALIDATOR.iter_errors(orjson.loads(orjson.dumps(event))))
        assert not errors, (event, errors[0].message)
    # A session resumed mid-way continues from a page: its next event has a referrer.
    assert sum(1 for *_, e in events[:200] if e["referrer_url"]) > 150


def test_a_warm_start_is_seeded_and_only_once() -> None:
    first = [orjson.dumps(e[4]) for e in warm(5, 100.0).take(1_000)]
    assert first == [orjson.dumps(e[4]) for e in warm(5, 100.0).take(1_000)]
    generator = EventGenerator(GeneratorConfig(seed=5, start_time=START))
    next(generator)
    with pytest.raises(RuntimeError, match="before the first event"):
        generator.warm_start(lambda: START)


def test_the_cli_holds_events_only_when_the_simulated_clock_is_the_wall_clock(tmp_path) -> None:
    assert cli_config(["--rate", "500"]).live
    assert cli_config(["--rate", "10", "--count", "500"]).live
    assert not cli_config(["--rate", "500", "--start-time", "2026-11-02"]).live
    assert not cli_config(["--max-speed"]).live
    capture = tmp_path / "c.jsonl"
    capture.write_bytes(b"{}\n")
    assert not cli_config(["--replay", str(capture)]).live
    assert not cli_config(["--replay", str(capture), "--keep-timing"]).live


@pytest.mark.parametrize("extra", [{"rate": 0.0}, {"rate": 10.0, "replay": object()}])
def test_live_needs_paced_generated_traffic(extra: dict) -> None:
    with pytest.raises(ValueError, match="live mode"):
        RunConfig(producer=ProducerSettings("k:1", "t"), live=True, **extra)


def test_the_pacer_counts_from_a_start_in_the_past() -> None:
    # 1 s already on the clock at 100 records/s: the first 100 records are due at once.
    pacer = _Pacer(100.0, threading.Event(), since=1.0)
    started = time.monotonic()
    pacer.wait(100)
    assert time.monotonic() - started < 0.05
