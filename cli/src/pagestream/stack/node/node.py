"""A single-node Kubernetes cluster on this machine, with real pods.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, the kubelet and
kube-proxy (iptables mode) all run inside the node's own network and mount namespaces
(pagestream.stack.node.namespace); CoreDNS runs as a pod. The host reaches the API server
through one loopback port forwarder, and nothing else crosses: see config.py for why the host's
network, sysctls and file system stay as they were. ``down`` ends every process by pid and by
cgroup, after which the namespaces and everything in them are gone; it then removes the pods'
cgroups, the only trace the node leaves on the host's kernel.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pagestream.stack.artifacts import (
    COREDNS_TOOLS,
    K8S_TOOLS,
    PROVISIONER_TOOLS,
    go_binaries,
    pause_binary,
)
from pagestream.stack.errors import StackError
from pagestream.stack.node import config
from pagestream.stack.node.config import NodeLayout
from pagestream.stack.node.namespace import NodeNamespace
from pagestream.stack.paths import StackPaths
from pagestream.stack.pki import ClientCert, write_pki
from pagestream.stack.process import ManagedProcess, free_port, pid_alive, wait_until

log = logging.getLogger(__name__)

ADMIN_USER = "pagestream-admin"
# Debian's packages the node runs (dev/bootstrap.sh --kube installs them).
DEBIAN_BINARIES = {
    "containerd": "containerd",
    "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "nsenter": "util-linux",
}
CLIENTS = (
    ClientCert("admin", ADMIN_USER, "system:masters"),
    ClientCert("kubelet", f"system:node:{config.NODE_NAME}", "system:nodes"),
    ClientCert("kube-proxy", "system:kube-proxy"),
    ClientCert("kube-scheduler", "system:kube-scheduler"),
    ClientCert("kube-controller-manager", "system:kube-controller-manager"),
    # The API server's identity towards the kubelet (logs, exec, port-forward).
    ClientCert("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
)
CGROUP_V1 = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class NodeBinaries:
    """What the project builds for the node: the Kubernetes binaries' folder, and files."""

    kubernetes: Path
    coredns: Path
    pause: Path
    provisioner: Path


@dataclass(frozen=True)
class NodeImages:
    """The images the node itself needs, as references its containerd knows."""

    pause: str
    coredns: str


@dataclass
class LocalNode:
    paths: StackPaths

    @property
    def home(self) -> Path:
        return self.paths.component_dir("node")

    @property
    def layout(self) -> NodeLayout:
        return NodeLayout(self.home)

    @property
    def namespace(self) -> NodeNamespace:
        return NodeNamespace(self.layout, self.paths.logs, tied=self.paths.tied)

    @property
    def kubeconfig(self) -> Path:
        """The host's kubeconfig for this node (admin, through the loopback forwarder)."""
        return self.home / "kubeconfig"

    @property
    def _state_file(self) -> Path:
        return self.home / "node.json"

    def _state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self._state_file.read_text())
        except FileNotFoundError:
            return {}
        return state

    def _save_state(self, **values: Any) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(json.dumps(self._state() | values, indent=2) + "\n")

    @property
    def api_port(self) -> int:
        """The host-side loopback port of the API server; picked once, then remembered."""
        port = self._state().get("api_port")
        if port is None:
            port = free_port()
            self._save_state(api_port=port)
        return int(port)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    # --- processes ---------------------------------------------------------------------------

    def _proc(self, name: str) -> ManagedProcess:
        return ManagedProcess(
            name,
            self.home / f"{name}.pid",
            self.paths.logs / f"node-{name}.log",
            tied=self.paths.tied,
        )

    COMPONENTS = (
        "etcd",
        "forwarder",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "containerd",
        "kubelet",
        "kube-proxy",
        "provisioner",
    )

    @property
    def processes(self) -> list[ManagedProcess]:
        return [self._proc(name) for name in self.COMPONENTS]

    def running(self) -> bool:
        return self.namespace.pid() is not None or any(p.running() for p in self.processes)

    # --- install -----------------------------------------------------------------------------

    def ensure_installed(self) -> NodeBinaries:
        """Every binary the node runs that the project builds (once, cached by version)."""
        missing = [
            package
            for binary, package in DEBIAN_BINARIES.items()
            if not (Path(binary).exists() if binary.startswith("/") else shutil.which(binary))
        ]
        if missing:
            raise StackError(
                f"the node needs Debian's {', '.join(sorted(set(missing)))}",
                hint="run `make bootstrap` (or `dev/bootstrap.sh --kube`) as root",
            )
        return NodeBinaries(
            kubernetes=go_binaries(self.paths.cache, K8S_TOOLS),
            coredns=go_binaries(self.paths.cache, COREDNS_TOOLS) / "coredns",
            pause=pause_binary(self.paths.cache),
            provisioner=go_binaries(self.paths.cache, PROVISIONER_TOOLS) / "provisioner",
        )

    def build_images(self, bins: NodeBinaries) -> tuple[NodeImages, list[Path]]:
        from pagestream.stack.images import ImageBuilder

        builder = ImageBuilder(self.paths)
        pause = builder.build_scratch("pagestream-pause", {"/pause": bins.pause}, ["/pause"])
        coredns = builder.build_scratch(
            "pagestream-coredns", {"/coredns": bins.coredns}, ["/coredns"]
        )
        return (
            NodeImages(pause=pause.reference, coredns=coredns.reference),
            [builder.archive(pause), builder.archive(coredns)],
        )

    # --- configuration -----------------------------------------------------------------------

    def _write_config(self, layout: NodeLayout) -> None:
        layout.etc.mkdir(parents=True, exist_ok=True)
        if not (layout.pki / ".complete").exists():
            write_pki(
                layout.pki,
                serving_sans=(
                    "127.0.0.1",
                    config.NODE_IP,
                    config.API_SERVICE_IP,
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    f"kubernetes.default.svc.{config.CLUSTER_DOMAIN}",
                ),
                clients=CLIENTS,
            )
        inside = f"https://127.0.0.1:{config.APISERVER_PORT}"
        for client in CLIENTS[1:5]:
            kc = config.kubeconfig(
                server=inside, pki=layout.pki, user=client.filename, cert=client.filename
            )
            layout.kubeconfig(client.filename).write_text(yaml.safe_dump(kc, sort_keys=False))
        # The provisioner creates PersistentVolumes: a node component with the admin's rights.
        kc = config.kubeconfig(server=inside, pki=layout.pki, user="provisioner", cert="admin")
        layout.kubeconfig("provisioner").write_text(yaml.safe_dump(kc, sort_keys=False))
        admin = config.kubeconfig(server=self.server, pki=layout.pki, user=ADMIN_USER, cert="admin")
        self.kubeconfig.write_text(yaml.safe_dump(admin, sort_keys=False))
        self.kubeconfig.chmod(0o600)
        (layout.etc / "containerd.toml").write_text(config.containerd_config(layout))
        layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        (layout.cni_conf_dir / "10-pagestream.conflist").write_text(
            json.dumps(config.cni_conflist(), indent=2) + "\n"
        )
        (layout.etc / "kubelet.yaml").write_text(yaml.safe_dump(config.kubelet_config(layout)))
        (layout.etc / "kube-proxy.yaml").write_text(
            yaml.safe_dump(config.kube_proxy_config(layout))
        )
        layout.resolv_conf.write_text(f"search {config.CLUSTER_DOMAIN}\n")

    # --- up ----------------------------------------------------------------------------------

    def up(self, *, timeout: float = 180.0, progress: Callable[[str], None] | None = None) -> None:
        """Start the node, in order: binaries and images, configuration, the namespaces, the
        control plane, the container runtime, the node agents, then the add-ons (cluster DNS,
        the default StorageClass). Each step leaves what it started running for the next."""
        say = progress or (lambda message: log.info(message))
        started = time.monotonic()
        say("building or finding the node's binaries and images (pause, CoreDNS)")
        bins = self.ensure_installed()
        images, archives = self.build_images(bins)
        layout = NodeLayout(self.home, pause_image=images.pause)
        self._write_config(layout)
        self._ensure_cgroup_root(layout)
        ns = NodeNamespace(layout, self.paths.logs, tied=self.paths.tied)
        say("starting the node's namespaces, etcd and the API server")
        ns.start()
        self._save_state(netns_inode=ns.inode("net"), mntns_inode=ns.inode("mnt"))
        self._start_control_plane(layout, ns, bins.kubernetes, timeout)
        say("starting containerd, the kubelet, kube-proxy and the volume provisioner")
        self._start_runtime(layout, ns, archives)
        k8s = bins.kubernetes
        self._start("kubelet", config.kubelet_args(layout, k8s), ns)
        self._start("kube-proxy", config.kube_proxy_args(layout, k8s), ns)
        self._start("provisioner", config.provisioner_args(layout, bins.provisioner), ns)
        say("waiting for the node to be Ready and cluster DNS to answer")
        self._wait_node_ready(timeout)
        self._install_addons(images, timeout)
        say(f"node {config.NODE_NAME} is Ready ({time.monotonic() - started:.0f}s)")

    def _start_control_plane(
        self, layout: NodeLayout, ns: NodeNamespace, bins: Path, timeout: float
    ) -> None:
        self._start("etcd", config.etcd_args(layout, bins), ns)
        self._start_forwarder(ns)
        self._start("kube-apiserver", config.apiserver_args(layout, bins), ns)
        wait_until(
            self.api_ready,
            timeout=timeout,
            what="the node's kube-apiserver",
            alive=self._proc("kube-apiserver").running,
            log_path=self._proc("kube-apiserver").log_file,
            interval=0.5,
        )
        self._start("kube-controller-manager", config.controller_manager_args(layout, bins), ns)
        self._start("kube-scheduler", config.scheduler_args(layout, bins), ns)

    def _start_runtime(self, layout: NodeLayout, ns: NodeNamespace, archives: list[Path]) -> None:
        self._start("containerd", config.containerd_args(layout), ns)
        ctr_version = ["ctr", f"--address={layout.containerd_socket}", "version"]
        wait_until(
            lambda: ns.run(ctr_version, check=False).returncode == 0,
            timeout=60,
            what="containerd",
            alive=self._proc("containerd").running,
            log_path=self._proc("containerd").log_file,
        )
        # The sandbox image must be there before the kubelet asks for its first pod.
        self.import_images(archives)

    def _install_addons(self, images: NodeImages, timeout: float) -> None:
        addons = [*config.coredns_manifests(images.coredns), config.storage_class()]
        self.kubectl("apply", "--server-side", "-f", "-", stdin=_yaml_stream(addons))
        self.kubectl(
            "-n",
            "kube-system",
            "rollout",
            "status",
            "deployment/coredns",
            f"--timeout={int(timeout)}s",
        )

    def _start(self, name: str, argv: list[str], ns: NodeNamespace) -> None:
        self._proc(name).start(ns.enter(argv), cwd=self.home)

    def _start_forwarder(self, ns: NodeNamespace) -> None:
        pid = ns.pid()
        self._proc("forwarder").start(
            [
                sys.executable,
                "-m",
                "pagestream.stack.node.forward",
                f"--netns=/proc/{pid}/ns/net",
                f"--map={self.api_port}:{config.APISERVER_PORT}",
            ],
            cwd=self.home,
        )

    def _ensure_cgroup_root(self, layout: NodeLayout) -> None:
        """The pods' cgroup root in every v1 hierarchy (cpuset needs its cpus and mems)."""
        for hierarchy in _cgroup_hierarchies():
            root = hierarchy / layout.cgroup_root.lstrip("/")
            root.mkdir(exist_ok=True)
            if hierarchy.name == "cpuset":
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if not (root / knob).read_text().strip():
                        (root / knob).write_text((hierarchy / knob).read_text())

    def import_images(self, archives: list[Path]) -> None:
        """Load OCI archives into the node's containerd (pods then use them by name)."""
        ns = self.namespace
        for archive in archives:
            proc = ns.run(
                [
                    "ctr",
                    f"--address={self.layout.containerd_socket}",
                    "-n",
                    "k8s.io",
                    "images",
                    "import",
                    "--no-unpack",
                    str(archive),
                ],
                check=False,
            )
            if proc.returncode != 0:
                raise StackError(
                    f"importing {archive} into the node's containerd failed: {proc.stderr.strip()}",
                    hint="rebuild the image (`pagestream cluster images`) and retry",
                )

    def tag_image(self, reference: str, also: str) -> None:
        """A second name for an image the node's containerd has."""
        proc = self.namespace.run(
            [
                "ctr",
                f"--address={self.layout.containerd_socket}",
                "-n",
                "k8s.io",
                "images",
                "tag",
                "--force",
                reference,
                also,
            ],
            check=False,
        )
        if proc.returncode != 0:
            raise StackError(f"tagging {reference} as {also} failed: {proc.stderr.strip()}")

    def load_components(
        self, components: tuple[str, ...], *, progress: Callable[[str], None] | None = None
    ) -> dict[str, str]:
        """Build pagestream's images (unchanged inputs: nothing to do) and load them into the
        node; their references, by component."""
        from pagestream.stack.images import ImageBuilder

        say = progress or (lambda message: log.info(message))
        builder = ImageBuilder(self.paths)
        refs = {}
        for component in components:
            say(f"building or finding the {component} image")
            ref = builder.build_component(component)
            self.import_images([builder.archive(ref)])
            refs[component] = ref.reference
        return refs

    def _wait_node_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.kubectl("get", "node", config.NODE_NAME, "-o", "json", check=False)
            if proc.returncode == 0:
                conditions = json.loads(proc.stdout)["status"].get("conditions", [])
                if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                    return
            for name in ("kubelet", "containerd", "kube-proxy", "provisioner"):
                if not self._proc(name).running():
                    raise StackError(
                        f"the node's {name} exited",
                        log=str(self._proc(name).log_file),
                        hint="read the log's last lines",
                    )
            time.sleep(1)
        raise StackError(
            f"node {config.NODE_NAME} not Ready after {timeout:.0f}s",
            log=str(self._proc("kubelet").log_file),
            hint="read the kubelet's log",
        )

    # --- clients -----------------------------------------------------------------------------

    def kubectl_binary(self) -> Path:
        return go_binaries(self.paths.cache, K8S_TOOLS) / "kubectl"

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """The pinned kubectl against this node, as its admin."""
        proc = subprocess.run(
            [str(self.kubectl_binary()), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise StackError(
                f"kubectl {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc

    def api_ready(self) -> bool:
        if not self.kubeconfig.exists():
            return False
        proc = self.kubectl("get", "--raw=/readyz", check=False, timeout=10)
        return proc.returncode == 0 and proc.stdout.strip() == "ok"

    def healthy(self) -> bool:
        if not self.api_ready():
            return False
        proc = self.kubectl("get", "node", config.NODE_NAME, "-o", "json", check=False, timeout=10)
        if proc.returncode != 0:
            return False
        conditions = json.loads(proc.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # --- down --------------------------------------------------------------------------------

    def down(self) -> None:
        """Stop everything; afterwards no process, mount, namespace, link or cgroup is left."""
        from pagestream.stack.node.skaffold import DockerApi

        DockerApi(self).stop()  # skaffold's image API, if `cluster skaffold` started it
        for name in ("provisioner", "kube-proxy", "kubelet"):
            self._proc(name).stop(timeout=15)
        layout = self.layout
        # Containers are no children of ours (containerd's shims reparent them): end them by
        # their cgroups, then every process still inside the node's mount namespace.
        _kill_cgroup_tree(layout.cgroup_root)
        self._proc("containerd").stop(timeout=15)
        for name in (
            "kube-scheduler",
            "kube-controller-manager",
            "kube-apiserver",
            "forwarder",
            "etcd",
        ):
            self._proc(name).stop(timeout=15)
        for pid in self.processes_inside():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.namespace.stop()
        deadline = time.monotonic() + 10
        while self.processes_inside() and time.monotonic() < deadline:
            time.sleep(0.1)
        _remove_cgroup_tree(layout.cgroup_root)
        if not self.processes_inside():
            # The namespaces are gone; their inodes may be another's from now on.
            self._save_state(netns_inode=None, mntns_inode=None)

    def namespace_inodes(self) -> tuple[int, int] | None:
        """The (network, mount) namespace inodes of the running node, as recorded at ``up``."""
        state = self._state()
        net, mnt = state.get("netns_inode"), state.get("mntns_inode")
        return (int(net), int(mnt)) if net is not None and mnt is not None else None

    def processes_inside(self, inodes: tuple[int, int] | None = None) -> list[int]:
        """Pids of every process still in the node's namespaces (its network *and* its mount
        namespace: a namespace inode may be reused once freed, the pair is this node's)."""
        inodes = inodes or self.namespace_inodes()
        if inodes is None:
            return []
        net, mnt = inodes
        hits = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if (
                    os.stat(proc / "ns" / "net").st_ino == net
                    and os.stat(proc / "ns" / "mnt").st_ino == mnt
                    and pid_alive(int(proc.name))
                ):
                    hits.append(int(proc.name))
        return hits

    def leftovers(self, inodes: tuple[int, int] | None = None) -> list[str]:
        """What of this node is still on the machine (empty after a clean ``down``); pass the
        ``namespace_inodes()`` read while it ran to look for processes in those namespaces."""
        found = [f"process {pid}" for pid in self.processes_inside(inodes)]
        found += [f"cgroup {path}" for path in _cgroup_dirs(self.layout.cgroup_root)]
        with open("/proc/self/mountinfo") as mounts:
            found += [
                f"mount {line.split()[4]}" for line in mounts if str(self.home) in line.split()[4]
            ]
        return found

    # --- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        procs = {p.name: p.pid() for p in self.processes}
        memory = sum(_pss_kib(pid) for pid in self._all_node_pids())
        return {
            "node": config.NODE_NAME,
            "ready": self.healthy() if procs.get("kube-apiserver") else False,
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "processes": procs,
            "memory_mib": round(memory / 1024),
            "logs": str(self.paths.logs),
        }

    def _all_node_pids(self) -> Iterator[int]:
        seen = set(self.processes_inside())
        for path in _cgroup_dirs(self.layout.cgroup_root, hierarchy="memory"):
            with contextlib.suppress(OSError):
                seen.update(int(p) for p in (path / "cgroup.procs").read_text().split())
        forwarder = self._proc("forwarder").pid()
        if forwarder:
            seen.add(forwarder)
        return iter(sorted(seen))


def _yaml_stream(objects: list[dict[str, Any]]) -> str:
    return "".join("---\n" + yaml.safe_dump(obj, sort_keys=False) for obj in objects)


def _cgroup_hierarchies() -> list[Path]:
    return [
        p
        for p in sorted(CGROUP_V1.iterdir())
        if p.is_dir() and not p.is_symlink() and (p / "cgroup.procs").exists()
    ]


def _cgroup_dirs(root: str, hierarchy: str | None = None) -> list[Path]:
    """Every cgroup directory under ``root`` (deepest first), in each or one hierarchy."""
    found: list[Path] = []
    for h in _cgroup_hierarchies():
        if hierarchy and h.name != hierarchy:
            continue
        top = h / root.lstrip("/")
        # Bottom-up; a cgroup that containerd removes meanwhile is skipped, not an error.
        found += [Path(folder) for folder, _, _ in os.walk(top, topdown=False)]
    return found


def _kill_cgroup_tree(root: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pids: set[int] = set()
        for path in _cgroup_dirs(root):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in (path / "cgroup.procs").read_text().split())
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _remove_cgroup_tree(root: str) -> None:
    for path in _cgroup_dirs(root):
        for _ in range(50):
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
