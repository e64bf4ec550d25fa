"""The chart's app release on the real node: the operator as a pod, admitted under Pod
Security ``restricted``, Ready, serving metrics and health, passing ``helm test``, with NOTES
whose commands work; a PageAnalyticsPipeline applied with kubectl becomes a SparkApplication,
and status and Events come back from the pod through the real API."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from node_harness import eventually, get_json, restricted_namespace

from pagestream.stack.helm import Helm
from pagestream.stack.node.node import LocalNode
from pagestream.stack.node.release import RESTRICTED, AppRelease

pytestmark = pytest.mark.node


@dataclass
class Installed:
    release: AppRelease
    output: str  # what `helm install` printed, NOTES included

    @property
    def node(self) -> LocalNode:
        return self.release.node

    @property
    def notes(self) -> str:
        return self.output.split("NOTES:", 1)[1]


@pytest.fixture(scope="module")
def installed(node: LocalNode, node_images: dict[str, str]) -> Iterator[Installed]:
    release = AppRelease(node, namespace="pagestream", name="pagestream")
    output = release.install(node_images["operator"])
    yield Installed(release, output)
    Helm(node.paths).run(
        "uninstall", "pagestream", "-n", "pagestream", "--wait", kubeconfig=node.kubeconfig
    )


def operator_pod(installed: Installed) -> dict:
    pods = get_json(
        installed.node,
        "-n",
        "pagestream",
        "pods",
        "-l",
        "app.kubernetes.io/component=operator",
    )["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def test_the_operator_pod_is_admitted_under_restricted_and_ready(installed: Installed) -> None:
    labels = get_json(installed.node, "namespace", "pagestream")["metadata"]["labels"]
    assert RESTRICTED.items() <= labels.items()
    pod = operator_pod(installed)
    assert pod["status"]["phase"] == "Running"
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True"
    assert pod["spec"]["containers"][0]["image"].startswith("localhost/pagestream-operator:")
    deploy = get_json(installed.node, "-n", "pagestream", "deploy", "pagestream-operator")
    assert deploy["status"]["availableReplicas"] == 1


def test_the_operator_serves_metrics_and_health(installed: Installed) -> None:
    metrics = installed.node.kubectl(
        "get",
        "--raw",
        "/api/v1/namespaces/pagestream/services/pagestream-operator-metrics:metrics/proxy/metrics",
    ).stdout
    assert "pagestream_operator_pipelines{" in metrics
    name = operator_pod(installed)["metadata"]["name"]
    health = installed.node.kubectl(
        "get", "--raw", f"/api/v1/namespaces/pagestream/pods/{name}:8081/proxy/healthz"
    )
    assert health.returncode == 0


def test_helm_test_passes(installed: Installed) -> None:
    proc = installed.release.test()
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"Phase:\s+Succeeded", proc.stdout), proc.stdout


def notes_commands(notes: str) -> list[str]:
    """The shell commands NOTES prints (indented `kubectl`/`helm` lines, heredocs whole)."""
    commands: list[str] = []
    lines = iter(notes.splitlines())
    for line in lines:
        stripped = line.strip()
        if not stripped.startswith(("kubectl ", "helm ")):
            continue
        if "<<'YAML'" in stripped:
            body = []
            for inner in lines:
                body.append(inner)
                if inner.strip() == "YAML":
                    break
            stripped = "\n".join([stripped, *body])
        commands.append(stripped)
    return commands


def test_every_command_the_notes_print_works(installed: Installed, tmp_path: Path) -> None:
    commands = notes_commands(installed.notes)
    assert any(c.startswith("helm test") for c in commands), installed.notes
    assert any("kubectl apply -f - <<'YAML'" in c for c in commands), installed.notes
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").symlink_to(installed.node.kubectl_binary())
    (bin_dir / "helm").symlink_to(Helm(installed.node.paths).ensure_installed())
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "KUBECONFIG": str(installed.node.kubeconfig),
        "HOME": str(tmp_path),
    }
    for command in commands:
        # `get ... -w` watches until interrupted: the same command without it must answer.
        command = re.sub(r" -w$", "", command)
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    # What they created is the example pipeline, now reconciled by the operator pod.
    pap = eventually(
        lambda: (
            (obj := get_json(installed.node, "-n", "pagestream", "pap", "page-views"))
            .get("status", {})
            .get("observedGeneration")
            and obj
        ),
        timeout=90,
        what="the NOTES' pipeline observed by the operator",
    )
    assert pap["status"]["observedGeneration"] == pap["metadata"]["generation"]


def pipeline(namespace: str) -> dict:
    return {
        "apiVersion": "pagestream.dev/v1alpha1",
        "kind": "PageAnalyticsPipeline",
        "metadata": {"name": "shop", "namespace": namespace},
        "spec": {
            "kafka": {"bootstrapServers": "kafka.example.svc:9092", "topic": {"name": "views"}},
            "postgres": {
                "host": "warehouse.example.svc",
                "secretRef": {"name": "warehouse"},
                "database": "analytics",
            },
            "spark": {"image": "localhost/pagestream-spark:test"},
            "processing": {"pii": {"hashKeySecretRef": {"name": "pii"}}},
            "checkpoint": {"persistentVolumeClaim": {"claimName": "shop-checkpoint"}},
        },
    }


def test_a_pipeline_becomes_a_spark_application_with_status_and_events_from_the_pod(
    installed: Installed,
) -> None:
    node = installed.node
    namespace = restricted_namespace(node, "shop")
    node.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(pipeline(namespace)))
    pap_uid = get_json(node, "-n", namespace, "pap", "shop")["metadata"]["uid"]

    app = eventually(
        lambda: (
            node.kubectl(
                "-n", namespace, "get", "sparkapplication", "shop", "-o", "yaml", check=False
            ).returncode
            == 0
            and yaml.safe_load(
                node.kubectl(
                    "-n", namespace, "get", "sparkapplication", "shop", "-o", "yaml"
                ).stdout
            )
        ),
        timeout=90,
        what="the operator pod's SparkApplication",
    )
    owners = app["metadata"]["ownerReferences"]
    assert [(o["kind"], o["uid"], o.get("controller")) for o in owners] == [
        ("PageAnalyticsPipeline", pap_uid, True)
    ]
    assert app["spec"]["image"] == "localhost/pagestream-spark:test"

    def observed() -> dict | None:
        obj = get_json(node, "-n", namespace, "pap", "shop")
        status = obj.get("status", {})
        ok = status.get("observedGeneration") == obj["metadata"]["generation"]
        return status if ok and status.get("conditions") else None

    status = eventually(observed, timeout=60, what="status written by the operator pod")
    assert {c["type"] for c in status["conditions"]} >= {"Ready"}
    events = eventually(
        lambda: get_json(
            node, "-n", namespace, "events", "--field-selector", f"involvedObject.uid={pap_uid}"
        )["items"],
        timeout=60,
        what="Events about the pipeline",
    )
    assert any(e.get("source", {}).get("component") or e.get("reportingComponent") for e in events)

    node.kubectl("-n", namespace, "delete", "pap", "shop", "--wait=true", "--timeout=60s")
    eventually(
        lambda: (
            "NotFound"
            in node.kubectl("-n", namespace, "get", "sparkapplication", "shop", check=False).stderr
        ),
        timeout=60,
        what="the SparkApplication removed with its pipeline",
    )


def test_the_operator_pod_runs_locked_down_and_logs_json(installed: Installed) -> None:
    pod = operator_pod(installed)
    container = pod["spec"]["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"]["drop"] == ["ALL"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # Its own log, as the kubelet keeps it: JSON lines, starting on the chart's settings.
    log = installed.node.kubectl("-n", "pagestream", "logs", pod["metadata"]["name"]).stdout
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    starting = [r for r in records if r.get("msg") == "starting"]
    assert starting, log[:2000]
    assert starting[0]["namespaces"] == "all"
    assert starting[0]["metrics_port"] == 8080
