"""The streaming job on the real stack: every record accounted for, every report and aggregate
equal to a ground truth computed from the input, exactly once across SIGKILLs."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import psycopg2
import pytest

from pagestream.stack.kafka import Kafka
from pagestream.stack.paths import StackPaths
from pagestream.stack.postgres import Postgres
from pagestream_spark.migrate import migrate
from pagestream_spark.sink.schema import MINUTE_DIMENSIONS, ROLLUP_DIMENSIONS

from .conftest import JobRun, new_job_run, produce, stop_all
from .dataset import (
    Dataset,
    GroundTruth,
    Record,
    build_dataset,
    country_of,
    ground_truth,
    product_page_label,
)

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.postgres]


@dataclass
class CompletedRun:
    run: JobRun
    dataset: Dataset
    truth: GroundTruth
    placed: list[tuple[int, int]]


@pytest.fixture(scope="module")
def completed(kafka: Kafka, postgres: Postgres, stack_paths: StackPaths) -> Iterator[CompletedRun]:
    now = int(time.time())
    dataset = build_dataset(seed=7, valid_events=5000, now=now)
    truth = ground_truth(dataset, now)
    run = new_job_run(kafka, postgres, stack_paths)
    placed = produce(kafka, run.topic, [(r.key, r.value) for r in dataset.records])
    run.run_to_completion()
    yield CompletedRun(run, dataset, truth, placed)
    stop_all(run)


def _utc_day(rec: Record, tz: str = "UTC") -> dt.date:
    assert rec.event is not None
    return dt.datetime.fromtimestamp(rec.event["time_stamp"], ZoneInfo(tz)).date()


def _ranked(counts: Counter[str], limit: int) -> list[tuple[int, str, int]]:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [(i + 1, key, views) for i, (key, views) in enumerate(ordered)]


def test_every_consumed_record_is_accounted_for(completed: CompletedRun) -> None:
    run, truth = completed.run, completed.truth
    consumed, page_views, other, duplicates, dead, bots = run.query(
        "SELECT sum(consumed), sum(page_views), sum(other_events), sum(duplicates),"
        " sum(dead_lettered), sum(bots) FROM batch_commits"
    )[0]
    assert consumed == truth.consumed == len(completed.dataset.records)
    assert (page_views, other, duplicates, bots) == (
        len(truth.page_views),
        truth.other_events,
        truth.duplicates,
        truth.bots,
    )
    assert dead == sum(truth.dead_letters.values())
    assert consumed == page_views + other + duplicates + dead + bots
    by_reason = dict(run.query("SELECT reason, count(*) FROM dead_letters GROUP BY reason"))
    assert by_reason == dict(truth.dead_letters)
    assert set(by_reason) == {"oversize", "parse_error", "schema_violation", "invalid_timestamp"}
    # The tables agree with the accounting.
    assert run.query("SELECT count(*), count(DISTINCT event_id) FROM fact_page_views")[0] == (
        page_views,
        page_views,
    )
    assert run.query("SELECT count(*) FROM fact_other_events")[0][0] == other
    assert run.query("SELECT count(*) FROM bot_events")[0][0] == bots
    assert run.query("SELECT count(*) FROM duplicate_records")[0][0] == duplicates
    stored_ids = {row[0] for row in run.query("SELECT event_id FROM fact_page_views")}
    assert stored_ids == {r.event["id"] for r in truth.page_views if r.event}


def test_a_dead_letter_is_found_with_its_reason_offset_and_exact_bytes(
    completed: CompletedRun,
) -> None:
    index = next(
        i for i, r in enumerate(completed.dataset.records) if r.value == b"\xff\xfe\x00garbage"
    )
    partition, offset = completed.placed[index]
    rows = completed.run.query(
        "SELECT reason, detail, payload FROM dead_letters WHERE kafka_partition = %s AND kafka_offset = %s",
        (partition, offset),
    )
    assert len(rows) == 1
    reason, detail, payload = rows[0]
    assert (reason, detail) == ("parse_error", "record is not valid UTF-8")
    assert bytes(payload) == b"\xff\xfe\x00garbage"


def test_reports_equal_the_ground_truth(completed: CompletedRun) -> None:
    run, views = completed.run, completed.truth.page_views
    days = sorted({_utc_day(r) for r in views})
    assert len(days) >= 2, "the dataset spans late events from an earlier day"
    for day in days:
        todays = [r for r in views if _utc_day(r) == day]
        products = Counter(r.event["product_id"] for r in todays if r.event)
        countries = Counter(country_of(r.event["ip"]) for r in todays if r.event)
        referrers = Counter(r.referrer_domain for r in todays if r.referrer_domain)
        assert run.query(
            "SELECT rank, product_id, views FROM report_top_products(%s, 'UTC')", (day,)
        ) == _ranked(products, 10)
        assert run.query(
            "SELECT rank, country_code, views FROM report_top_countries(%s, 'UTC')", (day,)
        ) == _ranked(countries, 10)
        assert run.query(
            "SELECT rank, referrer_domain, views FROM report_top_referrers(%s, 'UTC')", (day,)
        ) == _ranked(referrers, 5)

        stores = Counter(
            (country_of(r.event["ip"]), r.event["store_id"]) for r in todays if r.event
        )
        got = run.query(
            "SELECT country_code, store_id, views, rank_in_country FROM report_store_performance(%s, 'UTC')",
            (day,),
        )
        assert {(c, s): v for c, s, v, _ in got} == dict(stores)
        for country in {c for c, _ in stores}:
            in_country = [(s, v, rank) for c, s, v, rank in got if c == country]
            assert [rank for _, _, rank in in_country] == list(range(1, len(in_country) + 1))
            assert [v for _, v, _ in in_country] == sorted(
                (v for _, v, _ in in_country), reverse=True
            )

        hourly = Counter(
            (r.event["product_id"], dt.datetime.fromtimestamp(r.event["time_stamp"], dt.UTC).hour)
            for r in todays
            if r.event
        )
        got_hourly = run.query(
            "SELECT product_id, hour, views FROM report_hourly_product_views(%s, 'UTC')", (day,)
        )
        assert {(p, h): v for p, h, v in got_hourly} == dict(hourly)

        browser_os = Counter(
            (dt.datetime.fromtimestamp(r.event["time_stamp"], dt.UTC).hour, r.browser, r.os)
            for r in todays
            if r.event
        )
        got_bos = run.query(
            "SELECT hour, browser, os, views FROM report_hourly_browser_os(%s, 'UTC')", (day,)
        )
        assert {(h, b, o): v for h, b, o, v in got_bos} == dict(browser_os)

    # The same day read in another time zone moves events between days and hours correctly.
    tokyo_day = _utc_day(views[0], "Asia/Tokyo")
    tokyo = Counter(
        (
            r.event["product_id"],
            dt.datetime.fromtimestamp(r.event["time_stamp"], ZoneInfo("Asia/Tokyo")).hour,
        )
        for r in views
        if r.event and _utc_day(r, "Asia/Tokyo") == tokyo_day
    )
    got_tokyo = run.query(
        "SELECT product_id, hour, views FROM report_hourly_product_views(%s, 'Asia/Tokyo')",
        (tokyo_day,),
    )
    assert {(p, h): v for p, h, v in got_tokyo} == dict(tokyo)


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_reports_over_a_range_of_days_equal_the_ground_truth(
    completed: CompletedRun, tz: str
) -> None:
    """Every day of the dataset at once, in a zone whose days are UTC days, one whose days
    start at another whole hour (day rollups inside, hour rollups at the edges) and one whose
    days start on a half hour (the facts of the range's partitions)."""
    run, views = completed.run, completed.truth.page_views
    days = sorted({_utc_day(r, tz) for r in views})
    first, last = days[0], days[-1]
    products = Counter(r.event["product_id"] for r in views if r.event)
    countries = Counter(country_of(r.event["ip"]) for r in views if r.event)
    referrers = Counter(r.referrer_domain for r in views if r.referrer_domain)
    assert run.query(
        "SELECT rank, product_id, views FROM report_top_products_range(%s, %s, %s)",
        (first, last, tz),
    ) == _ranked(products, 10)
    assert run.query(
        "SELECT rank, country_code, views FROM report_top_countries_range(%s, %s, %s)",
        (first, last, tz),
    ) == _ranked(countries, 10)
    assert run.query(
        "SELECT rank, referrer_domain, views FROM report_top_referrers_range(%s, %s, %s)",
        (first, last, tz),
    ) == _ranked(referrers, 5)
    hourly = Counter(
        (r.event["product_id"], dt.datetime.fromtimestamp(r.event["time_stamp"], ZoneInfo(tz)).hour)
        for r in views
        if r.event
    )
    got = run.query(
        "SELECT product_id, hour, views FROM report_hourly_product_views_range(%s, %s, %s)",
        (first, last, tz),
    )
    assert {(p, h): v for p, h, v in got} == dict(hourly)
    # The last day alone: the range's edges cut the dataset.
    last_days = [r for r in views if r.event and _utc_day(r, tz) == last]
    assert run.query(
        "SELECT rank, product_id, views FROM report_top_products_range(%s, %s, %s)",
        (last, last, tz),
    ) == _ranked(Counter(r.event["product_id"] for r in last_days if r.event), 10)


def test_each_product_keeps_its_newest_page_and_its_label(completed: CompletedRun) -> None:
    """All the dataset's pages are on one host: a product's page is its newest human page view
    by (event time, URL without the query), late events included, however the job cut the
    topic into batches; a product only other events are about has none."""
    run, truth = completed.run, completed.truth
    newest: dict[str, tuple[int, str]] = {}
    for rec in truth.page_views:
        assert rec.event is not None
        seen = (rec.event["time_stamp"], rec.event["current_url"].split("?")[0])
        newest[rec.event["product_id"]] = max(newest.get(rec.event["product_id"], seen), seen)
    got = run.query(
        "SELECT product_id, product_url, product_label, url_host,"
        " extract(epoch FROM url_event_time)::bigint FROM dim_product"
    )
    assert {p: (url, label, host, t) for p, url, label, host, t in got if url is not None} == {
        p: (url, product_page_label(url), "glamira.fr", t) for p, (t, url) in newest.items()
    }
    # Products seen only in other events (or crawlers' views) have a row without a page.
    assert {p for p, url, *_ in got if url is None} == {p for p, *_ in got} - set(newest)
    assert len(newest) >= 10
    # The reports show the label of each product.
    day = max(_utc_day(r) for r in truth.page_views)
    for _, product, label, url, _ in run.query(
        "SELECT * FROM report_top_products(%s, 'UTC')", (day,)
    ):
        assert (url, label) == (newest[product][1], product_page_label(newest[product][1]))


def test_aggregates_equal_the_facts_and_the_ground_truth(completed: CompletedRun) -> None:
    run, views = completed.run, completed.truth.page_views
    for grain, seconds, dimensions in (
        ("minute", 60, MINUTE_DIMENSIONS),
        ("hour", 3600, ROLLUP_DIMENSIONS),
        ("day", 86_400, ROLLUP_DIMENSIONS),
    ):
        expected: Counter[tuple[str, str]] = Counter()
        for r in views:
            assert r.event is not None
            bucket = r.event["time_stamp"] // seconds * seconds
            for dimension, value in (
                ("total", ""),
                ("product", r.event["product_id"]),
                ("store", r.event["store_id"]),
                ("country", country_of(r.event["ip"])),
                ("browser_os", f"{r.browser} / {r.os}"),
            ):
                if dimension in dimensions:
                    expected[(str(bucket), dimension, value)] += 1
        from_facts = tuple(FACT_ROLLUP_VALUES)
        got = run.query(
            "SELECT extract(epoch FROM bucket)::bigint::text, dimension, value, views FROM agg_page_views"
            " WHERE grain = %s AND dimension <> ALL(%s)",
            (grain, list(from_facts)),
        )
        assert {(b, d, v): n for b, d, v, n in got} == dict(expected)
        # And directly against the fact table for the dimensions the ground truth does not
        # name (referrer medium, referrer, country and store, campaign, device class).
        for dimension, value in FACT_ROLLUP_VALUES.items():
            if dimension not in dimensions:
                continue
            mismatches = run.query(
                f"""SELECT a.value, a.views, x.value, x.views FROM
                      (SELECT bucket, value, views FROM agg_page_views
                       WHERE grain = '{grain}' AND dimension = '{dimension}') a
                    FULL JOIN (SELECT date_trunc('{grain}', f.event_time, 'UTC') AS bucket,
                                      {value} AS value, count(*) AS views
                               FROM fact_page_views f
                               JOIN dim_referrer r USING (referrer_key)
                               JOIN dim_location l USING (location_key)
                               JOIN dim_store s USING (store_key)
                               JOIN dim_campaign c USING (campaign_key)
                               JOIN dim_user_agent u USING (user_agent_key)
                               GROUP BY 1, 2) x
                      ON a.bucket = x.bucket AND a.value = x.value
                    WHERE a.views IS DISTINCT FROM x.views"""
            )
            assert mismatches == [], (grain, dimension)
        assert run.query(
            "SELECT count(DISTINCT dimension) FROM agg_page_views WHERE grain = %s", (grain,)
        ) == [(len(dimensions),)]


# Each rollup dimension the ground truth does not name, as SQL over a page view's dimensions.
FACT_ROLLUP_VALUES = {
    "referrer_medium": "r.medium",
    "referrer": "r.domain || chr(31) || r.medium",
    "country_store": "l.country_code || chr(31) || s.store_id",
    "campaign": "c.source || chr(31) || c.medium || chr(31) || c.name",
    "device_class": "u.device_class",
}


def test_unique_visitors_are_exact_over_any_range(completed: CompletedRun) -> None:
    run, views = completed.run, completed.truth.page_views
    days = sorted({_utc_day(r) for r in views})
    for start in days:
        for end in days:
            if end < start:
                continue
            expected = len(
                {r.event["device_id"] for r in views if r.event and start <= _utc_day(r) <= end}
            )
            assert run.query("SELECT unique_visitors(%s, %s)", (start, end))[0][0] == expected
    per_day_sum = sum(
        len({r.event["device_id"] for r in views if r.event and _utc_day(r) == d}) for d in days
    )
    overall = run.query("SELECT unique_visitors(%s, %s)", (days[0], days[-1]))[0][0]
    assert overall < per_day_sum, "devices seen on several days count once over the range"


def test_no_raw_personal_data_is_stored(completed: CompletedRun) -> None:
    run = completed.run
    raw_ips = {r.event["ip"] for r in completed.truth.page_views if r.event}
    stored_ips = {row[0] for row in run.query("SELECT DISTINCT ip_anonymized FROM fact_page_views")}
    assert stored_ips and not (stored_ips & raw_ips)
    assert all(ip.endswith(".0") for ip in stored_ips)
    hashes = {
        row[0]
        for row in run.query(
            "SELECT DISTINCT email_hash FROM fact_page_views WHERE email_hash IS NOT NULL"
        )
    }
    assert hashes and all(len(h) == 64 and "@" not in h for h in hashes)


def test_migrations_run_twice_change_nothing(completed: CompletedRun, postgres: Postgres) -> None:
    run = completed.run

    def snapshot() -> list[tuple]:  # type: ignore[type-arg]
        return run.query(
            """SELECT 'col', table_name, column_name, data_type FROM information_schema.columns
                 WHERE table_schema = current_schema()
               UNION ALL SELECT 'fn', proname, md5(prosrc), '' FROM pg_proc
                 WHERE pronamespace = current_schema()::regnamespace
               UNION ALL SELECT 'rows', 'dim_time_of_day', count(*)::text, '' FROM dim_time_of_day
               UNION ALL SELECT 'rows', 'schema_migrations', count(*)::text, '' FROM schema_migrations
               ORDER BY 1, 2, 3"""
        )

    before = snapshot()
    conn = psycopg2.connect(postgres.dsn())
    try:
        assert migrate(conn, run.schema) == []
        assert migrate(conn, run.schema) == []
    finally:
        conn.close()
    assert snapshot() == before


def test_sigkill_twice_mid_stream_then_resume_loses_and_duplicates_nothing(job_run: JobRun) -> None:
    now = int(time.time())
    dataset = build_dataset(seed=11, valid_events=6_000, now=now)
    truth = ground_truth(dataset, now)
    produce(job_run.kafka, job_run.topic, [(r.key, r.value) for r in dataset.records])
    total = len(dataset.records)
    small_batches = {"max-offsets-per-trigger": "700"}

    for kill_after in (total // 4, total // 2):
        proc = job_run.start(**small_batches)
        job_run.wait_consumed(kill_after, proc=proc)
        job_run.kill(proc)  # SIGKILL to the whole process group, mid-stream
    (last_batch_before,) = job_run.query("SELECT max(batch_id) FROM batch_commits")[0]
    proc = job_run.start(**small_batches)
    job_run.wait_consumed(total, proc=proc)

    metrics = urllib.request.urlopen(
        f"http://127.0.0.1:{job_run.metrics_port}/metrics", timeout=5
    ).read()
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=metrics, capture_output=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert b'pagestream_job_records_total{outcome="stored"' in metrics
    # Late page views of this process's batches: more than the default watermark delay (2 h)
    # behind the newest page view of every earlier batch, the killed runs' included.
    (late,) = job_run.query(
        "WITH newest AS (SELECT batch_id, max(event_time) AS t FROM fact_page_views"
        " GROUP BY batch_id)"
        " SELECT count(*) FROM fact_page_views f WHERE f.batch_id > %s AND f.event_time <"
        " (SELECT max(t) FROM newest n WHERE n.batch_id < f.batch_id) - interval '2 hours'",
        (last_batch_before,),
    )[0]
    assert late > 0
    assert (
        f'pagestream_job_late_page_views_total{{pipeline="{job_run.schema.replace("_", "-")}"}} {late}.0'.encode()
        in metrics
    )

    job_run.kill(proc, sig=signal.SIGTERM)  # a graceful stop
    assert proc.returncode == 0

    assert truth.consumed == total
    job_run.assert_stored_exactly_once(truth)
    assert job_run.query(
        "SELECT sum(views) FROM agg_page_views WHERE grain = 'minute' AND dimension = 'total'"
    )[0][0] == len(truth.page_views)
    assert job_run.query("SELECT count(*) FROM dead_letters")[0][0] == sum(
        truth.dead_letters.values()
    )


def test_report_cli_prints_every_report_as_a_table(
    completed: CompletedRun, postgres: Postgres
) -> None:
    run, views = completed.run, completed.truth.page_views
    day = max(_utc_day(r) for r in views)
    top = _ranked(
        Counter(r.event["product_id"] for r in views if r.event and _utc_day(r) == day), 10
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pagestream",
            "report",
            "all",
            "--schema",
            run.schema,
            "--day",
            day.isoformat(),
            "--tz",
            "UTC",
            "--postgres-url",
            postgres.url(),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    for title in (
        "Top 10 products",
        "Top 10 countries",
        "Top 5 referrer domains",
        "Store performance",
        "Hourly views by product",
        "Hourly browser / OS",
    ):
        assert title in out
    first_product, first_views = top[0][1], top[0][2]
    assert any(first_product in line and str(first_views) in line for line in out.splitlines())
    assert "no page views for this day yet" not in out


def test_report_cli_prints_a_report_over_a_range_of_days(
    completed: CompletedRun, postgres: Postgres
) -> None:
    run, views = completed.run, completed.truth.page_views
    days = sorted({_utc_day(r) for r in views})
    top = _ranked(Counter(r.event["product_id"] for r in views if r.event), 10)

    def report(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pagestream",
                "report",
                "top-products",
                "--schema",
                run.schema,
                "--tz",
                "UTC",
                "--postgres-url",
                postgres.url(),
                *extra,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )

    out = report("--day", days[0].isoformat(), "--to", days[-1].isoformat())
    assert out.returncode == 0, out.stderr
    assert f"{days[0].isoformat()} to {days[-1].isoformat()}" in out.stdout
    first_product, first_views = top[0][1], top[0][2]
    assert any(
        first_product in line and str(first_views) in line for line in out.stdout.splitlines()
    )
    backwards = report("--day", days[-1].isoformat(), "--to", days[0].isoformat())
    assert backwards.returncode == 2
    assert "--to needs --day, on or before it" in backwards.stderr
