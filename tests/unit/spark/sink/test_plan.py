"""The sink's plan, its Arrow-side computations, on small tables (the SQL side is tested
against the real PostgreSQL in tests/integration/streaming)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from pagestream_spark.enrich.product_page import product_page
from pagestream_spark.sink import plan
from pagestream_spark.sink.plan import StoredPage, page_view_rollups, split_first_occurrences
from pagestream_spark.sink.schema import (
    MINUTE_DIMENSIONS,
    PRODUCT_STAGE_COLUMNS,
    ROLLUP_DIMENSIONS,
)

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
            "device_class": ["desktop"] * 4 + ["mobile"],
            "referrer_domain": [None, "google.com", None, "google.com", None],
            "utm_source_n": [None, "news", None, None, None],
            "utm_medium_n": [None, "email", None, None, None],
            "utm_campaign": [None, "winter", None, None, None],
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
    assert rows[("minute", start + minute, "country", "FR")] == 1
    assert rows[("minute", start + 59 * minute, "store", "s")] == 1
    assert rows[("hour", start, "product", "p1")] == 3
    assert rows[("hour", start, "total", "")] == 4
    assert rows[("hour", start + hour, "store", "t")] == 1
    assert rows[("hour", start, "browser_os", "Firefox / Linux")] == 3
    assert rows[("hour", start, "country", "DE")] == 1
    # Composite values: their columns joined by U+001F, a missing one as ''.
    assert rows[("hour", start, "referrer", "google.com\x1fdirect")] == 2
    assert rows[("hour", start, "referrer", "\x1fdirect")] == 2
    assert rows[("hour", start, "country_store", "FR\x1fs")] == 3
    assert rows[("hour", start, "campaign", "news\x1femail\x1fwinter")] == 1
    assert rows[("hour", start, "campaign", "\x1f\x1f")] == 3
    assert rows[("hour", start + hour, "device_class", "mobile")] == 1
    assert rows[("minute", start + 60 * minute, "device_class", "mobile")] == 1
    # Many-valued dimensions are counted per hour only.
    assert {d for g, _, d, _ in rows if g == "minute"} == set(MINUTE_DIMENSIONS)
    assert {d for g, _, d, _ in rows if g == "hour"} == set(ROLLUP_DIMENSIONS)
    assert {d for g, _, d, _ in rows if g == "day"} == set(ROLLUP_DIMENSIONS)
    day = dt.datetime.fromtimestamp(T0 - T0 % 86_400, dt.UTC)
    assert rows[("day", day, "product", "p1")] == 4
    # Every grain and dimension sums to the number of page views.
    for grain, dimensions in (
        ("minute", MINUTE_DIMENSIONS),
        ("hour", ROLLUP_DIMENSIONS),
        ("day", ROLLUP_DIMENSIONS),
    ):
        for dimension in dimensions:
            total = sum(v for (g, _, d, _), v in rows.items() if (g, d) == (grain, dimension))
            assert total == page_views.num_rows, (grain, dimension)


def test_visitor_day_devices_are_each_utc_day_and_device_once() -> None:
    midnight = T0 - T0 % 86_400 + 86_400
    page_views = pa.table(
        {
            "event_epoch": [midnight - 1, midnight - 2, midnight, midnight + 5, midnight - 1],
            "device_key": [7, 7, 7, 7, -3],
        }
    )
    rows = plan.visitor_day_devices(page_views).to_pylist()
    day = dt.datetime.fromtimestamp(midnight, dt.UTC).date()
    assert sorted((r["day"], r["device_key"]) for r in rows) == [
        (day - dt.timedelta(days=1), -3),
        (day - dt.timedelta(days=1), 7),
        (day, 7),
    ]


def test_first_occurrence_of_an_id_is_kept_and_later_ones_are_duplicates() -> None:
    events = pa.table(
        {
            "kafka_topic": ["t"] * 4,
            "kafka_partition": pa.array([0, 0, 1, 0], pa.int32()),
            "kafka_offset": [1, 2, 3, 4],
            "event_id": ["a", "b", "a", "a"],
            "event_epoch": [T0, T0 + 1, T0 + 2, T0 + 3],
        }
    )
    firsts, later = split_first_occurrences(events)
    assert firsts.column("kafka_offset").to_pylist() == [1, 2]
    assert later.column("kafka_offset").to_pylist() == [3, 4]


def test_the_same_id_on_another_utc_day_is_another_event() -> None:
    """The dedup key is (id, UTC day): a retry carries the same time_stamp, so the same day;
    an id reused with a time_stamp on another day is a new event (docs/streaming-job.md)."""
    day = 86_400
    midnight = T0 - T0 % day
    events = pa.table(
        {
            "kafka_topic": ["t"] * 4,
            "kafka_partition": pa.array([0, 0, 0, 0], pa.int32()),
            "kafka_offset": [1, 2, 3, 4],
            "event_id": ["a", "a", "a", "a"],
            # Same day twice (a second apart, across no midnight), then the next day, then the
            # last second of the first day.
            "event_epoch": [midnight + 5, midnight + 6, midnight + day, midnight + day - 1],
        }
    )
    firsts, later = split_first_occurrences(events)
    assert firsts.column("kafka_offset").to_pylist() == [1, 3]
    assert later.column("kafka_offset").to_pylist() == [2, 4]


def _page_views(rows: list[tuple[int, str | None, int]], bot: bool = False) -> pa.Table:
    """Page views of (product key, product URL, event time); product ids are "p<key>"."""
    return pa.table(
        {
            "product_key": pa.array([key for key, _, _ in rows], pa.int64()),
            "product_id": [f"p{key}" for key, _, _ in rows],
            "product_url": pa.array([url for _, url, _ in rows], pa.string()),
            "event_epoch": pa.array([epoch for _, _, epoch in rows], pa.int64()),
            "is_bot": pa.array([bot] * len(rows), pa.bool_()),
        }
    )


DE = "https://www.lumera.de/lumera-ring-luno-skum1.html"
DE_RENAMED = "https://www.lumera.de/lumera-ring-luxa-skum1.html"
DE_BARE = "https://lumera.de/lumera-ring-luno-skum1.html"
FR = "https://www.lumera.fr/lumera-bague-luno-skum1.html"


def test_candidates_are_the_newest_page_per_product_and_host() -> None:
    views = _page_views(
        [
            (1, DE, T0 + 10),
            (1, DE_RENAMED, T0 + 30),
            (1, DE, T0 + 20),  # older than the renamed page: not the newest
            (1, DE_BARE, T0 + 5),  # the same host without www.: seen first
            (1, FR, T0 + 40),
            (2, FR, T0 + 7),
            (2, None, T0 + 50),  # no product page
        ]
    )
    rows = sorted(
        plan.product_page_candidates(views).to_pylist(),
        key=lambda r: (r["product_key"], r["url_host"]),
    )
    assert rows == [
        {
            "product_key": 1,
            "product_id": "p1",
            "product_url": DE_RENAMED,
            "url_host": "lumera.de",
            "url_epoch": T0 + 30,
            "first_epoch": T0 + 5,
        },
        {
            "product_key": 1,
            "product_id": "p1",
            "product_url": FR,
            "url_host": "lumera.fr",
            "url_epoch": T0 + 40,
            "first_epoch": T0 + 40,
        },
        {
            "product_key": 2,
            "product_id": "p2",
            "product_url": FR,
            "url_host": "lumera.fr",
            "url_epoch": T0 + 7,
            "first_epoch": T0 + 7,
        },
    ]


def test_at_the_same_event_time_the_greater_url_is_the_newest() -> None:
    views = _page_views([(1, DE, T0), (1, DE_RENAMED, T0)])
    (row,) = plan.product_page_candidates(views).to_pylist()
    assert row["product_url"] == max(DE, DE_RENAMED) == DE_RENAMED


def _fresh(keys: list[int | None]) -> pa.Table:
    return pa.table(
        {
            "product_key": pa.array(keys, pa.int64()),
            "product_id": pa.array([None if k is None else f"p{k}" for k in keys], pa.string()),
        }
    )


def test_product_rows_stage_labels_and_one_bare_row_per_product_without_a_page() -> None:
    views = _page_views([(1, DE, T0 + 10), (1, FR, T0 + 20)])
    fresh = _fresh([1, 1, 3, 3, None])  # 3: only other events; None: no product at all
    rows = plan.product_rows(fresh, views, {})
    assert rows.schema.names == [c for c, _ in PRODUCT_STAGE_COLUMNS]
    assert sorted(rows.to_pylist(), key=lambda r: (r["product_key"], r["url_host"] or "")) == [
        {
            "product_key": 1,
            "product_id": "p1",
            "product_url": DE,
            "product_label": "Lumera Ring Luno",
            "url_host": "lumera.de",
            "url_epoch": T0 + 10,
            "first_epoch": T0 + 10,
        },
        {
            "product_key": 1,
            "product_id": "p1",
            "product_url": FR,
            "product_label": "Lumera Bague Luno",
            "url_host": "lumera.fr",
            "url_epoch": T0 + 20,
            "first_epoch": T0 + 20,
        },
        {
            "product_key": 3,
            "product_id": "p3",
            "product_url": None,
            "product_label": None,
            "url_host": None,
            "url_epoch": None,
            "first_epoch": None,
        },
    ]


def test_committed_pages_stage_only_what_can_move_them_forward() -> None:
    views = _page_views(
        [
            (1, DE_RENAMED, T0 + 30),  # later on its host: staged
            (1, FR, T0 + 90),  # another host than the one it is pinned to: never staged
            (2, DE, T0 + 10),  # as old as the stored page: nothing to move
            (4, DE, T0 + 5),  # the stored page is later: a late page view
            (5, DE, T0 + 5),  # known without a page yet: staged
            (6, DE, T0 + 5),  # unknown: staged
        ]
    )
    known = {
        1: StoredPage("lumera.de", T0 + 20, DE),
        2: StoredPage("lumera.de", T0 + 10, DE),
        4: StoredPage("lumera.de", T0 + 50, DE_RENAMED),
        5: None,
        7: None,  # known, no page view in the batch: no bare row either
    }
    rows = plan.product_rows(_fresh([1, 2, 4, 5, 6, 7, 8]), views, known)
    staged = {(r["product_key"], r["product_url"]) for r in rows.to_pylist()}
    assert staged == {(1, DE_RENAMED), (5, DE), (6, DE), (8, None)}


def test_the_same_url_at_the_same_time_is_not_staged_again() -> None:
    views = _page_views([(1, DE, T0 + 10)])
    known = {1: StoredPage("lumera.de", T0 + 10, DE)}
    assert plan.product_rows(_fresh([1]), views, known).num_rows == 0
    # but a greater URL at the same time is later
    views = _page_views([(1, DE_RENAMED, T0 + 10)])
    assert plan.product_rows(_fresh([1]), views, known).num_rows == 1


def test_a_crawlers_page_view_is_no_candidate() -> None:
    """Crawlers fetch old URLs long after a page moved; with bot filtering off their views are
    stored as page views, but never move a product's page."""
    views = _page_views([(1, DE, T0 + 10)], bot=True)
    assert plan.product_page_candidates(views).num_rows == 0
    rows = plan.product_rows(_fresh([1]), views, {})
    assert rows.to_pylist()[0]["product_url"] is None  # the product has its row, no page


def test_the_sinks_host_of_a_url_is_the_pages_host() -> None:
    """plan finds the host of a whole column of canonical URLs with one regex: it agrees with
    enrich.product_page, which decided the URLs."""
    hosts = ["https://www.glamira.fr", "http://glamira.de", "https://WWW.A.B:8080", "https://www.x"]
    hosts += ["http://user:pw@Www.Shop.co.uk.", "https://m\u00fcnchen.de", "https://wwwx.de"]
    paths = ["/ring-saphira-sku1.html", "/%C3%A9t%C3%A9.html", "/a/b/c-d", "/www.ring.html"]
    urls = [host + path + query for host in hosts for path in paths for query in ("", "?q=1")]
    pages = [p for p in map(product_page, urls) if p is not None]
    assert len(pages) == len(urls)
    found = pc.struct_field(
        pc.extract_regex(pa.array([p.url for p in pages]), plan._URL_HOST), "host"
    )
    assert found.to_pylist() == [p.host for p in pages]
