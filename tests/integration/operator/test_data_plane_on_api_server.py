"""The operator applies the chart's data plane once its CRDs are served: on a kube-apiserver of
this test's own (with kube-controller-manager, so garbage collection runs) that starts without
the CloudNativePG and Strimzi CRDs, as a cluster does while one `helm install` is still bringing
their operators up. It waits naming the missing CRD, retries while a webhook refuses, applies
each object as soon as it can, deletes one no longer listed, and the garbage collector removes
the rest with the ConfigMap (what `helm uninstall` deletes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import yaml
from operator_harness import OperatorProcess, eventually

from pagestream.stack.crds import crd_file, upstream_crds
from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import PIPELINE_CRD, StackPaths
from pagestream.stack.process import free_port
from pagestream_operator.data_plane import DATA_PLANE_LABEL, OBJECTS_KEY, STATUS_ANNOTATION

pytestmark = pytest.mark.kube

NAMESPACE = "platform"
CONFIGMAP = "ps-pagestream-data-plane"
CLUSTER = {
    "apiVersion": "postgresql.cnpg.io/v1",
    "kind": "Cluster",
    "metadata": {"name": "pagestream-db", "labels": {"app.kubernetes.io/part-of": "pagestream"}},
    "spec": {"instances": 1, "storage": {"size": "1Gi"}},
}
USER = {
    "apiVersion": "kafka.strimzi.io/v1",
    "kind": "KafkaUser",
    "metadata": {"name": "pagestream-pipeline", "labels": {"strimzi.io/cluster": "events"}},
    "spec": {"authentication": {"type": "scram-sha-512"}},
}


@pytest.fixture(scope="module")
def bare_kube(stack_paths: StackPaths) -> Iterator[KubeControlPlane]:
    """A control plane with only the pipeline CRD: no platform operator installed yet."""
    kube = KubeControlPlane(
        # The session's paths (tied to it, so a killed run ends this control plane too).
        replace(stack_paths, state=stack_paths.state / "kube-data-plane"),
        apiserver_port=free_port(),
        etcd_port=free_port(),
        etcd_peer_port=free_port(),
        controller_manager_port=free_port(),
    )
    kube.start()
    try:
        kube.kubectl("apply", "--server-side", "-f", str(PIPELINE_CRD))
        kube.kubectl("create", "namespace", NAMESPACE)
        yield kube
    finally:
        kube.stop()


@pytest.fixture(scope="module")
def operator(bare_kube: KubeControlPlane, stack_paths: StackPaths) -> Iterator[OperatorProcess]:
    op = OperatorProcess(
        bare_kube.kubeconfig,
        stack_paths.logs,
        name="operator-data-plane",
        namespaces=(NAMESPACE,),
        extra_args=(
            f"--data-plane-configmap={CONFIGMAP}",
            f"--data-plane-namespace={NAMESPACE}",
            "--data-plane-resync-seconds=3",
        ),
    )
    op.start()
    yield op
    op.stop()


def configmap(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE},
            "data": {OBJECTS_KEY: yaml.safe_dump_all(objects)},
        }
    )


def get(kube: KubeControlPlane, *what: str) -> dict[str, Any] | None:
    proc = kube.kubectl("-n", NAMESPACE, "get", *what, "-o", "json", check=False)
    if proc.returncode != 0:
        assert "NotFound" in proc.stderr, proc.stderr
        return None
    found: dict[str, Any] = json.loads(proc.stdout)
    return found


def status(kube: KubeControlPlane) -> dict[str, Any] | None:
    cm = get(kube, "configmap", CONFIGMAP)
    text = ((cm or {}).get("metadata", {}).get("annotations") or {}).get(STATUS_ANNOTATION)
    return json.loads(text) if text else None


def states(kube: KubeControlPlane) -> dict[str, tuple[str, str]] | None:
    found = status(kube)
    if found is None:
        return None
    return {o["object"]: (o["state"], o.get("message", "")) for o in found["objects"]}


def test_the_data_plane_converges_as_its_operators_arrive(
    bare_kube: KubeControlPlane, operator: OperatorProcess, stack_paths: StackPaths
) -> None:
    kube = bare_kube
    kube.kubectl("apply", "-f", "-", stdin=configmap([CLUSTER, USER]))

    # No CRDs: both wait, each naming the CRD its operator brings.
    waiting = {
        "Cluster/pagestream-db": (
            "WaitingForCRD",
            "waiting for the CRD clusters.postgresql.cnpg.io: the operator that serves it is "
            "not installed yet",
        ),
        "KafkaUser/pagestream-pipeline": (
            "WaitingForCRD",
            "waiting for the CRD kafkausers.kafka.strimzi.io: the operator that serves it is "
            "not installed yet",
        ),
    }
    eventually(lambda: states(kube) == waiting, timeout=60, what="both objects waiting")
    assert status(kube)["ready"] is False  # type: ignore[index]

    # CloudNativePG's CRD arrives, but its admission webhook does not answer yet (as while its
    # operator's pod starts): the API server refuses the Cluster, the operator says why.
    crds = upstream_crds(stack_paths.cache)
    kube.kubectl("apply", "--server-side", "-f", str(crd_file(crds, "clusters.postgresql.cnpg.io")))
    eventually(
        lambda: established(kube, "clusters.postgresql.cnpg.io"),
        timeout=60,
        what="the Cluster CRD established",
    )
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(webhook_not_serving()))

    def refused() -> bool:
        found = states(kube) or {}
        state, message = found.get("Cluster/pagestream-db", ("", ""))
        return state == "Failed" and "failed calling webhook" in message

    eventually(refused, timeout=90, what="the Cluster refused by the silent webhook")
    assert get(kube, "clusters.postgresql.cnpg.io", "pagestream-db") is None

    # The webhook answers (here: goes away): the Cluster is applied, owned by the ConfigMap.
    kube.kubectl("delete", "validatingwebhookconfiguration", "cnpg-not-serving-yet")
    cluster = eventually(
        lambda: get(kube, "clusters.postgresql.cnpg.io", "pagestream-db"),
        timeout=60,
        what="the Cluster applied",
    )
    cm = get(kube, "configmap", CONFIGMAP)
    assert cm is not None
    assert cluster["metadata"]["labels"] == {
        "app.kubernetes.io/part-of": "pagestream",
        DATA_PLANE_LABEL: CONFIGMAP,
    }
    assert cluster["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": CONFIGMAP,
            "uid": cm["metadata"]["uid"],
        }
    ]
    assert cluster["spec"]["instances"] == 1
    eventually(
        lambda: (states(kube) or {}).get("Cluster/pagestream-db") == ("Applied", ""),
        timeout=30,
        what="the Cluster reported applied",
    )
    assert states(kube)["KafkaUser/pagestream-pipeline"][0] == "WaitingForCRD"  # type: ignore[index]

    # Strimzi's CRD arrives too: everything is applied and the status says ready.
    kube.kubectl("apply", "--server-side", "-f", str(crd_file(crds, "kafkausers.kafka.strimzi.io")))
    eventually(
        lambda: (status(kube) or {}).get("ready") is True, timeout=60, what="ready: all applied"
    )
    assert get(kube, "kafkausers.kafka.strimzi.io", "pagestream-pipeline") is not None

    # An upgrade that drops the Kafka user (kafka.create=false): the operator deletes it.
    kube.kubectl("apply", "-f", "-", stdin=configmap([CLUSTER]))
    eventually(
        lambda: get(kube, "kafkausers.kafka.strimzi.io", "pagestream-pipeline") is None,
        timeout=60,
        what="the unlisted KafkaUser deleted",
    )

    # A hand edit of a field the chart sets is put back on a later pass (server-side apply).
    kube.kubectl(
        "-n",
        NAMESPACE,
        "patch",
        "clusters.postgresql.cnpg.io",
        "pagestream-db",
        "--type=merge",
        "-p",
        '{"spec": {"instances": 3}}',
    )
    eventually(
        lambda: (
            (get(kube, "clusters.postgresql.cnpg.io", "pagestream-db") or {})
            .get("spec", {})
            .get("instances")
            == 1
        ),
        timeout=30,
        what="the hand edit undone",
    )

    # `helm uninstall` deletes the ConfigMap; the garbage collector, the Cluster.
    kube.kubectl("-n", NAMESPACE, "delete", "configmap", CONFIGMAP)
    eventually(
        lambda: get(kube, "clusters.postgresql.cnpg.io", "pagestream-db") is None,
        timeout=90,
        what="the Cluster collected with its ConfigMap",
    )


def established(kube: KubeControlPlane, crd: str) -> bool:
    # (kubectl wait fails outright on a CRD whose status is not written yet.)
    found = json.loads(kube.kubectl("get", "crd", crd, "-o", "json").stdout)
    conditions = (found.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def webhook_not_serving() -> dict[str, Any]:
    """A validating webhook for CloudNativePG Clusters at an address nothing listens on."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "cnpg-not-serving-yet"},
        "webhooks": [
            {
                "name": "vcluster.cnpg.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 2,
                "clientConfig": {"url": f"https://127.0.0.1:{free_port()}/validate"},
                "rules": [
                    {
                        "apiGroups": ["postgresql.cnpg.io"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["clusters"],
                    }
                ],
            }
        ],
    }
