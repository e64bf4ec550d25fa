"""Sustained send rate of the simulator's Kafka producer to a local broker (not a test).

Two figures, both from one Python process to one local Kafka 4.3 broker (3 partitions):

- **producer**: the simulator's ``KafkaSink`` (idempotent, lz4, linger 20 ms, 1 MiB batches,
  a delivery report counted for every record) sending realistic simulator events that were
  generated beforehand (a pool of 200,000 distinct events, cycled). Events/s from the first
  send until ``flush`` returns with every record acknowledged. Best and median of --repeat runs.
- **simulator end to end**: ``pagestream_simulator.runner.run`` at ``--max-speed``: generating
  the sessions, encoding, producing and flushing, as ``pagestream-simulate --max-speed`` does.

Without --bootstrap-servers it starts its own broker (``pagestream.stack``, state in a temporary
directory) and stops it afterwards. Writes bench/results/producer_throughput.json with the
command, the machine (CPU, cores, load average before and after) and the figures.

    uv run python bench/producer_throughput.py [--records 2000000] [--repeat 3]
        [--e2e-records 1000000] [--bootstrap-servers HOST:PORT]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import confluent_kafka
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _benchlib

from pagestream_simulator.generator import EventGenerator, GeneratorConfig
from pagestream_simulator.producer import KafkaSink, ProducerSettings, ensure_topic
from pagestream_simulator.runner import RunConfig, run

RESULTS = Path(__file__).resolve().parent / "results" / "producer_throughput.json"
TARGET = 150_000
START = 1_793_577_600.0  # 2026-11-02T00:00:00Z
POOL_SIZE = 200_000


@contextmanager
def broker(bootstrap_servers: str | None) -> Iterator[tuple[str, str]]:
    """(bootstrap servers, description): the given broker, or a fresh local one."""
    if bootstrap_servers:
        yield bootstrap_servers, "given"
        return
    from pagestream.stack.paths import StackPaths, default_cache_dir
    from pagestream.stack.stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="pagestream-bench-") as state:
        stack = LocalStack(StackPaths(cache=default_cache_dir(), state=Path(state)))
        kafka = stack.kafka()
        # Kafka's storage tool rejects a generated cluster id that starts with "-"; retry.
        for attempt in range(5):
            try:
                stack.start("kafka")
                break
            except Exception:
                if attempt == 4:
                    raise
        try:
            yield kafka.bootstrap_servers, "local Apache Kafka 4.3.1 (KRaft, 512 MiB heap)"
        finally:
            stack.down()


def machine() -> dict[str, Any]:
    return {
        **_benchlib.machine(),
        "confluent_kafka": confluent_kafka.version()[0],
        "librdkafka": confluent_kafka.libversion()[0],
    }


def producer_run(
    bootstrap: str, pool: list[tuple[bytes, bytes]], records: int, settings: dict[str, Any]
) -> dict[str, Any]:
    topic = f"bench.producer.{uuid.uuid4().hex[:8]}"
    ensure_topic(bootstrap, topic, 3)
    sink = KafkaSink(ProducerSettings(bootstrap_servers=bootstrap, topic=topic, **settings))
    # Warm-up: connection, idempotent producer id, metadata.
    for key, value in pool[:5_000]:
        sink.send(key, value)
    sink.flush(30)
    warm = sink.counts.delivered
    send, poll = sink.send, sink.poll
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i, (key, value) in enumerate(itertools.islice(itertools.cycle(pool), records), 1):
        send(key, value)
        if i % 2_000 == 0:
            poll(0)
    sent_s = time.perf_counter() - wall0
    pending = sink.flush(120)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    delivered = sink.counts.delivered - warm
    return {
        "records": records,
        "delivered": delivered,
        "failed": sink.counts.failed,
        "pending_after_flush": pending,
        "seconds": round(wall, 3),
        "events_per_second": round(delivered / wall),
        "send_calls_per_second": round(records / sent_s),
        "process_cpu_seconds": round(cpu, 2),
    }


def end_to_end_run(bootstrap: str, records: int, settings: dict[str, Any]) -> dict[str, Any]:
    topic = f"bench.simulator.{uuid.uuid4().hex[:8]}"
    ensure_topic(bootstrap, topic, 3)
    cpu0 = time.process_time()
    result = run(
        RunConfig(
            producer=ProducerSettings(bootstrap_servers=bootstrap, topic=topic, **settings),
            generator=GeneratorConfig(seed=1, start_time=START),
            count=records,
            progress=False,
        )
    )
    return {
        "records": result.records_sent,
        "delivered": result.delivered,
        "failed": result.failed,
        "seconds": result.elapsed_seconds,
        "events_per_second": round(result.delivered / result.elapsed_seconds),
        "process_cpu_seconds": round(time.process_time() - cpu0, 2),
    }


def generation_rate(count: int = 200_000) -> dict[str, Any]:
    """Generation + encoding alone (no Kafka), CPU time: the simulator's other half."""
    generator = EventGenerator(GeneratorConfig(seed=2, start_time=START))
    generator.take(50_000)  # fill the session heap and caches first
    cpu0 = time.process_time()
    for *_, event in itertools.islice(generator, count):
        orjson.dumps(event)
    cpu = time.process_time() - cpu0
    return {
        "events": count,
        "cpu_seconds": round(cpu, 3),
        "events_per_cpu_second": round(count / cpu),
        "microseconds_per_event": round(cpu / count * 1e6, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", help="use this broker instead of starting one")
    parser.add_argument("--records", type=int, default=2_000_000, help="per producer run")
    parser.add_argument("--repeat", type=int, default=3, help="producer runs")
    parser.add_argument("--e2e-records", type=int, default=1_000_000)
    parser.add_argument("--compression", default="lz4")
    parser.add_argument("--linger-ms", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    settings = {"compression": args.compression, "linger_ms": args.linger_ms}

    print(f"generating a pool of {POOL_SIZE:,} events...", file=sys.stderr)
    generator = EventGenerator(GeneratorConfig(seed=1, start_time=START))
    pool = [(key, orjson.dumps(event)) for key, *_, event in generator.take(POOL_SIZE)]
    mean_bytes = sum(len(v) for _, v in pool) / len(pool)
    load_before = os.getloadavg()
    with broker(args.bootstrap_servers) as (bootstrap, broker_kind):
        runs = []
        for i in range(args.repeat):
            outcome = producer_run(bootstrap, pool, args.records, settings)
            print(f"producer run {i + 1}: {outcome}", file=sys.stderr)
            runs.append(outcome)
        e2e = end_to_end_run(bootstrap, args.e2e_records, settings)
        print(f"simulator end to end: {e2e}", file=sys.stderr)
    generation = generation_rate()
    load_after = os.getloadavg()

    rates = [r["events_per_second"] for r in runs]
    all_delivered = all(r["delivered"] == r["records"] for r in [*runs, e2e])
    report = {
        "benchmark": "producer_throughput",
        "command": "uv run python " + shlex.join(["bench/producer_throughput.py", *sys.argv[1:]]),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": _benchlib.git_commit(),
        "machine": {
            **machine(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "note": "shared machine: other work ran alongside; see the load averages",
        },
        "broker": broker_kind,
        "producer_settings": {
            **settings,
            "batch_bytes": 1_048_576,
            "enable.idempotence": True,
            "acks": "all",
            "partitions": 3,
            "delivery_reports": "one per record, counted",
        },
        "event_bytes_mean": round(mean_bytes),
        "producer": {
            "runs": runs,
            "best_events_per_second": max(rates),
            "median_events_per_second": round(statistics.median(rates)),
        },
        "simulator_end_to_end": e2e,
        "generation_only": generation,
        "target_events_per_second": TARGET,
        "producer_target_met": statistics.median(rates) >= TARGET,
        "simulator_end_to_end_target_met": e2e["events_per_second"] >= TARGET,
        "every_record_delivered": all_delivered,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if all_delivered else 1


if __name__ == "__main__":
    sys.exit(main())
