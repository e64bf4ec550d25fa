"""The COPY transport's payload (COPYing it is tested against the real PostgreSQL in
tests/integration/streaming)."""

from __future__ import annotations

import pyarrow as pa

from pagestream_spark.sink.binary_copy import copy_payload


def test_copy_payload_of_a_table_with_an_empty_chunk_has_only_the_rows() -> None:
    table = pa.table({"a": ["x", None, ""], "n": pa.array([1, 2, 3], pa.int32())})
    with_empty_chunk = pa.concat_tables([table.slice(0, 0), table])
    assert copy_payload(with_empty_chunk).getvalue() == copy_payload(table).getvalue()
    # PGCOPY header, three rows of two fields, trailer.
    payload = copy_payload(table).getvalue()
    assert payload.startswith(b"PGCOPY\n\xff\r\n\x00") and payload.endswith(b"\xff\xff")
