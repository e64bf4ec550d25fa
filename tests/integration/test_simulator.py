"""The simulator against the real broker (and Prometheus): everything sent is delivered and
reads back as the contract and the manifest say; seeds repeat byte for byte; replay is exact;
a signal stops a run cleanly; undeliverable records make the exit status non-zero."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import jsonschema
import orjson
import pytest
from confluent_kafka import Consumer, Message

from pagestream.stack.kafka import Kafka
from pagestream.stack.process import free_port, popen_tied
from pagestream.stack.prometheus import Prometheus
from pagestream_common.contract import event_json_schema
from pagestream_simulator.cli import main
from pagestream_simulator.faults import FaultConfig
from pagestream_simulator.generator import EventGenerator, GeneratorConfig
from pagestream_simulator.producer import ProducerSettings
from pagestream_simulator.replay import ReplayConfig
from pagestream_simulator.runner import RunConfig, RunResult, run
from pagestream_simulator.verify import classify_record

pytestmark = pytest.mark.kafka

START = 1_793_577_600.0  # 2026-11-02T00:00:00Z: fixed, so runs are repeatable
VALIDATOR = jsonschema.Draft202012Validator(event_json_schema())


def binomial_bound(n: int, p: float, z: float = 5.0) -> tuple[float, float]:
    """A Binomial(n, p) count falls outside these bounds with probability < 1e-6."""
    sigma = math.sqrt(n * p * (1 - p))
    return n * p - z * sigma, n * p + z * sigma


def new_topic(kafka: Kafka, partitions: int) -> str:
    topic = f"test.simulator.{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(topic, partitions)
    return topic


def consume_messages(kafka: Kafka, topic: str, expected: int) -> list[Message]:
    """Every record of the topic; stops after ``expected`` records or 10 s without a new one,
    then waits a moment for any beyond ``expected`` (which would be a bug) to show up."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.message.max.bytes": 8 * 1024 * 1024,
        }
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    try:
        idle = 0
        while len(out) < expected and idle < 10:
            batch = consumer.consume(num_messages=5000, timeout=1.0)
            idle = 0 if batch else idle + 1
            out.extend(batch)
        out.extend(consumer.consume(num_messages=100, timeout=1.0))
    finally:
        consumer.close()
    for msg in out:
        assert msg.error() is None, msg.error()
    return out


def consume(kafka: Kafka, topic: str, expected: int) -> list[tuple[int, bytes | None, bytes]]:
    """(partition, key, value) of every record, in offset order per partition."""
    messages = sorted(
        consume_messages(kafka, topic, expected), key=lambda m: (m.partition(), m.offset())
    )
    return [(m.partition(), m.key(), m.value() or b"") for m in messages]


def settings(kafka: Kafka, topic: str) -> ProducerSettings:
    return ProducerSettings(bootstrap_servers=kafka.bootstrap_servers, topic=topic)


def test_faulty_run_is_delivered_and_reads_back_as_the_manifest_says(
    kafka: Kafka, tmp_path: Path
) -> None:
    topic = new_topic(kafka, partitions=3)
    count = 20_000
    faults = FaultConfig(
        duplicate_rate=0.02, malformed_rate=0.03, late_rate=0.05, late_by_seconds=2 * 3600
    )
    manifest = tmp_path / "manifest.json"
    result = run(
        RunConfig(
            producer=settings(kafka, topic),
            generator=GeneratorConfig(seed=21, start_time=START, sim_rate=20),
            faults=faults,
            count=count,
            manifest=manifest,
            faults_log=tmp_path / "faults.jsonl",
        )
    )
    truth = result.ground_truth
    assert result.ok and not result.interrupted
    assert result.records_sent == result.delivered == count + truth["duplicates_sent"]
    assert json.loads(manifest.read_text())["ground_truth"] == truth

    records = consume(kafka, topic, result.records_sent)
    assert len(records) == result.records_sent

    # Every record classifies as the manifest says: valid ones pass the JSON Schema, each
    # malformed one is dead-lettered for the reason recorded.
    verdicts = [classify_record(value, START, VALIDATOR) for _, _, value in records]
    expected = Counter(truth["dead_letters_by_reason"])
    expected[None] = truth["valid_events"] + truth["duplicates_sent"]
    assert Counter(verdicts) == expected

    valid = [r for r, verdict in zip(records, verdicts, strict=True) if verdict is None]
    values = Counter(v for _, _, v in valid)
    assert sum(n - 1 for n in values.values()) == truth["duplicates_sent"]
    events = [orjson.loads(v) for v in values]
    assert Counter(e["collection"] for e in events) == truth["valid_by_collection"]
    late = [e for e in events if int(e["id"][:8], 16) - e["time_stamp"] == 2 * 3600]
    assert len(late) == truth["late_events"]

    # The injected rates, within binomial bounds.
    low, high = binomial_bound(count, faults.malformed_rate)
    assert low <= truth["malformed"] <= high
    low, high = binomial_bound(truth["valid_events"], faults.late_rate)
    assert low <= truth["late_events"] <= high
    low, high = binomial_bound(truth["valid_events"], faults.duplicate_rate)
    assert low <= truth["duplicates_sent"] <= high

    # Keyed by device: one partition per device, and its events in time order there
    # (late events aside, which are sent on time with an old event time).
    partitions: dict[bytes, set[int]] = {}
    last_time: dict[bytes, int] = {}
    seen: set[bytes] = set()
    for partition, key, value in valid:
        if value in seen:  # a duplicate is re-sent later, out of order by design
            continue
        seen.add(value)
        event = orjson.loads(value)
        assert key == event["device_id"].encode()
        partitions.setdefault(key, set()).add(partition)
        arrival = int(event["id"][:8], 16)
        assert arrival >= last_time.get(key, 0)
        last_time[key] = arrival
    assert all(len(p) == 1 for p in partitions.values())
    assert len({p for ps in partitions.values() for p in ps}) == 3


def test_a_seed_gives_the_same_bytes_as_the_pure_generator(kafka: Kafka) -> None:
    count = 4_000
    generator = GeneratorConfig(seed=99, start_time=START)
    sent: list[list[bytes]] = []
    for _ in range(2):
        topic = new_topic(kafka, partitions=1)
        result = run(RunConfig(producer=settings(kafka, topic), generator=generator, count=count))
        assert result.ok and result.delivered == count
        sent.append([value for _, _, value in consume(kafka, topic, count)])
    expected = [orjson.dumps(event) for *_, event in EventGenerator(generator).take(count)]
    assert sent[0] == sent[1] == expected


def test_replay_sends_a_file_byte_for_byte(kafka: Kafka, tmp_path: Path) -> None:
    events = EventGenerator(GeneratorConfig(seed=5, start_time=START, sim_rate=500)).take(2_000)
    lines = [orjson.dumps(event) for *_, event in events]
    # Captured traffic is not clean: keep its broken lines as they are.
    lines[10] = lines[10][:37]
    lines[20] = b""
    lines[30] = b"\xff\xfe not utf-8"
    lines[40] = b"  " + lines[40] + b"  "
    lines[50] = b'["an", "array"]'
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"\n".join(lines) + b"\n")
    topic = new_topic(kafka, partitions=1)
    span = events[-1][4]["time_stamp"] - events[0][4]["time_stamp"]
    result = run(
        RunConfig(
            producer=settings(kafka, topic),
            replay=ReplayConfig(capture, keep_timing=True, speedup=max(span, 1) * 4),
        )
    )
    assert result.ok and result.records_sent == result.delivered == len(lines)
    assert result.ground_truth["lines_sent"] == len(lines)
    received = consume(kafka, topic, len(lines))
    assert [value for _, _, value in received] == lines
    assert received[0][1] == events[0][4]["device_id"].encode()
    assert received[20][1] == b"no-device"


def test_cli_writes_the_manifest_and_exits_zero(kafka: Kafka, tmp_path: Path) -> None:
    topic = f"test.simulator.cli.{uuid.uuid4().hex[:8]}"
    manifest = tmp_path / "m.json"
    status = main(
        [
            *("--bootstrap-servers", kafka.bootstrap_servers, "--topic", topic),
            *("--create-topic", "2", "--max-speed", "--count", "3000", "--seed", "3"),
            *("--start-time", "2026-11-02", "--malformed-rate", "0.1", "--no-progress"),
            *("--manifest", str(manifest), "--log-level", "DEBUG"),  # every log call runs
        ]
    )
    assert status == 0
    summary = json.loads(manifest.read_text())
    assert summary["delivered"] == summary["records_sent"] == 3000
    assert summary["undelivered"] == 0
    records = consume(kafka, topic, 3000)
    assert len(records) == 3000
    assert {p for p, _, _ in records} == {0, 1}


def test_a_paced_run_for_a_duration_with_a_progress_bar(
    kafka: Kafka, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = new_topic(kafka, partitions=1)
    result = run(
        RunConfig(
            producer=settings(kafka, topic),
            rate=400,
            duration=1.5,
            progress=True,  # forced on: stderr is not a terminal here
        )
    )
    assert result.ok and not result.interrupted and result.records_sent > 0
    assert result.ground_truth["events_generated"] == result.records_sent
    assert len(consume(kafka, topic, result.records_sent)) == result.records_sent
    captured = capsys.readouterr()
    assert "simulate" in captured.err and captured.out == ""


def consume_timestamps(kafka: Kafka, topic: str, expected: int) -> list[tuple[int, bytes]]:
    """(Kafka record timestamp in ms, value) of every record."""
    return [(m.timestamp()[1], m.value() or b"") for m in consume_messages(kafka, topic, expected)]


def test_live_traffic_is_never_sent_before_its_event_time_and_is_even_from_the_start(
    kafka: Kafka, tmp_path: Path
) -> None:
    topic = new_topic(kafka, partitions=3)
    manifest = tmp_path / "m.json"
    rate, seconds, late_by = 2000, 5, 600
    status = main(
        [
            *("--bootstrap-servers", kafka.bootstrap_servers, "--topic", topic),
            *("--rate", str(rate), "--duration", f"{seconds}s", "--seed", "4"),
            *("--late-rate", "0.02", "--late-by", f"{late_by}s", "--no-progress"),
            *("--manifest", str(manifest), "--log-level", "WARNING"),
        ]
    )
    assert status == 0
    summary = json.loads(manifest.read_text())
    truth = summary["ground_truth"]
    assert summary["config"]["live"] is True and truth["open_sessions_at_start"] > 0
    records = consume_timestamps(kafka, topic, summary["records_sent"])
    assert len(records) == summary["delivered"] == summary["records_sent"]

    # Late events are the one deliberate exception: sent now, stamped `late_by` earlier.
    ahead: list[int] = []
    late = 0
    for timestamp_ms, value in records:
        event = orjson.loads(value)
        if int(event["id"][:8], 16) - event["time_stamp"] == late_by:
            late += 1
            continue
        ahead.append(timestamp_ms - event["time_stamp"] * 1000)
    assert late == truth["late_events"] > 0
    # Never before the event's time; within a second of it (time stamps are whole seconds)
    # and some slack for a busy machine.
    assert min(ahead) >= 0, sorted(ahead)[:10]
    assert max(ahead) <= 1500, sorted(ahead)[-10:]

    # The rate holds from the first second: no slow start while the site fills with visitors.
    first = min(t for t, _ in records)
    per_second = Counter((t - first) // 1000 for t, _ in records)
    counts = [per_second[s] for s in range(seconds)]
    assert len(records) / seconds == pytest.approx(rate, rel=0.15), counts
    assert all(c == pytest.approx(rate, rel=0.15) for c in counts), counts


def test_undeliverable_records_make_the_exit_status_non_zero(tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
    status = main(
        [
            *("--bootstrap-servers", nobody, "--topic", "t", "--max-speed", "--count", "500"),
            *("--flush-timeout", "1s", "--manifest", str(manifest), "--log-level", "CRITICAL"),
        ]
    )
    assert status == 1
    summary = json.loads(manifest.read_text())
    assert summary["records_sent"] == 500
    assert summary["delivered"] == 0 and summary["undelivered"] == 500


def test_a_missing_topic_is_reported_before_sending(
    kafka: Kafka, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"test.simulator.missing.{uuid.uuid4().hex[:8]}"
    status = main(
        [
            *("--bootstrap-servers", kafka.bootstrap_servers, "--topic", missing),
            *("--count", "10", "--log-level", "CRITICAL"),
        ]
    )
    assert status == 1
    assert f"topic '{missing}' does not exist" in capsys.readouterr().err


def _metric(url: str, name: str) -> float | None:
    with urllib.request.urlopen(url, timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def test_sigterm_flushes_and_summarises(kafka: Kafka, tmp_path: Path) -> None:
    topic = new_topic(kafka, partitions=2)
    port = free_port()
    manifest = tmp_path / "m.json"
    proc = popen_tied(
        [
            *(sys.executable, "-m", "pagestream_simulator.cli"),
            *("--bootstrap-servers", kafka.bootstrap_servers, "--topic", topic),
            *("--rate", "2000", "--metrics-port", str(port), "--metrics-addr", "127.0.0.1"),
            *("--manifest", str(manifest), "--log-level", "WARNING"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 30
        delivered = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                delivered = _metric(url, "pagestream_simulator_records_delivered_total")
            except OSError:
                delivered = None
            if delivered:
                break
            time.sleep(0.2)
        assert delivered, "the simulator never reported a delivery"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "[interrupted]" in stderr and "undelivered 0" in stderr
    summary = json.loads(manifest.read_text())
    assert summary["interrupted"] is True
    assert summary["delivered"] == summary["records_sent"] > 0
    assert len(consume(kafka, topic, summary["records_sent"])) == summary["records_sent"]


@pytest.mark.prometheus
def test_prometheus_scrapes_the_simulator_metrics(kafka: Kafka, prometheus: Prometheus) -> None:
    topic = new_topic(kafka, partitions=1)
    port = free_port()
    stop = threading.Event()
    outcome: list[RunResult] = []
    config = RunConfig(
        producer=settings(kafka, topic),
        generator=GeneratorConfig(seed=1, start_time=START),
        faults=FaultConfig(malformed_rate=0.05),
        rate=1000,
        metrics_port=port,
        metrics_addr="127.0.0.1",
    )
    runner = threading.Thread(target=lambda: outcome.append(run(config, stop)))
    runner.start()
    try:
        prometheus.set_targets("simulator", [f"127.0.0.1:{port}"])
        deadline = time.monotonic() + 60
        views: list = []
        while time.monotonic() < deadline and runner.is_alive():
            views = prometheus.query(
                'pagestream_simulator_events_produced_total{collection="view_product_detail"}'
            )
            if views and float(views[0]["value"][1]) > 0:
                break
            time.sleep(0.5)
        assert views and float(views[0]["value"][1]) > 0, "Prometheus never saw page views"
        assert prometheus.query("pagestream_simulator_records_delivered_total")
        assert prometheus.query("pagestream_simulator_rate_records_per_second")
        assert prometheus.query("sum(pagestream_simulator_malformed_produced_total)")
    finally:
        prometheus.set_targets("simulator", [])
        stop.set()
        runner.join(60)
    (result,) = outcome
    assert result.interrupted and result.ok and result.delivered > 0
