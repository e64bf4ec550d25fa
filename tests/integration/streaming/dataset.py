"""A seeded dataset of tracker records with known ground truth, built independently of the job.

Each record carries labels the generator chose (browser, OS, bot, referrer domain), so the
expected results do not come from the code under test. Records include every kind of trouble
the job must survive: exact duplicates, broken JSON, wrong types, missing fields, invalid UTF-8,
oversize records, out-of-range timestamps, late events from the previous day, and the tracker's
quirks (false for absent strings, option as list/object/absent).
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from dataclasses import dataclass, field

import geoip2fast
import jsonschema

from pagestream_common.contract import (
    MAX_FUTURE_SKEW_SECONDS,
    MAX_RECORD_BYTES,
    MIN_EVENT_EPOCH,
    event_json_schema,
)

# (user agent, browser, os, is_bot) — labels are ua-parser's family names for these strings.
USER_AGENTS = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Chrome",
        "Windows",
        False,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
        "Mobile Safari",
        "iOS",
        False,
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36",
        "Chrome Mobile",
        "Android",
        False,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0",
        "Firefox",
        "Mac OS X",
        False,
    ),
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Googlebot",
        "Other",
        True,
    ),
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "bingbot",
        "Other",
        True,
    ),
]
HUMAN_UAS = [u for u in USER_AGENTS if not u[3]]
BOT_UAS = [u for u in USER_AGENTS if u[3]]

# IPs spread over a few countries; the expected country comes from geoip2fast itself.
IPS = [
    "37.170.17.183",
    "80.12.34.56",
    "93.184.216.34",
    "81.2.69.142",
    "5.9.0.1",
    "151.101.1.69",
    "2.16.0.1",
    "62.210.16.6",
    "213.186.33.5",
    "87.250.250.242",
    "200.147.67.142",
    "1.1.1.1",
]
STORES = ["1", "6", "12", "29", "41"]
PRODUCTS = [str(100000 + i) for i in range(40)]
# Product page URLs name a product (not necessarily the event's: product ids are drawn apart),
# as the tracker's shops do: brand, type, name, sku.
PAGE_NAMES = ["saphira", "luno", "mira", "vela", "orla", "seren", "kaia"]


def product_page_url(sku: str) -> str:
    return f"https://www.glamira.fr/glamira-ring-{PAGE_NAMES[int(sku) % len(PAGE_NAMES)]}-skug{sku}.html"


def product_page_label(url: str) -> str:
    """The label a product page URL of this dataset gives, by construction."""
    name = url.rsplit("/", 1)[1].split("-")[2]
    return f"Glamira Ring {name.capitalize()}"


# (referrer URL or falsy, expected domain or '' for direct)
REFERRERS = [
    ("https://www.google.com/search?q=ring", "google.com"),
    ("https://www.facebook.com/", "facebook.com"),
    ("https://www.glamira.fr/men-s-necklaces/", "glamira.fr"),
    ("", ""),
    (False, ""),
    ("https://blog.example.org/post/1", "blog.example.org"),
    ("https://duckduckgo.com/", "duckduckgo.com"),
]
OTHER_COLLECTIONS = ["add_to_cart_action", "view_listing_page", "checkout", "select_product_option"]

_contract_without_time_bound = copy.deepcopy(event_json_schema())
del _contract_without_time_bound["properties"]["time_stamp"]["minimum"]
_VALIDATOR = jsonschema.Draft202012Validator(_contract_without_time_bound)
_GEO = geoip2fast.GeoIP2Fast()


def expected_outcome(record: bytes, now: int) -> str | None:
    """The contract's verdict on a record, from the JSON Schema (not the job): a dead-letter
    reason, or None for a valid event."""
    if len(record) > MAX_RECORD_BYTES:
        return "oversize"
    try:
        doc = json.loads(record.decode("utf-8"), parse_constant=_reject)
    except (UnicodeDecodeError, ValueError):
        return "parse_error"
    if not isinstance(doc, dict) or not _VALIDATOR.is_valid(doc):
        return "schema_violation"
    ts = doc["time_stamp"]
    if not (MIN_EVENT_EPOCH <= ts <= now + MAX_FUTURE_SKEW_SECONDS) or ts >= 2**63:
        return "invalid_timestamp"
    return None


def _reject(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


@dataclass
class Record:
    value: bytes
    key: bytes | None
    # Labels for valid events (None for records meant to be invalid).
    event: dict | None = None
    browser: str | None = None
    os: str | None = None
    is_bot: bool = False
    referrer_domain: str = ""


@dataclass
class Dataset:
    records: list[Record] = field(default_factory=list)

    def values(self) -> list[bytes]:
        return [r.value for r in self.records]


def build_dataset(seed: int, valid_events: int, now: int) -> Dataset:
    rng = random.Random(seed)
    ds = Dataset()
    base = now - 3600
    for i in range(valid_events):
        ua, browser, os_family, is_bot = rng.choice(BOT_UAS if rng.random() < 0.05 else HUMAN_UAS)
        referrer, referrer_domain = rng.choice(REFERRERS)
        collection = "view_product_detail" if rng.random() < 0.8 else rng.choice(OTHER_COLLECTIONS)
        late = rng.random() < 0.05
        event_time = base - rng.randint(6, 30) * 3600 if late else base + rng.randint(0, 3500)
        device = f"device-{rng.randint(0, 400)}"
        event: dict = {
            "id": f"{seed:04x}{i:020x}",
            "time_stamp": event_time,
            "ip": rng.choice(IPS),
            "user_agent": ua,
            "resolution": rng.choice(["375x667", "1920x1080", ""]),
            "user_id_db": rng.choice(["", "", "4711"]),
            "device_id": device,
            "api_version": "1.0",
            "store_id": rng.choice(STORES),
            "local_time": "2020-06-04 12:21:27",
            "show_recommendation": rng.choice(["false", "true", False]),
            "current_url": product_page_url(rng.choice(PRODUCTS))
            + rng.choice(
                [
                    "",
                    "?alloy=white-375",
                    "?utm_source=newsletter&utm_medium=email&utm_campaign=xmas",
                ]
            ),
            "referrer_url": referrer,
            "email_address": rng.choice(["", False, "Someone@Example.com"]),
            "recommendation": rng.choice([False, "false", True]),
            "utm_source": rng.choice([False, "", "google"]),
            "utm_medium": rng.choice([False, "cpc"]),
            "collection": collection,
        }
        if collection == "view_product_detail" or rng.random() < 0.5:
            event["product_id"] = rng.choice(PRODUCTS[: 10 + rng.randint(0, 30)])
        option_kind = rng.random()
        if option_kind < 0.4:
            event["option"] = [
                {
                    "option_label": "alloy",
                    "option_id": "332084",
                    "value_label": "",
                    "value_id": "3279318",
                }
            ]
        elif option_kind < 0.5:
            event["option"] = []
        elif option_kind < 0.55:
            event["option"] = {
                "option_label": "stone",
                "option_id": "1",
                "value_label": None,
                "value_id": "2",
            }
        record = Record(
            json.dumps(event).encode(),
            device.encode(),
            event,
            browser,
            os_family,
            is_bot,
            referrer_domain,
        )
        ds.records.append(record)
        if rng.random() < 0.04:  # a producer retry: the same bytes again
            ds.records.append(
                Record(record.value, record.key, event, browser, os_family, is_bot, referrer_domain)
            )
    # The invalid ones, each kind a few times, at random places.
    template = ds.records[0].event or {}
    broken: list[bytes] = []
    for j in range(12):
        bad_id = dict(template, id=f"bad-{j}")
        broken += [
            b'{"id": "x", "time_stamp": ',  # truncated JSON
            b"not json at all",
            b"\xff\xfe\x00garbage",  # invalid UTF-8
            json.dumps([bad_id]).encode(),  # not an object
            json.dumps(dict(bad_id, id=123)).encode(),  # wrong type
            json.dumps(dict(bad_id, time_stamp="1591266092")).encode(),
            json.dumps({k: v for k, v in bad_id.items() if k != "device_id"}).encode(),  # missing
            json.dumps(dict(bad_id, time_stamp=12)).encode(),  # before 2000
            json.dumps(dict(bad_id, time_stamp=now + 10 * 86400)).encode(),  # far future
            json.dumps(dict(bad_id, option=[{"option_id": 7}])).encode(),
            json.dumps(dict(bad_id, filler="x" * (MAX_RECORD_BYTES + 10))).encode(),
        ]
    for value in broken:
        ds.records.insert(rng.randint(0, len(ds.records)), Record(value, None))
    return ds


@dataclass
class GroundTruth:
    consumed: int
    dead_letters: Counter[str]
    duplicates: int
    bots: int
    page_views: list[Record]
    other_events: int

    @property
    def stored(self) -> int:
        return len(self.page_views) + self.other_events


def ground_truth(ds: Dataset, now: int) -> GroundTruth:
    dead: Counter[str] = Counter()
    seen: set[str] = set()
    duplicates = bots = other = 0
    page_views: list[Record] = []
    for rec in ds.records:
        reason = expected_outcome(rec.value, now)
        if reason is not None:
            dead[reason] += 1
            continue
        event = json.loads(rec.value)
        if event["id"] in seen:
            duplicates += 1
            continue
        seen.add(event["id"])
        assert rec.event is not None, (
            "an event the generator meant to be invalid passed the contract"
        )
        if rec.is_bot:
            bots += 1
        elif event["collection"] == "view_product_detail":
            page_views.append(rec)
        else:
            other += 1
    return GroundTruth(len(ds.records), dead, duplicates, bots, page_views, other)


def country_of(ip: str) -> str:
    code = _GEO.lookup(ip).country_code
    return code if code and len(code) == 2 and code not in ("--",) else "ZZ"
