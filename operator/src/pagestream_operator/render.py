"""Pure rendering: a pipeline's spec in, the Kubernetes objects it should own out.

No kopf, no kubernetes client, no I/O (a unit test inspects this module's imports): every
function here is a plain function of its arguments, pinned by golden files in
``tests/unit/operator/golden``. Owner references are not set here; :mod:`.apply` adds them,
because they need the live object's uid.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from pagestream_common.jobconfig import SECRET_ENV, JobConfig
from pagestream_operator.spec import (
    DesiredState,
    MonitorKind,
    PipelineSpec,
)

# Where the pagestream Spark image (images/spark/Dockerfile) keeps the job and its jars; these
# paths are the contract between it and the operator.
JOB_MAIN_FILE = "local:///opt/pagestream/spark-apps/main.py"
JOB_JARS_DIR = "/opt/pagestream/jars"
# The jars go on the driver's and executors' JVM classpath as a classpath wildcard (the JVM
# itself expands dir/* to every jar in dir), not through spark-submit --jars: nothing is
# copied, uploaded or fetched when the job starts.
JOB_CLASSPATH = f"{JOB_JARS_DIR}/*"
# Where a checkpoint PersistentVolumeClaim is mounted in the driver and executors.
CHECKPOINT_MOUNT = "/opt/pagestream/checkpoints"
CHECKPOINT_VOLUME = "checkpoint"
METRICS_PORT_NAME = "metrics"
# Where the driver reads the CA certificates of the brokers and of the database, each the one
# key of its Secret that the job needs (CloudNativePG's <cluster>-ca also holds the CA's
# private key, which must not reach the pod). Only the driver: it connects to PostgreSQL, and
# it hands the Kafka CA to the executors in the source's options.
TLS_MOUNT = "/opt/pagestream/tls"
KAFKA_CA_VOLUME = "kafka-ca"
POSTGRES_CA_VOLUME = "postgres-ca"
KAFKA_CA_FILE = f"{TLS_MOUNT}/{KAFKA_CA_VOLUME}/ca.crt"
POSTGRES_CA_FILE = f"{TLS_MOUNT}/{POSTGRES_CA_VOLUME}/ca.crt"

# The pod templates (spec.driver.template, spec.executor.template) carry everything about the
# pods that the Spark operator cannot turn into spark-submit configuration, so the pods are
# right without its mutating webhook. Spark starts each pod from its template and adds its
# own settings; it keeps the template's pod spec and, from the container named below (Spark's
# own container names, which the Spark operator also passes as
# spark.kubernetes.{driver,executor}.podTemplateContainerName), its env, ports, volume mounts
# and securityContext.
DRIVER_CONTAINER = "spark-kubernetes-driver"
EXECUTOR_CONTAINER = "spark-kubernetes-executor"
# The Pod Security Standard "restricted", always: uid/gid 185 is the spark user of the
# pagestream Spark image.
SPARK_UID = 185
POD_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": SPARK_UID,
    "runAsGroup": SPARK_UID,
    "fsGroup": SPARK_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}
# With a read-only root filesystem, the writable places: /tmp (the JVM, Python, the image's
# entrypoint) and Spark's working directory, where executors fetch the application's files.
# Spark adds emptyDirs for its own local dirs (spark-local-dir-*) itself.
SCRATCH_VOLUMES: tuple[tuple[str, str], ...] = (
    ("tmp", "/tmp"),
    ("work-dir", "/opt/spark/work-dir"),
)

SPARK_API = "sparkoperator.k8s.io/v1beta2"
STRIMZI_API = "kafka.strimzi.io/v1"
MONITORING_API = "monitoring.coreos.com/v1"

PIPELINE_LABEL = "pagestream.dev/pipeline"
NONCE_ANNOTATION = "pagestream.dev/restart-nonce"
CHECKPOINT_ANNOTATION = "pagestream.dev/checkpoint-location"
MANAGED_BY = "pagestream-operator"

# A streaming job should run forever: restart it whenever it stops, after a pause.
RESTART_POLICY = {
    "type": "Always",
    "onFailureRetryInterval": 10,
    "onSubmissionFailureRetryInterval": 20,
}
# Spark settings the operator owns; spec.spark.conf cannot override them.
OPERATOR_SPARK_CONF = {
    "spark.sql.streaming.metricsEnabled": "true",
    "spark.metrics.namespace": "pagestream",
    "spark.ui.prometheus.enabled": "true",
    "spark.driver.extraClassPath": JOB_CLASSPATH,
    "spark.executor.extraClassPath": JOB_CLASSPATH,
}


@dataclass(frozen=True)
class RenderInput:
    """Everything rendering needs: the pipeline's identity, its spec, and the checkpoint epoch
    chosen by the reconciler (the generation whose deploy started the current checkpoint)."""

    name: str
    namespace: str
    spec: PipelineSpec
    checkpoint_epoch: int
    # Whether the cluster serves prometheus-operator's PodMonitors: what monitor Auto becomes.
    pod_monitors_served: bool = False


def monitor_kind(inp: RenderInput) -> MonitorKind:
    """The monitor the pipeline gets: ``Auto`` is a PodMonitor where the cluster serves them
    (prometheus-operator's CRD is installed), none elsewhere."""
    monitor = inp.spec.monitoring.monitor
    if monitor is MonitorKind.AUTO:
        return MonitorKind.POD_MONITOR if inp.pod_monitors_served else MonitorKind.NONE
    return monitor


def common_labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "pagestream",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "pagestream",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        PIPELINE_LABEL: name,
    }


def _metadata(inp: RenderInput, name: str, component: str, **extra_labels: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": inp.namespace,
        "labels": {**common_labels(inp.name, component), **extra_labels},
    }


# --- the job's configuration -----------------------------------------------------------------


def checkpoint_location(inp: RenderInput) -> str:
    """A folder per pipeline and epoch: a stateless upgrade moves to a new epoch, so the new
    job starts without the old state, and the old checkpoint stays for inspection."""
    cp = inp.spec.checkpoint
    suffix = f"{inp.namespace}/{inp.name}/epoch-{inp.checkpoint_epoch}"
    if cp.uri:
        return f"{cp.uri.rstrip('/')}/{suffix}"
    return f"file://{CHECKPOINT_MOUNT}/{suffix}"


def kafka_bootstrap_servers(inp: RenderInput) -> str:
    kafka = inp.spec.kafka
    if kafka.strimzi_cluster:
        c = kafka.strimzi_cluster
        return f"{c.name}-kafka-bootstrap.{inp.namespace}.svc:{c.port}"
    assert kafka.bootstrap_servers  # the CRD requires one of the two
    return kafka.bootstrap_servers


def postgres_host(inp: RenderInput) -> str:
    pg = inp.spec.postgres
    if pg.host:
        return pg.host
    assert pg.cnpg_cluster  # the CRD requires a host without one
    return f"{pg.cnpg_cluster.name}-rw.{inp.namespace}.svc"


def postgres_ssl_root_cert(inp: RenderInput) -> str:
    """The CA file for a verifying sslmode: the mounted Secret's, else libpq's ``system`` (the
    image's trust store, for a database with a public certificate)."""
    pg = inp.spec.postgres
    if not pg.ssl_mode().verifies:
        return ""
    return POSTGRES_CA_FILE if pg.ca_secret() is not None else "system"


def job_config(inp: RenderInput) -> JobConfig:
    spec = inp.spec
    auth = spec.kafka.authentication
    return JobConfig(
        pipeline_name=inp.name,
        kafka_bootstrap_servers=kafka_bootstrap_servers(inp),
        kafka_topic=spec.kafka.topic.name,
        postgres_host=postgres_host(inp),
        checkpoint_location=checkpoint_location(inp),
        postgres_port=spec.postgres.port,
        postgres_database=spec.postgres.database,
        postgres_schema=spec.postgres.schema_,
        kafka_starting_offsets=spec.kafka.starting_offsets.value,
        kafka_security_protocol=spec.kafka.security_protocol(),
        kafka_sasl_mechanism=auth.mechanism.value if auth else "SCRAM-SHA-512",
        kafka_tls_ca_file=KAFKA_CA_FILE if spec.kafka.ca_secret() is not None else "",
        postgres_sslmode=spec.postgres.ssl_mode().value,
        postgres_ssl_root_cert=postgres_ssl_root_cert(inp),
        postgres_reader_role=spec.postgres.reader_role or "",
        max_offsets_per_trigger=spec.spark.max_offsets_per_trigger,
        trigger_interval=spec.spark.trigger_interval,
        # A pipeline is a stream that runs forever, whatever the job's default becomes.
        trigger_mode="processing-time",
        watermark_delay=spec.processing.watermark_delay,
        bot_filtering=spec.processing.bot_filtering,
        anonymize_ip=spec.processing.pii.anonymize_ip,
        hash_email=spec.processing.pii.hash_email,
        metrics_port=spec.monitoring.metrics_port,
        report_timezone=spec.processing.report_timezone,
        retention_days=spec.retention.retention_days(),
        rollup_retention_days=spec.retention.rollup_retention_days(),
    )


def _secret_env(var: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def secret_env(inp: RenderInput) -> list[dict[str, Any]]:
    """The job's secrets as environment variables read from Secrets: values never appear in
    the SparkApplication. The SASL user name is not a secret (Strimzi names the KafkaUser's
    Secret after the user), so without a usernameKey it is a plain value."""
    spec = inp.spec
    env: list[dict[str, Any]] = []
    auth = spec.kafka.authentication
    if auth:
        ref = auth.secret_ref
        if ref.username_key:
            env.append(_secret_env(SECRET_ENV["kafka_sasl_username"], ref.name, ref.username_key))
        else:
            env.append(
                {"name": SECRET_ENV["kafka_sasl_username"], "value": auth.username or ref.name}
            )
        env.append(_secret_env(SECRET_ENV["kafka_sasl_password"], ref.name, ref.password_key))
    pg = spec.postgres
    if pg.cnpg_cluster:
        app_secret = f"{pg.cnpg_cluster.name}-app"
        env.append(_secret_env(SECRET_ENV["postgres_user"], app_secret, "username"))
        env.append(_secret_env(SECRET_ENV["postgres_password"], app_secret, "password"))
    else:
        assert pg.secret_ref
        env.append(
            _secret_env(SECRET_ENV["postgres_user"], pg.secret_ref.name, pg.secret_ref.username_key)
        )
        env.append(
            _secret_env(
                SECRET_ENV["postgres_password"], pg.secret_ref.name, pg.secret_ref.password_key
            )
        )
    hash_key = spec.processing.pii.hash_key_secret_ref
    assert hash_key, "parse_spec requires spec.processing.pii.hashKeySecretRef"
    env.append(_secret_env(SECRET_ENV["pii_hash_key"], hash_key.name, hash_key.key))
    return env


def ca_volumes(inp: RenderInput) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(volume, mount) for each CA the driver reads (see TLS_MOUNT)."""
    out = []
    for volume, ref in (
        (KAFKA_CA_VOLUME, inp.spec.kafka.ca_secret()),
        (POSTGRES_CA_VOLUME, inp.spec.postgres.ca_secret()),
    ):
        if ref is None:
            continue
        out.append(
            (
                {
                    "name": volume,
                    "secret": {
                        "secretName": ref.name,
                        "items": [{"key": ref.key, "path": "ca.crt"}],
                    },
                },
                {"name": volume, "mountPath": f"{TLS_MOUNT}/{volume}", "readOnly": True},
            )
        )
    return out


# --- children --------------------------------------------------------------------------------


def _pod_template(
    inp: RenderInput,
    container_name: str,
    env: list[dict[str, Any]] | None = None,
    ports: list[dict[str, Any]] | None = None,
    secret_volumes: list[tuple[dict[str, Any], dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """A pod template: restricted security, scratch volumes, the checkpoint volume, the given
    Secret volumes and the pod-level placement from spec.spark.pods (each call returns fresh
    objects)."""
    spec = inp.spec
    pods = spec.spark.pods
    volumes: list[dict[str, Any]] = [{"name": n, "emptyDir": {}} for n, _ in SCRATCH_VOLUMES]
    mounts: list[dict[str, Any]] = [{"name": n, "mountPath": p} for n, p in SCRATCH_VOLUMES]
    pvc = spec.checkpoint.persistent_volume_claim
    if pvc:
        volumes.append(
            {"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": pvc.claim_name}}
        )
        mounts.append({"name": CHECKPOINT_VOLUME, "mountPath": CHECKPOINT_MOUNT})
    for volume, mount in secret_volumes or ():
        volumes.append(volume)
        mounts.append(mount)

    container: dict[str, Any] = {
        "name": container_name,
        "securityContext": copy.deepcopy(CONTAINER_SECURITY_CONTEXT),
    }
    if env:
        container["env"] = env
    if ports:
        container["ports"] = ports
    container["volumeMounts"] = mounts

    pod_spec: dict[str, Any] = {"securityContext": copy.deepcopy(POD_SECURITY_CONTEXT)}
    if pods.priority_class_name:
        pod_spec["priorityClassName"] = pods.priority_class_name
    if pods.tolerations:
        pod_spec["tolerations"] = [
            t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in pods.tolerations
        ]
    affinity = pods.affinity.model_dump(by_alias=True, exclude_none=True) if pods.affinity else {}
    if affinity:
        pod_spec["affinity"] = copy.deepcopy(affinity)
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = volumes
    return {"spec": pod_spec}


def _resources(
    cores: int, core_request: str | None, memory: str, memory_overhead: str | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"cores": cores}
    if core_request is not None:
        out["coreRequest"] = core_request
    out["memory"] = memory
    if memory_overhead is not None:
        out["memoryOverhead"] = memory_overhead
    return out


def render_spark_application(inp: RenderInput) -> dict[str, Any]:
    """The SparkApplication. Its driver and executor fields hold only what the Spark operator
    turns into spark-submit configuration (resources, service account, labels, annotations);
    everything else about the pods is in their templates (see DRIVER_CONTAINER)."""
    spec = inp.spec
    spark = spec.spark
    pods = spark.pods
    # The operator's labels last: spec.spark.pods.labels may not use its keys (PipelineSpec).
    pod_labels = {**pods.labels, **common_labels(inp.name, "streaming-job")}
    driver_annotations = {**pods.annotations, CHECKPOINT_ANNOTATION: checkpoint_location(inp)}
    if spec.lifecycle.restart_nonce is not None:
        # The Spark operator resubmits on any spec change: a new nonce in the driver's
        # annotations is such a change, and shows on the pod which restart it belongs to.
        driver_annotations[NONCE_ANNOTATION] = str(spec.lifecycle.restart_nonce)

    driver: dict[str, Any] = {
        **_resources(
            spark.driver.cores,
            spark.driver.core_request,
            spark.driver.memory,
            spark.driver.memory_overhead,
        ),
        "serviceAccount": spark.service_account,
        "labels": pod_labels,
        "annotations": driver_annotations,
        # The job's secrets go to the driver only: the sink runs there, and the job hands
        # executors what they need in its Spark options.
        "template": _pod_template(
            inp,
            DRIVER_CONTAINER,
            env=secret_env(inp),
            secret_volumes=ca_volumes(inp),
            ports=[
                {
                    "name": METRICS_PORT_NAME,
                    "containerPort": spec.monitoring.metrics_port,
                    "protocol": "TCP",
                }
            ],
        ),
    }
    executor: dict[str, Any] = {
        "instances": spark.executor.instances,
        **_resources(
            spark.executor.cores,
            spark.executor.core_request,
            spark.executor.memory,
            spark.executor.memory_overhead,
        ),
        "labels": dict(pod_labels),
    }
    if pods.annotations:
        executor["annotations"] = dict(pods.annotations)
    executor["template"] = _pod_template(inp, EXECUTOR_CONTAINER)

    app_spec: dict[str, Any] = {
        "type": "Python",
        "pythonVersion": "3",
        "mode": "cluster",
        "image": spark.image,
        "imagePullPolicy": spark.image_pull_policy.value,
        "sparkVersion": spark.version,
        "mainApplicationFile": JOB_MAIN_FILE,
        "arguments": job_config(inp).to_args(),
        "sparkConf": {**spark.conf, **OPERATOR_SPARK_CONF},
        "restartPolicy": dict(RESTART_POLICY),
        "suspend": spec.lifecycle.state is DesiredState.SUSPENDED,
    }
    if pods.node_selector:
        # The application-wide node selector is the one the Spark operator turns into
        # spark.kubernetes.node.selector.* (the driver's and executor's own need the webhook).
        app_spec["nodeSelector"] = dict(pods.node_selector)
    app_spec["driver"] = driver
    app_spec["executor"] = executor
    return {
        "apiVersion": SPARK_API,
        "kind": "SparkApplication",
        "metadata": _metadata(inp, inp.name, "streaming-job"),
        "spec": app_spec,
    }


def render_kafka_topic(inp: RenderInput) -> dict[str, Any] | None:
    kafka = inp.spec.kafka
    if not kafka.topic.manage:
        return None
    assert kafka.strimzi_cluster  # the CRD requires it for a managed topic
    topic = kafka.topic
    return {
        "apiVersion": STRIMZI_API,
        "kind": "KafkaTopic",
        "metadata": _metadata(
            inp, inp.name, "topic", **{"strimzi.io/cluster": kafka.strimzi_cluster.name}
        ),
        "spec": {
            "topicName": topic.name,
            "partitions": topic.partitions,
            "replicas": topic.replicas,
            "config": {"retention.ms": topic.retention_hours * 3_600_000},
        },
    }


def _driver_selector(inp: RenderInput) -> dict[str, str]:
    # spark-role is set by Spark itself on the pods it creates.
    return {PIPELINE_LABEL: inp.name, "spark-role": "driver"}


def render_pod_monitor(inp: RenderInput) -> dict[str, Any] | None:
    mon = inp.spec.monitoring
    if monitor_kind(inp) is not MonitorKind.POD_MONITOR:
        return None
    return {
        "apiVersion": MONITORING_API,
        "kind": "PodMonitor",
        "metadata": _metadata(inp, inp.name, "monitoring", **mon.monitor_labels),
        "spec": {
            "selector": {"matchLabels": _driver_selector(inp)},
            "podMetricsEndpoints": [{"port": METRICS_PORT_NAME, "path": "/metrics"}],
        },
    }


def metrics_service_name(inp: RenderInput) -> str:
    return f"{inp.name}-metrics"


def render_metrics_service(inp: RenderInput) -> dict[str, Any] | None:
    """A headless Service in front of the driver, for a ServiceMonitor to discover it by."""
    mon = inp.spec.monitoring
    if monitor_kind(inp) is not MonitorKind.SERVICE_MONITOR:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(inp, metrics_service_name(inp), "metrics"),
        "spec": {
            "clusterIP": "None",
            "selector": _driver_selector(inp),
            "ports": [
                {
                    "name": METRICS_PORT_NAME,
                    "port": mon.metrics_port,
                    "targetPort": METRICS_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def render_service_monitor(inp: RenderInput) -> dict[str, Any] | None:
    mon = inp.spec.monitoring
    if monitor_kind(inp) is not MonitorKind.SERVICE_MONITOR:
        return None
    return {
        "apiVersion": MONITORING_API,
        "kind": "ServiceMonitor",
        "metadata": _metadata(inp, inp.name, "monitoring", **mon.monitor_labels),
        "spec": {
            "selector": {
                "matchLabels": {
                    PIPELINE_LABEL: inp.name,
                    "app.kubernetes.io/component": "metrics",
                }
            },
            "endpoints": [{"port": METRICS_PORT_NAME, "path": "/metrics"}],
        },
    }


def _health_dashboard(inp: RenderInput) -> dict[str, Any]:
    """A deliberately small placeholder: one panel showing whether Prometheus can scrape the
    driver. The real dashboards (input vs processed rate, lag, dead letters...) come with the
    chart and need the job's metric names, which the streaming job defines."""
    selector = f'namespace="{inp.namespace}", pod="{inp.name}-driver"'
    return {
        "uid": f"pagestream-{inp.namespace}-{inp.name}"[:40],
        "title": f"pagestream {inp.namespace}/{inp.name}: driver scrape",
        "description": "Placeholder: is the job's driver scraped? Full dashboards ship with the chart.",
        "tags": ["pagestream"],
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "panels": [
            {
                "id": 1,
                "type": "timeseries",
                "title": "Driver metrics endpoint up",
                "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
                "datasource": {"type": "prometheus", "uid": "prometheus"},
                "targets": [{"refId": "A", "expr": f"up{{{selector}}}"}],
            }
        ],
    }


def render_dashboard_configmaps(inp: RenderInput) -> list[dict[str, Any]]:
    if not inp.spec.monitoring.dashboards:
        return []
    dashboard = _health_dashboard(inp)
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata(
                inp, f"{inp.name}-dashboard-health", "dashboard", grafana_dashboard="1"
            ),
            "data": {
                f"pagestream-{inp.name}-health.json": json.dumps(
                    dashboard, indent=2, sort_keys=True
                )
            },
        }
    ]


def render_children(inp: RenderInput) -> list[dict[str, Any]]:
    """Every object the pipeline should own, in apply order."""
    children: list[dict[str, Any] | None] = [
        render_kafka_topic(inp),
        render_metrics_service(inp),
        render_pod_monitor(inp),
        render_service_monitor(inp),
        *render_dashboard_configmaps(inp),
        render_spark_application(inp),
    ]
    return [c for c in children if c is not None]


# Every kind a pipeline may own, with its plural: apply.py builds its API paths from these (no
# discovery), for applying a child and for deleting one no longer wanted.
CHILD_KINDS: tuple[tuple[str, str, str], ...] = (
    (SPARK_API, "SparkApplication", "sparkapplications"),
    (STRIMZI_API, "KafkaTopic", "kafkatopics"),
    (MONITORING_API, "PodMonitor", "podmonitors"),
    (MONITORING_API, "ServiceMonitor", "servicemonitors"),
    ("v1", "Service", "services"),
    ("v1", "ConfigMap", "configmaps"),
)
