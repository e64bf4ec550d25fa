"""Parsing and validation: one raw Kafka record in, either a typed event or a dead letter with a
reason. Pure Python over bytes, applied to whole Arrow batches by the job (see transform.py).

The checks implement the JSON Schema in ``pagestream_common/contract/event.schema.json`` with
exact JSON types (``"id": 123`` is not a string; ``true`` is not an integer). They run in the
same Python pass as the enrichment: several times faster on this workload than Spark's VARIANT
functions, which needed one type probe per field per record.

Two paths give one verdict. The fast path decodes straight into a typed msgspec ``Struct``
whose types and length bounds are the contract's, in C; it only ever *accepts*, and anything it
is not certain about (a decode or type error, a ``true`` where only strings or ``false`` are
allowed, an escaped NUL, an out-of-range time) goes to the exact path, which parses with
orjson, checks field by field in Python and writes the dead-letter detail. A differential test
(tests/unit/spark/test_validate_paths.py) holds the two paths to the same results.

Reasons, in the order they are checked:
``oversize`` (record larger than MAX_RECORD_BYTES; not parsed), ``parse_error`` (not UTF-8 or
not JSON), ``schema_violation`` (not an object, a required field missing, a wrong type, a
length out of bounds), ``invalid_timestamp`` (``time_stamp`` before 2000-01-01, beyond a 64-bit
integer, or more than a day ahead of the processing clock), ``past_retention`` (a valid event
on a UTC day the pipeline's retention no longer keeps: its day's partitions are gone or about to
go, so storing it would bring back a dropped day and miss its duplicates).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import msgspec
import orjson

from pagestream_common.contract import (
    MAX_FUTURE_SKEW_SECONDS,
    MAX_RECORD_BYTES,
    MIN_EVENT_EPOCH,
    PAGE_VIEW,
)
from pagestream_common.jsontypes import json_type_name

OVERSIZE = "oversize"
PARSE_ERROR = "parse_error"
SCHEMA_VIOLATION = "schema_violation"
INVALID_TIMESTAMP = "invalid_timestamp"
PAST_RETENTION = "past_retention"
DEAD_LETTER_REASONS = (OVERSIZE, PARSE_ERROR, SCHEMA_VIOLATION, INVALID_TIMESTAMP, PAST_RETENTION)

_MAX_BIGINT = 2**63 - 1


@dataclass(frozen=True)
class StringField:
    name: str
    min_length: int = 1
    max_length: int = 4096


REQUIRED_STRINGS = (
    StringField("id", max_length=64),
    StringField("collection", max_length=64),
    StringField("device_id", max_length=128),
    StringField("ip", min_length=2, max_length=45),
    StringField("user_agent", min_length=0, max_length=2048),
    StringField("current_url", max_length=4096),
    StringField("store_id", max_length=16),
)
# Optional, but a string whenever present (never null or false), as the JSON Schema says;
# required on page views.
PRODUCT_ID = StringField("product_id", max_length=32)
# Optional strings: a string, false or null; "" and false mean absent.
OPTIONAL_STRINGS = (
    StringField("referrer_url", min_length=0),
    StringField("resolution", min_length=0),
    StringField("user_id_db", min_length=0),
    StringField("email_address", min_length=0),
    StringField("api_version", min_length=0),
    StringField("local_time", min_length=0),
    StringField("utm_source", min_length=0),
    StringField("utm_medium", min_length=0),
)
STRING_OR_BOOL = ("show_recommendation", "recommendation")
OPTION_KEYS = ("option_label", "option_id", "value_label", "value_id")

# The event fields a valid record yields, in output order (after the Kafka coordinates).
EVENT_FIELDS = (
    ("event_id", "string"),
    ("event_epoch", "bigint"),
    ("collection", "string"),
    ("device_id", "string"),
    ("ip", "string"),
    ("user_agent", "string"),
    ("current_url", "string"),
    ("store_id", "string"),
    ("product_id", "string"),
    ("referrer_url", "string"),
    ("user_id_db", "string"),
    ("email_address", "string"),
    ("utm_source", "string"),
    ("utm_medium", "string"),
    ("resolution", "string"),
    ("recommendation", "string"),
    ("option_count", "int"),
)
_EPOCH_INDEX = [name for name, _ in EVENT_FIELDS].index("event_epoch")
EVENT_COLUMNS = tuple(name for name, _ in EVENT_FIELDS)


class Violation(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL characters.
    return text.replace("\x00", "") if "\x00" in text else text


def _required_string(doc: dict[str, Any], field: StringField) -> str:
    if field.name not in doc:
        raise Violation(SCHEMA_VIOLATION, f"{field.name}: required field missing")
    value = doc[field.name]
    if type(value) is not str:
        raise Violation(
            SCHEMA_VIOLATION, f"{field.name}: expected a string, got {json_type_name(value)}"
        )
    if not field.min_length <= len(value) <= field.max_length:
        raise Violation(
            SCHEMA_VIOLATION, f"{field.name}: length must be {field.min_length}..{field.max_length}"
        )
    return _clean(value)


def _optional_string(doc: dict[str, Any], field: StringField) -> str | None:
    value = doc.get(field.name)
    if value is None or value is False:
        return None
    if type(value) is not str:
        raise Violation(
            SCHEMA_VIOLATION,
            f"{field.name}: expected a string, false or null, got {json_type_name(value)}",
        )
    if not field.min_length <= len(value) <= field.max_length:
        raise Violation(
            SCHEMA_VIOLATION, f"{field.name}: length must be {field.min_length}..{field.max_length}"
        )
    return _clean(value) or None


def _time_stamp(doc: dict[str, Any], now: int) -> int:
    if "time_stamp" not in doc:
        raise Violation(SCHEMA_VIOLATION, "time_stamp: required field missing")
    value = doc["time_stamp"]
    if type(value) is float:
        if not value.is_integer():
            raise Violation(SCHEMA_VIOLATION, "time_stamp: expected an integer, got a fraction")
        value = int(value)
    elif type(value) is not int:
        raise Violation(
            SCHEMA_VIOLATION, f"time_stamp: expected an integer, got {json_type_name(value)}"
        )
    if not MIN_EVENT_EPOCH <= value <= min(now + MAX_FUTURE_SKEW_SECONDS, _MAX_BIGINT):
        raise Violation(INVALID_TIMESTAMP, f"time_stamp {doc['time_stamp']} is out of range")
    return value


def _option_object_ok(value: object) -> bool:
    return type(value) is dict and all(
        value.get(k) is None or type(value.get(k)) is str for k in OPTION_KEYS
    )


def _option_count(doc: dict[str, Any]) -> int:
    value = doc.get("option")
    if value is None:
        return 0
    if type(value) is list:
        if not all(_option_object_ok(item) for item in value):
            raise Violation(SCHEMA_VIOLATION, "option: every element must be an object of strings")
        return len(value)
    if type(value) is dict:
        if not _option_object_ok(value):
            raise Violation(SCHEMA_VIOLATION, "option: option fields must be strings or null")
        return 1
    raise Violation(
        SCHEMA_VIOLATION, f"option: expected a list or object, got {json_type_name(value)}"
    )


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _too_deep() -> Violation:
    return Violation(PARSE_ERROR, "record nests arrays/objects deeper than the parser allows")


def parse_record(value: bytes) -> Any:
    """The parsed JSON document; raises Violation(parse_error) for anything that is not JSON."""
    if len(value) > MAX_RECORD_BYTES:
        raise Violation(OVERSIZE, f"record is {len(value)} bytes, more than {MAX_RECORD_BYTES}")
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        pass
    except RecursionError:
        raise _too_deep() from None
    # orjson also refuses integers beyond 64 bits, which are JSON; the slow path decides.
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise Violation(PARSE_ERROR, "record is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        # Valid JSON nested thousands deep (a 64 KiB record holds 32k levels).
        raise _too_deep() from None
    except ValueError:
        raise Violation(PARSE_ERROR, "record is not valid JSON") from None


def classify_value(
    value: bytes, now: int, oldest_epoch: int = MIN_EVENT_EPOCH
) -> tuple[str | None, str | None, tuple[Any, ...] | None]:
    """(dead-letter reason, detail, None) or (None, None, the EVENT_FIELDS values). A valid
    event before ``oldest_epoch`` (the start of the oldest UTC day the retention keeps) is
    dead-lettered as past_retention. One record of :func:`classify_values`."""
    verdicts = classify_values([value], now, oldest_epoch)
    return verdicts.reasons[0], verdicts.details[0], verdicts.fields[0]


@dataclass(frozen=True)
class Verdicts:
    """A batch's verdicts, by record: a dead-letter reason and detail (None for a valid
    event) and the EVENT_FIELDS values (None for a dead letter)."""

    reasons: list[str | None]
    details: list[str | None]
    fields: list[tuple[Any, ...] | None]


def classify_values(values: list[bytes], now: int, oldest_epoch: int = MIN_EVENT_EPOCH) -> Verdicts:
    """:func:`classify_value` for every record of a batch, as lists (the job turns them into
    Arrow columns). The fast path runs over the whole batch in one comprehension and the exact
    path only on what it left: a call and a tuple per record fewer than classifying one by
    one, which was a quarter of the job's Python pass."""
    fields = [accepted_fields(value, now) for value in values]
    reasons: list[str | None] = [None] * len(values)
    details: list[str | None] = [None] * len(values)
    for index in [i for i, f in enumerate(fields) if f is None]:
        reasons[index], details[index], fields[index] = classify_exactly(values[index], now)
    if oldest_epoch > MIN_EVENT_EPOCH:
        for index, f in enumerate(fields):
            if f is not None and f[_EPOCH_INDEX] < oldest_epoch:
                reasons[index] = PAST_RETENTION
                details[index] = past_retention_detail(f[_EPOCH_INDEX], oldest_epoch)
                fields[index] = None
    return Verdicts(reasons, details, fields)


def past_retention_detail(epoch: int, oldest_epoch: int) -> str:
    day, oldest = (dt.datetime.fromtimestamp(e, dt.UTC).date() for e in (epoch, oldest_epoch))
    return (
        f"time_stamp {epoch} is on {day}, before {oldest}, the oldest UTC day the pipeline "
        "keeps (spec.retention.events)"
    )


def classify_exactly(
    value: bytes, now: int
) -> tuple[str | None, str | None, tuple[Any, ...] | None]:
    """The exact path: orjson, then every check in Python, with the dead-letter detail."""
    try:
        doc = parse_record(value)
        if type(doc) is not dict:
            raise Violation(SCHEMA_VIOLATION, "record is not a JSON object")
        event_id = _required_string(doc, REQUIRED_STRINGS[0])
        epoch_checked: int | Violation
        try:
            epoch_checked = _time_stamp(doc, now)
        except Violation as exc:
            if exc.reason != INVALID_TIMESTAMP:
                raise
            epoch_checked = exc  # a contract violation elsewhere takes precedence
        collection, device_id, ip, user_agent, current_url, store_id = (
            _required_string(doc, f) for f in REQUIRED_STRINGS[1:]
        )
        product_id = _required_string(doc, PRODUCT_ID) if PRODUCT_ID.name in doc else None
        optional = {f.name: _optional_string(doc, f) for f in OPTIONAL_STRINGS}
        for name in STRING_OR_BOOL:
            v = doc.get(name)
            if not (v is None or type(v) in (str, bool)):
                raise Violation(
                    SCHEMA_VIOLATION,
                    f"{name}: expected a string, boolean or null, got {json_type_name(v)}",
                )
        option_count = _option_count(doc)
        if collection == PAGE_VIEW and "product_id" not in doc:
            raise Violation(
                SCHEMA_VIOLATION, f"product_id: required when collection is {PAGE_VIEW}"
            )
        if isinstance(epoch_checked, Violation):
            raise epoch_checked
    except Violation as exc:
        return exc.reason, exc.detail, None
    recommendation = doc.get("recommendation")
    if type(recommendation) is bool:
        recommendation = "true" if recommendation else "false"
    return (
        None,
        None,
        (
            event_id,
            epoch_checked,
            collection,
            device_id,
            ip,
            user_agent,
            current_url,
            store_id,
            product_id,
            optional["referrer_url"],
            optional["user_id_db"],
            optional["email_address"],
            optional["utm_source"],
            optional["utm_medium"],
            optional["resolution"],
            _clean(recommendation) if isinstance(recommendation, str) else None,
            option_count,
        ),
    )


# -- the fast path -------------------------------------------------------------------------


def _text(min_length: int, max_length: int) -> Any:
    return Annotated[str, msgspec.Meta(min_length=min_length, max_length=max_length)]


def _optional_text(field: StringField) -> Any:
    # bool admits `true`, which the contract refuses: accepted_fields sends those to the
    # exact path (msgspec has no literal `false` type).
    return _text(field.min_length, field.max_length) | bool | None


class _Option(msgspec.Struct, gc=False):
    option_label: str | None = None
    option_id: str | None = None
    value_label: str | None = None
    value_id: str | None = None


_OPTIONAL = {f.name: f for f in OPTIONAL_STRINGS}
_REQUIRED = {f.name: f for f in REQUIRED_STRINGS}
if TYPE_CHECKING:
    # What mypy sees: the plain types the aliases below annotate. The length bounds are read
    # from the contract's tables at import time, which a static alias cannot spell; msgspec
    # checks them while decoding, the type checker has nothing to do with them.
    _IdText: TypeAlias = str
    _CollectionText: TypeAlias = str
    _DeviceText: TypeAlias = str
    _IpText: TypeAlias = str
    _AgentText: TypeAlias = str
    _UrlText: TypeAlias = str
    _StoreText: TypeAlias = str
    _ProductText: TypeAlias = str | msgspec.UnsetType
    _ReferrerOpt: TypeAlias = str | bool | None
    _ResolutionOpt: TypeAlias = str | bool | None
    _UserOpt: TypeAlias = str | bool | None
    _EmailOpt: TypeAlias = str | bool | None
    _ApiOpt: TypeAlias = str | bool | None
    _LocalTimeOpt: TypeAlias = str | bool | None
    _UtmSourceOpt: TypeAlias = str | bool | None
    _UtmMediumOpt: TypeAlias = str | bool | None
else:
    # Module-level aliases: annotations are strings here (PEP 563), which msgspec resolves by name.
    _IdText = _text(_REQUIRED["id"].min_length, _REQUIRED["id"].max_length)
    _CollectionText = _text(_REQUIRED["collection"].min_length, _REQUIRED["collection"].max_length)
    _DeviceText = _text(_REQUIRED["device_id"].min_length, _REQUIRED["device_id"].max_length)
    _IpText = _text(_REQUIRED["ip"].min_length, _REQUIRED["ip"].max_length)
    _AgentText = _text(_REQUIRED["user_agent"].min_length, _REQUIRED["user_agent"].max_length)
    _UrlText = _text(_REQUIRED["current_url"].min_length, _REQUIRED["current_url"].max_length)
    _StoreText = _text(_REQUIRED["store_id"].min_length, _REQUIRED["store_id"].max_length)
    _ProductText = _text(PRODUCT_ID.min_length, PRODUCT_ID.max_length) | msgspec.UnsetType
    _ReferrerOpt = _optional_text(_OPTIONAL["referrer_url"])
    _ResolutionOpt = _optional_text(_OPTIONAL["resolution"])
    _UserOpt = _optional_text(_OPTIONAL["user_id_db"])
    _EmailOpt = _optional_text(_OPTIONAL["email_address"])
    _ApiOpt = _optional_text(_OPTIONAL["api_version"])
    _LocalTimeOpt = _optional_text(_OPTIONAL["local_time"])
    _UtmSourceOpt = _optional_text(_OPTIONAL["utm_source"])
    _UtmMediumOpt = _optional_text(_OPTIONAL["utm_medium"])


class _ContractEvent(msgspec.Struct, gc=False):
    """The contract's field types and length bounds, as msgspec checks them while decoding
    (from REQUIRED_STRINGS / OPTIONAL_STRINGS / STRING_OR_BOOL above)."""

    id: _IdText
    time_stamp: int
    collection: _CollectionText
    device_id: _DeviceText
    ip: _IpText
    user_agent: _AgentText
    current_url: _UrlText
    store_id: _StoreText
    # UNSET: the field is absent (refused on a page view); null or false fail to decode.
    product_id: _ProductText = msgspec.UNSET
    referrer_url: _ReferrerOpt = None
    resolution: _ResolutionOpt = None
    user_id_db: _UserOpt = None
    email_address: _EmailOpt = None
    api_version: _ApiOpt = None
    local_time: _LocalTimeOpt = None
    utm_source: _UtmSourceOpt = None
    utm_medium: _UtmMediumOpt = None
    show_recommendation: str | bool | None = None
    recommendation: str | bool | None = None
    option: list[_Option] | _Option | None = None


_decode_contract_event = msgspec.json.Decoder(_ContractEvent).decode
_BOOL_TEXT = {True: "true", False: "false"}


def accepted_fields(value: bytes, now: int) -> tuple[Any, ...] | None:
    """The EVENT_FIELDS values of a record the contract certainly accepts, else None (the
    exact path decides). Never rejects on its own."""
    # An escaped NUL needs cleaning (the exact path does it); raw control bytes are not JSON.
    if len(value) > MAX_RECORD_BYTES or b"\\u0000" in value:
        return None
    if not value.isascii():
        # msgspec skips unknown fields without checking their UTF-8; orjson refuses the
        # whole record, so must this path.
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        event = _decode_contract_event(value)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    epoch = event.time_stamp
    if not MIN_EVENT_EPOCH <= epoch <= now + MAX_FUTURE_SKEW_SECONDS:
        return None
    product_id: str | msgspec.UnsetType | None = event.product_id
    if product_id is msgspec.UNSET:
        if event.collection == PAGE_VIEW:
            return None
        product_id = None
    referrer_url, user_id_db, email_address = (
        event.referrer_url,
        event.user_id_db,
        event.email_address,
    )
    utm_source, utm_medium, resolution = event.utm_source, event.utm_medium, event.resolution
    if (
        referrer_url is True
        or user_id_db is True
        or email_address is True
        or utm_source is True
        or utm_medium is True
        or resolution is True
        or event.api_version is True
        or event.local_time is True
    ):
        return None
    option = event.option
    recommendation = event.recommendation
    return (
        event.id,
        epoch,
        event.collection,
        event.device_id,
        event.ip,
        event.user_agent,
        event.current_url,
        event.store_id,
        product_id,
        referrer_url or None,
        user_id_db or None,
        email_address or None,
        utm_source or None,
        utm_medium or None,
        resolution or None,
        _BOOL_TEXT[recommendation] if type(recommendation) is bool else recommendation,
        0 if option is None else len(option) if type(option) is list else 1,
    )
