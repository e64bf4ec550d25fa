"""Dimension keys, event-time columns and the sink's row layout, on small DataFrames."""

from __future__ import annotations

from pyspark.sql import functions as F

from pagestream_spark.sink import DEAD_STAGE_COLUMNS, EVENT_STAGE_COLUMNS, sink_rows
from pagestream_spark.transform import natural_key, with_event_time_columns


def test_natural_key_tells_null_positions_apart(spark) -> None:  # type: ignore[no-untyped-def]
    df = spark.createDataFrame([("a", None), (None, "a"), ("a", None)], "x string, y string")
    keys = [r.k for r in df.select(natural_key("x", "y").alias("k")).collect()]
    assert keys[0] == keys[2]
    assert keys[0] != keys[1]


def test_event_time_columns_are_utc_calendar_keys(spark) -> None:  # type: ignore[no-untyped-def]
    df = spark.createDataFrame([(1591266092,), (1609459199,)], "event_epoch long")
    rows = with_event_time_columns(df).collect()
    assert [(r.date_key, r.time_key) for r in rows] == [
        (20200604, 10 * 60 + 21),
        (20201231, 23 * 60 + 59),
    ]


def test_sink_rows_have_the_staging_layout_and_hex_payloads(spark) -> None:  # type: ignore[no-untyped-def]
    types = {
        "bigint": "long",
        "integer": "int",
        "smallint": "short",
        "boolean": "boolean",
        "text": "string",
    }
    event_fields = [
        (name, types[sql_type.split()[0]]) for name, sql_type in EVENT_STAGE_COLUMNS[3:]
    ]
    schema = ", ".join(f"{name} {t}" for name, t in event_fields)
    row = spark.createDataFrame([tuple(None for _ in event_fields)], schema).select(
        "*",
        F.lit("views").alias("topic"),
        F.lit(2).alias("partition"),
        F.lit(41).cast("long").alias("offset"),
        F.timestamp_seconds(F.lit(1_600_000_000)).alias("kafka_timestamp"),
        F.lit("parse_error").alias("dead_letter_reason"),
        F.lit("record is not valid JSON").alias("dead_letter_detail"),
        F.lit(bytearray(b"\x00\xff{")).alias("payload"),
    )
    out = sink_rows(row)
    assert out.columns[: len(EVENT_STAGE_COLUMNS)] == [c for c, _ in EVENT_STAGE_COLUMNS]
    (got,) = out.collect()
    assert (got.kafka_topic, got.kafka_partition, got.kafka_offset) == ("views", 2, 41)
    assert got.kafka_timestamp_ms == 1_600_000_000_000
    assert got.payload_hex == "\\x00ff7b"  # bytea hex input format
    assert len(DEAD_STAGE_COLUMNS) == 7
