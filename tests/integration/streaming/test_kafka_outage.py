"""The Kafka broker restarts under a running job (a rolling update, a node drain): the job
waits for it and carries on, and every record is still stored exactly once.

The job reads from a broker of its own here, so stopping it leaves the other tests' broker
alone."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pagestream.stack.kafka import Kafka
from pagestream.stack.paths import StackPaths
from pagestream.stack.postgres import Postgres

from .conftest import new_job_run, own_kafka_broker, produce, stop_all
from .dataset import build_dataset, ground_truth

# Long enough for several micro-batches to come due without a broker.
OUTAGE_SECONDS = 15


@pytest.fixture
def own_kafka(stack_paths: StackPaths) -> Iterator[Kafka]:
    broker = own_kafka_broker(stack_paths, "kafka-outage")
    yield broker
    broker.stop()


def test_job_rides_out_a_kafka_restart_without_losing_or_doubling_a_record(
    own_kafka: Kafka, postgres: Postgres, stack_paths: StackPaths
) -> None:
    now = int(time.time())
    dataset = build_dataset(seed=29, valid_events=1_500, now=now)
    truth = ground_truth(dataset, now)
    records = [(r.key, r.value) for r in dataset.records]
    half = len(records) // 2
    run = new_job_run(own_kafka, postgres, stack_paths)
    try:
        proc = run.start(**{"max-offsets-per-trigger": "500"})
        produce(own_kafka, run.topic, records[:half])
        run.wait_consumed(half, proc=proc)

        own_kafka.stop()
        time.sleep(OUTAGE_SECONDS)
        assert proc.poll() is None, "the job gave up while Kafka was down"
        own_kafka.start()
        produce(own_kafka, run.topic, records[half:])
        run.wait_consumed(len(records), proc=proc)

        run.assert_stored_exactly_once(truth)
    finally:
        stop_all(run)
