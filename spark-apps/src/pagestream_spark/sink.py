"""The PostgreSQL sink: one micro-batch, one transaction, exactly once.

``foreachBatch`` is at-least-once: after a crash Spark replays the last batch with the same
``batch_id``. The sink records ``(query_id, batch_id)`` in ``batch_commits`` in the same
transaction as the data, and skips a batch it finds there, so a replay writes nothing twice.
Event ids are deduplicated against ``event_ids`` (all valid events ever accepted), so producer
retries, replays of the topic and a reset checkpoint never double count either.

Rows arrive as one Arrow table per batch. Only the event ids go through a staging table (the
all-history dedup has to happen in PostgreSQL); which events are new, their kind, the distinct
dimension rows, the rollups and the visitor days are computed here in Arrow, and facts are
COPYed straight into their tables. PostgreSQL's single backend was the bottleneck when every
column was staged and spread by SQL (measured in bench/job_throughput.py).
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field

import pgpq
import pyarrow as pa
import pyarrow.compute as pc
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection

from pagestream_common.contract import PAGE_VIEW
from pagestream_spark.transform import SINK_SCHEMA

log = logging.getLogger(__name__)

# Sink-row columns only a dead letter has (null on a valid event's row).
_DEAD_ONLY_COLUMNS = ("kafka_timestamp_ms", "dead_letter_reason", "dead_letter_detail", "payload")
# Columns a dead letter is written from.
_DEAD_SOURCE_COLUMNS = ["kafka_topic", "kafka_partition", "kafka_offset", *_DEAD_ONLY_COLUMNS]
# The sink rows' columns of a valid event.
EVENT_COLUMNS = tuple(name for name in SINK_SCHEMA.names if name not in _DEAD_ONLY_COLUMNS)
_SQL_TYPES = {
    pa.string(): "text",
    pa.int16(): "smallint",
    pa.int32(): "integer",
    pa.int64(): "bigint",
    pa.bool_(): "boolean",
}
# PostgreSQL type of each event column, for staging tables.
_EVENT_COLUMN_TYPES = {name: _SQL_TYPES[SINK_SCHEMA.field(name).type] for name in EVENT_COLUMNS}


@dataclass(frozen=True)
class BatchOutcome:
    """How every consumed record of a batch was accounted for."""

    batch_id: int
    consumed: int
    page_views: int
    other_events: int
    duplicates: int
    dead_letters_by_reason: dict[str, int]
    bots: int
    committed_at: float
    # Event times (epoch seconds) of the page views stored, for the freshness histogram.
    stored_page_view_epochs: pa.Array | None = None
    # Where the commit's time went, by step (logged with the batch).
    step_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters_by_reason.values())

    @property
    def stored(self) -> int:
        return self.page_views + self.other_events


@dataclass
class PostgresSink:
    conn: PgConnection
    schema: str
    query_id: str
    bot_filtering: bool = True
    # Dimension keys this sink has committed, by table: most of a batch's dimension rows exist
    # already, and skipping them before staging saves the grouping and the round trip. Only
    # committed keys go in (a rolled-back batch adds none); bounded by _KNOWN_KEYS_LIMIT.
    _known_dimension_keys: dict[str, set[int]] = field(default_factory=dict, init=False, repr=False)

    def already_committed(self, batch_id: int) -> bool:
        with self.conn, self.conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT 1 FROM {}.batch_commits WHERE query_id = %s AND batch_id = %s"
                ).format(sql.Identifier(self.schema)),
                (self.query_id, batch_id),
            )
            return cur.fetchone() is not None

    def commit_batch(self, batch_id: int, rows: pa.Table) -> BatchOutcome | None:
        """Write one batch in one transaction; None if this batch was committed before."""
        laps = _Laps()
        is_dead = pc.is_valid(rows.column("dead_letter_reason"))
        all_events = rows.filter(pc.invert(is_dead)).select(list(EVENT_COLUMNS))
        events, batch_duplicates = split_first_occurrences(all_events)
        dead = rows.filter(is_dead).select(_DEAD_SOURCE_COLUMNS)
        with self.conn, self.conn.cursor() as cur:
            cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(self.schema)))
            cur.execute("SET LOCAL TimeZone TO 'UTC'")
            # The anti-join of a batch's ids fits in memory instead of spilling to disk.
            cur.execute("SET LOCAL work_mem TO '256MB'")
            # Serialises two writers of one query and makes the replay check race-free.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.query_id,))
            cur.execute(
                "SELECT 1 FROM batch_commits WHERE query_id = %s AND batch_id = %s",
                (self.query_id, batch_id),
            )
            if cur.fetchone() is not None:
                log.info("batch %d was committed before; skipping its replay", batch_id)
                return None
            # Only the ids travel through a staging table: the all-history dedup has to happen
            # in PostgreSQL, everything after it is decided here in Arrow and COPYed straight
            # into its table (staging every column cost more than the inserts themselves).
            laps.lap("split")
            seen_before = _register_event_ids(cur, events)
            laps.lap("event_ids")
            fresh = events.filter(pc.invert(pc.is_in(_row_numbers(events), value_set=seen_before)))
            kind = _kinds(fresh, self.bot_filtering)
            page_views = fresh.filter(pc.equal(kind, "page_view"))
            others = fresh.filter(pc.equal(kind, "other"))
            bots = fresh.filter(pc.equal(kind, "bot"))
            new_dimension_keys = {
                dimension.table: _upsert_dimension(
                    cur, dimension, fresh, self._known_dimension_keys.get(dimension.table, set())
                )
                for dimension in _DIMENSIONS
            }
            laps.lap("dimensions")
            _copy(cur, "fact_page_views", _fact_rows(page_views, batch_id, _PAGE_VIEW_COLUMNS))
            _copy(cur, "fact_other_events", _fact_rows(others, batch_id, _OTHER_EVENT_COLUMNS))
            _copy(cur, "bot_events", _fact_rows(bots, batch_id, _BOT_EVENT_COLUMNS))
            laps.lap("facts")
            _upsert_page_view_rollups(cur, page_views)
            _upsert_visitor_days(cur, page_views)
            laps.lap("rollups")
            _insert_ignoring_known(cur, "dead_letters", _dead_letter_rows(dead, batch_id))
            dead_by_reason = _dead_letters_by_reason(dead)
            duplicate_rows = _duplicate_rows(events.take(seen_before), batch_duplicates, batch_id)
            _insert_ignoring_known(cur, "duplicate_records", duplicate_rows)
            duplicates = duplicate_rows.num_rows
            consumed = rows.num_rows
            max_epoch = pc.max(fresh.column("event_epoch")).as_py()
            cur.execute(
                "INSERT INTO batch_commits (query_id, batch_id, consumed, page_views, other_events,"
                " duplicates, dead_lettered, bots, max_event_time)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s))",
                (
                    self.query_id,
                    batch_id,
                    consumed,
                    page_views.num_rows,
                    others.num_rows,
                    duplicates,
                    dead.num_rows,
                    bots.num_rows,
                    max_epoch,
                ),
            )
            laps.lap("accounting")
        laps.lap("commit")
        committed_at = time.time()
        for table, keys in new_dimension_keys.items():
            known = self._known_dimension_keys.setdefault(table, set())
            if len(known) + len(keys) > _KNOWN_KEYS_LIMIT:
                known.clear()
            known.update(keys)
        return BatchOutcome(
            batch_id=batch_id,
            consumed=consumed,
            page_views=page_views.num_rows,
            other_events=others.num_rows,
            duplicates=duplicates,
            dead_letters_by_reason=dead_by_reason,
            bots=bots.num_rows,
            committed_at=committed_at,
            stored_page_view_epochs=page_views.column("event_epoch").combine_chunks(),
            step_seconds=laps.seconds,
        )


BATCH_DUPLICATE_COLUMNS = (
    ("kafka_topic", "text"),
    ("kafka_partition", "integer"),
    ("kafka_offset", "bigint"),
    ("event_id", "text"),
)


def split_first_occurrences(events: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(first occurrence of each event id in the batch, the later ones). Rows arrive in Kafka
    order within a partition; the first in the table is kept. Done in Arrow on the driver so
    PostgreSQL never sorts a whole batch to find them."""
    if events.num_rows == 0:
        return events, events.select([c for c, _ in BATCH_DUPLICATE_COLUMNS])
    seq = pa.array(range(events.num_rows), type=pa.int64())
    numbered = events.append_column("_seq", seq)
    firsts = numbered.group_by("event_id", use_threads=False).aggregate([("_seq", "min")])
    is_first = pc.is_in(seq, value_set=firsts.column("_seq_min"))
    later = events.filter(pc.invert(is_first)).select([c for c, _ in BATCH_DUPLICATE_COLUMNS])
    return events.filter(is_first), later


class _Laps:
    """Seconds spent in each step of a commit, for the batch's log line."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.seconds[step] = round(now - self._last, 3)
        self._last = now


def _row_numbers(table: pa.Table) -> pa.Array:
    return pa.array(range(table.num_rows), type=pa.int64())


def _kinds(fresh: pa.Table, bot_filtering: bool) -> pa.Array:
    """'bot' (when filtering), 'page_view' or 'other' for each accepted event."""
    is_page_view = pc.equal(fresh.column("collection"), PAGE_VIEW)
    by_collection = pc.if_else(is_page_view, "page_view", "other")
    if not bot_filtering:
        return by_collection
    return pc.if_else(pc.fill_null(fresh.column("is_bot"), False), "bot", by_collection)


def copy_payload(table: pa.Table) -> io.BytesIO:
    """``table`` in PostgreSQL's binary COPY format. Arrow types must match the target
    columns' sizes (int16 → smallint, int32 → integer, ...): PostgreSQL refuses the data
    otherwise, loudly."""
    encoder = pgpq.ArrowToPostgresBinaryEncoder(table.schema)
    buf = io.BytesIO()
    buf.write(encoder.write_header())
    for batch in table.to_batches():
        if batch.num_rows:
            buf.write(encoder.write_batch(batch))
    buf.write(encoder.finish())
    buf.seek(0)
    return buf


def _copy(cur, table: str, rows: pa.Table) -> None:  # type: ignore[no-untyped-def]
    """COPY ``rows`` into ``table``, matching columns by name."""
    if rows.num_rows == 0:
        return
    columns = sql.SQL(", ").join(map(sql.Identifier, rows.column_names))
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(
        sql.Identifier(table), columns
    )
    cur.copy_expert(statement.as_string(cur), copy_payload(rows))


def _insert_ignoring_known(cur, table: str, rows: pa.Table) -> None:  # type: ignore[no-untyped-def]
    """Insert rows keyed by their Kafka coordinates, skipping coordinates already recorded
    (a topic re-read under a new checkpoint meets its dead letters and duplicates again)."""
    if rows.num_rows == 0:
        return
    stage = f"stage_{table}"
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(
            sql.Identifier(stage), sql.Identifier(table)
        )
    )
    _copy(cur, stage, rows)
    cur.execute(
        sql.SQL("INSERT INTO {} SELECT * FROM {} ON CONFLICT DO NOTHING").format(
            sql.Identifier(table), sql.Identifier(stage)
        )
    )


def _timestamps(epoch_seconds: pa.ChunkedArray | pa.Array) -> pa.Array:
    return pc.cast(epoch_seconds, pa.timestamp("s", tz="UTC"))


def _constant(value: int, length: int) -> pa.Array:
    return pa.array([value] * length, type=pa.int64())


def _register_event_ids(cur, events: pa.Table) -> pa.Array:  # type: ignore[no-untyped-def]
    """Insert the batch's (already batch-unique) event ids into ``event_ids``; return the row
    numbers of those an earlier batch had accepted."""
    if events.num_rows == 0:
        return pa.array([], type=pa.int64())
    ids = pa.table(
        {
            "seq": _row_numbers(events),
            "event_id": events.column("event_id"),
            "event_time": _timestamps(events.column("event_epoch")),
        }
    )
    # In key order (bytewise, as COLLATE "C" compares), the inserts walk the primary key's
    # b-tree from left to right instead of jumping around it: 250k ids into a 2M-row
    # event_ids went from ~2.0 s to ~1.3 s (/tmp experiment, same PostgreSQL).
    ids = ids.take(pc.sort_indices(ids, sort_keys=[("event_id", "ascending")]))
    cur.execute(
        'CREATE TEMP TABLE stage_ids (seq bigint, event_id text COLLATE "C", event_time timestamptz)'
        " ON COMMIT DROP"
    )
    _copy(cur, "stage_ids", ids)
    cur.execute(_REGISTER_EVENT_IDS)
    return pa.array(sorted(seq for (seq,) in cur.fetchall()), type=pa.int64())


_REGISTER_EVENT_IDS = """
WITH accepted AS (
    INSERT INTO event_ids (event_id, event_time)
    SELECT event_id, event_time FROM stage_ids
    ON CONFLICT DO NOTHING
    RETURNING event_id
)
SELECT s.seq FROM stage_ids s WHERE NOT EXISTS (SELECT 1 FROM accepted a WHERE a.event_id = s.event_id)
"""


@dataclass(frozen=True)
class _Dimension:
    table: str
    # Staged columns (named as in the event rows); the first is the key.
    columns: tuple[str, ...]
    # INSERT ... SELECT from the staging table "stage" (distinct rows of `columns`).
    insert: str
    only_where_present: str | None = None


# ON CONFLICT DO NOTHING: a key is a hash of the natural key, so an existing row already holds
# the same values. NULLs become '' where the dimension's natural key says NOT NULL DEFAULT ''.
_DIMENSIONS = (
    _Dimension(
        "dim_date",
        ("date_key",),
        """INSERT INTO dim_date (date_key, full_date, year, quarter, month, day_of_month, day_of_week, iso_week, is_weekend)
SELECT date_key, d, extract(year FROM d), extract(quarter FROM d), extract(month FROM d),
       extract(day FROM d), extract(isodow FROM d), extract(week FROM d), extract(isodow FROM d) >= 6
FROM (SELECT date_key, to_date(date_key::text, 'YYYYMMDD') AS d FROM stage) s
ON CONFLICT DO NOTHING""",
    ),
    _Dimension(
        "dim_product",
        ("product_key", "product_id"),
        """INSERT INTO dim_product (product_key, product_id)
SELECT product_key, product_id FROM stage ON CONFLICT DO NOTHING""",
        only_where_present="product_id",
    ),
    _Dimension(
        "dim_store",
        ("store_key", "store_id"),
        """INSERT INTO dim_store (store_key, store_id)
SELECT store_key, store_id FROM stage ON CONFLICT DO NOTHING""",
    ),
    _Dimension(
        "dim_location",
        ("location_key", "country_code", "country_name", "region", "city"),
        """INSERT INTO dim_location (location_key, country_code, country_name, region, city)
SELECT DISTINCT ON (location_key) location_key, country_code, country_name,
       coalesce(region, ''), coalesce(city, '')
FROM stage ON CONFLICT DO NOTHING""",
    ),
    _Dimension(
        "dim_user_agent",
        (
            "user_agent_key",
            "browser",
            "browser_version",
            "os",
            "os_version",
            "device_class",
            "is_bot",
        ),
        """INSERT INTO dim_user_agent (user_agent_key, browser, browser_version, os, os_version, device_class, is_bot)
SELECT DISTINCT ON (user_agent_key) user_agent_key, browser, coalesce(browser_version, ''), os,
       coalesce(os_version, ''), device_class, is_bot
FROM stage ON CONFLICT DO NOTHING""",
    ),
    _Dimension(
        "dim_referrer",
        ("referrer_key", "referrer_domain", "referrer_medium"),
        """INSERT INTO dim_referrer (referrer_key, domain, medium)
SELECT DISTINCT ON (referrer_key) referrer_key, coalesce(referrer_domain, ''), referrer_medium
FROM stage ON CONFLICT DO NOTHING""",
    ),
    _Dimension(
        "dim_campaign",
        ("campaign_key", "utm_source_n", "utm_medium_n", "utm_campaign", "utm_term", "utm_content"),
        """INSERT INTO dim_campaign (campaign_key, source, medium, name, term, content)
SELECT DISTINCT ON (campaign_key) campaign_key, coalesce(utm_source_n, ''), coalesce(utm_medium_n, ''),
       coalesce(utm_campaign, ''), coalesce(utm_term, ''), coalesce(utm_content, '')
FROM stage ON CONFLICT DO NOTHING""",
    ),
)


_KNOWN_KEYS_LIMIT = 1_000_000


def _upsert_dimension(  # type: ignore[no-untyped-def]
    cur, dimension: _Dimension, fresh: pa.Table, known_keys: set[int]
) -> list[int]:
    """The batch's distinct dimension rows not known to exist, found in Arrow, staged,
    inserted if new; returns their keys."""
    rows = fresh.select(list(dimension.columns))
    if dimension.only_where_present:
        rows = rows.filter(pc.is_valid(rows.column(dimension.only_where_present)))
    if known_keys:
        known = pa.array(list(known_keys), type=pa.int64())
        rows = rows.filter(pc.invert(pc.is_in(rows.column(dimension.columns[0]), value_set=known)))
    if rows.num_rows == 0:
        return []
    distinct = rows.group_by(list(dimension.columns), use_threads=False).aggregate([])
    cur.execute("DROP TABLE IF EXISTS stage")
    cur.execute(
        _stage_table("stage", tuple((c, _EVENT_COLUMN_TYPES[c]) for c in dimension.columns))
    )
    _copy(cur, "stage", distinct)
    cur.execute(dimension.insert)
    return distinct.column(dimension.columns[0]).to_pylist()


def _stage_table(name: str, columns: tuple[tuple[str, str], ...]) -> sql.Composed:
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns
    )
    return sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(sql.Identifier(name), cols)


_FACT_KEYS = (
    "date_key",
    "time_key",
    "product_key",
    "store_key",
    "location_key",
    "user_agent_key",
    "referrer_key",
    "campaign_key",
)


# Each fact table's columns, in the names of the sink rows (see _fact_rows for the derived ones).
_PAGE_VIEW_COLUMNS = (
    "event_id",
    "event_time",
    *_FACT_KEYS,
    "device_id",
    "visitor_id",
    "user_id_db",
    "email_hash",
    "ip_anonymized",
    "page_path",
    "kafka_partition",
    "kafka_offset",
    "batch_id",
)
_OTHER_EVENT_COLUMNS = (
    "event_id",
    "collection",
    "event_time",
    *_FACT_KEYS,
    "device_id",
    "visitor_id",
    "kafka_partition",
    "kafka_offset",
    "batch_id",
)
_BOT_EVENT_COLUMNS = (
    "event_id",
    "collection",
    "event_time",
    "user_agent_key",
    "store_key",
    "kafka_partition",
    "kafka_offset",
    "batch_id",
)


def _fact_rows(events: pa.Table, batch_id: int, columns: tuple[str, ...]) -> pa.Table:
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


def _dead_letter_rows(dead: pa.Table, batch_id: int) -> pa.Table:
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


def _dead_letters_by_reason(dead: pa.Table) -> dict[str, int]:
    counts = dead.group_by("dead_letter_reason", use_threads=False).aggregate(
        [("dead_letter_reason", "count")]
    )
    return dict(
        zip(
            counts.column("dead_letter_reason").to_pylist(),
            counts.column("dead_letter_reason_count").to_pylist(),
            strict=True,
        )
    )


def _duplicate_rows(seen_before: pa.Table, later_in_batch: pa.Table, batch_id: int) -> pa.Table:
    """Records whose event an earlier batch accepted, then later copies within this batch."""
    columns = [c for c, _ in BATCH_DUPLICATE_COLUMNS]
    both = pa.concat_tables([seen_before.select(columns), later_in_batch.select(columns)])
    return both.append_column("batch_id", _constant(batch_id, both.num_rows))


# agg_page_views dimensions: the event column each page view is counted under.
_ROLLUP_COLUMNS = {
    "product": "product_id",
    "store": "store_id",
    "country": "country_code",
    "referrer_medium": "referrer_medium",
}


def _rollup_values(page_views: pa.Table, dimension: str) -> pa.Array | pa.ChunkedArray:
    if dimension == "total":
        return pa.array([""] * page_views.num_rows, type=pa.string())
    if dimension == "browser_os":
        return pc.binary_join_element_wise(
            page_views.column("browser"), page_views.column("os"), " / "
        )
    return page_views.column(_ROLLUP_COLUMNS[dimension])


def page_view_rollups(page_views: pa.Table) -> pa.Table:
    """agg_page_views rows for exactly these page views: counts per UTC minute and per UTC
    hour for each dimension value. Computed from the rows being inserted, so the rollups equal
    the facts by construction, late events included."""
    minute = pc.multiply(pc.divide(page_views.column("event_epoch"), 60), 60)
    per_minute = []
    for dimension in ("total", *_ROLLUP_COLUMNS, "browser_os"):
        counted = (
            pa.table({"bucket": minute, "value": _rollup_values(page_views, dimension)})
            .group_by(["bucket", "value"], use_threads=False)
            .aggregate([("bucket", "count")])
        )
        per_minute.append(
            pa.table(
                {
                    "dimension": pa.array([dimension] * counted.num_rows, pa.string()),
                    "bucket": counted.column("bucket"),
                    "value": counted.column("value"),
                    "views": counted.column("bucket_count"),
                }
            )
        )
    minutes = pa.concat_tables(per_minute)
    hours = (
        minutes.set_column(
            1, "bucket", pc.multiply(pc.divide(minutes.column("bucket"), 3600), 3600)
        )
        .group_by(["dimension", "bucket", "value"], use_threads=False)
        .aggregate([("views", "sum")])
        .rename_columns(["dimension", "bucket", "value", "views"])
    )
    return pa.concat_tables(
        pa.table(
            {
                "grain": pa.array([grain] * table.num_rows, pa.string()),
                "bucket": _timestamps(table.column("bucket")),
                "dimension": table.column("dimension"),
                "value": table.column("value"),
                "views": table.column("views"),
            }
        )
        for grain, table in (("minute", minutes), ("hour", hours))
    )


def _upsert_page_view_rollups(cur, page_views: pa.Table) -> None:  # type: ignore[no-untyped-def]
    if page_views.num_rows == 0:
        return
    cur.execute("CREATE TEMP TABLE stage_agg (LIKE agg_page_views) ON COMMIT DROP")
    _copy(cur, "stage_agg", page_view_rollups(page_views))
    # One row per key in the batch, so no row is updated twice by one statement.
    cur.execute(
        "INSERT INTO agg_page_views AS a SELECT * FROM stage_agg"
        " ON CONFLICT (grain, bucket, dimension, value) DO UPDATE SET views = a.views + EXCLUDED.views"
    )


def _upsert_visitor_days(cur, page_views: pa.Table) -> None:  # type: ignore[no-untyped-def]
    """One row per (UTC day, device) with a human page view."""
    if page_views.num_rows == 0:
        return
    days = pc.cast(pc.divide(page_views.column("event_epoch"), 86_400), pa.int32())
    distinct = (
        pa.table({"day": days.cast(pa.date32()), "device_key": page_views.column("device_key")})
        .group_by(["day", "device_key"], use_threads=False)
        .aggregate([])
    )
    cur.execute("CREATE TEMP TABLE stage_visitor_days (LIKE visitor_days) ON COMMIT DROP")
    _copy(cur, "stage_visitor_days", distinct)
    cur.execute("INSERT INTO visitor_days SELECT * FROM stage_visitor_days ON CONFLICT DO NOTHING")
