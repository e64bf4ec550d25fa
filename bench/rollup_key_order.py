"""Reads of one rollup dimension over 30 days of hour buckets, by the order of the rollups' key
(migrations/V007), not a test.

A table shaped like agg_page_views_hour (720 hours; per hour the dimensions' values of
bench/history.py's shop: 5,000 products, 300 stores, 300 country/store pairs, ...; 4.1 M rows)
is built twice, keyed (grain, bucket, dimension, value) as before V007 and (grain, dimension,
bucket, value) as after it, and two panel-shaped reads run --repeat times on each: the total
series and browser/OS by hour.

    uv run python bench/rollup_key_order.py [--repeat 20]

Writes bench/results/rollup_key_order.json.
"""

from __future__ import annotations

import argparse
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

BENCH_STATE = REPO_ROOT / ".pagestream" / "bench" / "rollup-key-order"
VALUES_PER_HOUR = {
    "total": 1,
    "product": 5000,
    "store": 300,
    "country": 20,
    "referrer_medium": 5,
    "browser_os": 25,
    "referrer": 60,
    "country_store": 300,
    "campaign": 10,
    "device_class": 3,
}
KEY_ORDERS = {
    "before_v007": "grain, bucket, dimension, value",
    "v007": "grain, dimension, bucket, value",
}
RANGE = "bucket >= '2026-11-01' AND bucket < '2026-12-01'"
READS = {
    "total_series": "SELECT bucket, sum(views) FROM rollup WHERE grain = 'hour'"
    f" AND dimension = 'total' AND {RANGE} GROUP BY 1 ORDER BY 1",
    "browser_os_by_hour": "SELECT bucket, value, sum(views) FROM rollup WHERE grain = 'hour'"
    f" AND dimension = 'browser_os' AND {RANGE} GROUP BY 1, 2",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    at_start = machine()
    _, stack = empty_stack(BENCH_STATE)
    results: dict[str, Any] = {"parameters": vars(args), "rows": 0, "reads_ms": {}}
    try:
        conn = psycopg2.connect(stack.start("postgres").dsn())
        conn.autocommit = True
        with conn.cursor() as cur:
            for label, order in KEY_ORDERS.items():
                cur.execute("DROP TABLE IF EXISTS rollup")
                cur.execute(
                    "CREATE TABLE rollup (grain text, bucket timestamptz, dimension text,"
                    f' value text COLLATE "C", views bigint, PRIMARY KEY ({order}))'
                )
                for dimension, values in VALUES_PER_HOUR.items():
                    cur.execute(
                        "INSERT INTO rollup SELECT 'hour', timestamptz '2026-11-01'"
                        " + h * interval '1 hour', %s, 'v' || v, 1"
                        " FROM generate_series(0, 719) h, generate_series(1, %s) v",
                        (dimension, values),
                    )
                cur.execute("VACUUM ANALYZE rollup")
                cur.execute("SELECT count(*) FROM rollup")
                results["rows"] = cur.fetchone()[0]
                results["reads_ms"][label] = {
                    name: timed(cur, statement, (), args.repeat)
                    for name, statement in READS.items()
                }
        conn.close()
    finally:
        stack.down()
        shutil.rmtree(BENCH_STATE, ignore_errors=True)
    print(results, flush=True)
    print("written", write_result("rollup_key_order", results, at_start))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
