"""Fill a pipeline schema with a history of stored events, in the layout the job writes
(migrations/V005, V006), directly in PostgreSQL: facts, event ids, rollups and visitor bitmaps
per UTC day, as the sink would have left them. Used by bench/history.py.

The shape: a daily curve (weekends busier, a slow growth over the period, an afternoon peak
with a night trough), product popularity skewed (a few products take most views), 80 % page
views and 20 % other events, devices seen on several days. Dimension rows use natural keys of
their own ("hist-..."), so the job's later batches never meet them as conflicts.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from pagestream_spark.sink.schema import MINUTE_DIMENSIONS, ROLLUP_DIMENSIONS

PRODUCTS, STORES, LOCATIONS, USER_AGENTS, REFERRERS, CAMPAIGNS = 5000, 30, 300, 200, 80, 40
# Fake dimension keys live far from xxhash's (uniform over the whole int64 range, so a
# collision is as unlikely as any other).
KEY_BASE = 7_000_000_000_000_000_000
PAGE_VIEW_SHARE = 0.8


@dataclass(frozen=True)
class DayPlan:
    day: dt.date
    page_views: int
    other_events: int


def daily_plan(events: int, days: int, last_day: dt.date) -> list[DayPlan]:
    """``events`` spread over ``days`` ending at ``last_day``: weekends x1.3, +30 % over the
    period, so the busiest day is recent."""
    weights = []
    first = last_day - dt.timedelta(days=days - 1)
    for n in range(days):
        day = first + dt.timedelta(days=n)
        weekend = 1.3 if day.isoweekday() >= 6 else 1.0
        weights.append((day, weekend * (1 + 0.3 * n / max(days - 1, 1))))
    total = sum(w for _, w in weights)
    plans = []
    for day, w in weights:
        count = round(events * w / total)
        views = round(count * PAGE_VIEW_SHARE)
        plans.append(DayPlan(day, views, count - views))
    return plans


DIMENSIONS_SQL = f"""
INSERT INTO dim_product (product_key, product_id, product_url, product_label, url_host, url_event_time)
SELECT {KEY_BASE} + n, 'hist-p' || n, 'https://www.shop.example/hist-product-' || n || '.html',
       'Hist Product ' || n, 'shop.example', now()
FROM generate_series(0, {PRODUCTS - 1}) n ON CONFLICT DO NOTHING;
INSERT INTO dim_store SELECT {KEY_BASE} + 100000 + n, 'hist-s' || n
FROM generate_series(0, {STORES - 1}) n ON CONFLICT DO NOTHING;
INSERT INTO dim_location
SELECT {KEY_BASE} + 200000 + n, (ARRAY['US','FR','DE','GB','IT','ES','NL','PL','SE','JP'])[1 + n % 10],
       (ARRAY['United States','France','Germany','United Kingdom','Italy','Spain','Netherlands','Poland','Sweden','Japan'])[1 + n % 10],
       'hist-region-' || n, 'hist-city-' || n
FROM generate_series(0, {LOCATIONS - 1}) n ON CONFLICT DO NOTHING;
INSERT INTO dim_user_agent
SELECT {KEY_BASE} + 300000 + n, (ARRAY['Chrome','Safari','Firefox','Edge','Samsung Internet'])[1 + n % 5],
       'hist-' || n, (ARRAY['Windows','iOS','Android','Mac OS X','Linux'])[1 + (n / 5) % 5], '',
       (ARRAY['desktop','mobile','tablet'])[1 + n % 3], false
FROM generate_series(0, {USER_AGENTS - 1}) n ON CONFLICT DO NOTHING;
INSERT INTO dim_referrer
SELECT {KEY_BASE} + 400000 + n, CASE WHEN n = 0 THEN '' ELSE 'hist-' || n || '.example' END,
       (ARRAY['direct','search','social','other'])[1 + n % 4]
FROM generate_series(0, {REFERRERS - 1}) n ON CONFLICT DO NOTHING;
INSERT INTO dim_campaign
SELECT {KEY_BASE} + 500000 + n, CASE WHEN n = 0 THEN '' ELSE 'hist-src-' || n % 7 END,
       CASE WHEN n = 0 THEN '' ELSE (ARRAY['cpc','email','social'])[1 + n % 3] END,
       CASE WHEN n = 0 THEN '' ELSE 'hist-campaign-' || n END, '', ''
FROM generate_series(0, {CAMPAIGNS - 1}) n ON CONFLICT DO NOTHING;
"""

# One day's events, ordered by event time as the job writes them. %(day)s, %(n)s, %(devices)s.
_SECOND_OF_DAY = """CASE WHEN random() < 0.3 THEN floor(random() * 86400)
    ELSE greatest(0, least(86399, floor(50400 + 14400 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))))
    END"""
PAGE_VIEWS_SQL = f"""
INSERT INTO fact_page_views
SELECT substr(md5(%(day)s::text || '-v' || g), 1, 24), t,
       to_char(t AT TIME ZONE 'UTC', 'YYYYMMDD')::integer,
       (extract(hour FROM t AT TIME ZONE 'UTC') * 60 + extract(minute FROM t AT TIME ZONE 'UTC'))::smallint,
       {KEY_BASE} + floor({PRODUCTS} * random() ^ 3)::bigint,
       {KEY_BASE} + 100000 + floor({STORES} * random() ^ 2)::bigint,
       {KEY_BASE} + 200000 + floor({LOCATIONS} * random() ^ 2)::bigint,
       {KEY_BASE} + 300000 + floor({USER_AGENTS} * random() ^ 2)::bigint,
       {KEY_BASE} + 400000 + floor({REFERRERS} * random() ^ 2)::bigint,
       {KEY_BASE} + 500000 + CASE WHEN random() < 0.85 THEN 0 ELSE floor({CAMPAIGNS} * random())::bigint END,
       'hist-d' || dev, hashtextextended(%(day)s::text || dev, 0),
       CASE WHEN random() < 0.1 THEN 'user-' || dev END,
       CASE WHEN random() < 0.1 THEN md5(dev::text) || md5(dev::text || 'x') END,
       '37.170.' || (g %% 256) || '.0',
       '/hist-product-' || (g %% {PRODUCTS}) || '.html',
       (g %% 4)::integer, g, 1000000 + g / 250000
FROM (SELECT g, %(day)s::date::timestamp AT TIME ZONE 'UTC' + ({_SECOND_OF_DAY}) * interval '1 second' AS t,
             floor(%(devices)s * random() ^ 1.5)::bigint AS dev
      FROM generate_series(1, %(n)s) g) s
ORDER BY t
"""
OTHER_EVENTS_SQL = f"""
INSERT INTO fact_other_events
SELECT substr(md5(%(day)s::text || '-o' || g), 1, 24),
       (ARRAY['add_to_cart_action','view_listing_page','checkout'])[1 + g %% 3], t,
       to_char(t AT TIME ZONE 'UTC', 'YYYYMMDD')::integer,
       (extract(hour FROM t AT TIME ZONE 'UTC') * 60 + extract(minute FROM t AT TIME ZONE 'UTC'))::smallint,
       CASE WHEN g %% 3 = 0 THEN {KEY_BASE} + floor({PRODUCTS} * random() ^ 3)::bigint END,
       {KEY_BASE} + 100000 + floor({STORES} * random() ^ 2)::bigint,
       {KEY_BASE} + 200000 + floor({LOCATIONS} * random() ^ 2)::bigint,
       {KEY_BASE} + 300000 + floor({USER_AGENTS} * random() ^ 2)::bigint,
       {KEY_BASE} + 400000 + floor({REFERRERS} * random() ^ 2)::bigint,
       {KEY_BASE} + 500000, 'hist-d' || dev, hashtextextended(%(day)s::text || dev, 0),
       (g %% 4)::integer, g, 1000000 + g / 250000
FROM (SELECT g, %(day)s::date::timestamp AT TIME ZONE 'UTC' + ({_SECOND_OF_DAY}) * interval '1 second' AS t,
             floor(%(devices)s * random() ^ 1.5)::bigint AS dev
      FROM generate_series(1, %(n)s) g) s
ORDER BY t
"""
# The rest of the day, from its facts, as the sink derives it.
DERIVED_SQL = """
INSERT INTO event_ids
SELECT event_id, %(day)s::date FROM (
    SELECT event_id FROM {views} UNION ALL SELECT event_id FROM {others}) ids
ORDER BY event_id COLLATE "C";
INSERT INTO visitor_bitmaps (day, chunk, bits)
SELECT %(day)s::date, (n.visitor_no >> 10)::integer,
       bit_or(B'1'::bit(1024) >> (n.visitor_no & 1023)::integer)
FROM (SELECT DISTINCT hashtextextended(device_id, 0) AS device_key FROM {views}) v
     JOIN visitor_numbers n USING (device_key)
GROUP BY 2;
CREATE TEMP TABLE day_values ON COMMIT DROP AS
SELECT date_trunc('minute', f.event_time) AS minute, p.product_id AS product, s.store_id AS store,
       l.country_code AS country, r.medium AS referrer_medium,
       u.browser || ' / ' || u.os AS browser_os, u.device_class,
       r.domain || chr(31) || r.medium AS referrer,
       l.country_code || chr(31) || s.store_id AS country_store,
       c.source || chr(31) || c.medium || chr(31) || c.name AS campaign
FROM {views} f
     JOIN dim_product p USING (product_key)
     JOIN dim_referrer r USING (referrer_key)
     JOIN dim_location l USING (location_key)
     JOIN dim_store s USING (store_key)
     JOIN dim_campaign c USING (campaign_key)
     JOIN dim_user_agent u USING (user_agent_key);
"""
# Per grain and dimension, one pass over the day's values each (GROUP BY on one column is
# far cheaper than one pass that explodes every fact into a row per dimension).
ROLLUP_SQL = """
INSERT INTO agg_page_views (grain, bucket, dimension, value, views)
SELECT %(grain)s, date_trunc(%(grain)s, minute), %(dimension)s, {value}, count(*)
FROM day_values GROUP BY 2, 4
"""
BOOKKEEPING_SQL = """
INSERT INTO dim_date (date_key, full_date, year, quarter, month, day_of_month, day_of_week, iso_week, is_weekend)
SELECT to_char(d, 'YYYYMMDD')::integer, d, extract(year FROM d), extract(quarter FROM d),
       extract(month FROM d), extract(day FROM d), extract(isodow FROM d), extract(week FROM d),
       extract(isodow FROM d) >= 6
FROM (SELECT %(day)s::date AS d) s ON CONFLICT DO NOTHING;
INSERT INTO batch_commits (query_id, batch_id, consumed, page_views, other_events, duplicates, dead_lettered, bots, max_event_time)
SELECT 'history-fill', to_char(%(day)s::date, 'YYYYMMDD')::bigint, v + o, v, o, 0, 0, 0,
       (%(day)s::date + 1)::timestamp AT TIME ZONE 'UTC' - interval '1 second'
FROM (SELECT (SELECT count(*) FROM {views}) AS v, (SELECT count(*) FROM {others}) AS o) c;
"""


NUMBER_DEVICES_SQL = """
INSERT INTO visitor_numbers (device_key)
SELECT hashtextextended('hist-d' || dev, 0) FROM generate_series(0, %(devices)s - 1) dev
ON CONFLICT DO NOTHING
"""


def _devices(plan: DayPlan) -> int:
    """How many devices a day's page views come from (each seen ~6 times on average)."""
    return max(1, math.ceil(plan.page_views / 6))


def fill(
    dsn: str,
    schema: str,
    plans: list[DayPlan],
    *,
    workers: int = 2,
    progress: Callable[[DayPlan], None] | None = None,
) -> None:
    """Write ``plans``' days into ``schema`` (migrated already), ``workers`` days at a time."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur.execute(DIMENSIONS_SQL)
        # Every device numbered up front: two days filled at once would otherwise both number
        # the devices they share, one waiting for the other's whole day to commit.
        cur.execute(NUMBER_DEVICES_SQL, {"devices": max(_devices(p) for p in plans)})
        cur.execute("SELECT ensure_partitions(%s::date[])", ([p.day.isoformat() for p in plans],))
    conn.close()
    queue = list(reversed(plans))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        conn = psycopg2.connect(dsn)
        try:
            while True:
                with lock:
                    if not queue or errors:
                        return
                    plan = queue.pop()
                _fill_day(conn, schema, plan)
                if progress:
                    progress(plan)
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _fill_day(conn: psycopg2.extensions.connection, schema: str, plan: DayPlan) -> None:
    stamp = plan.day.strftime("%Y%m%d")
    views = sql.Identifier(f"fact_page_views_p{stamp}")
    others = sql.Identifier(f"fact_other_events_p{stamp}")
    params = {
        "day": plan.day.isoformat(),
        "devices": _devices(plan),
    }
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        cur.execute("SET LOCAL TimeZone TO 'UTC'")
        cur.execute("SET LOCAL work_mem TO '512MB'")
        cur.execute(PAGE_VIEWS_SQL, {**params, "n": plan.page_views})
        cur.execute(OTHER_EVENTS_SQL, {**params, "n": plan.other_events})
        cur.execute(sql.SQL(DERIVED_SQL).format(views=views, others=others), params)
        for grain, dimensions in (
            ("minute", MINUTE_DIMENSIONS),
            ("hour", ROLLUP_DIMENSIONS),
            ("day", ROLLUP_DIMENSIONS),
        ):
            for dimension in dimensions:
                value = sql.SQL("''") if dimension == "total" else sql.Identifier(dimension)
                cur.execute(
                    sql.SQL(ROLLUP_SQL).format(value=value),
                    {"grain": grain, "dimension": dimension},
                )
        cur.execute(sql.SQL(BOOKKEEPING_SQL).format(views=views, others=others), params)
