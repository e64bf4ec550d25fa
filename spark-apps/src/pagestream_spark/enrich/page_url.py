"""Page URL → host, path and UTM parameters; and the campaign an event belongs to."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from pagestream_spark.enrich._text import present_text, storable

_MAX_URL_CHARS = 4096
# Campaign values are dimension keys; longer ones are garbage or abuse.
MAX_UTM_CHARS = 255
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


class PageUrl(NamedTuple):
    host: str | None
    path: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None


class Campaign(NamedTuple):
    source: str | None
    medium: str | None
    name: str | None


EMPTY_PAGE_URL = PageUrl(None, None, None, None, None, None, None)


def normalize_utm(value: object) -> str | None:
    """A UTM value as stored: trimmed, lower-cased, at most 255 characters; None when absent
    (None, False, "", "false", "null"...)."""
    text = present_text(value)
    if text is None:
        return None
    return storable(text.lower()[:MAX_UTM_CHARS]) or None


def parse_page_url(url: object) -> PageUrl:
    """Host (lower-case, as requested, no port), path (percent-decoded, without query or
    fragment, "/" when empty) and the utm_* query parameters (first occurrence, keys matched
    case-insensitively, values normalised by `normalize_utm`). A URL without a scheme is read
    as http. Never raises: an unparseable URL gives an all-None result, a path-only URL a None
    host."""
    text = present_text(url)
    if text is None:
        return EMPTY_PAGE_URL
    text = text[:_MAX_URL_CHARS]
    if "//" not in text and not text.startswith("/"):
        text = "http://" + text  # "www.shop.fr/x": a host without a scheme, as browsers read it
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:  # e.g. an unbalanced "[" in an IPv6 host
        return EMPTY_PAGE_URL
    path = unquote(parts.path, errors="replace") if parts.path else "/"
    utm: dict[str, str | None] = {}
    if parts.query and "utm_" in parts.query.lower():
        for key, value in parse_qsl(parts.query, errors="replace"):
            key = key.strip().lower()
            if key in UTM_KEYS and key not in utm:
                utm[key] = normalize_utm(value)
    return PageUrl(
        host=(storable(host.rstrip(".")) or None) if host else None,
        path=storable(path),
        utm_source=utm.get("utm_source"),
        utm_medium=utm.get("utm_medium"),
        utm_campaign=utm.get("utm_campaign"),
        utm_term=utm.get("utm_term"),
        utm_content=utm.get("utm_content"),
    )


def campaign_of(page_url: PageUrl, event_utm_source: object, event_utm_medium: object) -> Campaign:
    """The campaign of an event: the event's own `utm_source`/`utm_medium` fields win when they
    carry a value (the tracker writes false or "" when they do not), else the page URL's query
    parameters; the campaign name only exists in the URL."""
    source = normalize_utm(event_utm_source) or page_url.utm_source
    medium = normalize_utm(event_utm_medium) or page_url.utm_medium
    return Campaign(source, medium, page_url.utm_campaign)
