"""One batch's writes, decided in Arrow without a database: which rows are events and which
dead letters, the first occurrence of each id in the batch, each new event's kind, the fact,
dimension, rollup, visitor-day, dead-letter and duplicate rows. Only the dedup against all
earlier batches needs PostgreSQL; its answer (``seen_before``) is this module's one input from
there. Pure functions, tested on small inline tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from pagestream_common.contract import PAGE_VIEW
from pagestream_spark.enrich.product_page import ProductPage, product_page
from pagestream_spark.sink.schema import (
    BATCH_DUPLICATE_COLUMNS,
    BOT_EVENT_COLUMNS,
    COMPOSITE_ROLLUPS,
    DEAD_SOURCE_COLUMNS,
    EVENT_COLUMNS,
    MINUTE_DIMENSIONS,
    OTHER_EVENT_COLUMNS,
    PAGE_VIEW_COLUMNS,
    PRODUCT_STAGE_COLUMNS,
    ROLLUP_COLUMNS,
    ROLLUP_DIMENSIONS,
    ROLLUP_SEPARATOR,
    Dimension,
)

_DUPLICATE_COLUMNS = [c for c, _ in BATCH_DUPLICATE_COLUMNS]


def split_first_occurrences(events: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(first occurrence of each event (id, UTC day) in the batch, the later ones). Rows
    arrive in Kafka order within a partition; the first in the table is kept. Done in Arrow on
    the driver so PostgreSQL never sorts a whole batch to find them."""
    if events.num_rows == 0:
        return events, events.select(_DUPLICATE_COLUMNS)
    seq = _row_numbers(events)
    numbered = events.append_column("_seq", seq).append_column(
        "_day", _days(events.column("event_epoch"))
    )
    firsts = numbered.group_by(["event_id", "_day"], use_threads=False).aggregate([("_seq", "min")])
    is_first = pc.is_in(seq, value_set=firsts.column("_seq_min"))
    later = events.filter(pc.invert(is_first)).select(_DUPLICATE_COLUMNS)
    return events.filter(is_first), later


@dataclass(frozen=True)
class SplitBatch:
    """A batch's sink rows before the dedup against earlier batches."""

    consumed: int
    # Valid events, the first occurrence of each id in the batch (EVENT_COLUMNS).
    events: pa.Table
    # Later occurrences of an id within the batch (BATCH_DUPLICATE_COLUMNS).
    later_in_batch: pa.Table
    # Dead letters (DEAD_SOURCE_COLUMNS).
    dead: pa.Table

    def dead_letters_by_reason(self) -> dict[str, int]:
        counts = self.dead.group_by("dead_letter_reason", use_threads=False).aggregate(
            [("dead_letter_reason", "count")]
        )
        return dict(
            zip(
                counts.column("dead_letter_reason").to_pylist(),
                counts.column("dead_letter_reason_count").to_pylist(),
                strict=True,
            )
        )

    def dead_letter_rows(self, batch_id: int) -> pa.Table:
        dead = self.dead
        return pa.table(
            {
                "kafka_topic": dead.column("kafka_topic"),
                "kafka_partition": dead.column("kafka_partition"),
                "kafka_offset": dead.column("kafka_offset"),
                "kafka_timestamp": pc.cast(
                    dead.column("kafka_timestamp_ms"), pa.timestamp("ms", tz="UTC")
                ),
                "reason": dead.column("dead_letter_reason"),
                "detail": dead.column("dead_letter_detail"),
                "payload": dead.column("payload"),
                "batch_id": _constant(batch_id, dead.num_rows),
            }
        )

    def event_days(self) -> list[dt.date]:
        """The distinct UTC days of the events: the partitions the batch writes to."""
        days = pc.unique(_days(self.events.column("event_epoch")).cast(pa.date32()))
        return sorted(days.to_pylist())

    def event_id_rows(self) -> pa.Table:
        """The events' (id, UTC day)s to stage for the dedup, numbered by row (``seq``) and in
        key order: bytewise, as COLLATE "C" compares, the inserts walk the primary key's b-tree
        from left to right instead of jumping around it (250k ids into a 2M-row event_ids:
        ~2.0 s → ~1.3 s on the same PostgreSQL)."""
        ids = pa.table(
            {
                "seq": _row_numbers(self.events),
                "event_id": self.events.column("event_id"),
                "event_day": _days(self.events.column("event_epoch")).cast(pa.date32()),
            }
        )
        return ids.take(pc.sort_indices(ids, sort_keys=[("event_id", "ascending")]))


def split_batch(rows: pa.Table) -> SplitBatch:
    """Sink rows (transform.SINK_SCHEMA) → events, their in-batch duplicates and dead letters."""
    is_dead = pc.is_valid(rows.column("dead_letter_reason"))
    all_events = rows.filter(pc.invert(is_dead)).select(list(EVENT_COLUMNS))
    events, later_in_batch = split_first_occurrences(all_events)
    return SplitBatch(
        consumed=rows.num_rows,
        events=events,
        later_in_batch=later_in_batch,
        dead=rows.filter(is_dead).select(list(DEAD_SOURCE_COLUMNS)),
    )


def kinds(fresh: pa.Table, bot_filtering: bool) -> pa.Array:
    """'bot' (when filtering), 'page_view' or 'other' for each accepted event."""
    is_page_view = pc.equal(fresh.column("collection"), PAGE_VIEW)
    by_collection = pc.if_else(is_page_view, "page_view", "other")
    if not bot_filtering:
        return by_collection
    return pc.if_else(pc.fill_null(fresh.column("is_bot"), False), "bot", by_collection)


@dataclass(frozen=True)
class BatchWrites:
    """What one batch writes once PostgreSQL has said which of its ids are known. The derived
    tables are methods, computed when the writer gets to them (its step timings say where the
    time went)."""

    # Events no earlier batch accepted, of every kind (the dimensions' source).
    fresh: pa.Table
    page_views: pa.Table
    others: pa.Table
    bots: pa.Table
    # Events whose id an earlier batch accepted.
    seen_before: pa.Table
    split: SplitBatch

    def fact_tables(self, batch_id: int) -> tuple[tuple[str, pa.Table], ...]:
        return (
            ("fact_page_views", fact_rows(self.page_views, batch_id, PAGE_VIEW_COLUMNS)),
            ("fact_other_events", fact_rows(self.others, batch_id, OTHER_EVENT_COLUMNS)),
            ("bot_events", fact_rows(self.bots, batch_id, BOT_EVENT_COLUMNS)),
        )

    def duplicate_rows(self, batch_id: int) -> pa.Table:
        """Records whose event an earlier batch accepted, then later copies within this batch."""
        both = pa.concat_tables(
            [self.seen_before.select(_DUPLICATE_COLUMNS), self.split.later_in_batch]
        )
        return both.append_column("batch_id", _constant(batch_id, both.num_rows))

    def max_event_epoch(self) -> int | None:
        newest: int | None = pc.max(self.fresh.column("event_epoch")).as_py()
        return newest


def plan_writes(split: SplitBatch, seen_before: pa.Array, *, bot_filtering: bool) -> BatchWrites:
    """``seen_before``: row numbers in ``split.events`` of the ids an earlier batch accepted."""
    events = split.events
    fresh = events.filter(pc.invert(pc.is_in(_row_numbers(events), value_set=seen_before)))
    kind = kinds(fresh, bot_filtering)
    return BatchWrites(
        fresh=fresh,
        page_views=fresh.filter(pc.equal(kind, "page_view")),
        others=fresh.filter(pc.equal(kind, "other")),
        bots=fresh.filter(pc.equal(kind, "bot")),
        seen_before=events.take(seen_before),
        split=split,
    )


def new_dimension_rows(fresh: pa.Table, dimension: Dimension, known_keys: Set[int]) -> pa.Table:
    """The distinct rows of ``dimension`` among these events, but for keys known to exist."""
    rows = fresh.select(list(dimension.columns))
    if known_keys:
        known = pa.array(list(known_keys), type=pa.int64())
        rows = rows.filter(pc.invert(pc.is_in(rows.column(dimension.key), value_set=known)))
    if rows.num_rows == 0:
        return rows
    return rows.group_by(list(dimension.columns), use_threads=False).aggregate([])


class StoredPage(NamedTuple):
    """A product's page as dim_product holds it: the host it is pinned to, the event time
    (epoch seconds) and the canonical URL."""

    host: str
    epoch: int
    url: str


_PRODUCT_STAGE_SCHEMA = pa.schema(
    [
        ("product_key", pa.int64()),
        ("product_id", pa.string()),
        ("product_url", pa.string()),
        ("product_label", pa.string()),
        ("url_host", pa.string()),
        ("url_epoch", pa.int64()),
        ("first_epoch", pa.int64()),
    ]
)
assert _PRODUCT_STAGE_SCHEMA.names == [c for c, _ in PRODUCT_STAGE_COLUMNS]
# The host of a canonical product page URL without its www. (enrich.product_page's
# ProductPage.host, which a test checks this agrees with), in Arrow for a whole column.
_URL_HOST = r"^[a-z]+://(?:www\.)?(?P<host>[^/]*)"
_MEMO_SIZE = 1 << 16
_product_page = lru_cache(maxsize=_MEMO_SIZE)(product_page)


def product_page_candidates(page_views: pa.Table) -> pa.Table:
    """Per product and shop host among these page views (``product_url`` set), the newest
    product page by (event time, URL) and the first event time on that host: columns
    product_key, product_id, product_url, url_host, url_epoch, first_epoch. Crawlers' page
    views are left out even when they are stored as page views (bot filtering off): they
    fetch old URLs long after a page has moved."""
    pages = page_views.select(["product_key", "product_id", "product_url", "event_epoch"])
    pages = pages.filter(
        pc.and_(
            pc.and_(
                pc.is_valid(pages.column("product_url")), pc.is_valid(pages.column("product_key"))
            ),
            pc.invert(pc.fill_null(page_views.column("is_bot"), False)),
        )
    )
    by_url = pages.group_by(
        ["product_key", "product_id", "product_url"], use_threads=False
    ).aggregate([("event_epoch", "max"), ("event_epoch", "min")])
    hosts = pc.struct_field(pc.extract_regex(by_url.column("product_url"), _URL_HOST), "host")
    newest_first = by_url.append_column("url_host", hosts).sort_by(
        [
            ("product_key", "ascending"),
            ("url_host", "ascending"),
            ("event_epoch_max", "descending"),
            ("product_url", "descending"),
        ]
    )
    # Ordered aggregation ("first" needs use_threads=False): each group's first row is its
    # newest page.
    per_host = newest_first.group_by(["product_key", "url_host"], use_threads=False).aggregate(
        [
            ("product_id", "first"),
            ("product_url", "first"),
            ("event_epoch_max", "first"),
            ("event_epoch_min", "min"),
        ]
    )
    return pa.table(
        {
            "product_key": per_host.column("product_key"),
            "product_id": per_host.column("product_id_first"),
            "product_url": per_host.column("product_url_first"),
            "url_host": per_host.column("url_host"),
            "url_epoch": per_host.column("event_epoch_max_first"),
            "first_epoch": per_host.column("event_epoch_min_min"),
        }
    )


_UNKNOWN = object()


def _could_move_forward(candidates: pa.Table, known: Mapping[int, StoredPage | None]) -> pa.Array:
    """Per candidate: True unless the product's committed page (``known``) says the upsert
    would leave it as it is (a page on another host, or not later by (event time, URL))."""
    distinct = pc.unique(candidates.column("product_key"))
    states = [known.get(key, _UNKNOWN) for key in distinct.to_pylist()]
    pinned = [isinstance(state, StoredPage) for state in states]
    if not any(pinned):
        return pa.array([True] * candidates.num_rows, pa.bool_())
    at = pc.index_in(candidates.column("product_key"), value_set=distinct)
    stored = [state if isinstance(state, StoredPage) else None for state in states]

    def stored_column(values: Sequence[object], type_: pa.DataType) -> pa.Array:
        return pc.take(pa.array(values, type_), at)

    is_pinned = stored_column(pinned, pa.bool_())
    host = stored_column([s.host if s else None for s in stored], pa.string())
    epoch = stored_column([s.epoch if s else None for s in stored], pa.int64())
    url = stored_column([s.url if s else None for s in stored], pa.string())
    url_epoch, product_url = candidates.column("url_epoch"), candidates.column("product_url")
    later = pc.or_(
        pc.greater(url_epoch, epoch),
        pc.and_(pc.equal(url_epoch, epoch), pc.greater(product_url, url)),
    )
    forward = pc.and_(pc.equal(candidates.column("url_host"), host), later)
    return pc.or_(pc.invert(is_pinned), pc.fill_null(forward, False))


def product_rows(
    fresh: pa.Table, page_views: pa.Table, known: Mapping[int, StoredPage | None]
) -> pa.Table:
    """dim_product's staged rows (schema.PRODUCT_STAGE_COLUMNS) for these events: the
    product page candidates of the page views, but those the committed pages (``known``: by
    product key, None for a product without a page) say cannot move the stored page forward,
    then one row of nulls for each product of ``fresh`` not yet known that has no candidate.
    schema.UPSERT_PRODUCTS decides between a product's candidates."""
    candidates = product_page_candidates(page_views)
    staged = candidates
    if known and candidates.num_rows:
        staged = candidates.filter(_could_move_forward(candidates, known))
    # A canonical URL gives its own page back (enrich.product_page), so every candidate has
    # its label; a row without one (never seen) is dropped rather than staged half-empty.
    pages: list[ProductPage | None] = [
        _product_page(url) for url in staged.column("product_url").to_pylist()
    ]
    if not all(pages):
        staged = staged.filter(pa.array([p is not None for p in pages], pa.bool_()))
        pages = [p for p in pages if p is not None]
    staged = pa.table(
        {
            "product_key": staged.column("product_key"),
            "product_id": staged.column("product_id"),
            "product_url": staged.column("product_url"),
            "product_label": pa.array([p.label for p in pages if p], pa.string()),
            "url_host": staged.column("url_host"),
            "url_epoch": staged.column("url_epoch"),
            "first_epoch": staged.column("first_epoch"),
        },
        schema=_PRODUCT_STAGE_SCHEMA,
    )

    products = fresh.select(["product_key", "product_id"])
    products = products.filter(pc.is_valid(products.column("product_key")))
    without_page = products.filter(
        pc.invert(
            pc.is_in(products.column("product_key"), value_set=candidates.column("product_key"))
        )
    )
    if without_page.num_rows == 0:
        return staged
    without_page = without_page.group_by(
        ["product_key", "product_id"], use_threads=False
    ).aggregate([])
    if known:
        unknown = [key not in known for key in without_page.column("product_key").to_pylist()]
        without_page = without_page.filter(pa.array(unknown, pa.bool_()))
    nulls = pa.nulls(without_page.num_rows)
    bare = pa.table(
        {
            "product_key": without_page.column("product_key"),
            "product_id": without_page.column("product_id"),
            "product_url": nulls.cast(pa.string()),
            "product_label": nulls.cast(pa.string()),
            "url_host": nulls.cast(pa.string()),
            "url_epoch": nulls.cast(pa.int64()),
            "first_epoch": nulls.cast(pa.int64()),
        },
        schema=_PRODUCT_STAGE_SCHEMA,
    )
    return pa.concat_tables([staged, bare])


def fact_rows(events: pa.Table, batch_id: int, columns: tuple[str, ...]) -> pa.Table:
    """The given fact-table columns of these events; most are the sink rows' own."""

    def column(name: str) -> pa.Array | pa.ChunkedArray:
        if name == "event_time":
            return _timestamps(events.column("event_epoch"))
        if name == "batch_id":
            return _constant(batch_id, events.num_rows)
        if name == "user_id_db":
            user_id = events.column(name)
            return pc.if_else(pc.equal(user_id, ""), None, user_id)
        if name == "page_path":
            return pc.fill_null(events.column(name), "")
        return events.column(name)

    return pa.table({name: column(name) for name in columns})


def _rollup_values(page_views: pa.Table, dimension: str) -> pa.Array | pa.ChunkedArray:
    if dimension == "total":
        return pa.array([""] * page_views.num_rows, type=pa.string())
    if dimension == "browser_os":
        return pc.binary_join_element_wise(
            page_views.column("browser"), page_views.column("os"), " / "
        )
    if dimension in COMPOSITE_ROLLUPS:
        parts = [pc.fill_null(page_views.column(c), "") for c in COMPOSITE_ROLLUPS[dimension]]
        return pc.binary_join_element_wise(*parts, ROLLUP_SEPARATOR)
    return page_views.column(ROLLUP_COLUMNS[dimension])


def page_view_rollups(page_views: pa.Table) -> pa.Table:
    """agg_page_views rows for exactly these page views: counts per UTC day and hour for
    every dimension and per UTC minute for MINUTE_DIMENSIONS. Computed from the rows being
    inserted, so the rollups equal the facts by construction, late events included."""
    epochs = page_views.column("event_epoch")
    grains = (
        ("minute", pc.multiply(pc.divide(epochs, 60), 60), MINUTE_DIMENSIONS),
        ("hour", pc.multiply(pc.divide(epochs, 3600), 3600), ROLLUP_DIMENSIONS),
        ("day", pc.multiply(pc.divide(epochs, 86_400), 86_400), ROLLUP_DIMENSIONS),
    )
    tables = []
    for grain, bucket, dimensions in grains:
        for dimension in dimensions:
            counted = (
                pa.table({"bucket": bucket, "value": _rollup_values(page_views, dimension)})
                .group_by(["bucket", "value"], use_threads=False)
                .aggregate([("bucket", "count")])
            )
            tables.append(
                pa.table(
                    {
                        "grain": pa.array([grain] * counted.num_rows, pa.string()),
                        "bucket": _timestamps(counted.column("bucket")),
                        "dimension": pa.array([dimension] * counted.num_rows, pa.string()),
                        "value": counted.column("value"),
                        "views": counted.column("bucket_count"),
                    }
                )
            )
    return pa.concat_tables(tables)


def visitor_day_devices(page_views: pa.Table) -> pa.Table:
    """One row per (UTC day, device) with a human page view: the bits the batch sets in
    visitor_bitmaps."""
    days = _days(page_views.column("event_epoch"))
    return (
        pa.table({"day": days.cast(pa.date32()), "device_key": page_views.column("device_key")})
        .group_by(["day", "device_key"], use_threads=False)
        .aggregate([])
    )


def _days(epoch_seconds: pa.ChunkedArray | pa.Array) -> pa.Array:
    """UTC days since 1970-01-01 (int32, as date32 counts them). Event epochs are never
    negative (the contract's oldest is 2000-01-01), so integer division floors."""
    return pc.cast(pc.divide(epoch_seconds, 86_400), pa.int32())


def _row_numbers(table: pa.Table) -> pa.Array:
    return pa.array(range(table.num_rows), type=pa.int64())


def _timestamps(epoch_seconds: pa.ChunkedArray | pa.Array) -> pa.Array:
    return pc.cast(epoch_seconds, pa.timestamp("s", tz="UTC"))


def _constant(value: int, length: int) -> pa.Array:
    return pa.array([value] * length, type=pa.int64())
