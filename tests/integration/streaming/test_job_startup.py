"""Start-up against servers that are not there: retries with backoff, then a clear error."""

from __future__ import annotations

import time

import pytest

from pagestream.stack.postgres import Postgres
from pagestream.stack.process import free_port
from pagestream_common.jobconfig import JobConfig, Secrets
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
        connect_postgres(config, Secrets(postgres_password="x"), attempts=3, first_delay=0.2)
    assert time.monotonic() - started >= 0.2 + 0.4  # it did back off between attempts
    message = str(info.value)
    assert f"127.0.0.1:{config.postgres_port}/pagestream" in message
    assert "PAGESTREAM_POSTGRES_" in message
    assert sum("PostgreSQL not reachable" in r.getMessage() for r in caplog.records) == 3


def test_wrong_password_names_what_to_check(postgres: Postgres) -> None:
    config = _config(postgres_port=postgres.port)
    with pytest.raises(SinkUnavailable, match="password authentication failed"):
        connect_postgres(config, Secrets(postgres_password="wrong"), attempts=1)


def test_right_credentials_connect(postgres: Postgres) -> None:
    conn = connect_postgres(
        _config(postgres_port=postgres.port), Secrets(postgres_password=postgres.password)
    )
    with conn.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone() == ("postgres",)
    conn.close()


def test_unreachable_kafka_is_retried_then_reported() -> None:
    config = _config()
    with pytest.raises(SourceUnavailable, match="--kafka-bootstrap-servers"):
        wait_for_kafka(config, attempts=2, first_delay=0.1)
