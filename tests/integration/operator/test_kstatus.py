"""What sigs.k8s.io/cli-utils' kstatus (what Flux's health checks and kpt wait on) says about
the status the operator, as a real process against the real kube-apiserver, wrote: Running and
suspended are Current, failed and invalid specs Failed, deploying and upgrading InProgress.

kstatus itself answers: tools/go/kstatus (cli-utils at the pinned version, built once into the
cache) reads the pipelines as the API server returns them. The tests play the Spark operator."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client
from operator_harness import (
    Cluster,
    OperatorProcess,
    conditions,
    dump,
    eventually,
    pipeline_body,
)

from pagestream.stack.artifacts import KSTATUS_TOOLS, go_binaries
from pagestream.stack.paths import StackPaths
from pagestream_operator.spec import API_GROUP, PLURAL

pytestmark = pytest.mark.kube


@pytest.fixture(scope="module")
def kstatus_binary(stack_paths: StackPaths) -> str:
    return str(go_binaries(stack_paths.cache, KSTATUS_TOOLS) / "kstatus")


def kstatus(binary: str, *objects: dict[str, Any]) -> list[dict[str, str]]:
    proc = subprocess.run(
        [binary],
        input="\n".join(json.dumps(o) for o in objects),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return [json.loads(line) for line in proc.stdout.splitlines()]


def verdict(binary: str, pipeline: dict[str, Any]) -> dict[str, str]:
    (result,) = kstatus(binary, pipeline)
    assert result["name"] == pipeline["metadata"]["name"]
    return result


def observed(cluster: Cluster, name: str, state: str) -> dict[str, Any]:
    """The pipeline once its status describes its current generation in ``state``."""

    def done(s: dict[str, Any]) -> bool:
        generation = cluster.pipeline(name)["metadata"]["generation"]
        return s.get("lifecycleState") == state and s.get("observedGeneration") == generation

    return cluster.wait_status(name, f"{state} at its generation", done)


def test_kstatus_reads_a_hand_made_object_as_its_source_says(kstatus_binary: str) -> None:
    """The command is kstatus: an unobserved generation is InProgress, Ready=False alone too."""
    base = {
        "apiVersion": "pagestream.dev/v1alpha1",
        "kind": "PageAnalyticsPipeline",
        "metadata": {"name": "x", "namespace": "n", "generation": 2},
    }
    stale = {**base, "status": {"observedGeneration": 1}}
    ready_false = {
        **base,
        "status": {
            "observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "False", "reason": "R", "message": "m"}],
        },
    }
    assert [v["status"] for v in kstatus(kstatus_binary, stale, ready_false, base)] == [
        "InProgress",
        "InProgress",
        "Current",
    ]


def test_running_is_current_and_deploying_in_progress(
    operator: OperatorProcess, cluster: Cluster, kstatus_binary: str
) -> None:
    cluster.create(pipeline_body("run"))
    cluster.wait_app("run")
    deploying = observed(cluster, "run", "DEPLOYING")
    cond = conditions(deploying["status"])
    assert (cond["Reconciling"]["status"], cond["Stalled"]["status"]) == ("True", "False")
    result = verdict(kstatus_binary, deploying)
    assert result["status"] == "InProgress", dump(deploying)
    assert result["message"] == cond["Reconciling"]["message"]

    cluster.play_spark_operator("run", "SUBMITTED", "sub-1")
    submitted = cluster.wait_status(
        "run",
        "SUBMITTED seen",
        lambda s: (s.get("sparkApplication") or {}).get("state") == "SUBMITTED",
    )
    assert verdict(kstatus_binary, submitted)["status"] == "InProgress"

    cluster.play_spark_operator("run", "RUNNING", "sub-1")
    running = observed(cluster, "run", "RUNNING")
    cond = conditions(running["status"])
    assert (cond["Ready"]["status"], cond["Reconciling"]["status"], cond["Stalled"]["status"]) == (
        "True",
        "False",
        "False",
    )
    assert verdict(kstatus_binary, running)["status"] == "Current", dump(running)


@pytest.mark.parametrize(
    ("state", "reason"),
    [("FAILED", "SparkApplicationFailed"), ("SUBMISSION_FAILED", "SubmissionFailed")],
)
def test_a_failed_job_is_failed(
    operator: OperatorProcess, cluster: Cluster, kstatus_binary: str, state: str, reason: str
) -> None:
    cluster.create(pipeline_body("fail"))
    cluster.wait_app("fail")
    cluster.play_spark_operator("fail", "RUNNING", "sub-1")
    observed(cluster, "fail", "RUNNING")
    cluster.play_spark_operator("fail", state, "sub-1", error="driver pod OOMKilled")
    failed = observed(cluster, "fail", "FAILED")
    cond = conditions(failed["status"])
    assert (cond["Stalled"]["status"], cond["Stalled"]["reason"]) == ("True", reason)
    assert cond["Reconciling"]["status"] == "False"
    assert cond["Degraded"]["status"] == "True"  # as before
    result = verdict(kstatus_binary, failed)
    assert result["status"] == "Failed", dump(failed)
    assert "driver pod OOMKilled" in result["message"]
    assert "restartNonce" in result["message"]  # what to do

    # The Spark operator resubmits: back to InProgress, then Current.
    cluster.play_spark_operator("fail", "PENDING_RERUN", "sub-1")
    assert verdict(kstatus_binary, observed(cluster, "fail", "DEPLOYING"))["status"] == "InProgress"
    cluster.play_spark_operator("fail", "RUNNING", "sub-2")
    assert verdict(kstatus_binary, observed(cluster, "fail", "RUNNING"))["status"] == "Current"


def test_an_upgrade_is_in_progress_until_the_new_submission_runs(
    operator: OperatorProcess, cluster: Cluster, kstatus_binary: str
) -> None:
    cluster.create(pipeline_body("up"))
    cluster.wait_app("up")
    cluster.play_spark_operator("up", "RUNNING", "sub-1")
    observed(cluster, "up", "RUNNING")

    patched = cluster.patch_spec(
        "up", {"spark": {"image": "registry.example/pagestream-spark:0.2.0"}}
    )
    # Straight after the spec change, whatever the operator has written so far: a status for an
    # older generation, or the upgrade under way; never Current.
    assert verdict(kstatus_binary, patched)["status"] == "InProgress", dump(patched)
    upgrading = observed(cluster, "up", "UPGRADING")
    cond = conditions(upgrading["status"])
    assert (cond["Reconciling"]["status"], cond["Reconciling"]["reason"]) == ("True", "Upgrading")
    assert verdict(kstatus_binary, upgrading)["status"] == "InProgress", dump(upgrading)

    cluster.play_spark_operator("up", "SUBMITTED", "sub-2")
    cluster.play_spark_operator("up", "RUNNING", "sub-2")
    running = cluster.wait_status(
        "up", "upgrade done", lambda s: s.get("lifecycleState") == "RUNNING" and "upgrade" not in s
    )
    assert verdict(kstatus_binary, running)["status"] == "Current", dump(running)


def test_suspending_is_in_progress_and_suspended_current(
    operator: OperatorProcess, cluster: Cluster, kstatus_binary: str
) -> None:
    cluster.create(pipeline_body("nap"))
    cluster.wait_app("nap")
    cluster.play_spark_operator("nap", "RUNNING", "sub-1")
    observed(cluster, "nap", "RUNNING")

    cluster.patch_spec("nap", {"lifecycle": {"state": "suspended"}})
    cluster.wait_app("nap", "suspend: true", lambda a: a["spec"].get("suspend") is True)
    suspending = cluster.wait_status(
        "nap",
        "Suspending at its generation",
        lambda s: conditions(s).get("Reconciling", {}).get("reason") == "Suspending",
    )
    assert verdict(kstatus_binary, suspending)["status"] == "InProgress", dump(suspending)

    cluster.play_spark_operator("nap", "SUSPENDED", "sub-1")
    suspended = observed(cluster, "nap", "SUSPENDED")
    assert verdict(kstatus_binary, suspended)["status"] == "Current", dump(suspended)


@contextmanager
def kafka_rule_lifted(api: client.ApiClient) -> Iterator[None]:
    """The CRD without its spec.kafka rule while the block runs: a pipeline created before a
    rule existed, which only the operator's own check refuses."""
    ext = client.ApiextensionsV1Api(api)
    name = f"{PLURAL}.{API_GROUP}"
    original = ext.read_custom_resource_definition(name)
    body = api.sanitize_for_serialization(original)
    lifted = copy.deepcopy(body)
    for version in lifted["spec"]["versions"]:
        kafka = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["kafka"]
        kafka.pop("x-kubernetes-validations", None)
    ext.replace_custom_resource_definition(name, lifted)
    try:
        yield
    finally:
        current = ext.read_custom_resource_definition(name)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(name, body)


def test_an_invalid_spec_is_failed(
    operator: OperatorProcess, cluster: Cluster, api: client.ApiClient, kstatus_binary: str
) -> None:
    both = {"bootstrapServers": "kafka:9092", "strimziCluster": {"name": "events"}}
    body = pipeline_body("bad", kafka={**both, "topic": {"name": "page-views"}})

    def create() -> bool:
        try:
            cluster.create(body)
        except client.ApiException as exc:
            if exc.status == 422:  # the API server has not dropped the rule yet
                return False
            raise
        return True

    with kafka_rule_lifted(api):
        eventually(create, what="an invalid pipeline accepted")
    bad = cluster.wait_status(
        "bad",
        "InvalidSpec at its generation",
        lambda s: (
            conditions(s).get("Stalled", {}).get("reason") == "InvalidSpec"
            and s.get("observedGeneration") == 1
        ),
    )
    cond = conditions(bad["status"])
    assert cond["Stalled"]["status"] == "True"
    assert cond["Reconciling"]["status"] == "False"
    assert cond["Degraded"]["reason"] == "InvalidSpec"  # as before
    assert cluster.app("bad") is None  # nothing applied
    result = verdict(kstatus_binary, bad)
    assert result["status"] == "Failed", dump(bad)
    assert "spec.kafka" in result["message"]
