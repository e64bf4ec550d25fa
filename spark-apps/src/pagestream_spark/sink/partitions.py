"""The UTC-day partitions a batch writes to (migrations/V005): made before the batch's
transaction, in one of their own, so the batch never waits on DDL and its locks never include a
parent table's SHARE UPDATE EXCLUSIVE. Remembers the days it has made so most batches cost no
round trip; retention forgets the days it drops."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable

from psycopg2.extensions import cursor as PgCursor

from pagestream_spark.sink.connection import PostgresConnection
from pagestream_spark.sink.schema import ENSURE_PARTITIONS


class DayPartitions:
    """The days whose partitions exist, as far as this job knows. Shared by the sink (which
    adds) and retention (which forgets), on two threads."""

    def __init__(self) -> None:
        self._known: set[dt.date] = set()
        self._lock = threading.Lock()

    def missing(self, days: Iterable[dt.date]) -> list[dt.date]:
        with self._lock:
            return sorted(set(days) - self._known)

    def ensure(self, connection: PostgresConnection, batch_id: int, days: Iterable[dt.date]) -> int:
        """Make the partitions of ``days`` that this job has not seen made; returns how many
        partitions PostgreSQL created or attached."""
        missing = self.missing(days)
        if not missing:
            return 0
        made = connection.run(batch_id, lambda cur: _ensure(cur, missing))
        with self._lock:
            self._known.update(missing)
        return made

    def forget(self, days: Iterable[dt.date]) -> None:
        with self._lock:
            self._known.difference_update(days)


def _ensure(cur: PgCursor, days: list[dt.date]) -> int:
    cur.execute(ENSURE_PARTITIONS, ([d.isoformat() for d in days],))
    row = cur.fetchone()
    return int(row[0]) if row else 0
