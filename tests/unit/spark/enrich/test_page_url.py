from __future__ import annotations

import random
import re

import pytest

from pagestream_spark.enrich import page_url
from pagestream_spark.enrich.page_url import (
    Campaign,
    PageUrl,
    campaign_of,
    normalize_utm,
    parse_page_url,
)

EMPTY = PageUrl(None, None, None, None, None, None, None)


def test_product_page_from_the_contract_sample() -> None:
    url = "https://www.glamira.fr/glamira-anillo-saphira-skug100335.html?alloy=white-375&diamond=sapphire"
    assert parse_page_url(url) == PageUrl(
        "www.glamira.fr", "/glamira-anillo-saphira-skug100335.html", None, None, None, None, None
    )


def test_utm_parameters_are_lower_cased_trimmed_and_first_wins() -> None:
    url = (
        "https://WWW.Glamira.DE:443/ringe/?UTM_Source=%20Newsletter%20&utm_medium=E-Mail"
        "&utm_campaign=Spring+Sale&utm_term=diamond%20ring&utm_content=banner_1"
        "&utm_source=second#fragment?utm_source=frag"
    )
    assert parse_page_url(url) == PageUrl(
        "www.glamira.de",
        "/ringe/",
        "newsletter",
        "e-mail",
        "spring sale",
        "diamond ring",
        "banner_1",
    )


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://www.glamira.fr", "/"),
        ("https://www.glamira.fr/", "/"),
        ("https://www.glamira.fr/bague%20%C3%A9l%C3%A9gante.html", "/bague élégante.html"),
        ("https://www.glamira.fr/%E0%A4%A.html", "/\ufffd%A.html"),  # broken UTF-8 and escape
        ("https://www.glamira.fr/a%00b", "/a\ufffdb"),  # NUL is not storable in PostgreSQL
        ("https://www.glamira.fr/a#b?c", "/a"),
        ("https://www.glamira.fr/кольцо", "/кольцо"),
    ],
)
def test_path_is_decoded_safely_without_query_or_fragment(url: str, path: str) -> None:
    assert parse_page_url(url).path == path


def test_relative_and_scheme_less_urls() -> None:
    assert parse_page_url("/only/a/path?utm_source=x") == PageUrl(
        None, "/only/a/path", "x", None, None, None, None
    )
    assert parse_page_url("www.glamira.fr/x").host == "www.glamira.fr"


@pytest.mark.parametrize(
    "garbage", [None, False, "", "  ", "false", 17, "http://[::1/x", "http://[bad]/"]
)
def test_absent_or_unparseable_url_gives_all_none(garbage: object) -> None:
    assert parse_page_url(garbage) == EMPTY


def test_huge_url_is_bounded() -> None:
    page = parse_page_url("https://www.glamira.fr/" + "a" * 1_000_000 + "?utm_source=x")
    assert page.host == "www.glamira.fr"
    assert len(page.path) <= 4096
    assert page.utm_source is None  # the query lies beyond the 4096 characters kept


def test_long_utm_value_is_truncated() -> None:
    page = parse_page_url("https://s.fr/?utm_campaign=" + "x" * 1000)
    assert page.utm_campaign == "x" * 255


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" Google ", "google"),
        ("CPC", "cpc"),
        (False, None),
        ("", None),
        ("false", None),
        ("FALSE", None),
        ("undefined", None),
        (None, None),
        (0, None),
        ("a\x00b", "a\ufffdb"),
    ],
)
def test_normalize_utm(value: object, expected: str | None) -> None:
    assert normalize_utm(value) == expected


def test_event_fields_win_over_the_url_when_present() -> None:
    page = parse_page_url("https://s.fr/?utm_source=url_src&utm_medium=url_med&utm_campaign=Camp")
    assert campaign_of(page, " Google ", "CPC") == Campaign("google", "cpc", "camp")
    assert campaign_of(page, "google", False) == Campaign("google", "url_med", "camp")


@pytest.mark.parametrize("absent", [False, "", "false", None, "  "])
def test_absent_event_fields_fall_back_to_the_url(absent: object) -> None:
    page = parse_page_url("https://s.fr/?utm_source=Url_Src&utm_medium=url_med")
    assert campaign_of(page, absent, absent) == Campaign("url_src", "url_med", None)


def test_no_campaign_anywhere() -> None:
    assert campaign_of(parse_page_url("https://s.fr/"), False, False) == Campaign(None, None, None)
    assert campaign_of(EMPTY, "newsletter", "") == Campaign("newsletter", None, None)


def test_fast_url_split_agrees_with_urlsplit(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(42)
    prefixes = ["", "http://", "https://", "//", "/", "a:", "HTTP://", "x-y.z+1:", "1a:", "?", "#"]
    alphabet = "aZ09.-_:/?#@%&=+;~! éя"
    urls = [
        rng.choice(prefixes) + "".join(rng.choices(alphabet, k=rng.randint(0, 24)))
        for _ in range(20_000)
    ]
    urls += ["http://user:pw@Host.COM.:8080/p?q#f", "http://h:x/", "h:80/x", "about:blank"]
    fast = [page_url.split_url(url) for url in urls]
    monkeypatch.setattr(page_url, "_NEEDS_URLSPLIT", re.compile(""))  # always urlsplit
    page_url._host_of_netloc.cache_clear()
    assert [page_url.split_url(url) for url in urls] == fast
    assert sum(parts is not None and parts.host is not None for parts in fast) > 5000


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://user:pw@Host.COM.:8080/p", "host.com"),
        ("www.glamira.fr:8080/x", "www.glamira.fr"),
        ("about:blank", None),
        ("mailto:someone@example.com", None),
        ("http://[2001:db8::1]:8080/", "2001:db8::1"),
    ],
)
def test_split_url_hosts(url: str, host: str | None) -> None:
    parts = page_url.split_url(url)
    assert parts is not None and parts.host == host
