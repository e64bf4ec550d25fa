"""Static pools the generator draws from: stores and their countries' IP ranges, user agents,
referrers, campaigns, and the product catalogue with long-tail popularity.

Everything here is precomputed once per generator, so drawing an event costs a few list
look-ups instead of string building.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Network
from itertools import accumulate

BRAND = "lumera"


@dataclass(frozen=True)
class Store:
    """A country shop. ``cidrs`` are networks the geoip2fast database places in ``country``
    (checked by a unit test), so the job's IP → country enrichment agrees with the store."""

    store_id: str
    country: str
    tld: str
    language: str
    utc_offset_hours: int
    weight: float
    cidrs: tuple[str, ...]

    @property
    def host(self) -> str:
        return f"https://www.{BRAND}.{self.tld}"


STORES: tuple[Store, ...] = (
    Store("1", "DE", "de", "de", 1, 14.0, ("84.128.0.0/12", "91.0.0.0/11", "79.192.0.0/10")),
    Store("6", "FR", "fr", "fr", 1, 11.0, ("86.192.0.0/10", "109.0.0.0/11", "93.0.0.0/11")),
    Store("12", "GB", "co.uk", "en", 0, 10.0, ("86.0.0.0/12", "81.96.0.0/13", "31.64.0.0/10")),
    Store("2", "US", "com", "en", -5, 13.0, ("73.0.0.0/13", "98.0.0.0/12", "108.0.0.0/11")),
    Store("7", "IT", "it", "it", 1, 7.0, ("79.0.0.0/11", "87.0.0.0/11", "151.16.0.0/12")),
    Store("8", "ES", "es", "es", 1, 6.0, ("88.0.0.0/11", "81.32.0.0/12", "83.48.0.0/12")),
    Store("9", "NL", "nl", "nl", 1, 5.0, ("145.96.0.0/11", "145.160.0.0/12", "145.192.0.0/12")),
    Store("10", "BE", "be", "fr", 1, 3.0, ("109.136.0.0/13", "84.192.0.0/13", "81.240.0.0/13")),
    Store("11", "CH", "ch", "de", 1, 3.0, ("178.192.0.0/13", "85.0.0.0/14", "62.202.0.0/15")),
    Store("13", "AT", "at", "de", 1, 3.0, ("91.112.0.0/14", "85.124.0.0/14", "77.116.0.0/14")),
    Store("14", "SE", "se", "sv", 1, 3.0, ("81.224.0.0/12", "2.248.0.0/13", "85.224.0.0/13")),
    Store("15", "DK", "dk", "da", 1, 2.0, ("2.104.0.0/13", "93.160.0.0/13", "87.48.0.0/13")),
    Store("16", "NO", "no", "no", 1, 2.0, ("88.88.0.0/13", "77.16.0.0/14", "85.164.0.0/14")),
    Store("17", "PL", "pl", "pl", 1, 3.0, ("83.0.0.0/12", "89.228.0.0/14", "178.180.0.0/14")),
    Store("18", "CA", "ca", "en", -5, 4.0, ("99.224.0.0/11", "142.112.0.0/12", "174.0.0.0/13")),
    Store("19", "AU", "com.au", "en", 10, 4.0, ("1.128.0.0/11", "58.160.0.0/12", "120.144.0.0/12")),
    Store("20", "IE", "ie", "en", 0, 1.5, ("87.32.0.0/12",)),
    Store("21", "PT", "pt", "pt", 0, 1.5, ("85.240.0.0/13", "188.80.0.0/14", "2.80.0.0/14")),
    Store("22", "FI", "fi", "fi", 2, 1.5, ("84.248.0.0/14", "87.92.0.0/14", "88.112.0.0/14")),
    Store("23", "CZ", "cz", "cs", 1, 1.5, ("85.160.0.0/14", "90.180.0.0/14", "88.100.0.0/14")),
    Store("24", "MX", "com.mx", "es", -6, 2.0, ("189.160.0.0/11", "187.192.0.0/11")),
    Store("25", "BR", "com.br", "pt", -3, 2.5, ("179.192.0.0/10", "191.160.0.0/11")),
    Store("26", "JP", "jp", "ja", 9, 2.0, ("126.0.0.0/9", "60.64.0.0/10")),
    Store("27", "IN", "in", "en", 5, 2.0, ("117.224.0.0/11", "106.192.0.0/11")),
)

# Relative traffic by local hour: quiet at night, a lunch bump, an evening peak (shopping on the
# sofa). Normalised to mean 1 by the generator.
HOURLY_PROFILE = (
    0.30, 0.20, 0.14, 0.10, 0.09, 0.12, 0.25, 0.50, 0.80, 1.00, 1.10, 1.20,
    1.35, 1.30, 1.20, 1.15, 1.20, 1.35, 1.55, 1.80, 1.95, 1.85, 1.40, 0.80,
)  # fmt: skip


@dataclass(frozen=True)
class Agent:
    user_agent: str
    resolutions: tuple[str, ...]


DESKTOP = "desktop"
MOBILE = "mobile"
TABLET = "tablet"

_DESKTOP_RES = ("1920x1080", "1366x768", "1536x864", "1440x900", "2560x1440", "1280x720")
_IPHONE_RES = ("375x667", "390x844", "393x852", "414x896", "430x932", "375x812")
_ANDROID_RES = ("360x800", "412x915", "384x854", "360x780", "412x892")
_TABLET_RES = ("768x1024", "810x1080", "820x1180", "800x1280", "1024x1366")

HUMAN_AGENTS: dict[str, tuple[Agent, ...]] = {
    DESKTOP: (
        Agent(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36",
            _DESKTOP_RES,
        ),
        Agent(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            _DESKTOP_RES,
        ),
        Agent(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
            _DESKTOP_RES,
        ),
        Agent(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.6 Safari/605.1.15",
            ("1440x900", "1512x982", "1728x1117", "2560x1440"),
        ),
        Agent(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            ("1440x900", "1512x982", "1728x1117", "1920x1080"),
        ),
        Agent(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36",
            _DESKTOP_RES,
        ),
    ),
    MOBILE: (
        Agent(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
            _IPHONE_RES,
        ),
        Agent(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            _IPHONE_RES,
        ),
        Agent(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 13_3 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/13.0.5 Mobile/15E148 Safari/604.1",
            ("375x667", "414x896"),
        ),
        Agent(
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Mobile Safari/537.36",
            _ANDROID_RES,
        ),
        Agent(
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
            "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
            _ANDROID_RES,
        ),
        Agent(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Mobile/15E148 Instagram 356.0.0.41.101 (iPhone14,5; iOS 17_6; "
            "en_US; en; scale=3.00; 1170x2532; 656166617)",
            _IPHONE_RES,
        ),
    ),
    TABLET: (
        Agent(
            "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
            _TABLET_RES,
        ),
        Agent(
            "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36",
            ("800x1280", "1200x1920"),
        ),
    ),
}

# Share of human visitors by device class (roughly what jewellery shops see in 2024).
DEVICE_MIX = ((MOBILE, 0.58), (DESKTOP, 0.36), (TABLET, 0.06))


@dataclass(frozen=True)
class Crawler:
    user_agent: str
    cidr: str
    weight: float


# Crawlers a UA parser recognises (uap-core classifies each as device family "Spider"),
# from networks their operators publish.
CRAWLERS: tuple[Crawler, ...] = (
    Crawler("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "66.249.64.0/19", 20),
    Crawler(
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.6778.204 Mobile Safari/537.36 "
        "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "66.249.64.0/19", 20),
    Crawler("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "157.55.39.0/24", 12),
    Crawler("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
            "54.36.148.0/22", 10),
    Crawler("Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
            "85.208.96.0/22", 8),
    Crawler("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
            "5.255.253.0/24", 5),
    Crawler("Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
            "116.179.32.0/24", 3),
    Crawler("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", "20.191.45.0/24", 2),
    Crawler(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Safari/605.1.15 "
        "(Applebot/0.1; +http://www.apple.com/go/applebot)",
        "17.241.75.0/24", 4),
    Crawler("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "69.171.224.0/19", 4),
    Crawler("Mozilla/5.0 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
            "114.119.128.0/19", 3),
    Crawler("Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)", "207.244.64.0/18", 2),
)  # fmt: skip


# Where a session's first page view comes from. Internal referrers follow inside a session.
DIRECT = "direct"
SEARCH = "search"
SOCIAL = "social"
CAMPAIGN = "campaign"
ENTRY_MIX = ((DIRECT, 0.30), (SEARCH, 0.38), (SOCIAL, 0.12), (CAMPAIGN, 0.20))

SEARCH_REFERRERS = (
    "https://www.google.{tld}/",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://search.yahoo.com/",
)
SOCIAL_REFERRERS = (
    "https://www.facebook.com/",
    "https://l.facebook.com/",
    "https://www.instagram.com/",
    "https://www.pinterest.com/",
    "https://t.co/",
    "https://www.tiktok.com/",
)


@dataclass(frozen=True)
class Campaign:
    source: str
    medium: str
    name: str
    referrer: str  # "" when the click carries no referrer (e-mail clients)
    click_id: str  # the ad network's click-id parameter name, or ""


CAMPAIGNS: tuple[Campaign, ...] = (
    Campaign("google", "cpc", "shopping_rings", "https://www.google.{tld}/", "gclid"),
    Campaign("google", "cpc", "brand_search", "https://www.google.{tld}/", "gclid"),
    Campaign("bing", "cpc", "shopping_rings", "https://www.bing.com/", "msclkid"),
    Campaign("facebook", "paid_social", "engagement_rings_q4", "https://m.facebook.com/", "fbclid"),
    Campaign("instagram", "paid_social", "new_collection", "https://www.instagram.com/", "fbclid"),
    Campaign("newsletter", "email", "weekly_picks", "", ""),
    Campaign("criteo", "display", "retargeting", "https://www.criteo.com/", ""),
    Campaign("awin", "affiliate", "partner_network", "https://www.awin1.com/", ""),
)

# Product types, translated per store language for the URL slugs (English fallback).
PRODUCT_TYPES: dict[str, dict[str, str]] = {
    "ring": {"de": "ring", "fr": "bague", "es": "anillo", "it": "anello", "nl": "ring",
             "pt": "anel", "pl": "pierscionek", "sv": "ring", "en": "ring"},
    "necklace": {"de": "halskette", "fr": "collier", "es": "collar", "it": "collana",
                 "nl": "ketting", "pt": "colar", "pl": "naszyjnik", "en": "necklace"},
    "earring": {"de": "ohrring", "fr": "boucle-oreille", "es": "pendiente", "it": "orecchino",
                "nl": "oorbel", "pt": "brinco", "en": "earring"},
    "bracelet": {"de": "armband", "fr": "bracelet", "es": "pulsera", "it": "bracciale",
                 "nl": "armband", "pt": "pulseira", "en": "bracelet"},
    "pendant": {"de": "anhaenger", "fr": "pendentif", "es": "colgante", "it": "ciondolo",
                "en": "pendant"},
    "watch": {"de": "uhr", "fr": "montre", "es": "reloj", "it": "orologio", "en": "watch"},
}  # fmt: skip
CATEGORY_PAGES = (
    "engagement-rings", "wedding-rings", "womens-rings", "men-s-rings", "necklaces",
    "men-s-necklaces", "earrings", "bracelets", "pendants", "watches", "sale", "new-in",
)  # fmt: skip
STATIC_PAGES = ("about-us", "contact", "shipping", "returns", "ring-size-guide", "faq")
LANDING_PAGES = ("", "black-friday", "valentines-day", "mothers-day", "gift-ideas")
NAME_SYLLABLES = (
    "sa", "phi", "ra", "lu", "me", "na", "el", "vi", "ta", "ro", "sa", "li", "an", "ke",
    "do", "mi", "ra", "be", "lla", "or", "ia", "ze", "no", "va",
)  # fmt: skip
OPTION_VALUES: dict[str, tuple[str, ...]] = {
    "alloy": ("white-375", "yellow-375", "red-585", "white-585", "platinum", "silver"),
    "diamond": ("diamond-Brillant", "sapphire", "ruby", "emerald", "zirconia", "moissanite"),
    "stone": ("swarovsky", "amethyst", "topaz", "pearl"),
    "ringsize": tuple(str(s) for s in range(48, 67)),
}


@dataclass(frozen=True)
class ProductOption:
    option_label: str
    option_id: str
    values: tuple[tuple[str, str], ...]  # (value_label, value_id)


@dataclass(frozen=True)
class Product:
    product_id: str
    kind: str
    name: str
    sku: str
    options: tuple[ProductOption, ...]

    # The `option` payloads are built once per product: they are the same objects in every
    # event (orjson encodes them; nothing mutates them).
    @cached_property
    def preselected(self) -> list[dict[str, str]]:
        """Options as the product page renders them preselected (value label left empty, as
        the reference tracker does)."""
        return [
            {
                "option_label": o.option_label,
                "option_id": o.option_id,
                "value_label": "",
                "value_id": o.values[0][1],
            }
            for o in self.options
        ]

    @cached_property
    def preselected_query(self) -> str:
        first = self.options[0]
        return f"?{first.option_label}={first.values[0][0]}"

    @cached_property
    def selections(self) -> tuple[tuple[str, list[dict[str, str]]], ...]:
        """Every single-option choice a visitor can make: (URL query, `option` payload)."""
        return tuple(
            (
                f"?{o.option_label}={label}",
                [
                    {
                        "option_label": o.option_label,
                        "option_id": o.option_id,
                        "value_label": label,
                        "value_id": value_id,
                    }
                ],
            )
            for o in self.options
            for label, value_id in o.values
        )


class Catalogue:
    """Products ranked by popularity: rank r has weight 1/r**s (Zipf), so a few best-sellers
    get much of the traffic and a long tail gets a little each."""

    def __init__(self, rng: random.Random, size: int, zipf_s: float = 1.07) -> None:
        kinds = tuple(PRODUCT_TYPES)
        kind_weights = (45, 20, 15, 10, 7, 3)
        products = []
        used_ids: set[int] = set()
        for rank in range(size):
            pid = rng.randrange(10_000, 600_000)
            while pid in used_ids:
                pid = rng.randrange(10_000, 600_000)
            used_ids.add(pid)
            kind = rng.choices(kinds, kind_weights)[0]
            name = "".join(rng.choice(NAME_SYLLABLES) for _ in range(rng.randint(2, 3)))
            sku = f"sku{'gmrb'[rank % 4]}{pid:06d}"
            options = []
            for label in ("alloy", "diamond", "stone", "ringsize"):
                if label == "ringsize" and kind != "ring":
                    continue
                if label != "alloy" and rng.random() < 0.5:
                    continue
                values = tuple(
                    (value, str(rng.randrange(1_000_000, 9_999_999)))
                    for value in rng.sample(OPTION_VALUES[label], min(4, len(OPTION_VALUES[label])))
                )
                options.append(ProductOption(label, str(rng.randrange(100_000, 999_999)), values))
            products.append(Product(str(pid), kind, name, sku, tuple(options)))
        self.products: tuple[Product, ...] = tuple(products)
        self.cumulative: list[float] = list(
            accumulate(1.0 / (r + 1) ** zipf_s for r in range(size))
        )
        self.total = self.cumulative[-1]

    def pick(self, rng: random.Random) -> Product:
        index = bisect_right(self.cumulative, rng.random() * self.total)
        return self.products[min(index, len(self.products) - 1)]

    def neighbour(self, rng: random.Random, product: Product) -> Product:
        """A 'similar item' for recommendations: another popular product of the same kind
        when one turns up quickly, else any popular one."""
        for _ in range(4):
            other = self.pick(rng)
            if other.kind == product.kind and other is not product:
                return other
        return self.pick(rng)


class AddressPool:
    """Draws IPv4 addresses from a list of networks, as dotted strings."""

    def __init__(self, cidrs: tuple[str, ...]) -> None:
        nets = [IPv4Network(c) for c in cidrs]
        self.bases = [int(n.network_address) for n in nets]
        self.sizes = [n.num_addresses for n in nets]

    def draw(self, rng: random.Random) -> str:
        random_ = rng.random
        i = int(random_() * len(self.bases))
        # Skip the network and broadcast addresses of the block.
        value = self.bases[i] + 1 + int(random_() * (self.sizes[i] - 2))
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def cumulative(weights: list[float] | tuple[float, ...]) -> list[float]:
    return list(accumulate(weights))


def weighted_index(rng: random.Random, cum: list[float]) -> int:
    # min(): random() * total can round up to total itself.
    return min(bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)
