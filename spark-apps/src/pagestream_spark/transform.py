"""From classified records to rows ready for the star schema: enrichment and dimension keys.

Each function is DataFrame → DataFrame (or Column), so it can be tested on small inline frames.
"""

from __future__ import annotations

import functools

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pagestream_spark.enrich.batch import enrich_batches, enriched_spark_schema
from pagestream_spark.validate import classify_records


def natural_key(*columns: str) -> Column:
    """A 64-bit dimension key from the natural key's columns. Nulls become '' first, since
    xxhash64 skips nulls and would give ('a', null) and (null, 'a') the same key."""
    return F.xxhash64(*(F.coalesce(F.col(c).cast("string"), F.lit("")) for c in columns))


# Dimension key columns and the natural-key columns each is computed from. The same column
# lists are the dimensions' UNIQUE constraints in migrations/V001__star_schema.sql.
DIMENSION_KEYS: dict[str, tuple[str, ...]] = {
    "product_key": ("product_id",),
    "store_key": ("store_id",),
    "location_key": ("country_code", "region", "city"),
    "user_agent_key": ("browser", "browser_version", "os", "os_version", "device_class", "is_bot"),
    "referrer_key": ("referrer_domain", "referrer_medium"),
    "campaign_key": ("utm_source_n", "utm_medium_n", "utm_campaign", "utm_term", "utm_content"),
    "device_key": ("device_id",),
}


def with_event_time_columns(events: DataFrame) -> DataFrame:
    """UTC calendar columns of the event time: the date the enrichment salts visitor ids with,
    and the date/time-of-day dimension keys."""
    event_time = F.timestamp_seconds("event_epoch")
    utc = F.to_utc_timestamp(event_time, "UTC")
    return events.select(
        "*",
        F.to_date(utc).alias("event_date"),
        (F.year(utc) * 10000 + F.month(utc) * 100 + F.dayofmonth(utc)).alias("date_key"),
        (F.hour(utc) * 60 + F.minute(utc)).cast("short").alias("time_key"),
    )


def with_dimension_keys(enriched: DataFrame) -> DataFrame:
    keys = [
        F.when(F.col(cols[0]).isNotNull(), natural_key(*cols)).alias(key)
        if key == "product_key"
        else natural_key(*cols).alias(key)
        for key, cols in DIMENSION_KEYS.items()
    ]
    return enriched.select("*", *keys)


def enrich(events: DataFrame, *, pii_key: bytes, anonymize_ip: bool, hash_email: bool) -> DataFrame:
    """Vectorised enrichment (user agent, geo, referrer, URL/campaign, PII hashing) of every row
    with pandas on Arrow batches. Raw IPs and e-mail addresses do not survive this step."""
    return events.mapInPandas(
        functools.partial(
            enrich_batches, pii_key=pii_key, anonymize_ip=anonymize_ip, hash_email=hash_email
        ),
        schema=enriched_spark_schema(events.schema),
    )


def prepare_batch(
    raw: DataFrame,
    *,
    pii_key: bytes,
    anonymize_ip: bool,
    hash_email: bool,
    processing_epoch: Column | None = None,
) -> DataFrame:
    """Raw Kafka rows → every record classified; valid ones enriched and keyed for the sink."""
    classified = classify_records(raw, processing_epoch)
    dated = with_event_time_columns(classified)
    enriched = enrich(dated, pii_key=pii_key, anonymize_ip=anonymize_ip, hash_email=hash_email)
    return with_dimension_keys(enriched)
