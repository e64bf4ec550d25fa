"""Dimension rows: each batch's new ones staged and inserted, with a cache of the keys this sink
has committed, since most of a batch's dimension rows exist already and skipping them before
staging saves the grouping and the round trip."""

from __future__ import annotations

from collections.abc import Mapping, Set

import pyarrow as pa
from psycopg2.extensions import cursor as PgCursor

from pagestream_spark.sink.binary_copy import copy_rows, stage_table
from pagestream_spark.sink.plan import new_dimension_rows
from pagestream_spark.sink.schema import DIMENSIONS, EVENT_COLUMN_TYPES, Dimension

# Keys kept per dimension table before the cache starts over (a few tens of MB at most).
KNOWN_KEYS_LIMIT = 1_000_000


class DimensionKeyCache:
    """Keys known to exist, by dimension table. Only committed keys go in (``remember`` after
    the commit: a rolled-back batch adds none), so a key here always has its row."""

    def __init__(self, limit: int = KNOWN_KEYS_LIMIT) -> None:
        self._limit = limit
        self._keys: dict[str, set[int]] = {}

    def known(self, table: str) -> Set[int]:
        return self._keys.get(table, frozenset())

    def remember(self, committed: Mapping[str, list[int]]) -> None:
        for table, keys in committed.items():
            known = self._keys.setdefault(table, set())
            if len(known) + len(keys) > self._limit:
                known.clear()
            known.update(keys)


def upsert_dimensions(
    cur: PgCursor, fresh: pa.Table, cache: DimensionKeyCache
) -> dict[str, list[int]]:
    """Insert the dimension rows of these events that may be new; return their keys by table
    (for ``cache.remember`` once the transaction has committed)."""
    new_keys: dict[str, list[int]] = {}
    for dimension in DIMENSIONS:
        rows = new_dimension_rows(fresh, dimension, cache.known(dimension.table))
        new_keys[dimension.table] = _upsert(cur, dimension, rows)
    return new_keys


def _upsert(cur: PgCursor, dimension: Dimension, rows: pa.Table) -> list[int]:
    if rows.num_rows == 0:
        return []
    # One staging table name for every dimension: each dimension's INSERT reads "stage".
    cur.execute("DROP TABLE IF EXISTS stage")
    cur.execute(stage_table("stage", tuple((c, EVENT_COLUMN_TYPES[c]) for c in dimension.columns)))
    copy_rows(cur, "stage", rows)
    cur.execute(dimension.insert)
    keys: list[int] = rows.column(dimension.key).to_pylist()
    return keys
