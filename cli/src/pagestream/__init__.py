"""pagestream: real-time page-view analytics. This package holds the CLI and the embedded
local platform (real Kafka, PostgreSQL, Prometheus and Spark on one machine)."""
