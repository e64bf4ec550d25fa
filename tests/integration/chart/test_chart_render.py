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
    data_plane_objects,
    dependencies_enabled,
    renderable_scenarios,
)

from pagestream.stack.images import dockerfile_instructions
from pagestream.stack.paths import REPO_ROOT

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


def _stage_user(
    stages: dict[str, tuple[str, list[tuple[str, str]]]],
    parent: str,
    instructions: list[tuple[str, str]],
) -> list[str]:
    """The last USER of a stage, else of the stage it is built FROM (if one of this file)."""
    own = [r for w, r in instructions if w == "USER"][-1:]
    if own or parent not in stages:
        return own
    return _stage_user(stages, *stages[parent])


def image_user(entrypoint: str) -> str:
    """The USER of the image stage whose ENTRYPOINT runs ``entrypoint`` (images/*/Dockerfile*),
    following ``FROM <stage>`` to the stage it builds on (a target's USER may be its base's)."""
    found = []
    for dockerfile in sorted((REPO_ROOT / "images").glob("*/Dockerfile*")):
        if dockerfile.name.endswith(".dockerignore"):
            continue
        # Each stage: (its parent's alias, its instructions); the effective USER is the last
        # in the stage, else its parent's.
        stages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
        current: list[tuple[str, str]] | None = None
        ordered: list[tuple[str, list[tuple[str, str]]]] = []
        for word, rest in dockerfile_instructions(dockerfile):
            if word == "FROM":
                parts = rest.split()
                parent = parts[0]
                alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else ""
                current = []
                stages[alias or f"#{len(ordered)}"] = (parent, current)
                ordered.append((parent, current))
            elif current is not None:
                current.append((word, rest))
        for parent, instructions in ordered:
            if any(w == "ENTRYPOINT" and entrypoint in r for w, r in instructions):
                found += _stage_user(stages, parent, instructions)
    assert len(found) == 1, f"one image stage should run {entrypoint} as a USER: {found}"
    return found[0]


# The uid the operator's image runs as when the pod names none.
IMAGE_UID = int(image_user("pagestream-operator").split(":")[0])
SHA = "sha256:" + "5e" * 32


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
        "pod-settings-values.yaml",
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
    # A uid, where one is set (the platform's, as in pod-settings-values), is not root; where
    # none is, the image's numeric USER is (test_the_image_user_lets_runasnonroot_be_checked).
    assert pod["securityContext"].get("runAsUser", IMAGE_UID) > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert len(set(ports.values())) == len(ports) == 3
    assert f"--liveness-port={ports['health']}" in container["args"]
    assert f"--readiness-port={ports['ready']}" in container["args"]
    assert f"--metrics-port={ports['metrics']}" in container["args"]
    # Two probes, two questions: alive (kopf's /healthz) and ready to reconcile (/readyz).
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ready"}
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


def test_the_image_user_lets_runasnonroot_be_checked() -> None:
    """The chart's pods name no uid by default, so the image's USER is the one they run as. The
    kubelet can enforce runAsNonRoot only for a numeric USER (it refuses a named one it cannot
    check), and it must not be 0."""
    user = image_user("pagestream-operator")
    assert re.fullmatch(r"[0-9]+(:[0-9]+)?", user), user
    assert IMAGE_UID > 0


@pytest.mark.parametrize("case", [c for c in CASE_IDS if c != "pod-settings-values"])
def test_the_chart_fixes_no_uid(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    """No runAsUser, runAsGroup or fsGroup in any pod the chart renders, the helm test's
    included, so a platform that assigns uids per namespace (OpenShift) may set its own."""
    pods = [
        o["spec"]["template"]["spec"] for o in rendered[case] if o["kind"] in {"Deployment", "Job"}
    ]
    assert len(pods) == 2
    for pod in pods:
        for context in [pod["securityContext"], *(c["securityContext"] for c in pod["containers"])]:
            assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(context), context
            assert context["runAsNonRoot"] is True


def operator_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = one(objects, "Deployment")["spec"]["template"]["spec"]
    return pod


def test_pod_settings_reach_the_pod(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """ci/pod-settings-values.yaml: digest, PriorityClass, extra env, the platform's uid and
    probe timings, each where Kubernetes reads it; the helm test pod (the same image) follows."""
    objects = rendered["pod-settings-values"]
    pod = operator_pod(objects)
    (container,) = pod["containers"]
    digest = yaml.safe_load((CI_DIR / "pod-settings-values.yaml").read_text())["operator"]
    digest = digest["image"]["digest"]
    # The digest wins over the tag the same file sets.
    assert container["image"] == f"registry.example.com/pagestream/operator@{digest}"
    assert pod["priorityClassName"] == "platform-critical"
    # The chart's own variables first, the extra ones after them, valueFrom kept whole.
    assert container["env"] == [
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        {"name": "TMPDIR", "value": "/tmp"},
        {"name": "PYTHONFAULTHANDLER", "value": "1"},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    # Given keys merge over the secure defaults.
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000680000,
        "fsGroup": 1000680000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/healthz", "port": "health"},
        "initialDelaySeconds": 10,
        "periodSeconds": 30,
        "timeoutSeconds": 5,
        "failureThreshold": 5,
    }
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/readyz", "port": "ready"},
        "initialDelaySeconds": 2,
        "periodSeconds": 5,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    test_pod = one(objects, "Job")["spec"]["template"]["spec"]
    assert test_pod["containers"][0]["image"] == container["image"]
    assert test_pod["securityContext"] == pod["securityContext"]
    assert test_pod["containers"][0]["securityContext"] == container["securityContext"]
    # Defaults: no PriorityClass, nothing extra in the environment.
    default = operator_pod(rendered["defaults"])
    assert "priorityClassName" not in default
    assert [e["name"] for e in default["containers"][0]["env"]] == [
        "PYTHONDONTWRITEBYTECODE",
        "TMPDIR",
    ]


@pytest.mark.parametrize(
    ("sets", "image"),
    [
        ([f"operator.image.digest={SHA}"], f"pagestream-operator@{SHA}"),
        ([f"operator.image.digest={SHA}", "operator.image.tag=9.9"], f"pagestream-operator@{SHA}"),
        (["operator.image.tag=9.9"], "pagestream-operator:9.9"),
        ([], "pagestream-operator:0.1.0"),  # the chart's appVersion
    ],
)
def test_a_digest_takes_precedence_over_the_tag(chart: Chart, sets: list[str], image: str) -> None:
    objects = chart.objects([], [*NO_DEPENDENCIES, *sets])
    assert operator_pod(objects)["containers"][0]["image"] == image
    assert one(objects, "Job")["spec"]["template"]["spec"]["containers"][0]["image"] == image


def test_security_contexts_come_from_values(chart: Chart) -> None:
    objects = chart.objects(
        [],
        [
            *NO_DEPENDENCIES,
            # null drops a default key; the others merge over the defaults.
            "operator.podSecurityContext.seccompProfile=null",
            "operator.podSecurityContext.runAsGroup=0",
            "operator.containerSecurityContext.runAsUser=1000680000",
            "operator.containerSecurityContext.capabilities.add={NET_BIND_SERVICE}",
        ],
    )
    pod = operator_pod(objects)
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsGroup": 0}
    sc = pod["containers"][0]["securityContext"]
    assert sc["runAsUser"] == 1000680000
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert sc["readOnlyRootFilesystem"] is True


def test_the_pod_disruption_budget_only_when_enabled(
    chart: Chart, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    for case in CASE_IDS:
        if case != "pod-settings-values":
            assert by_kind(rendered[case], "PodDisruptionBudget") == [], case
    objects = rendered["pod-settings-values"]
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"] == {
        "minAvailable": 1,
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
        "selector": one(objects, "Deployment")["spec"]["selector"],
    }
    percent = chart.objects(
        [],
        [
            *NO_DEPENDENCIES,
            "operator.podDisruptionBudget.enabled=true",
            "operator.podDisruptionBudget.minAvailable=100%",
            "operator.podDisruptionBudget.unhealthyPodEvictionPolicy=IfHealthyBudget",
        ],
    )
    spec = one(percent, "PodDisruptionBudget")["spec"]
    assert (spec["minAvailable"], spec["unhealthyPodEvictionPolicy"]) == ("100%", "IfHealthyBudget")
    # No operator, no budget for it.
    off = chart.objects(
        [],
        [
            *NO_DEPENDENCIES,
            "operator.enabled=false",
            "operator.podDisruptionBudget.enabled=true",
            # Without the operator, nobody but helm can create Kafka and PostgreSQL.
            "dataPlane.appliedBy=helm",
        ],
    )
    assert by_kind(off, "PodDisruptionBudget") == []


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector["matchLabels"].items() <= labels.items()


def test_the_network_policy_only_when_enabled_and_what_it_allows(
    chart: Chart, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    for case in CASE_IDS:
        if case != "pod-settings-values":
            assert by_kind(rendered[case], "NetworkPolicy") == [], case
    objects = rendered["pod-settings-values"]
    policy = one(objects, "NetworkPolicy")["spec"]
    deploy = one(objects, "Deployment")
    assert policy["podSelector"] == deploy["spec"]["selector"]
    assert selects(policy["podSelector"], deploy["spec"]["template"]["metadata"]["labels"])
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    port_names = {p["name"] for p in deploy["spec"]["template"]["spec"]["containers"][0]["ports"]}
    metrics, probes = policy["ingress"]
    # Metrics: from the monitoring namespace, and from the chart's own helm test pod.
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    monitoring, test_pod = metrics["from"]
    assert monitoring == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    job = one(objects, "Job")["spec"]["template"]["metadata"]["labels"]
    assert set(test_pod) == {"podSelector"} and selects(test_pod["podSelector"], job)
    assert not selects(test_pod["podSelector"], deploy["spec"]["template"]["metadata"]["labels"])
    # The probe ports, from anywhere (the kubelet probes from the node).
    assert "from" not in probes
    assert probes["ports"] == [
        {"port": "health", "protocol": "TCP"},
        {"port": "ready", "protocol": "TCP"},
    ]
    assert {p["port"] for rule in policy["ingress"] for p in rule["ports"]} == port_names
    dns, api, extra = policy["egress"]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert api == {
        "ports": [{"port": 6443, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}],
    }
    assert extra == {
        "to": [{"ipBlock": {"cidr": "10.0.0.10/32"}}],
        "ports": [{"port": 8443, "protocol": "TCP"}],
    }
    # The defaults: metrics from anywhere, the API server's usual ports to any address.
    enabled = chart.objects([], [*NO_DEPENDENCIES, "operator.networkPolicy.enabled=true"])
    spec = one(enabled, "NetworkPolicy")["spec"]
    assert spec["ingress"][0] == {"ports": [{"port": "metrics", "protocol": "TCP"}]}
    assert spec["egress"][1] == {
        "ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]
    }
    assert len(spec["egress"]) == 2


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


def spark_submit_binding(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (binding,) = [
        b
        for b in by_kind(objects, "RoleBinding")
        if b["metadata"]["name"].endswith("-spark-submit")
    ]
    return binding


def test_spark_submit_may_manage_network_policies_in_the_release_namespace(
    chart: Chart, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    """Spark 4.x's spark-submit, run by the Spark operator's controller, creates a NetworkPolicy
    per application; the release grants exactly that, in its own namespace, to the controller."""
    (role,) = [
        r
        for r in by_kind(rendered["defaults"], "Role")
        if r["metadata"]["name"].endswith("-spark-submit")
    ]
    assert role["metadata"]["namespace"] == "pagestream"
    assert role["rules"] == [
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["networkpolicies"],
            "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
        }
    ]
    binding = spark_submit_binding(rendered["defaults"])
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
    (subject,) = spark_submit_binding(elsewhere)["subjects"]
    assert subject["namespace"] == "spark-operator"
    off = chart.objects([], [*NO_DEPENDENCIES, "sparkSubmitAccess.create=false"])
    assert [
        o["metadata"]["name"]
        for o in by_kind(off, "Role") + by_kind(off, "RoleBinding")
        if o["metadata"]["name"].endswith("-spark-submit")
    ] == []


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
    maps = [
        cm
        for cm in by_kind(rendered["defaults"], "ConfigMap")
        if cm["metadata"]["labels"]["app.kubernetes.io/component"] != "data-plane"
    ]
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
        # The operator pod's settings: helm names the field.
        (["operator.image.digest=sha256:abc"], "at '/operator/image/digest'"),
        (
            ["operator.podSecurityContext.runAsUser=root"],
            "at '/operator/podSecurityContext/runAsUser': got string, want integer",
        ),
        (
            ["operator.containerSecurityContext.readOnlyRootFileSystem=true"],
            "additional properties 'readOnlyRootFileSystem' not allowed",
        ),
        (["operator.priorityClassName=Not_A_Name"], "at '/operator/priorityClassName'"),
        (
            ["operator.extraEnv[0].name=A", "operator.extraEnv[0].value=1"],
            "at '/operator/extraEnv/0/value': got number, want string",
        ),
        (
            ["operator.readinessProbe.periodSeconds=0"],
            "at '/operator/readinessProbe/periodSeconds'",
        ),
        (
            ["operator.podDisruptionBudget.minAvailable=half"],
            "at '/operator/podDisruptionBudget/minAvailable'",
        ),
        (
            ["operator.networkPolicy.enabled=maybe"],
            "at '/operator/networkPolicy/enabled': got string, want boolean",
        ),
        (
            ["operator.networkPolicy.apiServer.cidrs={10.0.0.1}"],
            "at '/operator/networkPolicy/apiServer/cidrs/0'",
        ),
        # Not a schema rule: the template refuses two endpoints on one port.
        (
            ["operator.readinessPort=8081"],
            "operator.metricsPort, operator.livenessPort and operator.readinessPort must be three different ports",
        ),
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
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    settings = OperatorSettings.load(container["args"], env=env)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.metrics_port == ports["metrics"]
    assert settings.liveness_port == ports["health"]
    assert settings.readiness_port == ports["ready"]
    assert settings.log_format == "json"
    service = next(
        s for s in by_kind(rendered[case], "Service") if s["metadata"]["name"].endswith("-metrics")
    )
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]


def test_dashboards_read_postgres_as_the_read_only_role(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """Grafana's datasource logs in as postgres.readerRole, a CloudNativePG managed role whose
    password Secret the user makes, and the example pipeline grants it its schema; the owner
    the job writes as is nobody's dashboard login."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    reader = values["postgres"]["readerRole"]
    grafana = values["kubePrometheusStack"]["grafana"]
    (datasource,) = grafana["additionalDataSources"]
    assert datasource["user"] == reader["name"] != values["postgres"]["owner"]
    secret_ref = grafana["envValueFrom"]["PAGESTREAM_PG_PASSWORD"]["secretKeyRef"]
    assert secret_ref["name"] == reader["passwordSecret"]
    objects = rendered["example-pipeline-values"]
    (cluster,) = by_kind(objects, "Cluster")
    assert cluster["spec"]["managed"]["roles"] == [
        {
            "name": reader["name"],
            "ensure": "present",
            "login": True,
            "comment": "read-only access for pagestream dashboards",
            "passwordSecret": {"name": reader["passwordSecret"]},
        }
    ]
    (pipeline,) = by_kind(objects, "PageAnalyticsPipeline")
    assert pipeline["spec"]["postgres"]["readerRole"] == reader["name"]


DATA_PLANE_KINDS = {"Kafka", "KafkaNodePool", "KafkaUser", "Cluster"}


def helm_resources(chart: Chart, sets: list[str]) -> list[dict[str, Any]]:
    """What helm itself would create: the rendered documents, the data plane not expanded."""
    return [d for d in yaml.safe_load_all(chart.template([], sets).stdout) if d]


def test_by_default_the_operator_applies_kafka_and_postgresql(chart: Chart) -> None:
    """One release installs the platform operators and the data plane: helm creates no Kafka or
    Cluster (their CRDs would not exist yet when it renders); they are listed in the data plane
    ConfigMap that the operator is pointed at, and it may apply exactly those kinds there."""
    objects = helm_resources(chart, NO_DEPENDENCIES)
    assert {o["kind"] for o in objects} & DATA_PLANE_KINDS == set()
    (configmap,) = [
        o
        for o in by_kind(objects, "ConfigMap")
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == "data-plane"
    ]
    name = configmap["metadata"]["name"]
    listed = sorted((o["kind"], o["metadata"]["name"]) for o in data_plane_objects(objects))
    assert listed == [
        ("Cluster", "pagestream-db"),
        ("Kafka", "pagestream-kafka"),
        ("KafkaNodePool", "pagestream-kafka-dual"),
        ("KafkaUser", "pagestream-pipeline"),
        ("KafkaUser", "pagestream-producer"),
    ]
    args = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--data-plane-configmap={name}" in args
    assert "--data-plane-namespace=pagestream" in args
    (role,) = [r for r in by_kind(objects, "Role") if r["metadata"]["name"].endswith("-data-plane")]
    assert role["metadata"]["namespace"] == "pagestream"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [name],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": ["kafka.strimzi.io"],
            "resources": ["kafkas", "kafkanodepools", "kafkausers"],
            "verbs": ["get", "list", "create", "patch", "delete"],
        },
        {
            "apiGroups": ["postgresql.cnpg.io"],
            "resources": ["clusters"],
            "verbs": ["get", "list", "create", "patch", "delete"],
        },
    ]
    (binding,) = [
        b for b in by_kind(objects, "RoleBinding") if b["metadata"]["name"].endswith("-data-plane")
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_applied_by_helm_the_data_plane_is_the_releases_own(chart: Chart) -> None:
    objects = helm_resources(chart, [*NO_DEPENDENCIES, "dataPlane.appliedBy=helm"])
    kinds = sorted(o["kind"] for o in objects if o["kind"] in DATA_PLANE_KINDS)
    assert kinds == ["Cluster", "Kafka", "KafkaNodePool", "KafkaUser", "KafkaUser"]
    assert not [
        o
        for o in objects
        if o["kind"] == "ConfigMap"
        and o["metadata"]["labels"]["app.kubernetes.io/component"] == "data-plane"
    ]
    args = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--data-plane")]
    assert not [
        r for r in by_kind(objects, "Role") if r["metadata"]["name"].endswith("-data-plane")
    ]
    # No data plane, nothing to apply: no ConfigMap, no flags, no Role either.
    none = helm_resources(chart, [*NO_DEPENDENCIES, "kafka.create=false", "postgres.create=false"])
    args = one(none, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--data-plane")]


def test_without_the_operator_nobody_could_apply_the_data_plane(chart: Chart) -> None:
    proc = chart.template([], [*NO_DEPENDENCIES, "operator.enabled=false"], check=False)
    assert proc.returncode != 0
    assert (
        "dataPlane.appliedBy=operator: the pagestream operator applies the Kafka and PostgreSQL "
        "clusters, so operator.enabled must be true; or set dataPlane.appliedBy=helm"
    ) in proc.stderr
