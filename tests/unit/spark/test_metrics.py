"""The job's Prometheus metrics, fed from streaming progress and committed batches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from prometheus_client import generate_latest

from pagestream_spark.metrics import FRESHNESS_BUCKETS, JobMetrics
from pagestream_spark.sink.writer import BatchOutcome


def test_freshness_histogram_takes_whole_arrays() -> None:
    metrics = JobMetrics("demo", watermark_delay_seconds=7200)
    metrics.freshness.observe_many(np.array([0.1, 0.3, 1.5, 1.5, 7200.0, 1e9]))
    text = generate_latest(metrics.registry).decode()
    assert 'pagestream_job_freshness_seconds_bucket{le="0.25",pipeline="demo"} 1.0' in text
    assert 'pagestream_job_freshness_seconds_bucket{le="2",pipeline="demo"} 4.0' in text
    assert 'pagestream_job_freshness_seconds_bucket{le="+Inf",pipeline="demo"} 6.0' in text
    assert 'pagestream_job_freshness_seconds_count{pipeline="demo"} 6.0' in text
    assert len(FRESHNESS_BUCKETS) == text.count("pagestream_job_freshness_seconds_bucket") - 1


def test_every_outcome_and_reason_series_exists_from_the_start() -> None:
    text = generate_latest(JobMetrics("demo", watermark_delay_seconds=7200).registry).decode()
    for outcome in ("stored", "duplicate", "dead_letter", "bot"):
        assert f'pagestream_job_records_total{{outcome="{outcome}",pipeline="demo"}} 0.0' in text
    for reason in ("oversize", "parse_error", "schema_violation", "invalid_timestamp"):
        assert f'pagestream_job_dead_letters_total{{pipeline="demo",reason="{reason}"}} 0.0' in text


def test_progress_updates_rates_lag_and_batch_duration() -> None:
    metrics = JobMetrics("demo", watermark_delay_seconds=7200)
    metrics.record_progress(
        {
            "numInputRows": 500,
            "inputRowsPerSecond": 250.0,
            "processedRowsPerSecond": 400.0,
            "durationMs": {"triggerExecution": 1250},
            "sources": [{"metrics": {"maxOffsetsBehindLatest": "42"}}],
        }
    )
    text = generate_latest(metrics.registry).decode()
    assert 'pagestream_job_input_rows_per_second{pipeline="demo"} 250.0' in text
    assert 'pagestream_job_kafka_offsets_behind_latest{pipeline="demo"} 42.0' in text
    assert 'pagestream_job_batch_duration_seconds_count{pipeline="demo"} 1.0' in text


def _outcome(batch_id: int, epochs: list[int]) -> BatchOutcome:
    return BatchOutcome(
        batch_id=batch_id,
        consumed=len(epochs),
        page_views=len(epochs),
        other_events=0,
        duplicates=0,
        dead_letters_by_reason={},
        bots=0,
        committed_at=1_800_000_000.0,
        stored_page_view_epochs=pa.array(epochs, pa.int64()),
    )


def test_page_views_behind_the_watermark_are_counted_late_and_still_stored() -> None:
    metrics = JobMetrics("demo", watermark_delay_seconds=3600)
    hour = 3600
    newest = 1_799_990_000
    # The first batch sets the watermark; none of its own events is late against it.
    metrics.record_batch(_outcome(0, [newest - 5 * hour, newest]))
    # Against newest - 1 h: 2 h late is late, 59 minutes late is not, newer events are not.
    metrics.record_batch(_outcome(1, [newest - 2 * hour, newest - hour + 60, newest + 10]))
    # The watermark moved 10 s with batch 1's newest event: 59m55s behind the old newest is
    # now late.
    metrics.record_batch(_outcome(2, [newest - hour + 5]))
    text = generate_latest(metrics.registry).decode()
    assert 'pagestream_job_late_page_views_total{pipeline="demo"} 2.0' in text
    assert 'pagestream_job_records_total{outcome="stored",pipeline="demo"} 6.0' in text
    assert 'pagestream_job_stored_events_total{kind="page_view",pipeline="demo"} 6.0' in text


def test_a_restarted_job_starts_its_watermark_from_the_database() -> None:
    metrics = JobMetrics("demo", watermark_delay_seconds=60)
    metrics.newest_event_committed(1_799_990_000.0)
    metrics.record_batch(_outcome(0, [1_799_990_000 - 61, 1_799_990_000 - 60]))
    text = generate_latest(metrics.registry).decode()
    assert 'pagestream_job_late_page_views_total{pipeline="demo"} 1.0' in text


def test_ingest_latency_is_commit_time_minus_the_kafka_timestamp_in_milliseconds() -> None:
    metrics = JobMetrics("demo", watermark_delay_seconds=3600)
    committed_at = 1_800_000_000.0
    outcome = BatchOutcome(
        batch_id=0,
        consumed=3,
        page_views=3,
        other_events=0,
        duplicates=0,
        dead_letters_by_reason={},
        bots=0,
        committed_at=committed_at,
        # Whole-second event times: freshness sees 1.0-1.9 s where the pipeline took less.
        stored_page_view_epochs=pa.array([1_799_999_998, 1_799_999_999, 1_799_999_999], pa.int64()),
        stored_page_view_kafka_ms=pa.array(
            [1_799_999_999_700, 1_799_999_999_400, None], pa.int64()
        ),
    )
    metrics.record_batch(outcome)
    text = generate_latest(metrics.registry).decode()
    latency = 'pagestream_job_ingest_latency_seconds_bucket{le="%s",pipeline="demo"} %s'
    assert latency % ("0.25", "0.0") in text
    assert latency % ("0.5", "1.0") in text  # 0.3 s
    assert latency % ("0.75", "2.0") in text  # 0.6 s; the record without a timestamp is skipped
    assert 'pagestream_job_ingest_latency_seconds_count{pipeline="demo"} 2.0' in text
    assert 'pagestream_job_freshness_seconds_count{pipeline="demo"} 3.0' in text
    assert 'pagestream_job_freshness_seconds_bucket{le="1",pipeline="demo"} 2.0' in text
