-- Cost that stays flat as history grows (docs/streaming-job.md, "Partitions and retention").
--
-- Event ids, facts, bot events and minute rollups are partitioned by UTC day; hour rollups and
-- visitor days by UTC month. A batch touches only the partitions of the days it carries, so the
-- dedup's index probes and inserts stay within one day's ids however long the pipeline has run,
-- and retention drops whole partitions instead of deleting rows. The sink creates a day's
-- partitions (ensure_partitions) before the batch that first needs them, late days included.
--
-- The dedup key becomes (event_id, event_day): a retry or replay carries the same bytes, hence
-- the same time_stamp and day. The same id sent again with a time_stamp on another UTC day is
-- a new event (before this migration it was a duplicate).
--
-- Existing rows move into the partitioned tables; reports are rebuilt on the rollups.

-- The report functions return fact_page_views' row type: drop them (and their views) first.
DROP VIEW report_top_products_today, report_top_countries_today, report_top_referrers_today,
    report_store_performance_today, report_hourly_product_views_today,
    report_hourly_browser_os_today;
DROP FUNCTION report_top_products(date, text), report_top_countries(date, text),
    report_top_referrers(date, text), report_store_performance(date, text),
    report_hourly_product_views(date, text), report_hourly_browser_os(date, text),
    report_page_views(date, text);

ALTER TABLE event_ids RENAME TO event_ids_v004;
ALTER TABLE fact_page_views RENAME TO fact_page_views_v004;
ALTER TABLE fact_other_events RENAME TO fact_other_events_v004;
ALTER TABLE bot_events RENAME TO bot_events_v004;
ALTER TABLE agg_page_views RENAME TO agg_page_views_v004;
ALTER TABLE visitor_days RENAME TO visitor_days_v004;
ALTER INDEX fact_page_views_event_time RENAME TO fact_page_views_v004_event_time;
ALTER INDEX fact_other_events_event_time RENAME TO fact_other_events_v004_event_time;

CREATE TABLE event_ids (
    event_id  text COLLATE "C" NOT NULL,
    event_day date NOT NULL,                   -- UTC day of the event's time_stamp
    PRIMARY KEY (event_id, event_day)
) PARTITION BY RANGE (event_day);
COMMENT ON TABLE event_ids IS
    'Every distinct valid event (id, UTC day) accepted within retention, whatever became of it. Deduplication across micro-batches, restarts and replays checks here.';

CREATE TABLE fact_page_views (
    event_id       text NOT NULL,
    event_time     timestamptz NOT NULL,
    date_key       integer NOT NULL,
    time_key       smallint NOT NULL,
    product_key    bigint NOT NULL,
    store_key      bigint NOT NULL,
    location_key   bigint NOT NULL,
    user_agent_key bigint NOT NULL,
    referrer_key   bigint NOT NULL,
    campaign_key   bigint NOT NULL,
    device_id      text NOT NULL,
    visitor_id     bigint NOT NULL,
    user_id_db     text,
    email_hash     text,
    ip_anonymized  text,
    page_path      text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset   bigint NOT NULL,
    batch_id       bigint NOT NULL
) PARTITION BY RANGE (event_time);
-- Rows arrive in roughly event-time order within a day: a BRIN index finds a time range for a
-- few bytes per million rows, where a B-tree cost ~20 bytes per row.
CREATE INDEX fact_page_views_event_time ON fact_page_views USING brin (event_time);
COMMENT ON TABLE fact_page_views IS
    'One row per distinct valid human page view. *_key columns reference the dim_* tables (kept by the sink, not by foreign keys; see V003). Partitioned by UTC day.';

CREATE TABLE fact_other_events (
    event_id       text NOT NULL,
    collection     text NOT NULL,
    event_time     timestamptz NOT NULL,
    date_key       integer NOT NULL,
    time_key       smallint NOT NULL,
    product_key    bigint,
    store_key      bigint NOT NULL,
    location_key   bigint NOT NULL,
    user_agent_key bigint NOT NULL,
    referrer_key   bigint NOT NULL,
    campaign_key   bigint NOT NULL,
    device_id      text NOT NULL,
    visitor_id     bigint NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset   bigint NOT NULL,
    batch_id       bigint NOT NULL
) PARTITION BY RANGE (event_time);
CREATE INDEX fact_other_events_event_time ON fact_other_events USING brin (event_time);

CREATE TABLE bot_events (
    event_id        text NOT NULL,
    collection      text NOT NULL,
    event_time      timestamptz NOT NULL,
    user_agent_key  bigint NOT NULL,
    store_key       bigint NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    batch_id        bigint NOT NULL
) PARTITION BY RANGE (event_time);

-- Rollup dimensions: 'referrer' is domain U+001F medium, 'country_store' country code U+001F
-- store id, 'campaign' source U+001F medium U+001F name; the rest as in V001. Every dimension
-- per UTC day and per hour; per minute only the few-valued ones (total, store, country,
-- referrer_medium, browser_os, device_class): a product per minute has about one view per row,
-- which cost as much disk as the facts. The day grain lets a month-long range read a few rows
-- per value instead of 24 per day.
CREATE TABLE agg_page_views (
    grain     text NOT NULL CHECK (grain IN ('minute', 'hour', 'day')),
    bucket    timestamptz NOT NULL,
    dimension text NOT NULL CHECK (dimension IN ('total', 'product', 'store', 'country',
        'referrer_medium', 'browser_os', 'referrer', 'country_store', 'campaign', 'device_class')),
    value     text COLLATE "C" NOT NULL,
    views     bigint NOT NULL,
    PRIMARY KEY (grain, bucket, dimension, value)
) PARTITION BY LIST (grain);
CREATE TABLE agg_page_views_minute PARTITION OF agg_page_views FOR VALUES IN ('minute')
    PARTITION BY RANGE (bucket);
CREATE TABLE agg_page_views_hour PARTITION OF agg_page_views FOR VALUES IN ('hour')
    PARTITION BY RANGE (bucket);
CREATE TABLE agg_page_views_day PARTITION OF agg_page_views FOR VALUES IN ('day')
    PARTITION BY RANGE (bucket);

CREATE TABLE visitor_days (
    day        date NOT NULL,
    device_key bigint NOT NULL,
    PRIMARY KEY (day, device_key)
) PARTITION BY RANGE (day);

-- Partitions of the sink's tables, by UTC day or month, named <table>_pYYYYMMDD / _pYYYYMM.
CREATE TABLE partitioned_tables (
    parent    text PRIMARY KEY,
    period    text NOT NULL CHECK (period IN ('day', 'month')),
    bound     text NOT NULL CHECK (bound IN ('date', 'timestamptz')),
    -- Which retention horizon drops its partitions: the events' or the rollups'.
    horizon   text NOT NULL CHECK (horizon IN ('events', 'rollups'))
);
INSERT INTO partitioned_tables VALUES
    ('event_ids', 'day', 'date', 'events'),
    ('fact_page_views', 'day', 'timestamptz', 'events'),
    ('fact_other_events', 'day', 'timestamptz', 'events'),
    ('bot_events', 'day', 'timestamptz', 'events'),
    ('agg_page_views_minute', 'day', 'timestamptz', 'events'),
    ('agg_page_views_hour', 'month', 'timestamptz', 'rollups'),
    ('agg_page_views_day', 'month', 'timestamptz', 'rollups'),
    ('visitor_days', 'month', 'date', 'rollups');

-- Creates the partitions that hold these UTC days in every partitioned table (a missing one,
-- or one left detached by an interrupted retention pass, which is attached again). A new
-- table is created alone and then attached: ATTACH takes SHARE UPDATE EXCLUSIVE on the
-- parent, so writers of other partitions go on (CREATE TABLE ... PARTITION OF would take
-- ACCESS EXCLUSIVE). Returns how many partitions it created or attached.
CREATE FUNCTION ensure_partitions(p_days date[]) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    t record;
    d date;
    lo date;
    hi date;
    part text;
    found_rel regclass;
    made integer := 0;
BEGIN
    -- Two sessions creating one partition would collide on its name.
    PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.ensure_partitions'));
    FOR t IN SELECT * FROM partitioned_tables ORDER BY parent LOOP
        FOR d IN SELECT DISTINCT CASE WHEN t.period = 'day' THEN x ELSE date_trunc('month', x)::date END
                 FROM unnest(p_days) AS x ORDER BY 1 LOOP
            lo := d;
            hi := CASE WHEN t.period = 'day' THEN d + 1 ELSE (d + interval '1 month')::date END;
            part := t.parent || '_p' || to_char(d, CASE WHEN t.period = 'day' THEN 'YYYYMMDD' ELSE 'YYYYMM' END);
            found_rel := to_regclass(quote_ident(part));
            IF found_rel IS NOT NULL AND EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = found_rel) THEN
                CONTINUE;
            END IF;
            IF found_rel IS NULL THEN
                EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, t.parent);
            END IF;
            IF t.bound = 'date' THEN
                EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                               t.parent, part, lo, hi);
            ELSE
                EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                               t.parent, part, lo || ' 00:00:00+00', hi || ' 00:00:00+00');
            END IF;
            made := made + 1;
        END LOOP;
    END LOOP;
    RETURN made;
END
$$;

-- Whole partitions dropped by retention, with their row counts: facts and ids present plus
-- these rows are what batch_commits says was stored (retention_totals).
CREATE TABLE retention_drops (
    parent     text NOT NULL,
    first_day  date NOT NULL,                  -- the partition's first UTC day
    last_day   date NOT NULL,
    row_count  bigint NOT NULL,
    counted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    dropped_at timestamptz,                    -- NULL while the partition is being detached
    PRIMARY KEY (parent, first_day)
);

-- Stored events per fact table: rows present (in partitions no drop has counted yet) plus the
-- rows retention dropped. Equal to batch_commits' totals at every moment: a partition's rows
-- move from the first term to the second in the transaction that counts them, and nothing is
-- written to a day once retention has reached it.
CREATE VIEW retention_totals AS
SELECT t.parent,
       coalesce((SELECT sum(r.row_count) FROM retention_drops r WHERE r.parent = t.parent), 0)::bigint AS dropped,
       (SELECT count(*) FROM fact_page_views f WHERE t.parent = 'fact_page_views'
            AND NOT EXISTS (SELECT 1 FROM retention_drops r WHERE r.parent = t.parent
                            AND f.event_time >= r.first_day::timestamp AT TIME ZONE 'UTC'
                            AND f.event_time < (r.last_day + 1)::timestamp AT TIME ZONE 'UTC'))
     + (SELECT count(*) FROM fact_other_events f WHERE t.parent = 'fact_other_events'
            AND NOT EXISTS (SELECT 1 FROM retention_drops r WHERE r.parent = t.parent
                            AND f.event_time >= r.first_day::timestamp AT TIME ZONE 'UTC'
                            AND f.event_time < (r.last_day + 1)::timestamp AT TIME ZONE 'UTC'))
     + (SELECT count(*) FROM bot_events f WHERE t.parent = 'bot_events'
            AND NOT EXISTS (SELECT 1 FROM retention_drops r WHERE r.parent = t.parent
                            AND f.event_time >= r.first_day::timestamp AT TIME ZONE 'UTC'
                            AND f.event_time < (r.last_day + 1)::timestamp AT TIME ZONE 'UTC'))
       AS present
FROM (VALUES ('fact_page_views'), ('fact_other_events'), ('bot_events')) AS t(parent);

-- The existing rows, into partitions of their days.
SELECT ensure_partitions(coalesce(array_agg(DISTINCT day), '{}')) FROM (
    SELECT (event_time AT TIME ZONE 'UTC')::date AS day FROM event_ids_v004
    UNION SELECT (event_time AT TIME ZONE 'UTC')::date FROM fact_page_views_v004
    UNION SELECT (event_time AT TIME ZONE 'UTC')::date FROM fact_other_events_v004
    UNION SELECT (event_time AT TIME ZONE 'UTC')::date FROM bot_events_v004
    UNION SELECT (bucket AT TIME ZONE 'UTC')::date FROM agg_page_views_v004
    UNION SELECT day FROM visitor_days_v004
) days;

INSERT INTO event_ids SELECT event_id, (event_time AT TIME ZONE 'UTC')::date FROM event_ids_v004
    ON CONFLICT DO NOTHING;
INSERT INTO fact_page_views SELECT * FROM fact_page_views_v004;
INSERT INTO fact_other_events SELECT * FROM fact_other_events_v004;
INSERT INTO bot_events SELECT * FROM bot_events_v004;
INSERT INTO agg_page_views SELECT * FROM agg_page_views_v004
    WHERE grain = 'hour' OR dimension <> 'product';
INSERT INTO visitor_days SELECT * FROM visitor_days_v004;
-- The new rollup dimensions, from the facts they count.
INSERT INTO agg_page_views (grain, bucket, dimension, value, views)
SELECT g.grain, date_trunc(g.grain, f.event_time, 'UTC'), d.dimension, d.value, count(*)
FROM fact_page_views f
     JOIN dim_referrer r USING (referrer_key)
     JOIN dim_location l USING (location_key)
     JOIN dim_store s USING (store_key)
     JOIN dim_campaign c USING (campaign_key)
     JOIN dim_user_agent u USING (user_agent_key)
     CROSS JOIN (VALUES ('minute'), ('hour')) AS g(grain)
     CROSS JOIN LATERAL (VALUES
         ('referrer', r.domain || chr(31) || r.medium),
         ('country_store', l.country_code || chr(31) || s.store_id),
         ('campaign', c.source || chr(31) || c.medium || chr(31) || c.name),
         ('device_class', u.device_class)) AS d(dimension, value)
WHERE g.grain = 'hour' OR d.dimension = 'device_class'
GROUP BY 1, 2, 3, 4;
INSERT INTO agg_page_views (grain, bucket, dimension, value, views)
SELECT 'day', date_trunc('day', bucket, 'UTC'), dimension, value, sum(views)
FROM agg_page_views WHERE grain = 'hour' GROUP BY 2, 3, 4;
DROP TABLE event_ids_v004, fact_page_views_v004, fact_other_events_v004, bot_events_v004,
    agg_page_views_v004, visitor_days_v004;

-- The dashboards' health panels filter these by time; both tables grow for as long as the
-- pipeline runs.
CREATE INDEX batch_commits_committed_at ON batch_commits (committed_at);
CREATE INDEX dead_letters_kafka_timestamp ON dead_letters (kafka_timestamp);

-- Events older than the retention are refused as dead letters.
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_reason_check;
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_reason_check CHECK (reason IN
    ('oversize', 'parse_error', 'schema_violation', 'invalid_timestamp', 'past_retention'));

-- Reports over a range of calendar days in a time zone, from the rollups. When every day
-- boundary of the range falls on a UTC hour (whole-hour offsets: all zones but a few, such as
-- Asia/Kolkata), each hour bucket lies wholly inside the range and inside one local hour, so
-- the counts equal the facts': report_totals reads the UTC days wholly inside the range from
-- the day rollups and the hours at its edges from the hour rollups; report_by_hour reads the
-- hour rollups. In the other zones both read the facts of the range's day partitions.
-- PL/pgSQL so the bounds are known when each query starts and the partitions outside them are
-- pruned.
CREATE FUNCTION report_facts(p_dimension text, lo timestamptz, hi timestamptz)
RETURNS TABLE (bucket timestamptz, value text, views bigint)
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT ROWS 10000 AS $$
BEGIN
    RETURN QUERY SELECT date_trunc('minute', f.event_time), CASE p_dimension
            WHEN 'total' THEN ''
            WHEN 'product' THEN p.product_id
            WHEN 'store' THEN s.store_id
            WHEN 'country' THEN l.country_code
            WHEN 'referrer_medium' THEN r.medium
            WHEN 'browser_os' THEN u.browser || ' / ' || u.os
            WHEN 'device_class' THEN u.device_class
            WHEN 'referrer' THEN r.domain || chr(31) || r.medium
            WHEN 'country_store' THEN l.country_code || chr(31) || s.store_id
            WHEN 'campaign' THEN c.source || chr(31) || c.medium || chr(31) || c.name
        END, count(*)
        FROM fact_page_views f
             JOIN dim_product p USING (product_key)
             JOIN dim_store s USING (store_key)
             JOIN dim_location l USING (location_key)
             JOIN dim_referrer r USING (referrer_key)
             JOIN dim_user_agent u USING (user_agent_key)
             JOIN dim_campaign c USING (campaign_key)
        WHERE f.event_time >= lo AND f.event_time < hi
        GROUP BY 1, 2;
END
$$;

CREATE FUNCTION report_whole_hours(p_from date, p_to date, p_tz text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT bool_and(extract(epoch FROM d::timestamp AT TIME ZONE p_tz)::bigint % 3600 = 0)
    FROM generate_series(p_from, p_to + 1, interval '1 day') AS d
$$;

CREATE FUNCTION report_totals(p_dimension text, p_from date, p_to date, p_tz text)
RETURNS TABLE (value text, views bigint)
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT ROWS 1000 AS $$
DECLARE
    lo timestamptz := p_from::timestamp AT TIME ZONE p_tz;
    hi timestamptz := (p_to + 1)::timestamp AT TIME ZONE p_tz;
    -- The UTC days wholly inside [lo, hi).
    days_lo timestamptz := date_trunc('day', lo, 'UTC') + CASE WHEN date_trunc('day', lo, 'UTC') < lo THEN interval '1 day' ELSE interval '0' END;
    days_hi timestamptz := greatest(date_trunc('day', hi, 'UTC'), days_lo);
BEGIN
    IF report_whole_hours(p_from, p_to, p_tz) THEN
        RETURN QUERY SELECT x.value COLLATE "default", sum(x.views)::bigint FROM (
            SELECT a.value, a.views FROM agg_page_views_day a
            WHERE a.dimension = p_dimension AND a.bucket >= days_lo AND a.bucket < days_hi
            UNION ALL
            SELECT a.value, a.views FROM agg_page_views_hour a
            WHERE a.dimension = p_dimension AND a.bucket >= lo AND a.bucket < days_lo
            UNION ALL
            SELECT a.value, a.views FROM agg_page_views_hour a
            WHERE a.dimension = p_dimension AND a.bucket >= days_hi AND a.bucket < hi) x
            GROUP BY x.value;
    ELSE
        RETURN QUERY SELECT f.value, sum(f.views)::bigint FROM report_facts(p_dimension, lo, hi) f
            GROUP BY f.value;
    END IF;
END
$$;

CREATE FUNCTION report_by_hour(p_dimension text, p_from date, p_to date, p_tz text)
RETURNS TABLE (value text, hour integer, views bigint)
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT ROWS 10000 AS $$
DECLARE
    lo timestamptz := p_from::timestamp AT TIME ZONE p_tz;
    hi timestamptz := (p_to + 1)::timestamp AT TIME ZONE p_tz;
BEGIN
    IF report_whole_hours(p_from, p_to, p_tz) THEN
        RETURN QUERY SELECT a.value COLLATE "default", extract(hour FROM a.bucket AT TIME ZONE p_tz)::integer,
                            sum(a.views)::bigint
            FROM agg_page_views_hour a
            WHERE a.dimension = p_dimension AND a.bucket >= lo AND a.bucket < hi
            GROUP BY 1, 2;
    ELSE
        RETURN QUERY SELECT f.value, extract(hour FROM f.bucket AT TIME ZONE p_tz)::integer,
                            sum(f.views)::bigint
            FROM report_facts(p_dimension, lo, hi) f GROUP BY 1, 2;
    END IF;
END
$$;

-- Unique visitors as before, counted by hashing the distinct devices (count(DISTINCT) sorts
-- them: over a month of a busy shop, several times slower).
CREATE OR REPLACE FUNCTION unique_visitors(p_from date, p_to date) RETURNS bigint
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT count(*) FROM (SELECT DISTINCT device_key FROM visitor_days WHERE day BETWEEN p_from AND p_to) d
$$;

-- [p_from, p_to] defaults to today in the report time zone.
CREATE FUNCTION report_range(p_from date, p_to date, p_tz text, OUT range_from date, OUT range_to date, OUT tz text)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT coalesce(p_from, p_to, (now() AT TIME ZONE z)::date),
           coalesce(p_to, p_from, (now() AT TIME ZONE z)::date), z
    FROM (SELECT coalesce(p_tz, report_timezone()) AS z) s
$$;

CREATE FUNCTION report_top_products_range(p_from date DEFAULT NULL, p_to date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (rank bigint, product_id text, product_label text, product_url text, views bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT row_number() OVER (ORDER BY t.views DESC, t.value), t.value, p.product_label,
           p.product_url, t.views
    FROM (SELECT a.value, a.views
          FROM report_range(p_from, p_to, p_tz) r, report_totals('product', r.range_from, r.range_to, r.tz) a
          ORDER BY a.views DESC, a.value LIMIT 10) t
         LEFT JOIN dim_product p ON p.product_id = t.value
    ORDER BY 1
$$;

CREATE FUNCTION report_top_countries_range(p_from date DEFAULT NULL, p_to date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (rank bigint, country_code text, country_name text, views bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT row_number() OVER (ORDER BY t.views DESC, t.value), t.value,
           (SELECT min(l.country_name) FROM dim_location l WHERE l.country_code = t.value), t.views
    FROM (SELECT a.value, a.views
          FROM report_range(p_from, p_to, p_tz) r, report_totals('country', r.range_from, r.range_to, r.tz) a
          ORDER BY a.views DESC, a.value LIMIT 10) t
    ORDER BY 1
$$;

CREATE FUNCTION report_top_referrers_range(p_from date DEFAULT NULL, p_to date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (rank bigint, referrer_domain text, medium text, views bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT row_number() OVER (ORDER BY sum(x.views) DESC, x.domain), x.domain, min(x.medium), sum(x.views)::bigint
    FROM (SELECT split_part(a.value, chr(31), 1) AS domain, split_part(a.value, chr(31), 2) AS medium, a.views
          FROM report_range(p_from, p_to, p_tz) r, report_totals('referrer', r.range_from, r.range_to, r.tz) a) x
    WHERE x.domain <> ''
    GROUP BY x.domain
    ORDER BY 1 LIMIT 5
$$;

CREATE FUNCTION report_store_performance_range(p_from date DEFAULT NULL, p_to date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (country_code text, store_id text, views bigint, rank_in_country bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT x.country_code, x.store_id, x.views,
           row_number() OVER (PARTITION BY x.country_code ORDER BY x.views DESC, x.store_id)
    FROM (SELECT split_part(a.value, chr(31), 1) AS country_code, split_part(a.value, chr(31), 2) AS store_id, a.views
          FROM report_range(p_from, p_to, p_tz) r, report_totals('country_store', r.range_from, r.range_to, r.tz) a) x
    ORDER BY sum(x.views) OVER (PARTITION BY x.country_code) DESC, x.country_code, 4
$$;

CREATE FUNCTION report_hourly_product_views_range(p_from date DEFAULT NULL, p_to date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (product_id text, product_label text, hour integer, views bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT a.value, p.product_label, a.hour, a.views
    FROM report_range(p_from, p_to, p_tz) r, report_by_hour('product', r.range_from, r.range_to, r.tz) a
         LEFT JOIN dim_product p ON p.product_id = a.value
    ORDER BY 1, 3
$$;

CREATE FUNCTION report_hourly_browser_os_range(p_from date DEFAULT NULL, p_to date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (hour integer, browser text, os text, views bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT a.hour, split_part(a.value, ' / ', 1), split_part(a.value, ' / ', 2), a.views
    FROM report_range(p_from, p_to, p_tz) r, report_by_hour('browser_os', r.range_from, r.range_to, r.tz) a
    ORDER BY 1, 4 DESC, 2, 3
$$;

-- A day's page views, as before this migration (the day's partitions only: the bounds are
-- known when the query starts).
CREATE FUNCTION report_page_views(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS SETOF fact_page_views LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT f.* FROM fact_page_views f,
         report_day_bounds(p_day, coalesce(p_tz, report_timezone())) b
    WHERE f.event_time >= b.day_start AND f.event_time < b.day_end
$$;

-- The reports of one day, as before this migration.
CREATE FUNCTION report_top_products(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (rank bigint, product_id text, product_label text, product_url text, views bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$ SELECT * FROM report_top_products_range(p_day, p_day, p_tz) $$;
CREATE FUNCTION report_top_countries(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (rank bigint, country_code text, country_name text, views bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$ SELECT * FROM report_top_countries_range(p_day, p_day, p_tz) $$;
CREATE FUNCTION report_top_referrers(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (rank bigint, referrer_domain text, medium text, views bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$ SELECT * FROM report_top_referrers_range(p_day, p_day, p_tz) $$;
CREATE FUNCTION report_store_performance(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (country_code text, store_id text, views bigint, rank_in_country bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$ SELECT * FROM report_store_performance_range(p_day, p_day, p_tz) $$;
CREATE FUNCTION report_hourly_product_views(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (product_id text, product_label text, hour integer, views bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$ SELECT * FROM report_hourly_product_views_range(p_day, p_day, p_tz) $$;
CREATE FUNCTION report_hourly_browser_os(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (hour integer, browser text, os text, views bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$ SELECT * FROM report_hourly_browser_os_range(p_day, p_day, p_tz) $$;

CREATE VIEW report_top_products_today AS SELECT * FROM report_top_products();
CREATE VIEW report_top_countries_today AS SELECT * FROM report_top_countries();
CREATE VIEW report_top_referrers_today AS SELECT * FROM report_top_referrers();
CREATE VIEW report_store_performance_today AS SELECT * FROM report_store_performance();
CREATE VIEW report_hourly_product_views_today AS SELECT * FROM report_hourly_product_views();
CREATE VIEW report_hourly_browser_os_today AS SELECT * FROM report_hourly_browser_os();
