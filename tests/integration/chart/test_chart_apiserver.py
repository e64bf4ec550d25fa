"""Every object the chart renders, accepted by the real kube-apiserver (server-side apply,
dry run) with the real CRDs of Strimzi, CloudNativePG, the Spark operator and
prometheus-operator installed; and the pipeline NOTES.txt prints, accepted too."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from chart_harness import (
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
