"""A second node of its own, started and stopped with a pod running: the host's links,
addresses, routes, iptables rules and sysctls are the same while it runs and after, and
`down` leaves no process, mount, namespace or cgroup of it behind."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
import yaml
from node_harness import eventually, get_json, host_network_snapshot

from pagestream.stack.node.node import LocalNode
from pagestream.stack.paths import StackPaths

pytestmark = pytest.mark.node


def test_a_node_with_a_running_pod_leaves_the_host_as_it_was(
    stack_paths: StackPaths, tmp_path_factory: pytest.TempPathFactory
) -> None:
    before = host_network_snapshot()
    own = LocalNode(replace(stack_paths, state=tmp_path_factory.mktemp("node2")))
    inodes = None
    try:
        own.up()
        pause = own.layout.home / "etc" / "containerd.toml"
        image = next(
            line.split('"')[1] for line in pause.read_text().splitlines() if "sandbox_image" in line
        )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "sleeper", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": image, "imagePullPolicy": "Never"}]},
        }
        own.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(pod))
        eventually(
            lambda: get_json(own, "pod", "sleeper")["status"].get("phase") == "Running",
            timeout=60,
            what="a pod running on the second node",
        )
        inodes = own.namespace_inodes()
        assert inodes and own.processes_inside(inodes), "node processes in its namespaces"
        assert host_network_snapshot() == before
    finally:
        own.down()
    assert own.leftovers(inodes) == []
    assert host_network_snapshot() == before
    shutil.rmtree(own.layout.containerd_root, ignore_errors=True)  # gigabytes, not evidence
