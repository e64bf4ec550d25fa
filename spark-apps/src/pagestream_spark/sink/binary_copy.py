"""The sink's transport: Arrow tables into PostgreSQL by binary COPY, straight into a table or
through a temporary copy of it when existing keys must be skipped or merged (COPY can do
neither)."""

from __future__ import annotations

import io

import pgpq
import pyarrow as pa
from psycopg2 import sql
from psycopg2.extensions import cursor as PgCursor


def copy_payload(table: pa.Table) -> io.BytesIO:
    """``table`` in PostgreSQL's binary COPY format. Arrow types must match the target
    columns' sizes (int16 → smallint, int32 → integer, ...): PostgreSQL refuses the data
    otherwise, loudly."""
    encoder = pgpq.ArrowToPostgresBinaryEncoder(table.schema)
    buf = io.BytesIO()
    buf.write(encoder.write_header())
    for batch in table.to_batches():
        if batch.num_rows:
            buf.write(encoder.write_batch(batch))
    buf.write(encoder.finish())
    buf.seek(0)
    return buf


def copy_rows(cur: PgCursor, table: str, rows: pa.Table) -> None:
    """COPY ``rows`` into ``table``, matching columns by name."""
    if rows.num_rows == 0:
        return
    columns = sql.SQL(", ").join(map(sql.Identifier, rows.column_names))
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(
        sql.Identifier(table), columns
    )
    cur.copy_expert(statement.as_string(cur), copy_payload(rows))


def insert_staged(cur: PgCursor, table: str, rows: pa.Table, on_conflict: str) -> None:
    """Insert ``rows`` into ``table`` (aliased ``target`` for ``on_conflict``) through a
    temporary table shaped like it, so one INSERT ... ON CONFLICT decides every row."""
    if rows.num_rows == 0:
        return
    stage = f"stage_{table}"
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(
            sql.Identifier(stage), sql.Identifier(table)
        )
    )
    copy_rows(cur, stage, rows)
    cur.execute(
        sql.SQL("INSERT INTO {} AS target SELECT * FROM {} ").format(
            sql.Identifier(table), sql.Identifier(stage)
        )
        + sql.SQL(on_conflict)
    )


def stage_table(name: str, columns: tuple[tuple[str, str], ...]) -> sql.Composed:
    """CREATE TEMP TABLE for ``(column, PostgreSQL type)`` pairs, dropped at commit."""
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns
    )
    return sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(sql.Identifier(name), cols)
