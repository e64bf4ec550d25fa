"""The sink's one operation: a micro-batch's sink rows into the star schema, in one transaction,
exactly once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow as pa
from psycopg2.extensions import cursor as PgCursor

from pagestream_spark.options import ProcessingOptions
from pagestream_spark.sink.binary_copy import copy_rows, insert_staged
from pagestream_spark.sink.connection import PostgresConnection
from pagestream_spark.sink.dimensions import (
    DimensionKeyCache,
    DimensionWrites,
    upsert_dimensions,
)
from pagestream_spark.sink.ledger import BatchCounts, BatchLedger, register_event_ids
from pagestream_spark.sink.partitions import DayPartitions
from pagestream_spark.sink.plan import (
    BatchWrites,
    SplitBatch,
    page_view_rollups,
    plan_writes,
    split_batch,
    visitor_day_devices,
)
from pagestream_spark.sink.schema import ADD_VIEWS, IGNORE_KNOWN
from pagestream_spark.sink.visitors import record_visitors


@dataclass(frozen=True)
class BatchOutcome:
    """How every consumed record of a batch was accounted for."""

    batch_id: int
    consumed: int
    page_views: int
    other_events: int
    duplicates: int
    dead_letters_by_reason: dict[str, int]
    bots: int
    committed_at: float
    # Event times (epoch seconds) of the page views stored, for the freshness histogram.
    stored_page_view_epochs: pa.Array | None = None
    # Their Kafka record timestamps (epoch milliseconds), for the ingest-latency histogram.
    stored_page_view_kafka_ms: pa.Array | None = None
    # Where the commit's time went, by step (logged with the batch).
    step_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters_by_reason.values())

    @property
    def stored(self) -> int:
        return self.page_views + self.other_events


class _StepTimer:
    """Seconds spent in each step of a commit, for the batch's log line."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.seconds[step] = round(now - self._last, 3)
        self._last = now


@dataclass(frozen=True)
class _Written:
    writes: BatchWrites
    duplicates: int
    # Dimension keys and product pages written by the transaction, remembered once it has
    # committed.
    dimensions: DimensionWrites


@dataclass
class PostgresSink:
    connection: PostgresConnection
    ledger: BatchLedger
    options: ProcessingOptions
    # The days whose partitions exist; retention (on its own thread) forgets those it drops.
    partitions: DayPartitions = field(default_factory=DayPartitions)
    _dimension_keys: DimensionKeyCache = field(
        default_factory=DimensionKeyCache, init=False, repr=False
    )

    def already_committed(self, batch_id: int) -> bool:
        """The ledger's replay check on its own, before the batch is prepared, so a replay
        costs Spark no work; ``commit_batch`` repeats it under the lock."""
        return self.connection.run(batch_id, lambda cur: self.ledger.is_committed(cur, batch_id))

    def commit_batch(self, batch_id: int, rows: pa.Table) -> BatchOutcome | None:
        """Write one batch in one transaction; None if this batch was committed before."""
        timer = _StepTimer()
        split = split_batch(rows)
        timer.lap("split")
        self.partitions.ensure(self.connection, batch_id, split.event_days())
        timer.lap("partitions")
        written = self.connection.run(
            batch_id, lambda cur: self._write(cur, batch_id, split, timer)
        )
        if written is None:
            return None
        timer.lap("commit")
        committed_at = time.time()
        self._dimension_keys.remember(written.dimensions)
        writes = written.writes
        return BatchOutcome(
            batch_id=batch_id,
            consumed=split.consumed,
            page_views=writes.page_views.num_rows,
            other_events=writes.others.num_rows,
            duplicates=written.duplicates,
            dead_letters_by_reason=split.dead_letters_by_reason(),
            bots=writes.bots.num_rows,
            committed_at=committed_at,
            stored_page_view_epochs=writes.page_views.column("event_epoch").combine_chunks(),
            stored_page_view_kafka_ms=writes.page_views.column(
                "kafka_timestamp_ms"
            ).combine_chunks(),
            step_seconds=timer.seconds,
        )

    def _write(
        self, cur: PgCursor, batch_id: int, split: SplitBatch, timer: _StepTimer
    ) -> _Written | None:
        self.ledger.lock(cur)
        if self.ledger.is_committed(cur, batch_id):
            return None
        timer.lap("lock")
        seen_before = register_event_ids(cur, split)
        timer.lap("event_ids")
        writes = plan_writes(split, seen_before, bot_filtering=self.options.bot_filtering)
        dimensions = upsert_dimensions(cur, writes.fresh, writes.page_views, self._dimension_keys)
        timer.lap("dimensions")
        for table, facts in writes.fact_tables(batch_id):
            copy_rows(cur, table, facts)
        timer.lap("facts")
        if writes.page_views.num_rows:
            insert_staged(cur, "agg_page_views", page_view_rollups(writes.page_views), ADD_VIEWS)
            record_visitors(cur, visitor_day_devices(writes.page_views))
        timer.lap("rollups")
        # Kafka coordinates already recorded are skipped: a topic re-read under a new
        # checkpoint meets its dead letters and duplicates again.
        insert_staged(cur, "dead_letters", split.dead_letter_rows(batch_id), IGNORE_KNOWN)
        duplicate_rows = writes.duplicate_rows(batch_id)
        insert_staged(cur, "duplicate_records", duplicate_rows, IGNORE_KNOWN)
        self.ledger.record(
            cur,
            batch_id,
            BatchCounts(
                consumed=split.consumed,
                page_views=writes.page_views.num_rows,
                other_events=writes.others.num_rows,
                duplicates=duplicate_rows.num_rows,
                dead_lettered=split.dead.num_rows,
                bots=writes.bots.num_rows,
                max_event_epoch=writes.max_event_epoch(),
            ),
        )
        timer.lap("accounting")
        return _Written(writes, duplicate_rows.num_rows, dimensions)
