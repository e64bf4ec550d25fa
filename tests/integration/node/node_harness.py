"""Helpers for tests on the real node: pods run to completion, polls with deadlines, and a
snapshot of the host's network and kernel settings (to prove the node leaves them alone)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import yaml
from polling import eventually

from pagestream.stack.node.config import KUBELET_SYSCTLS, NAMESPACE_SYSCTLS
from pagestream.stack.node.node import LocalNode
from pagestream.stack.node.release import RESTRICTED

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def restricted_namespace(node: LocalNode, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": RESTRICTED},
    }
    node.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    return name


def get_json(node: LocalNode, *args: str) -> Any:
    return json.loads(node.kubectl("get", *args, "-o", "json").stdout)


def run_pod(
    node: LocalNode,
    namespace: str,
    name: str,
    image: str,
    *,
    command: list[str] | None = None,
    args: list[str] | None = None,
    timeout: float = 120,
) -> tuple[dict[str, Any], str]:
    """Run one restricted pod to completion; its final object and its log."""
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "securityContext": RESTRICTED_CONTAINER,
    }
    if command:
        container["command"] = command
    if args:
        container["args"] = args
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": RESTRICTED_POD,
            "containers": [container],
        },
    }
    node.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(pod))

    def finished() -> dict[str, Any] | None:
        obj = get_json(node, "-n", namespace, "pod", name)
        return obj if obj["status"].get("phase") in ("Succeeded", "Failed") else None

    obj = eventually(finished, timeout=timeout, what=f"pod {namespace}/{name} to finish")
    log = node.kubectl("-n", namespace, "logs", name).stdout
    return obj, log


def host_network_snapshot() -> dict[str, Any]:
    """What the node must never change on the host: links, addresses, routes, iptables rules
    (every table), the sysctls the kubelet and kube-proxy would touch, network namespaces."""

    def out(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    sysctls = {}
    for key in (
        *KUBELET_SYSCTLS,
        *NAMESPACE_SYSCTLS,
        "net/ipv4/conf/all/route_localnet",
        "net/netfilter/nf_conntrack_max",
    ):
        path = Path("/proc/sys") / key
        sysctls[key] = path.read_text().strip() if path.exists() else None
    links = [
        {k: link.get(k) for k in ("ifname", "address", "flags", "mtu")}
        for link in json.loads(out("ip", "-j", "link"))
    ]
    return {
        "links": links,
        "addresses": out("ip", "-o", "addr"),
        "routes": out("ip", "route", "show", "table", "all"),
        "iptables": _rules(out("iptables-save")),
        "sysctls": sysctls,
        "netns": sorted(p.name for p in Path("/run/netns").glob("*"))
        if Path("/run/netns").exists()
        else [],
    }


def _rules(dump: str) -> list[str]:
    # Packet counters and the dump's timestamp comments change on their own.
    return [
        line.split(" [", 1)[0] for line in dump.splitlines() if line and not line.startswith("#")
    ]
