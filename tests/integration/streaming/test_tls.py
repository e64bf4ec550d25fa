"""The job talks TLS to Kafka (SSL and SASL_SSL listeners) and to PostgreSQL (ssl=on, verified
with sslmode=verify-full), with the CAs in files as the operator mounts them from Strimzi's and
CloudNativePG's CA Secrets. Certificates are made by the test: each server's own CA, a
certificate naming ``localhost`` only, and an impostor CA that signed neither. A wrong CA or a
host name the certificate does not carry stops the job before Spark starts, saying which."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from pagestream.stack.kafka import Kafka
from pagestream.stack.paths import StackPaths
from pagestream.stack.pki import ServerTls, write_server_tls
from pagestream.stack.postgres import Postgres
from pagestream.stack.process import free_port

from .conftest import JobRun, new_job_run, own_kafka_broker, send_dataset, stop_all

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
    # Produced over the plain listener; only the job has to use TLS.
    truth = send_dataset(tls_kafka, run.topic, seed=41, valid_events=300)
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
    truth = send_dataset(tls_kafka, run.topic, seed=43, valid_events=200)
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


# What goes wrong (flags changed from tls_flags), and the words the job's one error must hold;
# "{...}" are the servers' ports and files.
REFUSALS: dict[str, tuple[dict[str, str], list[str]]] = {
    "kafka-ca-from-another-ca": (
        {"kafka-tls-ca-file": "{impostor_ca}"},
        [
            "Kafka broker localhost:{ssl_port} failed TLS verification: unable to get local "
            "issuer certificate; check that {impostor_ca} holds the CA",
            "spec.kafka.tls.caSecretRef",
        ],
    ),
    "kafka-host-not-in-certificate": (
        {"kafka-bootstrap-servers": "127.0.0.1:{ssl_port}"},
        [
            "Kafka broker 127.0.0.1:{ssl_port} failed TLS verification: IP address mismatch, "
            "certificate is not valid for '127.0.0.1'",
            "names the host in --kafka-bootstrap-servers",
        ],
    ),
    "kafka-plain-listener": (
        {"kafka-bootstrap-servers": "localhost:{plain_port}"},
        [
            "Kafka broker localhost:{plain_port} refused the TLS handshake",
            "is this a TLS listener?",
        ],
    ),
    "postgres-ca-from-another-ca": (
        {"postgres-ssl-root-cert": "{impostor_ca}"},
        [
            "PostgreSQL at localhost:{pg_port} failed TLS (sslmode verify-full)",
            "certificate verify failed",
            "spec.postgres.tls.caSecretRef",
        ],
    ),
    "postgres-host-not-in-certificate": (
        {"postgres-host": "127.0.0.1"},
        [
            'server certificate for "localhost"',
            'does not match host name "127.0.0.1"',
            "that the certificate names --postgres-host",
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_wrong_ca_or_host_name_stops_the_job_before_spark_saying_which(
    tls_kafka: Kafka,
    tls_postgres: Postgres,
    stack_paths: StackPaths,
    certificates: Certificates,
    case: str,
) -> None:
    places = {
        "impostor_ca": str(certificates.impostor_ca),
        "ssl_port": str(tls_kafka.ssl_port),
        "plain_port": str(tls_kafka.port),
        "pg_port": str(tls_postgres.port),
    }
    changes, words = REFUSALS[case]
    run = new_job_run(tls_kafka, tls_postgres, stack_paths)
    flags = tls_flags(tls_kafka, tls_postgres, certificates)
    proc = run.start(**flags | {k: v.format(**places) for k, v in changes.items()})
    message = error_of(run, proc)
    for expected in words:
        assert expected.format(**places) in message, message
