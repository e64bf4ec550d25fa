"""Replay: send a JSON-lines file to Kafka as it is, one record per line, malformed lines
included, optionally keeping the events' relative timing (sped up)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

# Key for lines without a usable device_id (unparseable, not an object, no device): one
# stable key, so such records at least keep their relative order on one partition.
NO_DEVICE_KEY = b"no-device"
UNPARSEABLE = "_unparseable"


@dataclass(frozen=True)
class ReplayConfig:
    path: Path
    keep_timing: bool = False
    speedup: float = 1.0

    def __post_init__(self) -> None:
        if self.speedup <= 0:
            raise ValueError(f"speedup must be positive, got {self.speedup}")


@dataclass
class ReplayTally:
    lines: int = 0
    by_collection: Counter[str] = field(default_factory=Counter)

    @property
    def unparseable(self) -> int:
        return self.by_collection[UNPARSEABLE]


def iter_lines(stream: BinaryIO) -> Iterator[bytes]:
    """The file's records: lines without their terminator (``\\n`` or ``\\r\\n``). A final
    line without a newline counts; nothing follows a final newline. Streams: replaying a file
    larger than memory is fine."""
    for raw in stream:
        if raw.endswith(b"\n"):
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        yield raw


def describe(line: bytes) -> tuple[bytes, str, int | None]:
    """(key, collection label, event time) of a line, as far as it can be read."""
    try:
        event: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        return NO_DEVICE_KEY, UNPARSEABLE, None
    if not isinstance(event, dict):
        return NO_DEVICE_KEY, UNPARSEABLE, None
    device = event.get("device_id")
    key = device.encode() if isinstance(device, str) and device else NO_DEVICE_KEY
    collection = event.get("collection")
    label = collection if isinstance(collection, str) and collection else UNPARSEABLE
    stamp = event.get("time_stamp")
    when = stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else None
    return key, label, when


def replay_records(
    config: ReplayConfig, tally: ReplayTally, stop: threading.Event
) -> Iterator[tuple[bytes, bytes, str]]:
    """Yield (key, value, label) per line. With keep_timing, a line is released when
    (its time_stamp - the first line's) / speedup seconds have passed since the start; lines
    without a readable time_stamp, or with an earlier one than already sent, go at once."""
    with config.path.open("rb") as stream:
        yield from _timed(iter_lines(stream), config, tally, stop)


def _timed(
    lines: Iterator[bytes], config: ReplayConfig, tally: ReplayTally, stop: threading.Event
) -> Iterator[tuple[bytes, bytes, str]]:
    first_time: int | None = None
    started = time.monotonic()
    for line in lines:
        key, label, when = describe(line)
        if config.keep_timing and when is not None:
            if first_time is None:
                first_time = when
            due = started + (when - first_time) / config.speedup
            # Sleep in short steps so a stop request is not stuck behind a long gap.
            while (wait := due - time.monotonic()) > 0:
                if stop.wait(min(wait, 0.2)):
                    return
        tally.lines += 1
        tally.by_collection[label] += 1
        yield key, line, label
