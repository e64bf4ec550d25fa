"""The platform operators on the local node, installed the way their upstream releases install
them (`pagestream cluster platform`): Kubeflow spark-operator from the Helm chart its module
ships, CloudNativePG from its module's release manifest, prometheus-operator from its module's
``bundle.yaml`` plus a Prometheus it manages, and, in place of Strimzi (which cannot be had
here), a KRaft broker StatefulSet with a SCRAM listener.

Every image is built here (:mod:`pagestream.stack.images`, ``images/platform``); the upstream
manifests are changed only where a registry image is named: each image reference, and a pull
policy of ``Always`` (with no registry a pull always fails). The renderers are pure and unit
tested; :class:`Platform` applies them.
"""

from __future__ import annotations

import base64
import json
import platform
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pagestream.stack.artifacts import (
    CNPG_BUILD,
    PROMETHEUS_BUILD,
    PROMETHEUS_OPERATOR_MODULE,
    PROMETHEUS_OPERATOR_TOOLS,
    SPARK_OPERATOR_BUILD,
    go_binaries,
    go_module_source,
    maven_jars,
    upstream_binaries,
    upstream_source,
)
from pagestream.stack.errors import StackError
from pagestream.stack.helm import Helm
from pagestream.stack.kafka import LOG4J2_CONFIG, kraft_server_properties
from pagestream.stack.node.node import LocalNode
from pagestream.stack.node.release import AppRelease
from pagestream.stack.paths import StackPaths

# Where each operator runs: the namespaces their upstream install instructions use.
SPARK_OPERATOR_NAMESPACE = "spark-operator"
CNPG_NAMESPACE = "cnpg-system"
PROMETHEUS_NAMESPACE = "default"  # bundle.yaml's
# The Prometheus that tools/go/prometheus pins (module v0.305.0); the Prometheus resource
# states it so that the operator generates flags and configuration this version understands.
PROMETHEUS_VERSION = "v3.5.0"
PG_MAJOR = "15"
# Go's name for this machine's architecture (CloudNativePG names its binaries by it).
GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

KAFKA_NAME = "kafka"
KAFKA_SASL_PORT = 9092
KAFKA_INTERNAL_PORT = 9094
KAFKA_CONTROLLER_PORT = 9093
KAFKA_DATA = "/var/lib/kafka/data"

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}


@dataclass(frozen=True)
class PlatformImages:
    """References the node's containerd knows, one per platform image."""

    spark_operator: str
    cnpg: str
    postgresql: str
    prometheus_operator: str
    config_reloader: str
    prometheus: str
    kafka: str


def build_platform_images(paths: StackPaths) -> tuple[PlatformImages, list[Path]]:
    """Build every platform image (cached by tag) and their archives for the node."""
    from pagestream.stack.images import ImageBuilder

    cache = paths.cache
    builder = ImageBuilder(paths)
    spark_op = upstream_binaries(cache, SPARK_OPERATOR_BUILD)
    cnpg = upstream_binaries(cache, CNPG_BUILD)
    prom_op = go_binaries(cache, PROMETHEUS_OPERATOR_TOOLS)
    prom_version = PROMETHEUS_OPERATOR_TOOLS.required_version(PROMETHEUS_OPERATOR_MODULE)
    refs = {
        "spark_operator": builder.build_platform(
            "spark-operator",
            {
                "spark-operator": spark_op / "operator",
                "entrypoint.sh": upstream_source(SPARK_OPERATOR_BUILD) / "entrypoint.sh",
            },
            versions={"spark-operator": SPARK_OPERATOR_BUILD.version()},
        ),
        "cnpg": builder.build_platform(
            "cloudnative-pg",
            {f"manager_{GOARCH}": cnpg / "manager"},
            versions={"cloudnative-pg": CNPG_BUILD.version(), "goarch": GOARCH},
        ),
        "postgresql": builder.build_platform(
            "postgresql", {}, versions={"pg_major": PG_MAJOR}, tag_prefix=f"{PG_MAJOR}-"
        ),
        "prometheus_operator": builder.build_platform(
            "prometheus-operator",
            {"operator": prom_op / "operator"},
            versions={"prometheus-operator": prom_version},
        ),
        "config_reloader": builder.build_platform(
            "prometheus-config-reloader",
            {"prometheus-config-reloader": prom_op / "prometheus-config-reloader"},
            versions={"prometheus-operator": prom_version},
        ),
        "prometheus": builder.build_platform(
            "prometheus",
            {"prometheus": upstream_binaries(cache, PROMETHEUS_BUILD) / "prometheus"},
            versions={"prometheus": PROMETHEUS_VERSION},
        ),
        "kafka": builder.build_platform("kafka", {"libs": maven_jars(cache, "kafka")}, versions={}),
    }
    images = PlatformImages(**{key: ref.reference for key, ref in refs.items()})
    return images, [builder.archive(ref) for ref in refs.values()]


# --- pure renderers --------------------------------------------------------------------------


def _split(reference: str) -> tuple[str, str, str]:
    """registry, repository, tag of ``localhost/name:tag``."""
    name, _, tag = reference.rpartition(":")
    registry, _, repository = name.partition("/")
    return registry, repository, tag


def spark_operator_values(image: str, job_namespaces: Sequence[str]) -> dict[str, Any]:
    """Values for the chart spark-operator's module ships. The mutating webhook is off:
    pagestream puts every pod-level setting in the SparkApplication's pod templates, which
    spark-submit applies itself, so no pod depends on a webhook being reachable."""
    registry, repository, tag = _split(image)
    return {
        "image": {
            "registry": registry,
            "repository": repository,
            "tag": tag,
            "pullPolicy": "IfNotPresent",
        },
        "webhook": {"enable": False},
        "controller": {
            "replicas": 1,
            "uiService": {"enable": False},
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
        },
        "spark": {"jobNamespaces": list(job_namespaces), "serviceAccount": {"name": "spark"}},
        "prometheus": {"metrics": {"enable": True}, "podMonitor": {"create": False}},
    }


class _ManifestLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading a bare ``=`` (YAML 1.1's "value" tag, which it resolves
    but cannot construct; prometheus-operator's CRDs list ``=`` among label-matcher
    operators) as the string it is."""


def _value_as_text(loader: _ManifestLoader, node: yaml.ScalarNode) -> str:
    return loader.construct_scalar(node)


_ManifestLoader.add_constructor("tag:yaml.org,2002:value", _value_as_text)


def _load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(text, Loader=_ManifestLoader) if doc]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


def _patch_container(
    docs: list[dict[str, Any]], container_name: str, image: str, what: str
) -> dict[str, Any]:
    """The Deployment container named ``container_name``, its image set to ``image`` (never
    pulled: a locally imported image); StackError naming ``what`` if there is none."""
    for doc in docs:
        if doc.get("kind") != "Deployment":
            continue
        for container in _containers(doc):
            if container.get("name") == container_name:
                container["image"] = image
                container["imagePullPolicy"] = "IfNotPresent"
                return container
    raise StackError(f"{what} has no {container_name} Deployment container")


def cnpg_manifests(release: str, image: str) -> list[dict[str, Any]]:
    """CloudNativePG's release manifest with its operator image replaced by ``image``: the
    Deployment's container, its ``Always`` pull policy and OPERATOR_IMAGE_NAME (the image
    CloudNativePG copies its instance manager from into every PostgreSQL pod)."""
    docs = _load_all(release)
    container = _patch_container(docs, "manager", image, "CloudNativePG's release manifest")
    for env in container.get("env", []):
        if env["name"] == "OPERATOR_IMAGE_NAME":
            env["value"] = image
    return docs


def prometheus_operator_manifests(
    bundle: str, operator_image: str, reloader_image: str
) -> list[dict[str, Any]]:
    """prometheus-operator's bundle.yaml with its two images replaced by the local ones."""
    docs = _load_all(bundle)
    container = _patch_container(
        docs, "prometheus-operator", operator_image, "prometheus-operator's bundle.yaml"
    )
    container["args"] = [
        f"--prometheus-config-reloader={reloader_image}"
        if arg.startswith("--prometheus-config-reloader=")
        else arg
        for arg in container.get("args", [])
    ]
    return docs


def prometheus_manifests(image: str, namespace: str = PROMETHEUS_NAMESPACE) -> list[dict[str, Any]]:
    """A Prometheus managed by prometheus-operator that scrapes every PodMonitor and
    ServiceMonitor and loads every PrometheusRule of the cluster, with the RBAC of the
    operator's example (example/rbac/prometheus)."""
    name = "prometheus"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "pagestream-node"}
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "pagestream-node-prometheus", "labels": labels},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["nodes", "nodes/metrics", "services", "endpoints", "pods"],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["get", "list", "watch"],
                },
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
                {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "pagestream-node-prometheus", "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "pagestream-node-prometheus",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "Prometheus",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "image": image,
                "version": PROMETHEUS_VERSION,
                "replicas": 1,
                "serviceAccountName": name,
                "scrapeInterval": "5s",
                "evaluationInterval": "5s",
                "podMonitorSelector": {},
                "podMonitorNamespaceSelector": {},
                "serviceMonitorSelector": {},
                "serviceMonitorNamespaceSelector": {},
                "ruleSelector": {},
                "ruleNamespaceSelector": {},
                "resources": {"requests": {"cpu": "50m", "memory": "200Mi"}},
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65534,
                    "fsGroup": 65534,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            },
        },
    ]


@dataclass(frozen=True)
class KafkaUsers:
    """SCRAM-SHA-512 users of the in-cluster broker: name -> password."""

    passwords: Mapping[str, str]

    @classmethod
    def generate(cls, names: Sequence[str]) -> KafkaUsers:
        # Alphanumeric: the broker's --add-scram syntax has no quoting.
        return cls({name: secrets.token_hex(16) for name in names})


def kafka_cluster_id(seed: str) -> str:
    """A Kafka cluster id (a UUID in URL-safe base64, 22 characters), fixed by ``seed``."""
    raw = uuid.uuid5(uuid.NAMESPACE_URL, f"pagestream-kafka:{seed}").bytes
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def kafka_bootstrap(namespace: str) -> str:
    return f"{KAFKA_NAME}.{namespace}.svc:{KAFKA_SASL_PORT}"


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def kafka_user_secret(namespace: str, user: str, password: str) -> dict[str, Any]:
    """A client's credentials as Strimzi's KafkaUser Secret holds them (named after the user,
    keys ``password`` and ``sasl.jaas.config``), so a pipeline reads them the same way."""
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="{password}";'
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": user,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": KAFKA_NAME, "pagestream.dev/kafka-user": user},
        },
        "type": "Opaque",
        "data": {"password": _b64(password), "sasl.jaas.config": _b64(jaas)},
    }


def kafka_manifests(
    namespace: str, image: str, users: KafkaUsers, *, storage: str = "1Gi"
) -> list[dict[str, Any]]:
    """The KRaft broker as a one-replica StatefulSet behind the Service ``kafka`` (SASL/SCRAM
    on 9092, advertised by that Service's name), its users' Secrets, and its config."""
    labels = {"app.kubernetes.io/name": KAFKA_NAME, "app.kubernetes.io/part-of": "pagestream-node"}
    properties = kraft_server_properties(
        host="127.0.0.1",
        plaintext_port=KAFKA_INTERNAL_PORT,
        controller_port=KAFKA_CONTROLLER_PORT,
        data_dir=KAFKA_DATA,
        sasl_port=KAFKA_SASL_PORT,
        advertised_sasl_host=f"{KAFKA_NAME}.{namespace}.svc",
    )
    broker_users = f"{KAFKA_NAME}-scram-users"
    meta = {"namespace": namespace, "labels": labels}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{KAFKA_NAME}-config", **meta},
            "data": {"server.properties": properties, "log4j2.yaml": LOG4J2_CONFIG},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": broker_users, **meta},
            "type": "Opaque",
            "data": {name: _b64(pw) for name, pw in sorted(users.passwords.items())},
        },
        *(kafka_user_secret(namespace, u, pw) for u, pw in sorted(users.passwords.items())),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": KAFKA_NAME, **meta},
            "spec": {
                "selector": {"app.kubernetes.io/name": KAFKA_NAME},
                "ports": [{"name": "sasl", "port": KAFKA_SASL_PORT, "targetPort": "sasl"}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": KAFKA_NAME, **meta},
            "spec": {
                "serviceName": KAFKA_NAME,
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": KAFKA_NAME}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 1001,
                            "runAsGroup": 1001,
                            "fsGroup": 1001,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "terminationGracePeriodSeconds": 30,
                        "containers": [
                            {
                                "name": "kafka",
                                "image": image,
                                "imagePullPolicy": "IfNotPresent",
                                "env": [
                                    {
                                        "name": "KAFKA_CLUSTER_ID",
                                        "value": kafka_cluster_id(namespace),
                                    },
                                    {"name": "KAFKA_HEAP", "value": "384m"},
                                    {"name": "KAFKA_SCRAM_USERS_DIR", "value": "/etc/kafka-users"},
                                ],
                                "ports": [{"name": "sasl", "containerPort": KAFKA_SASL_PORT}],
                                "readinessProbe": {
                                    "tcpSocket": {"port": "sasl"},
                                    "periodSeconds": 2,
                                },
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": "512Mi"},
                                    "limits": {"memory": "1Gi"},
                                },
                                "securityContext": RESTRICTED_CONTAINER,
                                "volumeMounts": [
                                    {"name": "data", "mountPath": "/var/lib/kafka/data"},
                                    {"name": "config", "mountPath": "/etc/kafka", "readOnly": True},
                                    {
                                        "name": "users",
                                        "mountPath": "/etc/kafka-users",
                                        "readOnly": True,
                                    },
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "config", "configMap": {"name": f"{KAFKA_NAME}-config"}},
                            {"name": "users", "secret": {"secretName": broker_users}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": storage}},
                        },
                    }
                ],
            },
        },
    ]


def yaml_stream(objects: Sequence[dict[str, Any]]) -> str:
    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objects)


# --- applying --------------------------------------------------------------------------------


@dataclass
class Platform:
    """Install (idempotently) and wait for the platform operators on a running node."""

    node: LocalNode
    images: PlatformImages

    def _apply(self, objects: Sequence[dict[str, Any]], *, what: str) -> None:
        proc = self.node.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=pagestream-platform",
            "-f",
            "-",
            stdin=yaml_stream(objects),
            check=False,
        )
        if proc.returncode != 0:
            raise StackError(f"applying {what} failed: {proc.stderr.strip()[-2000:]}")

    def _wait_rollout(self, namespace: str, kind_name: str, timeout: str = "300s") -> None:
        proc = self.node.kubectl(
            "-n", namespace, "rollout", "status", kind_name, f"--timeout={timeout}", check=False
        )
        if proc.returncode != 0:
            raise StackError(
                f"{kind_name} in {namespace} did not become ready: {proc.stderr.strip()}",
                hint=f"kubectl -n {namespace} describe {kind_name}; kubectl -n {namespace} "
                "get events (KUBECONFIG from `pagestream cluster kubeconfig`)",
            )

    def install_cnpg(self) -> None:
        release = (
            upstream_source(CNPG_BUILD)
            / "releases"
            / f"cnpg-{CNPG_BUILD.version().lstrip('v')}.yaml"
        )
        self._apply(cnpg_manifests(release.read_text(), self.images.cnpg), what="CloudNativePG")
        self._wait_rollout(CNPG_NAMESPACE, "deployment/cnpg-controller-manager")

    def install_prometheus_operator(self) -> None:
        version = PROMETHEUS_OPERATOR_TOOLS.required_version(PROMETHEUS_OPERATOR_MODULE)
        module = go_module_source(
            f"{PROMETHEUS_OPERATOR_MODULE}@{version}", cwd=PROMETHEUS_OPERATOR_TOOLS.module_dir
        )
        bundle = (module / "bundle.yaml").read_text()
        self._apply(
            prometheus_operator_manifests(
                bundle, self.images.prometheus_operator, self.images.config_reloader
            ),
            what="prometheus-operator",
        )
        self._wait_rollout(PROMETHEUS_NAMESPACE, "deployment/prometheus-operator")

    def install_prometheus(self) -> None:
        self._apply(prometheus_manifests(self.images.prometheus), what="Prometheus")
        # The operator creates the StatefulSet a moment after the resource.
        self.node.kubectl(
            "-n",
            PROMETHEUS_NAMESPACE,
            "wait",
            "--for=create",
            "statefulset/prometheus-prometheus",
            "--timeout=120s",
        )
        self._wait_rollout(PROMETHEUS_NAMESPACE, "statefulset/prometheus-prometheus")

    def install_spark_operator(self, job_namespaces: Sequence[str]) -> None:
        chart = upstream_source(SPARK_OPERATOR_BUILD) / "charts" / "spark-operator-chart"
        values = self.node.home / "spark-operator-values.yaml"
        values.write_text(
            json.dumps(spark_operator_values(self.images.spark_operator, job_namespaces))
        )
        for namespace in job_namespaces:
            self.node.kubectl(
                "create",
                "namespace",
                namespace,
                check=False,  # the chart's RBAC lands in it
            )
        proc = Helm(self.node.paths).run(
            "upgrade",
            "--install",
            "spark-operator",
            str(chart),
            "--namespace",
            SPARK_OPERATOR_NAMESPACE,
            "--create-namespace",
            "-f",
            str(values),
            "--wait",
            "--timeout=5m",
            kubeconfig=self.node.kubeconfig,
            check=False,
        )
        if proc.returncode != 0:
            raise StackError(f"helm install of spark-operator failed: {proc.stderr.strip()}")

    def install_kafka(self, namespace: str, users: KafkaUsers) -> None:
        self._apply(kafka_manifests(namespace, self.images.kafka, users), what="Kafka")
        self._wait_rollout(namespace, f"statefulset/{KAFKA_NAME}")

    def install(
        self, job_namespaces: Sequence[str], progress: Callable[[str], None] | None = None
    ) -> None:
        say = progress or (lambda message: None)
        say("CloudNativePG (its release manifest)")
        self.install_cnpg()
        say("prometheus-operator (its bundle.yaml) and a Prometheus")
        self.install_prometheus_operator()
        self.install_prometheus()
        say("spark-operator (its Helm chart)")
        self.install_spark_operator(job_namespaces)


# The app release's values on a node with the platform installed: a CloudNativePG database on
# the locally built PostgreSQL image, sized for a two-core machine.
def database_values(images: PlatformImages, name: str = "pagestream-db") -> list[str]:
    return [
        "postgres.create=true",
        f"postgres.name={name}",
        f"postgres.imageName={images.postgresql}",
        "postgres.storage.size=1Gi",
        "postgres.resources.requests.cpu=100m",
        "postgres.resources.requests.memory=256Mi",
        "postgres.resources.limits.memory=512Mi",
    ]


@dataclass(frozen=True)
class PipelineStack:
    """What `pagestream cluster deploy --platform` leaves running for a pipeline."""

    images: PlatformImages
    release: AppRelease
    database: str
    kafka_users: KafkaUsers

    @property
    def kafka_bootstrap(self) -> str:
        return kafka_bootstrap(self.release.namespace)


def deploy_pipeline_stack(
    node: LocalNode,
    operator_image: str,
    *,
    namespace: str,
    release_name: str,
    users: Sequence[str] = ("pagestream-pipeline", "pagestream-producer"),
    sets: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
    timings: dict[str, float] | None = None,
) -> PipelineStack:
    """Everything a PageAnalyticsPipeline in ``namespace`` needs, on a running node: the
    platform operators, the app release with its CloudNativePG database (Ready), and the
    in-cluster Kafka with a SCRAM user (and its Secret) for each of ``users``. ``timings``
    receives the seconds each phase took."""
    import time

    say = progress or (lambda message: None)
    times = timings if timings is not None else {}

    def phase(name: str, started: float) -> None:
        times[name] = round(time.monotonic() - started, 1)

    t = time.monotonic()
    say("building and loading the platform images")
    images, archives = build_platform_images(node.paths)
    node.import_images(archives)
    phase("platform images built and loaded", t)

    release = AppRelease(node, namespace=namespace, name=release_name)
    t = time.monotonic()
    release.install_upstream_crds()
    release.ensure_namespace()
    Platform(node, images).install([namespace], progress=say)
    phase("platform operators installed", t)

    t = time.monotonic()
    database = "pagestream-db"
    say(f"helm upgrade --install {release_name} with a CloudNativePG database")
    release.install(
        operator_image,
        sets=[
            *database_values(images, database),
            # spark-submit runs in the Spark operator's controller, in its own namespace here.
            f"sparkSubmitAccess.serviceAccount.namespace={SPARK_OPERATOR_NAMESPACE}",
            *sets,
        ],
    )
    # The pagestream operator applies the Cluster (the chart's data plane ConfigMap): first it
    # appears, then CloudNativePG makes it Ready.
    for condition in ("create", "condition=Ready"):
        proc = node.kubectl(
            "-n",
            namespace,
            "wait",
            f"--for={condition}",
            f"clusters.postgresql.cnpg.io/{database}",
            "--timeout=300s",
            timeout=330,
            check=False,
        )
        if proc.returncode != 0:
            break
    if proc.returncode != 0:
        raise StackError(
            f"the CloudNativePG cluster {database} did not become Ready: {proc.stderr.strip()}",
            hint=f"kubectl -n {namespace} get pods; kubectl -n {CNPG_NAMESPACE} logs "
            "deploy/cnpg-controller-manager",
        )
    phase("app release installed, CloudNativePG cluster Ready", t)

    t = time.monotonic()
    say("Kafka (KRaft, SASL/SCRAM) as a StatefulSet")
    kafka_users = KafkaUsers.generate(list(users))
    Platform(node, images).install_kafka(namespace, kafka_users)
    phase("Kafka StatefulSet Ready", t)
    return PipelineStack(images, release, database, kafka_users)
