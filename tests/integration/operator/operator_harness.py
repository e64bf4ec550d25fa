"""Helpers and fixtures for the operator's integration tests (``conftest.py`` re-exports the
fixtures; test modules import helpers from here by this module's unique name): the real CRDs installed into the real
kube-apiserver, the operator as a real subprocess, a namespace per test, and helpers that poll
with deadlines (never fixed sleeps) and play the Spark operator by patching status.

The operator processes log to ``operator-*.log`` beside the servers' logs of the test run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from pagestream.stack.crds import OPERATOR_CHILD_CRDS, crd_file, upstream_crds
from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import PIPELINE_CRD, StackPaths
from pagestream.stack.process import free_port, popen_tied
from pagestream_operator.spec import API_GROUP as GROUP
from pagestream_operator.spec import API_VERSION as VERSION
from pagestream_operator.spec import PLURAL

SPARK = ("sparkoperator.k8s.io", "v1beta2", "sparkapplications")
TOPIC = ("kafka.strimzi.io", "v1", "kafkatopics")
PODMON = ("monitoring.coreos.com", "v1", "podmonitors")
SERVICEMON = ("monitoring.coreos.com", "v1", "servicemonitors")
RESYNC_SECONDS = 2.0
T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None], *, timeout: float = 20.0, what: str, interval: float = 0.1
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except ApiException as exc:
            if exc.status != 404:
                raise
            last = None
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def kubectl(
    kube: KubeControlPlane, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return kube.kubectl(*args, check=check)


@pytest.fixture(scope="session")
def crd_folder(stack_paths: StackPaths) -> Path:
    return upstream_crds(stack_paths.cache)


@pytest.fixture(scope="session")
def crds(kube: KubeControlPlane, crd_folder: Path) -> list[str]:
    """Our CRD and the upstream ones it needs, applied and Established."""
    return kube.install_crds(
        [PIPELINE_CRD, *(crd_file(crd_folder, name) for name in OPERATOR_CHILD_CRDS)]
    )


@pytest.fixture(scope="session")
def api(kube: KubeControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kube.kubeconfig))


@pytest.fixture(scope="session")
def objects(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture(scope="session")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def write_sa_kubeconfig(
    core: client.CoreV1Api, kube: KubeControlPlane, account: str, namespace: str, path: Path
) -> Path:
    """A kubeconfig that authenticates as ServiceAccount ``account`` with a fresh token. It names
    the CA file rather than inlining it: the Kubernetes client writes inline data to temporary
    files that only an orderly exit removes, and tests kill operators."""
    token = core.create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    cluster = {"server": kube.server, "certificate-authority": str(kube.pki / "ca.crt")}
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": account}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)
    return path


@dataclass
class OperatorProcess:
    """``python -m pagestream_operator`` as a child process."""

    kubeconfig: Path
    log_dir: Path
    name: str = "operator"
    resync_seconds: float = RESYNC_SECONDS
    namespaces: tuple[str, ...] = ()  # empty: the whole cluster
    extra_args: tuple[str, ...] = ()
    metrics_port: int = field(default_factory=free_port)
    liveness_port: int = field(default_factory=free_port)
    readiness_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> None:
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAGESTREAM_OPERATOR_")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        # Tied to this thread: a killed test run leaves no operator behind.
        self.proc = popen_tied(
            [
                sys.executable,
                "-m",
                "pagestream_operator",
                f"--kubeconfig={self.kubeconfig}",
                f"--resync-seconds={self.resync_seconds}",
                f"--metrics-port={self.metrics_port}",
                f"--liveness-port={self.liveness_port}",
                f"--readiness-port={self.readiness_port}",
                "--bind-address=127.0.0.1",
                "--log-level=INFO",
                *([f"--namespaces={','.join(self.namespaces)}"] if self.namespaces else []),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        eventually(self.live, timeout=60, what=f"{self.name} /healthz (log: {self.log_file})")

    def live(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.proc.returncode}; see {self.log_file}"
            )
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2
            ) as resp:
                return resp.status == 200
        except OSError:
            return False

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """/readyz's status code and body (``{"ready": ..., "reason": ...}``)."""
        url = f"http://127.0.0.1:{self.readiness_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            return r.read().decode()

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no chance to finish what it was doing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")


@pytest.fixture(scope="module")
def operator(
    kube: KubeControlPlane, crds: list[str], stack_paths: StackPaths
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(
        kubeconfig=kube.kubeconfig, log_dir=stack_paths.logs, name="operator-admin"
    )
    op.start()
    yield op
    op.stop()


@pytest.fixture
def namespace(core: client.CoreV1Api, crds: list[str]) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


# --- pipelines and children ------------------------------------------------------------------


def pipeline_body(name: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "kafka": {"bootstrapServers": "kafka:9092", "topic": {"name": "page-views"}},
        "postgres": {"cnpgCluster": {"name": "warehouse"}},
        "spark": {"image": "registry.example/pagestream-spark:0.1.0"},
        "processing": {"pii": {"hashKeySecretRef": {"name": "pii-key"}}},
        "checkpoint": {"uri": "s3a://checkpoints"},
    }
    for key, value in overrides.items():
        spec[key] = value
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PageAnalyticsPipeline",
        "metadata": {"name": name},
        "spec": spec,
    }


@dataclass
class Cluster:
    """Test-side handle on one namespace: create pipelines, read them, play the Spark operator."""

    objects: client.CustomObjectsApi
    core: client.CoreV1Api
    namespace: str

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.objects.create_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, self.namespace, PLURAL, body
        )

    def pipeline(self, name: str) -> dict[str, Any]:
        return self.objects.get_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, self.namespace, PLURAL, name
        )

    def patch_spec(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.objects.patch_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}
        )

    def get(self, kind: tuple[str, str, str], name: str) -> dict[str, Any] | None:
        try:
            return self.objects.get_namespaced_custom_object(  # type: ignore[no-any-return]
                *kind[:2], self.namespace, kind[2], name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def app(self, name: str) -> dict[str, Any] | None:
        return self.get(SPARK, name)

    def wait_app(
        self, name: str, what: str = "", check: Callable[[dict[str, Any]], bool] = bool
    ) -> dict[str, Any]:
        return eventually(
            lambda: (a := self.app(name)) and check(a) and a,
            what=what or f"SparkApplication {self.namespace}/{name}",
        )

    def play_spark_operator(self, name: str, state: str, submission: str, error: str = "") -> None:
        """What the Kubeflow Spark operator would write into the application's status."""
        status: dict[str, Any] = {
            "applicationState": {"state": state, "errorMessage": error},
            "submissionID": submission,
            "driverInfo": {"podName": f"{name}-driver"},
            "sparkApplicationId": f"spark-{submission}",
        }
        self.objects.patch_namespaced_custom_object_status(
            *SPARK[:2], self.namespace, SPARK[2], name, {"status": status}
        )

    def wait_status(
        self, name: str, what: str, check: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            body = self.pipeline(name)
            status = body.get("status") or {}
            return body if check(status) else None

        return eventually(probe, what=f"{self.namespace}/{name}: {what}", timeout=timeout)

    def wait_state(self, name: str, state: str, timeout: float = 20) -> dict[str, Any]:
        return self.wait_status(
            name, f"lifecycleState {state}", lambda s: s.get("lifecycleState") == state, timeout
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        items = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return [{"reason": e.reason, "type": e.type, "message": e.message} for e in items]


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions") or []}


@pytest.fixture
def cluster(objects: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str) -> Cluster:
    return Cluster(objects, core, namespace)


def metric_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)[:3000]
