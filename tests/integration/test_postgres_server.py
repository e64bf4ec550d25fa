"""PostgreSQL is real: version 15, not running as root, and takes DDL and a 100,000-row COPY."""

from __future__ import annotations

import io
from pathlib import Path

import psycopg2
import pytest

from pagestream.stack.postgres import Postgres

pytestmark = pytest.mark.postgres


def test_server_is_postgresql_15_run_by_an_unprivileged_user(postgres: Postgres) -> None:
    with psycopg2.connect(postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version_num")
        (version,) = cur.fetchone()
        cur.execute("SELECT pg_backend_pid()")
        (backend_pid,) = cur.fetchone()
    conn.close()
    assert int(version) // 10000 == 15
    # PostgreSQL refuses to run as root; when the tests do, the stack runs it as a service user.
    assert Path(f"/proc/{backend_pid}").stat().st_uid != 0


def test_ddl_and_copy_of_100k_rows(postgres: Postgres) -> None:
    rows = 100_000
    buf = io.StringIO()
    for i in range(rows):
        buf.write(f"{i}\tproduct-{i % 997}\t{i % 7}\t2026-11-23 12:{i % 60:02d}:00+00\n")
    buf.seek(0)

    conn = psycopg2.connect(postgres.dsn())
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS copy_probe")
            cur.execute(
                """CREATE TABLE copy_probe (
                       id bigint PRIMARY KEY,
                       product text NOT NULL,
                       store smallint NOT NULL,
                       viewed_at timestamptz NOT NULL)"""
            )
            cur.copy_expert("COPY copy_probe (id, product, store, viewed_at) FROM STDIN", buf)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*), sum(id), count(DISTINCT product), min(viewed_at) FROM copy_probe"
            )
            count, id_sum, products, first = cur.fetchone()
            cur.execute("SELECT product, store FROM copy_probe WHERE id = 12345")
            sample = cur.fetchone()
    finally:
        conn.close()
    assert count == rows
    assert id_sum == rows * (rows - 1) // 2
    assert products == 997
    assert first.isoformat() == "2026-11-23T12:00:00+00:00"
    assert sample == (f"product-{12345 % 997}", 12345 % 7)
