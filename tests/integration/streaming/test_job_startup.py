"""Start-up against servers that are not there: retries with backoff, then a clear error; and
a job without its PII key, refused before it connects to anything."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pagestream.stack.postgres import Postgres
from pagestream.stack.process import free_port
from pagestream_common.jobconfig import PII_HASH_KEY_REQUIRED, JobConfig, JobConfigError, Secrets
from pagestream_spark.sink import SinkUnavailable, connect_postgres
from pagestream_spark.source import SourceUnavailable, wait_for_kafka

pytestmark = pytest.mark.postgres


def _config(**overrides: object) -> JobConfig:
    settings: dict[str, object] = {
        "pipeline_name": "startup",
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
        "kafka_topic": "t",
        "postgres_host": "127.0.0.1",
        "postgres_port": free_port(),
        "checkpoint_location": "/tmp/unused",
    }
    return JobConfig(**(settings | overrides))  # type: ignore[arg-type]


def test_unreachable_postgres_is_retried_then_reported(caplog: pytest.LogCaptureFixture) -> None:
    config = _config()
    started = time.monotonic()
    with pytest.raises(SinkUnavailable) as info:
        connect_postgres(
            config, Secrets(postgres_password="x", pii_hash_key="k"), attempts=3, first_delay=0.2
        )
    assert time.monotonic() - started >= 0.2 + 0.4  # it did back off between attempts
    message = str(info.value)
    assert f"127.0.0.1:{config.postgres_port}/pagestream" in message
    assert "PAGESTREAM_POSTGRES_" in message
    assert sum("PostgreSQL not reachable" in r.getMessage() for r in caplog.records) == 3


def test_wrong_password_names_what_to_check(postgres: Postgres) -> None:
    config = _config(postgres_port=postgres.port)
    with pytest.raises(SinkUnavailable, match="password authentication failed"):
        connect_postgres(config, Secrets(postgres_password="wrong", pii_hash_key="k"), attempts=1)


def test_right_credentials_connect(postgres: Postgres) -> None:
    conn = connect_postgres(
        _config(postgres_port=postgres.port),
        Secrets(postgres_password=postgres.password, pii_hash_key="k"),
    )
    with conn.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone() == ("postgres",)
    conn.close()


def test_unreachable_kafka_is_retried_then_reported() -> None:
    config = _config()
    with pytest.raises(SourceUnavailable, match="--kafka-bootstrap-servers"):
        wait_for_kafka(config, attempts=2, first_delay=0.1)


@pytest.mark.parametrize("key", [None, "", "  "], ids=["unset", "empty", "blank"])
def test_a_missing_pii_key_stops_the_job_before_it_connects(key: str | None) -> None:
    config = _config()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAGESTREAM_PII_HASH_KEY")}
    env["PAGESTREAM_POSTGRES_PASSWORD"] = "x"
    if key is not None:
        env["PAGESTREAM_PII_HASH_KEY"] = key
    with pytest.raises(JobConfigError, match="PAGESTREAM_PII_HASH_KEY is required"):
        JobConfig.from_env_and_args(config.to_args(), env)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pagestream_spark.main", *config.to_args()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr  # invalid configuration, as other startup errors
    assert f"invalid configuration: {PII_HASH_KEY_REQUIRED}" in proc.stderr
    # Refused at once: no retries against the (unreachable) Kafka and PostgreSQL.
    assert time.monotonic() - started < 60
    assert "not reachable" not in proc.stderr
