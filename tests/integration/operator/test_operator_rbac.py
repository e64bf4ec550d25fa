"""The operator works with only the permissions the chart gives its ServiceAccount, and those
permissions do not let it read Secrets.

The chart's RBAC is rendered with ``helm template`` (see :func:`operator_identity_chart`) and
applied; a token for the ServiceAccount
is minted with the TokenRequest API and written into a kubeconfig the operator runs with.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from operator_harness import (
    PODMON,
    TOPIC,
    Cluster,
    OperatorProcess,
    conditions,
    eventually,
    pipeline_body,
)

from pagestream.stack.helm import Helm
from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import CHART_DIR, StackPaths

pytestmark = [pytest.mark.kube, pytest.mark.helm]

CHART = CHART_DIR
RELEASE, RELEASE_NS = "ps", "pagestream-system"
SERVICE_ACCOUNT = "ps-pagestream-operator"


OPERATOR_IDENTITY = (
    "values.yaml",
    "templates/_helpers.tpl",
    "templates/operator-serviceaccount.yaml",
    "templates/operator-rbac.yaml",
)


def operator_identity_chart(into: Path) -> Path:
    """The chart's own ServiceAccount and RBAC templates (and its values and helpers), in a
    copy whose Chart.yaml lists no dependencies: helm refuses to render a chart whose
    dependency charts are not vendored, and these templates do not use them."""
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    meta.pop("dependencies", None)
    (into / "templates").mkdir(parents=True)
    (into / "Chart.yaml").write_text(yaml.safe_dump(meta))
    for name in OPERATOR_IDENTITY:
        shutil.copyfile(CHART / name, into / name)
    return into


@pytest.fixture(scope="module")
def chart_rbac(
    helm: Helm,
    kube: KubeControlPlane,
    core: client.CoreV1Api,
    crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    chart = operator_identity_chart(tmp_path_factory.mktemp("chart") / "pagestream")
    rendered = helm.run(
        "template",
        RELEASE,
        str(chart),
        "--namespace",
        RELEASE_NS,
        "--show-only",
        "templates/operator-serviceaccount.yaml",
        "--show-only",
        "templates/operator-rbac.yaml",
    ).stdout
    kinds = [d["kind"] for d in yaml.safe_load_all(rendered) if d]
    assert kinds == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"]
    try:
        core.create_namespace({"metadata": {"name": RELEASE_NS}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    kube.kubectl("apply", "--server-side", "-f", "-", stdin=rendered)
    yield rendered
    # The ClusterRole(Binding) are cluster-wide: leave nothing for the chart's own tests to
    # conflict with when they apply the same release name later in the session.
    kube.kubectl("delete", "--ignore-not-found", "-f", "-", stdin=rendered)


def test_chart_rbac_is_least_privilege(chart_rbac: str) -> None:
    (role,) = [d for d in yaml.safe_load_all(chart_rbac) if d and d["kind"] == "ClusterRole"]
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert not any("*" in verbs for verbs in granted.values())
    assert not any("*" in key for key in granted)
    assert not any(resource == "secrets" for _, resource in granted)
    # Writes only to what the operator owns, plus Events.
    writable = {
        key for key, verbs in granted.items() if verbs & {"create", "patch", "update", "delete"}
    }
    assert writable == {
        ("pagestream.dev", "pageanalyticspipelines"),
        ("pagestream.dev", "pageanalyticspipelines/status"),
        ("pagestream.dev", "pageanalyticspipelines/finalizers"),
        ("sparkoperator.k8s.io", "sparkapplications"),
        ("kafka.strimzi.io", "kafkatopics"),
        ("monitoring.coreos.com", "podmonitors"),
        ("monitoring.coreos.com", "servicemonitors"),
        ("", "services"),
        ("", "configmaps"),
        ("", "events"),
        ("events.k8s.io", "events"),
    }


@pytest.fixture(scope="module")
def sa_kubeconfig(
    chart_rbac: str, core: client.CoreV1Api, kube: KubeControlPlane, stack_paths: StackPaths
) -> Path:
    token = core.create_namespaced_service_account_token(
        SERVICE_ACCOUNT, RELEASE_NS, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    ca = base64.b64encode((kube.pki / "ca.crt").read_bytes()).decode()
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": kube.server, "certificate-authority-data": ca}}
        ],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": SERVICE_ACCOUNT}}],
        "current-context": "sa",
    }
    path = stack_paths.state / "operator-sa.kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def sa_operator(sa_kubeconfig: Path, stack_paths: StackPaths) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kubeconfig=sa_kubeconfig, log_dir=stack_paths.logs, name="operator-sa")
    op.start()
    yield op
    op.stop()


def test_operator_works_with_only_the_chart_permissions(
    sa_operator: OperatorProcess, cluster: Cluster
) -> None:
    cluster.create(
        pipeline_body(
            "rbac",
            kafka={
                "strimziCluster": {"name": "events"},
                "topic": {"name": "views", "manage": True},
            },
            monitoring={"monitor": "PodMonitor", "dashboards": True},
        )
    )
    cluster.wait_app("rbac")
    eventually(lambda: cluster.get(TOPIC, "rbac"), what="KafkaTopic")
    eventually(lambda: cluster.get(PODMON, "rbac"), what="PodMonitor")
    cluster.play_spark_operator("rbac", "RUNNING", "sub-1")
    status = cluster.wait_state("rbac", "RUNNING")["status"]
    assert conditions(status)["Ready"]["status"] == "True"
    eventually(
        lambda: {"ChildCreated", "Running"} <= {e["reason"] for e in cluster.events("rbac")},
        what="events posted by the operator's ServiceAccount",
    )
    # Removing a child is within its permissions too.
    cluster.patch_spec("rbac", {"monitoring": {"monitor": "None", "dashboards": False}})
    eventually(lambda: cluster.get(PODMON, "rbac") is None, what="PodMonitor deleted")
    log = sa_operator.log_text()
    # 403 as a status code, not as part of a uid or a number ("...49403c33...", "0.403").
    assert not re.search(r"(?<![\w.-])403(?![\w.-])", log), log[-3000:]
    assert "forbidden" not in log.lower(), log[-3000:]


def test_the_operator_account_cannot_read_secrets(
    sa_kubeconfig: Path, core: client.CoreV1Api, namespace: str
) -> None:
    from kubernetes import config

    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "pii-key"}, "stringData": {"key": "not-for-the-operator"}}
    )
    as_operator = client.CoreV1Api(config.new_client_from_config(config_file=str(sa_kubeconfig)))
    for attempt in (
        lambda: as_operator.read_namespaced_secret("pii-key", namespace),
        lambda: as_operator.list_namespaced_secret(namespace),
        lambda: as_operator.list_secret_for_all_namespaces(),
    ):
        with pytest.raises(ApiException) as info:
            attempt()
        assert info.value.status == 403
        assert f"system:serviceaccount:{RELEASE_NS}:{SERVICE_ACCOUNT}" in info.value.body
