"""manifests/examples: each file is accepted by the real kube-apiserver with the pipeline CRD
installed (server-side apply, dry run), and the pipelines are what their names say."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from chart_harness import NO_DEPENDENCIES, Chart, kubectl, server_dry_run

from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import REPO_ROOT

pytestmark = pytest.mark.kube

EXAMPLES = REPO_ROOT / "manifests" / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))


def docs(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_examples() -> None:
    assert [p.name for p in FILES] == [
        "full.yaml",
        "minimal.yaml",
        "simulator.yaml",
        "suspended.yaml",
    ]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_api_server_accepts_example(
    kube: KubeControlPlane, chart_namespace: str, path: Path
) -> None:
    objects = docs(path)
    out = server_dry_run(kube, objects, chart_namespace)
    assert len([line for line in out.splitlines() if "(server dry run)" in line]) == len(objects)


def test_suspended_is_minimal_with_state_suspended() -> None:
    minimal = next(
        d for d in docs(EXAMPLES / "minimal.yaml") if d["kind"] == "PageAnalyticsPipeline"
    )
    (suspended,) = docs(EXAMPLES / "suspended.yaml")
    assert suspended["spec"].pop("lifecycle") == {"state": "suspended"}
    assert suspended == minimal


def test_full_example_sets_every_section_of_the_spec(
    kube: KubeControlPlane, chart_namespace: str
) -> None:
    """Every top-level field of the CRD's spec, as `kubectl explain` lists it, is set."""
    explained = kubectl(kube, "explain", "pageanalyticspipeline.spec").stdout
    fields = {
        line.split()[0]
        for line in explained.split("FIELDS:", 1)[1].splitlines()
        if line.startswith("  ") and not line.startswith("   ")
    }
    (full,) = docs(EXAMPLES / "full.yaml")
    assert fields and fields <= set(full["spec"]), fields - set(full["spec"])


def test_invalid_example_edit_is_rejected(kube: KubeControlPlane, chart_namespace: str) -> None:
    """The dry run really validates: the minimal pipeline with inline Kafka credentials fails."""
    pipeline = next(
        d for d in docs(EXAMPLES / "minimal.yaml") if d["kind"] == "PageAnalyticsPipeline"
    )
    pipeline["spec"]["kafka"]["authentication"]["password"] = "hunter2"
    proc = kubectl(
        kube,
        "apply",
        "--server-side",
        "--dry-run=server",
        "-n",
        chart_namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump(pipeline),
        check=False,
    )
    assert proc.returncode != 0
    assert "spec.kafka.authentication.password" in proc.stderr


def test_the_chart_example_refuses_clearly_to_take_over_the_applied_minimal_example(
    chart: Chart, kube: KubeControlPlane, chart_namespace: str
) -> None:
    """manifests/examples/minimal.yaml and examplePipeline.create make the same pipeline and
    claim: with the first applied, enabling the second names the object and the ways out
    instead of helm's "invalid ownership metadata"; objects of this very release (a claim kept
    after an uninstall) are adopted."""
    enable = [*NO_DEPENDENCIES, "examplePipeline.create=true"]
    kubectl(
        kube, "apply", "--server-side", "-n", chart_namespace, "-f", str(EXAMPLES / "minimal.yaml")
    )
    refused = chart.install_server_dry_run(kube, [], enable, namespace=chart_namespace)
    assert refused.returncode != 0
    assert (
        f"examplePipeline.create: PageAnalyticsPipeline {chart_namespace}/page-views already "
        "exists and was not made by this release (applied from manifests/examples/minimal.yaml?)"
    ) in refused.stderr, refused.stderr
    assert "leave examplePipeline.create false, or delete it first" in refused.stderr
    # Owned by this release: adopted, as helm does.
    for kind, name in (("pap", "page-views"), ("pvc", "page-views-checkpoint")):
        kubectl(
            kube,
            "annotate",
            "-n",
            chart_namespace,
            kind,
            name,
            "meta.helm.sh/release-name=ps",
            f"meta.helm.sh/release-namespace={chart_namespace}",
        )
        kubectl(
            kube, "label", "-n", chart_namespace, kind, name, "app.kubernetes.io/managed-by=Helm"
        )
    adopted = chart.install_server_dry_run(kube, [], enable, namespace=chart_namespace)
    assert adopted.returncode == 0, adopted.stderr
    # Another release's, or half annotated, is refused again (the claim is checked too).
    kubectl(
        kube,
        "annotate",
        "--overwrite",
        "-n",
        chart_namespace,
        "pvc",
        "page-views-checkpoint",
        "meta.helm.sh/release-name=other",
    )
    claim = chart.install_server_dry_run(kube, [], enable, namespace=chart_namespace)
    assert (
        f"PersistentVolumeClaim {chart_namespace}/page-views-checkpoint already exists"
    ) in claim.stderr, claim.stderr
