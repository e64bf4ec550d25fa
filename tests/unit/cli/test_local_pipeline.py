"""The local pipeline YAML is checked as kube-apiserver checks it (the comparison with the real
server is tests/integration/embedded/test_local_crd_validation.py), and its job configuration is
the operator's with only the places changed."""

from __future__ import annotations

import dataclasses

import pytest
from local_pipeline_cases import INVALID, LOCAL_PIPELINE, base, edited, local_messages

from pagestream.local.crd_schema import validate
from pagestream.local.pipeline import LocalPlaces, load_pipeline, localize, render_input
from pagestream_common.jobconfig import JobConfig
from pagestream_operator.render import render_spark_application


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_pipeline_is_refused_naming_the_field(case: str) -> None:
    edit, field = INVALID[case]
    messages = local_messages(edited(edit))
    assert any(m.startswith(f"{field}: ") for m in messages), messages


def test_the_local_pipeline_is_valid_and_defaulted() -> None:
    resource = validate(base())
    assert resource["spec"]["spark"]["driver"] == {"cores": 1, "memory": "1g"}
    assert resource["spec"]["lifecycle"]["state"] == "running"


def test_job_configuration_is_the_operators_with_only_places_changed() -> None:
    pipeline = load_pipeline(LOCAL_PIPELINE)
    places = LocalPlaces("127.0.0.1:1234", "127.0.0.1", 5433, "/tmp/cp", 9999)
    local = localize(pipeline, places)
    rendered = JobConfig.from_args(
        render_spark_application(render_input(pipeline))["spec"]["arguments"]
    )
    changed = {
        f.name
        for f in dataclasses.fields(JobConfig)
        if getattr(rendered, f.name) != getattr(local, f.name)
    }
    assert changed == {
        "kafka_bootstrap_servers",
        "postgres_host",
        "postgres_port",
        "checkpoint_location",
        "metrics_port",
    }
    assert rendered.kafka_topic == local.kafka_topic == "page-views"
