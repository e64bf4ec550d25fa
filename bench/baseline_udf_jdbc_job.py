"""The second baseline for bench/job_throughput.py: the same star-schema work, written the way
tutorials of a Kafka → Spark Structured Streaming → PostgreSQL pipeline write it.

Spark reads the same topic and parses each record with ``from_json`` and a fixed schema.
Enrichment is per-row Python UDFs (``@udf(useArrow=False)``: rows pickled to the Python workers,
not pandas or Arrow UDFs), each returning a struct:

- user agent → browser, browser version, OS, OS version, device class (bot, mobile, tablet,
  desktop, other) and a bot flag, with the ``user-agents`` library (ua-parser's legacy
  pure-Python regexes, its 200-entry cache);
- IP → country code and name with geoip2fast (``GeoIP2Fast.lookup`` per row, the same data file
  the job uses), opened once per Python worker;
- referrer URL → domain (``urllib.parse``, without ``www.``) and medium (direct, internal when
  it is the page's own host, search or social by substrings of a short list, else other);
- page URL → path and the five ``utm_*`` query parameters (the campaign).

Dimension keys are Spark's ``xxhash64`` of each dimension's natural key (the job's keys are
64-bit hashes too, so neither side looks keys up); calendar columns are Spark SQL functions.
Each micro-batch, in ``foreachBatch``: ``dropDuplicates`` on the event id, ``persist``; for
each of seven dimensions (date, product, store, location, user agent, referrer, campaign) the
batch's distinct rows go to a staging table by ``df.write.jdbc(..., mode="overwrite")``
(truncating it), then one psycopg2 statement ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``
moves them into the dimension; then the facts go by ``df.write.jdbc(..., mode="append")``:
page views, other events, and events from bots in a table of their own.

Validation, enough to drop bad records: a record whose JSON does not parse, or lacks one of the
contract's required fields (or has one of the wrong JSON type, which ``from_json`` reads as
null), whose ``time_stamp`` is before 2000-01-01 or more than a day ahead, or a page view
without ``product_id``, is filtered out.

What it does not do, compared with pagestream (so the figures compare like with like as far as
they go, and no further):

- not exactly once: a replayed micro-batch (after a crash) appends its facts again; there is no
  ``batch_commits`` ledger, no transaction around a batch (each JDBC write commits on its own)
  and no advisory lock;
- deduplication is within a micro-batch only (no ``event_ids`` table): a duplicate in a later
  batch than its original is stored twice;
- no dead-letter table and no accounting: dropped records are gone, with no reason, payload or
  Kafka coordinates kept, and nothing adds up per batch; the validation is coarser (no size
  limit, no length bounds, no exact UTF-8/JSON checks, ``false``/"" read as values);
- enrichment is what the libraries give: no extra bot keywords beyond ua-parser's
  (pagestream's list catches more crawlers and HTTP clients), no registrable-domain rules for
  referrers, no product page URLs or labels, no visitor id, the e-mail address hashed with
  plain SHA-256 (not a keyed HMAC), the IP's last IPv4 octet zeroed (IPv6 stored as sent);
- no rollups (``agg_page_views``), no unique-visitor bitmaps, no reports, no metrics endpoint, no
  migrations (the tables are created at start if missing), no replay skips, no graceful stop;
- dimensions are inserted and never updated (ON CONFLICT DO NOTHING).

    python bench/baseline_udf_jdbc_job.py BOOTSTRAP TOPIC JDBC_URL PASSWORD CHECKPOINT MAX_OFFSETS
"""

from __future__ import annotations

import sys
import time
from urllib.parse import parse_qs, urlsplit

import psycopg2
from geoip2fast import GeoIP2Fast
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import udf
from pyspark.sql.types import BooleanType, LongType, StringType, StructField, StructType
from user_agents import parse as parse_ua

DB_SCHEMA = "baseline_udf"
USER = "postgres"

SCHEMA = StructType(
    [
        StructField(name, StringType())
        for name in (
            "id",
            "collection",
            "device_id",
            "ip",
            "user_agent",
            "current_url",
            "store_id",
            "product_id",
            "referrer_url",
            "user_id_db",
            "email_address",
        )
    ]
    + [StructField("time_stamp", LongType())]
)
REQUIRED = ("id", "collection", "device_id", "ip", "user_agent", "current_url", "store_id")
PAGE_VIEW = "view_product_detail"


def _strings(*names: str) -> StructType:
    return StructType([StructField(n, StringType()) for n in names])


UA_TYPE = StructType(
    [
        *_strings("browser", "browser_version", "os", "os_version", "device_class").fields,
        StructField("is_bot", BooleanType()),
    ]
)


@udf(returnType=UA_TYPE, useArrow=False)
def parse_user_agent(user_agent: str | None) -> tuple[str, str, str, str, str, bool]:
    ua = parse_ua(user_agent or "")
    if ua.is_bot:
        device = "bot"
    elif ua.is_tablet:
        device = "tablet"
    elif ua.is_mobile:
        device = "mobile"
    elif ua.is_pc:
        device = "desktop"
    else:
        device = "other"
    return (
        ua.browser.family,
        ua.browser.version_string,
        ua.os.family,
        ua.os.version_string,
        device,
        ua.is_bot,
    )


@udf(returnType=_strings("country_code", "country_name"), useArrow=False)
def locate_ip(ip: str | None) -> tuple[str, str]:
    # One reader per Python worker process, kept on the (imported, so shared) class: a global
    # of this script would be unpickled afresh with the UDF for every task.
    reader = getattr(GeoIP2Fast, "baseline_reader", None)
    if reader is None:
        reader = GeoIP2Fast(geoip2fast_data_file="geoip2fast-ipv6.dat.gz")
        GeoIP2Fast.baseline_reader = reader
    try:
        found = reader.lookup(ip or "")
    except Exception:
        return ("ZZ", "Unknown")
    code = found.country_code
    if not code or len(code) != 2 or code == "--":
        return ("ZZ", "Unknown")
    return (code, found.country_name)


SEARCH = ("google.", "bing.", "yahoo.", "duckduckgo.", "yandex.", "baidu.", "ecosia.")
SOCIAL = ("facebook.", "instagram.", "pinterest.", "twitter.", "t.co", "tiktok.", "linkedin.")


def _host(url: str | None) -> str:
    try:
        host = (urlsplit(url).hostname or "") if url else ""
    except ValueError:
        return ""
    return host[4:] if host.startswith("www.") else host


@udf(returnType=_strings("domain", "medium"), useArrow=False)
def parse_referrer(referrer_url: str | None, current_url: str | None) -> tuple[str, str]:
    domain = _host(referrer_url)
    if not domain:
        return ("", "direct")
    if domain == _host(current_url):
        return (domain, "internal")
    if any(s in domain for s in SEARCH):
        return (domain, "search")
    if any(s in domain for s in SOCIAL):
        return (domain, "social")
    return (domain, "other")


UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


@udf(returnType=_strings("path", *UTM), useArrow=False)
def parse_page_url(url: str | None) -> tuple[str, ...]:
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return ("/", "", "", "", "", "")
    query = parse_qs(parts.query)
    return (parts.path or "/", *(query.get(k, [""])[0][:255] for k in UTM))


# Each dimension: table, key column, natural-key columns (as the batch names them).
DIMENSIONS = {
    "dim_product": ("product_key", ("product_id",)),
    "dim_store": ("store_key", ("store_id",)),
    "dim_location": ("location_key", ("country_code", "country_name")),
    "dim_user_agent": (
        "user_agent_key",
        ("browser", "browser_version", "os", "os_version", "device_class", "is_bot"),
    ),
    "dim_referrer": ("referrer_key", ("referrer_domain", "referrer_medium")),
    "dim_campaign": (
        "campaign_key",
        ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"),
    ),
    "dim_date": (
        "date_key",
        (
            "full_date",
            "year",
            "quarter",
            "month",
            "day_of_month",
            "day_of_week",
            "iso_week",
            "is_weekend",
        ),
    ),
}

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {DB_SCHEMA};
SET search_path TO {DB_SCHEMA};
CREATE TABLE IF NOT EXISTS dim_product (product_key bigint PRIMARY KEY, product_id text);
CREATE TABLE IF NOT EXISTS dim_store (store_key bigint PRIMARY KEY, store_id text);
CREATE TABLE IF NOT EXISTS dim_location (
    location_key bigint PRIMARY KEY, country_code text, country_name text);
CREATE TABLE IF NOT EXISTS dim_user_agent (
    user_agent_key bigint PRIMARY KEY, browser text, browser_version text, os text,
    os_version text, device_class text, is_bot boolean);
CREATE TABLE IF NOT EXISTS dim_referrer (
    referrer_key bigint PRIMARY KEY, referrer_domain text, referrer_medium text);
CREATE TABLE IF NOT EXISTS dim_campaign (
    campaign_key bigint PRIMARY KEY, utm_source text, utm_medium text, utm_campaign text,
    utm_term text, utm_content text);
CREATE TABLE IF NOT EXISTS dim_date (
    date_key integer PRIMARY KEY, full_date date, year integer, quarter integer,
    month integer, day_of_month integer, day_of_week integer, iso_week integer,
    is_weekend boolean);
CREATE TABLE IF NOT EXISTS dim_time_of_day (
    time_key integer PRIMARY KEY, hour integer, minute integer, day_period text);
INSERT INTO dim_time_of_day
SELECT m, m / 60, m % 60, CASE WHEN m / 60 < 6 THEN 'night' WHEN m / 60 < 12 THEN 'morning'
       WHEN m / 60 < 18 THEN 'afternoon' ELSE 'evening' END
FROM generate_series(0, 1439) AS m ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS fact_page_views (
    event_id text, event_time timestamptz, date_key integer, time_key integer,
    product_key bigint, store_key bigint, location_key bigint, user_agent_key bigint,
    referrer_key bigint, campaign_key bigint, device_id text, user_id_db text,
    email_hash text, ip_anonymized text, page_path text, kafka_partition integer,
    kafka_offset bigint, batch_id bigint);
CREATE TABLE IF NOT EXISTS fact_other_events (
    event_id text, collection text, event_time timestamptz, date_key integer,
    time_key integer, product_key bigint, store_key bigint, location_key bigint,
    user_agent_key bigint, referrer_key bigint, campaign_key bigint, device_id text,
    kafka_partition integer, kafka_offset bigint, batch_id bigint);
CREATE TABLE IF NOT EXISTS bot_events (
    event_id text, collection text, event_time timestamptz, user_agent_key bigint,
    store_key bigint, kafka_partition integer, kafka_offset bigint, batch_id bigint);
""" + "".join(f"CREATE TABLE IF NOT EXISTS stg_{name[4:]} (LIKE {name});\n" for name in DIMENSIONS)

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


def events(spark: SparkSession, bootstrap: str, topic: str, max_offsets: str) -> DataFrame:
    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", max_offsets)
        .load()
        .select(
            F.from_json(F.col("value").cast("string"), SCHEMA).alias("e"),
            F.col("partition").alias("kafka_partition"),
            F.col("offset").alias("kafka_offset"),
        )
        .select("e.*", "kafka_partition", "kafka_offset")
    )
    valid = F.col("time_stamp").between(
        F.lit(946_684_800), F.unix_timestamp(F.current_timestamp()) + 86_400
    )
    for name in REQUIRED:
        valid &= F.col(name).isNotNull() & (F.length(name) > 0)
    valid &= (F.col("collection") != PAGE_VIEW) | F.col("product_id").isNotNull()
    event_time = F.timestamp_seconds("time_stamp")
    day = F.to_date(event_time)
    return (
        raw.filter(valid)
        .withColumn("ua", parse_user_agent("user_agent"))
        .withColumn("geo", locate_ip("ip"))
        .withColumn("ref", parse_referrer("referrer_url", "current_url"))
        .withColumn("page", parse_page_url("current_url"))
        .select(
            F.col("id").alias("event_id"),
            "collection",
            event_time.alias("event_time"),
            "device_id",
            "user_id_db",
            F.sha2("email_address", 256).alias("email_hash"),
            F.regexp_replace("ip", r"^(\d+\.\d+\.\d+)\.\d+$", "$1.0").alias("ip_anonymized"),
            "store_id",
            "product_id",
            "ua.*",
            "geo.*",
            F.col("ref.domain").alias("referrer_domain"),
            F.col("ref.medium").alias("referrer_medium"),
            F.col("page.path").alias("page_path"),
            *(F.col(f"page.{k}").alias(k) for k in UTM),
            day.alias("full_date"),
            F.date_format(day, "yyyyMMdd").cast("int").alias("date_key"),
            F.year(day).alias("year"),
            F.quarter(day).alias("quarter"),
            F.month(day).alias("month"),
            F.dayofmonth(day).alias("day_of_month"),
            (F.weekday(day) + 1).alias("day_of_week"),
            F.weekofyear(day).alias("iso_week"),
            (F.weekday(day) >= 5).alias("is_weekend"),
            (F.hour(event_time) * 60 + F.minute(event_time)).alias("time_key"),
            "kafka_partition",
            "kafka_offset",
        )
        .withColumns(
            {
                key: F.when(F.col(columns[0]).isNotNull(), F.xxhash64(*columns))
                for table, (key, columns) in DIMENSIONS.items()
                if table != "dim_date"
            }
        )
    )


def main(
    bootstrap: str, topic: str, jdbc_url: str, password: str, checkpoint: str, max_offsets: str
) -> None:
    host_port, database = jdbc_url.removeprefix("jdbc:postgresql://").split("/", 1)
    host, port = host_port.split(":")
    dsn = dict(host=host, port=port, dbname=database, user=USER, password=password)
    with psycopg2.connect(**dsn) as conn, conn.cursor() as cur:
        cur.execute(DDL)
    conn.close()
    jdbc = {"user": USER, "password": password, "driver": "org.postgresql.Driver"}

    spark = SparkSession.builder.appName("baseline-udf-jdbc").getOrCreate()

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        batch = batch.dropDuplicates(["event_id"]).withColumn("batch_id", F.lit(batch_id))
        batch.persist()
        for table, (key, columns) in DIMENSIONS.items():
            staging = f"{DB_SCHEMA}.stg_{table[4:]}"
            rows = batch.select(key, *columns).dropDuplicates([key]).filter(F.col(key).isNotNull())
            # Staging table truncated and refilled, then upserted in SQL, as tutorials do.
            (
                rows.write.option("truncate", "true").jdbc(
                    jdbc_url, staging, mode="overwrite", properties=jdbc
                )
            )
            with psycopg2.connect(**dsn) as conn, conn.cursor() as cur:
                cur.execute(
                    f"INSERT INTO {DB_SCHEMA}.{table} SELECT * FROM {staging} "
                    f"ON CONFLICT ({key}) DO NOTHING"
                )
            conn.close()
        humans = batch.filter(~F.col("is_bot"))
        facts = {
            "fact_page_views": humans.filter(F.col("collection") == PAGE_VIEW).select(
                "event_id",
                "event_time",
                *FACT_KEYS,
                "device_id",
                "user_id_db",
                "email_hash",
                "ip_anonymized",
                "page_path",
                "kafka_partition",
                "kafka_offset",
                "batch_id",
            ),
            "fact_other_events": humans.filter(F.col("collection") != PAGE_VIEW).select(
                "event_id",
                "collection",
                "event_time",
                *FACT_KEYS,
                "device_id",
                "kafka_partition",
                "kafka_offset",
                "batch_id",
            ),
            "bot_events": batch.filter(F.col("is_bot")).select(
                "event_id",
                "collection",
                "event_time",
                "user_agent_key",
                "store_key",
                "kafka_partition",
                "kafka_offset",
                "batch_id",
            ),
        }
        for table, rows in facts.items():
            rows.write.jdbc(jdbc_url, f"{DB_SCHEMA}.{table}", mode="append", properties=jdbc)
        batch.unpersist()
        print(f"batch {batch_id} written in {time.monotonic() - started:.1f}s", flush=True)

    query = (
        events(spark, bootstrap, topic, max_offsets)
        .writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:7])
