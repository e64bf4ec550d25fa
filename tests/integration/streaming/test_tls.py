"""The job talks TLS to Kafka (SSL and SASL_SSL listeners) and to PostgreSQL (ssl=on, verified
with sslmode=verify-full), with the CAs in files as the operator mounts them from Strimzi's and
CloudNativePG's CA Secrets. Certificates are made by the test: each server's own CA, a
certificate naming ``localhost`` only, and an impostor CA that signed neither. A wrong CA or a
host name the certificate does not carry stops the job before Spark starts, saying which."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from pagestream.stack.kafka import Kafka
from pagestream.stack.paths import StackPaths
from pagestream.stack.pki import ServerTls, write_server_tls
from pagestream.stack.postgres import Postgres
from pagestream.stack.process import free_port

from .conftest import JobRun, new_job_run, own_kafka_broker, produce, stop_all
from .dataset import build_dataset, ground_truth

USER = "pagestream-job"
PASSWORD = "scram-over-tls-4d1e"


@dataclass(frozen=True)
class Certificates:
    kafka: ServerTls
    postgres: ServerTls
    # A CA that signed neither server's certificate.
    impostor_ca: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    root = tmp_path_factory.mktemp("tls")
    return Certificates(
        kafka=write_server_tls(root / "kafka", common_name="kafka", sans=["localhost"]),
        postgres=write_server_tls(root / "postgres", common_name="postgres", sans=["localhost"]),
        impostor_ca=write_server_tls(
            root / "impostor", common_name="x", sans=["localhost"]
        ).ca_file,
    )


@pytest.fixture(scope="module")
def tls_kafka(stack_paths: StackPaths, certificates: Certificates) -> Iterator[Kafka]:
    broker = own_kafka_broker(
        stack_paths,
        "kafka-tls",
        tls=certificates.kafka,
        ssl_port=free_port(),
        sasl_ssl_port=free_port(),
        scram_users={USER: PASSWORD},
    )
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def tls_postgres(stack_paths: StackPaths, certificates: Certificates) -> Iterator[Postgres]:
    server = Postgres(
        replace(stack_paths, state=stack_paths.state / "postgres-tls"),
        port=free_port(),
        durable=False,
        tls=certificates.postgres,
    )
    server.start()
    yield server
    server.stop()


def tls_flags(kafka: Kafka, postgres: Postgres, certificates: Certificates) -> dict[str, str]:
    """Both servers by the name their certificates carry, each verified against its CA."""
    return {
        "kafka-bootstrap-servers": kafka.tls_bootstrap_servers(),
        "kafka-security-protocol": "SSL",
        "kafka-tls-ca-file": str(certificates.kafka.ca_file),
        "postgres-host": "localhost",
        "postgres-sslmode": "verify-full",
        "postgres-ssl-root-cert": str(certificates.postgres.ca_file),
    }


def error_of(run: JobRun, proc: subprocess.Popen[bytes]) -> str:
    """The one error the job logged before it exited with 3 (a server it cannot use)."""
    assert proc.wait(120) == 3
    log = (run.paths.logs / f"job-{run.schema}.log").read_text()
    errors = [
        json.loads(line)
        for line in log.splitlines()
        if line.startswith("{") and '"level": "error"' in line
    ]
    assert len(errors) == 1, log[-3000:]
    assert "Traceback" not in log
    message: str = errors[0]["msg"]
    return message


def test_job_reads_through_ssl_and_writes_with_verify_full(
    tls_kafka: Kafka, tls_postgres: Postgres, stack_paths: StackPaths, certificates: Certificates
) -> None:
    run = new_job_run(tls_kafka, tls_postgres, stack_paths)
    now = int(time.time())
    dataset = build_dataset(seed=41, valid_events=300, now=now)
    truth = ground_truth(dataset, now)
    # Produced over the plain listener; only the job has to use TLS.
    produce(tls_kafka, run.topic, [(r.key, r.value) for r in dataset.records])
    try:
        run.run_to_completion(**tls_flags(tls_kafka, tls_postgres, certificates))
        run.assert_stored_exactly_once(truth)
    finally:
        stop_all(run)


def test_job_reads_through_sasl_ssl_and_its_database_session_is_encrypted(
    tls_kafka: Kafka,
    tls_postgres: Postgres,
    stack_paths: StackPaths,
    certificates: Certificates,
    tmp_path: Path,
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    run = new_job_run(tls_kafka, tls_postgres, stack_paths)
    run.env = {
        "PAGESTREAM_KAFKA_SASL_USERNAME": USER,
        "PAGESTREAM_KAFKA_SASL_PASSWORD_FILE": str(password_file),
    }
    now = int(time.time())
    dataset = build_dataset(seed=43, valid_events=200, now=now)
    truth = ground_truth(dataset, now)
    produce(tls_kafka, run.topic, [(r.key, r.value) for r in dataset.records])
    flags = tls_flags(tls_kafka, tls_postgres, certificates) | {
        "kafka-bootstrap-servers": tls_kafka.tls_bootstrap_servers(sasl=True),
        "kafka-security-protocol": "SASL_SSL",
        "kafka-sasl-mechanism": "SCRAM-SHA-512",
    }
    try:
        proc = run.start(**flags)
        run.wait_consumed(truth.consumed, proc=proc)
        # The running job's own session, as the server sees it.
        sessions = run.query(
            "SELECT s.ssl, s.version IS NOT NULL FROM pg_stat_ssl s "
            "JOIN pg_stat_activity a USING (pid) WHERE a.application_name = %s",
            (f"pagestream-{run.schema.replace('_', '-')}",),
        )
        assert sessions and all(row == (True, True) for row in sessions), sessions
        run.assert_stored_exactly_once(truth)
    finally:
        stop_all(run)


def test_a_kafka_certificate_from_another_ca_stops_the_job_saying_so(
    tls_kafka: Kafka, tls_postgres: Postgres, stack_paths: StackPaths, certificates: Certificates
) -> None:
    run = new_job_run(tls_kafka, tls_postgres, stack_paths)
    flags = tls_flags(tls_kafka, tls_postgres, certificates)
    proc = run.start(**flags | {"kafka-tls-ca-file": str(certificates.impostor_ca)})
    message = error_of(run, proc)
    assert message.startswith(
        f"Kafka broker localhost:{tls_kafka.ssl_port} failed TLS verification"
    )
    assert "unable to get local issuer certificate" in message
    assert str(certificates.impostor_ca) in message
    assert "spec.kafka.tls.caSecretRef" in message


def test_a_kafka_host_name_the_certificate_does_not_carry_stops_the_job(
    tls_kafka: Kafka, tls_postgres: Postgres, stack_paths: StackPaths, certificates: Certificates
) -> None:
    run = new_job_run(tls_kafka, tls_postgres, stack_paths)
    flags = tls_flags(tls_kafka, tls_postgres, certificates)
    by_address = tls_kafka.tls_bootstrap_servers(host="127.0.0.1")
    proc = run.start(**flags | {"kafka-bootstrap-servers": by_address})
    message = error_of(run, proc)
    assert message.startswith(f"Kafka broker {by_address} failed TLS verification")
    assert "certificate is not valid for '127.0.0.1'" in message
    assert "names the host in --kafka-bootstrap-servers" in message


def test_a_plain_listener_under_ssl_is_refused_as_not_tls(
    tls_kafka: Kafka, tls_postgres: Postgres, stack_paths: StackPaths, certificates: Certificates
) -> None:
    run = new_job_run(tls_kafka, tls_postgres, stack_paths)
    flags = tls_flags(tls_kafka, tls_postgres, certificates)
    proc = run.start(**flags | {"kafka-bootstrap-servers": f"localhost:{tls_kafka.port}"})
    message = error_of(run, proc)
    assert f"Kafka broker localhost:{tls_kafka.port} refused the TLS handshake" in message
    assert "is this a TLS listener?" in message


def test_a_postgres_certificate_from_another_ca_stops_the_job_saying_so(
    tls_kafka: Kafka, tls_postgres: Postgres, stack_paths: StackPaths, certificates: Certificates
) -> None:
    run = new_job_run(tls_kafka, tls_postgres, stack_paths)
    flags = tls_flags(tls_kafka, tls_postgres, certificates)
    proc = run.start(**flags | {"postgres-ssl-root-cert": str(certificates.impostor_ca)})
    message = error_of(run, proc)
    assert message.startswith(
        f"PostgreSQL at localhost:{tls_postgres.port} failed TLS (sslmode verify-full)"
    )
    assert "certificate verify failed" in message
    assert "spec.postgres.tls.caSecretRef" in message


def test_a_postgres_host_name_the_certificate_does_not_carry_stops_the_job(
    tls_kafka: Kafka, tls_postgres: Postgres, stack_paths: StackPaths, certificates: Certificates
) -> None:
    run = new_job_run(tls_kafka, tls_postgres, stack_paths)
    flags = tls_flags(tls_kafka, tls_postgres, certificates)
    proc = run.start(**flags | {"postgres-host": "127.0.0.1"})
    message = error_of(run, proc)
    assert 'server certificate for "localhost"' in message
    assert 'does not match host name "127.0.0.1"' in message
    assert "that the certificate names --postgres-host" in message
