"""The dashboards' database role reads the pipeline's schema and can do nothing else: the job
grants it USAGE and SELECT (now and on later tables), waits for it when it appears after the
job starts (as a CloudNativePG managed role does), and fails naming it when it never does."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import closing

import psycopg2
import pytest
from psycopg2 import errors, sql

from pagestream.stack.kafka import Kafka
from pagestream.stack.paths import StackPaths
from pagestream.stack.postgres import DATABASE, Postgres
from pagestream_spark.migrate import ReaderRoleMissing, grant_read_access, migrate

from .conftest import JobRun, new_job_run, send_dataset, stop_all

PASSWORD = secrets.token_urlsafe(16)


def superuser(postgres: Postgres) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(postgres.dsn())
    conn.autocommit = True
    return conn


@pytest.fixture
def reader_name(postgres: Postgres) -> Iterator[str]:
    """A role name of this test's own; the role and what was granted to it go afterwards."""
    name = f"reader_{uuid.uuid4().hex[:8]}"
    yield name
    with closing(superuser(postgres)) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
        if cur.fetchone():
            role = sql.Identifier(name)
            cur.execute(sql.SQL("DROP OWNED BY {}").format(role))
            cur.execute(sql.SQL("DROP ROLE {}").format(role))


def create_role(postgres: Postgres, name: str) -> None:
    with closing(superuser(postgres)) as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(PASSWORD)
            )
        )


def as_reader(postgres: Postgres, name: str) -> psycopg2.extensions.connection:
    """Autocommit, so each refused statement is its own transaction (close it with
    contextlib.closing: psycopg2's ``with conn`` opens a transaction even in autocommit)."""
    conn = psycopg2.connect(
        host="127.0.0.1", port=postgres.port, dbname=DATABASE, user=name, password=PASSWORD
    )
    conn.autocommit = True
    return conn


def wait_for_log(run: JobRun, words: str, timeout: float = 120) -> None:
    log = run.paths.logs / f"job-{run.schema}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and words in log.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"{words!r} not in {log} after {timeout}s")


def test_the_reader_role_reads_the_schema_and_cannot_write_anything(
    kafka: Kafka, postgres: Postgres, stack_paths: StackPaths, reader_name: str
) -> None:
    run = new_job_run(kafka, postgres, stack_paths)
    truth = send_dataset(kafka, run.topic, seed=47, valid_events=200)
    try:
        # Started before the role exists: the job waits for it, as for a CloudNativePG
        # managed role that is reconciled after the database is up.
        proc = run.start(**{"trigger-mode": "available-now", "postgres-reader-role": reader_name})
        wait_for_log(run, f"reader role {reader_name} does not exist yet")
        create_role(postgres, reader_name)
        assert proc.wait(300) == 0, f"job failed; see {stack_paths.logs}/job-{run.schema}.log"
    finally:
        stop_all(run)

    schema = sql.Identifier(run.schema)
    with closing(as_reader(postgres, reader_name)) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM {}.fact_page_views").format(schema))
        assert cur.fetchone() == (len(truth.page_views),)
        cur.execute(sql.SQL("SELECT count(*) FROM {}.report_page_views()").format(schema))
        assert cur.fetchone() is not None
        cur.execute(sql.SQL("SELECT count(*) FROM {}.report_top_products_today").format(schema))
        assert cur.fetchone() is not None
        writes = [
            "INSERT INTO {s}.pipeline_settings SELECT * FROM {s}.pipeline_settings",
            "UPDATE {s}.batch_commits SET consumed = 0",
            "DELETE FROM {s}.fact_page_views",
            "TRUNCATE {s}.event_ids",
            "CREATE TABLE {s}.planted (x int)",
            "DROP TABLE {s}.batch_commits",
            "ALTER TABLE {s}.fact_page_views ADD COLUMN planted int",
            "CREATE SCHEMA planted",
        ]
        for statement in writes:
            with pytest.raises(errors.InsufficientPrivilege):
                cur.execute(sql.SQL(statement).format(s=schema))
        # Nothing outside the pipeline's schema either: the superuser's own schema stays shut.
        with closing(superuser(postgres)) as admin, admin.cursor() as admin_cur:
            other = f"private_{uuid.uuid4().hex[:6]}"
            admin_cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(other)))
            admin_cur.execute(
                sql.SQL("CREATE TABLE {}.secrets (x int)").format(sql.Identifier(other))
            )
        try:
            with pytest.raises(errors.InsufficientPrivilege):
                cur.execute(sql.SQL("SELECT * FROM {}.secrets").format(sql.Identifier(other)))
        finally:
            with closing(superuser(postgres)) as admin, admin.cursor() as admin_cur:
                admin_cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(other)))


def test_a_table_a_later_migration_adds_is_readable_without_a_new_grant(
    postgres: Postgres, reader_name: str
) -> None:
    schema = f"t_{uuid.uuid4().hex[:8]}"
    create_role(postgres, reader_name)
    conn = psycopg2.connect(postgres.dsn())
    try:
        migrate(conn, schema)
        grant_read_access(conn, schema, reader_name)
        grant_read_access(conn, schema, reader_name)  # idempotent
        with conn, conn.cursor() as cur:
            cur.execute(
                sql.SQL("CREATE TABLE {}.added_later (x int)").format(sql.Identifier(schema))
            )
            cur.execute(
                sql.SQL("INSERT INTO {}.added_later VALUES (7)").format(sql.Identifier(schema))
            )
    finally:
        conn.close()
    try:
        with closing(as_reader(postgres, reader_name)) as reader, reader.cursor() as cur:
            cur.execute(sql.SQL("SELECT x FROM {}.added_later").format(sql.Identifier(schema)))
            assert cur.fetchall() == [(7,)]
    finally:
        with closing(superuser(postgres)) as admin, admin.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_a_reader_role_that_never_appears_fails_naming_it(postgres: Postgres) -> None:
    conn = psycopg2.connect(postgres.dsn())
    try:
        with pytest.raises(ReaderRoleMissing) as info:
            grant_read_access(conn, "public", "nobody_here", attempts=2, first_delay=0.1)
    finally:
        conn.close()
    message = str(info.value)
    assert "the reader role 'nobody_here' does not exist in the database" in message
    assert "spec.postgres.readerRole" in message
