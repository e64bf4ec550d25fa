"""The star schema as the sink writes it: which sink-row columns go to which table, the
dimensions and how each is inserted, and the SQL of every other write. Definitions only, no I/O;
the tables themselves are created by migrations/."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from pagestream_spark.transform import SINK_SCHEMA

# Sink-row columns only a dead letter has (null on a valid event's row).
DEAD_ONLY_COLUMNS = ("dead_letter_reason", "dead_letter_detail", "payload")
# Columns a dead letter is written from.
DEAD_SOURCE_COLUMNS = (
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp_ms",
    *DEAD_ONLY_COLUMNS,
)
# The sink rows' columns of a valid event.
EVENT_COLUMNS = tuple(name for name in SINK_SCHEMA.names if name not in DEAD_ONLY_COLUMNS)
_SQL_TYPES = {
    pa.string(): "text",
    pa.int16(): "smallint",
    pa.int32(): "integer",
    pa.int64(): "bigint",
    pa.bool_(): "boolean",
}
# PostgreSQL type of each event column, for staging tables.
EVENT_COLUMN_TYPES = {name: _SQL_TYPES[SINK_SCHEMA.field(name).type] for name in EVENT_COLUMNS}

# The Kafka coordinates and id of a duplicate record (duplicate_records adds the batch id).
BATCH_DUPLICATE_COLUMNS = (
    ("kafka_topic", "text"),
    ("kafka_partition", "integer"),
    ("kafka_offset", "bigint"),
    ("event_id", "text"),
)


@dataclass(frozen=True)
class Dimension:
    table: str
    # Staged columns (named as in the event rows); the first is the key.
    columns: tuple[str, ...]
    # INSERT ... SELECT from the staging table "stage" (distinct rows of `columns`).
    insert: str

    @property
    def key(self) -> str:
        return self.columns[0]


# ON CONFLICT DO NOTHING: a key is a hash of the natural key, so an existing row already holds
# the same values. NULLs become '' where the dimension's natural key says NOT NULL DEFAULT ''.
# dim_product, whose page URL and label move forward, is upserted apart (PRODUCT_STAGE_COLUMNS).
DIMENSIONS = (
    Dimension(
        "dim_date",
        ("date_key",),
        """INSERT INTO dim_date (date_key, full_date, year, quarter, month, day_of_month, day_of_week, iso_week, is_weekend)
SELECT date_key, d, extract(year FROM d), extract(quarter FROM d), extract(month FROM d),
       extract(day FROM d), extract(isodow FROM d), extract(week FROM d), extract(isodow FROM d) >= 6
FROM (SELECT date_key, to_date(date_key::text, 'YYYYMMDD') AS d FROM stage) s
ON CONFLICT DO NOTHING""",
    ),
    Dimension(
        "dim_store",
        ("store_key", "store_id"),
        """INSERT INTO dim_store (store_key, store_id)
SELECT store_key, store_id FROM stage ON CONFLICT DO NOTHING""",
    ),
    Dimension(
        "dim_location",
        ("location_key", "country_code", "country_name", "region", "city"),
        """INSERT INTO dim_location (location_key, country_code, country_name, region, city)
SELECT DISTINCT ON (location_key) location_key, country_code, country_name,
       coalesce(region, ''), coalesce(city, '')
FROM stage ON CONFLICT DO NOTHING""",
    ),
    Dimension(
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
    Dimension(
        "dim_referrer",
        ("referrer_key", "referrer_domain", "referrer_medium"),
        """INSERT INTO dim_referrer (referrer_key, domain, medium)
SELECT DISTINCT ON (referrer_key) referrer_key, coalesce(referrer_domain, ''), referrer_medium
FROM stage ON CONFLICT DO NOTHING""",
    ),
    Dimension(
        "dim_campaign",
        ("campaign_key", "utm_source_n", "utm_medium_n", "utm_campaign", "utm_term", "utm_content"),
        """INSERT INTO dim_campaign (campaign_key, source, medium, name, term, content)
SELECT DISTINCT ON (campaign_key) campaign_key, coalesce(utm_source_n, ''), coalesce(utm_medium_n, ''),
       coalesce(utm_campaign, ''), coalesce(utm_term, ''), coalesce(utm_content, '')
FROM stage ON CONFLICT DO NOTHING""",
    ),
)

# dim_product's staged rows (plan.product_rows): per product and shop host, the newest product
# page of the batch (url_epoch: its event time) and the first event time on that host; a
# product without a product page in the batch has one row of nulls. Texts compared as
# COLLATE "C", the byte order Arrow sorts by, so the batch and PostgreSQL agree on ties.
PRODUCT_STAGE_COLUMNS = (
    ("product_key", "bigint"),
    ("product_id", "text"),
    ("product_url", 'text COLLATE "C"'),
    ("product_label", "text"),
    ("url_host", 'text COLLATE "C"'),
    ("url_epoch", "bigint"),
    ("first_epoch", "bigint"),
)
# One row per product (DISTINCT ON): the candidate on the host the product's URL is pinned to
# if it has one, else the host seen first (earliest event time, then host). The stored URL
# only moves forward: on its own host, to a later (event time, URL). A replay, a late event
# and a page on another host all leave it as it is.
UPSERT_PRODUCTS = """INSERT INTO dim_product AS p (product_key, product_id, product_url, product_label, url_host, url_event_time)
SELECT DISTINCT ON (s.product_key) s.product_key, s.product_id, s.product_url, s.product_label,
       s.url_host, to_timestamp(s.url_epoch)
FROM stage s LEFT JOIN dim_product d ON d.product_key = s.product_key
ORDER BY s.product_key, (s.url_host = d.url_host) IS TRUE DESC, s.first_epoch, s.url_host
ON CONFLICT (product_key) DO UPDATE
SET product_url = EXCLUDED.product_url, product_label = EXCLUDED.product_label,
    url_host = EXCLUDED.url_host, url_event_time = EXCLUDED.url_event_time
WHERE EXCLUDED.product_url IS NOT NULL
  AND (p.product_url IS NULL
       OR (EXCLUDED.url_host = p.url_host
           AND (EXCLUDED.url_event_time, EXCLUDED.product_url) > (p.url_event_time, p.product_url)))"""
# What the staged products hold after the upsert (for the sink's cache of them).
STAGED_PRODUCT_PAGES = """SELECT p.product_key, p.url_host, extract(epoch FROM p.url_event_time)::bigint, p.product_url
FROM dim_product p WHERE p.product_key IN (SELECT product_key FROM stage)"""

FACT_KEYS = (
    "date_key",
    "time_key",
    "product_key",
    "store_key",
    "location_key",
    "user_agent_key",
    "referrer_key",
    "campaign_key",
)

# Each fact table's columns, in the names of the sink rows (plan.fact_rows derives the few that
# are not the sink rows' own: event_time, batch_id).
PAGE_VIEW_COLUMNS = (
    "event_id",
    "event_time",
    *FACT_KEYS,
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
OTHER_EVENT_COLUMNS = (
    "event_id",
    "collection",
    "event_time",
    *FACT_KEYS,
    "device_id",
    "visitor_id",
    "kafka_partition",
    "kafka_offset",
    "batch_id",
)
BOT_EVENT_COLUMNS = (
    "event_id",
    "collection",
    "event_time",
    "user_agent_key",
    "store_key",
    "kafka_partition",
    "kafka_offset",
    "batch_id",
)

# agg_page_views dimensions: the event column each page view is counted under. "total" (one
# value, ''), "browser_os" ("<browser> / <os>") and the composite ones (their columns joined by
# ROLLUP_SEPARATOR, a null as '') are derived in plan.page_view_rollups.
ROLLUP_COLUMNS = {
    "product": "product_id",
    "store": "store_id",
    "country": "country_code",
    "referrer_medium": "referrer_medium",
    "device_class": "device_class",
}
ROLLUP_SEPARATOR = "\x1f"
COMPOSITE_ROLLUPS = {
    "referrer": ("referrer_domain", "referrer_medium"),
    "country_store": ("country_code", "store_id"),
    "campaign": ("utm_source_n", "utm_medium_n", "utm_campaign"),
}
ROLLUP_DIMENSIONS = ("total", *ROLLUP_COLUMNS, "browser_os", *COMPOSITE_ROLLUPS)
# The dimensions also counted per minute: the few-valued ones the live dashboard panels read.
# Per minute, a product (or referrer, campaign, country and store) has about one page view
# per row: those rows cost as much disk as the facts (~190 bytes per event measured in
# bench/history.py) and are counted per hour only.
MINUTE_DIMENSIONS = ("total", "store", "country", "referrer_medium", "browser_os", "device_class")

# What an INSERT from a staging copy of the table does with a row whose key exists.
IGNORE_KNOWN = "ON CONFLICT DO NOTHING"
# One row per key in the batch, so no row is updated twice by one statement.
ADD_VIEWS = "ON CONFLICT (grain, bucket, dimension, value) DO UPDATE SET views = target.views + EXCLUDED.views"

STAGE_EVENT_IDS = (
    'CREATE TEMP TABLE stage_ids (seq bigint, event_id text COLLATE "C", event_day date)'
    " ON COMMIT DROP"
)
# The staged (id, day)s an earlier batch had accepted (their seq), registering the others.
REGISTER_EVENT_IDS = """
WITH accepted AS (
    INSERT INTO event_ids (event_id, event_day)
    SELECT event_id, event_day FROM stage_ids
    ON CONFLICT DO NOTHING
    RETURNING event_id, event_day
)
SELECT s.seq FROM stage_ids s
WHERE NOT EXISTS (SELECT 1 FROM accepted a WHERE a.event_id = s.event_id AND a.event_day = s.event_day)
"""
# A batch's (UTC day, device) pairs, as bits of the day bitmaps (migrations/V006).
STAGE_VISITORS = "CREATE TEMP TABLE stage_visitors (day date, device_key bigint) ON COMMIT DROP"
# Devices first seen now take the next numbers. NOT EXISTS first: ON CONFLICT alone would draw
# a number for every known device too and leave the bitmaps sparse.
NUMBER_NEW_VISITORS = """
INSERT INTO visitor_numbers (device_key)
SELECT DISTINCT s.device_key FROM stage_visitors s
WHERE NOT EXISTS (SELECT 1 FROM visitor_numbers n WHERE n.device_key = s.device_key)
ON CONFLICT DO NOTHING
"""
# One row per (day, 1,024 numbers), OR-ed into the row already there.
SET_VISITOR_BITS = """
INSERT INTO visitor_bitmaps AS target (day, chunk, bits)
SELECT s.day, (n.visitor_no >> 10)::integer, bit_or(B'1'::bit(1024) >> (n.visitor_no & 1023)::integer)
FROM stage_visitors s JOIN visitor_numbers n USING (device_key)
GROUP BY 1, 2
ON CONFLICT (day, chunk) DO UPDATE SET bits = target.bits | EXCLUDED.bits
"""
# The partitions of these UTC days in every partitioned table (migrations/V005).
ENSURE_PARTITIONS = "SELECT ensure_partitions(%s::date[])"

BATCH_COMMITTED = "SELECT 1 FROM batch_commits WHERE query_id = %s AND batch_id = %s"
RECORD_BATCH = (
    "INSERT INTO batch_commits (query_id, batch_id, consumed, page_views, other_events,"
    " duplicates, dead_lettered, bots, max_event_time)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s))"
)
LOCK_QUERY = "SELECT pg_advisory_xact_lock(hashtext(%s))"

STORE_PIPELINE_SETTING = (
    "INSERT INTO pipeline_settings VALUES (%s, %s) "
    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
)
# Found through the hour rollups' primary key: a max() over the facts would read every
# partition (their BRIN indexes cannot answer it).
NEWEST_PAGE_VIEW_EPOCH = """SELECT extract(epoch FROM max(f.event_time)) FROM fact_page_views f
WHERE f.event_time >= (SELECT max(bucket) FROM agg_page_views_hour WHERE dimension = 'total')"""
