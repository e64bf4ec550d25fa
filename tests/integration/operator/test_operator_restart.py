"""Killed mid-reconcile (SIGKILL, no shutdown), the operator restarts and converges: every
pipeline ends with its SparkApplication and a status for its current generation."""

from __future__ import annotations

import pytest
from operator_harness import Cluster, OperatorProcess, eventually, pipeline_body

pytestmark = pytest.mark.kube

PIPELINES = 20


def test_sigkill_mid_reconcile_then_restart_converges(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    names = [f"p{i:02d}" for i in range(PIPELINES)]
    for name in names:
        cluster.create(pipeline_body(name))

    # Kill as soon as the operator has started on them, while it still has work queued.
    eventually(
        lambda: cluster.app(names[0]) or cluster.app(names[-1]),
        what="a first SparkApplication",
        interval=0.01,
    )
    operator.kill()
    done_before_restart = sum(1 for n in names if cluster.app(n))

    # Changes made while it is down must be picked up on restart too.
    cluster.patch_spec(names[0], {"spark": {"executor": {"instances": 2}}})

    operator.start()

    def converged() -> bool:
        for name in names:
            app = cluster.app(name)
            status = cluster.pipeline(name).get("status") or {}
            generation = cluster.pipeline(name)["metadata"]["generation"]
            if app is None or status.get("observedGeneration") != generation:
                return False
            if status.get("lifecycleState") != "DEPLOYING":
                return False
        return True

    eventually(converged, what=f"all {PIPELINES} pipelines converged after restart", timeout=60)
    assert cluster.app(names[0])["spec"]["executor"]["instances"] == 2  # type: ignore[index]
    # Exactly one SparkApplication per pipeline: nothing duplicated, nothing left behind.
    apps = cluster.objects.list_namespaced_custom_object(
        "sparkoperator.k8s.io", "v1beta2", cluster.namespace, "sparkapplications"
    )["items"]
    assert sorted(a["metadata"]["name"] for a in apps) == names
    # How far it got before the kill varies from run to run; it is logged, not asserted.
    print(f"{done_before_restart}/{PIPELINES} SparkApplications existed at the kill")
