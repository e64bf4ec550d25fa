"""The node's own network and mount namespaces, and entering them.

A holder process (``unshare --net --mount -- sleep infinity``) owns both namespaces; every
component is started inside them with ``nsenter`` (not ``ip netns exec``, which remounts /sys
and loses the host's cgroup v1 mounts). Because nothing pins the namespaces but their
processes, they vanish with the last one: the bridge, the pods' veths, kube-proxy's iptables
rules and every mount made inside go with them, and the host's own are never touched.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pagestream.stack.errors import StackError
from pagestream.stack.node.config import (
    KUBELET_SYSCTLS,
    NAMESPACE_SYSCTLS,
    NODE_IP,
    NODE_LINK,
    SERVICE_CIDR,
    NodeLayout,
)
from pagestream.stack.process import ManagedProcess, wait_until


def setup_script(layout: NodeLayout) -> str:
    """Run once inside the fresh namespaces: links, per-namespace sysctls, private mounts."""
    lines = [
        "set -e",
        "ip link set lo up",
        # The node's "NIC": a veth pair with both ends inside (this kernel has no dummy links).
        f"ip link add {NODE_LINK} type veth peer name {NODE_LINK}p",
        f"ip addr add {NODE_IP}/32 dev {NODE_LINK}",
        f"ip link set {NODE_LINK}p up",
        f"ip link set {NODE_LINK} up",
        # Node processes that call a Service address need a route for the DNAT to act on.
        f"ip route add {SERVICE_CIDR} dev {NODE_LINK}",
    ]
    lines += [f"echo {value} > /proc/sys/{key}" for key, value in NAMESPACE_SYSCTLS.items()]
    # Hard-coded runtime paths get private, empty file systems (nothing appears on the host).
    for path in ("/run", "/var/log", "/var/lib"):
        lines.append(f"mount -t tmpfs -o mode=0755 pagestream-node {path}")
    lines += ["mkdir -p /var/log/pods /var/log/containers /var/lib/cni /run/containerd"]
    for key in KUBELET_SYSCTLS:
        source = shlex.quote(str(layout.sysctl_dir / key.replace("/", ".")))
        lines += [
            f"mount --bind {source} /proc/sys/{key}",
            f"mount -o remount,bind,ro /proc/sys/{key}",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class NodeNamespace:
    layout: NodeLayout
    logs: Path
    tied: bool = False  # the holder ends with the thread that starts it (StackPaths.tied)

    @property
    def holder(self) -> ManagedProcess:
        return ManagedProcess(
            "node-namespace",
            self.layout.home / "node-namespace.pid",
            self.logs / "node.log",
            tied=self.tied,
        )

    def pid(self) -> int | None:
        return self.holder.pid()

    def inode(self, kind: str) -> int | None:
        """The namespace's inode (how teardown proves no process is left inside it)."""
        pid = self.pid()
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino if pid else None

    def start(self) -> None:
        if self.pid() is not None:
            return
        self.layout.sysctl_dir.mkdir(parents=True, exist_ok=True)
        for key, value in KUBELET_SYSCTLS.items():
            (self.layout.sysctl_dir / key.replace("/", ".")).write_text(f"{value}\n")
        self.holder.start(
            ["unshare", "--net", "--mount", "--propagation", "private", "--", "sleep", "infinity"],
            cwd=self.layout.home,
        )
        wait_until(
            lambda: self._entered(),
            timeout=10,
            what="the node's namespaces",
            alive=self.holder.running,
            log_path=self.holder.log_file,
        )
        proc = self.run(["sh", "-c", setup_script(self.layout)], check=False)
        if proc.returncode != 0:
            self.holder.stop()
            raise StackError(
                f"setting up the node's namespaces failed: {proc.stderr.strip()}",
                hint="the node needs root, iproute2 and a kernel with network namespaces",
            )

    def _entered(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            return os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
        except OSError:
            return False

    def enter(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the node's namespaces (nsenter execs it: same pid)."""
        pid = self.pid()
        if pid is None:
            raise StackError("the node's namespaces are not up", hint="run `pagestream cluster up`")
        return ["nsenter", f"--target={pid}", "--net", "--mount", "--", *argv]

    def run(
        self, argv: Sequence[str], *, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.enter(argv), input=stdin, capture_output=True, text=True, check=check
        )

    def stop(self) -> None:
        self.holder.stop(timeout=5)
