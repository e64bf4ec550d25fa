"""Fault injection without Kafka: rates within binomial bounds, every malformed kind is
invalid in the way the contract says, and the tally is exact ground truth."""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right
from collections import Counter

import jsonschema
import orjson
import pytest

from pagestream_common.contract import event_json_schema
from pagestream_simulator.faults import (
    MALFORMED_KINDS,
    MAX_DUPLICATE_DELAY,
    FaultConfig,
    FaultInjector,
    Malformer,
    Tally,
)
from pagestream_simulator.generator import EventGenerator, GeneratorConfig
from pagestream_simulator.verify import classify_record

START = 1_793_577_600.0  # 2026-11-02T00:00:00Z
VALIDATOR = jsonschema.Draft202012Validator(event_json_schema())
N = 20_000


def binomial_bound(n: int, p: float, z: float = 5.0) -> tuple[float, float]:
    """A Binomial(n, p) count falls outside these bounds with probability < 1e-6."""
    sigma = math.sqrt(n * p * (1 - p))
    return n * p - z * sigma, n * p + z * sigma


def inject(faults: FaultConfig, count: int = N, seed: int = 1) -> tuple[list, Tally, list]:
    tally = Tally()
    injector = FaultInjector(faults, seed, tally)
    log: list[dict] = []
    injector.fault_log = log.append
    events = itertools.islice(EventGenerator(GeneratorConfig(seed=seed, start_time=START)), count)
    return list(injector.records(events)), tally, log


@pytest.fixture(scope="module")
def faulty() -> tuple[list, Tally, list]:
    return inject(
        FaultConfig(duplicate_rate=0.03, malformed_rate=0.04, late_rate=0.05, late_by_seconds=7200)
    )


def test_fault_rates_are_within_binomial_bounds(faulty) -> None:
    records, tally, _ = faulty
    assert tally.events_generated == N
    low, high = binomial_bound(N, 0.04)
    assert low <= tally.malformed <= high
    valid = tally.valid_events
    assert valid + tally.malformed == N
    # Late and duplicate draws are independent of malformed; they only count on valid events.
    low, high = binomial_bound(valid, 0.05)
    assert low <= tally.late_events <= high
    low, high = binomial_bound(valid, 0.03)
    assert low <= tally.duplicates_sent <= high
    assert len(records) == tally.records == N + tally.duplicates_sent


def test_every_record_classifies_as_the_tally_says(faulty) -> None:
    records, tally, log = faulty
    reasons = Counter(classify_record(value, START, VALIDATOR) for _, value, _ in records)
    expected = Counter(tally.dead_letters_by_reason())
    expected[None] = tally.valid_events + tally.duplicates_sent
    assert reasons == expected
    # The fault log names each malformed record's position and kind.
    malformed = [entry for entry in log if entry["fault"] == "malformed"]
    assert len(malformed) == tally.malformed
    for entry in malformed:
        _, value, label = records[entry["record"]]
        assert label == f"malformed:{entry['kind']}"
        assert classify_record(value, START, VALIDATOR) == entry["reason"]


def test_duplicates_are_the_same_bytes_sent_a_few_records_later(faulty) -> None:
    records, tally, log = faulty
    values = Counter(value for _, value, label in records if not label.startswith("malformed:"))
    assert sum(n - 1 for n in values.values()) == tally.duplicates_sent
    assert max(values.values()) == 2
    positions: dict[bytes, list[int]] = {}
    for index, (_, value, _) in enumerate(records):
        positions.setdefault(value, []).append(index)
    # A duplicate keeps its key (same partition) and comes within MAX_DUPLICATE_DELAY events
    # (other duplicates sent in between add to the distance in records).
    pairs = [p for p in positions.values() if len(p) == 2]
    second_copies = sorted(second for _, second in pairs)
    for first, second in pairs:
        between = bisect_left(second_copies, second) - bisect_right(second_copies, first)
        assert 0 < second - first <= MAX_DUPLICATE_DELAY + between
        assert records[first][0] == records[second][0]
    assert sum(entry["fault"] == "duplicate" for entry in log) == tally.duplicates_sent


def test_late_events_are_exactly_late_by_behind_and_otherwise_unchanged(faulty) -> None:
    records, tally, _ = faulty
    clean, _, _ = inject(FaultConfig(), count=N)
    clean_by_id = {orjson.loads(v)["id"]: orjson.loads(v) for _, v, _ in clean}
    late = 0
    for _, value, label in records:
        if label.startswith("malformed:"):
            continue
        event = orjson.loads(value)
        original = clean_by_id[event["id"]]
        behind = original["time_stamp"] - event["time_stamp"]
        assert behind in (0, 7200)
        # The id keeps the creation (arrival) second, so lateness is visible in the data.
        assert int(event["id"][:8], 16) - event["time_stamp"] == behind
        if behind:
            late += 1
            assert event["local_time"] != original["local_time"]
            assert {k: v for k, v in event.items() if k not in ("time_stamp", "local_time")} == {
                k: v for k, v in original.items() if k not in ("time_stamp", "local_time")
            }
        else:
            assert event == original
    # Duplicated late events are counted once by the tally.
    assert late >= tally.late_events


def test_without_faults_the_records_are_the_generator_output() -> None:
    records, tally, log = inject(FaultConfig(), count=2_000)
    generated = EventGenerator(GeneratorConfig(seed=1, start_time=START)).take(2_000)
    assert [(k, v) for k, v, _ in records] == [(k, orjson.dumps(e)) for k, *_, e in generated]
    assert tally.records == 2_000 and tally.malformed == 0 and not log


def test_same_seed_same_faulty_stream() -> None:
    config = FaultConfig(duplicate_rate=0.1, malformed_rate=0.1, late_rate=0.1)
    assert inject(config, count=3_000)[0] == inject(config, count=3_000)[0]


@pytest.mark.parametrize("kind", list(MALFORMED_KINDS))
def test_each_malformed_kind_gets_its_dead_letter_reason(kind: str) -> None:
    import random

    malformer = Malformer(random.Random(kind))
    events = EventGenerator(GeneratorConfig(seed=2, start_time=START)).take(300)
    reason = MALFORMED_KINDS[kind][0]
    for *_, event in events:
        before = dict(event)
        value = malformer.make(kind, event)
        assert classify_record(value, START, VALIDATOR) == reason, (kind, value[:200])
        assert event == before  # the generator's object is untouched


def test_rates_must_be_probabilities() -> None:
    with pytest.raises(ValueError):
        FaultConfig(malformed_rate=1.5)
    with pytest.raises(ValueError):
        FaultConfig(late_by_seconds=0)
