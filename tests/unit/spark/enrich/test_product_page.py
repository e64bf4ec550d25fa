"""The product page rule (enrich.product_page): which page-view URLs are a product's page, their
canonical form, shop host and readable label."""

from __future__ import annotations

import random

import pytest

from pagestream_common.contract import PAGE_VIEW
from pagestream_simulator.generator import EventGenerator, GeneratorConfig
from pagestream_simulator.pools import BRAND
from pagestream_spark.enrich.product_page import (
    MAX_LABEL_CHARS,
    ProductPage,
    label_of_path,
    product_page,
    url_base,
)


def test_the_contract_sample() -> None:
    url = "https://www.glamira.fr/glamira-anillo-saphira-skug100335.html?alloy=white-375"
    assert product_page(url) == ProductPage(
        "https://www.glamira.fr/glamira-anillo-saphira-skug100335.html",
        "glamira.fr",
        "Glamira Anillo Saphira",
    )


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/glamira-anillo-saphira-skug100335.html", "Glamira Anillo Saphira"),
        ("/lumera-boucle-oreille-luno-skum550250.html", "Lumera Boucle Oreille Luno"),
        ("/de/ringe/glamira-ring-saphira-skug100335.html", "Glamira Ring Saphira"),
        ("/bague%20%C3%A9l%C3%A9gante.html", "Bague Élégante"),  # decoded, then capitalised
        ("/products/classic_solitaire+ring", "Classic Solitaire Ring"),  # no extension
        ("/Ring-McQueen-2.htm", "Ring McQueen"),  # words with capitals stay as they are
        ("/ring-size-7", "Ring Size"),  # a last word with a digit goes...
        ("/14k-gold-ring", "14k Gold Ring"),  # ...only the last one
        ("/saphira.html", "Saphira"),
        ("/skug100335.html", "Skug100335"),  # the only word stays
        ("/ring--saphira__.html", "Ring Saphira"),  # runs of separators are one break
        ("/кольцо-сапфир-123.html", "Кольцо Сапфир"),
    ],
)
def test_the_label_is_the_last_segment_in_words(path: str, label: str) -> None:
    assert label_of_path(path) == label


@pytest.mark.parametrize(
    "path",
    ["/", "", "/rings/", "/p/110474.html", "/-_.html", "/%00%01.html", "/catalogsearch/result/"],
)
def test_a_path_without_a_word_has_no_label(path: str) -> None:
    assert label_of_path(path) is None


def test_a_long_label_is_cut() -> None:
    label = label_of_path("/" + "-".join(["word"] * 100) + ".html")
    assert label is not None and len(label) <= MAX_LABEL_CHARS
    assert not label.endswith(" ")


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "false",
        "https://www.glamira.fr/",  # the home page
        "https://www.glamira.fr",
        "https://www.glamira.fr/engagement-rings/",  # a listing page
        "https://www.glamira.fr/checkout/cart/",
        "https://www.glamira.fr/catalogsearch/result/?q=ring",
        "https://www.glamira.fr/p/110474.html",  # no word to make a label of
        "www.glamira.fr/glamira-ring-saphira.html",  # no scheme: not what a browser sends
        "ftp://www.glamira.fr/glamira-ring-saphira.html",
        "javascript:alert(1)",
        "/glamira-ring-saphira.html",  # no host
        "http://localhost:8080/glamira-ring-saphira.html",
        "http://shop.local/glamira-ring-saphira.html",
        "http://intranet/glamira-ring-saphira.html",
        "http://192.0.2.7/glamira-ring-saphira.html",
        "http://[2001:db8::1]/glamira-ring-saphira.html",
        "https://www-glamira-fr.translate.goog/glamira-ring-saphira.html?_x_tr_sl=fr",
        "https://webcache.googleusercontent.com/search?q=cache:glamira.fr/glamira-ring.html",
        "https://web.archive.org/web/2020/https://www.glamira.fr/glamira-ring-saphira.html",
        "https://www.google.com/url",  # search engines and social networks are no shop
        "https://www.facebook.com/glamira-ring-saphira",
    ],
)
def test_odd_urls_are_no_product_page(url: object) -> None:
    assert product_page(url) is None


def test_the_canonical_url_drops_port_credentials_query_and_fragment() -> None:
    page = product_page("HTTPS://user:pw@WWW.Glamira.FR:443/Ring-Saphira.html?a=1#top")
    assert page == ProductPage(
        "https://www.glamira.fr/Ring-Saphira.html", "glamira.fr", "Ring Saphira"
    )
    # http stays http; the host keeps its www. in the URL, not in the host the URL is pinned to
    assert product_page("http://glamira.fr/ring-saphira.html") == ProductPage(
        "http://glamira.fr/ring-saphira.html", "glamira.fr", "Ring Saphira"
    )


def urls(seed: int, count: int) -> list[object]:
    """URLs of every shape the rule tells apart, seeded."""
    rng = random.Random(seed)
    hosts = ["https://www.glamira.fr", "http://glamira.de", "https://WWW.A.B:8080", "http://a", ""]
    segments = ["", "ring-saphira-sku1.html", "rings/", "%C3%A9t%C3%A9.html", "a b ", "x%00y"]
    tails = ["", "?alloy=white", "#top", "?a=1#b?c", " ", "\t", "?q=[", "#x?y"]
    urls: list[object] = [None, False, 7]
    for _ in range(count):
        urls.append(
            rng.choice(hosts)
            + "/"
            + "/".join(rng.choice(segments) for _ in range(rng.randint(0, 3)))
            + rng.choice(tails)
        )
    return urls


@pytest.mark.parametrize("url", urls(seed=3, count=400))
def test_a_canonical_url_gives_its_page_back_and_the_query_changes_nothing(url: object) -> None:
    page = product_page(url)
    assert product_page(url_base(url)) == page
    if page is not None:
        assert product_page(page.url) == page
        assert "?" not in page.url and "#" not in page.url


def test_every_simulated_page_view_is_its_products_page() -> None:
    generator = EventGenerator(GeneratorConfig(seed=9, catalogue_size=200))
    products = {p.product_id: p for p in generator.catalogue.products}
    page_views = 0
    for *_, event in generator.take(5_000):
        page = product_page(event["current_url"])
        if event["collection"] == PAGE_VIEW:
            page_views += 1
            product = products[event["product_id"]]
            assert page is not None, event["current_url"]
            assert page.label.startswith(BRAND.capitalize() + " ")
            assert page.label.endswith(" " + product.name.capitalize())
            assert product.sku not in page.label.lower()
            assert page.url == event["current_url"].split("?")[0]
        elif event["current_url"].split("?")[0].endswith("/"):
            assert page is None
    assert page_views > 1_000
