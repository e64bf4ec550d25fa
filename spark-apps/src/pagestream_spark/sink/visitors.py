"""The unique visitors' day bitmaps (migrations/V006): a batch's (UTC day, device) pairs set
their devices' bits, numbering the devices it sees for the first time."""

from __future__ import annotations

import pyarrow as pa
from psycopg2.extensions import cursor as PgCursor

from pagestream_spark.sink.binary_copy import copy_rows
from pagestream_spark.sink.schema import NUMBER_NEW_VISITORS, SET_VISITOR_BITS, STAGE_VISITORS


def record_visitors(cur: PgCursor, day_devices: pa.Table) -> None:
    """Set the bits of ``day_devices`` (``day`` date32, ``device_key`` int64, each pair once)."""
    if day_devices.num_rows == 0:
        return
    cur.execute(STAGE_VISITORS)
    copy_rows(cur, "stage_visitors", day_devices)
    cur.execute(NUMBER_NEW_VISITORS)
    cur.execute(SET_VISITOR_BITS)
