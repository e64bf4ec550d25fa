-- Each product's current page URL and a readable label, kept by the sink from the page views
-- (docs/streaming-job.md, "Product pages and labels"): the newest product page by event time
-- on the shop host the product was first seen on. A late page view, a page on another host
-- and a URL that is no product page never replace it. NULL until the product's first page
-- view after this migration (earlier facts keep no host, so nothing is backfilled).
ALTER TABLE dim_product
    ADD COLUMN product_url    text COLLATE "C",
    ADD COLUMN product_label  text,
    ADD COLUMN url_host       text COLLATE "C",
    ADD COLUMN url_event_time timestamptz,
    ADD CONSTRAINT dim_product_page_complete CHECK (
        (product_url IS NULL) = (product_label IS NULL)
        AND (product_url IS NULL) = (url_host IS NULL)
        AND (product_url IS NULL) = (url_event_time IS NULL)
    );

COMMENT ON COLUMN dim_product.product_url IS
    'Canonical URL (scheme://host/path, no query) of the newest product page viewed on url_host';
COMMENT ON COLUMN dim_product.product_label IS
    'Readable label from product_url''s last path segment (no extension, no trailing sku/id, words capitalised)';
COMMENT ON COLUMN dim_product.url_host IS
    'The shop host (without www.) the product''s URL is pinned to: the first it was seen on';
COMMENT ON COLUMN dim_product.url_event_time IS
    'Event time of the page view product_url comes from; the URL only moves to later ones';

-- The product reports show the label (and the top products their URL). A function's result
-- type cannot be replaced in place: drop it and the view over it, then create both again.
DROP VIEW report_top_products_today;
DROP VIEW report_hourly_product_views_today;
DROP FUNCTION report_top_products(date, text);
DROP FUNCTION report_hourly_product_views(date, text);

CREATE FUNCTION report_top_products(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (rank bigint, product_id text, product_label text, product_url text, views bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT row_number() OVER (ORDER BY count(*) DESC, p.product_id), p.product_id,
           p.product_label, p.product_url, count(*)
    FROM report_page_views(p_day, p_tz) f JOIN dim_product p USING (product_key)
    GROUP BY p.product_key
    ORDER BY 1 LIMIT 10
$$;

CREATE FUNCTION report_hourly_product_views(p_day date DEFAULT NULL, p_tz text DEFAULT NULL)
RETURNS TABLE (product_id text, product_label text, hour integer, views bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT p.product_id, p.product_label,
           extract(hour FROM f.event_time AT TIME ZONE coalesce(p_tz, report_timezone()))::integer,
           count(*)
    FROM report_page_views(p_day, p_tz) f JOIN dim_product p USING (product_key)
    GROUP BY p.product_key, 3
    ORDER BY 1, 3
$$;

CREATE VIEW report_top_products_today AS SELECT * FROM report_top_products();
CREATE VIEW report_hourly_product_views_today AS SELECT * FROM report_hourly_product_views();
