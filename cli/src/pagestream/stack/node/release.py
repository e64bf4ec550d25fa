"""pagestream's app release on the local node: images built and loaded, the chart installed
with the helm the project builds (`pagestream cluster deploy`)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from pagestream.stack.crds import OPERATOR_CHILD_CRDS, crd_file, install_crds, upstream_crds
from pagestream.stack.errors import StackError
from pagestream.stack.helm import Helm, dependency_free_chart
from pagestream.stack.node.node import LocalNode
from pagestream.stack.paths import CHART_DIR

NODE_VALUES = CHART_DIR / "ci" / "node-values.yaml"
# What the operator and the chart create of other operators' kinds, as those operators'
# releases would install them (none of the operators can run here yet).
UPSTREAM_CRDS = (*OPERATOR_CHILD_CRDS, "prometheusrules.monitoring.coreos.com")
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
}


@dataclass
class AppRelease:
    node: LocalNode
    namespace: str = "pagestream"
    name: str = "pagestream"

    @property
    def helm(self) -> Helm:
        return Helm(self.node.paths)

    def install_upstream_crds(self) -> None:
        folder = upstream_crds(self.node.paths.cache)
        install_crds(self.node.kubectl, [crd_file(folder, name) for name in UPSTREAM_CRDS])

    def ensure_namespace(self) -> None:
        """The release's namespace, enforcing Pod Security ``restricted``."""
        manifest = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": self.namespace, "labels": RESTRICTED},
        }
        self.node.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(manifest))

    def chart(self) -> Path:
        """A copy of the chart without its dependency list (their repositories are out of
        reach here, and every one of them is turned off by NODE_VALUES)."""
        dest = self.node.home / "chart"
        shutil.rmtree(dest, ignore_errors=True)
        return dependency_free_chart(CHART_DIR, dest)

    def install(
        self,
        operator_image: str,
        *,
        sets: Sequence[str] = (),
        timeout: str = "5m",
        progress: Callable[[str], None] | None = None,
    ) -> str:
        """``helm upgrade --install --wait``; returns what helm printed (NOTES included)."""
        say = progress or (lambda message: None)
        say("installing the CRDs of the operators pagestream's objects belong to")
        self.install_upstream_crds()
        self.ensure_namespace()
        repository, _, tag = operator_image.rpartition(":")
        say(f"helm upgrade --install {self.name} (namespace {self.namespace})")
        proc = self.helm.run(
            "upgrade",
            "--install",
            self.name,
            str(self.chart()),
            "--namespace",
            self.namespace,
            "-f",
            str(NODE_VALUES),
            "--set",
            f"operator.image.repository={repository}",
            "--set",
            f"operator.image.tag={tag}",
            *[arg for item in sets for arg in ("--set", item)],
            "--wait",
            f"--timeout={timeout}",
            kubeconfig=self.node.kubeconfig,
            check=False,
        )
        if proc.returncode != 0:
            raise StackError(
                f"helm install of {self.name} failed: {proc.stderr.strip()}",
                hint=f"kubectl -n {self.namespace} get pods; kubectl -n {self.namespace} describe "
                "deploy (KUBECONFIG from `pagestream cluster kubeconfig`)",
            )
        return proc.stdout

    def test(self) -> subprocess.CompletedProcess[str]:
        return self.helm.run(
            "test",
            self.name,
            "--namespace",
            self.namespace,
            "--timeout=5m",
            kubeconfig=self.node.kubeconfig,
            check=False,
        )
