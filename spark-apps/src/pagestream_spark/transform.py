"""From raw Kafka rows to rows ready for the star schema.

One Python pass per Arrow batch (``mapInArrow``) validates each record and enriches the valid
ones, so records cross the JVM/Python boundary once; Spark then adds the calendar and
dimension keys natively. Each step is a function of a DataFrame (pandas or Spark), tested on
small inline frames.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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

from pagestream_spark.enrich.batch import (
    DROPPED_COLUMNS,
    ENRICHED_FIELDS,
    INPUT_COLUMNS,
    enrich_batch,
    enriched_spark_schema,
)
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


_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "boolean": pa.bool_(),
}


def classify_arrays(raw: pa.RecordBatch, now: int) -> dict[str, pa.Array]:
    """Kafka rows (``value`` + coordinates) → CLASSIFIED_SCHEMA columns: a dead-letter reason
    and the raw payload, or the event's typed fields and its UTC date."""
    values = raw.column("value").to_pylist()
    verdicts = [classify_value(v, now) for v in values]
    valid = [fields is not None for _, _, fields in verdicts]
    out: dict[str, pa.Array] = {
        "topic": raw.column("topic"),
        "partition": raw.column("partition"),
        "offset": raw.column("offset"),
        "kafka_timestamp": raw.column("timestamp"),
        "dead_letter_reason": pa.array([r for r, _, _ in verdicts], pa.string()),
        "dead_letter_detail": pa.array([d for _, d, _ in verdicts], pa.string()),
        "payload": pa.array(
            [None if ok else v for ok, v in zip(valid, values, strict=True)], pa.binary()
        ),
    }
    empty = (None,) * len(EVENT_FIELDS)
    columns = list(zip(*((fields or empty) for _, _, fields in verdicts), strict=True))
    for index, (name, sql_type) in enumerate(EVENT_FIELDS):
        out[name] = pa.array(columns[index] if columns else [], _ARROW_TYPES[sql_type])
    # Integer day arithmetic on the epochs: date32 is days since 1970-01-01.
    days = pc.divide(out["event_epoch"], 86_400)
    out["event_date"] = pc.cast(days, pa.int32()).cast(pa.date32())
    return out


def classify_batches(batches: Iterator[pa.RecordBatch], now: int) -> Iterator[pa.RecordBatch]:
    for raw in batches:
        yield pa.RecordBatch.from_pydict(classify_arrays(raw, now))


def prepare_batches(
    batches: Iterator[pa.RecordBatch],
    *,
    now: int,
    pii_key: bytes,
    anonymize_ip: bool,
    hash_email: bool,
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` body: classify, then enrich. Only the enrichment's inputs go through
    pandas; everything else stays Arrow (pandas conversion of a batch cost more than its
    validation)."""
    for raw in batches:
        columns = classify_arrays(raw, now)
        inputs = pd.DataFrame(
            {
                name: columns[name].to_pandas(date_as_object=True)
                for name in INPUT_COLUMNS  # raw IPs and e-mails included: read, never passed on
            }
        )
        enriched = enrich_batch(
            inputs, pii_key=pii_key, anonymize_ip=anonymize_ip, hash_email=hash_email
        )
        kept = {name: array for name, array in columns.items() if name not in DROPPED_COLUMNS}
        for name, sql_type, _ in ENRICHED_FIELDS:
            kept[name] = pa.Array.from_pandas(enriched[name], type=_ARROW_TYPES[sql_type])
        yield pa.RecordBatch.from_pydict(kept)


def classify_records(raw: DataFrame, processing_epoch: int | None = None) -> DataFrame:
    """Spark face of :func:`classify_arrays` (validation only), for tests and tools."""
    now = int(time.time()) if processing_epoch is None else processing_epoch
    return raw.select("value", *KAFKA_COLUMNS).mapInArrow(
        functools.partial(classify_batches, now=now), schema=CLASSIFIED_SCHEMA
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
        prepare_batches, now=now, pii_key=pii_key, anonymize_ip=anonymize_ip, hash_email=hash_email
    )
    enriched = raw.select("value", *KAFKA_COLUMNS).mapInArrow(
        body, schema=enriched_spark_schema(CLASSIFIED_SCHEMA)
    )
    return with_dimension_keys(with_event_time_columns(enriched))
