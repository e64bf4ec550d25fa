"""Retention: whole UTC-day (and month) partitions dropped once they are past the pipeline's
horizon, without ever blocking the sink (docs/streaming-job.md, "Partitions and retention").

A partition is dropped in three steps, each safe to repeat after a crash at any point:

1. count its rows into ``retention_drops`` (from then on ``retention_totals`` counts the day
   from the ledger, not from the table, so stored totals stay equal to batch_commits');
2. ``DETACH PARTITION ... CONCURRENTLY`` (SHARE UPDATE EXCLUSIVE on the parent: the sink's
   inserts go on; a detach interrupted half way is completed with ``FINALIZE``);
3. ``DROP TABLE`` of the detached table and the ledger row marked dropped, in one transaction.

The horizon is a day later than validation's: an event validated just before midnight and
committed after it still finds its day's partitions in place.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection

from pagestream_spark.sink.partitions import DayPartitions

log = logging.getLogger(__name__)

_PARTITION_NAME = re.compile(r"^(?P<parent>[a-z_]+)_p(?P<stamp>[0-9]{6}|[0-9]{8})$")

LIST_PARTITIONS = """
SELECT c.relname, t.parent, t.period, t.horizon, i.inhrelid IS NOT NULL, coalesce(i.inhdetachpending, false)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN partitioned_tables t ON c.relname LIKE t.parent || '\\_p%'
LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
"""


@dataclass(frozen=True)
class RetentionPolicy:
    """Whole UTC days kept (0: forever) for the events' tables and for the rollups'."""

    event_days: int
    rollup_days: int

    def drop_before(self, horizon: str, today: dt.date) -> dt.date | None:
        """Partitions ending before this day go; None keeps them all."""
        days = self.event_days if horizon == "events" else self.rollup_days
        if not days:
            return None
        return today - dt.timedelta(days=days + 1)


@dataclass(frozen=True)
class Partition:
    name: str
    parent: str
    first_day: dt.date
    last_day: dt.date
    horizon: str
    attached: bool
    detach_pending: bool


def parse_partition(
    name: str, parent: str, period: str, horizon: str, attached: bool, detach_pending: bool
) -> Partition | None:
    """The partition a table name stands for, or None for a table that only looks like one."""
    m = _PARTITION_NAME.match(name)
    if m is None or m.group("parent") != parent:
        return None
    stamp = m.group("stamp")
    try:
        if period == "day" and len(stamp) == 8:
            first = dt.date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:]))
            last = first
        elif period == "month" and len(stamp) == 6:
            first = dt.date(int(stamp[:4]), int(stamp[4:]), 1)
            following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
            last = following - dt.timedelta(days=1)
        else:
            return None
    except ValueError:
        return None
    return Partition(name, parent, first, last, horizon, attached, detach_pending)


def expired(
    partitions: Sequence[Partition], policy: RetentionPolicy, today: dt.date
) -> list[Partition]:
    """The partitions wholly before their horizon: one a crash left pending detach first
    (PostgreSQL detaches one partition of a parent concurrently at a time, and refuses the next
    until that one is finalized), then oldest first."""
    out = []
    for p in partitions:
        before = policy.drop_before(p.horizon, today)
        if before is not None and p.last_day < before:
            out.append(p)
    return sorted(out, key=lambda p: (not p.detach_pending, p.first_day, p.parent))


@dataclass(frozen=True)
class DroppedPartition:
    parent: str
    first_day: dt.date
    last_day: dt.date
    row_count: int


class Retention:
    """Runs retention passes on a connection of its own, in autocommit mode (DETACH
    CONCURRENTLY cannot run inside a transaction block)."""

    def __init__(
        self,
        connect: Callable[[], PgConnection],
        schema: str,
        policy: RetentionPolicy,
        partitions: DayPartitions | None = None,
    ) -> None:
        self._connect = connect
        self._schema = schema
        self._policy = policy
        self._partitions = partitions

    def run_pass(self, today: dt.date | None = None) -> list[DroppedPartition]:
        """Drop every partition past its horizon (``today``: the UTC date now)."""
        today = today or dt.datetime.now(dt.UTC).date()
        conn = self._connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
                cur.execute("SET TimeZone TO 'UTC'")
                cur.execute(LIST_PARTITIONS)
                found = [p for row in cur.fetchall() if (p := parse_partition(*row)) is not None]
            dropped = [self._drop(conn, p) for p in expired(found, self._policy, today)]
        finally:
            conn.close()
        if self._partitions is not None:
            self._partitions.forget(
                d.first_day + dt.timedelta(days=n)
                for d in dropped
                for n in range((d.last_day - d.first_day).days + 1)
            )
        return dropped

    def _drop(self, conn: PgConnection, p: Partition) -> DroppedPartition:
        table, parent = sql.Identifier(p.name), sql.Identifier(p.parent)
        with conn.cursor() as cur:
            # 1. Count (once: a repeat after a crash keeps the first count, taken when the day
            # already received nothing more).
            cur.execute(
                sql.SQL(
                    "INSERT INTO retention_drops (parent, first_day, last_day, row_count)"
                    " SELECT %s, %s, %s, count(*) FROM {} ON CONFLICT DO NOTHING"
                ).format(table),
                (p.parent, p.first_day, p.last_day),
            )
            # 2. Detach without blocking the writers of the other partitions.
            if p.detach_pending:
                cur.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE").format(parent, table)
                )
            elif p.attached:
                cur.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY").format(parent, table)
                )
        # 3. Drop, and say so in the ledger, together.
        with conn:
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP TABLE {}").format(table))
                cur.execute(
                    "UPDATE retention_drops SET dropped_at = clock_timestamp()"
                    " WHERE parent = %s AND first_day = %s RETURNING row_count",
                    (p.parent, p.first_day),
                )
                row = cur.fetchone()
        conn.autocommit = True
        count = int(row[0]) if row else 0
        log.info(
            "retention dropped partition %s",
            p.name,
            extra={"parent": p.parent, "first_day": p.first_day.isoformat(), "rows": count},
        )
        return DroppedPartition(p.parent, p.first_day, p.last_day, count)


class RetentionLoop:
    """A retention pass at start and then every ``interval`` seconds, on a daemon thread; a
    failed pass is logged and tried again at the next one (ingestion never depends on it)."""

    def __init__(self, retention: Retention, interval: float = 900.0) -> None:
        self._retention = retention
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._retention.run_pass()
            except Exception:  # a pass never takes the job down; the next one retries
                log.exception("retention pass failed; retrying in %.0f s", self._interval)
            self._stop.wait(self._interval)
