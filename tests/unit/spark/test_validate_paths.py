"""The fast validation path (msgspec) against the exact one (orjson + Python checks): on
simulator traffic and on thousands of mutated records, whatever the fast path accepts the exact
path accepts with identical fields, and the fast path does accept ordinary traffic."""

from __future__ import annotations

import itertools
import json
import random

import orjson
import pytest

from pagestream_simulator.faults import FaultConfig, FaultInjector, Tally
from pagestream_simulator.generator import EventGenerator, GeneratorConfig
from pagestream_spark.validate import accepted_fields, classify_exactly, classify_value

NOW = 1_800_000_000
START = NOW - 3 * 86_400

ODD_VALUES: list[object] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    1_700_000_000.0,
    10**20,
    "",
    "x",
    "x" * 5000,
    "ü" * 40,
    "a\u0000b",
    "\ud83d\ude00" * 20,
    [],
    {},
    [{"option_id": None}],
    [{"option_id": 3}],
    {"option_label": "a", "extra": [1]},
    [1, 2],
]


def simulator_records(count: int, malformed_rate: float) -> list[bytes]:
    generator = EventGenerator(GeneratorConfig(seed=11, start_time=START, sim_rate=50))
    faults = FaultConfig(duplicate_rate=0.01, malformed_rate=malformed_rate, late_rate=0.02)
    injector = FaultInjector(faults, 11, Tally())
    return [value for _, value, _ in itertools.islice(injector.records(generator), count)]


def mutations(record: bytes, rng: random.Random) -> list[bytes]:
    event = orjson.loads(record)
    out: list[bytes] = []
    for _ in range(6):
        changed = dict(event)
        field = rng.choice([*event.keys(), "option", "product_id", "unknown_field"])
        if rng.random() < 0.15:
            changed.pop(field, None)
        else:
            changed[field] = rng.choice(ODD_VALUES)
        out.append(json.dumps(changed).encode())
    text = record.decode()
    # Textual edits a JSON encoder would never make: repeated keys, escapes, broken bytes.
    out.append(text.replace("{", '{"id": 5, ', 1).encode())
    out.append(text.replace("}", ', "id": "dup-later"}', 1).encode())
    out.append(text.replace("}", ', "x": "\\ud800"}', 1).encode())
    out.append(text.replace("}", ', "x": "\\u0000"}', 1).encode())
    out.append(text.encode()[:-1] + b', "x": "\xed\xa0\x80"}')
    out.append(text.replace("}", ', "x": 1e400}', 1).encode())
    out.append(text.replace("}", ', "x": ' + "[" * 3000 + "]" * 3000 + "}", 1).encode())
    out.append(b"\xef\xbb\xbf" + record)
    cut = rng.randrange(1, len(record))
    out.append(record[:cut])
    out.append(record[:cut] + bytes([rng.randrange(256)]) + record[cut + 1 :])
    return out


@pytest.fixture(scope="module")
def corpus() -> list[bytes]:
    rng = random.Random(5)
    base = simulator_records(4_000, malformed_rate=0.2)
    valid = [record for record in base if classify_exactly(record, NOW)[0] is None]
    mutated = [m for record in valid[:1_500] for m in mutations(record, rng)]
    return base + mutated


def test_the_fast_path_accepts_only_what_the_exact_path_accepts_identically(corpus) -> None:  # type: ignore[no-untyped-def]
    accepted = rejected = 0
    for record in corpus:
        fast = accepted_fields(record, NOW)
        exact = classify_exactly(record, NOW)
        if fast is not None:
            accepted += 1
            assert exact == (None, None, fast), record
        elif exact[0] is not None:
            rejected += 1
        assert classify_value(record, NOW) == exact
    # The corpus exercises both outcomes in bulk, not a handful of cases.
    assert accepted > 5_000 and rejected > 5_000, (accepted, rejected)


def test_ordinary_traffic_takes_the_fast_path() -> None:
    records = simulator_records(5_000, malformed_rate=0.0)
    exact_valid = [r for r in records if classify_exactly(r, NOW)[0] is None]
    fast_valid = [r for r in exact_valid if accepted_fields(r, NOW) is not None]
    assert len(exact_valid) > 4_900
    assert len(fast_valid) == len(exact_valid)
