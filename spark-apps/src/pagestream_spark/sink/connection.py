"""The sink's PostgreSQL connection and the one place it is opened, replaced and closed:
connecting with retries, a transaction per unit of work with the session settings every write
expects, and reconnecting when the server goes away in the middle of one."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection
from psycopg2.extensions import cursor as PgCursor

from pagestream_common.jobconfig import JobConfig, Secrets
from pagestream_spark.migrate import ReaderRoleMissing, grant_read_access, migrate
from pagestream_spark.sink.schema import NEWEST_PAGE_VIEW_EPOCH, STORE_PIPELINE_SETTING

log = logging.getLogger(__name__)

T = TypeVar("T")
# Reconnections allowed within one batch before the job gives up on it (each one already
# waits up to ~90 s for the server in connect_postgres).
SINK_RECONNECTS = 3


class SinkUnavailable(RuntimeError):
    pass


# libpq's words for a TLS failure that no retry can mend: the server's certificate, its name,
# the CA file, or a server without TLS when the mode requires it.
_TLS_FAILURES = (
    "certificate verify failed",
    "does not match host name",
    "root certificate file",
    "could not read root certificate",
    "server does not support SSL",
)


def tls_failure_hint(message: str) -> str | None:
    """What to check when ``message`` (a failed connection's) is a TLS failure, else None."""
    if not any(words in message for words in _TLS_FAILURES):
        return None
    return (
        "check that --postgres-ssl-root-cert holds the CA that signed the server's certificate "
        "(spec.postgres.tls.caSecretRef, or the CloudNativePG cluster's <name>-ca), that the "
        "certificate names --postgres-host, and --postgres-sslmode"
    )


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def ssl_root_cert(config: JobConfig) -> str | None:
    """libpq's sslrootcert for a verifying mode: the CA file, or ``system`` (the trust store)
    without one, so libpq never falls back to a stray ~/.postgresql/root.crt; None (no
    parameter) for the other modes."""
    if not config.postgres_sslmode.startswith("verify-"):
        return None
    return config.postgres_ssl_root_cert or "system"


def connect_postgres(
    config: JobConfig, secrets: Secrets, *, attempts: int = 8, first_delay: float = 1.0
) -> PgConnection:
    """Connect with retries and backoff; fail loudly with what to check."""
    delay = first_delay
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            conn: PgConnection = psycopg2.connect(
                host=config.postgres_host,
                port=config.postgres_port,
                dbname=config.postgres_database,
                user=secrets.postgres_user,
                password=secrets.postgres_password,
                connect_timeout=5,
                application_name=f"pagestream-{config.pipeline_name}",
                sslmode=config.postgres_sslmode,
                sslrootcert=ssl_root_cert(config),
            )
            return conn
        except psycopg2.OperationalError as exc:
            hint = tls_failure_hint(str(exc))
            if hint is not None:
                raise SinkUnavailable(
                    f"PostgreSQL at {config.postgres_host}:{config.postgres_port} failed TLS "
                    f"(sslmode {config.postgres_sslmode}): {' '.join(str(exc).split())}; {hint}"
                ) from exc
            last = exc
            log.warning(
                "PostgreSQL not reachable (attempt %d/%d): %s; retrying in %.0fs",
                attempt,
                attempts,
                first_line(exc),
                delay,
            )
            if attempt < attempts:
                time.sleep(delay)
                delay = min(delay * 2, 30)
    raise SinkUnavailable(
        f"cannot connect to PostgreSQL at {config.postgres_host}:{config.postgres_port}/"
        f"{config.postgres_database}: {last}; check the host, port and PAGESTREAM_POSTGRES_* credentials"
    )


@dataclass(frozen=True)
class PreparedSchema:
    applied: list[int]
    # Event time of the newest stored page view: a restarted job's watermark starts there.
    newest_page_view_epoch: float | None


class PostgresConnection:
    """Owns one connection to the pipeline's schema. ``connect`` opens a new one (at start and
    after a failure); pass ``conn`` to start from a connection already open."""

    def __init__(
        self,
        connect: Callable[[], PgConnection],
        schema: str,
        *,
        conn: PgConnection | None = None,
        reconnects: int = SINK_RECONNECTS,
    ) -> None:
        self._connect = connect
        self._schema = schema
        self._reconnects = reconnects
        self._conn = connect() if conn is None else conn

    @classmethod
    def open(cls, config: JobConfig, secrets: Secrets) -> PostgresConnection:
        return cls(functools.partial(connect_postgres, config, secrets), config.postgres_schema)

    @property
    def schema(self) -> str:
        return self._schema

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PgCursor]:
        """One transaction (committed when the block ends, rolled back if it raises) with the
        session settings the sink's statements rely on."""
        with self._conn, self._conn.cursor() as cur:
            # Unqualified table names are the pipeline's own.
            cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(self._schema)))
            # Epochs and dates are UTC whatever the server's default.
            cur.execute("SET LOCAL TimeZone TO 'UTC'")
            # The anti-join of a batch's ids fits in memory instead of spilling to disk.
            cur.execute("SET LOCAL work_mem TO '256MB'")
            yield cur

    def run(self, batch_id: int, action: Callable[[PgCursor], T]) -> T:
        """``action`` in one transaction; when the connection fails (a restart, a failover, a
        network cut), reconnect and run it again. ``connect_postgres`` waits with backoff and
        fails loudly if the server stays away. Safe to repeat: a lost transaction was rolled
        back, or it committed and the ledger's replay check skips the batch."""
        for attempt in range(1, self._reconnects + 1):
            try:
                with self.transaction() as cur:
                    return action(cur)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                if attempt == self._reconnects:
                    raise SinkUnavailable(
                        f"PostgreSQL failed batch {batch_id} {attempt} times, the last with: "
                        f"{first_line(exc)}; check the server and its logs"
                    ) from exc
                log.warning(
                    "PostgreSQL connection failed during batch %d (%s); reconnecting",
                    batch_id,
                    first_line(exc),
                )
                self._reconnect()
        raise AssertionError("unreachable")

    def prepare_schema(self, report_timezone: str, reader_role: str = "") -> PreparedSchema:
        """Migrate the schema, grant ``reader_role`` (if any) read access to it, and store the
        pipeline's settings the reports read."""
        applied = migrate(self._conn, self._schema)
        if reader_role:
            try:
                grant_read_access(self._conn, self._schema, reader_role)
            except ReaderRoleMissing as exc:
                raise SinkUnavailable(str(exc)) from exc
        with self.transaction() as cur:
            cur.execute(STORE_PIPELINE_SETTING, ("report_timezone", report_timezone))
            cur.execute(NEWEST_PAGE_VIEW_EPOCH)
            row = cur.fetchone()
        newest = None if row is None or row[0] is None else float(row[0])
        return PreparedSchema(applied=applied, newest_page_view_epoch=newest)

    def close(self) -> None:
        self._conn.close()

    def _reconnect(self) -> None:
        with contextlib.suppress(psycopg2.Error):
            self._conn.close()
        self._conn = self._connect()
