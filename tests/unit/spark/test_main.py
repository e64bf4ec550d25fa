"""What the job logs when its streaming query fails: the line that says why, out of a message
that also holds the whole query plan, and a hint when the cause is one a user can fix."""

from __future__ import annotations

import logging

import pytest

import pagestream_spark.main as job_main
from pagestream_common.jobconfig import JobConfig
from pagestream_spark.main import explain_query_failure

SASL_FAILURE = """[STREAM_FAILED] Query [id = 180a9e72, runId = da4ef1be] terminated with exception: \
org.apache.kafka.common.errors.SaslAuthenticationException: Authentication failed during \
authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512
=== Streaming Query ===
Identifier: pagestream_orders [id = 180a9e72, runId = da4ef1be]
Current Committed Offsets: {}

Logical Plan:
~WriteToMicroBatchDataSourceV1 ForeachBatchSink, 180a9e72, Append
"""

SINK_FAILURE = """[STREAM_FAILED] Query [id = 1, runId = 2] terminated with exception: \
[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function in \
foreach batch sink. Reason: An exception was raised by the Python Proxy. Return Message: \
Traceback (most recent call last):
  File "/app/pagestream_spark/main.py", line 301, in process_batch
    outcome = self._on_postgres(sink, lambda: sink.commit_batch(batch_id, rows), batch_id)
pagestream_spark.main.SinkUnavailable: cannot connect to PostgreSQL at pg:5432/pagestream: \
connection refused; check the host, port and PAGESTREAM_POSTGRES_* credentials
=== Streaming Query ===
"""


def test_a_refused_kafka_login_names_the_credentials_to_check() -> None:
    cause, hint = explain_query_failure(SASL_FAILURE)
    assert cause.startswith("org.apache.kafka.common.errors.SaslAuthenticationException")
    assert "SCRAM-SHA-512" in cause
    assert hint is not None and "PAGESTREAM_KAFKA_SASL_PASSWORD" in hint


def test_the_jobs_own_error_in_a_batch_is_reported_as_written() -> None:
    cause, hint = explain_query_failure(SINK_FAILURE)
    assert cause == (
        "cannot connect to PostgreSQL at pg:5432/pagestream: connection refused; check the host,"
        " port and PAGESTREAM_POSTGRES_* credentials"
    )
    assert hint is None


def test_an_unrecognised_failure_is_its_first_line() -> None:
    assert explain_query_failure("something odd\nmore") == ("something odd", None)
    assert explain_query_failure("") == ("unknown error", None)


def test_the_job_refuses_to_start_without_a_pii_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Exit code 2 (invalid configuration) before anything starts, naming what to set."""
    for var in ("PAGESTREAM_PII_HASH_KEY", "PAGESTREAM_PII_HASH_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    # main() installs its own root handler; keep pytest's so the log line is captured.
    monkeypatch.setattr(job_main, "configure_logging", lambda *args, **kwargs: None)
    args = JobConfig(
        pipeline_name="p",
        kafka_bootstrap_servers="127.0.0.1:1",
        kafka_topic="t",
        postgres_host="127.0.0.1",
        checkpoint_location="/tmp/unused",
    ).to_args()
    with caplog.at_level(logging.ERROR, logger="pagestream_spark"):
        assert job_main.main(args) == 2
    assert "invalid configuration: PAGESTREAM_PII_HASH_KEY is required" in caplog.text
    assert "spec.processing.pii.hashKeySecretRef" in caplog.text
