"""manifests/examples: each file is accepted by the real kube-apiserver with the pipeline CRD
installed (server-side apply, dry run), and the pipelines are what their names say."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from chart_harness import kubectl, server_dry_run

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
