"""The pagestream Spark Structured Streaming job: Kafka → validate/enrich → PostgreSQL star
schema, exactly once (entry point: ``pagestream_spark.main``)."""
