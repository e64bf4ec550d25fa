"""The PostgreSQL sink: one micro-batch, one transaction, exactly once.

``foreachBatch`` is at-least-once: after a crash Spark replays the last batch with the same
``batch_id``. The sink records ``(query_id, batch_id)`` in ``batch_commits`` in the same
transaction as the data, and skips a batch it finds there, so a replay writes nothing twice.
Event ids are deduplicated against ``event_ids`` (all valid events ever accepted), so producer
retries, replays of the topic and a reset checkpoint never double count either.

Rows arrive as one Arrow table per batch. Only the event ids go through a staging table (the
all-history dedup has to happen in PostgreSQL); which events are new, their kind, the distinct
dimension rows, the rollups and the (day, device) pairs of the visitor bitmaps are computed in Arrow, and facts are COPYed
straight into their tables. PostgreSQL's single backend was the bottleneck when every column
was staged and spread by SQL (measured in bench/job_throughput.py).

- ``plan``: the batch's writes, decided in Arrow (pure);
- ``schema``: the tables, columns and SQL the writes use (definitions only);
- ``ledger``: ``batch_commits`` and ``event_ids``, with the lock that makes the replay check
  race-free;
- ``dimensions``: dimension upserts and the cache of committed keys;
- ``visitors``: the unique visitors' day bitmaps and the device numbers behind them;
- ``binary_copy``: the COPY transport;
- ``connection``: connecting, reconnecting and the session settings of each transaction;
- ``writer``: ``PostgresSink``, which runs the steps in one transaction.
"""

from __future__ import annotations

from pagestream_spark.sink.binary_copy import copy_payload
from pagestream_spark.sink.connection import (
    PostgresConnection,
    SinkUnavailable,
    connect_postgres,
)
from pagestream_spark.sink.ledger import BatchLedger
from pagestream_spark.sink.plan import page_view_rollups, split_first_occurrences
from pagestream_spark.sink.writer import BatchOutcome, PostgresSink

__all__ = [
    "BatchLedger",
    "BatchOutcome",
    "PostgresConnection",
    "PostgresSink",
    "SinkUnavailable",
    "connect_postgres",
    "copy_payload",
    "page_view_rollups",
    "split_first_occurrences",
]
