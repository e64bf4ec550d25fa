"""User agent → browser, OS, device class and bot flag.

Parsing is done by ua-parser (the uap-core regexes, run by the Rust `regex` matcher). A page-view
stream has few distinct user agents compared with its events (thousands per million), so results
are memoised per string and `enrich_batch` only ever classifies distinct values.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import NamedTuple

from ua_parser import BestAvailableResolver, Domain, Parser, load_lazy_builtins

from pagestream_spark.enrich._text import storable

DEVICE_CLASSES = ("desktop", "mobile", "tablet", "bot", "other")

# The contract caps user_agent at 2048 characters; anything longer is garbage, and bounding the
# text also bounds the regex work and the memory the cache can hold.
MAX_USER_AGENT_CHARS = 2048
CACHE_SIZE = 16_384

# Substrings (lower-case) of automated clients that uap-core does not tag as device "Spider".
# Grouped by why they are here:
#  - crawler words: "bot" (Googlebot, bingbot, AhrefsBot, GPTBot, Slackbot...), "crawl",
#    "spider", "slurp" (Yahoo), "archiver", "scraper", "fetcher"; "cubot" is excluded from "bot"
#    because Cubot is a phone brand whose real users send "CUBOT X30".
#  - link-preview fetchers that are not people: facebookexternalhit/facebookcatalog,
#    whatsapp (only the preview fetcher sends "WhatsApp/x.y"), telegrambot, discordbot,
#    skypeuripreview, embedly, vkshare, pinterest's bot, "preview".
#  - headless / automation: headless (HeadlessChrome), phantomjs, selenium, webdriver,
#    puppeteer, playwright, electron-based scrapers are not covered (they look like Chrome).
#  - performance and uptime monitors: lighthouse (also Chrome-Lighthouse in PageSpeed),
#    pagespeed, gtmetrix, pingdom, uptimerobot, statuscake, site24x7, newrelicpinger,
#    datadog synthetics.
#  - HTTP libraries and command-line tools: python-requests, python-urllib, aiohttp, httpx,
#    curl/, wget, go-http-client, java/, okhttp, apache-httpclient, libwww-perl, node-fetch,
#    axios/, guzzlehttp, scrapy, httrack, postmanruntime.
#  - AI and SEO crawlers that do not say "bot": bytespider (says it), ccbot, perplexity,
#    anthropic-ai, cohere-ai, semrush, ahrefs, mj12, seznam's "seznambot" (bot), yandex
#    "yandex.com/bots" (bot), "mediapartners-google", "adsbot", "apis-google",
#    "google-inspectiontool", "googleother", "feedfetcher".
_BOT_KEYWORDS = (
    r"(?<!cu)bot",
    "crawl",
    "spider",
    "slurp",
    "archiver",
    "scraper",
    "fetcher",
    "facebookexternalhit",
    "facebookcatalog",
    r"whatsapp/",
    "skypeuripreview",
    "embedly",
    "vkshare",
    "preview",
    "headless",
    "phantomjs",
    "selenium",
    "webdriver",
    "puppeteer",
    "playwright",
    "lighthouse",
    "pagespeed",
    "gtmetrix",
    "pingdom",
    "uptimerobot",
    "statuscake",
    "site24x7",
    "newrelicpinger",
    "datadogsynthetics",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "curl/",
    "wget",
    "go-http-client",
    "java/",
    "okhttp",
    "apache-httpclient",
    "libwww-perl",
    "node-fetch",
    "axios/",
    "guzzlehttp",
    "scrapy",
    "httrack",
    "postmanruntime",
    "ccbot",
    "perplexity",
    "anthropic-ai",
    "cohere-ai",
    "semrush",
    "ahrefs",
    "mj12",
    "mediapartners-google",
    "apis-google",
    "google-inspectiontool",
    "googleother",
)
_BOT_PATTERN = re.compile("|".join(_BOT_KEYWORDS))

# OS families (uap-core names) whose devices are personal computers.
_DESKTOP_OS = frozenset(
    {
        "Windows",
        "Mac OS X",
        "Linux",
        "Ubuntu",
        "Debian",
        "Fedora",
        "Red Hat",
        "SUSE",
        "openSUSE",
        "Mint",
        "Arch Linux",
        "Gentoo",
        "Mandriva",
        "Chrome OS",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "Solaris",
    }
)
_MOBILE_OS = frozenset(
    {
        "iOS",
        "Android",
        "Windows Phone",
        "BlackBerry OS",
        "KaiOS",
        "Firefox OS",
        "Symbian OS",
        "Symbian^3",
        "Tizen",
        "Sailfish",
        "webOS",
        "HarmonyOS",
    }
)
_TABLET_DEVICE = re.compile(r"ipad|kindle|tablet|playbook|nexus (7|9|10)\b|sm-t\d|gt-p\d|kftt")
# Smart TVs and consoles: a person, but neither a phone nor a computer.
_OTHER_DEVICE = re.compile(r"smart-?tv|smarttv|playstation|xbox|nintendo|appletv|roku|crkey|tv\b")


class UserAgentInfo(NamedTuple):
    browser: str
    browser_version: str | None
    os: str
    os_version: str | None
    device_class: str
    is_bot: bool


# An absent or empty user agent is never sent by a browser running the tracker script (every
# browser fills navigator.userAgent), so it is counted as a bot rather than a person.
ABSENT_USER_AGENT = UserAgentInfo("Other", None, "Other", None, "bot", True)


@cache
def _parser() -> Parser:
    # No ua-parser cache underneath: classify_user_agent is memoised already.
    return Parser(BestAvailableResolver(load_lazy_builtins()))


def _version(major: str | None, minor: str | None) -> str | None:
    if not major:
        return None
    return storable(f"{major}.{minor}" if minor else major)


def classify_user_agent(user_agent: object) -> UserAgentInfo:
    """Browser, OS (families as uap-core names them, "Other" when unknown), their versions
    (major[.minor]), device class (desktop, mobile, tablet, bot, other) and whether the client is
    a bot. Never raises; None, False and non-strings are treated as an absent user agent."""
    if not isinstance(user_agent, str):
        return ABSENT_USER_AGENT
    return _classify(user_agent[:MAX_USER_AGENT_CHARS])


@lru_cache(maxsize=CACHE_SIZE)
def _classify(user_agent: str) -> UserAgentInfo:
    if not user_agent.strip():
        return ABSENT_USER_AGENT
    try:
        parsed = _parser()(user_agent, Domain.ALL)
    except Exception:  # a matcher failure must not lose the event: classify as unknown
        return UserAgentInfo("Other", None, "Other", None, "other", False)
    browser = parsed.user_agent
    os = parsed.os
    device = parsed.device
    lowered = user_agent.lower()
    is_bot = (device is not None and device.family == "Spider") or bool(
        _BOT_PATTERN.search(lowered)
    )
    browser_family = storable(browser.family) if browser else "Other"
    os_family = storable(os.family) if os else "Other"
    return UserAgentInfo(
        browser=browser_family,
        browser_version=_version(browser.major, browser.minor) if browser else None,
        os=os_family,
        os_version=_version(os.major, os.minor) if os else None,
        device_class="bot" if is_bot else _device_class(lowered, os_family, device),
        is_bot=is_bot,
    )


def _device_class(lowered_user_agent: str, os_family: str, device: object) -> str:
    brand = getattr(device, "brand", None) or ""
    family = (getattr(device, "family", None) or "").lower()
    if brand == "Generic_Android_Tablet" or _TABLET_DEVICE.search(family):
        return "tablet"
    if _OTHER_DEVICE.search(lowered_user_agent) or _OTHER_DEVICE.search(family):
        return "other"
    if os_family == "Android":
        # Google's convention: Android phones put "Mobile" in the user agent, tablets do not.
        return "mobile" if "mobile" in lowered_user_agent else "tablet"
    if os_family in _MOBILE_OS or "mobile" in lowered_user_agent:
        return "mobile"
    if os_family in _DESKTOP_OS:
        return "desktop"
    return "other"
