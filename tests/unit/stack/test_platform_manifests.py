"""The node's platform renderers (pagestream.stack.node.platform): upstream manifests changed
only where they name a registry image, the in-cluster Kafka's objects, the pins."""

from __future__ import annotations

import base64
import re

import yaml

from pagestream.stack.artifacts import (
    CNPG_BUILD,
    PROMETHEUS_BUILD,
    PROMETHEUS_OPERATOR_MODULE,
    PROMETHEUS_OPERATOR_TOOLS,
    SPARK_OPERATOR_BUILD,
)
from pagestream.stack.crds import pinned_versions
from pagestream.stack.node.platform import (
    KafkaUsers,
    cnpg_manifests,
    kafka_cluster_id,
    kafka_manifests,
    prometheus_manifests,
    prometheus_operator_manifests,
    spark_operator_values,
)
from pagestream.stack.paths import REPO_ROOT

RELEASE = """
apiVersion: v1
kind: Namespace
metadata: {name: cnpg-system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cnpg-controller-manager, namespace: cnpg-system}
spec:
  template:
    spec:
      containers:
      - name: manager
        image: ghcr.io/cloudnative-pg/cloudnative-pg:1.30.0
        imagePullPolicy: Always
        env:
        - {name: OPERATOR_IMAGE_NAME, value: ghcr.io/cloudnative-pg/cloudnative-pg:1.30.0}
        - {name: MONITORING_QUERIES_CONFIGMAP, value: cnpg-default-monitoring}
"""

BUNDLE = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: prometheus-operator, namespace: default}
spec:
  template:
    spec:
      containers:
      - name: prometheus-operator
        image: quay.io/prometheus-operator/prometheus-operator:v0.85.0
        args:
        - --kubelet-service=kube-system/kubelet
        - --prometheus-config-reloader=quay.io/prometheus-operator/prometheus-config-reloader:v0.85.0
"""


def test_cnpg_release_names_the_local_image_everywhere_and_nothing_else_changes() -> None:
    docs = cnpg_manifests(RELEASE, "localhost/pagestream-cloudnative-pg:abc")
    original = [d for d in yaml.safe_load_all(RELEASE) if d]
    assert docs[0] == original[0]
    (container,) = docs[1]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "localhost/pagestream-cloudnative-pg:abc"
    assert container["imagePullPolicy"] == "IfNotPresent"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "OPERATOR_IMAGE_NAME": "localhost/pagestream-cloudnative-pg:abc",
        "MONITORING_QUERIES_CONFIGMAP": "cnpg-default-monitoring",
    }


def test_prometheus_operator_bundle_runs_the_local_operator_and_reloader() -> None:
    (doc,) = prometheus_operator_manifests(BUNDLE, "localhost/op:1", "localhost/reloader:1")
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "localhost/op:1"
    assert container["args"] == [
        "--kubelet-service=kube-system/kubelet",
        "--prometheus-config-reloader=localhost/reloader:1",
    ]


def test_spark_operator_values_split_the_reference_and_turn_the_webhook_off() -> None:
    values = spark_operator_values("localhost/pagestream-spark-operator:f00", ["shop"])
    assert values["image"] == {
        "registry": "localhost",
        "repository": "pagestream-spark-operator",
        "tag": "f00",
        "pullPolicy": "IfNotPresent",
    }
    assert values["webhook"] == {"enable": False}
    assert values["spark"]["jobNamespaces"] == ["shop"]


def test_prometheus_selects_every_monitor_and_rule_and_states_its_version() -> None:
    (*_, prometheus) = prometheus_manifests("localhost/prometheus:1")
    spec = prometheus["spec"]
    for selector in (
        "podMonitorSelector",
        "podMonitorNamespaceSelector",
        "serviceMonitorSelector",
        "serviceMonitorNamespaceSelector",
        "ruleSelector",
        "ruleNamespaceSelector",
    ):
        assert spec[selector] == {}
    assert spec["version"] == "v3.5.0"  # tools/go/prometheus: module v0.305.0


def test_prometheus_module_version_maps_to_its_release() -> None:
    assert "-X github.com/prometheus/common/version.Version=3.5.0" in PROMETHEUS_BUILD.ldflags()


def test_kafka_statefulset_is_restricted_and_advertises_its_service() -> None:
    users = KafkaUsers({"job": "pw1", "producer": "pw2"})
    objs = {(o["kind"], o["metadata"]["name"]): o for o in kafka_manifests("shop", "img:1", users)}
    config = objs[("ConfigMap", "kafka-config")]["data"]["server.properties"]
    assert (
        "advertised.listeners=PLAINTEXT://127.0.0.1:9094,SASL_PLAINTEXT://kafka.shop.svc:9092"
        in config
    )
    assert "sasl.enabled.mechanisms=SCRAM-SHA-512" in config
    broker_users = objs[("Secret", "kafka-scram-users")]["data"]
    assert {k: base64.b64decode(v).decode() for k, v in broker_users.items()} == {
        "job": "pw1",
        "producer": "pw2",
    }
    client = objs[("Secret", "job")]["data"]
    assert base64.b64decode(client["password"]).decode() == "pw1"
    assert 'username="job" password="pw1"' in base64.b64decode(client["sasl.jaas.config"]).decode()
    pod = objs[("StatefulSet", "kafka")]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_generated_kafka_passwords_need_no_quoting() -> None:
    users = KafkaUsers.generate(["a", "b"])
    assert all(re.fullmatch(r"[0-9a-f]{32}", pw) for pw in users.passwords.values())
    assert len(set(users.passwords.values())) == 2


def test_kafka_cluster_id_is_a_stable_kafka_uuid() -> None:
    assert kafka_cluster_id("shop") == kafka_cluster_id("shop") != kafka_cluster_id("other")
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", kafka_cluster_id("shop"))


def test_platform_builds_use_the_crd_pins() -> None:
    pins = pinned_versions()
    assert SPARK_OPERATOR_BUILD.version() == pins[SPARK_OPERATOR_BUILD.module]
    assert CNPG_BUILD.version() == pins[CNPG_BUILD.module]
    assert (
        PROMETHEUS_OPERATOR_TOOLS.required_version(PROMETHEUS_OPERATOR_MODULE)
        == pins[PROMETHEUS_OPERATOR_MODULE]
    )


def test_chart_dependency_pins_match_the_operators_built_for_the_node() -> None:
    chart = yaml.safe_load((REPO_ROOT / "charts" / "pagestream" / "Chart.yaml").read_text())
    deps = {d["name"]: d["version"] for d in chart["dependencies"]}
    assert "v" + deps["spark-operator"] == SPARK_OPERATOR_BUILD.version()
