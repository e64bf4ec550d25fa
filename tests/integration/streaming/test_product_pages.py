"""Each product's page URL and label in dim_product, the reports and ``pagestream report``, on the
real stack: the newest product page by event time on the host the product was first seen on; a
late page view, a page on another host and a URL that is no product page never change it.

The first test runs the real job (Spark local mode) against the real Kafka and PostgreSQL, one
micro-batch per step. The others drive the sink in-process (the Python pass each Spark task runs,
then ``PostgresSink``) against the real PostgreSQL, to show that the result does not depend on
how events are cut into batches or in which order the batches come, and that a replayed batch
changes nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pyarrow as pa
import pytest

from pagestream.stack.kafka import Kafka
from pagestream.stack.postgres import Postgres
from pagestream_common.contract import PAGE_VIEW
from pagestream_spark.migrate import migrate
from pagestream_spark.options import ProcessingOptions
from pagestream_spark.sink import BatchLedger, PostgresConnection, PostgresSink
from pagestream_spark.transform import packed_sink_batches, unpack_sink_rows

from .conftest import JobRun, produce

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
PRODUCT = "770001"
OTHER_PRODUCT = "770002"  # only ever in an add-to-cart event
DE = "https://www.lumera.de"
FR = "https://www.lumera.fr"
LUNO = f"{DE}/lumera-ring-luno-skum770001.html"
ROYAL = f"{DE}/lumera-ring-luna-royal-skum770001.html"
OLD_NAME = f"{DE}/lumera-ring-old-name-skum770001.html"
ODD_URLS = [
    f"{DE}/engagement-rings/",  # a listing page
    f"{DE}/",  # the home page
    f"{FR}/lumera-bague-luna-skum770001.html",  # another store's host
    "https://www-lumera-de.translate.goog/lumera-ring-proxy-skum770001.html?_x_tr_sl=de",
    "http://192.0.2.1/lumera-ring-by-ip-skum770001.html",
    f"{DE}/p/770001.html",  # no word to make a label of
]
# Yesterday noon (UTC): every event of the test is on one calendar day, in the past.
BASE = int(
    dt.datetime.combine(
        dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1), dt.time(12), dt.UTC
    ).timestamp()
)
PAGE = "SELECT product_url, product_label, url_host, extract(epoch FROM url_event_time)::bigint FROM dim_product WHERE product_id = %s"

pytestmark = [pytest.mark.postgres]


def event(
    at: int,
    url: str,
    *,
    collection: str = PAGE_VIEW,
    product: str | None = PRODUCT,
    user_agent: str = CHROME,
) -> dict[str, object]:
    fields: dict[str, object] = {
        "id": uuid.uuid4().hex[:24],
        "time_stamp": at,
        "ip": "84.128.0.1",
        "user_agent": user_agent,
        "device_id": "device-1",
        "store_id": "6" if url.startswith(FR) else "1",
        "current_url": url,
        "referrer_url": "",
        "collection": collection,
    }
    if product is not None:
        fields["product_id"] = product
    return fields


def records(events: list[dict[str, object]]) -> list[tuple[bytes | None, bytes]]:
    return [(b"device-1", json.dumps(e).encode()) for e in events]


# The story of one product, one batch a step: (events, the page dim_product holds after them).
STEPS: list[tuple[str, list[dict[str, object]], tuple[str, str, str, int]]] = [
    (
        "first page views: seen on the German store first, a later French view stays out",
        [
            event(BASE + 100, LUNO + "?alloy=white-375"),
            event(BASE + 110, LUNO + "?alloy=red-585&gclid=abc"),
            event(BASE + 200, f"{FR}/lumera-bague-luno-skum770001.html"),
            event(
                BASE + 120,
                f"{DE}/checkout/cart/",
                collection="add_to_cart_action",
                product=OTHER_PRODUCT,
            ),
        ],
        (LUNO, "Lumera Ring Luno", "lumera.de", BASE + 110),
    ),
    (
        "a newer URL on its host replaces it",
        [event(BASE + 2000, ROYAL)],
        (ROYAL, "Lumera Ring Luna Royal", "lumera.de", BASE + 2000),
    ),
    (
        "a late page view with an older time never does",
        [event(BASE + 1500, OLD_NAME)],
        (ROYAL, "Lumera Ring Luna Royal", "lumera.de", BASE + 2000),
    ),
    (
        "nor do odd URLs, a crawler's view or another kind of event, however new",
        [event(BASE + 3000 + i, url) for i, url in enumerate(ODD_URLS)]
        + [
            event(BASE + 3100, f"{DE}/lumera-ring-crawled-skum770001.html", user_agent=GOOGLEBOT),
            event(
                BASE + 3200,
                f"{DE}/lumera-ring-option-skum770001.html?alloy=white-375",
                collection="select_product_option",
            ),
        ],
        (ROYAL, "Lumera Ring Luna Royal", "lumera.de", BASE + 2000),
    ),
    (
        "the same page viewed later moves its time forward, the label stays",
        [event(BASE + 4000, ROYAL + "?ringsize=52")],
        (ROYAL, "Lumera Ring Luna Royal", "lumera.de", BASE + 4000),
    ),
    (
        "so a page view older than that but newer than the replaced one is late too",
        [event(BASE + 3500, OLD_NAME)],
        (ROYAL, "Lumera Ring Luna Royal", "lumera.de", BASE + 4000),
    ),
]
# The product's human page views over all steps (the crawler's and the option event are no
# page views): each counts, whatever its URL.
PAGE_VIEWS = sum(
    1
    for _, events, _ in STEPS
    for e in events
    if e["collection"] == PAGE_VIEW and e["user_agent"] == CHROME and e["product_id"] == PRODUCT
)


@pytest.mark.spark
@pytest.mark.kafka
def test_the_job_keeps_the_newest_good_page_and_a_stable_label(
    job_run: JobRun, kafka: Kafka, postgres: Postgres, tmp_path: Path
) -> None:
    run = job_run
    proc = run.start()
    sent = 0
    for step, events, expected in STEPS:
        produce(kafka, run.topic, records(events))
        sent += len(events)
        run.wait_consumed(sent, timeout=300, proc=proc)  # one step, one or more batches
        assert run.query(PAGE, (PRODUCT,)) == [expected], step
    assert run.query(PAGE, (OTHER_PRODUCT,)) == [(None, None, None, None)]

    # Every page view counts, whatever its URL; the report shows the label and the URL.
    day = dt.datetime.fromtimestamp(BASE, dt.UTC).date()
    top = run.query("SELECT * FROM report_top_products(%s, 'UTC')", (day,))
    assert top == [(1, PRODUCT, "Lumera Ring Luna Royal", ROYAL, PAGE_VIEWS)]
    hourly = run.query(
        "SELECT product_id, product_label, sum(views) FROM report_hourly_product_views(%s, 'UTC')"
        " GROUP BY 1, 2",
        (day,),
    )
    assert hourly == [(PRODUCT, "Lumera Ring Luna Royal", PAGE_VIEWS)]

    # `pagestream report` prints the label.
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "pagestream",
            "report",
            "top-products",
            "--day",
            day.isoformat(),
            "--tz",
            "UTC",
            "--postgres-url",
            postgres.url(),
            "--schema",
            run.schema,
        ],
        env={**os.environ, "PAGESTREAM_STATE_DIR": str(tmp_path), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    (line,) = [line for line in report.stdout.splitlines() if PRODUCT in line]
    assert "Lumera Ring Luna Royal" in line, report.stdout
    assert ROYAL in line, report.stdout
    assert "product_label" in report.stdout


# --- the sink in-process: batches cut and ordered differently, replays --------------------------

NOW = int(time.time())
OPTIONS = ProcessingOptions(pii_key=b"k", anonymize_ip=True, hash_email=True)


def story(seed: int) -> list[dict[str, object]]:
    """Many page views of a few products on three hosts, some odd, some late, some at the same
    second with different URLs (the tie goes to the greater URL)."""
    rng = random.Random(seed)
    hosts = [DE, FR, "https://lumera.de"]
    events = []
    for i in range(600):
        product = f"88{rng.randint(0, 9):04d}"
        at = BASE + rng.randint(0, 40) * 60 + rng.choice([0, 0, 1])
        slug = rng.choice(["luno", "luna-royal", "old-name", "mira"])
        url = f"{rng.choice(hosts)}/lumera-ring-{slug}-skum{product}.html"
        if rng.random() < 0.2:
            url = rng.choice(ODD_URLS)
        if rng.random() < 0.3:
            url += "?alloy=white-375"
        kind = PAGE_VIEW if rng.random() < 0.85 else "select_product_option"
        e = event(at, url, collection=kind, product=product)
        e["id"] = f"story-{seed}-{i:04d}"
        events.append(e)
    return events


def sink_rows(events: list[dict[str, object]], offset: int) -> pa.Table:
    values = [json.dumps(e).encode() for e in events]
    raw = pa.RecordBatch.from_pydict(
        {
            "value": pa.array(values, pa.binary()),
            "topic": pa.array(["pages"] * len(values)),
            "partition": pa.array([0] * len(values), pa.int32()),
            "offset": pa.array(range(offset, offset + len(values)), pa.int64()),
            "timestamp": pa.array([NOW * 1_000_000] * len(values), pa.timestamp("us")),
        }
    )
    packed = packed_sink_batches(iter([raw]), now=NOW, options=OPTIONS)
    return unpack_sink_rows(pa.Table.from_batches(packed))


class Pipeline:
    """A schema of its own and a sink writing to it, as the job's driver has them."""

    def __init__(self, postgres: Postgres) -> None:
        self.postgres = postgres
        self.schema = f"p_{uuid.uuid4().hex[:8]}"
        self.conn = psycopg2.connect(postgres.dsn())
        migrate(self.conn, self.schema)
        self.sink = self.new_sink()

    def new_sink(self) -> PostgresSink:
        """A sink as a restarted driver has it: nothing in its caches."""
        connection = PostgresConnection(
            lambda: psycopg2.connect(self.postgres.dsn()), self.schema, conn=self.conn
        )
        return PostgresSink(connection, BatchLedger("pages"), OPTIONS)

    def products(self) -> list[tuple[object, ...]]:
        with self.conn, self.conn.cursor() as cur:
            cur.execute(
                f"SELECT product_id, product_url, product_label, url_host, url_event_time"
                f" FROM {self.schema}.dim_product ORDER BY product_id"
            )
            return cur.fetchall()

    def drop(self) -> None:
        with self.conn, self.conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self.conn.close()


@pytest.fixture
def pipelines(postgres: Postgres) -> Iterator[list[Pipeline]]:
    made: list[Pipeline] = []
    yield made
    for pipeline in made:
        pipeline.drop()


def test_the_pages_do_not_depend_on_batches_or_their_order_once_each_host_is_pinned(
    postgres: Postgres, pipelines: list[Pipeline]
) -> None:
    events = story(seed=1)
    # The first batch pins every product to a host; what follows may come in any cut and order.
    first, rest = events[:200], events[200:]
    results = []
    for cut in (1, 7, 50, 400):
        pipeline = Pipeline(postgres)
        pipelines.append(pipeline)
        assert pipeline.sink.commit_batch(0, sink_rows(first, 0)) is not None
        chunks = [rest[i : i + cut] for i in range(0, len(rest), cut)]
        random.Random(cut).shuffle(chunks)
        offset = len(first)
        for batch_id, chunk in enumerate(chunks, start=1):
            if batch_id % 5 == 0:
                pipeline.sink = pipeline.new_sink()  # a restart in between: a cold cache
            assert pipeline.sink.commit_batch(batch_id, sink_rows(chunk, offset)) is not None
            offset += len(chunk)
        results.append(pipeline.products())
    assert all(result == results[0] for result in results[1:])
    labelled = [row for row in results[0] if row[1] is not None]
    assert len(labelled) >= 8
    assert {row[3] for row in labelled} <= {"lumera.de", "lumera.fr"}


def test_a_replayed_or_resent_batch_changes_nothing(
    postgres: Postgres, pipelines: list[Pipeline]
) -> None:
    pipeline = Pipeline(postgres)
    pipelines.append(pipeline)
    events = story(seed=2)
    early, late = events[:300], events[300:]
    assert pipeline.sink.commit_batch(0, sink_rows(early, 0)) is not None
    assert pipeline.sink.commit_batch(1, sink_rows(late, 300)) is not None
    before = pipeline.products()
    # Spark replays batch 1 after a crash: the ledger skips it.
    assert pipeline.sink.commit_batch(1, sink_rows(late, 300)) is None
    # The topic re-read under a new checkpoint: every event is a duplicate.
    outcome = pipeline.new_sink().commit_batch(2, sink_rows(early + late, 0))
    assert outcome is not None and outcome.duplicates == len(events)
    assert pipeline.products() == before
