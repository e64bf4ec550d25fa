"""The sink's cache of committed dimension keys and product pages (what it skips staging)."""

from __future__ import annotations

from pagestream_spark.sink.dimensions import DimensionKeyCache, DimensionWrites
from pagestream_spark.sink.plan import StoredPage

PAGE = StoredPage("lumera.de", 1_800_000_000, "https://www.lumera.de/lumera-ring-luno-skum1.html")


def test_committed_keys_and_pages_are_remembered_and_later_pages_replace_earlier() -> None:
    cache = DimensionKeyCache()
    cache.remember(DimensionWrites({"dim_store": [1, 2]}, {10: None, 11: PAGE}))
    assert set(cache.known("dim_store")) == {1, 2}
    assert set(cache.known("dim_location")) == set()
    assert dict(cache.product_pages()) == {10: None, 11: PAGE}
    later = PAGE._replace(epoch=PAGE.epoch + 60)
    cache.remember(DimensionWrites({}, {10: PAGE, 11: later}))
    assert dict(cache.product_pages()) == {10: PAGE, 11: later}


def test_each_part_starts_over_past_its_limit() -> None:
    cache = DimensionKeyCache(limit=3, product_pages_limit=2)
    cache.remember(DimensionWrites({"dim_store": [1, 2]}, {10: None, 11: None}))
    cache.remember(DimensionWrites({"dim_store": [3]}, {12: PAGE}))
    assert set(cache.known("dim_store")) == {1, 2, 3}
    assert dict(cache.product_pages()) == {12: PAGE}  # started over: a miss costs a re-stage
    cache.remember(DimensionWrites({"dim_store": [4]}, {}))
    assert set(cache.known("dim_store")) == {4}
