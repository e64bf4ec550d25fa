"""Dimension rows: each batch's new ones staged and inserted, with a cache of the keys this sink
has committed, since most of a batch's dimension rows exist already and skipping them before
staging saves the grouping and the round trip. dim_product also keeps each product's page URL
and label, which move forward with later page views: its cache holds the committed page of each
product, so only candidates that can move it are staged."""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

import pyarrow as pa
from psycopg2.extensions import cursor as PgCursor

from pagestream_spark.sink.binary_copy import copy_rows, stage_table
from pagestream_spark.sink.plan import StoredPage, new_dimension_rows, product_rows
from pagestream_spark.sink.schema import (
    DIMENSIONS,
    EVENT_COLUMN_TYPES,
    PRODUCT_STAGE_COLUMNS,
    STAGED_PRODUCT_PAGES,
    UPSERT_PRODUCTS,
    Dimension,
)

# Keys kept per dimension table before the cache starts over (a few tens of MB at most).
KNOWN_KEYS_LIMIT = 1_000_000
# Products whose page is kept (a URL and a host each: a couple of hundred bytes a product).
KNOWN_PRODUCT_PAGES_LIMIT = 200_000


@dataclass(frozen=True)
class DimensionWrites:
    """What a transaction wrote to the dimensions, for the cache once it has committed."""

    # Keys inserted (or found existing), by table.
    keys: dict[str, list[int]]
    # dim_product's page of every staged product after the upsert (None: no page yet).
    product_pages: dict[int, StoredPage | None]


class DimensionKeyCache:
    """Keys known to exist, by dimension table, and the page each known product has. Only
    committed state goes in (``remember`` after the commit: a rolled-back batch adds none), so
    a key here always has its row, and a product's page here is never ahead of the stored one
    (stored pages only move forward)."""

    def __init__(
        self, limit: int = KNOWN_KEYS_LIMIT, product_pages_limit: int = KNOWN_PRODUCT_PAGES_LIMIT
    ) -> None:
        self._limit = limit
        self._product_pages_limit = product_pages_limit
        self._keys: dict[str, set[int]] = {}
        self._product_pages: dict[int, StoredPage | None] = {}

    def known(self, table: str) -> Set[int]:
        return self._keys.get(table, frozenset())

    def product_pages(self) -> Mapping[int, StoredPage | None]:
        return self._product_pages

    def remember(self, committed: DimensionWrites) -> None:
        for table, keys in committed.keys.items():
            known = self._keys.setdefault(table, set())
            if len(known) + len(keys) > self._limit:
                known.clear()
            known.update(keys)
        if len(self._product_pages) + len(committed.product_pages) > self._product_pages_limit:
            self._product_pages.clear()
        self._product_pages.update(committed.product_pages)


def upsert_dimensions(
    cur: PgCursor, fresh: pa.Table, page_views: pa.Table, cache: DimensionKeyCache
) -> DimensionWrites:
    """Insert the dimension rows of these events that may be new, and move products' pages
    forward from these page views; return what was written (for ``cache.remember`` once the
    transaction has committed)."""
    new_keys: dict[str, list[int]] = {}
    for dimension in DIMENSIONS:
        rows = new_dimension_rows(fresh, dimension, cache.known(dimension.table))
        new_keys[dimension.table] = _upsert(cur, dimension, rows)
    pages = _upsert_products(cur, product_rows(fresh, page_views, cache.product_pages()))
    return DimensionWrites(new_keys, pages)


def _stage(cur: PgCursor, columns: tuple[tuple[str, str], ...], rows: pa.Table) -> None:
    # One staging table name for every dimension: each dimension's INSERT reads "stage".
    cur.execute("DROP TABLE IF EXISTS stage")
    cur.execute(stage_table("stage", columns))
    copy_rows(cur, "stage", rows)


def _upsert(cur: PgCursor, dimension: Dimension, rows: pa.Table) -> list[int]:
    if rows.num_rows == 0:
        return []
    _stage(cur, tuple((c, EVENT_COLUMN_TYPES[c]) for c in dimension.columns), rows)
    cur.execute(dimension.insert)
    keys: list[int] = rows.column(dimension.key).to_pylist()
    return keys


def _upsert_products(cur: PgCursor, rows: pa.Table) -> dict[int, StoredPage | None]:
    if rows.num_rows == 0:
        return {}
    _stage(cur, PRODUCT_STAGE_COLUMNS, rows)
    cur.execute(UPSERT_PRODUCTS)
    cur.execute(STAGED_PRODUCT_PAGES)
    return {
        key: None if url is None else StoredPage(host, epoch, url)
        for key, host, epoch, url in cur.fetchall()
    }
