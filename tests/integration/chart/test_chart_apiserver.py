"""Every object the chart renders, accepted by the real kube-apiserver (server-side apply,
dry run) with the real CRDs of Strimzi, CloudNativePG, the Spark operator and
prometheus-operator installed; and the pipeline NOTES.txt prints, accepted too. The chart's
pods are admitted under the restricted Pod Security Standard (with the uid the image sets, or
the one a platform assigns), and values.schema.json knows exactly the security-context fields
this API server does."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_harness import (
    CHART,
    CI_DIR,
    NO_DEPENDENCIES,
    Chart,
    kubectl,
    renderable_scenarios,
    server_dry_run,
)

from pagestream.stack.kube import KubeControlPlane

pytestmark = [pytest.mark.helm, pytest.mark.kube]

CASES = [("defaults", [], NO_DEPENDENCIES)] + [(p.stem, [p], []) for p in renderable_scenarios()]
# The scenario with everything on, its own objects rendered with the dependencies forced off
# (the subcharts themselves cannot be rendered here).
CASES.append(("full-values-without-dependencies", [CI_DIR / "full-values.yaml"], NO_DEPENDENCIES))


@pytest.mark.parametrize(("case", "files", "sets"), CASES, ids=[c[0] for c in CASES])
def test_api_server_accepts_every_rendered_object(
    chart: Chart,
    kube: KubeControlPlane,
    chart_namespace: str,
    case: str,
    files: list[Path],
    sets: list[str],
) -> None:
    objects = chart.objects(files, sets, namespace=chart_namespace)
    # The namespaces an operator watches exist before it is installed (operator-only-values).
    watched = sorted(
        {o["metadata"]["namespace"] for o in objects if "namespace" in o["metadata"]}
        - {chart_namespace}
    )
    for name in watched:
        kubectl(kube, "create", "namespace", name)
    try:
        out = server_dry_run(kube, objects, chart_namespace)
    finally:
        for name in watched:
            kubectl(kube, "delete", "namespace", name, "--wait=false")
    # One line per object, each applied (dry run), none skipped.
    applied = [line for line in out.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len(objects), out


def test_notes_print_a_pipeline_the_api_server_accepts(
    chart: Chart, kube: KubeControlPlane, chart_namespace: str
) -> None:
    notes = chart.notes(kube, [], NO_DEPENDENCIES, namespace=chart_namespace)
    assert f"helm test ps -n {chart_namespace}" in notes
    assert "create secret generic pagestream-pii" in notes
    manifest = notes.split("<<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0]
    objects = [d for d in yaml.safe_load_all(manifest) if d]
    assert [o["kind"] for o in objects] == ["PersistentVolumeClaim", "PageAnalyticsPipeline"]
    pipeline = objects[1]
    assert pipeline["spec"]["kafka"]["strimziCluster"] == {"name": "pagestream-kafka"}
    assert pipeline["spec"]["postgres"]["cnpgCluster"] == {"name": "pagestream-db"}
    out = server_dry_run(kube, objects, chart_namespace)
    assert "pageanalyticspipeline.pagestream.dev/page-views serverside-applied" in out


RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
POD_CASES = [
    ("defaults", [], NO_DEPENDENCIES),
    ("pod-settings-values", [CI_DIR / "pod-settings-values.yaml"], []),
]


def pods_of(objects: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The Pods the chart's Deployment and Job would create (their templates, as Pods)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{o['metadata']['name']}-pod",
                "namespace": namespace,
                "labels": o["spec"]["template"]["metadata"]["labels"],
            },
            "spec": o["spec"]["template"]["spec"],
        }
        for o in objects
        if o["kind"] in {"Deployment", "Job"}
    ]


@pytest.mark.parametrize(("case", "files", "sets"), POD_CASES, ids=[c[0] for c in POD_CASES])
def test_the_pods_are_admitted_under_the_restricted_pod_security_standard(
    chart: Chart,
    kube: KubeControlPlane,
    chart_namespace: str,
    case: str,
    files: list[Path],
    sets: list[str],
) -> None:
    """PodSecurity admission enforces `restricted` on Pods (a Deployment only warns), so the
    pod templates are dry-run created as Pods in a namespace enforcing it; the Priority admission
    plugin checks that priorityClassName names a PriorityClass, so that is created first."""
    kubectl(kube, "label", "namespace", chart_namespace, RESTRICTED)
    pods = pods_of(chart.objects(files, sets, namespace=chart_namespace), chart_namespace)
    assert len(pods) == 2
    classes = sorted(
        {p["spec"]["priorityClassName"] for p in pods if "priorityClassName" in p["spec"]}
    )
    assert classes == (["platform-critical"] if case == "pod-settings-values" else [])
    for name in classes:
        kubectl(kube, "create", "priorityclass", name, "--value=1000000")
    try:
        out = server_dry_run(kube, pods, chart_namespace)
        assert out.count("serverside-applied (server dry run)") == 2, out
        # The control: the same pod without runAsNonRoot is refused, so enforcement is on.
        root = copy.deepcopy(pods[0])
        root["spec"]["securityContext"].pop("runAsNonRoot")
        for container in root["spec"]["containers"]:
            container["securityContext"].pop("runAsNonRoot")
        proc = kubectl(
            kube,
            "apply",
            "--server-side",
            "--dry-run=server",
            "-n",
            chart_namespace,
            "-f",
            "-",
            stdin=json.dumps(root),
            check=False,
        )
        assert proc.returncode != 0 and 'violates PodSecurity "restricted' in proc.stderr, (
            proc.stderr
        )
    finally:
        for name in classes:
            kubectl(kube, "delete", "priorityclass", name)


def test_the_schema_knows_the_security_context_fields_of_the_api_server(
    kube: KubeControlPlane,
) -> None:
    """values.schema.json refuses unknown keys in the two security contexts (a misspelt one
    would otherwise be dropped without a word, a setting silently lost); it must list exactly
    the fields of this Kubernetes version, and nothing in the probes or env it does not know."""
    api = json.loads(kubectl(kube, "get", "--raw", "/openapi/v3/api/v1").stdout)
    k8s = api["components"]["schemas"]
    ours = json.loads((CHART / "values.schema.json").read_text())["properties"]["operator"]
    ours = ours["properties"]
    pairs = {
        "podSecurityContext": "io.k8s.api.core.v1.PodSecurityContext",
        "containerSecurityContext": "io.k8s.api.core.v1.SecurityContext",
    }
    for key, definition in pairs.items():
        assert ours[key]["additionalProperties"] is False
        assert set(ours[key]["properties"]) == set(k8s[definition]["properties"]), key
    capabilities = ours["containerSecurityContext"]["properties"]["capabilities"]["properties"]
    assert set(capabilities) == set(k8s["io.k8s.api.core.v1.Capabilities"]["properties"])
    seccomp = ours["podSecurityContext"]["properties"]["seccompProfile"]["properties"]
    assert set(seccomp) == set(k8s["io.k8s.api.core.v1.SeccompProfile"]["properties"])
    for probe in ("livenessProbe", "readinessProbe"):
        assert set(ours[probe]["properties"]) <= set(k8s["io.k8s.api.core.v1.Probe"]["properties"])
    env = ours["extraEnv"]["items"]["properties"]
    assert set(env) == set(k8s["io.k8s.api.core.v1.EnvVar"]["properties"])
