"""`helm lint` and `helm template` on the chart with the real helm, and assertions on every
rendered object: labels, pod security, probes, RBAC, the rule and dashboard files embedded
unchanged, and no secret value anywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_harness import (
    CHART,
    CI_DIR,
    NO_DEPENDENCIES,
    Chart,
    dependencies_enabled,
    renderable_scenarios,
)

pytestmark = pytest.mark.helm

SCENARIOS = renderable_scenarios()
# (id, values files, --set items): the chart's defaults (dependencies off) and each ci/ file.
CASES = [("defaults", [], NO_DEPENDENCIES)] + [(p.stem, [p], []) for p in SCENARIOS]
# The scenario with everything on, its own objects rendered with the dependencies forced off
# (the subcharts themselves cannot be rendered here).
CASES.append(("full-values-without-dependencies", [CI_DIR / "full-values.yaml"], NO_DEPENDENCIES))
CASE_IDS = [c[0] for c in CASES]
LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/component",
)
SECRET_WORDS = re.compile(r"pass(word)?|secret|token|jaas|credential|private", re.I)


@pytest.fixture(scope="module")
def rendered(chart: Chart) -> dict[str, list[dict[str, Any]]]:
    return {case: chart.objects(files, sets) for case, files, sets in CASES}


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def test_the_renderable_scenarios_are_all_but_full_and_platform() -> None:
    """Which scenarios render here is decided by their values, not by a list kept by hand."""
    all_files = sorted(CI_DIR.glob("*-values.yaml"))
    assert [p.name for p in SCENARIOS] == [
        "app-values.yaml",
        "example-pipeline-values.yaml",
        "no-dependencies-values.yaml",
        "node-values.yaml",
        "operator-only-values.yaml",
    ]
    for name in ("full-values.yaml", "platform-values.yaml"):
        assert dependencies_enabled([CI_DIR / name], []) == [
            "strimzi",
            "cloudnativepg",
            "sparkOperator",
            "kubePrometheusStack",
        ]
    assert len(all_files) == len(SCENARIOS) + 2


def test_platform_release_adds_nothing_but_its_dependencies(chart: Chart) -> None:
    """platform-values.yaml with its dependencies turned off renders no object of its own: the
    platform release is the four operators (and the CRD in crds/), nothing else."""
    objects = chart.objects([CI_DIR / "platform-values.yaml"], NO_DEPENDENCIES)
    assert objects == []


def test_lint_of_the_chart_as_published_only_misses_the_dependencies(chart: Chart) -> None:
    proc = chart.helm.run("lint", str(CHART), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    problems = [
        line for line in proc.stdout.splitlines() if line.startswith(("[WARNING]", "[ERROR]"))
    ]
    assert problems == [
        f"[WARNING] {CHART}: chart directory is missing these dependencies: "
        "strimzi-kafka-operator,cloudnative-pg,spark-operator,kube-prometheus-stack"
    ]


def test_dependencies_are_pinned_switchable_and_from_their_repositories(chart: Chart) -> None:
    deps = {d["alias"]: d for d in chart.dependencies}
    assert set(deps) == {"strimzi", "cloudnativepg", "sparkOperator", "kubePrometheusStack"}
    for alias, dep in deps.items():
        assert dep["condition"] == f"{alias}.enabled"
        assert re.fullmatch(r"\d+\.\d+\.\d+", dep["version"]), dep
        assert dep["repository"].startswith("https://"), dep
    assert deps["strimzi"]["name"] == "strimzi-kafka-operator"
    assert deps["cloudnativepg"]["name"] == "cloudnative-pg"
    assert deps["sparkOperator"]["name"] == "spark-operator"
    assert deps["kubePrometheusStack"]["name"] == "kube-prometheus-stack"


@pytest.mark.parametrize(("case", "files", "sets"), CASES, ids=CASE_IDS)
def test_lint_is_clean(chart: Chart, case: str, files: list[Path], sets: list[str]) -> None:
    proc = chart.lint(files, sets)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("case", CASE_IDS)
def test_every_object_carries_the_standard_labels(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    for obj in rendered[case]:
        labels = obj["metadata"].get("labels") or {}
        missing = [k for k in LABELS if k not in labels]
        assert not missing, f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "pagestream"
        assert labels["app.kubernetes.io/instance"] == "ps"
        assert len(obj["metadata"]["name"]) <= 63


@pytest.mark.parametrize("case", CASE_IDS)
def test_no_secret_value_is_rendered(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    """The chart creates no Secret: Strimzi and CloudNativePG generate the passwords into their
    own Secrets, and everything here refers to those by name."""
    objects = rendered[case]
    assert not by_kind(objects, "Secret")

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if SECRET_WORDS.search(str(key)) and type(value) in (str, int, float):
                    raise AssertionError(f"{path}.{key} holds a literal value {value!r}")
                walk(value, f"{path}.{key}")
            if "name" in node and "value" in node and SECRET_WORDS.search(str(node["name"])):
                raise AssertionError(f"{path} sets {node['name']} in clear")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")

    for obj in objects:
        if obj["kind"] == "ConfigMap":  # dashboards: JSON text, checked as data below
            continue
        walk(obj, f"{obj['kind']}/{obj['metadata']['name']}")


@pytest.mark.parametrize("case", CASE_IDS)
def test_operator_pod_is_hardened_and_probed(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    deploy = one(rendered[case], "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert f"--liveness-port={ports['health']}" in container["args"]
    assert f"--metrics-port={ports['metrics']}" in container["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    # The read-only root filesystem leaves /tmp writable through an emptyDir.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["serviceAccountName"] == one(rendered[case], "ServiceAccount")["metadata"]["name"]
    # The selector is name + instance + component, so it never changes between versions.
    assert deploy["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "pagestream",
        "app.kubernetes.io/instance": "ps",
        "app.kubernetes.io/component": "operator",
    }


def test_operator_settings_follow_values(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deploy = one(rendered["operator-only-values"], "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/pagestream-operator:0.1.0-rc1"
    assert "--namespaces=shop-eu,shop-us" in container["args"]
    assert "--log-level=DEBUG" in container["args"]
    assert deploy["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "registry-credentials"}
    ]
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == "analytics-operator"
    default = one(rendered["defaults"], "Deployment")
    assert default["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "pagestream-operator:0.1.0"
    )


CRD_WATCH = [
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    }
]
# With watchNamespaces, kopf lists and watches Namespaces (refused, it retries for about a
# minute at every start before falling back to the names given).
NAMESPACE_WATCH = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}
]


def operator_rbac(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator's two ClusterRoles (the cluster-scoped CRD watch, and the namespaced rules
    on pipelines and their children), every binding to either, and the namespaces the operator
    is started with (empty: all)."""
    roles = [
        r
        for r in by_kind(objects, "ClusterRole")
        if r["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ]
    (global_role,) = [r for r in roles if r["metadata"]["name"].endswith("-global")]
    (namespaced_role,) = [r for r in roles if r is not global_role]
    names = {global_role["metadata"]["name"], namespaced_role["metadata"]["name"]}
    bindings = [
        b
        for b in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding")
        if b["roleRef"]["kind"] == "ClusterRole" and b["roleRef"]["name"] in names
    ]
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    (watched,) = [
        a.split("=", 1)[1].split(",") for a in container["args"] if "--namespaces=" in a
    ] or [[]]
    return {
        "global": global_role,
        "namespaced": namespaced_role,
        "bindings": bindings,
        "watched": watched,
    }


def bound(bindings: list[dict[str, Any]], role: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        b
        for b in bindings
        if b["kind"] == kind and b["roleRef"]["name"] == role["metadata"]["name"]
    ]


@pytest.mark.parametrize("case", CASE_IDS)
def test_rbac_is_least_privilege(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    objects = rendered[case]
    for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
            assert "*" not in rule["apiGroups"], rule
            assert "secrets" not in rule["resources"], rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
    rbac = operator_rbac(objects)
    # Cluster-wide, only what is cluster-scoped and read-only: the CRD watch kopf needs, and the
    # Namespace watch when it serves named namespaces.
    assert rbac["global"]["rules"] == CRD_WATCH + (NAMESPACE_WATCH if rbac["watched"] else [])
    (crd_binding,) = bound(rbac["bindings"], rbac["global"], "ClusterRoleBinding")
    assert not bound(rbac["bindings"], rbac["global"], "RoleBinding")
    # The namespaced rules: in each watched namespace, or cluster-wide when it watches all.
    namespaced = rbac["namespaced"]
    assert not any(r["apiGroups"] == ["apiextensions.k8s.io"] for r in namespaced["rules"])
    per_namespace = bound(rbac["bindings"], namespaced, "RoleBinding")
    cluster_wide = bound(rbac["bindings"], namespaced, "ClusterRoleBinding")
    if rbac["watched"]:
        assert sorted(b["metadata"]["namespace"] for b in per_namespace) == sorted(rbac["watched"])
        assert cluster_wide == []
    else:
        assert per_namespace == [] and len(cluster_wide) == 1
    # No other ClusterRoleBinding in the release: nothing else is granted cluster-wide.
    assert len(by_kind(objects, "ClusterRoleBinding")) == 1 + len(cluster_wide)
    sa = one(objects, "ServiceAccount")
    for binding in rbac["bindings"]:
        assert binding["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
        (subject,) = binding["subjects"]
        assert (subject["kind"], subject["name"], subject["namespace"]) == (
            "ServiceAccount",
            sa["metadata"]["name"],
            "pagestream",
        )
    assert crd_binding in rbac["bindings"]


def test_watched_namespaces_get_role_bindings_not_a_cluster_role_binding(chart: Chart) -> None:
    objects = chart.objects([], [*NO_DEPENDENCIES, "operator.watchNamespaces={a,b}"])
    rbac = operator_rbac(objects)
    assert rbac["watched"] == ["a", "b"]
    namespaced = rbac["namespaced"]
    per_namespace = bound(rbac["bindings"], namespaced, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in per_namespace} == {"a", "b"}
    assert len(per_namespace) == 2
    for b in per_namespace:
        assert b["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": namespaced["metadata"]["name"],
        }
    assert bound(rbac["bindings"], namespaced, "ClusterRoleBinding") == []
    # The CRD and Namespace watches stay cluster-wide: those kinds are cluster-scoped.
    (crb,) = by_kind(objects, "ClusterRoleBinding")
    assert crb["roleRef"]["name"] == rbac["global"]["metadata"]["name"]
    assert rbac["global"]["rules"] == CRD_WATCH + NAMESPACE_WATCH
    # With every namespace watched, the same rules are bound once, cluster-wide.
    everywhere = operator_rbac(chart.objects([], NO_DEPENDENCIES))
    (crb,) = bound(everywhere["bindings"], everywhere["namespaced"], "ClusterRoleBinding")
    assert bound(everywhere["bindings"], everywhere["namespaced"], "RoleBinding") == []
    assert everywhere["global"]["rules"] == CRD_WATCH  # kopf lists no Namespaces then


def test_pipeline_rights_aggregate_into_the_default_roles(
    chart: Chart, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    roles = {
        r["metadata"]["name"]: r
        for r in by_kind(rendered["defaults"], "ClusterRole")
        if r["metadata"]["labels"]["app.kubernetes.io/component"] == "rbac"
    }
    assert set(roles) == {"ps-pagestream-edit", "ps-pagestream-view"}
    aggregation = {
        name: {k: v for k, v in r["metadata"]["labels"].items() if k.startswith("rbac.")}
        for name, r in roles.items()
    }
    assert aggregation == {
        "ps-pagestream-edit": {
            "rbac.authorization.k8s.io/aggregate-to-edit": "true",
            "rbac.authorization.k8s.io/aggregate-to-admin": "true",
        },
        "ps-pagestream-view": {"rbac.authorization.k8s.io/aggregate-to-view": "true"},
    }

    def granted(role: dict[str, Any]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for rule in role["rules"]:
            assert rule["apiGroups"] == ["pagestream.dev"], rule
            for resource in rule["resources"]:
                out.setdefault(resource, set()).update(rule["verbs"])
        return out

    assert granted(roles["ps-pagestream-edit"]) == {
        "pageanalyticspipelines": {
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        },
        "pageanalyticspipelines/scale": {"get", "patch", "update"},
        "pageanalyticspipelines/status": {"get"},
    }
    assert granted(roles["ps-pagestream-view"]) == {
        "pageanalyticspipelines": {"get", "list", "watch"},
        "pageanalyticspipelines/status": {"get"},
    }
    off = chart.objects([], [*NO_DEPENDENCIES, "rbac.aggregateToDefaultRoles=false"])
    assert not [
        r
        for r in by_kind(off, "ClusterRole")
        if r["metadata"]["labels"]["app.kubernetes.io/component"] == "rbac"
    ]


def test_spark_submit_may_manage_network_policies_in_the_release_namespace(
    chart: Chart, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    """Spark 4.x's spark-submit, run by the Spark operator's controller, creates a NetworkPolicy
    per application; the release grants exactly that, in its own namespace, to the controller."""
    role = one(rendered["defaults"], "Role")
    assert role["metadata"]["namespace"] == "pagestream"
    assert role["rules"] == [
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["networkpolicies"],
            "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
        }
    ]
    binding = one(rendered["defaults"], "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "spark-operator-controller", "namespace": "pagestream"}
    ]
    elsewhere = chart.objects(
        [], [*NO_DEPENDENCIES, "sparkSubmitAccess.serviceAccount.namespace=spark-operator"]
    )
    (subject,) = one(elsewhere, "RoleBinding")["subjects"]
    assert subject["namespace"] == "spark-operator"
    off = chart.objects([], [*NO_DEPENDENCIES, "sparkSubmitAccess.create=false"])
    assert by_kind(off, "Role") == by_kind(off, "RoleBinding") == []


def test_prometheus_rule_embeds_the_rule_file(rendered: dict[str, list[dict[str, Any]]]) -> None:
    rule = one(rendered["defaults"], "PrometheusRule")
    source = yaml.safe_load((CHART / "rules" / "pagestream-alerts.yaml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    labelled = one(rendered["example-pipeline-values"], "PrometheusRule")
    assert labelled["metadata"]["labels"]["release"] == "monitoring"


def test_the_operator_service_monitor_keeps_the_pipelines_namespace_label(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """pagestream_operator_pipeline_state{namespace=<the pipeline's>} must reach Prometheus as
    `namespace`, which the alerts join on, not as `exported_namespace`."""
    monitor = one(rendered["defaults"], "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    assert endpoint["port"] == "metrics"


def test_dashboards_ship_as_sidecar_configmaps(rendered: dict[str, list[dict[str, Any]]]) -> None:
    maps = by_kind(rendered["defaults"], "ConfigMap")
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert len(maps) == len(files) >= 2
    shipped = {}
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((key, text),) = cm["data"].items()
        shipped[key] = json.loads(text)
    assert shipped == {f"pagestream-{p.stem}.json": json.loads(p.read_text()) for p in files}
    folder = by_kind(rendered["example-pipeline-values"], "ConfigMap")[0]
    assert folder["metadata"]["annotations"] == {"grafana_folder": "pagestream"}


def test_monitoring_objects_can_be_turned_off(rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = {o["kind"] for o in rendered["operator-only-values"]}
    assert kinds == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        # The operator's rights in shop-eu and shop-us, bound there only.
        "RoleBinding",
        "Service",
        "Deployment",
        "Job",
    }


def test_kafka_is_kraft_with_scram_and_acls(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["example-pipeline-values"]
    kafka = one(objects, "Kafka")
    assert "zookeeper" not in kafka["spec"]
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"] == {"type": "simple"}
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    pool = one(objects, "KafkaNodePool")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    assert pool["spec"]["replicas"] == 3
    assert pool["spec"]["storage"] == {"type": "ephemeral"}
    users = {u["metadata"]["name"]: u for u in by_kind(objects, "KafkaUser")}
    reader, writer = users["pagestream-pipeline"], users["pagestream-producer"]
    for user in (reader, writer):
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    topic_ops = {
        name: next(
            a for a in u["spec"]["authorization"]["acls"] if a["resource"]["type"] == "topic"
        )
        for name, u in users.items()
    }
    assert "Write" not in topic_ops["pagestream-pipeline"]["operations"]
    assert "Read" in topic_ops["pagestream-pipeline"]["operations"]
    assert "Read" not in topic_ops["pagestream-producer"]["operations"]
    assert "Write" in topic_ops["pagestream-producer"]["operations"]


def test_example_pipeline_is_wired_to_the_data_plane(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["example-pipeline-values"]
    pipeline = one(objects, "PageAnalyticsPipeline")
    spec = pipeline["spec"]
    assert pipeline["metadata"]["name"] == "shop-views"
    assert spec["kafka"]["strimziCluster"]["name"] == one(objects, "Kafka")["metadata"]["name"]
    assert spec["kafka"]["authentication"]["secretRef"]["name"] == "pagestream-pipeline"
    assert spec["kafka"]["topic"] == {"name": "page-views", "manage": True, "replicas": 3}
    assert spec["postgres"]["cnpgCluster"]["name"] == one(objects, "Cluster")["metadata"]["name"]
    pvc = one(objects, "PersistentVolumeClaim")
    assert spec["checkpoint"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert spec["spark"]["executor"]["instances"] == 2


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["operator.replicas=2"], "at '/operator/replicas': value must be one of 0, 1"),
        (["kafka.storage.type=local"], "at '/kafka/storage/type'"),
        (["examplePipeline.create=true", "postgres.create=false"], "at '/postgres/create'"),
        (["operator.logLevel=CHATTY"], "at '/operator/logLevel'"),
        (["kafka.nmae=typo"], "additional properties 'nmae' not allowed"),
    ],
)
def test_values_schema_rejects_bad_values(chart: Chart, sets: list[str], message: str) -> None:
    proc = chart.template([], [*NO_DEPENDENCIES, *sets], check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize("case", CASE_IDS)
def test_the_operator_accepts_the_arguments_the_deployment_passes(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    """The operator's own settings loader parses the container's args, and the probed and
    scraped ports are the ones it will listen on."""
    from pagestream_operator.settings import OperatorSettings

    deploy = one(rendered[case], "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    settings = OperatorSettings.load(container["args"], env={})
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.metrics_port == ports["metrics"]
    assert settings.liveness_port == ports["health"]
    assert settings.log_format == "json"
    service = next(
        s for s in by_kind(rendered[case], "Service") if s["metadata"]["name"].endswith("-metrics")
    )
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
