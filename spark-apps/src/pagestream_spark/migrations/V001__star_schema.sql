-- The star schema. Runs with search_path set to the pipeline's schema.
--
-- Dimension keys are 64-bit hashes of the natural key, computed by the job (xxhash64), so
-- facts are written without lookups; dimensions are upserted from each batch.

CREATE TABLE dim_date (
    date_key     integer PRIMARY KEY,          -- yyyymmdd, UTC
    full_date    date NOT NULL UNIQUE,
    year         smallint NOT NULL,
    quarter      smallint NOT NULL,
    month        smallint NOT NULL,
    day_of_month smallint NOT NULL,
    day_of_week  smallint NOT NULL,            -- ISO: 1 = Monday
    iso_week     smallint NOT NULL,
    is_weekend   boolean NOT NULL
);

CREATE TABLE dim_time_of_day (
    time_key    smallint PRIMARY KEY,          -- minute of the day, 0..1439, UTC
    hour        smallint NOT NULL,
    minute      smallint NOT NULL,
    day_period  text NOT NULL                  -- night, morning, afternoon, evening
);

INSERT INTO dim_time_of_day (time_key, hour, minute, day_period)
SELECT m, m / 60, m % 60,
       CASE WHEN m / 60 < 6 THEN 'night' WHEN m / 60 < 12 THEN 'morning'
            WHEN m / 60 < 18 THEN 'afternoon' ELSE 'evening' END
FROM generate_series(0, 1439) AS m;

CREATE TABLE dim_product (
    product_key bigint PRIMARY KEY,
    product_id  text NOT NULL UNIQUE
);

CREATE TABLE dim_store (
    store_key bigint PRIMARY KEY,
    store_id  text NOT NULL UNIQUE
);

CREATE TABLE dim_location (
    location_key bigint PRIMARY KEY,
    country_code text NOT NULL,                -- ISO 3166 alpha-2; ZZ when unknown
    country_name text NOT NULL,
    region       text NOT NULL DEFAULT '',
    city         text NOT NULL DEFAULT '',
    UNIQUE (country_code, region, city)
);

CREATE TABLE dim_user_agent (
    user_agent_key  bigint PRIMARY KEY,
    browser         text NOT NULL,
    browser_version text NOT NULL DEFAULT '',
    os              text NOT NULL,
    os_version      text NOT NULL DEFAULT '',
    device_class    text NOT NULL,             -- desktop, mobile, tablet, bot, other
    is_bot          boolean NOT NULL,
    UNIQUE (browser, browser_version, os, os_version, device_class, is_bot)
);

CREATE TABLE dim_referrer (
    referrer_key bigint PRIMARY KEY,
    domain       text NOT NULL DEFAULT '',     -- '' for direct traffic
    medium       text NOT NULL,                -- search, social, internal, direct, other
    UNIQUE (domain, medium)
);

CREATE TABLE dim_campaign (
    campaign_key bigint PRIMARY KEY,
    source       text NOT NULL DEFAULT '',
    medium       text NOT NULL DEFAULT '',
    name         text NOT NULL DEFAULT '',
    term         text NOT NULL DEFAULT '',
    content      text NOT NULL DEFAULT '',
    UNIQUE (source, medium, name, term, content)
);

-- Every distinct valid event id ever accepted, whatever became of it (page view, other event,
-- bot). Deduplication across micro-batches, restarts and replays checks here.
CREATE TABLE event_ids (
    event_id   text PRIMARY KEY,
    event_time timestamptz NOT NULL
);

CREATE TABLE fact_page_views (
    event_id       text NOT NULL,              -- unique through event_ids
    event_time     timestamptz NOT NULL,
    date_key       integer NOT NULL REFERENCES dim_date,
    time_key       smallint NOT NULL REFERENCES dim_time_of_day,
    product_key    bigint NOT NULL REFERENCES dim_product,
    store_key      bigint NOT NULL REFERENCES dim_store,
    location_key   bigint NOT NULL REFERENCES dim_location,
    user_agent_key bigint NOT NULL REFERENCES dim_user_agent,
    referrer_key   bigint NOT NULL REFERENCES dim_referrer,
    campaign_key   bigint NOT NULL REFERENCES dim_campaign,
    device_id      text NOT NULL,
    visitor_id     bigint NOT NULL,            -- daily-salted hash, not linkable across days
    user_id_db     text,
    email_hash     text,                       -- keyed HMAC; the address is never stored
    ip_anonymized  text,
    page_path      text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset   bigint NOT NULL,
    batch_id       bigint NOT NULL
);
CREATE INDEX fact_page_views_event_time ON fact_page_views (event_time);

-- Valid events of every other type (add to cart, listing pages, checkout, ...).
CREATE TABLE fact_other_events (
    event_id       text NOT NULL,
    collection     text NOT NULL,
    event_time     timestamptz NOT NULL,
    date_key       integer NOT NULL REFERENCES dim_date,
    time_key       smallint NOT NULL REFERENCES dim_time_of_day,
    product_key    bigint REFERENCES dim_product,
    store_key      bigint NOT NULL REFERENCES dim_store,
    location_key   bigint NOT NULL REFERENCES dim_location,
    user_agent_key bigint NOT NULL REFERENCES dim_user_agent,
    referrer_key   bigint NOT NULL REFERENCES dim_referrer,
    campaign_key   bigint NOT NULL REFERENCES dim_campaign,
    device_id      text NOT NULL,
    visitor_id     bigint NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset   bigint NOT NULL,
    batch_id       bigint NOT NULL
);
CREATE INDEX fact_other_events_event_time ON fact_other_events (event_time);

-- Events from crawlers: counted and kept for inspection, out of every human metric.
CREATE TABLE bot_events (
    event_id        text NOT NULL,
    collection      text NOT NULL,
    event_time      timestamptz NOT NULL,
    user_agent_key  bigint NOT NULL REFERENCES dim_user_agent,
    store_key       bigint NOT NULL REFERENCES dim_store,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    batch_id        bigint NOT NULL
);

CREATE TABLE dead_letters (
    kafka_topic     text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    kafka_timestamp timestamptz,
    reason          text NOT NULL CHECK (reason IN ('oversize', 'parse_error', 'schema_violation', 'invalid_timestamp')),
    detail          text NOT NULL,
    payload         bytea NOT NULL,            -- the record's bytes exactly as consumed
    batch_id        bigint NOT NULL,
    PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset)
);
CREATE INDEX dead_letters_reason ON dead_letters (reason);

-- Records whose event id was already accepted (producer retries, replays).
CREATE TABLE duplicate_records (
    kafka_topic     text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    event_id        text NOT NULL,
    batch_id        bigint NOT NULL,
    PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset)
);

-- Page-view rollups for dashboards, one row per (grain, bucket, dimension, value). Kept in the
-- same transaction as the facts, from the facts just inserted, so they always agree with
-- fact_page_views, late events included.
CREATE TABLE agg_page_views (
    grain     text NOT NULL CHECK (grain IN ('minute', 'hour')),
    bucket    timestamptz NOT NULL,
    dimension text NOT NULL CHECK (dimension IN ('total', 'product', 'store', 'country', 'referrer_medium', 'browser_os')),
    value     text NOT NULL,
    views     bigint NOT NULL,
    PRIMARY KEY (grain, bucket, dimension, value)
);

-- One row per device seen on a day: unique visitors over any date range are
-- count(DISTINCT device_key) over the range, never a sum of daily uniques.
CREATE TABLE visitor_days (
    day        date NOT NULL,
    device_key bigint NOT NULL,
    PRIMARY KEY (day, device_key)
);

-- One row per committed micro-batch: the idempotence key of the sink (a replayed batch finds
-- its row and is skipped) and the accounting of every consumed record.
CREATE TABLE batch_commits (
    query_id          text NOT NULL,
    batch_id          bigint NOT NULL,
    consumed          bigint NOT NULL,
    page_views        bigint NOT NULL,
    other_events      bigint NOT NULL,
    duplicates        bigint NOT NULL,
    dead_lettered     bigint NOT NULL,
    bots              bigint NOT NULL,
    max_event_time    timestamptz,
    committed_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (query_id, batch_id),
    CHECK (consumed = page_views + other_events + duplicates + dead_lettered + bots)
);
