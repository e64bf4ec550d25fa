"""The job reads a topic behind SASL/SCRAM-SHA-512 (as a Strimzi listener with a KafkaUser
requires), with the credentials from a mounted file, never from its command line; a wrong
password stops it with an authentication error instead of a silent stall."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from pagestream.stack.kafka import Kafka
from pagestream.stack.paths import StackPaths
from pagestream.stack.postgres import Postgres
from pagestream.stack.process import free_port
from pagestream_simulator.producer import ProducerSettings
from pagestream_simulator.runner import RunConfig
from pagestream_simulator.runner import run as simulate

from .conftest import JobRun, new_job_run, own_kafka_broker, produce, stop_all
from .dataset import build_dataset, ground_truth

USER = "pagestream-job"
PASSWORD = "scram-test-password-7f3a"


@pytest.fixture(scope="module")
def scram_kafka(stack_paths: StackPaths) -> Iterator[Kafka]:
    broker = own_kafka_broker(
        stack_paths, "kafka-scram", sasl_port=free_port(), scram_users={USER: PASSWORD}
    )
    yield broker
    broker.stop()


def scram_run(kafka: Kafka, postgres: Postgres, paths: StackPaths, password_file: Path) -> JobRun:
    run = new_job_run(kafka, postgres, paths)
    run.env = {
        "PAGESTREAM_KAFKA_SASL_USERNAME": USER,
        "PAGESTREAM_KAFKA_SASL_PASSWORD_FILE": str(password_file),
    }
    return run


def sasl_flags(kafka: Kafka) -> dict[str, str]:
    return {
        "kafka-bootstrap-servers": kafka.sasl_bootstrap_servers,
        "kafka-security-protocol": "SASL_PLAINTEXT",
        "kafka-sasl-mechanism": "SCRAM-SHA-512",
        "trigger-mode": "available-now",
    }


def test_job_reads_through_scram_with_credentials_from_a_file(
    scram_kafka: Kafka, postgres: Postgres, stack_paths: StackPaths, tmp_path: Path
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    run = scram_run(scram_kafka, postgres, stack_paths, password_file)
    now = int(time.time())
    dataset = build_dataset(seed=31, valid_events=300, now=now)
    truth = ground_truth(dataset, now)
    # Produced over the plain listener; only the job has to authenticate.
    produce(scram_kafka, run.topic, [(r.key, r.value) for r in dataset.records])
    try:
        proc = run.start(**sasl_flags(scram_kafka))
        assert proc.wait(300) == 0, f"job failed; see {stack_paths.logs}/job-{run.schema}.log"
        assert PASSWORD not in " ".join(proc.args)  # type: ignore[arg-type]
        log = (stack_paths.logs / f"job-{run.schema}.log").read_text()
        assert PASSWORD not in log
        assert run.query(
            "SELECT sum(consumed), sum(page_views), sum(duplicates), sum(dead_lettered) "
            "FROM batch_commits"
        )[0] == (
            truth.consumed,
            len(truth.page_views),
            truth.duplicates,
            sum(truth.dead_letters.values()),
        )
    finally:
        stop_all(run)


def test_wrong_password_fails_the_job_with_an_authentication_error(
    scram_kafka: Kafka, postgres: Postgres, stack_paths: StackPaths, tmp_path: Path
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("not-the-password")
    run = scram_run(scram_kafka, postgres, stack_paths, password_file)
    produce(scram_kafka, run.topic, [(None, b'{"id": "x"}')])
    try:
        proc = run.start(**sasl_flags(scram_kafka))
        assert proc.wait(300) == 1
        log = (stack_paths.logs / f"job-{run.schema}.log").read_text()
        errors = [
            json.loads(line)
            for line in log.splitlines()
            if line.startswith("{") and '"level": "error"' in line
        ]
        assert len(errors) == 1, log[-3000:]
        (error,) = errors
        assert error["msg"].startswith("streaming query failed: ")
        assert "SaslAuthenticationException" in error["msg"]
        assert "PAGESTREAM_KAFKA_SASL_PASSWORD" in error["hint"]
        assert "Traceback" not in log
    finally:
        stop_all(run)


def test_simulator_creates_its_topic_and_sends_through_scram(scram_kafka: Kafka) -> None:
    """--create-topic uses the connection's --producer-config settings too: behind a SCRAM-only
    listener (as in a cluster) the admin request authenticates like the producer."""
    topic = f"sim-{uuid.uuid4().hex[:8]}"
    sasl = (
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", USER),
        ("sasl.password", PASSWORD),
    )
    settings = ProducerSettings(scram_kafka.sasl_bootstrap_servers, topic, extra=sasl)
    result = simulate(RunConfig(producer=settings, count=200, rate=0, create_topic_partitions=2))
    assert result.ok and result.delivered == result.records_sent == 200
    metadata = AdminClient({"bootstrap.servers": scram_kafka.bootstrap_servers}).list_topics(
        topic, timeout=10
    )
    assert len(metadata.topics[topic].partitions) == 2
