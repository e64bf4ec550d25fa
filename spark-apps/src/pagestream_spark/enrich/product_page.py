"""A product page URL → its canonical form, its shop host and a readable label for the product.

The rule (docs/streaming-job.md, "Product URLs and labels"), applied to a page view's
``current_url``:

- a **product page** is an ``http``/``https`` URL on a host name with a dot (no IP literal, no
  ``localhost``/``.local``/``.internal`` name), not on a search engine, social network,
  translation proxy, web cache or archive, whose path ends in a non-empty segment (listing
  pages, the home page and ``/checkout/cart/`` end in ``/``), and whose label has a letter;
- its **canonical URL** is ``scheme://host/path`` as sent: scheme and host lower-case, no port,
  credentials, query or fragment (``?alloy=white-375`` and click ids do not make a new URL);
- its **host** (what a product's URL is pinned to) is the host without a leading ``www.``;
- its **label** is the last path segment, percent-decoded, without its file extension
  (``.html``), split into words at ``-``, ``_``, ``+``, ``.`` and spaces, without a last word
  that has a digit in it when other words remain (the sku or id: ``skug100335``), each
  lower-case word capitalised, joined by single spaces, at most 200 characters:
  ``/glamira-anillo-saphira-skug100335.html`` → ``Glamira Anillo Saphira``.

Pure and deterministic; ``product_page(page.url) == page`` for every page it returns, so the
sink can recompute host and label from the canonical URL alone.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple
from urllib.parse import unquote

from pagestream_spark.enrich._text import present_text, storable
from pagestream_spark.enrich.page_url import split_url
from pagestream_spark.enrich.referrer import external_medium, registrable_domain, strip_www

MAX_LABEL_CHARS = 200
_HTTP = re.compile(r"(https?)://", re.IGNORECASE)
# One file extension at the end of the last segment: .html, .htm, .php, .aspx...
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")
_WORD_BREAKS = re.compile(r"[-_+.\s]+")
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")
# Sites that show a shop's pages under their own host: translation proxies, web caches and
# archives, AMP caches (registrable domains).
_PROXY_DOMAINS = frozenset(
    {
        "translate.goog",
        "googleusercontent.com",
        "translatoruser-int.com",
        "bingj.com",
        "ampproject.org",
        "archive.org",
        "archive.ph",
        "archive.today",
        "yandex.net",
    }
)


class ProductPage(NamedTuple):
    url: str  # canonical: scheme://host/path
    host: str  # the host without www.
    label: str


def shop_host(host: str | None) -> bool:
    """Whether a page on ``host`` can be a shop's own page (see the module's rule)."""
    if not host or "." not in host or host.endswith(_LOCAL_SUFFIXES):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return False
    return registrable_domain(host) not in _PROXY_DOMAINS and external_medium(host) == "other"


def label_of_path(path: str) -> str | None:
    """The readable label of a product page's raw path (see the module's rule); None when its
    last segment is empty or has no letter."""
    leaf = path.rsplit("/", 1)[-1]
    if "%" in leaf:
        leaf = unquote(leaf, errors="replace")
    leaf = _EXTENSION.sub("", storable(leaf))
    words = [word for word in _WORD_BREAKS.split(leaf) if word]
    if len(words) > 1 and any(c.isdigit() for c in words[-1]):
        words.pop()
    label = " ".join(word[0].upper() + word[1:] if word.islower() else word for word in words)
    label = label[:MAX_LABEL_CHARS].rstrip()
    if not any(c.isalpha() for c in label):
        return None
    return label


def product_page(url: object) -> ProductPage | None:
    """The product page of a page view's URL, or None when the URL is not one. Never raises."""
    text = present_text(url)
    if text is None:
        return None
    scheme = _HTTP.match(text)
    if scheme is None:
        return None
    parts = split_url(text)
    if parts is None or not shop_host(parts.host):
        return None
    assert parts.host is not None  # shop_host says so
    # Trailing blanks are no part of a page's path (and `url_base` may have cut them off).
    path = storable(parts.path.rstrip())
    if not path.startswith("/"):
        return None
    label = label_of_path(path)
    if label is None:
        return None
    return ProductPage(
        f"{scheme.group(1).lower()}://{parts.host}{path}", strip_www(parts.host), label
    )


def url_base(url: object) -> object:
    """``url`` without its query and fragment, all that ``product_page`` depends on:
    ``product_page(url_base(url)) == product_page(url)``. A cheap memo key, as product pages
    recur with ever-new query strings (options, click ids)."""
    if not isinstance(url, str):
        return url
    text = url.strip()
    cut = len(text)
    for mark in ("?", "#"):
        at = text.find(mark)
        if 0 <= at < cut:
            cut = at
    return text[:cut]
