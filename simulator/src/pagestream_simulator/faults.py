"""Fault injection between the generator and Kafka: late events, malformed records and
duplicates, each at a configured rate, with a tally of exactly what was injected so tests can
compute the ground truth a consumer must reproduce.

Faults draw from their own seeded random stream, so the underlying events are the same with
or without faults for a given seed.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from pagestream_common.contract import MAX_RECORD_BYTES, PAGE_VIEW, REQUIRED_FIELDS
from pagestream_simulator.generator import GeneratedEvent, LocalTimeFormatter

# How the streaming job dead-letters each kind of malformed record (docs/event-contract.md).
PARSE_ERROR = "parse_error"
SCHEMA_VIOLATION = "schema_violation"
INVALID_TIMESTAMP = "invalid_timestamp"
OVERSIZE = "oversize"

MALFORMED_KINDS: dict[str, tuple[str, float]] = {
    # kind: (dead-letter reason, relative weight)
    "truncated_json": (PARSE_ERROR, 2.0),
    "not_json": (PARSE_ERROR, 1.0),
    "empty_record": (PARSE_ERROR, 0.5),
    "not_an_object": (SCHEMA_VIOLATION, 0.5),
    "missing_required_field": (SCHEMA_VIOLATION, 2.0),
    "null_required_field": (SCHEMA_VIOLATION, 1.0),
    "wrong_type": (SCHEMA_VIOLATION, 2.0),
    "page_view_without_product": (SCHEMA_VIOLATION, 1.0),
    "timestamp_in_milliseconds": (INVALID_TIMESTAMP, 1.0),
    "timestamp_before_2000": (INVALID_TIMESTAMP, 0.5),
    "timestamp_far_future": (INVALID_TIMESTAMP, 0.5),
    "oversize": (OVERSIZE, 0.25),
}

# Records a broken tracker or proxy really sends instead of an event.
NOT_JSON_BODIES = (
    b"undefined",
    b"[object Object]",
    b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    b"id=5ed8cb2bc1f5b2a6c8fd1a2c&collection=view_product_detail",
)
# `timestamp_far_future` puts an event after 2100-01-01: more than a day ahead of any
# processing clock, whatever simulated start time the events have.
YEAR_2100 = 4_102_444_800
# Duplicates are re-sent this many records later at most, as a retrying tracker would.
MAX_DUPLICATE_DELAY = 50


@dataclass(frozen=True)
class FaultConfig:
    duplicate_rate: float = 0.0
    malformed_rate: float = 0.0
    late_rate: float = 0.0
    late_by_seconds: int = 3600

    def __post_init__(self) -> None:
        for name in ("duplicate_rate", "malformed_rate", "late_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.late_by_seconds <= 0:
            raise ValueError("late_by_seconds must be positive")

    @property
    def any(self) -> bool:
        return bool(self.duplicate_rate or self.malformed_rate or self.late_rate)


@dataclass
class Tally:
    """What went to Kafka, as ground truth for whoever consumes it."""

    events_generated: int = 0
    # Valid events (not malformed), first copies only.
    valid_by_collection: Counter[str] = field(default_factory=Counter)
    valid_bot_events: int = 0
    valid_bot_page_views: int = 0
    late_events: int = 0
    duplicates_sent: int = 0
    malformed_by_kind: Counter[str] = field(default_factory=Counter)

    @property
    def valid_events(self) -> int:
        return sum(self.valid_by_collection.values())

    @property
    def malformed(self) -> int:
        return sum(self.malformed_by_kind.values())

    @property
    def records(self) -> int:
        return self.events_generated + self.duplicates_sent

    def dead_letters_by_reason(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for kind, count in self.malformed_by_kind.items():
            out[MALFORMED_KINDS[kind][0]] += count
        return dict(sorted(out.items()))


# One record for Kafka: (key, value, collection or the malformed kind's label).
Record = tuple[bytes, bytes, str]
# What it returns is ignored (a file's write returns the byte count).
FaultLog = Callable[[dict[str, Any]], object]


class Malformer:
    """Turns a good event into one malformed record of a given kind."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.kinds = list(MALFORMED_KINDS)
        total = 0.0
        self.cumulative: list[float] = []
        for _, weight in MALFORMED_KINDS.values():
            total += weight
            self.cumulative.append(total)

    def choose_kind(self) -> str:
        x = self.rng.random() * self.cumulative[-1]
        for kind, bound in zip(self.kinds, self.cumulative, strict=True):
            if x < bound:
                return kind
        return self.kinds[-1]

    def make(self, kind: str, event: dict[str, Any]) -> bytes:
        rng = self.rng
        event = dict(event)  # never alter the generator's objects
        if kind == "truncated_json":
            encoded = orjson.dumps(event)
            # Cut anywhere before the closing brace: never valid JSON.
            return encoded[: 1 + int(rng.random() * (len(encoded) - 2))]
        if kind == "not_json":
            return NOT_JSON_BODIES[int(rng.random() * len(NOT_JSON_BODIES))]
        if kind == "empty_record":
            return b""
        if kind == "not_an_object":
            # A tracker batching events into one array, which the contract does not allow.
            return orjson.dumps([event])
        if kind == "missing_required_field":
            del event[REQUIRED_FIELDS[int(rng.random() * len(REQUIRED_FIELDS))]]
        elif kind == "null_required_field":
            event[REQUIRED_FIELDS[int(rng.random() * len(REQUIRED_FIELDS))]] = None
        elif kind == "wrong_type":
            variant = int(rng.random() * 3)
            if variant == 0:
                event["time_stamp"] = str(event["time_stamp"])
            elif variant == 1:
                event["store_id"] = int(event["store_id"])
            else:
                event["collection"] = ["view_product_detail"]
        elif kind == "page_view_without_product":
            event["collection"] = PAGE_VIEW
            event.pop("product_id", None)
        elif kind == "timestamp_in_milliseconds":
            event["time_stamp"] = event["time_stamp"] * 1000 + int(rng.random() * 1000)
        elif kind == "timestamp_before_2000":
            event["time_stamp"] = int(rng.random() * 946_684_800)
        elif kind == "timestamp_far_future":
            event["time_stamp"] = YEAR_2100 + int(rng.random() * 86_400 * 365)
        elif kind == "oversize":
            # A runaway tracking parameter blowing the URL past the record limit.
            padding = "x" * (MAX_RECORD_BYTES + 1024)
            event["current_url"] = f"{event['current_url']}?trk={padding}"
        else:
            raise ValueError(f"unknown malformed kind {kind!r}")
        return orjson.dumps(event)


class FaultInjector:
    """Wraps an iterator of generated events into the records to send, injecting faults."""

    def __init__(self, config: FaultConfig, seed: int, tally: Tally) -> None:
        self.config = config
        self.rng = random.Random(f"{seed}/faults")
        self.malformer = Malformer(self.rng)
        self.tally = tally
        self.format_local = LocalTimeFormatter()
        self.fault_log: FaultLog | None = None

    def records(self, events: Iterator[GeneratedEvent]) -> Iterator[Record]:
        config = self.config
        tally = self.tally
        by_collection = tally.valid_by_collection
        dumps = orjson.dumps
        if not config.any:
            # The hot path when no faults are asked for: nothing but encoding and counting.
            for key, collection, bot, _, event in events:
                tally.events_generated += 1
                by_collection[collection] += 1
                if bot:
                    tally.valid_bot_events += 1
                    if collection == PAGE_VIEW:
                        tally.valid_bot_page_views += 1
                yield key, dumps(event), collection
            return

        random_ = self.rng.random
        late_rate = config.late_rate
        malformed_rate = config.malformed_rate
        duplicate_rate = config.duplicate_rate
        late_by = config.late_by_seconds
        # Duplicates owed: (due after this many events, tie-break, key, value, collection, id)
        pending: list[tuple[int, int, bytes, bytes, str, str]] = []
        sequence = 0
        log = self.fault_log
        for key, collection, bot, utc_offset, event in events:
            # Every event makes these three draws whatever the outcome, so the three faults
            # are independent of each other and each hits its rate.
            late = random_() < late_rate
            malformed = random_() < malformed_rate
            duplicate = random_() < duplicate_rate
            index = tally.records  # position of this record in the stream, from 0
            tally.events_generated += 1
            if late:
                event = dict(event)
                event["time_stamp"] -= late_by
                event["local_time"] = self.format_local(event["time_stamp"] + utc_offset)
            if malformed:
                kind = self.malformer.choose_kind()
                tally.malformed_by_kind[kind] += 1
                if log is not None:
                    log(
                        {
                            "record": index,
                            "fault": "malformed",
                            "kind": kind,
                            "reason": MALFORMED_KINDS[kind][0],
                            "id": event["id"],
                        }
                    )
                yield key, self.malformer.make(kind, event), f"malformed:{kind}"
            else:
                value = dumps(event)
                by_collection[collection] += 1
                if bot:
                    tally.valid_bot_events += 1
                    if collection == PAGE_VIEW:
                        tally.valid_bot_page_views += 1
                if late:
                    tally.late_events += 1
                    if log is not None:
                        log({"record": index, "fault": "late", "id": event["id"]})
                if duplicate:
                    sequence += 1
                    due = tally.events_generated + int(random_() * MAX_DUPLICATE_DELAY)
                    heapq.heappush(pending, (due, sequence, key, value, collection, event["id"]))
                yield key, value, collection
            while pending and pending[0][0] <= tally.events_generated:
                yield self._duplicate(heapq.heappop(pending))
        # The events ran out (count reached): send the duplicates still owed.
        while pending:
            yield self._duplicate(heapq.heappop(pending))

    def _duplicate(self, owed: tuple[int, int, bytes, bytes, str, str]) -> Record:
        _, _, key, value, collection, event_id = owed
        if self.fault_log is not None:
            self.fault_log({"record": self.tally.records, "fault": "duplicate", "id": event_id})
        self.tally.duplicates_sent += 1
        return key, value, collection
