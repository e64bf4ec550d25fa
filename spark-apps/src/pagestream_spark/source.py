"""The Kafka source: a streaming DataFrame of raw records (key, value, topic, partition, offset,
timestamp). Credentials come from ``Secrets`` (env or mounted files), never from arguments."""

from __future__ import annotations

import logging
import socket
import time

from pyspark.sql import DataFrame, SparkSession

from pagestream_common.jobconfig import JobConfig, Secrets

log = logging.getLogger(__name__)


class SourceUnavailable(RuntimeError):
    pass


def _jaas(secrets: Secrets, mechanism: str) -> str:
    if not secrets.kafka_sasl_username or not secrets.kafka_sasl_password:
        raise SourceUnavailable(
            "Kafka SASL is configured but PAGESTREAM_KAFKA_SASL_USERNAME/_PASSWORD (or their _FILE "
            "variants) are not set"
        )
    module = (
        "org.apache.kafka.common.security.plain.PlainLoginModule"
        if mechanism == "PLAIN"
        else "org.apache.kafka.common.security.scram.ScramLoginModule"
    )
    user = secrets.kafka_sasl_username.replace('"', '\\"')
    password = secrets.kafka_sasl_password.replace('"', '\\"')
    return f'{module} required username="{user}" password="{password}";'


def kafka_options(config: JobConfig, secrets: Secrets) -> dict[str, str]:
    options = {
        "kafka.bootstrap.servers": config.kafka_bootstrap_servers,
        "subscribe": config.kafka_topic,
        "startingOffsets": config.kafka_starting_offsets,
        "maxOffsetsPerTrigger": str(config.max_offsets_per_trigger),
        # Data deleted by retention before it was read must stop the job loudly, not vanish.
        "failOnDataLoss": "true",
        "kafka.security.protocol": config.kafka_security_protocol,
    }
    if config.kafka_security_protocol.startswith("SASL"):
        options["kafka.sasl.mechanism"] = config.kafka_sasl_mechanism
        options["kafka.sasl.jaas.config"] = _jaas(secrets, config.kafka_sasl_mechanism)
    return options


def wait_for_kafka(config: JobConfig, *, attempts: int = 8, first_delay: float = 1.0) -> None:
    """Fail loudly, after retrying with backoff, when no bootstrap server accepts connections."""
    servers = [s.strip() for s in config.kafka_bootstrap_servers.split(",") if s.strip()]
    delay = first_delay
    for attempt in range(1, attempts + 1):
        for server in servers:
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=3):
                    return
            except (OSError, ValueError):
                continue
        log.warning(
            "Kafka not reachable (attempt %d/%d); retrying in %.0fs",
            attempt,
            attempts,
            delay,
            extra={"bootstrap_servers": config.kafka_bootstrap_servers},
        )
        if attempt < attempts:
            time.sleep(delay)
            delay = min(delay * 2, 30)
    raise SourceUnavailable(
        f"no Kafka bootstrap server in {config.kafka_bootstrap_servers!r} accepts connections; "
        "check --kafka-bootstrap-servers and that the broker is running"
    )


def read_kafka_stream(spark: SparkSession, config: JobConfig, secrets: Secrets) -> DataFrame:
    reader = spark.readStream.format("kafka")
    for key, value in kafka_options(config, secrets).items():
        reader = reader.option(key, value)
    return reader.load()
