"""Where the stack keeps things: caches shared across runs, state owned by one stack."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
TOOLS_DIR = REPO_ROOT / "tools"
CHART_DIR = REPO_ROOT / "charts" / "pagestream"
# The PageAnalyticsPipeline CRD: the chart installs it from crds/, the operator's spec model and
# docs/crd-reference.md are checked against it.
PIPELINE_CRD = CHART_DIR / "crds" / "pagestream.dev_pageanalyticspipelines.yaml"


def default_cache_dir() -> Path:
    env = os.environ.get("PAGESTREAM_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pagestream"


def default_state_dir() -> Path:
    env = os.environ.get("PAGESTREAM_STATE_DIR")
    return Path(env) if env else Path.cwd() / ".pagestream"


def content_key(*inputs: Path | str) -> str:
    """A short digest of build inputs (files or strings): a cache entry changes with its recipe."""
    digest = hashlib.sha256()
    for item in inputs:
        if isinstance(item, Path):
            digest.update(item.name.encode())
            digest.update(item.read_bytes())
        else:
            digest.update(item.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class StackPaths:
    """Resolved once at the edge (CLI or test fixture) and passed down."""

    cache: Path
    state: Path
    # Servers started with these paths end with the thread that started them (a SIGKILL from
    # the kernel: pagestream.stack.process.popen_tied). The test fixtures set it, so a
    # killed test run leaves nothing behind; the CLI does not: `pagestream up` returns and
    # leaves the embedded platform running.
    tied: bool = False

    @classmethod
    def default(cls) -> StackPaths:
        return cls(cache=default_cache_dir(), state=default_state_dir())

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    def component_dir(self, name: str) -> Path:
        return self.state / name
