"""Day partitions and retention on the real PostgreSQL (migrations/V005, sink/partitions.py,
sink/retention.py): late and ancient days get partitions of their own; the dedup key is
(id, UTC day); retention drops whole days while the sink writes others, keeps the totals exact,
and finishes a drop a crash left half done.

The Python pass runs in-process (``packed_sink_batches`` is what each Spark task runs); the sink
and retention write to the real server."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg2
import pyarrow as pa
import pytest

from pagestream.stack.kafka import Kafka
from pagestream.stack.postgres import Postgres
from pagestream_spark.migrate import migrate
from pagestream_spark.options import ProcessingOptions
from pagestream_spark.sink import BatchLedger, PostgresConnection, PostgresSink
from pagestream_spark.sink.retention import Retention, RetentionPolicy
from pagestream_spark.transform import packed_sink_batches, unpack_sink_rows

from .conftest import ACCOUNTING, JobRun, send_dataset

DAY = 86_400
NOW = int(time.time())
TODAY = dt.datetime.fromtimestamp(NOW, dt.UTC).date()
MIDNIGHT = NOW - NOW % DAY
KEEP_FOREVER = ProcessingOptions(pii_key=b"k", retention_days=0)


def event(event_id: str, epoch: int, collection: str = "view_product_detail") -> dict[str, object]:
    return {
        "id": event_id,
        "time_stamp": epoch,
        "ip": "37.170.17.183",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "device_id": f"device-{event_id[-3:]}",
        "store_id": "12",
        "collection": collection,
        "product_id": "110474",
        "current_url": "https://www.glamira.fr/glamira-anillo-saphira-skug100335.html",
        "referrer_url": "https://www.google.com/",
    }


class Pipeline:
    """A schema of its own, a sink writing to it and a way to read it back."""

    def __init__(
        self,
        postgres: Postgres,
        options: ProcessingOptions = KEEP_FOREVER,
        schema: str | None = None,
    ) -> None:
        self.postgres = postgres
        self.options = options
        self.schema = schema or f"r_{uuid.uuid4().hex[:8]}"
        self.conn = psycopg2.connect(postgres.dsn())
        migrate(self.conn, self.schema)
        connection = PostgresConnection(
            lambda: psycopg2.connect(postgres.dsn()), self.schema, conn=self.conn
        )
        self.sink = PostgresSink(connection, BatchLedger("retention"), options)
        self.batch_id = 0
        self.offset = 0

    def send(self, events: list[dict[str, object]], now: int = NOW) -> None:
        values = [json.dumps(e).encode() for e in events]
        raw = pa.RecordBatch.from_pydict(
            {
                "value": pa.array(values, pa.binary()),
                "topic": pa.array(["views"] * len(values)),
                "partition": pa.array([0] * len(values), pa.int32()),
                "offset": pa.array(range(self.offset, self.offset + len(values)), pa.int64()),
                "timestamp": pa.array([now * 1_000_000] * len(values), pa.timestamp("us")),
            }
        )
        self.offset += len(values)
        packed = packed_sink_batches(iter([raw]), now=now, options=self.options)
        outcome = self.sink.commit_batch(
            self.batch_id, unpack_sink_rows(pa.Table.from_batches(packed))
        )
        assert outcome is not None
        self.batch_id += 1

    def query(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with psycopg2.connect(self.postgres.dsn()) as conn, conn.cursor() as cur:
            cur.execute(f"SET search_path TO {self.schema}")
            cur.execute(statement, params)
            rows = cur.fetchall()
        conn.close()
        return rows

    def execute(self, statement: str, params: tuple[object, ...] = ()) -> None:
        with psycopg2.connect(self.postgres.dsn()) as conn, conn.cursor() as cur:
            cur.execute(f"SET search_path TO {self.schema}")
            cur.execute(statement, params)
        conn.close()

    def retention(self, event_days: int, rollup_days: int) -> Retention:
        return Retention(
            lambda: psycopg2.connect(self.postgres.dsn(), application_name="retention-test"),
            self.schema,
            RetentionPolicy(event_days, rollup_days),
            self.sink.partitions,
        )

    def partitions(self, parent: str) -> list[str]:
        rows = self.query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY 1",
            (parent,),
        )
        return [str(name) for (name,) in rows]

    def tables_like(self, pattern: str) -> list[str]:
        rows = self.query(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND relname LIKE %s ORDER BY 1",
            (self.schema, pattern),
        )
        return [str(name) for (name,) in rows]

    def assert_totals_exact(self) -> None:
        """What batch_commits says was stored equals the rows present plus those retention
        dropped, for every fact table."""
        committed = self.query(
            "SELECT coalesce(sum(page_views), 0), coalesce(sum(other_events), 0),"
            " coalesce(sum(bots), 0) FROM batch_commits"
        )[0]
        totals = dict(
            (str(parent), int(present) + int(dropped))  # type: ignore[call-overload]
            for parent, dropped, present in self.query(
                "SELECT parent, dropped, present FROM retention_totals"
            )
        )
        assert (totals["fact_page_views"], totals["fact_other_events"], totals["bot_events"]) == (
            committed
        )

    def close(self) -> None:
        with self.conn, self.conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self.conn.close()


@pytest.fixture
def pipelines(postgres: Postgres) -> Iterator[list[Pipeline]]:
    made: list[Pipeline] = []
    yield made
    for p in made:
        p.close()


def new_pipeline(
    postgres: Postgres, pipelines: list[Pipeline], options: ProcessingOptions = KEEP_FOREVER
) -> Pipeline:
    pipeline = Pipeline(postgres, options)
    pipelines.append(pipeline)
    return pipeline


def day_stamp(days_ago: int) -> str:
    return (TODAY - dt.timedelta(days=days_ago)).strftime("%Y%m%d")


def test_late_and_ancient_events_land_in_partitions_made_for_them(
    postgres: Postgres, pipelines: list[Pipeline]
) -> None:
    p = new_pipeline(postgres, pipelines)
    two_years = 731
    p.send(
        [
            event("e-today", NOW - 60),
            event("e-late", MIDNIGHT - 3 * DAY + 5),
            event("e-ancient", MIDNIGHT - two_years * DAY + 5),
            event("e-other", NOW - 60, collection="add_to_cart_action"),
        ]
    )
    assert p.query("SELECT count(*) FROM fact_page_views")[0][0] == 3
    for days_ago in (0, 3, two_years):
        assert f"fact_page_views_p{day_stamp(days_ago)}" in p.partitions("fact_page_views")
        assert f"event_ids_p{day_stamp(days_ago)}" in p.partitions("event_ids")
        assert f"agg_page_views_minute_p{day_stamp(days_ago)}" in p.partitions(
            "agg_page_views_minute"
        )
    month = (TODAY - dt.timedelta(days=two_years)).strftime("%Y%m")
    assert f"agg_page_views_hour_p{month}" in p.partitions("agg_page_views_hour")
    assert f"visitor_bitmaps_p{month}" in p.partitions("visitor_bitmaps")
    # Each row is in its own day's partition, and the rollups equal the facts.
    rows = p.query(
        f"SELECT event_id FROM fact_page_views_p{day_stamp(two_years)}"
        " UNION ALL SELECT event_id FROM event_ids_p" + day_stamp(two_years)
    )
    assert rows == [("e-ancient",), ("e-ancient",)]
    assert p.query(
        "SELECT sum(views) FROM agg_page_views WHERE grain = 'hour' AND dimension = 'total'"
    ) == [(3,)]


def test_the_dedup_key_is_the_id_and_its_utc_day(
    postgres: Postgres, pipelines: list[Pipeline]
) -> None:
    """A retry (same bytes, same time_stamp) is a duplicate in a later batch; the same id with
    a time_stamp on another UTC day is another event (docs/streaming-job.md)."""
    p = new_pipeline(postgres, pipelines)
    p.send([event("same-id", MIDNIGHT - DAY + 100)])
    p.send([event("same-id", MIDNIGHT - DAY + 100)])  # a retry
    p.send([event("same-id", MIDNIGHT - DAY + 200)])  # same day, another time: duplicate
    p.send([event("same-id", MIDNIGHT + 100)])  # next day: new
    assert p.query("SELECT sum(page_views), sum(duplicates) FROM batch_commits") == [(2, 2)]
    assert p.query("SELECT event_id, event_day FROM event_ids ORDER BY 2") == [
        ("same-id", TODAY - dt.timedelta(days=1)),
        ("same-id", TODAY),
    ]


def test_events_past_retention_are_dead_lettered_with_their_reason(
    postgres: Postgres, pipelines: list[Pipeline]
) -> None:
    options = ProcessingOptions(pii_key=b"k", retention_days=30)
    p = new_pipeline(postgres, pipelines, options)
    p.send([event("kept", MIDNIGHT - 30 * DAY), event("too-old", MIDNIGHT - 30 * DAY - 1)])
    assert p.query("SELECT sum(page_views), sum(dead_lettered) FROM batch_commits") == [(1, 1)]
    reason, detail = p.query("SELECT reason, detail FROM dead_letters")[0]
    assert reason == "past_retention"
    assert "spec.retention.events" in str(detail)
    assert f"fact_page_views_p{day_stamp(31)}" not in p.partitions("fact_page_views")


def fill_days(p: Pipeline, days_ago: range, per_day: int) -> None:
    for n in days_ago:
        start = MIDNIGHT - n * DAY
        p.send(
            [event(f"d{n}-{i:05d}", start + (i * 37) % DAY) for i in range(per_day)]
            + [event(f"o{n}-{i:05d}", start + i, collection="add_to_cart_action") for i in range(3)]
        )


def test_retention_drops_old_days_while_the_sink_writes_today_and_totals_stay_exact(
    postgres: Postgres, pipelines: list[Pipeline]
) -> None:
    p = new_pipeline(postgres, pipelines)
    fill_days(p, range(40, 0, -1), per_day=1500)
    p.assert_totals_exact()
    before = p.query("SELECT count(*) FROM fact_page_views")[0][0]

    # A writer commits today's batches for as long as the drop runs, on its own connection
    # (the job's sink thread and its retention thread).
    stop = threading.Event()
    committed_during: list[float] = []
    errors: list[BaseException] = []

    def write_today() -> None:
        n = 0
        try:
            while not stop.is_set():
                p.send([event(f"live-{n}-{i}", NOW - i) for i in range(500)])
                committed_during.append(time.monotonic())
                n += 1
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    writer = threading.Thread(target=write_today)
    writer.start()
    try:
        time.sleep(0.5)
        started = time.monotonic()
        dropped = p.retention(event_days=10, rollup_days=400).run_pass()
        finished = time.monotonic()
        time.sleep(0.5)
    finally:
        stop.set()
        writer.join(60)
    assert not errors, errors
    # The sink kept committing while the partitions were detached and dropped.
    assert any(started <= t <= finished for t in committed_during)
    gaps = [b - a for a, b in itertools.pairwise(committed_during)]
    assert max(gaps) < 10, f"a batch waited {max(gaps):.1f} s on the drop"

    # Days older than 10 + 1 are gone from every day-partitioned table; 11 and younger remain.
    oldest_kept = day_stamp(11)
    for parent in ("event_ids", "fact_page_views", "fact_other_events", "agg_page_views_minute"):
        names = p.partitions(parent)
        assert min(names) == f"{parent}_p{oldest_kept}", parent
        assert p.tables_like(f"{parent}\\_p{day_stamp(12)}") == []
    dropped_days = {d.first_day for d in dropped if d.parent == "fact_page_views"}
    assert dropped_days == {TODAY - dt.timedelta(days=n) for n in range(12, 41)}
    assert all(d.row_count == 1500 for d in dropped if d.parent == "fact_page_views")
    # The hour rollups and visitor days keep their own (longer) horizon.
    assert p.query(
        "SELECT sum(views) FROM agg_page_views WHERE grain = 'hour' AND dimension = 'total'"
    )[0][0] == before + 500 * len(committed_during)
    p.assert_totals_exact()
    assert p.query(
        "SELECT count(*), count(*) FILTER (WHERE dropped_at IS NULL) FROM retention_drops"
    )[0] == (len(dropped), 0)


def test_a_drop_cut_short_at_any_step_is_finished_by_the_next_pass(
    postgres: Postgres, pipelines: list[Pipeline]
) -> None:
    """Three crash points: after the count (the ledger row, partition still attached), in the
    middle of DETACH CONCURRENTLY (the retention backend terminated while it waits: the
    partition is left 'detach pending'), and after the detach (a table outside the parent)."""
    p = new_pipeline(postgres, pipelines)
    fill_days(p, range(20, 14, -1), per_day=200)
    parts = {n: f"fact_page_views_p{day_stamp(n)}" for n in range(15, 21)}

    # Crash after step 1: the ledger counted day 20, nothing detached.
    p.execute(
        "INSERT INTO retention_drops (parent, first_day, last_day, row_count)"
        f" SELECT 'fact_page_views', %s, %s, count(*) FROM {parts[20]}",
        (TODAY - dt.timedelta(days=20), TODAY - dt.timedelta(days=20)),
    )
    p.assert_totals_exact()  # counted once: from the ledger, not the table

    # Crash after step 2: day 19 detached, not dropped.
    p.execute(f"ALTER TABLE fact_page_views DETACH PARTITION {parts[19]}")

    # Crash in step 2: a reader holds a snapshot of the parent, so DETACH CONCURRENTLY waits;
    # its backend is terminated while waiting.
    reader = psycopg2.connect(postgres.dsn())
    reader.set_session(isolation_level="REPEATABLE READ")
    with reader.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {p.schema}.fact_page_views")
    detacher = psycopg2.connect(postgres.dsn())
    detacher.autocommit = True
    detach_pid = detacher.get_backend_pid()
    failure: list[BaseException] = []

    def detach() -> None:
        try:
            with detacher.cursor() as cur:
                cur.execute(
                    f"ALTER TABLE {p.schema}.fact_page_views DETACH PARTITION"
                    f" {p.schema}.{parts[18]} CONCURRENTLY"
                )
        except psycopg2.Error as exc:
            failure.append(exc)

    thread = threading.Thread(target=detach)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        waiting = p.query(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (detach_pid,)
        )
        if waiting and waiting[0][0] == "Lock":
            break
        time.sleep(0.05)
    else:
        pytest.fail("DETACH CONCURRENTLY never waited for the reader's snapshot")
    p.execute("SELECT pg_terminate_backend(%s)", (detach_pid,))
    thread.join(30)
    reader.rollback()
    reader.close()
    assert failure, "the terminated DETACH should have failed"
    pending = p.query(
        "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = %s::regclass",
        (parts[18],),
    )
    assert pending == [(True,)]

    # The writer goes on meanwhile, and the next pass (a restarted job's) finishes all three.
    p.send([event(f"after-{i}", NOW - i) for i in range(100)])
    p.retention(event_days=16, rollup_days=400).run_pass()
    for n in (20, 19, 18, 17, 16, 15):
        gone = n > 16 + 1
        assert (p.tables_like(parts[n]) == []) == gone, n
    p.assert_totals_exact()
    assert p.query(
        "SELECT first_day, row_count FROM retention_drops WHERE parent = 'fact_page_views'"
        " ORDER BY 1"
    ) == [(TODAY - dt.timedelta(days=n), 200) for n in (20, 19, 18)]


def test_a_partition_left_detached_is_attached_again_by_the_next_batch_of_its_day(
    postgres: Postgres, pipelines: list[Pipeline]
) -> None:
    """A drop cut short after its detach leaves a table outside its parent; a restarted job
    (nothing in its cache) that meets that day again attaches it instead of failing."""
    p = new_pipeline(postgres, pipelines)
    p.send([event("before", MIDNIGHT - 2 * DAY + 10)])
    part = f"fact_page_views_p{day_stamp(2)}"
    p.execute(f"ALTER TABLE fact_page_views DETACH PARTITION {part}")
    p.sink.partitions.forget([TODAY - dt.timedelta(days=2)])
    p.send([event("after", MIDNIGHT - 2 * DAY + 20)])
    assert part in p.partitions("fact_page_views")
    assert p.query("SELECT event_id FROM fact_page_views ORDER BY 1") == [("after",), ("before",)]


def test_keep_forever_drops_nothing(postgres: Postgres, pipelines: list[Pipeline]) -> None:
    p = new_pipeline(postgres, pipelines)
    fill_days(p, range(800, 797, -1), per_day=10)
    assert p.retention(event_days=0, rollup_days=0).run_pass() == []
    assert len(p.partitions("fact_page_views")) == 3


def schema_before_migration(
    postgres: Postgres, monkeypatch: pytest.MonkeyPatch, version: int
) -> tuple[psycopg2.extensions.connection, str]:
    """A new pipeline schema with the migrations before ``version`` applied, and a connection."""
    from pagestream_spark import migrate as migrate_module

    schema = f"r_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(postgres.dsn())
    earlier = [m for m in migrate_module.available_migrations() if m.version < version]
    with monkeypatch.context() as patched:
        patched.setattr(migrate_module, "available_migrations", lambda: earlier)
        migrate(conn, schema)
    return conn, schema


def test_a_v004_schema_with_data_moves_into_partitions_and_its_reports_agree(
    postgres: Postgres, pipelines: list[Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline's schema from before V005, with rows in every table V005 rebuilds: the rows
    move into their days' partitions, the new rollup dimensions are computed from the facts,
    ids stay duplicates, and the reports say what they said before."""
    conn, schema = schema_before_migration(postgres, monkeypatch, 5)
    old_day = TODAY - dt.timedelta(days=3)
    with conn, conn.cursor() as cur:
        cur.execute(f"SET search_path TO {schema}")
        cur.execute(
            """
            INSERT INTO dim_product VALUES (1, 'p1', NULL, NULL, NULL, NULL);
            INSERT INTO dim_store VALUES (2, 's2');
            INSERT INTO dim_location VALUES (3, 'FR', 'France', '', '');
            INSERT INTO dim_user_agent VALUES (4, 'Firefox', '', 'Linux', '', 'desktop', false);
            INSERT INTO dim_referrer VALUES (5, 'google.com', 'search');
            INSERT INTO dim_campaign VALUES (6, 'news', 'email', 'xmas', '', '');
            INSERT INTO event_ids
                SELECT 'old-' || n, %(t)s::timestamptz + n * interval '1 minute'
                FROM generate_series(1, 5) n;
            INSERT INTO fact_page_views
                SELECT 'old-' || n, %(t)s::timestamptz + n * interval '1 minute', 0, 0,
                       1, 2, 3, 4, 5, 6, 'dev', 7, NULL, NULL, NULL, '/p', 0, n, 1
                FROM generate_series(1, 4) n;
            INSERT INTO bot_events VALUES ('old-5', 'view_product_detail', %(t)s, 4, 2, 0, 5, 1);
            INSERT INTO agg_page_views
                SELECT 'hour', date_trunc('hour', %(t)s::timestamptz), d, v, 4
                FROM (VALUES ('total', ''), ('product', 'p1'), ('store', 's2'),
                             ('country', 'FR'), ('referrer_medium', 'search'),
                             ('browser_os', 'Firefox / Linux')) AS ds(d, v);
            INSERT INTO visitor_days VALUES (%(d)s, 8);
            INSERT INTO batch_commits VALUES ('q', 1, 5, 4, 0, 0, 0, 1, %(t)s);
            """,
            # The four page views are in one hour (10:01-10:04); the reports read its rollups.
            {"t": dt.datetime.combine(old_day, dt.time(10, 0), dt.UTC), "d": old_day},
        )
    migrate(conn, schema)
    p = Pipeline.__new__(Pipeline)
    p.postgres, p.schema, p.conn = postgres, schema, conn
    pipelines.append(p)
    stamp = old_day.strftime("%Y%m%d")
    assert p.query(f"SELECT count(*) FROM fact_page_views_p{stamp}") == [(4,)]
    assert p.query(f"SELECT count(*) FROM event_ids_p{stamp}") == [(5,)]
    assert p.query(f"SELECT count(*) FROM bot_events_p{stamp}") == [(1,)]
    assert p.query(f"SELECT count(*) FROM visitor_bitmaps_p{old_day.strftime('%Y%m')}") == [(1,)]
    assert p.query("SELECT unique_visitors(%s, %s)", (old_day, old_day)) == [(1,)]
    # The new dimensions, from the facts.
    assert p.query(
        "SELECT dimension, value, views FROM agg_page_views WHERE grain = 'hour'"
        " AND dimension IN ('referrer', 'country_store', 'campaign', 'device_class') ORDER BY 1"
    ) == [
        ("campaign", "news\x1femail\x1fxmas", 4),
        ("country_store", "FR\x1fs2", 4),
        ("device_class", "desktop", 4),
        ("referrer", "google.com\x1fsearch", 4),
    ]
    assert p.query(
        "SELECT rank, product_id, views FROM report_top_products(%s, 'UTC')", (old_day,)
    ) == [(1, "p1", 4)]
    assert p.query("SELECT * FROM report_top_referrers(%s, 'UTC')", (old_day,)) == [
        (1, "google.com", "search", 4)
    ]
    p.assert_totals_exact()
    # An id stored before the migration is still a duplicate when it is replayed.
    p.options = KEEP_FOREVER
    p.sink = PostgresSink(
        PostgresConnection(lambda: psycopg2.connect(postgres.dsn()), schema, conn=conn),
        BatchLedger("after-v005"),
        KEEP_FOREVER,
    )
    p.batch_id, p.offset = 0, 100
    p.send([event("old-2", int(dt.datetime.combine(old_day, dt.time(10, 2), dt.UTC).timestamp()))])
    assert p.query("SELECT duplicates FROM batch_commits WHERE query_id = 'after-v005'") == [(1,)]


def visitor_events(devices: range, epoch: int, tag: str) -> list[dict[str, object]]:
    return [{**event(f"{tag}-{n:05d}", epoch), "device_id": f"visitor-{n}"} for n in devices]


def test_unique_visitors_count_each_device_once_over_days_batches_and_bitmap_rows(
    postgres: Postgres, pipelines: list[Pipeline]
) -> None:
    """The sink's day bitmaps (migrations/V006): more devices than one bitmap row holds, some
    seen on both days and again in a later batch; every range's count is the distinct devices,
    and the devices are numbered densely."""
    p = new_pipeline(postgres, pipelines)
    yesterday = MIDNIGHT - DAY + 600
    p.send(visitor_events(range(0, 2500), yesterday, "a"))
    p.send(visitor_events(range(2000, 3100), NOW - 60, "b"))
    # Known devices again, on both days, in a batch of their own: nothing changes.
    p.send(visitor_events(range(1990, 2010), yesterday + 60, "c"))
    p.send(visitor_events(range(3000, 3050), NOW - 30, "d"))
    first, second = TODAY - dt.timedelta(days=1), TODAY
    assert p.query("SELECT unique_visitors(%s, %s)", (first, first)) == [(2500,)]
    assert p.query("SELECT unique_visitors(%s, %s)", (second, second)) == [(1100,)]
    assert p.query("SELECT unique_visitors(%s, %s)", (first, second)) == [(3100,)]
    assert p.query("SELECT unique_visitors(%s, %s)", (second + dt.timedelta(days=1),) * 2) == [(0,)]
    assert p.query("SELECT count(*), min(visitor_no), max(visitor_no) FROM visitor_numbers") == [
        (3100, 0, 3099)
    ]
    # One bit per device and day. Yesterday's 2,500 numbers fill chunks 0-2; today's known
    # devices keep the numbers batch a gave them (spread over chunks 0-2, in device-key order),
    # the new ones take 2,500-3,099 (chunks 2-3).
    assert p.query(
        "SELECT day, count(*), sum(bit_count(bits)), max(chunk) FROM visitor_bitmaps"
        " GROUP BY 1 ORDER BY 1"
    ) == [(first, 3, 2500, 2), (second, 4, 1100, 3)]


def test_a_v005_schemas_visitor_days_become_bitmaps_with_the_same_counts(
    postgres: Postgres, pipelines: list[Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    """V006 on a schema with visitor days (two months, devices spanning bitmap rows, a month
    partition an interrupted retention pass had detached): unique visitors over every range
    stay what counting distinct devices said, and visitor_days goes, detached partition too."""
    conn, schema = schema_before_migration(postgres, monkeypatch, 6)
    days = [dt.date(2026, 10, 30), dt.date(2026, 10, 31), dt.date(2026, 11, 1)]
    with conn, conn.cursor() as cur:
        cur.execute(f"SET search_path TO {schema}")
        cur.execute("SELECT ensure_partitions(%s::date[])", ([*days, dt.date(2026, 8, 1)],))
        cur.execute(
            """
            INSERT INTO visitor_days SELECT %(d0)s, k FROM generate_series(1, 1500) k;
            INSERT INTO visitor_days SELECT %(d1)s, k * 7 FROM generate_series(100, 900) k;
            INSERT INTO visitor_days SELECT %(d2)s, -k FROM generate_series(1, 40) k
                UNION ALL SELECT %(d2)s, k FROM generate_series(1400, 1600) k;
            ALTER TABLE visitor_days DETACH PARTITION visitor_days_p202608;
            """,
            {"d0": days[0], "d1": days[1], "d2": days[2]},
        )
        expected = {}
        for lo, hi in itertools.combinations_with_replacement(days, 2):
            cur.execute(
                "SELECT count(DISTINCT device_key) FROM visitor_days WHERE day BETWEEN %s AND %s",
                (lo, hi),
            )
            expected[lo, hi] = cur.fetchone()[0]
    migrate(conn, schema)
    p = Pipeline.__new__(Pipeline)
    p.postgres, p.schema, p.conn = postgres, schema, conn
    pipelines.append(p)
    for (lo, hi), count in expected.items():
        assert p.query("SELECT unique_visitors(%s, %s)", (lo, hi)) == [(count,)], (lo, hi)
    assert p.tables_like("visitor\\_days%") == []
    assert p.partitions("visitor_bitmaps") == ["visitor_bitmaps_p202610", "visitor_bitmaps_p202611"]
    assert p.query("SELECT parent FROM partitioned_tables WHERE parent LIKE %s", ("visitor%",)) == [
        ("visitor_bitmaps",)
    ]


ROLLUP_KEYS = """
SELECT c.relname, array_agg(a.attname ORDER BY k.n)::text
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = current_schema()
JOIN pg_index x ON x.indrelid = c.oid AND x.indisprimary
CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(attnum, n)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE c.relname ~ '^agg_page_views_(minute|hour|day)_p'
GROUP BY 1 ORDER BY 1
"""


def test_v007_keys_every_rollup_partition_by_dimension_before_bucket(
    postgres: Postgres, pipelines: list[Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partitions made before V007 and after it carry the (grain, dimension, bucket, value)
    key; the rows stay, and the sink's upsert (ON CONFLICT on the columns in the old order)
    still adds to them."""
    conn, schema = schema_before_migration(postgres, monkeypatch, 7)
    with conn, conn.cursor() as cur:
        cur.execute(f"SET search_path TO {schema}")
        cur.execute("SELECT ensure_partitions(%s::date[])", ([TODAY],))
        cur.execute(
            "INSERT INTO agg_page_views VALUES ('hour', %s, 'total', '', 5)",
            (dt.datetime.fromtimestamp(MIDNIGHT, dt.UTC),),
        )
    migrate(conn, schema)
    p = Pipeline.__new__(Pipeline)
    p.postgres, p.schema, p.conn = postgres, schema, conn
    pipelines.append(p)
    p.execute("SELECT ensure_partitions(%s::date[])", ([TODAY - dt.timedelta(days=400)],))
    keys = dict(p.query(ROLLUP_KEYS))
    old, made_before = TODAY - dt.timedelta(days=400), TODAY
    for day in (old, made_before):
        assert f"agg_page_views_minute_p{day:%Y%m%d}" in keys
        assert f"agg_page_views_hour_p{day:%Y%m}" in keys
        assert f"agg_page_views_day_p{day:%Y%m}" in keys
    assert set(keys.values()) == {"{grain,dimension,bucket,value}"}
    p.execute(
        "INSERT INTO agg_page_views AS target VALUES ('hour', %s, 'total', '', 2) "
        "ON CONFLICT (grain, bucket, dimension, value) DO UPDATE SET views = target.views + EXCLUDED.views",
        (dt.datetime.fromtimestamp(MIDNIGHT, dt.UTC),),
    )
    assert p.query("SELECT views FROM agg_page_views WHERE grain = 'hour'") == [(7,)]


def test_the_jobs_retention_drops_old_days_while_it_stores_a_dataset_exactly_once(
    kafka: Kafka, job_run: JobRun, pipelines: list[Pipeline]
) -> None:
    """The streaming job itself (Spark, its retention thread) on a schema holding 15 days
    past a 10-day retention: it stores a seeded dataset exactly once while its retention pass
    drops those days, and every total stays exact."""
    old = Pipeline(job_run.postgres, schema=job_run.schema)
    pipelines.append(old)
    fill_days(old, range(40, 25, -1), per_day=300)
    truth = send_dataset(kafka, job_run.topic, seed=16, valid_events=3000)
    job_run.run_to_completion(**{"retention-days": "10", "rollup-retention-days": "400"})

    job_only = ACCOUNTING + " WHERE query_id <> 'retention'"
    assert old.query(job_only)[0] == (
        truth.consumed,
        len(truth.page_views),
        truth.other_events,
        truth.duplicates,
        sum(truth.dead_letters.values()),
        truth.bots,
    )
    # Every day past the retention went, with its rows counted in the ledger.
    assert min(old.partitions("fact_page_views")) >= f"fact_page_views_p{day_stamp(11)}"
    assert old.query(
        "SELECT count(*), sum(row_count) FROM retention_drops"
        " WHERE parent = 'fact_page_views' AND dropped_at IS NOT NULL"
    ) == [(15, 15 * 300)]
    # What remains is exactly the dataset's page views, each once.
    views = len(truth.page_views)
    assert old.query("SELECT count(*), count(DISTINCT event_id) FROM fact_page_views") == [
        (views, views)
    ]
    old.assert_totals_exact()
