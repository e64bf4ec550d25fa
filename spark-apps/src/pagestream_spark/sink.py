"""The PostgreSQL sink: one micro-batch, one transaction, exactly once.

``foreachBatch`` is at-least-once: after a crash Spark replays the last batch with the same
``batch_id``. The sink records ``(query_id, batch_id)`` in ``batch_commits`` in the same
transaction as the data, and skips a batch it finds there, so a replay writes nothing twice.
Event ids are deduplicated against ``event_ids`` (all valid events ever accepted), so producer
retries, replays of the topic and a reset checkpoint never double count either.

Rows arrive as one Arrow table per batch, are staged with COPY into temporary tables, and are
spread over dimensions, facts, aggregates and accounting tables by set-based SQL.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pagestream_common.contract import PAGE_VIEW

log = logging.getLogger(__name__)

EVENT_STAGE_COLUMNS = (
    ("kafka_topic", "text"),
    ("kafka_partition", "integer"),
    ("kafka_offset", "bigint"),
    ("event_id", 'text COLLATE "C"'),
    ("event_epoch", "bigint"),
    ("collection", "text"),
    ("device_id", "text"),
    ("device_key", "bigint"),
    ("date_key", "integer"),
    ("time_key", "smallint"),
    ("store_id", "text"),
    ("store_key", "bigint"),
    ("product_id", "text"),
    ("product_key", "bigint"),
    ("country_code", "text"),
    ("country_name", "text"),
    ("region", "text"),
    ("city", "text"),
    ("location_key", "bigint"),
    ("browser", "text"),
    ("browser_version", "text"),
    ("os", "text"),
    ("os_version", "text"),
    ("device_class", "text"),
    ("is_bot", "boolean"),
    ("user_agent_key", "bigint"),
    ("referrer_domain", "text"),
    ("referrer_medium", "text"),
    ("referrer_key", "bigint"),
    ("utm_source_n", "text"),
    ("utm_medium_n", "text"),
    ("utm_campaign", "text"),
    ("utm_term", "text"),
    ("utm_content", "text"),
    ("campaign_key", "bigint"),
    ("visitor_id", "bigint"),
    ("user_id_db", "text"),
    ("email_hash", "text"),
    ("ip_anonymized", "text"),
    ("page_path", "text"),
)
DEAD_STAGE_COLUMNS = (
    ("kafka_topic", "text"),
    ("kafka_partition", "integer"),
    ("kafka_offset", "bigint"),
    ("kafka_timestamp_ms", "bigint"),
    ("reason", "text"),
    ("detail", "text"),
    ("payload_hex", "text"),
)


# Arrow columns copied, in order, into stage_dead (whose columns are DEAD_STAGE_COLUMNS).
_DEAD_SOURCE_COLUMNS = [
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp_ms",
    "dead_letter_reason",
    "dead_letter_detail",
    "payload_hex",
]


def sink_rows(prepared: DataFrame) -> DataFrame:
    """The columns the sink stages, named as in its staging tables, for both kinds of row;
    ``dead_letter_reason`` tells them apart. The payload goes as bytea hex text for COPY."""
    renamed = {"topic": "kafka_topic", "partition": "kafka_partition", "offset": "kafka_offset"}
    select = [F.col(src).alias(dst) for src, dst in renamed.items()]
    select += [F.col(name) for name, _ in EVENT_STAGE_COLUMNS[3:]]
    select += [
        (F.unix_millis(F.col("kafka_timestamp"))).alias("kafka_timestamp_ms"),
        F.col("dead_letter_reason"),
        F.col("dead_letter_detail"),
        F.when(
            F.col("payload").isNotNull(), F.concat(F.lit("\\x"), F.lower(F.hex("payload")))
        ).alias("payload_hex"),
    ]
    return prepared.select(*select)


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

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters_by_reason.values())

    @property
    def stored(self) -> int:
        return self.page_views + self.other_events


def _csv(table: pa.Table) -> io.BytesIO:
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False))
    buf.seek(0)
    return buf


@dataclass
class PostgresSink:
    conn: PgConnection
    schema: str
    query_id: str
    bot_filtering: bool = True

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
        is_dead = pc.is_valid(rows.column("dead_letter_reason"))
        all_events = rows.filter(pc.invert(is_dead)).select([c for c, _ in EVENT_STAGE_COLUMNS])
        events, batch_duplicates = split_first_occurrences(all_events)
        dead = rows.filter(is_dead).select(_DEAD_SOURCE_COLUMNS)
        with self.conn, self.conn.cursor() as cur:
            cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(self.schema)))
            cur.execute("SET LOCAL TimeZone TO 'UTC'")
            # A batch's hash joins and aggregates fit in memory instead of spilling to disk.
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
            cur.execute(_stage_table("stage_events", EVENT_STAGE_COLUMNS))
            cur.copy_expert("COPY stage_events FROM STDIN WITH (FORMAT csv)", _csv(events))
            cur.execute(_stage_table("stage_dead", DEAD_STAGE_COLUMNS))
            cur.copy_expert("COPY stage_dead FROM STDIN WITH (FORMAT csv)", _csv(dead))
            cur.execute(_stage_table("stage_batch_duplicates", BATCH_DUPLICATE_COLUMNS))
            cur.copy_expert(
                "COPY stage_batch_duplicates FROM STDIN WITH (FORMAT csv)", _csv(batch_duplicates)
            )
            cur.execute(_UPSERT_DIMENSIONS)
            cur.execute(_SELECT_FRESH, {"bot_filtering": self.bot_filtering})
            for statement in _WRITE_FACTS:
                cur.execute(statement, {"batch_id": batch_id})
            cur.execute(_COUNTS)
            page_views, other_events, bots, max_epoch = cur.fetchone()
            cur.execute("SELECT reason, count(*) FROM stage_dead GROUP BY reason")
            dead_by_reason = dict(cur.fetchall())
            cur.execute(_WRITE_DEAD_LETTERS, {"batch_id": batch_id})
            cur.execute(_WRITE_DUPLICATES, {"batch_id": batch_id})
            duplicates = cur.rowcount
            consumed = rows.num_rows
            cur.execute(
                "INSERT INTO batch_commits (query_id, batch_id, consumed, page_views, other_events,"
                " duplicates, dead_lettered, bots, max_event_time)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s))",
                (
                    self.query_id,
                    batch_id,
                    consumed,
                    page_views,
                    other_events,
                    duplicates,
                    sum(dead_by_reason.values()),
                    bots,
                    max_epoch,
                ),
            )
        committed_at = time.time()
        return BatchOutcome(
            batch_id=batch_id,
            consumed=consumed,
            page_views=page_views,
            other_events=other_events,
            duplicates=duplicates,
            dead_letters_by_reason=dead_by_reason,
            bots=bots,
            committed_at=committed_at,
            stored_page_view_epochs=_page_view_epochs(events),
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


def _page_view_epochs(events: pa.Table) -> pa.Array:
    page_views = events.filter(pc.equal(events.column("collection"), PAGE_VIEW))
    return page_views.column("event_epoch").combine_chunks()


def _stage_table(name: str, columns: tuple[tuple[str, str], ...]) -> sql.Composed:
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns
    )
    return sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(sql.Identifier(name), cols)


# Dimensions first, so fact rows always find their keys. ON CONFLICT DO NOTHING: a key is a
# hash of the natural key, so an existing row already holds the same values.
_UPSERT_DIMENSIONS = """
INSERT INTO dim_date (date_key, full_date, year, quarter, month, day_of_month, day_of_week, iso_week, is_weekend)
SELECT DISTINCT date_key, d, extract(year FROM d), extract(quarter FROM d), extract(month FROM d),
       extract(day FROM d), extract(isodow FROM d), extract(week FROM d), extract(isodow FROM d) >= 6
FROM (SELECT DISTINCT date_key, to_date(date_key::text, 'YYYYMMDD') AS d FROM stage_events) s
ON CONFLICT DO NOTHING;

INSERT INTO dim_product (product_key, product_id)
SELECT DISTINCT product_key, product_id FROM stage_events WHERE product_id IS NOT NULL
ON CONFLICT DO NOTHING;

INSERT INTO dim_store (store_key, store_id)
SELECT DISTINCT store_key, store_id FROM stage_events
ON CONFLICT DO NOTHING;

INSERT INTO dim_location (location_key, country_code, country_name, region, city)
SELECT DISTINCT ON (location_key) location_key, country_code, country_name,
       coalesce(region, ''), coalesce(city, '')
FROM stage_events
ON CONFLICT DO NOTHING;

INSERT INTO dim_user_agent (user_agent_key, browser, browser_version, os, os_version, device_class, is_bot)
SELECT DISTINCT ON (user_agent_key) user_agent_key, browser, coalesce(browser_version, ''), os,
       coalesce(os_version, ''), device_class, is_bot
FROM stage_events
ON CONFLICT DO NOTHING;

INSERT INTO dim_referrer (referrer_key, domain, medium)
SELECT DISTINCT ON (referrer_key) referrer_key, coalesce(referrer_domain, ''), referrer_medium
FROM stage_events
ON CONFLICT DO NOTHING;

INSERT INTO dim_campaign (campaign_key, source, medium, name, term, content)
SELECT DISTINCT ON (campaign_key) campaign_key, coalesce(utm_source_n, ''), coalesce(utm_medium_n, ''),
       coalesce(utm_campaign, ''), coalesce(utm_term, ''), coalesce(utm_content, '')
FROM stage_events
ON CONFLICT DO NOTHING;
"""

# Staged events are already unique within the batch (split_first_occurrences); those no
# earlier batch accepted are registered in event_ids and selected in one statement.
_SELECT_FRESH = """
CREATE TEMP TABLE fresh ON COMMIT DROP AS
WITH accepted AS (
    INSERT INTO event_ids (event_id, event_time)
    SELECT event_id, to_timestamp(event_epoch) FROM stage_events
    ON CONFLICT DO NOTHING
    RETURNING event_id
)
SELECT s.*, to_timestamp(s.event_epoch) AS event_time,
       CASE WHEN s.is_bot AND %(bot_filtering)s THEN 'bot'
            WHEN s.collection = 'view_product_detail' THEN 'page_view'
            ELSE 'other' END AS kind
FROM stage_events s JOIN accepted a USING (event_id);
"""

# One statement each, so a slow one shows in a profile.
_WRITE_FACTS = (
    """
INSERT INTO fact_page_views (event_id, event_time, date_key, time_key, product_key, store_key,
    location_key, user_agent_key, referrer_key, campaign_key, device_id, visitor_id, user_id_db,
    email_hash, ip_anonymized, page_path, kafka_partition, kafka_offset, batch_id)
SELECT event_id, event_time, date_key, time_key, product_key, store_key, location_key,
       user_agent_key, referrer_key, campaign_key, device_id, visitor_id, nullif(user_id_db, ''),
       email_hash, ip_anonymized, coalesce(page_path, ''), kafka_partition, kafka_offset, %(batch_id)s
FROM fresh WHERE kind = 'page_view'
""",
    """
INSERT INTO fact_other_events (event_id, collection, event_time, date_key, time_key, product_key,
    store_key, location_key, user_agent_key, referrer_key, campaign_key, device_id, visitor_id,
    kafka_partition, kafka_offset, batch_id)
SELECT event_id, collection, event_time, date_key, time_key, product_key, store_key,
       location_key, user_agent_key, referrer_key, campaign_key, device_id, visitor_id,
       kafka_partition, kafka_offset, %(batch_id)s
FROM fresh WHERE kind = 'other'
""",
    """
INSERT INTO bot_events (event_id, collection, event_time, user_agent_key, store_key,
    kafka_partition, kafka_offset, batch_id)
SELECT event_id, collection, event_time, user_agent_key, store_key, kafka_partition, kafka_offset,
       %(batch_id)s
FROM fresh WHERE kind = 'bot'
""",
    """
-- Rollups from exactly the page views inserted above: aggregates equal the facts by construction.
-- One hash aggregate per dimension at minute grain; hours are summed from the minutes.
INSERT INTO agg_page_views AS a (grain, bucket, dimension, value, views)
WITH pv AS MATERIALIZED (
    SELECT date_trunc('minute', event_time) AS bucket, product_id, store_id, country_code,
           referrer_medium, browser || ' / ' || os AS browser_os
    FROM fresh WHERE kind = 'page_view'
), minute AS (
    SELECT bucket, 'total' AS dimension, '' AS value, count(*) AS views FROM pv GROUP BY 1
    UNION ALL SELECT bucket, 'product', product_id, count(*) FROM pv GROUP BY 1, 3
    UNION ALL SELECT bucket, 'store', store_id, count(*) FROM pv GROUP BY 1, 3
    UNION ALL SELECT bucket, 'country', country_code, count(*) FROM pv GROUP BY 1, 3
    UNION ALL SELECT bucket, 'referrer_medium', referrer_medium, count(*) FROM pv GROUP BY 1, 3
    UNION ALL SELECT bucket, 'browser_os', browser_os, count(*) FROM pv GROUP BY 1, 3
)
SELECT 'minute', bucket, dimension, value, views FROM minute
UNION ALL
SELECT 'hour', date_trunc('hour', bucket), dimension, value, sum(views) FROM minute GROUP BY 2, 3, 4
ON CONFLICT (grain, bucket, dimension, value) DO UPDATE SET views = a.views + EXCLUDED.views
""",
    """
INSERT INTO visitor_days (day, device_key)
SELECT DISTINCT (event_time AT TIME ZONE 'UTC')::date, device_key FROM fresh WHERE kind = 'page_view'
ON CONFLICT DO NOTHING
""",
)

_COUNTS = """
SELECT count(*) FILTER (WHERE kind = 'page_view'), count(*) FILTER (WHERE kind = 'other'),
       count(*) FILTER (WHERE kind = 'bot'), max(event_epoch)
FROM fresh
"""

_WRITE_DEAD_LETTERS = """
INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, reason,
    detail, payload, batch_id)
SELECT kafka_topic, kafka_partition, kafka_offset, to_timestamp(kafka_timestamp_ms / 1000.0),
       reason, detail, payload_hex::bytea, %(batch_id)s
FROM stage_dead
"""

# Duplicates: staged events an earlier batch had accepted, and the later occurrences of an id
# within this batch. The statement's row count is the batch's duplicates.
_WRITE_DUPLICATES = """
INSERT INTO duplicate_records (kafka_topic, kafka_partition, kafka_offset, event_id, batch_id)
SELECT s.kafka_topic, s.kafka_partition, s.kafka_offset, s.event_id, %(batch_id)s
FROM stage_events s
WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.event_id = s.event_id)
UNION ALL
SELECT kafka_topic, kafka_partition, kafka_offset, event_id, %(batch_id)s
FROM stage_batch_duplicates
"""
