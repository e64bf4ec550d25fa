"""Referrer URL → referring domain and medium (search, social, internal, direct, other).

Matching is on the labels of the registrable domain, never on substrings: `google.co.uk` and
`www.google.com.br` are search, `notgoogle.com` and `google.evil.com` are not. The public suffix
list is not a dependency here, so the registrable domain is found with a small rule that is
right for the hosts that matter (see `registrable_domain`).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import NamedTuple

from pagestream_spark.enrich._text import present_text, storable
from pagestream_spark.enrich.page_url import split_url

MEDIUMS = ("search", "social", "internal", "direct", "other")

# Second-level labels under which country TLDs register names (google.co.uk, google.com.br,
# yahoo.co.jp, naver.co.kr...): with one of these before a two-letter TLD, the registrable
# domain has three labels.
_COUNTRY_SECOND_LEVELS = frozenset(
    {"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go", "gob", "nic", "ltd", "plc"}
)

# Search engines and social networks by the label that names them in their registrable domain
# (so every country site counts: google.fr, google.co.jp, yandex.ru, yandex.com.tr...).
_SEARCH_LABELS = frozenset(
    {
        "google",
        "bing",
        "yahoo",
        "duckduckgo",
        "yandex",
        "baidu",
        "ecosia",
        "qwant",
        "naver",
        "seznam",
        "ask",
        "aol",
        "startpage",
        "sogou",
        "daum",
        "mojeek",
        "searx",
        "lilo",
        "metager",
        "petalsearch",
        "you",
    }
)
_SOCIAL_LABELS = frozenset(
    {
        "facebook",
        "instagram",
        "twitter",
        "pinterest",
        "linkedin",
        "youtube",
        "reddit",
        "tiktok",
        "vk",
        "tumblr",
        "snapchat",
        "threads",
        "whatsapp",
        "telegram",
        "messenger",
        "quora",
        "weibo",
        "douyin",
        "xing",
        "mastodon",
        "bsky",
        "discord",
        "wechat",
        "line",
    }
)
# Short and single-brand registrable domains whose label alone would be ambiguous.
_SEARCH_DOMAINS = frozenset({"so.com", "search.brave.com", "kagi.com", "perplexity.ai"})
_SOCIAL_DOMAINS = frozenset(
    {
        "t.co",
        "x.com",
        "fb.com",
        "fb.me",
        "lnkd.in",
        "youtu.be",
        "pin.it",
        "redd.it",
        "t.me",
        "ok.ru",
        "bsky.app",
        "threads.net",
        "vk.me",
    }
)
# Web mail on a search brand's domain is not a search (mail.google.com, mail.yahoo.com).
_NOT_SEARCH_SUBDOMAINS = ("mail.", "docs.", "drive.", "accounts.", "calendar.")

# Android apps send `android-app://<package>/` as the referrer.
_ANDROID_APP_MEDIUMS = {
    "com.google.android.googlequicksearchbox": "search",
    "com.google.android.gm": "other",
    "com.facebook.katana": "social",
    "com.facebook.orca": "social",
    "com.instagram.android": "social",
    "com.twitter.android": "social",
    "com.pinterest": "social",
    "com.linkedin.android": "social",
    "com.zhiliaoapp.musically": "social",
    "com.reddit.frontpage": "social",
    "org.telegram.messenger": "social",
    "com.whatsapp": "social",
}


class Referrer(NamedTuple):
    domain: str | None
    medium: str


DIRECT = Referrer(None, "direct")


def url_host(url: object) -> str | None:
    """Lower-cased host name of a URL (no port, no credentials), None if there is none; a URL
    without a scheme (`www.shop.fr/x`) is read as http. Never raises."""
    parts = split_url(url)
    return parts.host if parts is not None else None


def strip_www(host: str) -> str:
    return host[4:] if host.startswith("www.") and len(host) > 4 else host


def registrable_domain(host: str) -> str:
    """The registered name of `host` (`shop.glamira.co.uk` → `glamira.co.uk`,
    `www.google.fr` → `google.fr`). IP literals and single-label hosts are returned whole."""
    if _is_ip(host):
        return host
    labels = host.split(".")
    if len(labels) <= 2:
        return host
    if len(labels[-1]) == 2 and labels[-2] in _COUNTRY_SECOND_LEVELS:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


# Hosts repeat far more than URLs do, so host-level answers are memoised.
_HOST_CACHE_SIZE = 8192


@lru_cache(maxsize=_HOST_CACHE_SIZE)
def site_label(host: str | None) -> str | None:
    """The label that names a site across its country domains: `www.glamira.fr`, `glamira.de`
    and `glamira.co.uk` all give `glamira`. None for no host."""
    if not host:
        return None
    domain = registrable_domain(host)
    if _is_ip(domain):
        return domain
    return domain.split(".", 1)[0]


def _is_ip(host: str) -> bool:
    if not host or not (host[0].isdigit() or ":" in host):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def external_medium(host: str) -> str:
    """Medium of a referrer on another site: search, social or other."""
    domain = registrable_domain(host)
    label = site_label(host)
    if domain in _SEARCH_DOMAINS or host in _SEARCH_DOMAINS:
        return "search"
    if domain in _SOCIAL_DOMAINS:
        return "social"
    if label in _SEARCH_LABELS and not host.startswith(_NOT_SEARCH_SUBDOMAINS):
        return "search"
    if label in _SOCIAL_LABELS:
        return "social"
    return "other"


def parse_referrer(referrer_url: object) -> tuple[Referrer, str | None]:
    """The referrer as seen from any other site, plus its site label (to decide "internal"
    against the current page). Exposed so batches can classify each distinct referrer once."""
    text = present_text(referrer_url)
    if text is None:
        return DIRECT, None
    if text.lower().startswith("android-app://"):
        package = text[len("android-app://") :].split("/", 1)[0].lower()
        medium = _ANDROID_APP_MEDIUMS.get(package, "other")
        return Referrer(storable(package[:255]) or None, medium), None
    host = url_host(text)
    if host is None:
        return Referrer(None, "other"), None
    return _referrer_of_host(host)


@lru_cache(maxsize=_HOST_CACHE_SIZE)
def _referrer_of_host(host: str) -> tuple[Referrer, str | None]:
    return Referrer(strip_www(host), external_medium(host)), site_label(host)


def classify_referrer(referrer_url: object, current_url: object) -> Referrer:
    """Referring domain (lower-case, without `www.`) and medium. Empty, None, False or "false"
    → direct; same site as `current_url` (including the shop's other country domains, e.g.
    glamira.de → glamira.fr) → internal; a known search engine → search; a known social
    network → social; any other referrer (including unparseable text) → other."""
    referrer, referrer_site = parse_referrer(referrer_url)
    if referrer_site is not None and referrer_site == site_label(url_host(current_url)):
        return Referrer(referrer.domain, "internal")
    return referrer
