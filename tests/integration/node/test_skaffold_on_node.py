"""skaffold (the pinned module, profile pagestream-node) on the real node: `skaffold run`
builds the three images without a Docker engine, deploys the chart and the operator pod runs;
after a change to a file under operator/, a second run rebuilds only the operator image and
replaces the operator pod (what the `skaffold dev` loop does on every save)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from node_harness import get_json

from pagestream.stack.node.node import LocalNode
from pagestream.stack.node.release import AppRelease
from pagestream.stack.node.skaffold import DockerApi, skaffold
from pagestream.stack.paths import REPO_ROOT

pytestmark = pytest.mark.node
CLI = f"{sys.executable} -m pagestream"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this working tree (tracked and untracked, not ignored), so the test can edit
    a file without touching the real one."""
    dest = tmp_path_factory.mktemp("skaffold") / "repo"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = REPO_ROOT / name.decode()
        if source.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


@pytest.fixture(scope="module")
def deployed(node: LocalNode, checkout: Path) -> Iterator[LocalNode]:
    AppRelease(node, namespace="pagestream").ensure_namespace()
    yield node
    skaffold(node, ["delete"], checkout=checkout, cli=CLI)


def operator_pod(node: LocalNode) -> dict:
    pods = get_json(node, "-n", "pagestream", "pods", "-l", "app.kubernetes.io/component=operator")[
        "items"
    ]
    running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 1, [p["metadata"]["name"] for p in pods]
    return running[0]


def built(output: str) -> set[str]:
    """The images skaffold's output says it built (not found in its cache)."""
    return {
        line.split("[", 1)[1].split("]", 1)[0]
        for line in output.splitlines()
        if line.startswith("Building [")
    }


def test_skaffold_run_deploys_and_a_change_under_operator_rebuilds_only_the_operator(
    deployed: LocalNode, checkout: Path
) -> None:
    node = deployed
    first = skaffold(node, ["run"], checkout=checkout, cli=CLI)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    before = operator_pod(node)
    assert before["status"]["phase"] == "Running"
    image_before = before["spec"]["containers"][0]["image"]
    assert image_before.startswith("localhost/pagestream-operator:")

    source = checkout / "operator" / "src" / "pagestream_operator" / "__init__.py"
    source.write_text(source.read_text() + "\n# touched by the skaffold test\n")
    second = skaffold(node, ["run"], checkout=checkout, cli=CLI)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert built(second.stdout) == {"pagestream-operator"}, second.stdout[-4000:]
    after = operator_pod(node)
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["spec"]["containers"][0]["image"] != image_before
    ready = {c["type"]: c["status"] for c in after["status"]["conditions"]}
    assert ready["Ready"] == "True"


def test_another_nodes_teardown_leaves_this_nodes_image_api_serving(
    deployed: LocalNode, tmp_path: Path
) -> None:
    """Podman's API is one per image storage, shared by every node here: taking down another
    node (a test session ending what a dead one left: its node's `down`) must not stop the
    service this node's skaffold talks to, nor delete its socket."""
    api = DockerApi(deployed)
    api.start()
    other = LocalNode(replace(deployed.paths, state=tmp_path / "state"))
    other.home.mkdir(parents=True)
    DockerApi(other).stop()
    assert api.process.running() and api.served()
    assert api.socket.exists()
