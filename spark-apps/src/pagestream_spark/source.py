"""The Kafka source: a streaming DataFrame of raw records (key, value, topic, partition, offset,
timestamp). Credentials come from ``Secrets`` (env or mounted files), never from arguments."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from pathlib import Path

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


def read_ca_file(path: str, what: str) -> str:
    """The PEM text of a CA file; :class:`SourceUnavailable` naming the file when it is
    missing or holds no certificate (a wrong Secret key mounts nothing, or a key)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SourceUnavailable(f"{what}: cannot read the CA file {path}: {exc.strerror}") from exc
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise SourceUnavailable(
            f"{what}: {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); check "
            "the Secret key it was mounted from"
        )
    return text


def kafka_options(
    config: JobConfig, secrets: Secrets, *, ca_pem: str | None = None
) -> dict[str, str]:
    """The Kafka source's options. ``ca_pem`` (the text of --kafka-tls-ca-file) travels inline,
    so the executors' consumers trust the same CA without a file of their own."""
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
    if config.kafka_security_protocol.endswith("SSL"):
        # Kafka's default, stated: the broker's certificate must name the host connected to.
        options["kafka.ssl.endpoint.identification.algorithm"] = "https"
        if ca_pem is not None:
            options["kafka.ssl.truststore.type"] = "PEM"
            options["kafka.ssl.truststore.certificates"] = ca_pem
    return options


def _bootstrap_addresses(config: JobConfig) -> list[tuple[str, int]]:
    out = []
    for server in config.kafka_bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            out.append((host.strip("[]"), int(port)))
        except ValueError:
            continue
    return out


def load_kafka_ca(config: JobConfig) -> str | None:
    """The text of --kafka-tls-ca-file, or None without one."""
    if not config.kafka_tls_ca_file:
        return None
    return read_ca_file(config.kafka_tls_ca_file, "--kafka-tls-ca-file")


def check_kafka_tls(config: JobConfig, ca_pem: str | None) -> None:
    """Shake hands with the first bootstrap server that accepts a connection, verifying its
    certificate against ``ca_pem`` (or the system trust store) and its host name as the Kafka
    client will. A wrong CA or host name fails here, in a sentence, instead of deep
    in a streaming query's retries."""
    if not config.kafka_security_protocol.endswith("SSL"):
        return
    context = ssl.create_default_context(cadata=ca_pem)
    for host, port in _bootstrap_addresses(config):
        try:
            with (
                socket.create_connection((host, port), timeout=5) as sock,
                context.wrap_socket(sock, server_hostname=host),
            ):
                return
        except ssl.SSLCertVerificationError as exc:
            trusted = config.kafka_tls_ca_file or "the system trust store"
            raise SourceUnavailable(
                f"Kafka broker {host}:{port} failed TLS verification: {exc.verify_message.rstrip('.')}; "
                f"check that {trusted} holds the CA that signed the broker's certificate "
                "(spec.kafka.tls.caSecretRef) and that the certificate names the host in "
                "--kafka-bootstrap-servers"
            ) from exc
        except ssl.SSLError as exc:
            raise SourceUnavailable(
                f"Kafka broker {host}:{port} refused the TLS handshake ({exc.reason}); is this "
                "a TLS listener? check the port and --kafka-security-protocol"
            ) from exc
        except OSError:
            continue
    raise SourceUnavailable(
        f"no Kafka bootstrap server in {config.kafka_bootstrap_servers!r} accepts connections"
    )


def wait_for_kafka(config: JobConfig, *, attempts: int = 8, first_delay: float = 1.0) -> None:
    """Fail loudly, after retrying with backoff, when no bootstrap server accepts connections."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        for address in _bootstrap_addresses(config):
            try:
                with socket.create_connection(address, timeout=3):
                    return
            except OSError:
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


def read_kafka_stream(
    spark: SparkSession, config: JobConfig, secrets: Secrets, *, ca_pem: str | None = None
) -> DataFrame:
    reader = spark.readStream.format("kafka")
    for key, value in kafka_options(config, secrets, ca_pem=ca_pem).items():
        reader = reader.option(key, value)
    return reader.load()
