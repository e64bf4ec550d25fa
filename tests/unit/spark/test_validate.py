"""Validation of small inline Kafka batches (``transform.classify_arrays``, the first step of the
job's Arrow pass): each contract rule and quirk, one row each."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pyarrow as pa
import pytest

from pagestream_common.contract import MAX_RECORD_BYTES, MIN_EVENT_EPOCH
from pagestream_spark.transform import classify_arrays

NOW = 1_800_000_000
EVENT = {
    "id": "5ed8cb2bc1f5b2a6c8fd1a2c",
    "time_stamp": 1591266092,
    "ip": "37.170.17.183",
    "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 13_3 like Mac OS X)",
    "resolution": "375x667",
    "user_id_db": "",
    "device_id": "7d3f1c9e",
    "api_version": "1.0",
    "store_id": "12",
    "local_time": "2020-06-04 12:21:27",
    "show_recommendation": "false",
    "current_url": "https://www.glamira.fr/glamira-anillo-saphira-skug100335.html?alloy=white-375",
    "referrer_url": "https://www.glamira.fr/men-s-necklaces/",
    "email_address": "",
    "recommendation": False,
    "utm_source": False,
    "utm_medium": False,
    "collection": "view_product_detail",
    "product_id": "110474",
    "option": [
        {"option_label": "alloy", "option_id": "332084", "value_label": "", "value_id": "3279318"}
    ],
}
DROP = object()


def variant(**changes: object) -> bytes:
    event = {k: v for k, v in EVENT.items() if changes.get(k, None) is not DROP}
    event.update({k: v for k, v in changes.items() if v is not DROP})
    return json.dumps(event).encode()


def classify(values: list[bytes], oldest_epoch: int = MIN_EVENT_EPOCH) -> list[SimpleNamespace]:
    """Classify many records as one Kafka batch; rows come back in input order, each with its
    columns as attributes."""
    raw = pa.RecordBatch.from_pydict(
        {
            "value": pa.array(values, pa.binary()),
            "topic": pa.array(["views"] * len(values)),
            "partition": pa.array([0] * len(values), pa.int32()),
            "offset": pa.array(range(len(values)), pa.int64()),
            "timestamp": pa.array([NOW * 1_000_000] * len(values), pa.timestamp("us")),
        }
    )
    rows = pa.Table.from_pydict(classify_arrays(raw, NOW, oldest_epoch)).to_pylist()
    return [SimpleNamespace(**row) for row in rows]


def test_the_contract_example_is_valid_and_quirks_become_absent() -> None:
    (row,) = classify([variant()])
    assert row.dead_letter_reason is None and row.payload is None
    assert (row.event_id, row.event_epoch, row.collection) == (
        EVENT["id"],
        1591266092,
        "view_product_detail",
    )
    assert (row.utm_source, row.utm_medium, row.email_address, row.user_id_db) == (
        None,
        None,
        None,
        None,
    )
    assert row.referrer_url == EVENT["referrer_url"] and row.option_count == 1


INVALID = [
    (b"x" * (MAX_RECORD_BYTES + 1), "oversize", f"record is {MAX_RECORD_BYTES + 1} bytes"),
    (b'{"id": "a", ', "parse_error", "record is not valid JSON"),
    (b"\xff\xfe{}", "parse_error", "record is not valid UTF-8"),
    (b"[1, 2]", "schema_violation", "record is not a JSON object"),
    (
        b'{"a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        "parse_error",
        "nests arrays/objects deeper",
    ),
    (variant(id=123), "schema_violation", "id: expected a string, got number"),
    (variant(id=""), "schema_violation", "id: length must be 1..64"),
    (
        variant(time_stamp="1591266092"),
        "schema_violation",
        "time_stamp: expected an integer, got string",
    ),
    (
        variant(time_stamp=1591266092.5),
        "schema_violation",
        "time_stamp: expected an integer, got a fraction",
    ),
    (variant(device_id=DROP), "schema_violation", "device_id: required field missing"),
    (variant(product_id=DROP), "schema_violation", "product_id: required when collection"),
    # The schema types product_id as a string wherever it appears: null and false are not absent.
    (variant(product_id=None), "schema_violation", "product_id: expected a string, got null"),
    (
        variant(collection="add_to_cart_action", product_id=False),
        "schema_violation",
        "product_id: expected a string, got boolean",
    ),
    (
        variant(utm_source=True),
        "schema_violation",
        "utm_source: expected a string, false or null",
    ),
    (
        variant(recommendation=3),
        "schema_violation",
        "recommendation: expected a string, boolean or null",
    ),
    (
        variant(option=[{"option_id": 5}]),
        "schema_violation",
        "option: every element must be an object",
    ),
    (variant(option="alloy"), "schema_violation", "option: expected a list or object, got string"),
    (variant(time_stamp=12), "invalid_timestamp", "time_stamp 12 is out of range"),
    (variant(time_stamp=NOW + 2 * 86400), "invalid_timestamp", "is out of range"),
    (variant(time_stamp=10**30), "invalid_timestamp", "is out of range"),
]
VALID = [
    variant(option=DROP),
    variant(option=[]),
    variant(option=None),
    variant(option={"option_label": "stone", "value_id": None}),
    variant(time_stamp=1591266092.0),
    variant(collection="add_to_cart_action", product_id=DROP),
    variant(utm_source="google", utm_medium="cpc", email_address="a@b.c"),
    variant(referrer_url=None, extra_field={"anything": [1, 2]}),
    variant(time_stamp=NOW + 3600),
]


@pytest.fixture(scope="module")
def verdicts() -> dict[bytes, SimpleNamespace]:
    records = [record for record, _, _ in INVALID] + VALID
    return dict(zip(records, classify(records), strict=True))


@pytest.mark.parametrize(("record", "reason", "detail"), INVALID)
def test_each_violation_is_dead_lettered_with_its_reason(
    verdicts: dict[bytes, SimpleNamespace], record: bytes, reason: str, detail: str
) -> None:
    row = verdicts[record]
    assert row.dead_letter_reason == reason
    assert detail in row.dead_letter_detail
    assert bytes(row.payload) == record
    assert row.event_id is None


@pytest.mark.parametrize("record", VALID)
def test_what_the_contract_allows_is_accepted(
    verdicts: dict[bytes, SimpleNamespace], record: bytes
) -> None:
    row = verdicts[record]
    assert row.dead_letter_reason is None, row.dead_letter_detail


def test_nul_characters_are_dropped_from_stored_text() -> None:
    (row,) = classify(
        [variant(user_agent="Mozilla\u0000/5.0", referrer_url="https://a.example/\u0000")]
    )
    assert row.dead_letter_reason is None
    assert row.user_agent == "Mozilla/5.0" and row.referrer_url == "https://a.example/"


def test_kafka_coordinates_are_kept_for_every_row() -> None:
    rows = classify([variant(), b"nope", variant(id="other")])
    assert [(r.topic, r.partition, r.offset) for r in rows] == [
        ("views", 0, 0),
        ("views", 0, 1),
        ("views", 0, 2),
    ]
    assert [r.dead_letter_reason for r in rows] == [None, "parse_error", None]


def test_event_dates_are_utc_days_of_the_event_time() -> None:
    rows = classify([variant(time_stamp=1591315199), variant(time_stamp=1591315200), b"{"])
    assert [str(r.event_date) if r.event_date else None for r in rows] == [
        "2020-06-04",
        "2020-06-05",
        None,
    ]


def test_empty_product_id_is_a_violation_not_an_absent_value() -> None:
    (row,) = classify([variant(product_id="")])
    assert (row.dead_letter_reason, row.dead_letter_detail) == (
        "schema_violation",
        "product_id: length must be 1..32",
    )


def test_a_valid_event_before_the_oldest_kept_day_is_dead_lettered_past_retention() -> None:
    """Both validation paths (the fast one accepts a plain event, the exact one a record
    with an escaped NUL) end in the same retention check; a day kept is stored as ever."""
    oldest = NOW - NOW % 86_400 - 30 * 86_400
    old, old_exact = (
        variant(time_stamp=oldest - 1),
        variant(time_stamp=oldest - 1, ip="1.2.3.4\u0000"),
    )
    kept = variant(time_stamp=oldest)
    rows = classify([old, old_exact, kept], oldest_epoch=oldest)
    for row, record in zip(rows[:2], (old, old_exact), strict=True):
        assert row.dead_letter_reason == "past_retention"
        assert row.dead_letter_detail == (
            f"time_stamp {oldest - 1} is on 2026-12-15, before 2026-12-16, the oldest UTC day "
            "the pipeline keeps (spec.retention.events)"
        )
        assert bytes(row.payload) == record
        assert row.event_id is None
    assert rows[2].dead_letter_reason is None
    assert rows[2].event_epoch == oldest
