"""The node itself: Ready, real pods with cluster DNS and Services, pagestream's three images
running their entrypoints as their non-root users, and Pod Security enforced for real."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from node_harness import eventually, get_json, restricted_namespace, run_pod

from pagestream.stack.node import config
from pagestream.stack.node.node import LocalNode

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def namespace(node: LocalNode) -> str:
    return restricted_namespace(node, "node-test")


def test_one_node_is_ready(node: LocalNode) -> None:
    nodes = get_json(node, "nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes] == [config.NODE_NAME]
    status = nodes[0]["status"]
    ready = {c["type"]: c["status"] for c in status["conditions"]}["Ready"]
    assert ready == "True"
    assert status["nodeInfo"]["kubeletVersion"] == "v1.34.4"
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert {"type": "InternalIP", "address": config.NODE_IP} in status["addresses"]


def test_a_pod_resolves_cluster_dns_and_calls_the_api_through_its_service(
    node: LocalNode, node_images: dict[str, str], namespace: str
) -> None:
    script = (
        "import json, os, socket, ssl, urllib.request\n"
        "sa = '/var/run/secrets/kubernetes.io/serviceaccount/'\n"
        "print('dns', socket.gethostbyname('kubernetes.default.svc.cluster.local'))\n"
        "ctx = ssl.create_default_context(cafile=sa + 'ca.crt')\n"
        "req = urllib.request.Request('https://kubernetes.default.svc/version',\n"
        "    headers={'Authorization': 'Bearer ' + open(sa + 'token').read()})\n"
        "print('api', json.load(urllib.request.urlopen(req, context=ctx, timeout=10))['gitVersion'])\n"
    )
    pod, log = run_pod(
        node, namespace, "dns-and-api", node_images["operator"], command=["python", "-c", script]
    )
    assert pod["status"]["phase"] == "Succeeded", log
    assert f"dns {config.API_SERVICE_IP}" in log.splitlines()
    assert "api v1.34.4" in log.splitlines()


ENTRYPOINTS = {
    # component: (args to the image's own entrypoint, what its output must contain)
    "operator": (["--help"], "usage: pagestream-operator"),
    "simulator": (None, "usage: pagestream-simulate"),  # the image's CMD is --help
    "spark": (["/opt/spark/bin/spark-submit", "--version"], "version 4.2.0"),
}
USERS = {"operator": "10001", "simulator": "10001", "spark": "185"}


@pytest.mark.parametrize("component", sorted(ENTRYPOINTS))
def test_each_image_runs_its_entrypoint_as_its_non_root_user(
    node: LocalNode, node_images: dict[str, str], namespace: str, component: str
) -> None:
    args, expected = ENTRYPOINTS[component]
    # runAsNonRoot with no runAsUser: the kubelet itself refuses an image whose user is root.
    pod, log = run_pod(
        node, namespace, f"{component}-entrypoint", node_images[component], args=args
    )
    assert pod["status"]["phase"] == "Succeeded", log
    assert expected in log
    # The spark entrypoint passes anything that is not driver/executor through; the others
    # have a Python entrypoint, so ask the image's user with `id` directly.
    uid_args = {"args": ["id", "-u"]} if component == "spark" else {"command": ["id", "-u"]}
    pod, log = run_pod(node, namespace, f"{component}-uid", node_images[component], **uid_args)
    assert pod["status"]["phase"] == "Succeeded", log
    assert log.strip() == USERS[component]


def test_the_spark_image_has_the_jobs_locked_environment(
    node: LocalNode, node_images: dict[str, str], namespace: str
) -> None:
    script = "import pagestream_spark, pyspark, pyarrow; print(pyspark.__version__)"
    pod, log = run_pod(
        node,
        namespace,
        "spark-python",
        node_images["spark"],
        args=["/opt/pagestream/venv/bin/python", "-c", script],
    )
    assert pod["status"]["phase"] == "Succeeded", log
    assert log.strip() == "4.2.0"


def test_restricted_refuses_a_privileged_pod(node: LocalNode, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": namespace},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "localhost/pagestream-pause:latest",
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }
    proc = node.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(pod), check=False)
    assert proc.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in proc.stderr
    assert "privileged" in proc.stderr
    gone = node.kubectl("-n", namespace, "get", "pod", "privileged", check=False)
    assert "NotFound" in gone.stderr


def test_a_claim_of_the_default_class_binds_and_a_non_root_pod_writes_to_it(
    node: LocalNode, node_images: dict[str, str], namespace: str
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    node.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(claim))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "writer", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "main",
                    "image": node_images["operator"],
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "echo kept > /data/file && cat /data/file"],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }
    node.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(pod))
    done = eventually(
        lambda: (
            get_json(node, "-n", namespace, "pod", "writer")["status"].get("phase")
            in ("Succeeded", "Failed")
            and get_json(node, "-n", namespace, "pod", "writer")
        ),
        timeout=120,
        what="the writer pod to finish",
    )
    log = node.kubectl("-n", namespace, "logs", "writer").stdout
    assert done["status"]["phase"] == "Succeeded", log
    assert log.strip() == "kept"
    bound = get_json(node, "-n", namespace, "pvc", "data")
    assert bound["status"]["phase"] == "Bound"
    assert bound["spec"]["storageClassName"] == "standard"
    volume = get_json(node, "pv", bound["spec"]["volumeName"])
    folder = volume["spec"]["hostPath"]["path"]
    assert (node.home / "volumes") in Path(folder).parents
    assert (Path(folder) / "file").read_text() == "kept\n"
    # Reclaim policy Delete: the claim goes, then the volume and its folder.
    node.kubectl("-n", namespace, "delete", "pod", "writer", "--wait=true")
    node.kubectl("-n", namespace, "delete", "pvc", "data", "--wait=true")
    eventually(
        lambda: (
            "NotFound" in node.kubectl("get", "pv", volume["metadata"]["name"], check=False).stderr
        ),
        timeout=60,
        what="the volume deleted with its claim",
    )
    assert not Path(folder).exists()
