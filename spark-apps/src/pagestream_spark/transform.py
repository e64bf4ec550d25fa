"""From raw Kafka rows to rows ready for the star schema.

One Python pass per Arrow batch (``mapInArrow``) validates each record, enriches the valid
ones, adds the calendar and dimension keys and packs the sink's rows as Arrow IPC, so records
cross into Python once and come back to the driver as a few opaque values. Each step is a
function of Arrow data, tested on small inline batches.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import BinaryType, StructField, StructType

from pagestream_common.contract import MIN_EVENT_EPOCH, PAGE_VIEW
from pagestream_spark.enrich.batch import (
    DROPPED_COLUMNS,
    ENRICHED_FIELDS,
    INPUT_COLUMNS,
    enrich_batch,
)
from pagestream_spark.options import ProcessingOptions
from pagestream_spark.validate import EVENT_FIELDS, classify_values

KAFKA_COLUMNS = ("topic", "partition", "offset", "timestamp")

_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "boolean": pa.bool_(),
}


# One struct type over the event fields: pyarrow converts the fast path's tuples into it in
# one pass of C++, then splits it into columns (transposing the tuples in Python, zip(*rows),
# cost more than validating them).
_EVENT_STRUCT = pa.struct([(name, _ARROW_TYPES[sql_type]) for name, sql_type in EVENT_FIELDS])


def classify_arrays(
    raw: pa.RecordBatch, now: int, oldest_epoch: int = MIN_EVENT_EPOCH
) -> dict[str, pa.Array]:
    """Kafka rows (``value`` + coordinates) → the Kafka coordinates, then a dead-letter reason
    and the raw payload, or the event's typed fields (``EVENT_FIELDS``) and its UTC date."""
    values = raw.column("value").to_pylist()
    verdicts = classify_values(values, now, oldest_epoch)
    out: dict[str, pa.Array] = {
        "topic": raw.column("topic"),
        "partition": raw.column("partition"),
        "offset": raw.column("offset"),
        "kafka_timestamp": raw.column("timestamp"),
        "dead_letter_reason": pa.array(verdicts.reasons, pa.string()),
        "dead_letter_detail": pa.array(verdicts.details, pa.string()),
        "payload": pa.array(
            [None if f is not None else v for f, v in zip(verdicts.fields, values, strict=True)],
            pa.binary(),
        ),
    }
    events = pa.array(verdicts.fields, _EVENT_STRUCT)
    for (name, _), column in zip(EVENT_FIELDS, events.flatten(), strict=True):
        out[name] = column
    # Integer day arithmetic on the epochs: date32 is days since 1970-01-01.
    days = pc.divide(out["event_epoch"], 86_400)
    out["event_date"] = pc.cast(days, pa.int32()).cast(pa.date32())
    return out


def prepare_batches(
    batches: Iterator[pa.RecordBatch], *, now: int, options: ProcessingOptions
) -> Iterator[pa.RecordBatch]:
    """Classify, then enrich: the first half of ``packed_sink_batches``. Only the enrichment's
    inputs go through pandas; everything else stays Arrow (pandas conversion of a batch cost
    more than its validation)."""
    for raw in batches:
        columns = classify_arrays(raw, now, options.oldest_kept_epoch(now))
        inputs = pd.DataFrame(
            {
                name: columns[name].to_pandas(date_as_object=True)
                for name in INPUT_COLUMNS  # raw IPs and e-mails included: read, never passed on
            }
        )
        enriched = enrich_batch(
            inputs,
            pii_key=options.pii_key,
            anonymize_ip=options.anonymize_ip,
            hash_email=options.hash_email,
        )
        kept = {name: array for name, array in columns.items() if name not in DROPPED_COLUMNS}
        for name, sql_type, _ in ENRICHED_FIELDS:
            kept[name] = pa.Array.from_pandas(enriched[name], type=_ARROW_TYPES[sql_type])
        yield pa.RecordBatch.from_pydict(kept)


# A valid page view, for warming the Python workers up (see warm_up_python_workers).
_SAMPLE_EVENT = (
    b'{"id":"warm-up","time_stamp":1700000000,"ip":"192.0.2.1","user_agent":"Mozilla/5.0 '
    b"(Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 "
    b'Safari/537.36","device_id":"d","store_id":"1","collection":"view_product_detail",'
    b'"product_id":"1","current_url":"https://www.example.com/p.html?utm_source=x",'
    b'"referrer_url":"https://www.google.com/","email_address":"a@example.com"}'
)


def _warm_up_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    sample = pa.RecordBatch.from_pydict(
        {
            "value": pa.array([_SAMPLE_EVENT], pa.binary()),
            "topic": pa.array(["warm-up"]),
            "partition": pa.array([0], pa.int32()),
            "offset": pa.array([0], pa.int64()),
            "timestamp": pa.array([0], pa.timestamp("us")),
        }
    )
    for _ in prepare_batches(
        iter([sample]), now=1_700_000_000, options=ProcessingOptions(pii_key=b"warm-up")
    ):
        pass
    yield from batches


def warm_up_python_workers(spark: SparkSession) -> None:
    """Run one record through the whole Python pass in as many Python workers as tasks run at
    once, before the stream starts. Spark reuses those workers, so the first micro-batch does
    not pay for imports, the GeoIP tables and the user-agent regexes (~7 s measured on the
    first batch of a live run, which held every event behind it)."""
    workers = spark.sparkContext.defaultParallelism
    spark.range(workers, numPartitions=workers).mapInArrow(_warm_up_batches, "id long").collect()


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
# Keys that are null when their first column is (a product key only for events with a product).
NULL_WHEN_ABSENT = ("product_key",)

# Spark's hash functions start from this seed (Murmur3Hash and XxHash64 alike).
_SPARK_HASH_SEED = 42
_SIGNED = 1 << 64


def _as_key_text(column: pa.Array) -> pa.Array:
    """The text Spark hashes for ``coalesce(cast(column AS string), '')``."""
    if pa.types.is_boolean(column.type):
        column = pc.if_else(column, "true", "false")
    elif not pa.types.is_string(column.type):
        column = pc.cast(column, pa.string())
    return pc.fill_null(column, "")


def natural_keys(columns: Sequence[pa.Array]) -> pa.Array:
    """64-bit keys of the rows' natural keys, bit-identical to Spark's
    ``xxhash64(coalesce(cast(c1 AS string), ''), ...)``: XXH64 of each value's UTF-8 bytes,
    seeded with the previous column's hash (42 for the first), as a signed integer. Nulls
    become '' first, as xxhash64 skips nulls and would give ('a', null) and (null, 'a') the
    same key. Each distinct combination is hashed once."""
    dictionaries: list[list[bytes]] = []
    codes = []
    for column in columns:
        encoded = pc.dictionary_encode(_as_key_text(column))
        dictionaries.append([text.encode() for text in encoded.dictionary.to_pylist()])
        codes.append(encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64))
    # Distinct combinations of the columns' dictionary codes, each hashed once. One int64 per
    # combination (mixed radix) and a hash-based factorize: sorting rows (np.unique with
    # axis=0) cost more than the rest of the Python pass's keying.
    radices = [max(len(d), 1) for d in dictionaries]
    if np.prod(np.array(radices, dtype=np.float64)) < 2.0**62:
        combined = np.zeros(len(codes[0]), dtype=np.int64)
        for code, radix in zip(codes, radices, strict=True):
            combined = combined * radix + code
        row_combination, combined_distinct = pd.factorize(combined)
        digits = []
        for radix in reversed(radices):
            combined_distinct, digit = np.divmod(combined_distinct, radix)
            digits.append(digit)
        distinct = np.stack(digits[::-1], axis=1) if digits else np.empty((0, 0), np.int64)
    else:
        distinct, row_combination = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    keys = np.empty(len(distinct), dtype=np.int64)
    for position, combination in enumerate(distinct.tolist()):
        value = _SPARK_HASH_SEED
        for dictionary, code in zip(dictionaries, combination, strict=True):
            value = xxhash.xxh64_intdigest(dictionary[code], value)
        keys[position] = value - _SIGNED if value >= 1 << 63 else value
    return pa.array(keys[row_combination.reshape(-1)], type=pa.int64())


def event_time_keys(event_epoch: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(date_key yyyymmdd, time_key minute of the day) of UTC event times; null stays null."""
    utc = pc.cast(event_epoch, pa.timestamp("s", tz="UTC"))
    date_key = pc.add(
        pc.add(pc.multiply(pc.year(utc), 10_000), pc.multiply(pc.month(utc), 100)), pc.day(utc)
    )
    time_key = pc.add(pc.multiply(pc.hour(utc), 60), pc.minute(utc))
    return pc.cast(date_key, pa.int32()), pc.cast(time_key, pa.int16())


# The columns the sink receives, in order: the event columns of its fact tables, then those
# of a dead letter. `dead_letter_reason` tells the two kinds of row apart.
SINK_SCHEMA = pa.schema(
    [
        ("kafka_topic", pa.string()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("event_id", pa.string()),
        ("event_epoch", pa.int64()),
        ("collection", pa.string()),
        ("device_id", pa.string()),
        ("device_key", pa.int64()),
        ("date_key", pa.int32()),
        ("time_key", pa.int16()),
        ("store_id", pa.string()),
        ("store_key", pa.int64()),
        ("product_id", pa.string()),
        ("product_key", pa.int64()),
        ("country_code", pa.string()),
        ("country_name", pa.string()),
        ("region", pa.string()),
        ("city", pa.string()),
        ("location_key", pa.int64()),
        ("browser", pa.string()),
        ("browser_version", pa.string()),
        ("os", pa.string()),
        ("os_version", pa.string()),
        ("device_class", pa.string()),
        ("is_bot", pa.bool_()),
        ("user_agent_key", pa.int64()),
        ("referrer_domain", pa.string()),
        ("referrer_medium", pa.string()),
        ("referrer_key", pa.int64()),
        ("utm_source_n", pa.string()),
        ("utm_medium_n", pa.string()),
        ("utm_campaign", pa.string()),
        ("utm_term", pa.string()),
        ("utm_content", pa.string()),
        ("campaign_key", pa.int64()),
        ("visitor_id", pa.int64()),
        ("user_id_db", pa.string()),
        ("email_hash", pa.string()),
        ("ip_anonymized", pa.string()),
        ("page_path", pa.string()),
        # The canonical product page URL of a page view (null on every other row).
        ("product_url", pa.string()),
        ("kafka_timestamp_ms", pa.int64()),
        ("dead_letter_reason", pa.string()),
        ("dead_letter_detail", pa.string()),
        ("payload", pa.binary()),
    ]
)


def sink_row_batch(prepared: pa.RecordBatch) -> pa.RecordBatch:
    """An enriched batch (``prepare_batches``) → SINK_SCHEMA: Kafka coordinates renamed,
    dimension and calendar keys added."""
    columns = {name: prepared.column(name) for name in prepared.schema.names}
    columns["kafka_topic"] = columns.pop("topic")
    columns["kafka_partition"] = columns.pop("partition")
    columns["kafka_offset"] = columns.pop("offset")
    timestamps = pc.cast(columns["kafka_timestamp"], pa.timestamp("us"))
    columns["kafka_timestamp_ms"] = pc.divide(pc.cast(timestamps, pa.int64()), 1_000)
    columns["date_key"], columns["time_key"] = event_time_keys(columns["event_epoch"])
    # Only a page view's URL is its product's page (the sink keeps one per product): the
    # others' would only add bytes to the batch.
    columns["product_url"] = pc.if_else(
        pc.fill_null(pc.equal(columns["collection"], PAGE_VIEW), False),
        columns["product_url"],
        pa.scalar(None, pa.string()),
    )
    for key, natural in DIMENSION_KEYS.items():
        keys = natural_keys([columns[name] for name in natural])
        if key in NULL_WHEN_ABSENT:
            keys = pc.if_else(pc.is_valid(columns[natural[0]]), keys, None)
        columns[key] = keys
    return pa.RecordBatch.from_arrays(
        [pc.cast(columns[f.name], f.type) for f in SINK_SCHEMA], schema=SINK_SCHEMA
    )


# The only column of a prepared micro-batch: Arrow IPC streams of SINK_SCHEMA rows, one per
# Python-side batch. The rows cross the JVM as a few opaque values instead of being converted
# into Spark rows and back into Arrow for the driver (which cost the JVM more CPU than the whole
# Python pass, measured per process over a 750k-record drain).
PACKED_COLUMN = "sink_rows_ipc"


def packed_sink_batches(
    batches: Iterator[pa.RecordBatch], *, now: int, options: ProcessingOptions
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` body: validate, enrich, key, and pack each batch as Arrow IPC."""
    for prepared in prepare_batches(batches, now=now, options=options):
        sink_rows = sink_row_batch(prepared)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, SINK_SCHEMA) as writer:
            writer.write_batch(sink_rows)
        stream = sink.getvalue()
        # One binary value over the stream's buffer, without copying it.
        offsets = pa.py_buffer(np.array([0, stream.size], dtype=np.int32).tobytes())
        packed = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, stream])
        yield pa.RecordBatch.from_arrays([packed], names=[PACKED_COLUMN])


def prepare_batch(
    raw: DataFrame, options: ProcessingOptions, *, processing_epoch: int | None = None
) -> DataFrame:
    """Raw Kafka rows → every record classified; valid ones enriched and keyed for the sink,
    packed (see PACKED_COLUMN; ``unpack_sink_rows`` reads them back on the driver)."""
    now = int(time.time()) if processing_epoch is None else processing_epoch
    body = functools.partial(packed_sink_batches, now=now, options=options)
    # One task per core, not per Kafka partition: a task's fixed cost (a Python worker round
    # trip) is most of a small batch's time, and a large batch keeps every core busy either way.
    cores = raw.sparkSession.sparkContext.defaultParallelism
    return (
        raw.select("value", *KAFKA_COLUMNS)
        .coalesce(cores)
        .mapInArrow(body, schema=StructType([StructField(PACKED_COLUMN, BinaryType())]))
    )


def unpack_sink_rows(packed: pa.Table) -> pa.Table:
    """The driver's side of ``prepare_batch``: the SINK_SCHEMA rows of the whole batch."""
    tables = [
        pa.ipc.open_stream(blob.as_buffer()).read_all()
        for blob in packed.column(PACKED_COLUMN)
        if blob.is_valid
    ]
    return pa.concat_tables(tables) if tables else SINK_SCHEMA.empty_table()
