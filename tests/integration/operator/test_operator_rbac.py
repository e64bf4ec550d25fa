"""The operator works with only the permissions the chart gives its ServiceAccount, and those
permissions do not let it read Secrets; with ``watchNamespaces`` they hold in the watched
namespaces only; the chart's aggregated roles let a namespace's editors create pipelines.

The chart's RBAC is rendered with ``helm template`` (see :func:`operator_identity_chart`) and
applied; a token for the ServiceAccount is minted with the TokenRequest API and written into a
kubeconfig the operator runs with. What an account may do is asked of the API server itself
(SubjectAccessReview, the question ``kubectl auth can-i`` asks).
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
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
    write_sa_kubeconfig,
)

from pagestream.stack.helm import Helm
from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import CHART_DIR, StackPaths
from pagestream_operator.spec import API_GROUP as GROUP
from pagestream_operator.spec import PLURAL

pytestmark = [pytest.mark.kube, pytest.mark.helm]

CHART = CHART_DIR
RELEASE, RELEASE_NS = "ps", "pagestream-system"
SERVICE_ACCOUNT = "ps-pagestream-operator"
# A second release whose operator watches one namespace.
SCOPED_RELEASE = "pss"
SCOPED_SERVICE_ACCOUNT = "pss-pagestream-operator"


OPERATOR_IDENTITY = (
    "values.yaml",
    "templates/_helpers.tpl",
    "templates/operator-serviceaccount.yaml",
    "templates/operator-rbac.yaml",
    "templates/aggregated-roles.yaml",
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
def identity_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return operator_identity_chart(tmp_path_factory.mktemp("chart") / "pagestream")


def render(helm: Helm, chart: Path, release: str, templates: list[str], *sets: str) -> str:
    shown = [arg for name in templates for arg in ("--show-only", f"templates/{name}")]
    extra = [arg for s in sets for arg in ("--set", s)]
    return helm.run(
        "template", release, str(chart), "--namespace", RELEASE_NS, *shown, *extra
    ).stdout


def kinds(rendered: str) -> list[tuple[str, str]]:
    """(kind, namespace or "") of the RBAC objects rendered, sorted (helm orders them by kind)."""
    return sorted(
        (d["kind"], d["metadata"].get("namespace") or "")
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] != "ServiceAccount"
    )


def ensure_namespace(core: client.CoreV1Api, name: str) -> None:
    try:
        core.create_namespace({"metadata": {"name": name}})
    except ApiException as exc:
        if exc.status != 409:
            raise


@pytest.fixture(scope="module")
def chart_rbac(
    helm: Helm,
    kube: KubeControlPlane,
    core: client.CoreV1Api,
    crds: list[str],
    identity_chart: Path,
) -> Iterator[str]:
    rendered = render(
        helm, identity_chart, RELEASE, ["operator-serviceaccount.yaml", "operator-rbac.yaml"]
    )
    # Every namespace watched: the CRD watch and the namespaced rules, both bound cluster-wide;
    # the chart's data plane, applied in the release's namespace only.
    assert kinds(rendered) == [
        ("ClusterRole", ""),
        ("ClusterRole", ""),
        ("ClusterRoleBinding", ""),
        ("ClusterRoleBinding", ""),
        ("Role", RELEASE_NS),
        ("RoleBinding", RELEASE_NS),
    ]
    ensure_namespace(core, RELEASE_NS)
    kube.kubectl("apply", "--server-side", "-f", "-", stdin=rendered)
    yield rendered
    # The ClusterRole(Binding)s are cluster-wide: leave nothing for the chart's own tests to
    # conflict with when they apply the same release name later in the session.
    kube.kubectl("delete", "--ignore-not-found", "-f", "-", stdin=rendered)


def test_chart_rbac_is_least_privilege(chart_rbac: str) -> None:
    roles = [
        d for d in yaml.safe_load_all(chart_rbac) if d and d["kind"] in ("ClusterRole", "Role")
    ]
    assert len(roles) == 3
    granted: dict[tuple[str, str], set[str]] = {}
    for role in roles:
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.setdefault((group, resource), set()).update(rule["verbs"])
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
        # The data plane, in the release's namespace only (the Role below).
        ("kafka.strimzi.io", "kafkas"),
        ("kafka.strimzi.io", "kafkanodepools"),
        ("kafka.strimzi.io", "kafkausers"),
        ("postgresql.cnpg.io", "clusters"),
    }
    (data_plane,) = [r for r in roles if r["kind"] == "Role"]
    assert data_plane["metadata"]["namespace"] == RELEASE_NS
    (own_configmap,) = [r for r in data_plane["rules"] if r["resources"] == ["configmaps"]]
    assert own_configmap["resourceNames"] == [f"{SERVICE_ACCOUNT}-data-plane"]


@pytest.fixture(scope="module")
def sa_kubeconfig(
    chart_rbac: str, core: client.CoreV1Api, kube: KubeControlPlane, stack_paths: StackPaths
) -> Path:
    return write_sa_kubeconfig(
        core, kube, SERVICE_ACCOUNT, RELEASE_NS, stack_paths.state / "operator-sa.kubeconfig"
    )


# Function scope: only its one test runs beside this cluster-wide operator, so the
# namespace-scoped operator below is the only one serving its pipelines.
@pytest.fixture
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


# --- watchNamespaces: the operator's rights in the watched namespaces only --------------------


@pytest.fixture(scope="module")
def authz(api: client.ApiClient) -> client.AuthorizationV1Api:
    return client.AuthorizationV1Api(api)


def allowed(
    authz: client.AuthorizationV1Api,
    user: str,
    verb: str,
    group: str,
    resource: str,
    namespace: str = "",
    subresource: str = "",
    groups: tuple[str, ...] = ("system:authenticated",),
) -> bool:
    """What ``kubectl auth can-i --as=<user>`` asks: a SubjectAccessReview, answered by the API
    server's own authorizers."""
    review = authz.create_subject_access_review(
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=list(groups),
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb,
                    group=group,
                    resource=resource,
                    subresource=subresource or None,
                    namespace=namespace or None,
                ),
            )
        )
    )
    return bool(review.status.allowed)


SCOPED_USER = f"system:serviceaccount:{RELEASE_NS}:{SCOPED_SERVICE_ACCOUNT}"
SA_GROUPS = (
    "system:serviceaccounts",
    f"system:serviceaccounts:{RELEASE_NS}",
    "system:authenticated",
)


def operator_can(authz: client.AuthorizationV1Api, *args: str, **kw: str) -> bool:
    return allowed(authz, SCOPED_USER, *args, **kw, groups=SA_GROUPS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def two_namespaces(core: client.CoreV1Api, crds: list[str]) -> Iterator[tuple[str, str]]:
    """(watched, another): two fresh namespaces."""
    suffix = uuid.uuid4().hex[:6]
    names = (f"t-watched-{suffix}", f"t-other-{suffix}")
    for name in names:
        core.create_namespace({"metadata": {"name": name}})
    yield names
    for name in names:
        core.delete_namespace(name)


@pytest.fixture(scope="module")
def scoped_rbac(
    helm: Helm,
    kube: KubeControlPlane,
    core: client.CoreV1Api,
    identity_chart: Path,
    two_namespaces: tuple[str, str],
) -> Iterator[str]:
    watched, _ = two_namespaces
    rendered = render(
        helm,
        identity_chart,
        SCOPED_RELEASE,
        ["operator-serviceaccount.yaml", "operator-rbac.yaml"],
        f"operator.watchNamespaces={{{watched}}}",
    )
    # The CRD watch cluster-wide; the rest by a RoleBinding in the watched namespace only.
    assert kinds(rendered) == [
        ("ClusterRole", ""),
        ("ClusterRole", ""),
        ("ClusterRoleBinding", ""),
        ("Role", RELEASE_NS),
        ("RoleBinding", RELEASE_NS),
        ("RoleBinding", watched),
    ]
    ensure_namespace(core, RELEASE_NS)
    kube.kubectl("apply", "--server-side", "-f", "-", stdin=rendered)
    yield rendered
    kube.kubectl("delete", "--ignore-not-found", "-f", "-", stdin=rendered)


# (verb, group, resource, subresource): what the operator does to a pipeline's children.
OPERATOR_WRITES = [
    *[
        (verb, "sparkoperator.k8s.io", "sparkapplications", "")
        for verb in ("create", "patch", "delete")
    ],
    *[(verb, "", "configmaps", "") for verb in ("create", "patch", "delete")],
    *[(verb, "", "services", "") for verb in ("create", "patch", "delete")],
    ("patch", GROUP, PLURAL, "status"),
    ("watch", GROUP, PLURAL, ""),
    ("create", "", "events", ""),
]


def test_with_watch_namespaces_the_operator_may_act_in_those_only(
    scoped_rbac: str, authz: client.AuthorizationV1Api, two_namespaces: tuple[str, str]
) -> None:
    watched, other = two_namespaces
    for verb, group, resource, sub in OPERATOR_WRITES:
        what = f"{verb} {group}/{resource}{'/' + sub if sub else ''}"
        assert operator_can(authz, verb, group, resource, watched, sub), f"{what} in {watched}"
        assert not operator_can(authz, verb, group, resource, other, sub), f"{what} in {other}"
        # Nor cluster-wide (all namespaces at once).
        assert not operator_can(authz, verb, group, resource, "", sub), f"{what} everywhere"
    # kopf with explicit namespaces lists and watches per namespace, never across the cluster.
    for verb in ("list", "watch"):
        assert operator_can(authz, verb, GROUP, PLURAL, watched)
        assert not operator_can(authz, verb, GROUP, PLURAL, "")
    for namespace in (watched, other, RELEASE_NS, ""):
        for verb in ("get", "list", "watch"):
            assert not operator_can(authz, verb, "", "secrets", namespace), (verb, namespace)
    # The one cluster-scoped right: reading CRDs (kopf's discovery of what it serves).
    for verb in ("get", "list", "watch"):
        assert operator_can(authz, verb, "apiextensions.k8s.io", "customresourcedefinitions")
    assert not operator_can(authz, "create", "apiextensions.k8s.io", "customresourcedefinitions")
    # And, with named namespaces, reading Namespaces (kopf follows them); never changing one.
    for verb in ("get", "list", "watch"):
        assert operator_can(authz, verb, "", "namespaces")
    for verb in ("create", "patch", "update", "delete"):
        assert not operator_can(authz, verb, "", "namespaces")


def test_the_scoped_operator_serves_its_namespace_with_only_those_rights(
    scoped_rbac: str,
    two_namespaces: tuple[str, str],
    core: client.CoreV1Api,
    objects: client.CustomObjectsApi,
    kube: KubeControlPlane,
    stack_paths: StackPaths,
) -> None:
    """The operator started as the chart starts it with `watchNamespaces`, with that
    ServiceAccount's token: kopf serves the watched namespace, and it is refused nothing, so it
    never tried a cluster-wide list or watch of pipelines or their children."""
    watched, other = two_namespaces
    kubeconfig = write_sa_kubeconfig(
        core,
        kube,
        SCOPED_SERVICE_ACCOUNT,
        RELEASE_NS,
        stack_paths.state / "operator-scoped.kubeconfig",
    )
    here, there = Cluster(objects, core, watched), Cluster(objects, core, other)
    there.create(pipeline_body("unwatched"))
    op = OperatorProcess(
        kubeconfig=kubeconfig,
        log_dir=stack_paths.logs,
        name="operator-scoped",
        namespaces=(watched,),
    )
    op.start()
    try:
        here.create(pipeline_body("scoped"))
        here.wait_app("scoped")
        eventually(
            lambda: f"reconciled {watched}/scoped" in op.log_text(),
            what="the scoped operator's reconcile of its pipeline",
        )
        eventually(
            lambda: {"ChildCreated"} <= {e["reason"] for e in here.events("scoped")},
            what="events posted in the watched namespace",
        )
        time.sleep(2)  # a cluster-wide watch would have seen the earlier pipeline by now
        assert there.app("unwatched") is None
        log = op.log_text()
    finally:
        op.stop()
    assert f"{other}/unwatched" not in log
    # Nothing refused: no cluster-wide list or watch of pipelines or children was attempted
    # (the watched namespace's RoleBinding is all it has), and Namespaces it may read.
    assert not re.search(r"(?<![\w.-])403(?![\w.-])", log), log[-3000:]
    assert "forbidden" not in log.lower(), log[-3000:]
    assert "not enough permissions" not in log.lower(), log[-3000:]


# --- aggregated roles: Kubernetes' own admin/edit/view include pipelines ----------------------


@pytest.fixture(scope="module")
def aggregated_roles(
    helm: Helm, kube: KubeControlPlane, identity_chart: Path, crds: list[str]
) -> Iterator[str]:
    rendered = render(helm, identity_chart, RELEASE, ["aggregated-roles.yaml"])
    assert kinds(rendered) == [("ClusterRole", ""), ("ClusterRole", "")]
    kube.kubectl("apply", "--server-side", "-f", "-", stdin=rendered)
    yield rendered
    kube.kubectl("delete", "--ignore-not-found", "-f", "-", stdin=rendered)


def test_namespace_editors_may_create_pipelines_through_the_built_in_roles(
    aggregated_roles: str,
    authz: client.AuthorizationV1Api,
    kube: KubeControlPlane,
    two_namespaces: tuple[str, str],
) -> None:
    """kube-controller-manager's clusterrole-aggregation controller folds the chart's labelled
    roles into `edit`, `admin` and `view`; users bound to those need nothing else."""
    ns, other = two_namespaces
    kube.kubectl(
        "create", "rolebinding", "alice-edit", "--clusterrole=edit", "--user=alice", "-n", ns
    )
    kube.kubectl("create", "rolebinding", "bob-view", "--clusterrole=view", "--user=bob", "-n", ns)
    kube.kubectl(
        "create", "rolebinding", "carol-admin", "--clusterrole=admin", "--user=carol", "-n", ns
    )

    def can(user: str, verb: str, namespace: str = ns, sub: str = "") -> bool:
        return allowed(authz, user, verb, GROUP, PLURAL, namespace, sub)

    eventually(lambda: can("alice", "create"), timeout=60, what="edit aggregates pipelines")
    eventually(lambda: can("bob", "list"), timeout=60, what="view aggregates pipelines")
    eventually(lambda: can("carol", "create"), timeout=60, what="admin aggregates pipelines")
    for verb in ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"):
        assert can("alice", verb) and can("carol", verb), verb
    for verb in ("get", "patch", "update"):
        assert can("alice", verb, sub="scale"), f"{verb} scale"
    assert can("alice", "get", sub="status") and can("bob", "get", sub="status")
    assert not can("alice", "patch", sub="status")  # status is the operator's
    for verb in ("get", "list", "watch"):
        assert can("bob", verb), verb
    for verb in ("create", "patch", "update", "delete"):
        assert not can("bob", verb), verb
        assert not can("bob", verb, sub="scale"), f"{verb} scale"
    # Bound in one namespace only.
    assert not can("alice", "create", other) and not can("bob", "list", other)
    # The API server itself takes alice's pipeline (a server-side dry run: authorization,
    # admission and the CRD's validation, nothing stored for an operator to act on).
    proc = kube.kubectl(
        "--as=alice",
        "create",
        "--dry-run=server",
        "-n",
        ns,
        "-f",
        "-",
        stdin=json.dumps(pipeline_body("by-alice")),
    )
    assert "created (server dry run)" in proc.stdout, proc.stdout + proc.stderr
    refused = kube.kubectl(
        "--as=bob",
        "create",
        "--dry-run=server",
        "-n",
        ns,
        "-f",
        "-",
        stdin=json.dumps(pipeline_body("by-bob")),
        check=False,
    )
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
