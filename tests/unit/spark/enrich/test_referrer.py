from __future__ import annotations

import pytest

from pagestream_spark.enrich.referrer import (
    Referrer,
    classify_referrer,
    registrable_domain,
    site_label,
)

PAGE = "https://www.glamira.fr/glamira-anillo-saphira-skug100335.html?alloy=white-375"


@pytest.mark.parametrize("absent", [None, False, "", "   ", "false", "False", "null", 0, 1.5])
def test_absent_referrer_is_direct(absent: object) -> None:
    assert classify_referrer(absent, PAGE) == Referrer(None, "direct")


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        ("https://www.glamira.fr/men-s-necklaces/", Referrer("glamira.fr", "internal")),
        ("https://glamira.fr/", Referrer("glamira.fr", "internal")),
        ("http://WWW.GLAMIRA.FR:443/x?y=1#z", Referrer("glamira.fr", "internal")),
        ("https://www.glamira.de/ringe/", Referrer("glamira.de", "internal")),
        ("https://www.glamira.co.uk/rings/", Referrer("glamira.co.uk", "internal")),
        ("https://checkout.glamira.com/", Referrer("checkout.glamira.com", "internal")),
        ("www.glamira.fr/path", Referrer("glamira.fr", "internal")),
    ],
)
def test_same_shop_on_any_country_domain_is_internal(referrer: str, expected: Referrer) -> None:
    assert classify_referrer(referrer, PAGE) == expected


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        ("https://www.google.com/", Referrer("google.com", "search")),
        ("https://www.google.fr/search?q=bague", Referrer("google.fr", "search")),
        ("https://www.google.co.uk/", Referrer("google.co.uk", "search")),
        ("https://www.google.com.br/", Referrer("google.com.br", "search")),
        ("https://www.bing.com/search?q=ring", Referrer("bing.com", "search")),
        ("https://search.yahoo.co.jp/", Referrer("search.yahoo.co.jp", "search")),
        ("https://duckduckgo.com/", Referrer("duckduckgo.com", "search")),
        ("https://yandex.ru/search/", Referrer("yandex.ru", "search")),
        ("https://www.baidu.com/s?wd=x", Referrer("baidu.com", "search")),
        ("https://www.ecosia.org/", Referrer("ecosia.org", "search")),
        ("https://www.qwant.com/", Referrer("qwant.com", "search")),
        ("https://search.naver.com/", Referrer("search.naver.com", "search")),
        ("https://search.seznam.cz/", Referrer("search.seznam.cz", "search")),
        ("https://search.brave.com/search?q=x", Referrer("search.brave.com", "search")),
        (
            "android-app://com.google.android.googlequicksearchbox/",
            Referrer("com.google.android.googlequicksearchbox", "search"),
        ),
    ],
)
def test_search_engines(referrer: str, expected: Referrer) -> None:
    assert classify_referrer(referrer, PAGE) == expected


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        ("https://l.facebook.com/l.php?u=x", Referrer("l.facebook.com", "social")),
        ("https://m.facebook.com/", Referrer("m.facebook.com", "social")),
        ("https://www.instagram.com/", Referrer("instagram.com", "social")),
        ("https://t.co/abc123", Referrer("t.co", "social")),
        ("https://twitter.com/someone", Referrer("twitter.com", "social")),
        ("https://x.com/someone", Referrer("x.com", "social")),
        ("https://www.pinterest.fr/pin/1/", Referrer("pinterest.fr", "social")),
        ("https://www.linkedin.com/feed/", Referrer("linkedin.com", "social")),
        ("https://www.youtube.com/watch?v=1", Referrer("youtube.com", "social")),
        ("https://youtu.be/1", Referrer("youtu.be", "social")),
        ("https://old.reddit.com/r/jewelry", Referrer("old.reddit.com", "social")),
        ("https://www.tiktok.com/@shop", Referrer("tiktok.com", "social")),
        ("https://vk.com/wall1", Referrer("vk.com", "social")),
        ("android-app://com.facebook.katana/", Referrer("com.facebook.katana", "social")),
    ],
)
def test_social_networks(referrer: str, expected: Referrer) -> None:
    assert classify_referrer(referrer, PAGE) == expected


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        ("https://notgoogle.com/", Referrer("notgoogle.com", "other")),
        ("https://google.evil.com/", Referrer("google.evil.com", "other")),
        ("https://www.googleusercontent.com/", Referrer("googleusercontent.com", "other")),
        ("https://mail.google.com/mail/u/0/", Referrer("mail.google.com", "other")),
        ("https://myfacebook.example/", Referrer("myfacebook.example", "other")),
        ("https://www.idealo.de/preisvergleich/", Referrer("idealo.de", "other")),
        ("https://notglamira.fr/", Referrer("notglamira.fr", "other")),
        ("http://192.168.1.10:8080/", Referrer("192.168.1.10", "other")),
        ("http://[2001:db8::1]/", Referrer("2001:db8::1", "other")),
        ("android-app://com.example.app/", Referrer("com.example.app", "other")),
    ],
)
def test_labels_are_matched_whole_not_as_substrings(referrer: str, expected: Referrer) -> None:
    assert classify_referrer(referrer, PAGE) == expected


@pytest.mark.parametrize(
    "garbage",
    ["http://[::1", "://", "http://", "mailto:", "?", "\x00\x01", "ünïcødé ☃", "a" * 100_000],
)
def test_unparseable_referrer_is_other_without_a_domain_or_an_error(garbage: str) -> None:
    referrer = classify_referrer(garbage, PAGE)
    assert referrer.medium == "other"
    assert referrer.domain is None or len(referrer.domain) < 5000


def test_unicode_host_is_kept_lower_case() -> None:
    assert classify_referrer("https://www.BÜCHER.de/", PAGE) == Referrer("bücher.de", "other")


def test_without_a_current_url_nothing_is_internal() -> None:
    assert classify_referrer("https://www.glamira.fr/", None) == Referrer("glamira.fr", "other")
    assert classify_referrer("https://www.google.com/", False) == Referrer("google.com", "search")


def test_internal_wins_over_search_when_the_site_is_the_search_engine() -> None:
    page = "https://www.google.com/shopping/product/1"
    assert classify_referrer("https://www.google.fr/", page) == Referrer("google.fr", "internal")


@pytest.mark.parametrize(
    ("host", "domain", "label"),
    [
        ("www.glamira.fr", "glamira.fr", "glamira"),
        ("shop.glamira.co.uk", "glamira.co.uk", "glamira"),
        ("glamira.com.au", "glamira.com.au", "glamira"),
        ("t.co", "t.co", "t"),
        ("localhost", "localhost", "localhost"),
        ("10.0.0.1", "10.0.0.1", "10.0.0.1"),
        ("a.b.c.example.org", "example.org", "example"),
    ],
)
def test_registrable_domain_and_site_label(host: str, domain: str, label: str) -> None:
    assert registrable_domain(host) == domain
    assert site_label(host) == label
