"""The baseline for bench/job_throughput.py: the pipeline as most public tutorials write it.

Parse the JSON with ``from_json`` and a fixed schema, keep the columns, and append each
micro-batch to one flat PostgreSQL table through Spark's JDBC writer. No validation beyond the
schema, no deduplication, no enrichment, no dimensions, not exactly once.

    python bench/baseline_tutorial_job.py BOOTSTRAP TOPIC JDBC_URL PASSWORD CHECKPOINT MAX_OFFSETS
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

SCHEMA = StructType(
    [
        StructField(name, StringType())
        for name in (
            "id",
            "ip",
            "user_agent",
            "device_id",
            "store_id",
            "current_url",
            "referrer_url",
            "collection",
            "product_id",
        )
    ]
    + [StructField("time_stamp", LongType())]
)


def main(
    bootstrap: str, topic: str, jdbc_url: str, password: str, checkpoint: str, max_offsets: str
) -> None:
    spark = SparkSession.builder.appName("baseline-tutorial").getOrCreate()
    events = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", max_offsets)
        .load()
        .select(F.from_json(F.col("value").cast("string"), SCHEMA).alias("e"))
        .select("e.*")
    )

    def append(batch, _batch_id: int) -> None:  # type: ignore[no-untyped-def]
        (
            batch.write.format("jdbc")
            .option("url", jdbc_url)
            .option("dbtable", "baseline_page_views")
            .option("user", "postgres")
            .option("password", password)
            .option("driver", "org.postgresql.Driver")
            .mode("append")
            .save()
        )

    query = (
        events.writeStream.foreachBatch(append)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:7])
