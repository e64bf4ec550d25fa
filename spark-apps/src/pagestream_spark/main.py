"""The streaming job: Kafka → validate/enrich → PostgreSQL star schema, exactly once.

Run by spark-submit (``spark-apps/main.py``) or ``python -m pagestream_spark.main`` with the
flags of :class:`pagestream_common.jobconfig.JobConfig`; secrets from the environment.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pagestream_common.jobconfig import JobConfig, JobConfigError, Secrets, duration_seconds
from pagestream_common.logs import configure_logging
from pagestream_spark.metrics import JobMetrics
from pagestream_spark.options import ProcessingOptions
from pagestream_spark.sink import BatchLedger, PostgresConnection, PostgresSink, SinkUnavailable
from pagestream_spark.sink.connection import connect_postgres
from pagestream_spark.sink.partitions import DayPartitions
from pagestream_spark.sink.retention import Retention, RetentionLoop, RetentionPolicy
from pagestream_spark.source import (
    SourceUnavailable,
    check_kafka_tls,
    load_kafka_ca,
    read_kafka_stream,
    wait_for_kafka,
)
from pagestream_spark.transform import prepare_batch, unpack_sink_rows, warm_up_python_workers

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

log = logging.getLogger("pagestream_spark")


# Causes a user can fix, recognised in a failed query's message, and what to check.
_FAILURE_HINTS = (
    (
        "SaslAuthenticationException",
        "Kafka refused the credentials: check PAGESTREAM_KAFKA_SASL_USERNAME and "
        "PAGESTREAM_KAFKA_SASL_PASSWORD (or their _FILE variants) and --kafka-sasl-mechanism",
    ),
    (
        "TopicAuthorizationException",
        "the Kafka user may not read the topic: grant it Read on the topic (a KafkaUser ACL)",
    ),
    (
        "UnknownTopicOrPartitionException",
        "the topic does not exist: check --kafka-topic, or create the topic",
    ),
)
_OWN_ERRORS = ("SinkUnavailable: ", "SourceUnavailable: ")


def explain_query_failure(message: str) -> tuple[str, str | None]:
    """(the line of a failed streaming query's long message that says why, a hint for the
    user or None). The message holds the whole plan and, for a batch that failed in Python,
    the traceback; the job's own errors already say what to check."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    cause = next(
        (
            line.split(marker, 1)[1]
            for line in reversed(lines)
            for marker in _OWN_ERRORS
            if marker in line
        ),
        None,
    )
    if cause is None:
        cause = next(
            (
                line.split("terminated with exception: ", 1)[1]
                for line in lines
                if "terminated with exception: " in line
            ),
            lines[0] if lines else "unknown error",
        )
    hint = next((text for marker, text in _FAILURE_HINTS if marker in message), None)
    return cause, hint


def read_query_id(spark: SparkSession, checkpoint: str) -> str:
    """The streaming query's id from ``<checkpoint>/metadata``: stable across restarts from one
    checkpoint, new for a new checkpoint. The sink keys its idempotence on (query id, batch id)."""
    jvm = spark._jvm
    # pyspark types it optional; a session that getOrCreate() returned has its JVM gateway.
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(checkpoint.rstrip("/") + "/metadata")
    fs = path.getFileSystem(spark._jsc.hadoopConfiguration())
    stream = fs.open(path)
    try:
        text = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()
    return str(json.loads(text.splitlines()[0])["id"])


@dataclass
class StreamingJob:
    config: JobConfig
    secrets: Secrets
    metrics: JobMetrics = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    # Made at the first batch: the ledger needs the query id, which the checkpoint holds once
    # the query has started.
    _sink: PostgresSink | None = field(default=None, init=False)
    # Shared by the sink (which makes partitions) and retention (which drops them).
    _partitions: DayPartitions = field(default_factory=DayPartitions, init=False)

    def __post_init__(self) -> None:
        self.metrics = JobMetrics(
            self.config.pipeline_name,
            watermark_delay_seconds=duration_seconds(self.config.watermark_delay),
        )

    def request_stop(self, signum: int | None = None, _frame: object = None) -> None:
        log.info("stop requested%s", f" by signal {signum}" if signum else "")
        self._stop.set()

    def prepare_database(self, connection: PostgresConnection) -> None:
        prepared = connection.prepare_schema(
            self.config.report_timezone, self.config.postgres_reader_role
        )
        if prepared.newest_page_view_epoch is not None:
            self.metrics.newest_event_committed(prepared.newest_page_view_epoch)
        log.info("schema ready", extra={"schema": connection.schema, "applied": prepared.applied})

    def run(self) -> int:
        from pyspark.sql import SparkSession

        cfg = self.config
        wait_for_kafka(cfg)
        kafka_ca = load_kafka_ca(cfg)
        check_kafka_tls(cfg, kafka_ca)
        connection = PostgresConnection.open(cfg, self.secrets)
        self.prepare_database(connection)
        spark = (
            SparkSession.builder.appName(f"pagestream-{cfg.pipeline_name}")
            # Trackers repeat keys now and then; the last value wins, as in most JSON parsers.
            .config("spark.sql.variant.allowDuplicateKeys", "true")
            .config("spark.ui.showConsoleProgress", "false")
            # Larger Arrow batches into the Python pass: more repeats of a URL, user agent or IP
            # within one batch, each enriched once (10k -> 50k: ~10% less CPU per record).
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", "50000")
            .getOrCreate()
        )
        self.metrics.serve(cfg.metrics_port)
        warm_up_python_workers(spark)
        options = ProcessingOptions.from_config(cfg, self.secrets)

        def process_batch(batch_df: DataFrame, batch_id: int) -> None:
            started = time.monotonic()
            if self._sink is None:
                ledger = BatchLedger(read_query_id(spark, cfg.checkpoint_location))
                self._sink = PostgresSink(connection, ledger, options, self._partitions)
            sink = self._sink
            if sink.already_committed(batch_id):
                self._skip_replay(batch_id)
                return
            prepared = prepare_batch(batch_df, options)
            rows = unpack_sink_rows(prepared.toArrow())
            prepared_at = time.monotonic()
            outcome = sink.commit_batch(batch_id, rows)
            if outcome is None:
                self._skip_replay(batch_id)
                return
            self.metrics.record_batch(outcome)
            log.info(
                "committed batch %d",
                batch_id,
                extra={
                    "consumed": outcome.consumed,
                    "page_views": outcome.page_views,
                    "other_events": outcome.other_events,
                    "duplicates": outcome.duplicates,
                    "dead_letters": outcome.dead_letters_by_reason,
                    "bots": outcome.bots,
                    "seconds": round(time.monotonic() - started, 3),
                    "prepare_seconds": round(prepared_at - started, 3),
                    "commit_steps": outcome.step_seconds,
                },
            )

        writer = (
            read_kafka_stream(spark, cfg, self.secrets, ca_pem=kafka_ca)
            .writeStream.queryName(f"pagestream_{cfg.pipeline_name}".replace("-", "_"))
            .foreachBatch(process_batch)
            .option("checkpointLocation", cfg.checkpoint_location)
        )
        if cfg.trigger_mode == "available-now":
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=cfg.trigger_interval)
        query = writer.start()
        log.info(
            "streaming query started", extra={"query_id": str(query.id), "topic": cfg.kafka_topic}
        )
        retention = RetentionLoop(
            Retention(
                functools.partial(connect_postgres, cfg, self.secrets),
                cfg.postgres_schema,
                RetentionPolicy(cfg.retention_days, cfg.rollup_retention_days),
                self._partitions,
            )
        )
        retention.start()
        try:
            return self._supervise(query)
        finally:
            retention.stop()
            connection.close()

    def _skip_replay(self, batch_id: int) -> None:
        """A batch the ledger holds already (Spark replays the last batch after a restart)."""
        log.info("batch %d already committed; skipping replay", batch_id)
        self.metrics.batches.labels(self.config.pipeline_name, "replay_skipped").inc()

    def _supervise(self, query: StreamingQuery) -> int:
        from pyspark.errors import StreamingQueryException

        last_progress_ts = None
        while query.isActive:
            progress = query.lastProgress
            if progress and progress.get("timestamp") != last_progress_ts:
                last_progress_ts = progress.get("timestamp")
                self.metrics.record_progress(progress)
            if self._stop.is_set():
                return self._graceful_stop(query)
            try:
                # pyspark annotates the timeout as int; its body takes float seconds too
                # (int(timeout * 1000) milliseconds).
                query.awaitTermination(0.5)  # type: ignore[arg-type]
            except StreamingQueryException:
                break  # reported below, once
        failure = query.exception()
        if failure is not None:
            cause, hint = explain_query_failure(str(failure))
            log.error("streaming query failed: %s", cause, extra={"hint": hint} if hint else {})
            return 1
        return 0

    def _graceful_stop(self, query: StreamingQuery, timeout: float = 120.0) -> int:
        """Let a running micro-batch finish (its transaction commits or was never begun), then
        stop. A batch cut short anyway rolls back and is replayed on the next start."""
        deadline = time.monotonic() + timeout
        while (
            query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        query.stop()
        log.info("streaming query stopped cleanly")
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    # py4j narrates every callback at INFO; keep the job's own log readable.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        config, secrets = JobConfig.from_env_and_args(sys.argv[1:] if argv is None else argv)
    except JobConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return 2
    job = StreamingJob(config, secrets)
    signal.signal(signal.SIGTERM, job.request_stop)
    signal.signal(signal.SIGINT, job.request_stop)
    try:
        return job.run()
    except (SourceUnavailable, SinkUnavailable) as exc:
        log.error("%s", exc)
        return 3


if __name__ == "__main__":
    sys.exit(main())
