"""The sink's record of what it has accepted, written in the same transaction as the data:
batches in ``batch_commits`` (a replayed batch is skipped: exactly once per batch) and event ids
in ``event_ids`` (an id accepted once is a duplicate ever after: producer retries, topic
re-reads and reset checkpoints never double count)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from psycopg2.extensions import cursor as PgCursor

from pagestream_spark.sink.binary_copy import copy_rows
from pagestream_spark.sink.plan import SplitBatch
from pagestream_spark.sink.schema import (
    BATCH_COMMITTED,
    LOCK_QUERY,
    RECORD_BATCH,
    REGISTER_EVENT_IDS,
    STAGE_EVENT_IDS,
)


@dataclass(frozen=True)
class BatchCounts:
    """A committed batch's row in batch_commits."""

    consumed: int
    page_views: int
    other_events: int
    duplicates: int
    dead_lettered: int
    bots: int
    max_event_epoch: int | None


@dataclass(frozen=True)
class BatchLedger:
    """The batches of one streaming query (its id is stable across restarts from one
    checkpoint, new for a new checkpoint). Every method runs inside the caller's transaction."""

    query_id: str

    def lock(self, cur: PgCursor) -> None:
        """Serialises two writers of one query until the transaction ends, which makes the
        replay check and the record of the batch one atomic step."""
        cur.execute(LOCK_QUERY, (self.query_id,))

    def is_committed(self, cur: PgCursor, batch_id: int) -> bool:
        """The replay check. Authoritative under ``lock``; without it, a cheap early answer
        that can only be stale in the safe direction (a batch committed since is still caught
        under the lock)."""
        cur.execute(BATCH_COMMITTED, (self.query_id, batch_id))
        return cur.fetchone() is not None

    def record(self, cur: PgCursor, batch_id: int, counts: BatchCounts) -> None:
        cur.execute(
            RECORD_BATCH,
            (
                self.query_id,
                batch_id,
                counts.consumed,
                counts.page_views,
                counts.other_events,
                counts.duplicates,
                counts.dead_lettered,
                counts.bots,
                counts.max_event_epoch,
            ),
        )


def register_event_ids(cur: PgCursor, split: SplitBatch) -> pa.Array:
    """Insert the batch's (already batch-unique) event ids into ``event_ids``; return the row
    numbers in ``split.events`` of those an earlier batch had accepted. Only the ids travel
    through a staging table: this dedup over all history has to happen in PostgreSQL, all the
    rest is decided in Arrow (staging every column cost more than the inserts themselves)."""
    if split.events.num_rows == 0:
        return pa.array([], type=pa.int64())
    cur.execute(STAGE_EVENT_IDS)
    copy_rows(cur, "stage_ids", split.event_id_rows())
    cur.execute(REGISTER_EVENT_IDS)
    return pa.array(sorted(seq for (seq,) in cur.fetchall()), type=pa.int64())
