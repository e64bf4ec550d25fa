from __future__ import annotations

import numpy as np
from prometheus_client import generate_latest

from pagestream_spark.metrics import FRESHNESS_BUCKETS, JobMetrics
from pagestream_spark.migrate import available_migrations


def test_migrations_are_numbered_without_gaps_and_named() -> None:
    migrations = available_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert [m.name for m in migrations[:2]] == ["star_schema", "reports"]
    assert all(len(m.checksum) == 64 for m in migrations)


def test_freshness_histogram_takes_whole_arrays() -> None:
    metrics = JobMetrics("demo")
    metrics.freshness.observe_many(np.array([0.1, 0.3, 1.5, 1.5, 7200.0, 1e9]))
    text = generate_latest(metrics.registry).decode()
    assert 'pagestream_job_freshness_seconds_bucket{le="0.25",pipeline="demo"} 1.0' in text
    assert 'pagestream_job_freshness_seconds_bucket{le="2",pipeline="demo"} 4.0' in text
    assert 'pagestream_job_freshness_seconds_bucket{le="+Inf",pipeline="demo"} 6.0' in text
    assert 'pagestream_job_freshness_seconds_count{pipeline="demo"} 6.0' in text
    assert len(FRESHNESS_BUCKETS) == text.count("pagestream_job_freshness_seconds_bucket") - 1


def test_every_outcome_and_reason_series_exists_from_the_start() -> None:
    text = generate_latest(JobMetrics("demo").registry).decode()
    for outcome in ("stored", "duplicate", "dead_letter", "bot"):
        assert f'pagestream_job_records_total{{outcome="{outcome}",pipeline="demo"}} 0.0' in text
    for reason in ("oversize", "parse_error", "schema_violation", "invalid_timestamp"):
        assert f'pagestream_job_dead_letters_total{{pipeline="demo",reason="{reason}"}} 0.0' in text


def test_progress_updates_rates_lag_and_batch_duration() -> None:
    metrics = JobMetrics("demo")
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
