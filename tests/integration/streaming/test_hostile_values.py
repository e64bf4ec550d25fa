"""Values the contract allows but no simulator writes (odd IPs, broken URLs, huge query strings,
emoji ids, NUL escapes, text at its length limits) go through validation, enrichment and the
real PostgreSQL sink: every such record is stored, none fails its batch, and what is stored
fits the schema (dimension rows exist for every key, no raw IP or e-mail is kept).

The Python pass runs in-process here (``packed_sink_batches`` is the function each Spark task
runs); the sink writes to the real server. Captured traffic is judged on exactly this: accept
what the contract allows, and never crash on a record."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator

import psycopg2
import pyarrow as pa
import pytest

from pagestream.stack.postgres import Postgres
from pagestream_common.contract import MAX_FUTURE_SKEW_SECONDS, MAX_RECORD_BYTES, MIN_EVENT_EPOCH
from pagestream_simulator.generator import EventGenerator, GeneratorConfig
from pagestream_spark.migrate import migrate
from pagestream_spark.options import ProcessingOptions
from pagestream_spark.sink import BatchLedger, PostgresConnection, PostgresSink
from pagestream_spark.transform import packed_sink_batches, unpack_sink_rows

NOW = int(time.time())

# Every value is within the contract (types and lengths of event.schema.json).
HOSTILE: dict[str, list[object]] = {
    "ip": [
        "::",
        "::1",
        "fe80::1%eth0",
        "::ffff:192.0.2.1",
        "1.2.3",
        "999.999.999.999",
        "0.0.0.0",
        "255.255.255.255",
        "abc",
        "1.2.3.4:80",
        "[2001:db8::1]",
        "2001:db8::1/64",
        " 1.2.3.4 ",
        "\uff11.\uff12.\uff13.\uff14",
        "1.2.3.4\n",
        "\u0000\u0000",
        "01.02.03.004",
        "1.2.3.4.5",
        "::ffff:999.1.1.1",
        "0x7f.1",
        "ab",
        "\U0001f600\U0001f600",
        "fe80::1%" + "e" * 30,
    ],
    "current_url": [
        "http://[::1",
        "https://",
        "//evil",
        "javascript:alert(1)",
        "http://a.b/" + "x" * 4000,
        "http://" + "a" * 300 + ".com/",
        "http://xn--mnchen-3ya.de/",
        "http://m\u00fcnchen.de/\u00fc?utm_source=" + "s" * 4000,
        "http://host:99999/",
        "http://user:pass@host/",
        "mailto:x@y",
        "http://%zz/",
        "http://[::1]:80/p?x=%ff%fe",
        "?utm_campaign=a&utm_campaign=b",
        "http://a.com/?utm_source=%00x",
        "http://a.com/#frag?utm_source=x",
        "http://a.com/?utm_term=" + "%F0%9F%98%80" * 300,
        "http://a.com/?" + "&".join(f"k{i}=v" for i in range(500)),
        " ",
        "\t",
        "http://a.com/?utm_content=" + "\u00e9" * 2000,
        "http://[fe80::1%25eth0]/",
        "HTTP://A.COM/P",
        "http://a.com/p;x?y",
        "http://a.com/\u202e",
        "file:///etc/passwd",
        "http://a.com/?utm_source=a%2",
        "http://" + "\u00fc" * 200 + ".de/x",
    ],
    "referrer_url": [
        "http://[::1",
        "https://",
        "android-app://com.google.android.gm",
        "http://" + "a." * 1500 + "com",
        "https://www.google." + "x" * 3000,
        "http://%zz/",
        "https://t.co/",
        "x",
        "http://m\u00fcnchen.de/",
        "http://[::1]:99999/",
        "http://user@:80",
        "https://" + "\U0001f600" * 500 + ".com",
        "android-app://" + "p" * 3000,
        "ios-app://123/x",
        "http://a.com:abc/",
        "//google.com/",
        "\u0000",
    ],
    "user_agent": [
        "",
        " ",
        "x" * 2048,
        "Mozilla/5.0 (" * 150,
        "\u202e",
        "\U0001f600" * 1000,
        "\t\r\n",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/"
        + "9" * 1800
        + " Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS " + "1_" * 900 + " like Mac OS X)",
    ],
    "email_address": ["a@b", "@", "x" * 254 + "@y", "\u00fc@\u00fc.de", " A@B.COM ", "x" * 4000],
    "device_id": ["x" * 128, "\u00fc" * 128, "\U0001f600" * 128, " ", "\u0000d", "\u0000"],
    "store_id": ["\U0001f600" * 16, " ", "0", "x" * 16],
    "product_id": [" ", "0" * 32, "\U0001f600" * 32, "\u202e"],
    "utm_source": ["x" * 4096, "\U0001f600" * 4000, " ", "A B"],
    "utm_medium": ["x" * 4096, "CPC"],
    "resolution": ["x" * 4096, "99999999x99999999", "-1x-1"],
    "local_time": ["2024-13-45", "9999-99-99", "x" * 4096, "0000-00-00 00:00:00"],
    "user_id_db": ["x" * 4096, "-1"],
    "api_version": ["x" * 4096],
    "collection": ["\U0001f600", "x" * 64, "VIEW_PRODUCT_DETAIL", "view_product_detail "],
    "time_stamp": [MIN_EVENT_EPOCH, NOW + MAX_FUTURE_SKEW_SECONDS - 60, 1_000_000_000.0],
    "option": [[], {}, [{"option_id": None, "value_label": "\U0001f600" * 100}] * 50],
}
# Ids are unique per record; these are used once each.
HOSTILE_IDS = ["\U0001f600" * 64, " ", "x" * 64, "\u0000x", 'a\\b"c']


def base_events(count: int) -> list[dict[str, object]]:
    generator = EventGenerator(GeneratorConfig(seed=5, start_time=NOW - 3600, sim_rate=50))
    return [dict(event) for *_, event in generator.take(count)]


def hostile_records() -> list[bytes]:
    rng = random.Random(5)
    events = base_events(3000)
    views = [e for e in events if e["collection"] == "view_product_detail"]
    out: list[dict[str, object]] = []
    # Each hostile value alone, on page views and on other events.
    for field, values in HOSTILE.items():
        for value in values:
            for event in rng.sample(views, 2) + rng.sample(events, 2):
                out.append({**event, field: value})
    # Several at once.
    for _ in range(3000):
        event = dict(rng.choice(events))
        for field in rng.sample(sorted(HOSTILE), 4):
            event[field] = rng.choice(HOSTILE[field])
        out.append(event)
    for index, event in enumerate(out):
        event["id"] = f"hostile-{index}"
    for value in HOSTILE_IDS:
        out.append({**rng.choice(views), "id": value})
    records = [json.dumps(event, ensure_ascii=False).encode() for event in out]
    assert all(len(record) <= MAX_RECORD_BYTES for record in records)
    return records


def kafka_batches(records: list[bytes], size: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, len(records), size):
        chunk = records[start : start + size]
        yield pa.RecordBatch.from_pydict(
            {
                "value": pa.array(chunk, pa.binary()),
                "topic": pa.array(["hostile"] * len(chunk)),
                "partition": pa.array([0] * len(chunk), pa.int32()),
                "offset": pa.array(range(start, start + len(chunk)), pa.int64()),
                "timestamp": pa.array([NOW * 1_000_000] * len(chunk), pa.timestamp("us")),
            }
        )


@pytest.fixture
def schema(postgres: Postgres) -> Iterator[str]:
    name = f"h_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg2.connect(postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    conn.close()


def test_every_contract_valid_oddity_is_stored_and_no_batch_fails(
    postgres: Postgres, schema: str
) -> None:
    records = hostile_records()
    conn = psycopg2.connect(postgres.dsn())
    try:
        migrate(conn, schema)
        options = ProcessingOptions(pii_key=b"k", anonymize_ip=True, hash_email=True)
        connection = PostgresConnection(lambda: psycopg2.connect(postgres.dsn()), schema, conn=conn)
        sink = PostgresSink(connection, BatchLedger("hostile"), options)
        stored = 0
        for batch_id, raw in enumerate(kafka_batches(records, 2000)):
            packed = packed_sink_batches(iter([raw]), now=NOW, options=options)
            outcome = sink.commit_batch(batch_id, unpack_sink_rows(pa.Table.from_batches(packed)))
            assert outcome is not None
            assert outcome.dead_letters_by_reason == {}, outcome.dead_letters_by_reason
            assert outcome.duplicates == 0
            assert outcome.consumed == raw.num_rows
            stored += outcome.page_views + outcome.other_events + outcome.bots
        assert stored == len(records)

        with conn.cursor() as cur:
            cur.execute(f"SET search_path TO {schema}")
            cur.execute(
                "SELECT (SELECT count(*) FROM fact_page_views) + (SELECT count(*) FROM "
                "fact_other_events) + (SELECT count(*) FROM bot_events)"
            )
            assert cur.fetchone()[0] == len(records)
            # Every key of every stored page view has its dimension row.
            cur.execute(
                "SELECT count(*) FROM fact_page_views f"
                " JOIN dim_product USING (product_key) JOIN dim_store USING (store_key)"
                " JOIN dim_location USING (location_key) JOIN dim_user_agent USING (user_agent_key)"
                " JOIN dim_referrer USING (referrer_key) JOIN dim_campaign USING (campaign_key)"
                " JOIN dim_date USING (date_key) JOIN dim_time_of_day USING (time_key)"
            )
            joined = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM fact_page_views")
            assert joined == cur.fetchone()[0] > 0
            # Aggregates agree with the facts.
            cur.execute(
                "SELECT sum(views) FROM agg_page_views WHERE grain = 'hour' AND dimension = 'total'"
            )
            assert cur.fetchone()[0] == joined
            # Raw personal data never reaches a table.
            cur.execute(
                "SELECT count(*) FROM fact_page_views WHERE ip_anonymized IN ('::ffff:192.0.2.1',"
                " '1.2.3.4') OR email_hash LIKE '%@%'"
            )
            assert cur.fetchone()[0] == 0
    finally:
        conn.close()
