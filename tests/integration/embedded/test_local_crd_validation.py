"""A pipeline YAML is checked locally exactly as kube-apiserver checks it: the same YAMLs are
refused with the same field messages (compared with a server-side dry-run create against the real
API server with the CRD installed), and `pagestream up` refuses an invalid one before anything
starts."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pagestream.local.crd_schema import PIPELINE_CRD, InvalidResource, validate
from pagestream.local.pipeline import (
    LocalPlaces,
    load_pipeline,
    localize,
    rendered_spark_application,
)
from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import REPO_ROOT, StackPaths
from pagestream_common.jobconfig import JobConfig

LOCAL_PIPELINE = REPO_ROOT / "manifests" / "local" / "page-views.yaml"
Edit = Callable[[dict[str, Any]], None]


def _base() -> dict[str, Any]:
    return yaml.safe_load(LOCAL_PIPELINE.read_text())


def _edited(edit: Edit) -> dict[str, Any]:
    resource = copy.deepcopy(_base())
    edit(resource)
    return resource


def _set(path: str, value: Any) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = resource
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    return edit


def _drop(path: str) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = resource
        for key in parents:
            node = node[key]
        del node[leaf]

    return edit


# name → (edit, the field the first message must name)
INVALID: dict[str, tuple[Edit, str]] = {
    "bad-enum": (_set("spec.lifecycle.state", "paused"), "spec.lifecycle.state"),
    "negative-cores": (_set("spec.spark.driver.cores", -1), "spec.spark.driver.cores"),
    "both-kafka-sources": (
        _set("spec.kafka.strimziCluster", {"name": "pagestream-kafka"}),
        "spec.kafka",
    ),
    "wrong-type": (_set("spec.spark.executor.cores", "two"), "spec.spark.executor.cores"),
    "missing-checkpoint": (_drop("spec.checkpoint"), "spec.checkpoint"),
    "bad-duration": (_set("spec.spark.triggerInterval", "5s"), "spec.spark.triggerInterval"),
    "inline-password": (_set("spec.kafka.password", "hunter2"), "spec.kafka.password"),
    "long-name": (_set("metadata.name", "p" * 41), "<nil>"),
    "empty-bootstrap": (_set("spec.kafka.bootstrapServers", ""), "spec.kafka.bootstrapServers"),
    "long-topic": (_set("spec.kafka.topic.name", "t" * 300), "spec.kafka.topic.name"),
}


def _local_messages(resource: dict[str, Any]) -> list[str]:
    try:
        validate(resource)
    except InvalidResource as exc:
        return sorted(str(e) for e in exc.errors)
    return []


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_pipeline_is_refused_naming_the_field(case: str) -> None:
    edit, field = INVALID[case]
    messages = _local_messages(_edited(edit))
    assert any(m.startswith(f"{field}: ") for m in messages), messages


def test_the_local_pipeline_is_valid_and_defaulted() -> None:
    resource = validate(_base())
    assert resource["spec"]["spark"]["driver"] == {"cores": 1, "memory": "1g"}
    assert resource["spec"]["lifecycle"]["state"] == "running"


def test_job_configuration_is_the_operators_with_only_places_changed() -> None:
    pipeline = load_pipeline(LOCAL_PIPELINE)
    places = LocalPlaces("127.0.0.1:1234", "127.0.0.1", 5433, "/tmp/cp", 9999)
    local = localize(pipeline, places)
    rendered = JobConfig.from_args(rendered_spark_application(pipeline)["spec"]["arguments"])
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


# --- the same YAMLs against the real API server ----------------------------------------------


@pytest.fixture(scope="module")
def crd_installed(kube: KubeControlPlane) -> KubeControlPlane:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig)}
    for argv in (
        [
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=embedded-test",
            "-f",
            str(PIPELINE_CRD),
        ],
        [
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/pageanalyticspipelines.pagestream.dev",
        ],
    ):
        proc = subprocess.run(
            ["kubectl", *argv], env=env, capture_output=True, text=True, timeout=90
        )
        assert proc.returncode == 0, proc.stderr
    return kube


def _server_messages(kube: KubeControlPlane, resource: dict[str, Any]) -> list[str]:
    """A dry-run create; the refusal's causes as `field: message`, as kubectl prints them."""
    request = urllib.request.Request(
        f"{kube.server}/apis/pagestream.dev/v1alpha1/namespaces/default/pageanalyticspipelines"
        "?dryRun=All&fieldValidation=Strict",
        data=json.dumps(resource).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, context=kube.ssl_context(), timeout=30):
            return []
    except urllib.error.HTTPError as exc:
        status = json.load(exc)
    assert status["reason"] == "Invalid", status
    return sorted(f"{c['field']}: {c['message']}" for c in status["details"]["causes"])


@pytest.mark.kube
@pytest.mark.parametrize("case", ["valid", *sorted(INVALID)])
def test_messages_match_the_api_server(crd_installed: KubeControlPlane, case: str) -> None:
    resource = _base() if case == "valid" else _edited(INVALID[case][0])
    assert _local_messages(resource) == _server_messages(crd_installed, resource)


# --- `pagestream up` refuses before starting anything ----------------------------------------


@pytest.mark.parametrize("case", ["bad-enum", "negative-cores", "both-kafka-sources"])
def test_up_refuses_an_invalid_pipeline_before_anything_starts(
    stack_paths: StackPaths, tmp_path: Path, case: str
) -> None:
    edit, field = INVALID[case]
    pipeline_file = tmp_path / f"{case}.yaml"
    pipeline_file.write_text(yaml.safe_dump(_edited(edit)))
    state = stack_paths.state.parent / f"refused-{case}"
    proc = subprocess.run(
        [sys.executable, "-m", "pagestream", "up", "-f", str(pipeline_file)],
        env={**os.environ, "PAGESTREAM_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert 'The PageAnalyticsPipeline "page-views" is invalid:' in proc.stderr
    assert f"* {field}: " in proc.stderr
    assert not state.exists(), "nothing may start (or be written) for an invalid pipeline"
