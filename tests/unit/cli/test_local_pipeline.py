"""The local pipeline YAML is checked as kube-apiserver checks it (the comparison with the real
server is tests/integration/embedded/test_local_crd_validation.py), and its job configuration is
the operator's with only the places changed."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from local_pipeline_cases import INVALID, LOCAL_PIPELINE, base, edited, local_messages

from pagestream.local.crd_schema import validate
from pagestream.local.pipeline import (
    LocalPipeline,
    LocalPlaces,
    PipelineFileError,
    load_pipeline,
    localize,
    render_input,
)
from pagestream_common.jobconfig import JobConfig
from pagestream_operator.render import job_config, render_spark_application
from pagestream_operator.spec import parse_spec


def load_resource(resource: dict[str, Any]) -> LocalPipeline:
    return LocalPipeline(
        name=resource["metadata"]["name"],
        source=LOCAL_PIPELINE,
        spec=parse_spec(validate(resource)["spec"]),
        resource=resource,
    )


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
        # The local PostgreSQL has no TLS: libpq's prefer becomes an explicit disable.
        "postgres_sslmode",
    }
    assert (rendered.postgres_sslmode, local.postgres_sslmode) == ("prefer", "disable")
    assert rendered.kafka_topic == local.kafka_topic == "page-views"


def test_a_cnpg_pipeline_connects_to_the_local_database_without_tls() -> None:
    """Rendered for a cluster, a cnpgCluster pipeline verifies the CloudNativePG certificate;
    moved here, it talks plain to the local server."""

    def to_cnpg(resource: dict[str, Any]) -> None:
        resource["spec"]["postgres"] = {"cnpgCluster": {"name": "warehouse"}}

    pipeline = load_resource(edited(to_cnpg))
    rendered = job_config(render_input(pipeline))
    assert (rendered.postgres_sslmode, rendered.postgres_ssl_root_cert) == (
        "verify-full",
        "/opt/pagestream/tls/postgres-ca/ca.crt",
    )
    local = localize(pipeline, LocalPlaces("127.0.0.1:1234", "127.0.0.1", 5433, "/tmp/cp", 9999))
    assert (local.postgres_sslmode, local.postgres_ssl_root_cert) == ("disable", "")


@pytest.mark.parametrize(
    ("section", "value", "words"),
    [
        (
            "kafka.authentication",
            {"secretRef": {"name": "job-user"}},
            "the local Kafka broker has no SASL users",
        ),
        ("kafka.tls", {}, "the local Kafka broker has no TLS"),
        ("postgres.tls", {"mode": "require"}, "the local PostgreSQL has no TLS"),
    ],
)
def test_sections_the_local_servers_cannot_serve_are_refused_naming_them(
    section: str, value: dict[str, Any], words: str, tmp_path: Path
) -> None:
    def add(resource: dict[str, Any]) -> None:
        *parents, leaf = section.split(".")
        node = resource["spec"]
        for key in parents:
            node = node[key]
        node[leaf] = value

    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(edited(add)))
    with pytest.raises(PipelineFileError) as info:
        load_pipeline(path)
    assert f"spec.{section}: {words}; remove this section for a local run" in str(info.value)
