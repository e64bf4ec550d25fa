"""Parsing and validation: raw Kafka records in, one row per record out, each either a typed
event or a dead letter with a reason.

The checks implement the JSON Schema in ``pagestream_common/contract/event.schema.json`` with
exact JSON types: records are parsed into Spark's VARIANT type, whose ``schema_of_variant``
tells a JSON string from a number or a boolean. (``from_json`` silently turns ``"id": 123`` into
the string "123", which the contract does not allow.)

Reasons, in the order they are checked:
``oversize`` (record larger than MAX_RECORD_BYTES; not parsed), ``parse_error`` (not UTF-8 or
not JSON), ``schema_violation`` (not an object, a required field missing, a wrong type, a
length out of bounds), ``invalid_timestamp`` (``time_stamp`` before 2000-01-01, beyond a 64-bit
integer, or more than a day ahead of the processing clock).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pagestream_common.contract import (
    MAX_FUTURE_SKEW_SECONDS,
    MAX_RECORD_BYTES,
    MIN_EVENT_EPOCH,
    PAGE_VIEW,
)

OVERSIZE = "oversize"
PARSE_ERROR = "parse_error"
SCHEMA_VIOLATION = "schema_violation"
INVALID_TIMESTAMP = "invalid_timestamp"
DEAD_LETTER_REASONS = (OVERSIZE, PARSE_ERROR, SCHEMA_VIOLATION, INVALID_TIMESTAMP)

_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INT", "BIGINT")


@dataclass(frozen=True)
class StringField:
    name: str
    min_length: int = 1
    max_length: int = 4096
    required: bool = True


# The contract's fields, as the job reads them. Optional string fields accept a string, false or
# null ("absent"); required ones must be non-empty strings within bounds.
REQUIRED_STRINGS = (
    StringField("id", max_length=64),
    StringField("collection", max_length=64),
    StringField("device_id", max_length=128),
    StringField("ip", min_length=2, max_length=45),
    StringField("user_agent", min_length=0, max_length=2048),
    StringField("current_url", max_length=4096),
    StringField("store_id", max_length=16),
)
OPTIONAL_STRINGS = (
    StringField("product_id", max_length=32, required=False),
    StringField("referrer_url", min_length=0, required=False),
    StringField("resolution", min_length=0, required=False),
    StringField("user_id_db", min_length=0, required=False),
    StringField("email_address", min_length=0, required=False),
    StringField("api_version", min_length=0, required=False),
    StringField("local_time", min_length=0, required=False),
    StringField("utm_source", min_length=0, required=False),
    StringField("utm_medium", min_length=0, required=False),
)
STRING_OR_BOOL = ("show_recommendation", "recommendation")
OPTION_KEYS = ("option_label", "option_id", "value_label", "value_id")

# Columns of a parsed event, beside the Kafka coordinates.
EVENT_COLUMNS = (
    "event_id",
    "event_epoch",
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
    "utm_source",
    "utm_medium",
    "resolution",
    "recommendation",
    "option_count",
)


def _type_of(path: str) -> Column:
    return F.expr(f"schema_of_variant(variant_get(v, '$.{path}'))")


def _string_value(name: str) -> Column:
    return F.expr(f"variant_get(v, '$.{name}', 'string')")


def _string_check(field: StringField) -> Column:
    t = _type_of(field.name)
    value = _string_value(field.name)
    length = F.length(value)
    bounds = (length < field.min_length) | (length > field.max_length)
    bounds_msg = F.lit(f"{field.name}: length must be {field.min_length}..{field.max_length}")
    if field.required:
        return (
            F.when(t.isNull(), F.lit(f"{field.name}: required field missing"))
            .when(t != "STRING", F.concat(F.lit(f"{field.name}: expected a string, got "), t))
            .when(bounds, bounds_msg)
        )
    absent = (
        t.isNull()
        | (t == "VOID")
        | ((t == "BOOLEAN") & ~F.expr(f"variant_get(v, '$.{field.name}', 'boolean')"))
    )
    return (
        F.when(absent, F.lit(None))
        .when(
            t != "STRING",
            F.concat(F.lit(f"{field.name}: expected a string, false or null, got "), t),
        )
        .when((length > 0) & bounds, bounds_msg)
    )


def _string_or_bool_check(name: str) -> Column:
    t = _type_of(name)
    ok = t.isNull() | t.isin("STRING", "BOOLEAN", "VOID")
    return F.when(~ok, F.concat(F.lit(f"{name}: expected a string, boolean or null, got "), t))


def _option_object_ok(variant_sql: str) -> str:
    """SQL: the variant is an object whose four known option keys are strings or null."""
    keys = " AND ".join(
        f"coalesce(schema_of_variant(variant_get({variant_sql}, '$.{k}')), 'VOID') IN ('STRING', 'VOID')"
        for k in OPTION_KEYS
    )
    return f"(schema_of_variant({variant_sql}) LIKE 'OBJECT%' AND {keys})"


def _option_check() -> Column:
    """``option``: null, an object, or an array of objects whose four known keys are strings or
    null. Arrays are checked element by element, since schema_of_variant merges element types."""
    t = _type_of("option")
    array_ok = F.expr(
        f"forall(variant_get(v, '$.option', 'array<variant>'), x -> {_option_object_ok('x')})"
    )
    object_ok = F.expr(_option_object_ok("variant_get(v, '$.option')"))
    is_array, is_object = t.startswith("ARRAY"), t.startswith("OBJECT")
    return (
        F.when(t.isNull() | (t == "VOID"), F.lit(None))
        .when(is_array & ~array_ok, F.lit("option: every element must be an object of strings"))
        .when(is_object & ~object_ok, F.lit("option: option fields must be strings or null"))
        .when(
            ~(is_array | is_object), F.concat(F.lit("option: expected a list or object, got "), t)
        )
    )


def _time_stamp_check() -> Column:
    t = _type_of("time_stamp")
    numeric = t.isin(*_INTEGER_TYPES) | t.startswith("DECIMAL") | (t == "DOUBLE") | (t == "FLOAT")
    as_double = F.expr("try_variant_get(v, '$.time_stamp', 'double')")
    # Not floor(): it returns a bigint, which overflows for huge values such as 1e30.
    integral = (as_double % 1) == 0
    return (
        F.when(t.isNull(), F.lit("time_stamp: required field missing"))
        .when(~numeric, F.concat(F.lit("time_stamp: expected an integer, got "), t))
        .when(~integral, F.lit("time_stamp: expected an integer, got a fraction"))
    )


def _page_view_product_check() -> Column:
    is_page_view = _string_value("collection") == PAGE_VIEW
    return F.when(
        is_page_view & _type_of("product_id").isNull(),
        F.lit(f"product_id: required when collection is {PAGE_VIEW}"),
    )


def schema_violation() -> Column:
    """The first contract violation of the parsed record ``v``, or null when it has none."""
    checks = [
        F.when(
            ~F.expr("schema_of_variant(v) LIKE 'OBJECT%'"), F.lit("record is not a JSON object")
        ),
        *(_string_check(f) for f in REQUIRED_STRINGS[:1]),
        _time_stamp_check(),
        *(_string_check(f) for f in REQUIRED_STRINGS[1:]),
        *(_string_check(f) for f in OPTIONAL_STRINGS),
        *(_string_or_bool_check(n) for n in STRING_OR_BOOL),
        _option_check(),
        _page_view_product_check(),
    ]
    return F.coalesce(*checks)


def _absent_to_null(name: str) -> Column:
    """Optional strings: false, "" and null all mean absent. NUL characters, which PostgreSQL
    text cannot hold, are dropped."""
    value = F.when(_type_of(name) == "STRING", _string_value(name))
    return F.when(F.length(value) > 0, F.regexp_replace(value, "\\x00", ""))


def _required_string(name: str) -> Column:
    return F.regexp_replace(_string_value(name), "\\x00", "")


def classify_records(raw: DataFrame, processing_epoch: Column | None = None) -> DataFrame:
    """Kafka rows (``value``, ``topic``, ``partition``, ``offset``, ``timestamp``) in; one row per
    record out with ``dead_letter_reason``/``dead_letter_detail`` (null for valid events), the
    event's typed fields (null for dead letters) and the raw payload for dead letters."""
    now = (
        processing_epoch
        if processing_epoch is not None
        else F.unix_timestamp(F.current_timestamp())
    )
    size = F.octet_length("value")
    text = F.col("value").cast("string")
    staged = raw.select(
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        "value",
        size.alias("record_bytes"),
        F.when(
            size <= MAX_RECORD_BYTES, F.when(F.is_valid_utf8(text), F.try_parse_json(text))
        ).alias("v"),
    )
    epoch = F.expr("try_variant_get(v, '$.time_stamp', 'bigint')")
    violation = schema_violation()
    ts_invalid = (
        epoch.isNull() | (epoch < MIN_EVENT_EPOCH) | (epoch > now + MAX_FUTURE_SKEW_SECONDS)
    )
    reason = (
        F.when(F.col("record_bytes") > MAX_RECORD_BYTES, F.lit(OVERSIZE))
        .when(F.col("v").isNull(), F.lit(PARSE_ERROR))
        .when(violation.isNotNull(), F.lit(SCHEMA_VIOLATION))
        .when(ts_invalid, F.lit(INVALID_TIMESTAMP))
    )
    detail = (
        F.when(
            F.col("record_bytes") > MAX_RECORD_BYTES,
            F.format_string(
                f"record is %d bytes, more than {MAX_RECORD_BYTES}", F.col("record_bytes")
            ),
        )
        .when(F.col("v").isNull() & ~F.is_valid_utf8(text), F.lit("record is not valid UTF-8"))
        .when(F.col("v").isNull(), F.lit("record is not valid JSON"))
        .when(violation.isNotNull(), violation)
        .when(
            ts_invalid,
            F.format_string(
                "time_stamp %s is out of range", F.expr("to_json(variant_get(v, '$.time_stamp'))")
            ),
        )
    )
    classified = staged.select(
        "*", reason.alias("dead_letter_reason"), detail.alias("dead_letter_detail")
    )
    valid = F.col("dead_letter_reason").isNull()

    def when_valid(col: Column) -> Column:
        return F.when(valid, col)

    option_type = _type_of("option")
    option_count = (
        F.when(
            option_type.startswith("ARRAY"),
            F.size(F.expr("variant_get(v, '$.option', 'array<variant>')")),
        )
        .when(option_type.startswith("OBJECT"), F.lit(1))
        .otherwise(F.lit(0))
    )
    recommendation_type = _type_of("recommendation")
    recommendation = F.when(
        recommendation_type.isin("STRING", "BOOLEAN"), _string_value("recommendation")
    )
    return classified.select(
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "dead_letter_reason",
        "dead_letter_detail",
        F.when(~valid, F.col("value")).alias("payload"),
        when_valid(_required_string("id")).alias("event_id"),
        when_valid(epoch).alias("event_epoch"),
        when_valid(_required_string("collection")).alias("collection"),
        when_valid(_required_string("device_id")).alias("device_id"),
        when_valid(_required_string("ip")).alias("ip"),
        when_valid(_required_string("user_agent")).alias("user_agent"),
        when_valid(_required_string("current_url")).alias("current_url"),
        when_valid(_required_string("store_id")).alias("store_id"),
        when_valid(_absent_to_null("product_id")).alias("product_id"),
        when_valid(_absent_to_null("referrer_url")).alias("referrer_url"),
        when_valid(_absent_to_null("user_id_db")).alias("user_id_db"),
        when_valid(_absent_to_null("email_address")).alias("email_address"),
        when_valid(_absent_to_null("utm_source")).alias("utm_source"),
        when_valid(_absent_to_null("utm_medium")).alias("utm_medium"),
        when_valid(_absent_to_null("resolution")).alias("resolution"),
        when_valid(recommendation).alias("recommendation"),
        when_valid(option_count).alias("option_count"),
    )
