"""The job's Prometheus metrics, served by the driver.

One registry per job (no process-global state). Names follow Prometheus conventions
(``_total`` counters, base units) and are checked by ``promtool check metrics`` in the tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from pagestream_spark.sink import BatchOutcome
from pagestream_spark.validate import DEAD_LETTER_REASONS

# Fine around the 1-5 s that a live pipeline should stay within (its 2 s target included),
# so quantiles there are not interpolated across a wide bucket.
FRESHNESS_BUCKETS = (
    0.25,
    0.5,
    0.75,
    1.0,
    1.25,
    1.5,
    1.75,
    2.0,
    2.5,
    3.0,
    4.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    21600.0,
    86400.0,
)
OUTCOMES = ("stored", "duplicate", "dead_letter", "bot")


class BulkHistogram(Collector):
    """A histogram fed a whole array at once: one numpy pass per batch instead of a Python
    ``observe`` call per event."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], labels: dict[str, str]
    ):
        self.name, self.documentation, self.labels = name, documentation, labels
        self.bounds = np.asarray(buckets, dtype=float)
        self.counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # last: +Inf
        self.total = 0.0
        self.lock = threading.Lock()

    def observe_many(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        idx = np.searchsorted(self.bounds, values, side="left")
        with self.lock:
            self.counts += np.bincount(idx, minlength=len(self.counts))
            self.total += float(values.sum())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self.lock:
            cumulative = np.cumsum(self.counts)
            total = self.total
        family = HistogramMetricFamily(self.name, self.documentation, labels=list(self.labels))
        buckets = [(f"{b:g}", int(c)) for b, c in zip(self.bounds, cumulative[:-1], strict=True)]
        buckets.append(("+Inf", int(cumulative[-1])))
        family.add_metric(list(self.labels.values()), buckets, total)
        yield family


class JobMetrics:
    def __init__(
        self,
        pipeline: str,
        registry: CollectorRegistry | None = None,
        *,
        watermark_delay_seconds: float,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.pipeline = pipeline
        self.watermark_delay_seconds = watermark_delay_seconds
        r, lp = self.registry, ["pipeline"]
        self.records = Counter(
            "pagestream_job_records",
            "Consumed records by outcome",
            ["pipeline", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "pagestream_job_dead_letters",
            "Dead-lettered records by reason",
            ["pipeline", "reason"],
            registry=r,
        )
        self.stored_events = Counter(
            "pagestream_job_stored_events",
            "Stored events by kind",
            ["pipeline", "kind"],
            registry=r,
        )
        self.batches = Counter(
            "pagestream_job_batches", "Micro-batches by result", ["pipeline", "result"], registry=r
        )
        self.input_rate = Gauge(
            "pagestream_job_input_rows_per_second",
            "Input rate of the last micro-batch",
            lp,
            registry=r,
        )
        self.processed_rate = Gauge(
            "pagestream_job_processed_rows_per_second",
            "Processing rate of the last micro-batch",
            lp,
            registry=r,
        )
        self.batch_duration = Histogram(
            "pagestream_job_batch_duration_seconds",
            "Wall time of a micro-batch, Kafka read to PostgreSQL commit",
            lp,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.offsets_behind = Gauge(
            "pagestream_job_kafka_offsets_behind_latest",
            "Records in the topic not yet read (max over partitions, from the Kafka source)",
            lp,
            registry=r,
        )
        self.watermark_delay = Gauge(
            "pagestream_job_watermark_delay_seconds",
            "Now minus the newest event time committed (the job's event-time watermark; later "
            "events are still counted, never dropped)",
            lp,
            registry=r,
        )
        self.late_page_views = Counter(
            "pagestream_job_late_page_views",
            "Page views stored although their event time was more than the watermark delay "
            "behind the newest page view committed before their batch (stored and counted like "
            "any other; lateness never drops an event)",
            lp,
            registry=r,
        )
        self.last_commit = Gauge(
            "pagestream_job_last_commit_timestamp_seconds",
            "Unix time of the last committed micro-batch",
            lp,
            registry=r,
        )
        self.last_batch_id = Gauge(
            "pagestream_job_last_committed_batch_id",
            "Id of the last committed micro-batch",
            lp,
            registry=r,
        )
        self.freshness = BulkHistogram(
            "pagestream_job_freshness_seconds",
            "Commit time minus event time of stored page views",
            FRESHNESS_BUCKETS,
            {"pipeline": pipeline},
        )
        self.registry.register(self.freshness)
        # Event times are whole seconds (the contract), so freshness carries up to a second of
        # stamping on top of the pipeline's own delay; the Kafka record timestamp (the
        # producer's send time, in milliseconds) shows that delay alone.
        self.ingest_latency = BulkHistogram(
            "pagestream_job_ingest_latency_seconds",
            "Commit time minus Kafka record timestamp of stored page views",
            FRESHNESS_BUCKETS,
            {"pipeline": pipeline},
        )
        self.registry.register(self.ingest_latency)
        self._max_event_epoch: float | None = None
        # Every labelled series exists from the start, so rates and alerts see zeros, not gaps.
        for outcome in OUTCOMES:
            self.records.labels(pipeline, outcome)
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(pipeline, reason)
        for kind in ("page_view", "other"):
            self.stored_events.labels(pipeline, kind)
        for result in ("committed", "replay_skipped"):
            self.batches.labels(pipeline, result)
        # Histograms too: otherwise a series born between two scrapes with its first batches
        # already counted never shows a rate (Prometheus sees it start at its final value).
        self.batch_duration.labels(pipeline)
        self.late_page_views.labels(pipeline)
        self.watermark_delay.labels(pipeline).set_function(self._watermark_delay)

    def _watermark_delay(self) -> float:
        return (
            0.0 if self._max_event_epoch is None else max(0.0, time.time() - self._max_event_epoch)
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)

    def record_batch(self, outcome: BatchOutcome) -> None:
        p = self.pipeline
        self.records.labels(p, "stored").inc(outcome.stored)
        self.records.labels(p, "duplicate").inc(outcome.duplicates)
        self.records.labels(p, "dead_letter").inc(outcome.dead_lettered)
        self.records.labels(p, "bot").inc(outcome.bots)
        self.stored_events.labels(p, "page_view").inc(outcome.page_views)
        self.stored_events.labels(p, "other").inc(outcome.other_events)
        for reason, count in outcome.dead_letters_by_reason.items():
            self.dead_letters.labels(p, reason).inc(count)
        self.batches.labels(p, "committed").inc()
        self.last_commit.labels(p).set(outcome.committed_at)
        self.last_batch_id.labels(p).set(outcome.batch_id)
        if outcome.stored_page_view_epochs is not None and len(outcome.stored_page_view_epochs):
            epochs = outcome.stored_page_view_epochs.to_numpy(zero_copy_only=False).astype(float)
            self.freshness.observe_many(outcome.committed_at - epochs)
            if self._max_event_epoch is not None:
                watermark = self._max_event_epoch - self.watermark_delay_seconds
                self.late_page_views.labels(p).inc(int((epochs < watermark).sum()))
            self.newest_event_committed(float(epochs.max()))
        kafka_ms = outcome.stored_page_view_kafka_ms
        if kafka_ms is not None and len(kafka_ms):
            sent = kafka_ms.to_numpy(zero_copy_only=False).astype(float) / 1000.0
            self.ingest_latency.observe_many(outcome.committed_at - sent[~np.isnan(sent)])

    def newest_event_committed(self, epoch: float) -> None:
        """Advance the event-time watermark (a restart starts from what is in the database)."""
        self._max_event_epoch = max(epoch, self._max_event_epoch or epoch)

    def record_progress(self, progress: dict[str, Any]) -> None:
        p = self.pipeline
        if progress.get("numInputRows", 0) == 0 and not progress.get("sources"):
            return
        self.input_rate.labels(p).set(float(progress.get("inputRowsPerSecond") or 0.0))
        self.processed_rate.labels(p).set(float(progress.get("processedRowsPerSecond") or 0.0))
        duration_ms = (progress.get("durationMs") or {}).get("triggerExecution")
        if duration_ms is not None and progress.get("numInputRows", 0) > 0:
            self.batch_duration.labels(p).observe(duration_ms / 1000.0)
        behind = [
            float(src["metrics"]["maxOffsetsBehindLatest"])
            for src in progress.get("sources") or []
            if (src.get("metrics") or {}).get("maxOffsetsBehindLatest") not in (None, "")
        ]
        if behind:
            self.offsets_behind.labels(p).set(max(behind))
