"""Dimension keys, calendar keys and the sink's row layout, computed in the Python pass."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import functions as F

from pagestream_spark.options import ProcessingOptions
from pagestream_spark.transform import (
    SINK_SCHEMA,
    event_time_keys,
    natural_keys,
    packed_sink_batches,
    prepare_batches,
    sink_row_batch,
    unpack_sink_rows,
)

NOW = 1_800_000_000
OPTIONS = ProcessingOptions(pii_key=b"k", anonymize_ip=True, hash_email=True)
VALID = (
    b'{"id":"e1","time_stamp":1591266092,"ip":"37.170.17.183","user_agent":"Mozilla/5.0",'
    b'"device_id":"d1","store_id":"12","collection":"view_product_detail","product_id":"110474",'
    b'"current_url":"https://www.glamira.fr/p.html?utm_source=news"}'
)
OTHER = VALID.replace(b'"view_product_detail","product_id":"110474"', b'"checkout"').replace(
    b'"e1"', b'"e2"'
)


def raw_batch(values: list[bytes]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "value": pa.array(values, pa.binary()),
            "topic": pa.array(["views"] * len(values)),
            "partition": pa.array([2] * len(values), pa.int32()),
            "offset": pa.array(range(40, 40 + len(values)), pa.int64()),
            "timestamp": pa.array([1_600_000_000_000_000] * len(values), pa.timestamp("us")),
        }
    )


def prepared(values: list[bytes]) -> pa.RecordBatch:
    (batch,) = prepare_batches(iter([raw_batch(values)]), now=NOW, options=OPTIONS)
    return batch


def test_natural_keys_are_sparks_xxhash64_of_the_coalesced_text(spark) -> None:  # type: ignore[no-untyped-def]
    rows = [
        ("a", None, True),
        (None, "a", False),
        ("", "", None),
        ("Zürich", "東京", True),
        ("a" * 300, "x", False),
        ("a", None, True),
    ]
    df = spark.createDataFrame(rows, "x string, y string, b boolean")
    spark_keys = [
        r.k
        for r in df.select(
            F.xxhash64(*(F.coalesce(F.col(c).cast("string"), F.lit("")) for c in "xyb")).alias("k")
        ).collect()
    ]
    columns = [
        pa.array([r[0] for r in rows], pa.string()),
        pa.array([r[1] for r in rows], pa.string()),
        pa.array([r[2] for r in rows], pa.bool_()),
    ]
    assert natural_keys(columns).to_pylist() == spark_keys
    # Null positions are told apart; equal rows get equal keys.
    assert spark_keys[0] != spark_keys[1] and spark_keys[0] == spark_keys[5]


def test_event_time_keys_are_utc_calendar_keys() -> None:
    date_key, time_key = event_time_keys(pa.array([1591266092, 1609459199, None], pa.int64()))
    assert date_key.to_pylist() == [20200604, 20201231, None]
    assert time_key.to_pylist() == [10 * 60 + 21, 23 * 60 + 59, None]


def test_sink_rows_have_the_sink_layout_keys_and_raw_payloads() -> None:
    rows = sink_row_batch(prepared([VALID, b"nope\x00", OTHER]))
    assert rows.schema == SINK_SCHEMA
    valid, dead, other = rows.to_pylist()
    assert (valid["kafka_topic"], valid["kafka_partition"], valid["kafka_offset"]) == (
        "views",
        2,
        40,
    )
    assert valid["kafka_timestamp_ms"] == 1_600_000_000_000
    assert (valid["date_key"], valid["time_key"]) == (20200604, 10 * 60 + 21)
    assert valid["product_key"] is not None and other["product_key"] is None
    assert valid["store_key"] == other["store_key"] and valid["device_key"] == other["device_key"]
    assert dead["dead_letter_reason"] == "parse_error"
    assert dead["payload"] == b"nope\x00"  # the bytes exactly as consumed
    assert valid["payload"] is None and dead["event_id"] is None
    # A page view carries its product page; another event on the same page does not.
    assert valid["product_url"] == "https://www.glamira.fr/p.html"
    assert other["page_path"] == "/p.html"
    assert other["product_url"] is None and dead["product_url"] is None


def test_packed_batches_unpack_to_the_same_rows() -> None:
    raw = [raw_batch([VALID, OTHER]), raw_batch([b"{}"])]
    packed = pa.Table.from_batches(list(packed_sink_batches(iter(raw), now=NOW, options=OPTIONS)))
    assert packed.num_rows == 2  # one opaque value per Python-side batch
    rows = unpack_sink_rows(packed)
    assert rows.schema == SINK_SCHEMA and rows.num_rows == 3
    assert rows.column("event_id").to_pylist() == ["e1", "e2", None]
    assert pc.sum(pc.is_valid(rows.column("dead_letter_reason"))).as_py() == 1
    assert unpack_sink_rows(packed.slice(0, 0)).schema == SINK_SCHEMA
