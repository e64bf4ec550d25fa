"""Pure rendering: a pipeline's spec in, the Kubernetes objects it should own out.

No kopf, no kubernetes client, no I/O (a unit test inspects this module's imports): every
function here is a plain function of its arguments, pinned by golden files in
``tests/unit/operator/golden``. Owner references are not set here; :mod:`.apply` adds them,
because they need the live object's uid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pagestream_common.jobconfig import SECRET_ENV, JobConfig
from pagestream_operator.spec import (
    DesiredState,
    MonitorKind,
    PipelineSpec,
)

# Where the pagestream Spark image keeps the job and its jars (the image is built in the
# chart's issue; these paths are the contract between it and the operator).
JOB_MAIN_FILE = "local:///opt/pagestream/spark-apps/main.py"
JOB_JARS = ("local:///opt/pagestream/jars/*.jar",)
# Where a checkpoint PersistentVolumeClaim is mounted in the driver and executors.
CHECKPOINT_MOUNT = "/opt/pagestream/checkpoints"
CHECKPOINT_VOLUME = "checkpoint"
METRICS_PORT_NAME = "metrics"

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
}


@dataclass(frozen=True)
class RenderInput:
    """Everything rendering needs: the pipeline's identity, its spec, and the checkpoint epoch
    chosen by the reconciler (the generation whose deploy started the current checkpoint)."""

    name: str
    namespace: str
    spec: PipelineSpec
    checkpoint_epoch: int


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
        kafka_security_protocol=auth.security_protocol.value if auth else "PLAINTEXT",
        kafka_sasl_mechanism=auth.mechanism.value if auth else "SCRAM-SHA-512",
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
    if hash_key:
        env.append(_secret_env(SECRET_ENV["pii_hash_key"], hash_key.name, hash_key.key))
    return env


def referenced_secrets(inp: RenderInput) -> list[str]:
    """Names of the Secrets the job reads (the operator itself never reads them)."""
    names = []
    for var in secret_env(inp):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["name"] not in names:
            names.append(ref["name"])
    return names


# --- children --------------------------------------------------------------------------------


def render_spark_application(inp: RenderInput) -> dict[str, Any]:
    spec = inp.spec
    spark = spec.spark
    pod_labels = common_labels(inp.name, "streaming-job")
    driver_annotations = {CHECKPOINT_ANNOTATION: checkpoint_location(inp)}
    if spec.lifecycle.restart_nonce is not None:
        # The Spark operator resubmits on any spec change: a new nonce in the driver's
        # annotations is such a change, and shows on the pod which restart it belongs to.
        driver_annotations[NONCE_ANNOTATION] = str(spec.lifecycle.restart_nonce)

    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    pvc = spec.checkpoint.persistent_volume_claim
    if pvc:
        volumes.append(
            {"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": pvc.claim_name}}
        )
        mounts.append({"name": CHECKPOINT_VOLUME, "mountPath": CHECKPOINT_MOUNT})

    driver: dict[str, Any] = {
        "cores": spark.driver.cores,
        "memory": spark.driver.memory,
        "serviceAccount": spark.service_account,
        "labels": pod_labels,
        "annotations": driver_annotations,
        "env": secret_env(inp),
        "ports": [
            {
                "name": METRICS_PORT_NAME,
                "containerPort": spec.monitoring.metrics_port,
                "protocol": "TCP",
            }
        ],
    }
    executor: dict[str, Any] = {
        "instances": spark.executor.instances,
        "cores": spark.executor.cores,
        "memory": spark.executor.memory,
        "labels": dict(pod_labels),
    }
    if mounts:
        driver["volumeMounts"] = [dict(m) for m in mounts]
        executor["volumeMounts"] = [dict(m) for m in mounts]

    app_spec: dict[str, Any] = {
        "type": "Python",
        "pythonVersion": "3",
        "mode": "cluster",
        "image": spark.image,
        "imagePullPolicy": spark.image_pull_policy.value,
        "sparkVersion": spark.version,
        "mainApplicationFile": JOB_MAIN_FILE,
        "arguments": job_config(inp).to_args(),
        "deps": {"jars": list(JOB_JARS)},
        "sparkConf": {**spark.conf, **OPERATOR_SPARK_CONF},
        "restartPolicy": dict(RESTART_POLICY),
        "suspend": spec.lifecycle.state is DesiredState.SUSPENDED,
        "driver": driver,
        "executor": executor,
    }
    if volumes:
        app_spec["volumes"] = volumes
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
    if mon.monitor is not MonitorKind.POD_MONITOR:
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
    if mon.monitor is not MonitorKind.SERVICE_MONITOR:
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
    if mon.monitor is not MonitorKind.SERVICE_MONITOR:
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


# Every kind a pipeline may own, so children no longer wanted can be found and deleted.
CHILD_KINDS: tuple[tuple[str, str, str], ...] = (
    (SPARK_API, "SparkApplication", "sparkapplications"),
    (STRIMZI_API, "KafkaTopic", "kafkatopics"),
    (MONITORING_API, "PodMonitor", "podmonitors"),
    (MONITORING_API, "ServiceMonitor", "servicemonitors"),
    ("v1", "Service", "services"),
    ("v1", "ConfigMap", "configmaps"),
)
