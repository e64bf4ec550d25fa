"""The operator's probes on the real kube-apiserver: ``/readyz`` says ready once kopf has started
and the operator's own credentials may list pipelines where it serves them; ``/healthz`` (kopf's
liveness) stays up while readiness is refused, so a missing RoleBinding makes the pod unready
rather than restarted; and readiness follows RBAC as it is granted."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from operator_harness import OperatorProcess, eventually, write_sa_kubeconfig

from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import StackPaths
from pagestream_operator.spec import API_GROUP as GROUP
from pagestream_operator.spec import PLURAL

pytestmark = pytest.mark.kube


def readiness_when(
    op: OperatorProcess,
    accept: Callable[[int, dict[str, Any]], bool],
    *,
    what: str,
    timeout: float = 60,
) -> tuple[int, dict[str, Any]]:
    seen: list[tuple[int, dict[str, Any]]] = []

    def probe() -> tuple[int, dict[str, Any]] | None:
        seen.append(op.readiness())
        return seen[-1] if accept(*seen[-1]) else None

    try:
        return eventually(probe, timeout=timeout, what=what, interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; /readyz last said {seen[-1:]}") from None


def test_ready_once_started_and_able_to_list_pipelines(operator: OperatorProcess) -> None:
    _, body = readiness_when(operator, lambda status, _: status == 200, what="/readyz 200")
    assert body == {"ready": True, "reason": "ready"}
    assert operator.live()


@pytest.fixture
def unbound_account(
    core: client.CoreV1Api,
    kube: KubeControlPlane,
    crds: list[str],
    stack_paths: StackPaths,
) -> Iterator[tuple[str, str, Path]]:
    """(namespace, account, kubeconfig): a ServiceAccount that may read CRDs and Namespaces (what
    the chart's global ClusterRole grants, so kopf can start) but nothing on pipelines: an
    operator installed with a namespace in ``watchNamespaces`` whose RoleBinding is missing."""
    suffix = uuid.uuid4().hex[:6]
    namespace, account = f"t-ready-{suffix}", "operator"
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_service_account(namespace, {"metadata": {"name": account}})
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    role = f"t-ready-global-{suffix}"
    rbac.create_cluster_role(
        {
            "metadata": {"name": role},
            "rules": [
                {
                    "apiGroups": ["apiextensions.k8s.io"],
                    "resources": ["customresourcedefinitions"],
                    "verbs": ["get", "list", "watch"],
                },
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
            ],
        }
    )
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": role},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }
    )
    kubeconfig = write_sa_kubeconfig(
        core, kube, account, namespace, stack_paths.state / f"operator-{namespace}.kubeconfig"
    )
    yield namespace, account, kubeconfig
    rbac.delete_cluster_role_binding(role)
    rbac.delete_cluster_role(role)
    core.delete_namespace(namespace)


def test_alive_but_not_ready_without_the_rights_then_ready_once_granted(
    unbound_account: tuple[str, str, Path], core: client.CoreV1Api, stack_paths: StackPaths
) -> None:
    namespace, account, kubeconfig = unbound_account
    op = OperatorProcess(
        kubeconfig=kubeconfig,
        log_dir=stack_paths.logs,
        name=f"operator-{namespace}",
        namespaces=(namespace,),
    )
    op.start()  # returns once /healthz answers 200
    try:
        # kopf has started (its watch of pipelines is refused and retried): alive, not ready,
        # and the reason is the API server's refusal, where it happened.
        status, body = readiness_when(
            op, lambda _, body: "403" in str(body["reason"]), what="/readyz reporting the 403"
        )
        assert status == 503
        assert body == {
            "ready": False,
            "reason": f"RuntimeError: listing {PLURAL} in namespace {namespace}: 403 Forbidden",
        }
        assert op.live()
        # The RoleBinding a watched namespace needs (only `list` matters to the check).
        rbac = client.RbacAuthorizationV1Api(core.api_client)
        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "pipelines"},
                "rules": [
                    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch"]}
                ],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "pipelines"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "pipelines",
                },
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
            },
        )
        _, body = readiness_when(
            op,
            lambda status, _: status == 200,
            what="/readyz 200 once the RoleBinding exists",
            timeout=30,
        )
        assert body == {"ready": True, "reason": "ready"}
    finally:
        op.stop()
