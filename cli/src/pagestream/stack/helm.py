"""helm, built from its Go module (so `helm version` and default capabilities are real)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from pagestream.stack.artifacts import HELM_TOOLS, go_binaries
from pagestream.stack.paths import StackPaths


@dataclass
class Helm:
    paths: StackPaths

    def ensure_installed(self) -> Path:
        return go_binaries(self.paths.cache, HELM_TOOLS) / "helm"

    def run(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        helm_home = self.paths.component_dir("helm")
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(helm_home),
            # Keep helm's own caches and repo config out of the user's home.
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }
        if kubeconfig:
            env["KUBECONFIG"] = str(kubeconfig)
        return subprocess.run(
            [str(self.ensure_installed()), *args],
            capture_output=True,
            text=True,
            check=check,
            env=env,
        )


def dependency_free_chart(chart: Path, dest: Path) -> Path:
    """A copy of ``chart`` without its ``dependencies`` list. helm refuses to render or install
    a chart whose dependencies are not downloaded, even when their conditions turn them all
    off; where their repositories are out of reach (this machine), such a copy is what
    installs. Callers must turn every dependency off."""
    shutil.copytree(chart, dest)
    meta = yaml.safe_load((dest / "Chart.yaml").read_text())
    meta.pop("dependencies", None)
    (dest / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return dest
