"""The generator alone: deterministic, valid against the contract, and realistic in the ways
the streaming job's results depend on (sessions, bots, geography, popularity, rhythm)."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime

import jsonschema
import orjson
import pytest
from geoip2fast import GeoIP2Fast
from ua_parser import parse as parse_user_agent

from pagestream_common.contract import KNOWN_COLLECTIONS, PAGE_VIEW, event_json_schema
from pagestream_simulator.generator import (
    MAX_THINK_SECONDS,
    SESSION_GAP_SECONDS,
    EventGenerator,
    GeneratorConfig,
)
from pagestream_simulator.pools import CRAWLERS, HUMAN_AGENTS, STORES, AddressPool

START = datetime(2026, 11, 2, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
VALIDATOR = jsonschema.Draft202012Validator(event_json_schema())


def encoded(config: GeneratorConfig, count: int) -> list[bytes]:
    return [orjson.dumps(event) for *_, event in EventGenerator(config).take(count)]


def binomial_bound(n: int, p: float, z: float = 5.0) -> tuple[float, float]:
    """Bounds a Binomial(n, p) count falls outside with probability < 1e-6 (z = 5 sigma)."""
    sigma = math.sqrt(n * p * (1 - p))
    return n * p - z * sigma, n * p + z * sigma


@pytest.fixture(scope="module")
def sample() -> tuple[EventGenerator, list[tuple]]:
    generator = EventGenerator(GeneratorConfig(seed=11, start_time=START, sim_rate=5))
    return generator, generator.take(30_000)


def test_same_seed_gives_identical_bytes_and_another_seed_does_not() -> None:
    config = GeneratorConfig(seed=42, start_time=START)
    first = encoded(config, 3_000)
    assert first == encoded(config, 3_000)
    other = encoded(GeneratorConfig(seed=43, start_time=START), 3_000)
    assert len(set(first) & set(other)) == 0


def test_every_event_is_valid_against_the_json_schema(sample) -> None:
    _, events = sample
    for *_, event in events[:10_000]:
        # Through bytes and back: what a consumer sees.
        errors = list(VALIDATOR.iter_errors(orjson.loads(orjson.dumps(event))))
        assert not errors, (event, errors[0].message)


def test_ids_are_unique_object_ids_and_time_is_ordered(sample) -> None:
    _, events = sample
    ids = [event["id"] for *_, event in events]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)
    stamps = [event["time_stamp"] for *_, event in events]
    assert stamps == sorted(stamps)
    assert stamps[0] >= START


def test_collections_are_the_known_ones_and_page_views_dominate(sample) -> None:
    _, events = sample
    counts = Counter(collection for _, collection, *_ in events)
    assert set(counts) <= set(KNOWN_COLLECTIONS)
    # Every collection the tracker knows shows up in a sample this size.
    assert set(counts) == set(KNOWN_COLLECTIONS)
    assert counts.most_common(1)[0][0] == PAGE_VIEW
    assert 0.35 < counts[PAGE_VIEW] / len(events) < 0.65


def test_sessions_end_after_thirty_minutes_of_inactivity(sample) -> None:
    generator, events = sample
    by_device: dict[str, list[int]] = defaultdict(list)
    for *_, event in events:
        by_device[event["device_id"]].append(event["time_stamp"])
    sessions = 0
    for stamps in by_device.values():
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        # Inside a session gaps stay under the cap; between two sessions of a returning
        # visitor they exceed the 30-minute gap: nothing falls in between.
        assert all(g <= MAX_THINK_SECONDS + 1 or g > SESSION_GAP_SECONDS for g in gaps)
        sessions += 1 + sum(g > SESSION_GAP_SECONDS for g in gaps)
    assert sessions == generator.sessions_started
    returning = sum(
        any(b - a > SESSION_GAP_SECONDS for a, b in itertools.pairwise(s))
        for s in by_device.values()
    )
    assert returning > 0
    # Bursts: most sessions have several events.
    assert len(events) / generator.sessions_started > 3


def test_bot_share_of_sessions_is_binomial_and_of_events_near_the_setting() -> None:
    generator = EventGenerator(GeneratorConfig(seed=5, start_time=START, bot_share=0.2))
    events = generator.take(25_000)
    low, high = binomial_bound(generator.sessions_started, generator.bot_session_probability)
    assert low <= generator.bot_sessions_started <= high
    bot_events = sum(bot for _, _, bot, *_ in events)
    # Event share is clustered by session, so only a coarse check on it.
    assert 0.15 < bot_events / len(events) < 0.25
    assert EventGenerator(GeneratorConfig(seed=5, bot_share=0.0)).take(5_000)
    assert not any(bot for _, _, bot, *_ in EventGenerator(GeneratorConfig(bot_share=0)).take(5000))


def test_crawlers_are_recognised_as_bots_and_browsers_are_not() -> None:
    for crawler in CRAWLERS:
        device = parse_user_agent(crawler.user_agent).device
        assert device is not None and device.family == "Spider", crawler.user_agent
    for agents in HUMAN_AGENTS.values():
        for agent in agents:
            device = parse_user_agent(agent.user_agent).device
            assert device is None or device.family != "Spider", agent.user_agent


def test_the_streaming_jobs_classifier_agrees_on_bots_and_device_classes() -> None:
    # The consumer's own user-agent enrichment, so bot ground truth cannot drift from it.
    from pagestream_spark.enrich.user_agent import classify_user_agent

    for crawler in CRAWLERS:
        assert classify_user_agent(crawler.user_agent).is_bot, crawler.user_agent
    for device_class, agents in HUMAN_AGENTS.items():
        for agent in agents:
            info = classify_user_agent(agent.user_agent)
            assert not info.is_bot and info.device_class == device_class, agent.user_agent


def test_store_ips_geolocate_to_the_store_country() -> None:
    geo = GeoIP2Fast()
    import random

    rng = random.Random(0)
    for store in STORES:
        pool = AddressPool(store.cidrs)
        for _ in range(200):
            assert geo.lookup(pool.draw(rng)).country_code == store.country, store
        for cidr in store.cidrs:
            # The whole block is one geoip2fast network (or inside one) of that country.
            assert geo.lookup(cidr.split("/")[0]).country_code == store.country, cidr


def test_events_carry_their_store_country_ip_and_local_time(sample) -> None:
    _, events = sample
    geo = GeoIP2Fast()
    stores = {s.store_id: s for s in STORES}
    for _, _, bot, offset, event in events[:3_000]:
        store = stores[event["store_id"]]
        local = datetime.fromtimestamp(event["time_stamp"] + offset, UTC)
        assert event["local_time"] == local.strftime("%Y-%m-%d %H:%M:%S")
        assert offset == store.utc_offset_hours * 3600
        if not bot:
            assert geo.lookup(event["ip"]).country_code == store.country
            assert event["current_url"].startswith(store.host)


def test_product_popularity_has_a_long_tail(sample) -> None:
    generator, events = sample
    views = Counter(e["product_id"] for _, c, *_, e in events if c == PAGE_VIEW)
    total = sum(views.values())
    top_1_percent = sum(n for _, n in views.most_common(generator.config.catalogue_size // 100))
    assert top_1_percent / total > 0.25  # best-sellers take a big share...
    assert len(views) > 1_000  # ...and a long tail of products is seen at all
    assert sum(1 for n in views.values() if n == 1) > 200


def test_referrers_campaigns_options_and_recommendations_all_occur(sample) -> None:
    _, events = sample
    firsts = [e for *_, e in events if e["referrer_url"] == "" or "lumera" not in e["referrer_url"]]
    referrers = Counter(
        e["referrer_url"].split("/")[2] if e["referrer_url"] else "" for e in firsts
    )
    assert referrers[""] > 0
    assert any(host.startswith("www.google.") for host in referrers)
    assert any(host in ("www.facebook.com", "www.instagram.com") for host in referrers)
    campaigns = [e for *_, e in events if e["utm_source"] is not False]
    assert campaigns and all("utm_source=" in e["current_url"] for e in campaigns)
    assert all(e["utm_medium"] for e in campaigns)
    internal = [e for *_, e in events if "lumera" in e["referrer_url"]]
    assert len(internal) > len(events) / 2
    assert any(e["recommendation"] is True for *_, e in events)
    with_options = [e for *_, e in events if e.get("option")]
    assert with_options and all(isinstance(e["option"], list) for e in with_options)
    quirks = Counter(
        "absent" if "option" not in e else ("empty" if e["option"] == [] else "list")
        for _, c, *_, e in events
        if c == PAGE_VIEW
    )
    assert set(quirks) == {"absent", "empty", "list"}
    assert any(e["user_id_db"] for *_, e in events)
    assert any(e["user_id_db"] == "" for *_, e in events)


def test_daily_rhythm_follows_the_stores_local_hours() -> None:
    day = EventGenerator(GeneratorConfig(seed=3, start_time=START, sim_rate=0.3)).take(30_000)
    by_hour = Counter(
        int(e["local_time"][11:13]) for *_, e in day if e["time_stamp"] < START + 86_400
    )
    evening = sum(by_hour[h] for h in (19, 20, 21))
    night = sum(by_hour[h] for h in (2, 3, 4))
    assert evening > 5 * night
    flat = EventGenerator(
        GeneratorConfig(seed=3, start_time=START, sim_rate=1.0, daily_rhythm=False)
    ).take(20_000)
    span = flat[-1][4]["time_stamp"] - flat[0][4]["time_stamp"]
    assert 0.9 < 20_000 / span < 1.1  # sim_rate events per simulated second


def test_clock_skew_offsets_each_device_within_the_limit() -> None:
    events = EventGenerator(GeneratorConfig(seed=8, start_time=START, clock_skew_seconds=600)).take(
        5_000
    )
    skews = {e["device_id"]: e["time_stamp"] - int(e["id"][:8], 16) for *_, e in events}
    assert all(-600 <= s <= 600 for s in skews.values())
    assert len(set(skews.values())) > 100
    unskewed = EventGenerator(GeneratorConfig(seed=8, start_time=START)).take(2_000)
    assert all(e["time_stamp"] == int(e["id"][:8], 16) for *_, e in unskewed)


@pytest.mark.parametrize(
    "kwargs",
    [{"bot_share": 1.5}, {"sim_rate": 0}, {"clock_skew_seconds": -1}, {"start_time": 0}],
)
def test_invalid_config_is_rejected(kwargs) -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(**kwargs)
