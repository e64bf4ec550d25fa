"""The job's configuration and its one mapping to and from the command line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pagestream_common.jobconfig import (
    PII_HASH_KEY_REQUIRED,
    JobConfig,
    JobConfigError,
    Secrets,
    duration_seconds,
)

# Only the required fields set: every other one at its default.
DEFAULTS = JobConfig(
    pipeline_name="demo",
    kafka_bootstrap_servers="kafka:9092",
    kafka_topic="views",
    postgres_host="pg",
    checkpoint_location="/checkpoints/demo",
)


def test_durations_are_read_in_seconds() -> None:
    assert duration_seconds("2 hours") == 7200
    assert duration_seconds("1 minute") == 60
    assert duration_seconds("500 milliseconds") == 0.5
    with pytest.raises(JobConfigError, match="not a duration"):
        duration_seconds("2h")


def _every_field_off_its_default() -> JobConfig:
    """A config in which no field keeps its default, so a flag that is rendered but not
    parsed back (or the reverse) cannot hide behind the default."""
    return dataclasses.replace(
        DEFAULTS,
        postgres_port=6543,
        postgres_database="analytics",
        postgres_schema="shop_eu",
        postgres_sslmode="verify-full",
        postgres_ssl_root_cert="/tls/postgres/ca.crt",
        postgres_reader_role="grafana_reader",
        kafka_starting_offsets="latest",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_tls_ca_file="/tls/kafka/ca.crt",
        max_offsets_per_trigger=5_000,
        trigger_interval="500 milliseconds",
        trigger_mode="available-now",
        watermark_delay="30 minutes",
        bot_filtering=False,
        anonymize_ip=False,
        hash_email=False,
        metrics_port=9200,
        report_timezone="Europe/Paris",
        retention_days=30,
        rollup_retention_days=365,
    )


def test_the_args_of_a_config_parse_back_to_the_same_config() -> None:
    config = _every_field_off_its_default()
    left_at_default = [
        f.name
        for f in dataclasses.fields(JobConfig)
        if f.default is not dataclasses.MISSING and getattr(config, f.name) == f.default
    ]
    assert left_at_default == []
    assert JobConfig.from_args(config.to_args()) == config
    assert JobConfig.from_args(DEFAULTS.to_args()) == DEFAULTS


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"kafka_tls_ca_file": "/ca.crt"}, "--kafka-tls-ca-file is for TLS listeners"),
        (
            {"kafka_tls_ca_file": "/ca.crt", "kafka_security_protocol": "SASL_PLAINTEXT"},
            "set --kafka-security-protocol to SSL or SASL_SSL",
        ),
        ({"postgres_sslmode": "allow"}, "--postgres-sslmode must be one of disable, prefer"),
        ({"postgres_reader_role": 'x"; DROP'}, "--postgres-reader-role must be a lower-case SQL"),
        (
            {"postgres_ssl_root_cert": "/ca.crt", "postgres_sslmode": "require"},
            "--postgres-ssl-root-cert is only used to verify the server",
        ),
    ],
    ids=[
        "kafka-ca-on-plaintext",
        "kafka-ca-on-sasl-plaintext",
        "unknown-sslmode",
        "hostile-reader-role",
        "ca-unused",
    ],
)
def test_connection_settings_that_contradict_each_other_or_are_unsafe_are_refused(
    changes: dict[str, str], words: str
) -> None:
    with pytest.raises(JobConfigError, match=words):
        dataclasses.replace(DEFAULTS, **changes)


def test_tls_settings_that_fit_are_kept() -> None:
    for protocol in ("SSL", "SASL_SSL"):
        config = dataclasses.replace(
            DEFAULTS, kafka_security_protocol=protocol, kafka_tls_ca_file="/ca.crt"
        )
        assert config.kafka_tls_ca_file == "/ca.crt"
    for mode in ("verify-ca", "verify-full"):
        config = dataclasses.replace(DEFAULTS, postgres_sslmode=mode, postgres_ssl_root_cert="/c")
        assert config.postgres_ssl_root_cert == "/c"


# --- retention: days, 0 for forever, rollups at least as long as events ----------------------


def test_retention_defaults_to_90_days_of_events_and_730_of_rollups() -> None:
    assert (DEFAULTS.retention_days, DEFAULTS.rollup_retention_days) == (90, 730)
    args = DEFAULTS.to_args()
    assert args[args.index("--retention-days") + 1] == "90"
    assert args[args.index("--rollup-retention-days") + 1] == "730"


@pytest.mark.parametrize(
    ("events", "rollups"),
    [(0, 0), (90, 0), (30, 30), (1, 2), (90, 730)],
    ids=["both-forever", "rollups-forever", "equal", "shortest", "defaults"],
)
def test_retention_that_keeps_rollups_at_least_as_long_is_kept(events: int, rollups: int) -> None:
    config = dataclasses.replace(DEFAULTS, retention_days=events, rollup_retention_days=rollups)
    assert (config.retention_days, config.rollup_retention_days) == (events, rollups)
    assert JobConfig.from_args(config.to_args()) == config


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"retention_days": -1}, "--retention-days must be a number of days, or 0 for forever"),
        (
            {"rollup_retention_days": -3},
            "--rollup-retention-days must be a number of days, or 0 for forever",
        ),
        (
            {"retention_days": 90, "rollup_retention_days": 30},
            "--rollup-retention-days must be at least --retention-days",
        ),
        (
            {"retention_days": 0, "rollup_retention_days": 730},
            "--rollup-retention-days must be at least --retention-days",
        ),
    ],
    ids=["negative-events", "negative-rollups", "rollups-shorter", "rollups-finite-events-forever"],
)
def test_retention_that_is_negative_or_drops_rollups_first_is_refused(
    changes: dict[str, int], words: str
) -> None:
    with pytest.raises(JobConfigError, match=words):
        dataclasses.replace(DEFAULTS, **changes)
    # The job refuses the same values on its command line.
    args = dataclasses.replace(DEFAULTS, retention_days=0, rollup_retention_days=0).to_args()
    for name, value in changes.items():
        flag = "--" + name.replace("_", "-")
        args[args.index(flag) + 1] = str(value)
    with pytest.raises(JobConfigError, match=words):
        JobConfig.from_args(args)


# --- secrets: the PII key is required -------------------------------------------------------


def test_secrets_come_from_the_environment_or_files(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-a-file\n")
    secrets = Secrets.from_env(
        {"PAGESTREAM_PII_HASH_KEY_FILE": str(key_file), "PAGESTREAM_POSTGRES_PASSWORD": "pw"}
    )
    assert secrets.pii_hash_key == "from-a-file"
    assert secrets.postgres_password == "pw"
    assert Secrets.from_env({"PAGESTREAM_PII_HASH_KEY": "k3y"}).pii_hash_key == "k3y"
    assert "k3y" not in repr(Secrets.from_env({"PAGESTREAM_PII_HASH_KEY": "k3y"}))


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"PAGESTREAM_POSTGRES_PASSWORD": "pw"},
        {"PAGESTREAM_PII_HASH_KEY": ""},
        {"PAGESTREAM_PII_HASH_KEY": "  "},
    ],
    ids=["nothing", "other-secrets-only", "empty", "blank"],
)
def test_a_missing_or_empty_pii_key_is_refused_naming_what_to_set(env: dict[str, str]) -> None:
    with pytest.raises(JobConfigError) as info:
        Secrets.from_env(env)
    message = str(info.value)
    assert message == PII_HASH_KEY_REQUIRED
    for words in (
        "PAGESTREAM_PII_HASH_KEY is required",
        "PAGESTREAM_PII_HASH_KEY_FILE",
        "visitor ids are salted with this key",
        "spec.processing.pii.hashKeySecretRef",
    ):
        assert words in message


def test_an_empty_pii_key_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "key"
    empty.write_text("\n")
    with pytest.raises(JobConfigError, match="PAGESTREAM_PII_HASH_KEY is required"):
        Secrets.from_env({"PAGESTREAM_PII_HASH_KEY_FILE": str(empty)})


def test_secrets_built_in_code_need_a_key_too() -> None:
    with pytest.raises(JobConfigError, match="PAGESTREAM_PII_HASH_KEY is required"):
        Secrets(postgres_password="pw", pii_hash_key="")
    assert Secrets(pii_hash_key="k").pii_hash_key == "k"


def test_the_job_reads_its_config_and_refuses_a_missing_key() -> None:
    args = DEFAULTS.to_args()
    config, secrets = JobConfig.from_env_and_args(args, {"PAGESTREAM_PII_HASH_KEY": "k"})
    assert config == DEFAULTS and secrets.pii_hash_key == "k"
    with pytest.raises(JobConfigError, match="PAGESTREAM_PII_HASH_KEY is required"):
        JobConfig.from_env_and_args(args, {})
