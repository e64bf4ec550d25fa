"""The processing options: built once from the job's configuration, safe to log and to pickle
into Spark tasks."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

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
)


def test_options_come_from_the_config_flags_and_the_pii_secret() -> None:
    options = ProcessingOptions.from_config(CONFIG, Secrets(pii_hash_key="s3cret"))
    assert options == ProcessingOptions(
        pii_key=b"s3cret", anonymize_ip=False, hash_email=True, bot_filtering=False
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
