"""The job's configuration and its one mapping to and from the command line."""

from __future__ import annotations

import dataclasses

import pytest

from pagestream_common.jobconfig import JobConfig, JobConfigError, duration_seconds

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
        kafka_starting_offsets="latest",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        max_offsets_per_trigger=5_000,
        trigger_interval="500 milliseconds",
        trigger_mode="available-now",
        watermark_delay="30 minutes",
        bot_filtering=False,
        anonymize_ip=False,
        hash_email=False,
        metrics_port=9200,
        report_timezone="Europe/Paris",
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
