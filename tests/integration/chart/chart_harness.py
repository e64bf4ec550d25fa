"""Helpers and fixtures for the chart's integration tests (``conftest.py`` re-exports the
fixtures; test modules import helpers from here by this module's unique name).

The chart declares its four platform operators as dependencies (Chart.yaml). Their repositories
are not reachable from the machines these tests run on, so ``helm dependency build`` cannot run
and helm refuses to render a chart whose dependencies are missing, even when their conditions
turn them off. The tests therefore render a copy of the chart with the ``dependencies`` list
removed, and only scenarios that turn every dependency off (checked, never assumed).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pagestream.stack.artifacts import go_module_source
from pagestream.stack.crds import crd_file, upstream_crds
from pagestream.stack.helm import Helm, dependency_free_chart
from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import CHART_DIR, PIPELINE_CRD, StackPaths
from pagestream_operator.data_plane import OBJECTS_KEY, parse_objects

CHART = CHART_DIR
CI_DIR = CHART / "ci"
DEPENDENCY_KEYS = ("strimzi", "cloudnativepg", "sparkOperator", "kubePrometheusStack")
# Every kind the chart renders that some operator defines, by CRD name.
UPSTREAM_CRDS = (
    "kafkas.kafka.strimzi.io",
    "kafkanodepools.kafka.strimzi.io",
    "kafkausers.kafka.strimzi.io",
    "kafkatopics.kafka.strimzi.io",
    "clusters.postgresql.cnpg.io",
    "servicemonitors.monitoring.coreos.com",
    "podmonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
    "sparkapplications.sparkoperator.k8s.io",
)
# What the defaults need to render here: every dependency off, nothing else changed.
NO_DEPENDENCIES = [f"{key}.enabled=false" for key in DEPENDENCY_KEYS]


def go_module_dir(module: str, version: str, scratch: Path) -> Path:
    """The source of a pinned Go module, fetched by `go mod download` (Go's module cache keeps
    it between runs); ``scratch`` is the working directory `go` runs in."""
    return go_module_source(f"{module}@{version}", cwd=scratch)


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def dependencies_enabled(values_files: list[Path], sets: list[str]) -> list[str]:
    """The dependency aliases a scenario leaves on (chart defaults, then files, then --set)."""
    merged = {key: True for key in DEPENDENCY_KEYS}
    for path in values_files:
        for key in DEPENDENCY_KEYS:
            if "enabled" in (load_values(path).get(key) or {}):
                merged[key] = bool(load_values(path)[key]["enabled"])
    for item in sets:
        name, _, value = item.partition("=")
        for key in DEPENDENCY_KEYS:
            if name == f"{key}.enabled":
                merged[key] = value == "true"
    return [key for key, on in merged.items() if on]


def renderable_scenarios() -> list[Path]:
    """The ci/*-values.yaml files that turn every dependency off."""
    return sorted(p for p in CI_DIR.glob("*-values.yaml") if not dependencies_enabled([p], []))


def data_plane_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects listed in the chart's data plane ConfigMap, as the operator reads them."""
    out: list[dict[str, Any]] = []
    for obj in objects:
        labels = obj.get("metadata", {}).get("labels") or {}
        if obj["kind"] == "ConfigMap" and labels.get("app.kubernetes.io/component") == "data-plane":
            out += [o.body for o in parse_objects(obj["data"][OBJECTS_KEY])]
    return out


def with_data_plane(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rendered objects and, after them, those of the data plane ConfigMap: whoever applies
    them (helm or the operator), they are the chart's, and checked alike."""
    return objects + data_plane_objects(objects)


class Chart:
    """A copy of the chart without its dependency list, rendered with the real helm."""

    def __init__(self, helm: Helm, root: Path) -> None:
        self.helm = helm
        self.dependencies = yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"]
        self.path = dependency_free_chart(CHART, root / "pagestream")

    def _args(self, values_files: list[Path], sets: list[str]) -> list[str]:
        left_on = dependencies_enabled(values_files, sets)
        assert not left_on, f"cannot render here with dependencies {left_on} on (see module doc)"
        args: list[str] = []
        for path in values_files:
            args += ["-f", str(path)]
        for item in sets:
            args += ["--set", item]
        return args

    def template(
        self,
        values_files: list[Path] = (),  # type: ignore[assignment]
        sets: list[str] = (),  # type: ignore[assignment]
        *,
        namespace: str = "pagestream",
        release: str = "ps",
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        return self.helm.run(
            "template",
            release,
            str(self.path),
            "--namespace",
            namespace,
            *self._args(list(values_files), list(sets)),
            check=check,
        )

    def objects(
        self,
        values_files: list[Path] = (),
        sets: list[str] = (),
        **kw: Any,  # type: ignore[assignment]
    ) -> list[dict[str, Any]]:
        out = self.template(list(values_files), list(sets), **kw).stdout
        return with_data_plane([d for d in yaml.safe_load_all(out) if d])

    def lint(
        self, values_files: list[Path] = (), sets: list[str] = ()
    ) -> subprocess.CompletedProcess[str]:  # type: ignore[assignment]
        return self.helm.run(
            "lint",
            "--strict",
            str(self.path),
            *self._args(list(values_files), list(sets)),
            check=False,
        )

    def install_server_dry_run(
        self,
        kube: KubeControlPlane,
        values_files: list[Path] = (),  # type: ignore[assignment]
        sets: list[str] = (),  # type: ignore[assignment]
        *,
        namespace: str,
        release: str = "ps",
    ) -> subprocess.CompletedProcess[str]:
        """`helm install --dry-run=server`: rendered with lookups against ``kube`` (nothing is
        installed)."""
        return self.helm.run(
            "install",
            release,
            str(self.path),
            "--dry-run=server",
            "--namespace",
            namespace,
            *self._args(list(values_files), list(sets)),
            kubeconfig=kube.kubeconfig,
            check=False,
        )

    def notes(
        self,
        kube: KubeControlPlane,
        values_files: list[Path] = (),
        sets: list[str] = (),
        *,
        namespace: str,  # type: ignore[assignment]
    ) -> str:
        """NOTES.txt as `helm install` prints it (a client-side dry run: nothing is installed)."""
        out = self.helm.run(
            "install",
            "ps",
            str(self.path),
            "--dry-run=client",
            "--namespace",
            namespace,
            *self._args(list(values_files), list(sets)),
            kubeconfig=kube.kubeconfig,
        ).stdout
        assert "NOTES:" in out, out[-2000:]
        return out.split("NOTES:", 1)[1]


def kubectl(
    kube: KubeControlPlane, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return kube.kubectl(*args, stdin=stdin, check=check)


def server_dry_run(kube: KubeControlPlane, objects: list[dict[str, Any]], namespace: str) -> str:
    """Server-side apply every object with --dry-run=server; fail with the API server's words.
    Objects that name their own namespace (RoleBindings in watched namespaces) are applied
    there, the rest in ``namespace``, as helm installs them."""
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        where = obj.get("metadata", {}).get("namespace") or namespace
        by_namespace.setdefault(where, []).append(obj)
    out = []
    for where, group in by_namespace.items():
        proc = kubectl(
            kube,
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=chart-test",
            "--namespace",
            where,
            "-f",
            "-",
            stdin=yaml.safe_dump_all(group, sort_keys=False),
            check=False,
        )
        assert proc.returncode == 0, (
            f"the API server rejected the chart:\n{proc.stderr}\n{proc.stdout}"
        )
        out.append(proc.stdout)
    return "".join(out)


@pytest.fixture(scope="session")
def chart(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Chart:
    return Chart(helm, tmp_path_factory.mktemp("chart"))


@pytest.fixture(scope="session")
def chart_crds(kube: KubeControlPlane, stack_paths: StackPaths) -> list[str]:
    """Our CRD and every upstream CRD the chart's objects need, applied and Established."""
    folder = upstream_crds(stack_paths.cache)
    return kube.install_crds([PIPELINE_CRD, *(crd_file(folder, name) for name in UPSTREAM_CRDS)])


@pytest.fixture
def chart_namespace(kube: KubeControlPlane, chart_crds: list[str]) -> Iterator[str]:
    name = f"chart-{uuid.uuid4().hex[:8]}"
    kubectl(kube, "create", "namespace", name)
    yield name
    kubectl(kube, "delete", "namespace", name, "--wait=false")
