"""Versioned, idempotent schema migrations, applied by the job at start.

Files ``migrations/V<NNN>__<name>.sql`` run in version order, each in its own transaction with
``search_path`` set to the pipeline's schema, and are recorded with a checksum in
``schema_migrations``. Applied migrations are skipped; an applied migration whose file changed
is an error (edit by adding a new version, never by rewriting an old one). An advisory lock
keeps two starting jobs from migrating at once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from importlib.resources import files

from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection

log = logging.getLogger(__name__)

_FILE = re.compile(r"^V(\d{3})__([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x7061_6765  # "page"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    found = []
    for entry in files(__package__).joinpath("migrations").iterdir():
        m = _FILE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    return sorted(found, key=lambda mig: mig.version)


def migrate(conn: PgConnection, schema: str) -> list[int]:
    """Bring ``schema`` up to date; return the versions applied now (empty when current)."""
    applied_now: list[int] = []
    ident = sql.Identifier(schema)
    with conn:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
            cur.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(ident)
            )
            cur.execute(sql.SQL("SELECT version, checksum FROM {}.schema_migrations").format(ident))
            applied = dict(cur.fetchall())
        for mig in available_migrations():
            if mig.version in applied:
                if applied[mig.version] != mig.checksum:
                    raise MigrationError(
                        f"migration V{mig.version:03d}__{mig.name} changed after it was applied "
                        f"to schema {schema!r}; add a new migration instead of editing it"
                    )
                continue
            with conn, conn.cursor() as cur:
                cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(ident))
                cur.execute(mig.sql)
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {}.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"
                    ).format(ident),
                    (mig.version, mig.name, mig.checksum),
                )
            log.info("applied migration V%03d__%s", mig.version, mig.name, extra={"schema": schema})
            applied_now.append(mig.version)
        ensure_dashboard_api(conn)
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


DASHBOARD_SCHEMA = "pagestream_dashboards"


def ensure_dashboard_api(conn: PgConnection) -> None:
    """Create ``pagestream_dashboards.run`` (migrations/shared/dashboard_api.sql) unless the
    database has it: one for every pipeline in it, made by the first job that starts (the
    caller holds the migration lock, so two jobs never race to create it)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = %s AND p.proname = 'run'",
            (DASHBOARD_SCHEMA,),
        )
        if cur.fetchone() is not None:
            return
        text = files(__package__).joinpath("migrations", "shared", "dashboard_api.sql").read_text()
        cur.execute(text)
    log.info("created the dashboards' query function", extra={"schema": DASHBOARD_SCHEMA})


class ReaderRoleMissing(MigrationError):
    pass


def grant_read_access(
    conn: PgConnection, schema: str, role: str, *, attempts: int = 8, first_delay: float = 1.0
) -> None:
    """Let ``role`` read ``schema`` and nothing more: USAGE on the schema, SELECT on its tables
    and views, and the same on every table this job's user creates there later (default
    privileges, so a new migration needs no new grant); USAGE on the dashboards' schema, whose
    query function runs with the role's own rights. Idempotent. The role may appear a
    little after the database (CloudNativePG reconciles managed roles on its own): wait for it
    with backoff, then fail saying what to create."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        with conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cur.fetchone() is not None:
                names = {
                    "schema": sql.Identifier(schema),
                    "role": sql.Identifier(role),
                    "dashboards": sql.Identifier(DASHBOARD_SCHEMA),
                }
                for statement in (
                    "GRANT USAGE ON SCHEMA {dashboards} TO {role}",
                    "GRANT USAGE ON SCHEMA {schema} TO {role}",
                    "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
                    "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {role}",
                ):
                    cur.execute(sql.SQL(statement).format(**names))
                log.info("granted read access", extra={"schema": schema, "role": role})
                return
        if attempt < attempts:
            log.warning(
                "reader role %s does not exist yet (attempt %d/%d); retrying in %.0fs",
                role,
                attempt,
                attempts,
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, 30)
    raise ReaderRoleMissing(
        f"the reader role {role!r} does not exist in the database: create it (the chart's "
        "CloudNativePG cluster manages it as postgres.readerRole), or remove "
        "spec.postgres.readerRole (--postgres-reader-role)"
    )
