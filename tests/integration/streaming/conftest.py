"""Running the streaming job as a real process (Spark local mode) against the real Kafka and
PostgreSQL fixtures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg2
import pytest
from confluent_kafka import Producer

from pagestream.stack.kafka import Kafka
from pagestream.stack.paths import StackPaths
from pagestream.stack.postgres import Postgres
from pagestream.stack.process import free_port, popen_tied
from pagestream.stack.spark import job_environment

from .dataset import GroundTruth, build_dataset, ground_truth

PII_KEY = "test-pii-key"
ACCOUNTING = (
    "SELECT sum(consumed), sum(page_views), sum(other_events), sum(duplicates),"
    " sum(dead_lettered), sum(bots) FROM batch_commits"
)


def create_topic(kafka: Kafka, partitions: int = 3) -> str:
    topic = f"test.views.{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(topic, partitions)
    return topic


def produce(
    kafka: Kafka, topic: str, records: list[tuple[bytes | None, bytes]]
) -> list[tuple[int, int]]:
    """Send (key, value) pairs in order; return each record's (partition, offset)."""
    placed: list[tuple[int, int] | None] = [None] * len(records)
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True, "linger.ms": 5}
    )

    def delivered(index: int):  # type: ignore[no-untyped-def]
        def callback(err, msg) -> None:  # type: ignore[no-untyped-def]
            assert err is None, err
            placed[index] = (msg.partition(), msg.offset())

        return callback

    for i, (key, value) in enumerate(records):
        producer.produce(topic, value, key=key, on_delivery=delivered(i))
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    assert all(p is not None for p in placed)
    return [p for p in placed if p is not None]


@dataclass
class JobRun:
    """One pipeline's settings; ``start`` launches the job process for it."""

    kafka: Kafka
    postgres: Postgres
    paths: StackPaths
    topic: str
    schema: str
    checkpoint: Path
    metrics_port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def args(self, **overrides: str) -> list[str]:
        settings = {
            "pipeline-name": self.schema.replace("_", "-"),
            "kafka-bootstrap-servers": self.kafka.bootstrap_servers,
            "kafka-topic": self.topic,
            "postgres-host": "127.0.0.1",
            "postgres-port": str(self.postgres.port),
            "postgres-schema": self.schema,
            "checkpoint-location": str(self.checkpoint),
            "metrics-port": str(self.metrics_port),
            "trigger-interval": "1 seconds",
        } | overrides
        return [part for key, value in settings.items() for part in (f"--{key}", value)]

    def start(self, **overrides: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            **job_environment(self.paths, driver_memory="1g"),
            "PAGESTREAM_POSTGRES_PASSWORD": self.postgres.password,
            "PAGESTREAM_PII_HASH_KEY": PII_KEY,
            **self.env,
        }
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        log = (self.paths.logs / f"job-{self.schema}.log").open("ab")
        # Tied to this thread (a killed test run leaves no job behind); the JVM follows the
        # driver, whose end of the JVM's stdin pipe closes when it dies.
        proc = popen_tied(
            [sys.executable, "-m", "pagestream_spark.main", *self.args(**overrides)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a kill takes the JVM with it, as a pod kill would
        )
        log.close()
        self.processes.append(proc)
        return proc

    def run_to_completion(self, timeout: float = 300, **overrides: str) -> None:
        proc = self.start(**{"trigger-mode": "available-now", **overrides})
        assert proc.wait(timeout) == 0, f"job failed; see {self.paths.logs}/job-{self.schema}.log"

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """SIGKILL goes to the whole process group (driver and its JVM, as a pod kill would);
        SIGTERM to the driver process alone, which then stops Spark itself."""
        try:
            if sig == signal.SIGKILL:
                os.killpg(proc.pid, sig)
            else:
                os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(120)

    def query(self, statement: str, params: tuple = ()) -> list[tuple]:  # type: ignore[type-arg]
        with psycopg2.connect(self.postgres.dsn()) as conn, conn.cursor() as cur:
            cur.execute(f"SET search_path TO {self.schema}")
            cur.execute(statement, params)
            rows = cur.fetchall()
        conn.close()
        return rows

    def assert_stored_exactly_once(self, truth: GroundTruth) -> None:
        """Every record accounted for once, as the ground truth says; no page view stored
        twice; the hourly total equal to the facts."""
        views = len(truth.page_views)
        assert self.query(ACCOUNTING)[0] == (
            truth.consumed,
            views,
            truth.other_events,
            truth.duplicates,
            sum(truth.dead_letters.values()),
            truth.bots,
        )
        distinct = "SELECT count(*), count(DISTINCT event_id) FROM fact_page_views"
        assert self.query(distinct)[0] == (views, views)
        hourly = (
            "SELECT sum(views) FROM agg_page_views WHERE grain = 'hour' AND dimension = 'total'"
        )
        assert self.query(hourly)[0][0] == views

    def wait_consumed(
        self, expected: int, timeout: float = 300, proc: subprocess.Popen[bytes] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        consumed = -1
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(
                    f"job exited with {proc.returncode}; see {self.paths.logs}/job-{self.schema}.log"
                )
            try:
                consumed = self.query("SELECT coalesce(sum(consumed), 0) FROM batch_commits")[0][0]
            except psycopg2.Error:
                consumed = -1  # schema not migrated yet
            if consumed >= expected:
                return
            time.sleep(0.5)
        raise AssertionError(f"only {consumed} of {expected} records consumed after {timeout}s")


def own_kafka_broker(paths: StackPaths, name: str, **options: object) -> Kafka:
    """A started Kafka broker of a test's own (to stop, or to configure unlike the shared
    one), with its state under ``<state>/<name>``."""
    broker = Kafka(
        replace(paths, state=paths.state / name),
        port=free_port(),
        controller_port=free_port(),
        **options,  # type: ignore[arg-type]
    )
    broker.start()
    return broker


def send_dataset(kafka: Kafka, topic: str, *, seed: int, valid_events: int) -> GroundTruth:
    """A seeded dataset (duplicates, malformed records, bots, late events) produced to ``topic``
    over the plain listener; what a job must store of it."""
    now = int(time.time())
    dataset = build_dataset(seed=seed, valid_events=valid_events, now=now)
    produce(kafka, topic, [(r.key, r.value) for r in dataset.records])
    return ground_truth(dataset, now)


def new_job_run(kafka: Kafka, postgres: Postgres, paths: StackPaths) -> JobRun:
    """A pipeline of its own: fresh topic, PostgreSQL schema and checkpoint."""
    schema = f"t_{uuid.uuid4().hex[:8]}"
    return JobRun(
        kafka, postgres, paths, create_topic(kafka), schema, paths.state / "checkpoints" / schema
    )


def stop_all(run: JobRun) -> None:
    for proc in run.processes:
        if proc.poll() is None:
            run.kill(proc)


@pytest.fixture
def job_run(kafka: Kafka, postgres: Postgres, stack_paths: StackPaths) -> Iterator[JobRun]:
    run = new_job_run(kafka, postgres, stack_paths)
    yield run
    stop_all(run)
