"""How the sink asks libpq for TLS, and which connection failures it gives up on at once."""

from __future__ import annotations

import dataclasses

import pytest

from pagestream_common.jobconfig import JobConfig
from pagestream_spark.sink.connection import ssl_root_cert, tls_failure_hint

CONFIG = JobConfig(
    pipeline_name="demo",
    kafka_bootstrap_servers="kafka:9092",
    kafka_topic="views",
    postgres_host="pg",
    checkpoint_location="/cp",
)


def test_only_verifying_modes_name_a_root_certificate() -> None:
    assert ssl_root_cert(CONFIG) is None  # prefer
    assert ssl_root_cert(dataclasses.replace(CONFIG, postgres_sslmode="require")) is None
    full = dataclasses.replace(CONFIG, postgres_sslmode="verify-full")
    # Never libpq's fallback ~/.postgresql/root.crt: the system trust store, said so.
    assert ssl_root_cert(full) == "system"
    assert ssl_root_cert(dataclasses.replace(full, postgres_ssl_root_cert="/ca")) == "/ca"


@pytest.mark.parametrize(
    "message",
    [
        'connection to server at "pg" (10.0.0.2), port 5432 failed: SSL error: certificate '
        "verify failed",
        'server certificate for "pg-rw" does not match host name "10.0.0.2"',
        'root certificate file "/ca" does not exist',
        "server does not support SSL, but SSL was required",
    ],
)
def test_tls_failures_are_recognised_with_what_to_check(message: str) -> None:
    hint = tls_failure_hint(message)
    assert hint is not None and "--postgres-ssl-root-cert" in hint


def test_a_server_that_is_away_is_no_tls_failure() -> None:
    assert (
        tls_failure_hint('connection to server at "pg", port 5432 failed: Connection refused')
        is None
    )
