"""Cost as history grows: the drain, the reports and the dashboard panels on a database that
already holds --history-events stored events over --days days (not a test).

In one run, against one local stack (Kafka, PostgreSQL 15 with fsync on, Spark local[2]):

1. a backlog of --events simulator events is produced to a topic (as bench/job_throughput.py);
2. a pipeline schema is filled with the history, directly in PostgreSQL in the layout the job
   writes (bench/history_fill.py: facts, event ids, rollups and visitor bitmaps per UTC day, a
   daily curve, skewed product popularity), ending yesterday;
3. the job drains the backlog into an empty schema, then the same backlog into the schema with
   the history (a checkpoint each): records/s of both, and their ratio;
4. the six reports (report_*_range) for the busiest day of the history and for its last 30
   days, and every SQL panel of the Page analytics dashboard over that day (24 h) and those
   30 days, each --repeat times: p50 and p95 milliseconds;
5. disk bytes per stored event: every partition of facts, bot events, event ids, rollups and
   visitor bitmaps, and the visitor numbers, heap and indexes, by table and in total.

    uv run python bench/history.py [--history-events 100000000] [--days 35] [--events 2000000]

Writes bench/results/history.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchlib import write_result
from history_fill import daily_plan, fill
from job_throughput import fresh_stack, job_args, job_env, produce_backlog, topic_size

from pagestream.stack.paths import REPO_ROOT, StackPaths
from pagestream.stack.process import free_port
from pagestream_spark.migrate import ensure_dashboard_api, migrate
from pagestream_spark.reports import REPORTS

BENCH_STATE = REPO_ROOT / ".pagestream" / "bench" / "history"
DASHBOARD = REPO_ROOT / "charts" / "pagestream" / "dashboards" / "page-analytics.json"
PARTITIONS = 4


def drain(
    bootstrap: str, topic: str, pg_port: int, schema: str, paths: StackPaths, env: dict[str, str]
) -> dict[str, Any]:
    """The job drains the topic into ``schema`` (available-now); its rates from batch_commits."""
    log = paths.logs / f"job-{schema}.log"
    argv = [
        sys.executable,
        "-m",
        "pagestream_spark.main",
        *job_args(
            bootstrap,
            topic,
            pg_port,
            schema,
            paths.state / f"ckpt-{schema}",
            free_port(),
            **{"trigger-mode": "available-now"},
        ),
    ]
    with log.open("ab") as out:
        started = time.monotonic()
        code = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        elapsed = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"the job failed with {code}; see {log}")
    return {"seconds_wall_including_startup": round(elapsed, 1), "schema": schema}


def batch_rates(dsn: str, schema: str, query_id_not: str, elapsed: float) -> dict[str, Any]:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT sum(consumed)::bigint, count(*), min(committed_at), max(committed_at),"
                " (array_agg(consumed ORDER BY committed_at))[1]"
                " FROM {}.batch_commits WHERE query_id <> %s"
            ).format(sql.Identifier(schema)),
            (query_id_not,),
        )
        consumed, batches, first, last, first_batch = cur.fetchone()
    conn.close()
    return {
        "records": int(consumed),
        "micro_batches": int(batches),
        "records_per_second": round(consumed / elapsed),
        # Excluding JVM start-up and the first batch's planning; None for a single batch.
        "records_per_second_between_first_and_last_commit": (
            round((consumed - first_batch) / (last - first).total_seconds())
            if batches > 1 and last > first
            else None
        ),
    }


def timed(cur: Any, statement: str, params: tuple[Any, ...], repeat: int) -> dict[str, float]:
    times = []
    rows = 0
    for _ in range(repeat):
        started = time.perf_counter()
        cur.execute(statement, params)
        rows = len(cur.fetchall())
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 1),
        "rows": rows,
    }


def expand_panel_sql(text: str, schema: str, start: dt.datetime, end: dt.datetime) -> str:
    """Grafana's PostgreSQL macros and the schema variable, as its datasource expands them."""
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    frm, to = f"'{start.strftime(fmt)}'", f"'{end.strftime(fmt)}'"
    text = text.replace("${schema:sqlstring}", "'" + schema.replace("'", "''") + "'")
    text = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN {frm} AND {to}", text)
    return text.replace("$__timeFrom()", frm).replace("$__timeTo()", to)


def panel_queries() -> list[tuple[str, str]]:
    data = json.loads(DASHBOARD.read_text())
    return [
        (p["title"], t["rawSql"])
        for p in data["panels"]
        for t in p.get("targets", [])
        if "rawSql" in t
    ]


def disk_per_event(dsn: str, schema: str) -> dict[str, Any]:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT t.parent, sum(pg_table_size(c.oid))::bigint,"
                " sum(pg_indexes_size(c.oid))::bigint"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " JOIN pg_inherits i ON i.inhrelid = c.oid"
                " JOIN pg_class par ON par.oid = i.inhparent"
                " JOIN {}.partitioned_tables t ON t.parent = par.relname"
                " WHERE n.nspname = %s AND c.relkind = 'r' GROUP BY 1 ORDER BY 1"
            ).format(sql.Identifier(schema)),
            (schema,),
        )
        by_table = {p: {"table_bytes": int(t), "index_bytes": int(i)} for p, t, i in cur.fetchall()}
        # The one sink table that is not partitioned and grows with history.
        cur.execute(
            "SELECT pg_table_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = 'visitor_numbers'",
            (schema,),
        )
        for t, i in cur.fetchall():
            by_table["visitor_numbers"] = {"table_bytes": int(t), "index_bytes": int(i)}
        cur.execute(
            sql.SQL(
                "SELECT sum(page_views + other_events + bots)::bigint FROM {}.batch_commits"
            ).format(sql.Identifier(schema))
        )
        (stored,) = cur.fetchone()
    conn.close()
    total = sum(v["table_bytes"] + v["index_bytes"] for v in by_table.values())
    return {
        "stored_events": int(stored),
        "bytes_per_stored_event": round(total / stored, 1),
        "by_table_bytes_per_event": {
            name: round((v["table_bytes"] + v["index_bytes"]) / stored, 1)
            for name, v in by_table.items()
        },
        "total_gib": round(total / 2**30, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history-events", type=int, default=100_000_000)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    paths, stack, kafka, postgres = fresh_stack(BENCH_STATE)
    env = job_env(paths, postgres)
    results: dict[str, Any] = {"parameters": vars(args)}
    try:
        topic = "bench.backlog"
        kafka.ensure_topic(topic, PARTITIONS)
        produce_backlog(kafka.bootstrap_servers, topic, args.events)
        results["backlog_records"] = topic_size(kafka.bootstrap_servers, topic)

        conn = psycopg2.connect(postgres.dsn())
        for schema in ("empty", "history"):
            migrate(conn, schema)
        ensure_dashboard_api(conn)
        plans = daily_plan(
            args.history_events, args.days, dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        )
        started = time.monotonic()
        done = [0]

        def progress(plan: Any) -> None:
            done[0] += plan.page_views + plan.other_events
            rate = done[0] / (time.monotonic() - started)
            print(
                f"\rhistory: {done[0]:,}/{args.history_events:,} events "
                f"({100 * done[0] / args.history_events:.0f} %, {rate:,.0f}/s)",
                end="",
                flush=True,
            )

        fill(postgres.dsn(), "history", plans, progress=progress)
        print(flush=True)
        with conn, conn.cursor() as cur:
            cur.execute("ANALYZE")
        results["history"] = {
            "events": sum(p.page_views + p.other_events for p in plans),
            "days": len(plans),
            "first_day": plans[0].day.isoformat(),
            "last_day": plans[-1].day.isoformat(),
            "fill_seconds": round(time.monotonic() - started, 1),
        }
        print("history:", results["history"], flush=True)

        for schema in ("empty", "history"):
            run = drain(kafka.bootstrap_servers, topic, postgres.port, schema, paths, env)
            run |= batch_rates(
                postgres.dsn(), schema, "history-fill", run["seconds_wall_including_startup"]
            )
            results[f"drain_{schema}"] = run
            print(f"drain into {schema}:", run, flush=True)
        results["drain_history_vs_empty"] = round(
            results["drain_history"]["records_per_second"]
            / results["drain_empty"]["records_per_second"],
            3,
        )
        between = [
            results[f"drain_{s}"]["records_per_second_between_first_and_last_commit"]
            for s in ("history", "empty")
        ]
        results["drain_history_vs_empty_between_commits"] = (
            round(between[0] / between[1], 3) if all(between) else None
        )

        busiest = max(plans, key=lambda p: p.page_views).day
        last_30 = (plans[-1].day - dt.timedelta(days=29), plans[-1].day)
        reports: dict[str, Any] = {}
        panels: dict[str, Any] = {}
        with conn, conn.cursor() as cur:
            cur.execute("SET search_path TO history")
            for report in REPORTS.values():
                statement = f"SELECT * FROM {report.function}_range(%s, %s, 'UTC')"
                reports[report.name] = {
                    "busiest_day": timed(cur, statement, (busiest, busiest), args.repeat),
                    "last_30_days": timed(cur, statement, last_30, args.repeat),
                }
            day_start = dt.datetime.combine(busiest, dt.time(), dt.UTC)
            ranges = {
                "busiest_day": (day_start, day_start + dt.timedelta(days=1)),
                "last_30_days": (
                    dt.datetime.combine(last_30[0], dt.time(), dt.UTC),
                    dt.datetime.combine(last_30[1] + dt.timedelta(days=1), dt.time(), dt.UTC),
                ),
            }
            for title, text in panel_queries():
                panels[title] = {
                    name: timed(cur, expand_panel_sql(text, "history", *bounds), (), args.repeat)
                    for name, bounds in ranges.items()
                }
        results["reports_utc"] = reports
        results["panels"] = panels
        worst = [
            (f"report {name} {span}", m["p95_ms"])
            for name, spans in reports.items()
            for span, m in spans.items()
        ] + [
            (f"panel {title} {span}", m["p95_ms"])
            for title, spans in panels.items()
            for span, m in spans.items()
        ]
        results["slowest_p95"] = sorted(worst, key=lambda w: -w[1])[:5]
        results["disk"] = disk_per_event(postgres.dsn(), "history")
        results["busiest_day"] = busiest.isoformat()
        conn.close()
        print(json.dumps({k: results[k] for k in ("slowest_p95", "disk")}, indent=2), flush=True)
    finally:
        stack.down()
    path = write_result("history", results)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
