"""The sink's plan, its Arrow-side computations, on small tables (the SQL side is tested
against the real PostgreSQL in tests/integration/streaming)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from pagestream_spark.sink.plan import page_view_rollups, split_first_occurrences

T0 = 1_800_000_000 - 1_800_000_000 % 3600  # an hour boundary


def test_rollups_count_each_page_view_once_per_dimension_minute_and_hour() -> None:
    page_views = pa.table(
        {
            "event_epoch": [T0 + 5, T0 + 50, T0 + 61, T0 + 3599, T0 + 3600],
            "product_id": ["p1", "p1", "p2", "p1", "p1"],
            "store_id": ["s", "s", "s", "s", "t"],
            "country_code": ["FR", "DE", "FR", "FR", "FR"],
            "referrer_medium": ["direct"] * 5,
            "browser": ["Firefox", "Chrome", "Firefox", "Firefox", "Firefox"],
            "os": ["Linux"] * 5,
        }
    )
    rows = {
        (r["grain"], r["bucket"], r["dimension"], r["value"]): r["views"]
        for r in page_view_rollups(page_views).to_pylist()
    }
    start = dt.datetime.fromtimestamp(T0, dt.UTC)
    minute = dt.timedelta(minutes=1)
    hour = dt.timedelta(hours=1)
    assert rows[("minute", start, "total", "")] == 2
    assert rows[("minute", start + minute, "product", "p2")] == 1
    assert rows[("minute", start + 59 * minute, "product", "p1")] == 1
    assert rows[("hour", start, "product", "p1")] == 3
    assert rows[("hour", start, "total", "")] == 4
    assert rows[("hour", start + hour, "store", "t")] == 1
    assert rows[("hour", start, "browser_os", "Firefox / Linux")] == 3
    assert rows[("hour", start, "country", "DE")] == 1
    # Every grain and dimension sums to the number of page views.
    for grain in ("minute", "hour"):
        for dimension in ("total", "product", "store", "country", "referrer_medium", "browser_os"):
            total = sum(v for (g, _, d, _), v in rows.items() if (g, d) == (grain, dimension))
            assert total == page_views.num_rows, (grain, dimension)


def test_first_occurrence_of_an_id_is_kept_and_later_ones_are_duplicates() -> None:
    events = pa.table(
        {
            "kafka_topic": ["t"] * 4,
            "kafka_partition": pa.array([0, 0, 1, 0], pa.int32()),
            "kafka_offset": [1, 2, 3, 4],
            "event_id": ["a", "b", "a", "a"],
        }
    )
    firsts, later = split_first_occurrences(events)
    assert firsts.column("kafka_offset").to_pylist() == [1, 2]
    assert later.column("kafka_offset").to_pylist() == [3, 4]
