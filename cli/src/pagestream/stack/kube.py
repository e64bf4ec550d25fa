"""A real Kubernetes API for tests: etcd + kube-apiserver, started the way controller-runtime's
envtest starts them (RBAC on, a client-certificate admin, a kubeconfig written for tests and for
``kubectl``). There is no kubelet, so pods never run. kube-controller-manager is optional: it
brings garbage collection of owner-referenced objects, namespace deletion and the aggregation
of labelled ClusterRoles into `admin`, `edit` and `view`.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pagestream.stack.artifacts import K8S_TOOLS, go_binaries
from pagestream.stack.crds import install_crds
from pagestream.stack.paths import StackPaths
from pagestream.stack.pki import ClientCert, write_pki
from pagestream.stack.process import ManagedProcess, port_open, wait_until

ADMIN_USER = "pagestream-admin"


# --- the control plane -----------------------------------------------------------------------


@dataclass
class KubeControlPlane:
    paths: StackPaths
    apiserver_port: int
    etcd_port: int
    etcd_peer_port: int
    controller_manager_port: int | None = None  # None: run without kube-controller-manager

    @property
    def home(self) -> Path:
        return self.paths.component_dir("kube")

    @property
    def pki(self) -> Path:
        return self.home / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def _proc(self, name: str) -> ManagedProcess:
        return ManagedProcess(
            name, self.home / f"{name}.pid", self.paths.logs / f"{name}.log", tied=self.paths.tied
        )

    @property
    def processes(self) -> list[ManagedProcess]:
        """All processes this control plane may run, in start order (whether asked for or not,
        so that stopping never leaves a controller manager behind)."""
        return [self._proc(n) for n in ("etcd", "kube-apiserver", "kube-controller-manager")]

    def ensure_installed(self) -> Path:
        return go_binaries(self.paths.cache, K8S_TOOLS)

    def start(self, *, timeout: float = 120.0) -> None:
        bins = self.ensure_installed()
        self.home.mkdir(parents=True, exist_ok=True)
        if not (self.pki / ".complete").exists():
            write_pki(
                self.pki,
                serving_sans=(
                    "127.0.0.1",
                    "10.0.0.1",
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                ),
                clients=(ClientCert("admin", ADMIN_USER, "system:masters"),),
            )
        self._write_kubeconfig()
        self._start_etcd(bins, timeout)
        self._start_apiserver(bins, timeout)
        if self.controller_manager_port is not None:
            self._start_controller_manager(bins, timeout)

    def _start_etcd(self, bins: Path, timeout: float) -> None:
        proc = self._proc("etcd")
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        client = f"http://127.0.0.1:{self.etcd_port}"
        proc.start(
            [
                str(bins / "etcd"),
                "--name=pagestream",
                f"--data-dir={self.home / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=pagestream={peer}",
                # Test data: speed over durability, as envtest does.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ]
        )
        wait_until(
            lambda: _http_ok(f"{client}/health"),
            timeout=timeout,
            what=f"etcd on {client}",
            alive=proc.running,
            log_path=proc.log_file,
        )

    def _start_apiserver(self, bins: Path, timeout: float) -> None:
        proc = self._proc("kube-apiserver")
        pki = self.pki
        proc.start(
            [
                str(bins / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--secure-port={self.apiserver_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                f"--service-account-issuer=https://127.0.0.1:{self.apiserver_port}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                # No controller creates service-account tokens for pods here (there are none).
                "--disable-admission-plugins=ServiceAccount",
                "--profiling=false",
                "--v=0",
            ]
        )
        wait_until(
            lambda: self.healthy(),
            timeout=timeout,
            what=f"kube-apiserver on {self.server}",
            alive=proc.running,
            log_path=proc.log_file,
            interval=0.5,
        )

    def _start_controller_manager(self, bins: Path, timeout: float) -> None:
        assert self.controller_manager_port is not None
        proc = self._proc("kube-controller-manager")
        proc.start(
            [
                str(bins / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                # Only what tests rely on: owner-reference cleanup, namespace deletion, and the
                # aggregation of labelled ClusterRoles into admin/edit/view (the chart's).
                "--controllers=garbage-collector-controller,namespace-controller,"
                "clusterrole-aggregation-controller",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.controller_manager_port}",
                f"--cert-dir={self.home / 'kcm-certs'}",
                "--v=0",
            ]
        )
        wait_until(
            lambda: port_open(self.controller_manager_port or 0),
            timeout=timeout,
            what="kube-controller-manager",
            alive=proc.running,
            log_path=proc.log_file,
        )

    def _write_kubeconfig(self) -> None:
        # Files named, not inlined: the Python Kubernetes client copies inline certificates and
        # keys to temporary files that only an orderly exit removes.
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "pagestream-local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": ADMIN_USER,
                    "user": {
                        "client-certificate": str(self.pki / "admin.crt"),
                        "client-key": str(self.pki / "admin.key"),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "pagestream-local",
                    "context": {
                        "cluster": "pagestream-local",
                        "user": ADMIN_USER,
                        "namespace": "default",
                    },
                }
            ],
            "current-context": "pagestream-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the machine's ``kubectl`` against this control plane as its admin."""
        return subprocess.run(
            ["kubectl", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )

    def install_crds(self, files: list[Path], timeout: str = "60s") -> list[str]:
        """Apply CRD files (server-side) and wait until each is Established; their names."""
        return install_crds(self.kubectl, files, timeout)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(
            f"{self.server}{path}", context=self.ssl_context(), timeout=5
        ) as r:
            return json.load(r)

    def running(self) -> bool:
        return any(p.running() for p in self.processes)

    def healthy(self) -> bool:
        if not port_open(self.apiserver_port):
            return False
        try:
            with urllib.request.urlopen(
                f"{self.server}/readyz", context=self.ssl_context(), timeout=5
            ) as resp:
                status: int = resp.status  # typeshed types urlopen's response as Any
                return status == 200
        except OSError:
            return False

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop(timeout=30)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            status: int = resp.status  # typeshed types urlopen's response as Any
            return status == 200
    except OSError:
        return False
