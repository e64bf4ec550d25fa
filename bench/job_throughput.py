"""Throughput, memory and freshness of the streaming job on this machine (not a test).

In one run, against one local stack (Kafka 4.3, PostgreSQL 15 with fsync on, Spark local[2]):

1. a backlog of --events simulator events (with duplicates, malformed records and bots) is
   produced to a 4-partition topic;
2. raw ceiling: a plain confluent-kafka consumer reads the whole topic;
3. pagestream: the job drains the backlog into the full star schema (--trigger-mode
   available-now); events/s over the job's wall time, peak RSS of its process tree, and CPU
   time by process class, sampled from /proc during the drain (the driver's Python, the Spark
   driver JVM, pyspark's daemon and workers, the PostgreSQL postmaster and its backends, the
   Kafka broker; see bench/_benchlib.py), as µs per record, over the whole run and between
   the first and last commit;
4. raw ceiling: PostgreSQL takes the same number of rows by COPY (the stored facts, copied out
   and back into a plain table);
5. baseline: the tutorial-style job (bench/baseline_tutorial_job.py: from_json, JDBC append per
   micro-batch, no dimensions) drains the same backlog;
6. baseline: the same star-schema work done the way tutorials do it
   (bench/baseline_udf_jdbc_job.py: per-row Python UDFs, user-agents, dimensions and facts by
   JDBC in foreachBatch; its docstring lists what it does not do) drains the same backlog;
   pagestream's records/s is reported as a ratio to it, to the consumer ceiling and to the
   tutorial baseline;
7. freshness: the job runs continuously (--steady-trigger, 500 ms by default) while the
   simulator sends a steady --steady-rate events/s for --steady-seconds in live mode (no event
   leaves before its event time) for --steady-warmup + --steady-seconds; p50/p95 of commit time
   minus event time (whole seconds, as the contract stamps them) come from the job's own
   freshness histogram over the steady window (bucket counts at its end minus at its start),
   and over the whole run including the first seconds of traffic; beside them the job's
   ingest latency (commit time minus the Kafka record timestamp, in milliseconds: the
   pipeline's own delay, which whole-second event times overstate by up to a second).

    uv run python bench/job_throughput.py [--events 2000000] [--steady-rate 5000]

Writes bench/results/job_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchlib import ProcessSampler, cpu_per_record, machine, seconds_at, write_result

from pagestream.stack.kafka import Kafka
from pagestream.stack.paths import REPO_ROOT, StackPaths, default_cache_dir
from pagestream.stack.postgres import Postgres
from pagestream.stack.process import free_port
from pagestream.stack.spark import job_environment
from pagestream.stack.stack import LocalStack
from pagestream_operator.spec import DriverSpec

BENCH_STATE = REPO_ROOT / ".pagestream" / "bench" / "job-throughput"
PARTITIONS = 4
MAX_OFFSETS = 250_000
UDF_JDBC_TABLES = (
    "fact_page_views",
    "fact_other_events",
    "bot_events",
    "dim_product",
    "dim_location",
    "dim_user_agent",
    "dim_referrer",
    "dim_campaign",
    "dim_date",
)


def simulator_command(bootstrap: str, topic: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pagestream_simulator.cli",
        "--bootstrap-servers",
        bootstrap,
        "--topic",
        topic,
        "--no-progress",
        "--log-level",
        "WARNING",
        *extra,
    ]


def simulate(bootstrap: str, topic: str, *extra: str) -> float:
    started = time.monotonic()
    subprocess.run(simulator_command(bootstrap, topic, *extra), check=True)
    return time.monotonic() - started


def empty_stack(
    state_dir: Path, *, durable_postgres: bool = False
) -> tuple[StackPaths, LocalStack]:
    """A benchmark's own stack under ``state_dir``, nothing started, emptied first (a stack an
    earlier run left is stopped and its state removed)."""
    if state_dir.exists():
        LocalStack(StackPaths(default_cache_dir(), state_dir / "state")).down()
        shutil.rmtree(state_dir)
    paths = StackPaths(cache=default_cache_dir(), state=state_dir / "state")
    return paths, LocalStack(paths, durable_postgres=durable_postgres)


def fresh_stack(state_dir: Path) -> tuple[StackPaths, LocalStack, Kafka, Postgres]:
    """A benchmark's own Kafka and durable PostgreSQL under ``state_dir``, emptied first."""
    paths, stack = empty_stack(state_dir, durable_postgres=True)
    return paths, stack, stack.start("kafka"), stack.start("postgres")


# The driver heap `make run` gives the job: the PageAnalyticsPipeline's default
# (spec.spark.driver.memory; manifests/local/page-views.yaml sets none).
DRIVER_MEMORY = DriverSpec().memory


def job_env(
    paths: StackPaths,
    postgres: Postgres,
    driver_memory: str = DRIVER_MEMORY,
    driver_java_options: tuple[str, ...] = (),
) -> dict[str, str]:
    """The streaming job's environment on a benchmark stack."""
    return {
        **os.environ,
        **job_environment(
            paths, driver_memory=driver_memory, driver_java_options=driver_java_options
        ),
        "PAGESTREAM_POSTGRES_PASSWORD": postgres.password,
        "PAGESTREAM_PII_HASH_KEY": "bench",
    }


def produce_backlog(bootstrap: str, topic: str, events: int) -> float:
    """The benchmarks' backlog: ``events`` simulator events as fast as they go, with 1 %
    duplicates, 0.2 % malformed records and 5 % bots (seed 42)."""
    return simulate(
        bootstrap,
        topic,
        "--max-speed",
        "--count",
        str(events),
        "--seed",
        "42",
        "--duplicate-rate",
        "0.01",
        "--malformed-rate",
        "0.002",
        "--bot-share",
        "0.05",
    )


def consume_all(bootstrap: str, topic: str, expected: int) -> dict[str, float]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52428800,
        }
    )
    consumer.subscribe([topic])
    seen, started, first = 0, time.monotonic(), None
    while seen < expected and time.monotonic() - started < 600:
        for msg in consumer.consume(num_messages=10_000, timeout=1.0):
            if msg.error() is None:
                first = first or time.monotonic()
                seen += 1
    elapsed = time.monotonic() - (first or started)
    consumer.close()
    return {
        "records": seen,
        "seconds": round(elapsed, 2),
        "records_per_second": round(seen / elapsed),
    }


def topic_size(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-size"})
    total = 0
    for p in range(PARTITIONS):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += high - low
    consumer.close()
    return total


def job_args(
    bootstrap: str,
    topic: str,
    pg_port: int,
    schema: str,
    checkpoint: Path,
    metrics_port: int,
    **extra: str,
) -> list[str]:
    settings = {
        "pipeline-name": schema.replace("_", "-"),
        "kafka-bootstrap-servers": bootstrap,
        "kafka-topic": topic,
        "postgres-host": "127.0.0.1",
        "postgres-port": str(pg_port),
        "postgres-schema": schema,
        "checkpoint-location": str(checkpoint),
        "metrics-port": str(metrics_port),
        "max-offsets-per-trigger": str(MAX_OFFSETS),
    } | extra
    return [part for k, v in settings.items() for part in (f"--{k}", v)]


@dataclass
class Measured:
    seconds: float
    sampler: ProcessSampler
    cpu_seconds: dict[str, float]  # by process class, over the whole run

    @property
    def peak_rss_mib(self) -> float:
        return self.sampler.peak_rss_mib().get("job_tree", 0.0)

    def cpu(self, records: int) -> dict[str, object]:
        return cpu_per_record(self.cpu_seconds, records)

    def cpu_between(self, start: float, end: float, records: int) -> dict[str, object]:
        """CPU by class between two wall-clock times of the run."""
        before = seconds_at(self.sampler.samples, start)
        after = seconds_at(self.sampler.samples, end)
        return cpu_per_record({c: after[c] - before.get(c, 0.0) for c in after}, records)


def run_measured(
    argv: list[str], env: dict[str, str], log: Path, servers: dict[str, int]
) -> Measured:
    """Run a job to its end, sampling its process tree and the servers' CPU meanwhile."""
    with log.open("ab") as out:
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = ProcessSampler(proc.pid, servers)
        code = proc.wait()
        elapsed = time.monotonic() - started
        cpu = sampler.stop()
    if code != 0:
        raise SystemExit(f"{argv[:3]} failed with {code}; see {log}")
    return Measured(elapsed, sampler, cpu)


def server_pids(kafka: Kafka, postgres: Postgres) -> dict[str, int]:
    """The root process of each server the jobs use, by the class its CPU is reported under."""
    pids = {"kafka_broker": kafka.process.pid(), "postgres": postgres.process.pid()}
    for name, pid in pids.items():
        if pid is None:
            raise SystemExit(f"{name} is not running")
    return {name: pid for name, pid in pids.items() if pid is not None}


def stored_rows(dsn: str, schema: str, tables: tuple[str, ...]) -> dict[str, int]:
    conn = psycopg2.connect(dsn)
    counts = {}
    with conn, conn.cursor() as cur:
        for table in tables:
            cur.execute(f"SELECT count(*) FROM {schema}.{table}")
            (counts[table],) = cur.fetchone()
    conn.close()
    return counts


def _first_batch_records(dsn: str, schema: str) -> int:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT consumed FROM {schema}.batch_commits ORDER BY committed_at LIMIT 1")
        (records,) = cur.fetchone()
    conn.close()
    return int(records)


def copy_ceiling(dsn: str, schema: str) -> dict[str, float]:
    """COPY the stored facts out, then the same number of rows back into a plain table."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {schema}.fact_page_views")
            (facts,) = cur.fetchone()
            cur.execute(f"SELECT sum(consumed)::bigint FROM {schema}.batch_commits")
            (consumed,) = cur.fetchone()
            cur.execute(f"CREATE TABLE {schema}.copy_ceiling (LIKE {schema}.fact_page_views)")
        # Repeat the fact rows up to the consumed count, so both sides ingest as many rows.
        import io

        buf = io.BytesIO()
        with conn.cursor() as cur:
            # A partitioned table copies out only through a query.
            cur.copy_expert(f"COPY (SELECT * FROM {schema}.fact_page_views) TO STDOUT", buf)
        data = buf.getvalue()
        repeats = max(1, round(consumed / max(facts, 1)))
        started = time.monotonic()
        with conn, conn.cursor() as cur:
            for _ in range(repeats):
                cur.copy_expert(f"COPY {schema}.copy_ceiling FROM STDIN", io.BytesIO(data))
        elapsed = time.monotonic() - started
    finally:
        conn.close()
    rows = facts * repeats
    return {"rows": rows, "seconds": round(elapsed, 2), "rows_per_second": round(rows / elapsed)}


def histogram_buckets(
    metrics_text: str, name: str = "pagestream_job_freshness_seconds"
) -> list[tuple[float, float]]:
    """One of the job's cumulative histograms: (upper bound, count) pairs, ascending."""
    buckets: list[tuple[float, float]] = []
    for line in metrics_text.splitlines():
        if line.startswith(f"{name}_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append(
                (float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1]))
            )
    return sorted(buckets)


# The job's two latency histograms, by the name the results give them.
LATENCIES = {
    "freshness": "pagestream_job_freshness_seconds",
    "ingest_latency": "pagestream_job_ingest_latency_seconds",
}


def freshness_quantiles(buckets: list[tuple[float, float]]) -> dict[str, float]:
    total = buckets[-1][1]

    def quantile(q: float) -> float:
        target, prev_bound, prev_count = q * total, 0.0, 0.0
        for bound, count in buckets:
            if count >= target:
                if bound == float("inf"):
                    return prev_bound
                share = (target - prev_count) / max(count - prev_count, 1)
                return round(prev_bound + (bound - prev_bound) * share, 3)
            prev_bound, prev_count = bound, count
        return prev_bound

    return {
        "observations": total,
        "p50_seconds": quantile(0.5),
        "p95_seconds": quantile(0.95),
        "p99_seconds": quantile(0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--steady-rate", type=int, default=5000)
    parser.add_argument("--steady-seconds", type=int, default=90)
    parser.add_argument("--steady-trigger", default="500 milliseconds")
    parser.add_argument("--steady-warmup", type=int, default=20)
    parser.add_argument("--max-offsets", type=int, default=MAX_OFFSETS, help="per micro-batch")
    parser.add_argument("--driver-memory", default=DRIVER_MEMORY, help="the Spark driver's heap")
    parser.add_argument(
        "--driver-java-option",
        action="append",
        default=[],
        help="a JVM flag for the job's driver, e.g. -XX:StartFlightRecording=filename=drain.jfr "
        "(repeatable)",
    )
    parser.add_argument(
        "--drain-only",
        action="store_true",
        help="only the backlog, the ceilings and pagestream's drain (no baselines, no freshness); "
        "written to bench/results/job_throughput.partial.json, which git ignores",
    )
    args = parser.parse_args()
    at_start = machine()

    paths, stack, kafka, postgres = fresh_stack(BENCH_STATE)
    bootstrap = kafka.bootstrap_servers
    servers = server_pids(kafka, postgres)
    env = job_env(paths, postgres, args.driver_memory, tuple(args.driver_java_option))
    results: dict[str, Any] = {}
    try:
        topic = "bench.backlog"
        kafka.ensure_topic(topic, PARTITIONS)
        seconds = produce_backlog(bootstrap, topic, args.events)
        records = topic_size(bootstrap, topic)
        results["backlog"] = {
            "events_requested": args.events,
            "records_in_topic": records,
            "produce_seconds": round(seconds, 1),
            "partitions": PARTITIONS,
            "max_offsets_per_micro_batch": args.max_offsets,
        }
        print(f"backlog: {records} records in {seconds:.0f}s", flush=True)

        results["kafka_consumer_ceiling"] = consume_all(bootstrap, topic, records)
        print("consumer ceiling:", results["kafka_consumer_ceiling"], flush=True)

        schema = "bench"
        drain = run_measured(
            [
                sys.executable,
                "-m",
                "pagestream_spark.main",
                *job_args(
                    bootstrap,
                    topic,
                    postgres.port,
                    schema,
                    paths.state / "ckpt-job",
                    free_port(),
                    **{
                        "trigger-mode": "available-now",
                        "max-offsets-per-trigger": str(args.max_offsets),
                    },
                ),
            ],
            env,
            paths.logs / "job.log",
            servers,
        )
        conn = psycopg2.connect(postgres.dsn())
        with conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT sum(consumed)::bigint, sum(page_views)::bigint, sum(other_events)::bigint, sum(duplicates)::bigint, sum(dead_lettered)::bigint, sum(bots)::bigint, count(*), min(committed_at), max(committed_at) FROM {schema}.batch_commits"
            )
            consumed, pv, other, dup, dead, bots, batches, first_commit, last_commit = (
                cur.fetchone()
            )
        conn.close()
        after_first_batch = consumed - _first_batch_records(postgres.dsn(), schema)
        results["pagestream"] = {
            "records": consumed,
            "page_views": pv,
            "other_events": other,
            "duplicates": dup,
            "dead_lettered": dead,
            "bots": bots,
            "micro_batches": batches,
            "seconds_wall_including_startup": round(drain.seconds, 1),
            "records_per_second": round(consumed / drain.seconds),
            # Excluding JVM start-up and the first batch's planning: first to last commit.
            "records_per_second_between_first_and_last_commit": round(
                after_first_batch / max((last_commit - first_commit).total_seconds(), 1e-3)
            ),
            "peak_rss_mib_driver_jvm_and_workers": drain.peak_rss_mib,
            "peak_rss_mib_by_process": drain.sampler.peak_rss_mib(),
            # CPU time by process class; the servers' counts only while the job ran.
            "cpu_whole_run": drain.cpu(consumed),
            "cpu_between_first_and_last_commit": drain.cpu_between(
                first_commit.timestamp(), last_commit.timestamp(), after_first_batch
            )
            if batches > 1
            else None,
        }
        print("pagestream:", results["pagestream"], flush=True)

        results["postgres_copy_ceiling"] = copy_ceiling(postgres.dsn(), schema)
        print("copy ceiling:", results["postgres_copy_ceiling"], flush=True)
        results["driver_memory"] = args.driver_memory
        if not args.drain_only:
            measure_baselines_and_freshness(args, results, paths, kafka, postgres, env, servers)
    finally:
        stack.down()
    path = write_result(
        "job_throughput.partial" if args.drain_only else "job_throughput",
        {
            "results": results,
            "targets": {
                "records_per_second": 30_000,
                "records_per_second_stretch": 60_000,
                "peak_rss_mib": 2048,
                "freshness_p95_seconds": 1.0,
            },
        },
        at_start | {"load_average_1m_at_end": round(os.getloadavg()[0], 2)},
    )
    print(json.dumps(results, indent=2))
    print(f"written {path}")
    return 0


def measure_baselines_and_freshness(
    args: argparse.Namespace,
    results: dict[str, Any],
    paths: StackPaths,
    kafka: Kafka,
    postgres: Postgres,
    env: dict[str, str],
    servers: dict[str, int],
) -> None:
    """The two baseline jobs on the same backlog, the ratios, and freshness at a steady rate."""
    bootstrap, topic = kafka.bootstrap_servers, "bench.backlog"
    records = results["backlog"]["records_in_topic"]

    def baseline(script: str, name: str) -> Measured:
        return run_measured(
            [
                sys.executable,
                str(Path(__file__).parent / script),
                bootstrap,
                topic,
                postgres.jdbc_url(),
                postgres.password,
                str(paths.state / f"ckpt-{name}"),
                str(args.max_offsets),
            ],
            env,
            paths.logs / f"{name}.log",
            servers,
        )

    tutorial = baseline("baseline_tutorial_job.py", "baseline")
    results["baseline_tutorial"] = {
        "records": records,
        "seconds_wall_including_startup": round(tutorial.seconds, 1),
        "records_per_second": round(records / tutorial.seconds),
        "peak_rss_mib": tutorial.peak_rss_mib,
        "cpu_whole_run": tutorial.cpu(records),
    }
    print("tutorial baseline:", results["baseline_tutorial"], flush=True)

    udf_jdbc = baseline("baseline_udf_jdbc_job.py", "baseline-udf-jdbc")
    results["baseline_udf_jdbc"] = {
        "records": records,
        "seconds_wall_including_startup": round(udf_jdbc.seconds, 1),
        "records_per_second": round(records / udf_jdbc.seconds),
        "peak_rss_mib": udf_jdbc.peak_rss_mib,
        "peak_rss_mib_by_process": udf_jdbc.sampler.peak_rss_mib(),
        "cpu_whole_run": udf_jdbc.cpu(records),
        # What it stored, beside pagestream's counts above (it deduplicates within a
        # micro-batch only and keeps no dead letters: see its docstring).
        "stored_rows": stored_rows(
            postgres.dsn(),
            "baseline_udf",
            UDF_JDBC_TABLES,
        ),
    }
    print("UDF + JDBC baseline:", results["baseline_udf_jdbc"], flush=True)

    ours = results["pagestream"]["records_per_second"]
    results["vs_consumer_ceiling"] = round(
        ours / results["kafka_consumer_ceiling"]["records_per_second"], 3
    )
    results["vs_udf_jdbc_baseline"] = round(
        ours / results["baseline_udf_jdbc"]["records_per_second"], 2
    )
    results["vs_tutorial_baseline"] = round(
        ours / results["baseline_tutorial"]["records_per_second"], 2
    )

    # Freshness at a steady rate.
    live = "bench.live"
    kafka.ensure_topic(live, PARTITIONS)
    metrics_port = free_port()
    with (paths.logs / "job-live.log").open("ab") as out:
        job = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pagestream_spark.main",
                *job_args(
                    bootstrap,
                    live,
                    postgres.port,
                    "bench_live",
                    paths.state / "ckpt-live",
                    metrics_port,
                    **{
                        "trigger-interval": args.steady_trigger,
                        "kafka-starting-offsets": "latest",
                    },
                ),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def histograms() -> dict[str, list[tuple[float, float]]]:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        return {name: histogram_buckets(text, metric) for name, metric in LATENCIES.items()}

    try:
        time.sleep(25)  # JVM start, migrations, first empty batches
        # Traffic starts with the first data batch's one-off costs (Kafka consumers, JIT)
        # and the catch-up after it; the steady window starts --steady-warmup seconds in.
        sender = subprocess.Popen(
            simulator_command(
                bootstrap,
                live,
                "--rate",
                str(args.steady_rate),
                "--duration",
                f"{args.steady_warmup + args.steady_seconds}s",
                "--seed",
                "7",
                "--late-rate",
                "0",
                "--bot-share",
                "0.05",
            )
        )
        time.sleep(args.steady_warmup)
        at_window_start = histograms()
        if sender.wait(args.steady_warmup + args.steady_seconds + 120) != 0:
            raise RuntimeError("the simulator failed; see its output above")
        time.sleep(5)
        at_end = histograms()
    finally:
        job.terminate()
        job.wait(120)
    window = {
        name: [
            (bound, count - before)
            for (bound, count), (_, before) in zip(at_end[name], at_window_start[name], strict=True)
        ]
        for name in LATENCIES
    }
    results["freshness_at_steady_rate"] = {
        "rate_events_per_second": args.steady_rate,
        "seconds": args.steady_seconds,
        "trigger": args.steady_trigger,
        "warm_up_seconds_excluded": args.steady_warmup,
        **freshness_quantiles(window["freshness"]),
        "including_warm_up": freshness_quantiles(at_end["freshness"]),
        # Kafka record timestamp (ms) to commit: the pipeline's delay without the up to
        # one second of whole-second event times.
        "ingest_latency": freshness_quantiles(window["ingest_latency"]),
    }
    print("freshness:", results["freshness_at_steady_rate"], flush=True)


if __name__ == "__main__":
    sys.exit(main())
