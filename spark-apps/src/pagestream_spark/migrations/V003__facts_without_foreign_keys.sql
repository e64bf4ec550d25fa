-- Foreign keys on the fact tables cost one trigger-driven index probe per dimension per row
-- (eight per page view), the largest single cost of a batch's commit. The sink upserts every
-- dimension row before the facts that point at it, in the same transaction, so the references
-- hold without them; the columns stay documented as dimension keys.
ALTER TABLE fact_page_views
    DROP CONSTRAINT IF EXISTS fact_page_views_date_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_page_views_time_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_page_views_product_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_page_views_store_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_page_views_location_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_page_views_user_agent_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_page_views_referrer_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_page_views_campaign_key_fkey;

ALTER TABLE fact_other_events
    DROP CONSTRAINT IF EXISTS fact_other_events_date_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_other_events_time_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_other_events_product_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_other_events_store_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_other_events_location_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_other_events_user_agent_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_other_events_referrer_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_other_events_campaign_key_fkey;

ALTER TABLE bot_events
    DROP CONSTRAINT IF EXISTS bot_events_user_agent_key_fkey,
    DROP CONSTRAINT IF EXISTS bot_events_store_key_fkey;

COMMENT ON TABLE fact_page_views IS
    'One row per distinct valid human page view. *_key columns reference the dim_* tables (kept by the sink, not by foreign keys; see V003).';

-- Event ids are opaque tokens: compare them byte-wise. The database's default collation
-- (locale-aware) made every dedup probe of a batch several times slower.
ALTER TABLE event_ids ALTER COLUMN event_id TYPE text COLLATE "C";
