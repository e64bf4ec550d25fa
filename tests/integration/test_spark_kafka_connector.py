"""pyspark reads Kafka through the pre-fetched connector jars, with nothing resolved at run time."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Producer

from pagestream.stack.kafka import Kafka

pytestmark = [pytest.mark.spark, pytest.mark.kafka]


def test_spark_reads_records_from_kafka(kafka: Kafka, spark) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    topic = f"test.spark.{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(topic, 2)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    sent = {f"evt-{i}": i for i in range(500)}
    for event_id, n in sent.items():
        producer.produce(
            topic, json.dumps({"id": event_id, "n": n}).encode(), key=event_id.encode()
        )
    assert producer.flush(30) == 0

    conf = spark.sparkContext.getConf()
    assert not conf.get("spark.jars.packages", ""), "connector must come from spark.jars, not Ivy"
    assert "spark-sql-kafka-0-10_2.13-4.2.0.jar" in conf.get("spark.jars")

    frame = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
        .select(
            F.col("key").cast("string").alias("key"),
            F.get_json_object(F.col("value").cast("string"), "$.id").alias("id"),
            F.get_json_object(F.col("value").cast("string"), "$.n").cast("int").alias("n"),
            "partition",
            "offset",
        )
    )
    rows = frame.collect()
    assert len(rows) == 500
    assert {r["id"]: r["n"] for r in rows} == sent
    assert all(r["key"] == r["id"] for r in rows)
    assert {r["partition"] for r in rows} == {0, 1}
