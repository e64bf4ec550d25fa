"""The Kafka broker is real: messages make the round trip through it, in order."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from pagestream.stack.kafka import Kafka

pytestmark = pytest.mark.kafka


def _create_topic(kafka: Kafka, partitions: int) -> str:
    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    assert kafka.ensure_topic(topic, partitions)
    return topic


def _consume(kafka: Kafka, topic: str, expected: int) -> list[tuple[int, bytes | None, bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[tuple[int, bytes | None, bytes]] = []
    try:
        idle = 0
        while len(out) < expected and idle < 30:
            batch = consumer.consume(num_messages=2000, timeout=1.0)
            idle = 0 if batch else idle + 1
            for msg in batch:
                assert msg.error() is None, msg.error()
                out.append((msg.partition(), msg.key(), msg.value()))
    finally:
        consumer.close()
    return out


def test_ten_thousand_messages_round_trip_in_order(kafka: Kafka) -> None:
    topic = _create_topic(kafka, partitions=1)
    sent = [f"message-{i:05d}".encode() for i in range(10_000)]
    delivered: list[int] = []
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True, "linger.ms": 5}
    )
    for value in sent:
        producer.produce(
            topic, value, on_delivery=lambda err, msg: delivered.append(0 if err else 1)
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert sum(delivered) == 10_000

    received = _consume(kafka, topic, expected=10_000)
    assert [value for _, _, value in received] == sent

    low, high = Consumer(
        {"bootstrap.servers": kafka.bootstrap_servers, "group.id": "watermarks"}
    ).get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    assert (low, high) == (0, 10_000)


def test_keyed_messages_keep_per_key_order_across_partitions(kafka: Kafka) -> None:
    topic = _create_topic(kafka, partitions=3)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True})
    for i in range(3_000):
        producer.produce(topic, str(i).encode(), key=f"device-{i % 17}".encode())
    assert producer.flush(30) == 0

    received = _consume(kafka, topic, expected=3_000)
    assert len(received) == 3_000
    by_key: dict[bytes, list[int]] = {}
    partition_of: dict[bytes, set[int]] = {}
    for partition, key, value in received:
        assert key is not None
        by_key.setdefault(key, []).append(int(value))
        partition_of.setdefault(key, set()).add(partition)
    assert len(by_key) == 17
    assert all(seq == sorted(seq) for seq in by_key.values())
    assert all(len(parts) == 1 for parts in partition_of.values())
    assert len({p for parts in partition_of.values() for p in parts}) > 1
