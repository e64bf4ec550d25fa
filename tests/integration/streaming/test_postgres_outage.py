"""PostgreSQL goes away mid-stream (a restart, a failover) and comes back: the running job
reconnects and carries on, and every record is still stored exactly once.

The job writes to a PostgreSQL server of its own here, so stopping it leaves the other tests'
server alone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagestream.stack.kafka import Kafka
from pagestream.stack.paths import StackPaths, default_cache_dir
from pagestream.stack.postgres import Postgres
from pagestream.stack.stack import LocalStack

from .conftest import new_job_run, produce, stop_all
from .dataset import build_dataset, ground_truth


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[LocalStack, Postgres]]:
    stack = LocalStack(StackPaths(cache=default_cache_dir(), state=tmp_path / "state", tied=True))
    server = stack.start("postgres")
    assert isinstance(server, Postgres)
    yield stack, server
    stack.down()
    server.remove_data()  # its data may lie outside tmp_path (FALLBACK_DATA_ROOT)


def test_job_rides_out_a_postgres_restart_without_losing_or_doubling_a_record(
    kafka: Kafka, own_postgres: tuple[LocalStack, Postgres], stack_paths: StackPaths
) -> None:
    stack, server = own_postgres
    now = int(time.time())
    dataset = build_dataset(seed=23, valid_events=1_500, now=now)
    truth = ground_truth(dataset, now)
    records = [(r.key, r.value) for r in dataset.records]
    half = len(records) // 2
    run = new_job_run(kafka, server, stack_paths)
    try:
        proc = run.start(**{"max-offsets-per-trigger": "500"})
        produce(kafka, run.topic, records[:half])
        run.wait_consumed(half, proc=proc)

        server.stop()
        produce(kafka, run.topic, records[half:])
        time.sleep(6)  # micro-batches come due and find no server
        assert proc.poll() is None, "the job gave up while PostgreSQL was down"
        stack.start("postgres")
        run.wait_consumed(len(records), proc=proc)

        log = (stack_paths.logs / f"job-{run.schema}.log").read_text()
        assert "PostgreSQL connection failed during batch" in log
        run.assert_stored_exactly_once(truth)
    finally:
        stop_all(run)
