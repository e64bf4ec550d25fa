"""From raw Kafka rows to rows ready for the star schema.

One Python pass per Arrow batch (``mapInPandas``) validates each record and enriches the valid
ones, so records cross the JVM/Python boundary once; Spark then adds the calendar and
dimension keys natively. Each step is a function of a DataFrame (pandas or Spark), tested on
small inline frames.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BinaryType,
    DataType,
    DateType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from pagestream_spark.enrich.batch import enrich_batch, enriched_spark_schema
from pagestream_spark.validate import EVENT_FIELDS, classify_value

KAFKA_COLUMNS = ("topic", "partition", "offset", "timestamp")

# Built from types, not DDL: parsing DDL needs a SparkSession, which Python workers lack.
_TYPES: dict[str, DataType] = {
    "string": StringType(),
    "int": IntegerType(),
    "bigint": LongType(),
    "timestamp": TimestampType(),
    "binary": BinaryType(),
    "date": DateType(),
}
CLASSIFIED_SCHEMA = StructType(
    [
        StructField(name, _TYPES[sql_type])
        for name, sql_type in (
            ("topic", "string"),
            ("partition", "int"),
            ("offset", "bigint"),
            ("kafka_timestamp", "timestamp"),
            ("dead_letter_reason", "string"),
            ("dead_letter_detail", "string"),
            ("payload", "binary"),
            *EVENT_FIELDS,
            ("event_date", "date"),
        )
    ]
)


def classify_frame(raw: pd.DataFrame, now: int) -> pd.DataFrame:
    """Kafka rows (``value`` + coordinates) → one row per record: a dead-letter reason and the
    raw payload, or the event's typed fields and its UTC date."""
    verdicts = [classify_value(bytes(v), now) for v in raw["value"]]
    valid = np.fromiter(
        (fields is not None for _, _, fields in verdicts), dtype=bool, count=len(verdicts)
    )
    out = pd.DataFrame(
        {
            "topic": raw["topic"].to_numpy(),
            "partition": raw["partition"].to_numpy(),
            "offset": raw["offset"].to_numpy(),
            "kafka_timestamp": raw["timestamp"].to_numpy(),
            "dead_letter_reason": [reason for reason, _, _ in verdicts],
            "dead_letter_detail": [detail for _, detail, _ in verdicts],
            "payload": [
                None if ok else bytes(v) for ok, v in zip(valid, raw["value"], strict=True)
            ],
        }
    )
    empty = (None,) * len(EVENT_FIELDS)
    columns = list(zip(*((fields or empty) for _, _, fields in verdicts), strict=True)) or [
        () for _ in EVENT_FIELDS
    ]
    for (name, sql_type), values in zip(EVENT_FIELDS, columns, strict=True):
        if sql_type in ("bigint", "int"):
            out[name] = pd.array(values, dtype="Int64" if sql_type == "bigint" else "Int32")
        else:
            out[name] = pd.Series(values, dtype=object)
    # Integer day arithmetic: no float conversion of epochs (and no NaN for dead letters).
    dates = np.full(len(out), None, dtype=object)
    if valid.any():
        days = out["event_epoch"].to_numpy(dtype="int64", na_value=0)[valid] // 86_400
        dates[valid] = days.astype("datetime64[D]").astype(object)
    out["event_date"] = dates
    return out


def prepare_frames(
    frames: Iterator[pd.DataFrame],
    *,
    now: int,
    pii_key: bytes,
    anonymize_ip: bool,
    hash_email: bool,
) -> Iterator[pd.DataFrame]:
    """The ``mapInPandas`` body: classify, then enrich (raw IPs and e-mails do not survive)."""
    for raw in frames:
        classified = classify_frame(raw, now)
        yield enrich_batch(
            classified, pii_key=pii_key, anonymize_ip=anonymize_ip, hash_email=hash_email
        )


def classify_records(raw: DataFrame, processing_epoch: int | None = None) -> DataFrame:
    """Spark face of :func:`classify_frame` (validation only), for tests and tools."""
    now = int(time.time()) if processing_epoch is None else processing_epoch
    return raw.select("value", *KAFKA_COLUMNS).mapInPandas(
        lambda frames: (classify_frame(f, now) for f in frames), schema=CLASSIFIED_SCHEMA
    )


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
    """UTC date and time-of-day dimension keys of the event time."""
    utc = F.timestamp_seconds("event_epoch")
    return events.select(
        "*",
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


def prepare_batch(
    raw: DataFrame,
    *,
    pii_key: bytes,
    anonymize_ip: bool,
    hash_email: bool,
    processing_epoch: int | None = None,
) -> DataFrame:
    """Raw Kafka rows → every record classified; valid ones enriched and keyed for the sink."""
    now = int(time.time()) if processing_epoch is None else processing_epoch
    body = functools.partial(
        prepare_frames, now=now, pii_key=pii_key, anonymize_ip=anonymize_ip, hash_email=hash_email
    )
    enriched = raw.select("value", *KAFKA_COLUMNS).mapInPandas(
        body, schema=enriched_spark_schema(CLASSIFIED_SCHEMA)
    )
    return with_dimension_keys(with_event_time_columns(enriched))
