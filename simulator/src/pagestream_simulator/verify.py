"""A reference classifier for raw records, following docs/event-contract.md: what the streaming
job must decide for each record (valid, or dead-lettered with which reason).

Used by tests to check the simulator's output, and usable by anyone who wants ground truth for
a captured topic. It takes a JSON Schema validator (``jsonschema.Draft202012Validator`` of
:func:`pagestream_common.contract.event_json_schema`) so the simulator itself does not depend
on ``jsonschema``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import orjson

from pagestream_common.contract import MAX_FUTURE_SKEW_SECONDS, MAX_RECORD_BYTES, MIN_EVENT_EPOCH
from pagestream_simulator.faults import (
    INVALID_TIMESTAMP,
    OVERSIZE,
    PARSE_ERROR,
    SCHEMA_VIOLATION,
)


class SchemaError(Protocol):
    validator: str
    absolute_path: Any


class SchemaValidator(Protocol):
    def iter_errors(self, instance: Any) -> Iterable[SchemaError]: ...


def _is_time_bound_error(error: SchemaError) -> bool:
    # The schema's `minimum` on time_stamp is a time bound: the job reports it as
    # invalid_timestamp, not as a schema violation.
    return error.validator == "minimum" and list(error.absolute_path) == ["time_stamp"]


def classify_record(value: bytes, processing_time: float, validator: SchemaValidator) -> str | None:
    """None for a valid event, else the dead-letter reason, checked in the job's order:
    oversize, parse_error, schema_violation, invalid_timestamp."""
    if len(value) > MAX_RECORD_BYTES:
        return OVERSIZE
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return PARSE_ERROR
    if any(not _is_time_bound_error(e) for e in validator.iter_errors(event)):
        return SCHEMA_VIOLATION
    stamp = event["time_stamp"]
    if stamp < MIN_EVENT_EPOCH or stamp > processing_time + MAX_FUTURE_SKEW_SECONDS:
        return INVALID_TIMESTAMP
    return None
