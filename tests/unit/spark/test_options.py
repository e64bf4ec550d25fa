"""The processing options: built once from the job's configuration, safe to log and to pickle
into Spark tasks."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from pagestream_common.contract import MIN_EVENT_EPOCH
from pagestream_common.jobconfig import JobConfig, JobConfigError, Secrets
from pagestream_spark.options import ProcessingOptions

CONFIG = JobConfig(
    pipeline_name="demo",
    kafka_bootstrap_servers="kafka:9092",
    kafka_topic="views",
    postgres_host="pg",
    checkpoint_location="/checkpoints/demo",
    anonymize_ip=False,
    hash_email=True,
    bot_filtering=False,
    retention_days=30,
)


def test_options_come_from_the_config_flags_and_the_pii_secret() -> None:
    options = ProcessingOptions.from_config(CONFIG, Secrets(pii_hash_key="s3cret"))
    assert options == ProcessingOptions(
        pii_key=b"s3cret",
        anonymize_ip=False,
        hash_email=True,
        bot_filtering=False,
        retention_days=30,
    )


def test_the_oldest_kept_day_starts_retention_days_before_today() -> None:
    now = 1_800_000_000  # 2027-01-15 08:00 UTC
    today = now - now % 86_400
    options = ProcessingOptions(pii_key=b"k", retention_days=30)
    assert options.oldest_kept_epoch(now) == today - 30 * 86_400
    assert options.oldest_kept_epoch(today) == today - 30 * 86_400
    # Forever: only the contract's own bound.
    assert ProcessingOptions(pii_key=b"k").oldest_kept_epoch(now) == MIN_EVENT_EPOCH
    # Never before the contract's bound, however long the retention.
    assert ProcessingOptions(pii_key=b"k", retention_days=100_000).oldest_kept_epoch(now) == (
        MIN_EVENT_EPOCH
    )


def test_options_are_frozen_keep_the_key_out_of_repr_and_survive_pickling() -> None:
    options = ProcessingOptions(pii_key=b"s3cret")
    assert "s3cret" not in repr(options)
    assert pickle.loads(pickle.dumps(options)) == options
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.hash_email = False  # type: ignore[misc]


@pytest.mark.parametrize("key", [b"", b"  \n"])
def test_options_refuse_an_empty_pii_key(key: bytes) -> None:
    with pytest.raises(JobConfigError, match="PAGESTREAM_PII_HASH_KEY is required"):
        ProcessingOptions(pii_key=key)
