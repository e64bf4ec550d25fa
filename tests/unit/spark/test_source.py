"""The Kafka source's options: SASL credentials and the TLS trust the executors get inline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pagestream_common.jobconfig import JobConfig, Secrets
from pagestream_spark.source import SourceUnavailable, kafka_options, load_kafka_ca

CONFIG = JobConfig(
    pipeline_name="demo",
    kafka_bootstrap_servers="kafka:9093",
    kafka_topic="views",
    postgres_host="pg",
    checkpoint_location="/cp",
)
SECRETS = Secrets(kafka_sasl_username="job", kafka_sasl_password='p"w', pii_hash_key="k")
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_plaintext_sets_no_sasl_or_tls_options() -> None:
    options = kafka_options(CONFIG, SECRETS)
    assert options["kafka.security.protocol"] == "PLAINTEXT"
    assert not [k for k in options if k.startswith(("kafka.sasl.", "kafka.ssl."))]


def test_ssl_with_a_ca_trusts_it_inline_and_verifies_host_names() -> None:
    config = dataclasses.replace(CONFIG, kafka_security_protocol="SSL", kafka_tls_ca_file="/ca")
    options = kafka_options(config, SECRETS, ca_pem=PEM)
    assert options["kafka.security.protocol"] == "SSL"
    assert options["kafka.ssl.truststore.type"] == "PEM"
    assert options["kafka.ssl.truststore.certificates"] == PEM
    assert options["kafka.ssl.endpoint.identification.algorithm"] == "https"
    assert not [k for k in options if k.startswith("kafka.sasl.")]


def test_sasl_ssl_without_a_ca_uses_the_trust_store_and_escapes_the_password() -> None:
    config = dataclasses.replace(CONFIG, kafka_security_protocol="SASL_SSL")
    options = kafka_options(config, SECRETS)
    assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert 'username="job" password="p\\"w";' in options["kafka.sasl.jaas.config"]
    assert options["kafka.ssl.endpoint.identification.algorithm"] == "https"
    assert "kafka.ssl.truststore.certificates" not in options


def test_the_ca_file_must_exist_and_hold_a_certificate(tmp_path: Path) -> None:
    assert load_kafka_ca(CONFIG) is None
    ca = tmp_path / "ca.crt"
    config = dataclasses.replace(CONFIG, kafka_security_protocol="SSL", kafka_tls_ca_file=str(ca))
    with pytest.raises(SourceUnavailable, match=f"cannot read the CA file {ca}"):
        load_kafka_ca(config)
    ca.write_text("-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(SourceUnavailable, match="holds no PEM certificate"):
        load_kafka_ca(config)
    ca.write_text(PEM)
    assert load_kafka_ca(config) == PEM
