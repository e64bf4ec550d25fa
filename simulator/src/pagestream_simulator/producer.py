"""The Kafka side: an idempotent, compressed, batching producer that counts delivery reports."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)

COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")


@dataclass(frozen=True)
class ProducerSettings:
    bootstrap_servers: str
    topic: str
    compression: str = "lz4"
    linger_ms: int = 20
    batch_bytes: int = 1_048_576
    # Further librdkafka settings (security, client.id, ...), applied last.
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise ValueError("bootstrap_servers is required")
        if not self.topic:
            raise ValueError("topic is required")
        if self.compression not in COMPRESSION_TYPES:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSION_TYPES)}")
        if self.linger_ms < 0 or self.batch_bytes <= 0:
            raise ValueError("linger_ms must be >= 0 and batch_bytes > 0")

    def librdkafka_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            # Idempotence: retries never duplicate or reorder a partition's records, so every
            # duplicate in the topic is one the simulator meant to send.
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": self.compression,
            "linger.ms": self.linger_ms,
            "batch.size": self.batch_bytes,
            "batch.num.messages": 100_000,
            # Room for a few seconds of backlog at full speed before produce() pushes back.
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "message.max.bytes": 8 * 1_048_576,
        }
        config.update(dict(self.extra))
        return config


@dataclass
class DeliveryCounts:
    delivered: int = 0
    failed: int = 0
    failures_by_error: Counter[str] = field(default_factory=Counter)


class KafkaSink:
    """Sends (key, value) records to one topic; delivery reports update :attr:`counts`."""

    def __init__(self, settings: ProducerSettings) -> None:
        self.settings = settings
        self.topic = settings.topic
        self.counts = DeliveryCounts()
        self._last_error_log = 0.0
        config = settings.librdkafka_config()
        config["on_delivery"] = self._on_delivery
        config["error_cb"] = self._on_error
        # librdkafka's own log lines go through logging (JSON when not a terminal).
        config["logger"] = logging.getLogger("pagestream_simulator.librdkafka")
        self.producer = Producer(config)

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.counts.delivered += 1
        else:
            self.counts.failed += 1
            self.counts.failures_by_error[err.name()] += 1

    def _on_error(self, err: KafkaError) -> None:
        # Client-level errors (broker down, auth) repeat every retry: log at most every 5 s.
        now = time.monotonic()
        if err.fatal() or now - self._last_error_log > 5:
            self._last_error_log = now
            log.warning("kafka client error", extra={"error": err.str(), "fatal": err.fatal()})

    def send(self, key: bytes | None, value: bytes) -> None:
        try:
            self.producer.produce(self.topic, value, key)
        except BufferError:
            self.send_when_room(key, value)

    def send_when_room(
        self, key: bytes | None, value: bytes, give_up: Callable[[], bool] | None = None
    ) -> bool:
        """The local queue is full: serve delivery reports until there is room, then send.
        (Hot loops call ``producer.produce`` directly and come here only on BufferError.)
        False if ``give_up()`` turned true first (a stop request while the broker is away):
        the record was not sent."""
        while True:
            self.producer.poll(0.05)
            try:
                self.producer.produce(self.topic, value, key)
                return True
            except BufferError:
                if give_up is not None and give_up():
                    return False

    def poll(self, timeout: float = 0.0) -> None:
        self.producer.poll(timeout)

    @property
    def in_flight(self) -> int:
        return len(self.producer)

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for delivery; returns how many are still pending."""
        return self.producer.flush(timeout)

    def purge(self) -> None:
        """Drop whatever is still queued (after a flush timed out); their reports fail."""
        self.producer.purge()
        self.producer.poll(0)


class TopicMissingError(RuntimeError):
    """The topic does not exist (and brokers do not create topics on first use)."""


def check_topic(producer: Producer, topic: str, timeout: float = 3.0) -> int | None:
    """Partitions of ``topic``; raises TopicMissingError if the cluster says it does not
    exist; None if the cluster cannot be reached yet (records will then fail and be counted)."""
    try:
        metadata = producer.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        log.warning("cannot read topic metadata", extra={"topic": topic, "error": str(exc)})
        return None
    found = metadata.topics.get(topic)
    if found is None or (
        found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    ):
        raise TopicMissingError(
            f"topic {topic!r} does not exist: create it, or pass --create-topic PARTITIONS"
        )
    return len(found.partitions)


def ensure_topic(
    bootstrap_servers: str,
    topic: str,
    partitions: int,
    timeout: float = 30,
    client_config: Mapping[str, str] | None = None,
) -> bool:
    """Create ``topic`` unless it exists; True if it was created. ``client_config`` holds the
    connection's other librdkafka settings (security protocol, SASL credentials...)."""
    admin = AdminClient({**(client_config or {}), "bootstrap.servers": bootstrap_servers})
    future = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout,
    )[topic]
    try:
        future.result(timeout)
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise
    return True
