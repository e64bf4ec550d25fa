"""The smoke pipeline: proves the local platform end to end until the real job lands.

Produce events to Kafka with confluent-kafka, read them back through Spark's Kafka connector,
write per-collection counts into PostgreSQL, and check the numbers agree.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass

from pagestream.stack.kafka import Kafka
from pagestream.stack.paths import StackPaths
from pagestream.stack.postgres import Postgres
from pagestream.stack.spark import local_spark_session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmokeResult:
    topic: str
    produced: int
    read_by_spark: int
    rows_in_postgres: int

    @property
    def ok(self) -> bool:
        return self.produced == self.read_by_spark == self.rows_in_postgres


def run_smoke_pipeline(
    paths: StackPaths, kafka: Kafka, postgres: Postgres, events: int = 1000
) -> SmokeResult:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"pagestream.smoke.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)

    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True})
    collections = ("view_product_detail", "view_listing_page", "add_to_cart_action")
    for i in range(events):
        event = {
            "id": uuid.uuid4().hex,
            "time_stamp": int(time.time()),
            "collection": collections[i % 3],
        }
        producer.produce(topic, json.dumps(event).encode(), key=str(i % 50).encode())
    if producer.flush(30) != 0:
        raise RuntimeError("smoke: not every event was delivered to Kafka")
    log.info("smoke: produced %d events", events, extra={"topic": topic})

    from pyspark.sql import functions as F

    spark = local_spark_session(paths, "pagestream-smoke")
    try:
        raw = (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
            .option("subscribe", topic)
            .option("startingOffsets", "earliest")
            .option("endingOffsets", "latest")
            .load()
        )
        parsed = raw.select(
            F.get_json_object(F.col("value").cast("string"), "$.collection").alias("collection")
        )
        counts = parsed.groupBy("collection").count()
        read_by_spark = int(parsed.count())
        (
            counts.write.format("jdbc")
            .option("url", postgres.jdbc_url())
            .option("dbtable", "smoke_collection_counts")
            .option("user", "postgres")
            .option("password", postgres.password)
            .option("driver", "org.postgresql.Driver")
            .mode("overwrite")
            .save()
        )
    finally:
        spark.stop()

    import psycopg2

    with psycopg2.connect(postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(sum(count), 0) FROM smoke_collection_counts")
        (in_postgres,) = cur.fetchone()
    conn.close()
    admin.delete_topics([topic])
    return SmokeResult(topic, events, read_by_spark, int(in_postgres))
