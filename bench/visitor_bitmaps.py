"""Unique visitors on the day bitmaps' worst case (migrations/V006), not a test.

bench/history.py numbers its devices densely (each day's visitors are the first numbers), the
bitmaps' best case. Here a day's visitors are drawn uniformly from every device ever numbered,
so each day keeps one sparse row per 1,024 devices ever seen: --devices-ever numbered devices,
--visitors-per-day drawn per day for --days UTC days, written by the same SQL shape the sink
uses, then unique_visitors over one day and over every day, each --repeat times (p50, p95),
and the bitmaps' disk.

    uv run python bench/visitor_bitmaps.py [--devices-ever 10000000] [--visitors-per-day 400000]

Writes bench/results/visitor_bitmaps.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
from pathlib import Path
from typing import Any

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchlib import machine, write_result
from history import timed
from job_throughput import empty_stack

from pagestream.stack.paths import REPO_ROOT
from pagestream_spark.migrate import migrate

BENCH_STATE = REPO_ROOT / ".pagestream" / "bench" / "visitor-bitmaps"
SCHEMA = "sparse"

# Numbers 0 .. devices_ever - 1 stand for the devices (visitor_numbers is not read by
# unique_visitors); a day's draws with repeats are one bit each, as in the sink.
DAY_SQL = """
INSERT INTO visitor_bitmaps (day, chunk, bits)
SELECT %(day)s::date, (n >> 10)::integer, bit_or(B'1'::bit(1024) >> (n & 1023)::integer)
FROM (SELECT (random() * (%(devices_ever)s - 1))::bigint AS n
      FROM generate_series(1, %(visitors)s)) d
GROUP BY 2
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices-ever", type=int, default=10_000_000)
    parser.add_argument("--visitors-per-day", type=int, default=400_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    at_start = machine()
    _, stack = empty_stack(BENCH_STATE)
    results: dict[str, Any] = {"parameters": vars(args)}
    try:
        postgres = stack.start("postgres")
        conn = psycopg2.connect(postgres.dsn())
        migrate(conn, SCHEMA)
        last = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        days = [last - dt.timedelta(days=n) for n in reversed(range(args.days))]
        with conn, conn.cursor() as cur:
            cur.execute(f"SET search_path TO {SCHEMA}")
            cur.execute("SELECT ensure_partitions(%s::date[])", ([d.isoformat() for d in days],))
            cur.execute("SELECT setseed(0.42)")  # the same draws every run
            for day in days:
                cur.execute(
                    DAY_SQL,
                    {
                        "day": day,
                        "devices_ever": args.devices_ever,
                        "visitors": args.visitors_per_day,
                    },
                )
            cur.execute("ANALYZE visitor_bitmaps")
        with conn, conn.cursor() as cur:
            cur.execute(f"SET search_path TO {SCHEMA}")
            cur.execute(
                "SELECT count(*), sum(bit_count(bits)), sum(pg_column_size(bits))"
                " FROM visitor_bitmaps"
            )
            rows, bits, _ = cur.fetchone()
            cur.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'visitor_bitmaps'::regclass"
            )
            (disk,) = cur.fetchone()
            statement = "SELECT unique_visitors(%s, %s)"
            results["bitmaps"] = {
                "rows": int(rows),
                "rows_per_day": round(int(rows) / len(days)),
                "bits_set": int(bits),
                "disk_bytes": int(disk),
            }
            results["unique_visitors"] = {
                "one_day": timed(cur, statement, (last, last), args.repeat),
                f"last_{args.days}_days": timed(cur, statement, (days[0], last), args.repeat),
            }
        conn.close()
    finally:
        stack.down()
        shutil.rmtree(BENCH_STATE, ignore_errors=True)
    print(results, flush=True)
    print("written", write_result("visitor_bitmaps", results, at_start))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
