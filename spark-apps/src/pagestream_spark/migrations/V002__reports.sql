-- The six analytics reports, as SQL functions of a day (default: today in the report time
-- zone) and as views for today. Days are calendar days in the time zone, DST included.
-- Functions pin the search_path they were created with, so callers need not set it.

CREATE TABLE pipeline_settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO pipeline_settings VALUES ('report_timezone', 'UTC');

CREATE FUNCTION report_timezone() RETURNS text LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT coalesce((SELECT value FROM pipeline_settings WHERE key = 'report_timezone'), 'UTC')
$$;

-- [start, end) of a calendar day in a time zone, as timestamptz.
CREATE FUNCTION report_day_bounds(p_day date, p_tz text, OUT day_start timestamptz, OUT day_end timestamptz)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT (d::timestamp AT TIME ZONE p_tz), ((d + 1)::timestamp AT TIME ZONE p_tz)
    FROM (SELECT coalesce(p_day, (now() AT TIME ZONE p_tz)::date) AS d) s
$$;

CREATE FUNCTION report_page_views(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS SETOF fact_page_views LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT f.* FROM fact_page_views f,
         report_day_bounds(p_day, coalesce(p_tz, report_timezone())) b
    WHERE f.event_time >= b.day_start AND f.event_time < b.day_end
$$;

CREATE FUNCTION report_top_products(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (rank bigint, product_id text, views bigint) LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT row_number() OVER (ORDER BY count(*) DESC, p.product_id), p.product_id, count(*)
    FROM report_page_views(p_day, p_tz) f JOIN dim_product p USING (product_key)
    GROUP BY p.product_id
    ORDER BY 1 LIMIT 10
$$;

CREATE FUNCTION report_top_countries(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (rank bigint, country_code text, country_name text, views bigint) LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT row_number() OVER (ORDER BY count(*) DESC, l.country_code), l.country_code,
           min(l.country_name), count(*)
    FROM report_page_views(p_day, p_tz) f JOIN dim_location l USING (location_key)
    GROUP BY l.country_code
    ORDER BY 1 LIMIT 10
$$;

CREATE FUNCTION report_top_referrers(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (rank bigint, referrer_domain text, medium text, views bigint) LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT row_number() OVER (ORDER BY count(*) DESC, r.domain), r.domain, min(r.medium), count(*)
    FROM report_page_views(p_day, p_tz) f JOIN dim_referrer r USING (referrer_key)
    WHERE r.domain <> ''
    GROUP BY r.domain
    ORDER BY 1 LIMIT 5
$$;

CREATE FUNCTION report_store_performance(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (country_code text, store_id text, views bigint, rank_in_country bigint) LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT l.country_code, s.store_id, count(*),
           row_number() OVER (PARTITION BY l.country_code ORDER BY count(*) DESC, s.store_id)
    FROM report_page_views(p_day, p_tz) f
         JOIN dim_store s USING (store_key)
         JOIN dim_location l USING (location_key)
    GROUP BY l.country_code, s.store_id
    ORDER BY sum(count(*)) OVER (PARTITION BY l.country_code) DESC, l.country_code, 4
$$;

CREATE FUNCTION report_hourly_product_views(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (product_id text, hour integer, views bigint) LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT p.product_id,
           extract(hour FROM f.event_time AT TIME ZONE coalesce(p_tz, report_timezone()))::integer,
           count(*)
    FROM report_page_views(p_day, p_tz) f JOIN dim_product p USING (product_key)
    GROUP BY 1, 2
    ORDER BY 1, 2
$$;

CREATE FUNCTION report_hourly_browser_os(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (hour integer, browser text, os text, views bigint) LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT extract(hour FROM f.event_time AT TIME ZONE coalesce(p_tz, report_timezone()))::integer,
           u.browser, u.os, count(*)
    FROM report_page_views(p_day, p_tz) f JOIN dim_user_agent u USING (user_agent_key)
    GROUP BY 1, 2, 3
    ORDER BY 1, 4 DESC, 2, 3
$$;

CREATE VIEW report_top_products_today AS SELECT * FROM report_top_products();
CREATE VIEW report_top_countries_today AS SELECT * FROM report_top_countries();
CREATE VIEW report_top_referrers_today AS SELECT * FROM report_top_referrers();
CREATE VIEW report_store_performance_today AS SELECT * FROM report_store_performance();
CREATE VIEW report_hourly_product_views_today AS SELECT * FROM report_hourly_product_views();
CREATE VIEW report_hourly_browser_os_today AS SELECT * FROM report_hourly_browser_os();

-- Unique visitors over any range of days: distinct devices, not a sum of daily counts.
CREATE FUNCTION unique_visitors(p_from date, p_to date) RETURNS bigint LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT count(DISTINCT device_key) FROM visitor_days WHERE day BETWEEN p_from AND p_to
$$;
