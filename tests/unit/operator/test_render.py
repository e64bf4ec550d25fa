"""Properties of the rendered children that golden files alone would not make obvious."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from operator_cases import CASES, case, load_case, minimal_spec

from pagestream_common.jobconfig import SECRET_ENV, JobConfig
from pagestream_operator.render import (
    CHECKPOINT_MOUNT,
    JOB_JARS_DIR,
    JOB_MAIN_FILE,
    KAFKA_CA_FILE,
    KAFKA_CA_VOLUME,
    POSTGRES_CA_FILE,
    POSTGRES_CA_VOLUME,
    RenderInput,
    checkpoint_location,
    job_config,
    render_children,
    render_spark_application,
)
from pagestream_operator.spec import (
    KAFKA_TLS_CONTRADICTION_MESSAGE,
    POSTGRES_CA_UNUSED_MESSAGE,
    SpecError,
    parse_spec,
)

SECRET_VARS = set(SECRET_ENV.values()) - {SECRET_ENV["kafka_sasl_username"]}


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_the_job_parses_the_arguments_it_is_given(case: Path) -> None:
    inp = load_case(case)
    app = render_spark_application(inp)
    config = JobConfig.from_args(app["spec"]["arguments"])
    assert config.pipeline_name == inp.name
    assert config.checkpoint_location == checkpoint_location(inp)
    assert config.trigger_mode == "processing-time"
    assert app["spec"]["mainApplicationFile"] == JOB_MAIN_FILE


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_the_arguments_are_the_job_config_and_nothing_else(case: Path) -> None:
    """What lets `pagestream up` take ``job_config`` directly instead of parsing a rendered
    SparkApplication back: the arguments carry exactly that configuration, both ways."""
    inp = load_case(case)
    args = render_spark_application(inp)["spec"]["arguments"]
    assert JobConfig.from_args(args) == job_config(inp)
    assert args == job_config(inp).to_args()


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_secrets_only_come_from_secret_references(case: Path) -> None:
    app = render_spark_application(load_case(case))
    (container,) = app["spec"]["driver"]["template"]["spec"]["containers"]
    env = container["env"]
    for var in env:
        if var["name"] in SECRET_VARS:
            assert set(var) == {"name", "valueFrom"}, var
            assert set(var["valueFrom"]) == {"secretKeyRef"}, var
    assert not any("password" in a.lower() for a in app["spec"]["arguments"])


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_every_child_is_labelled_and_namespaced(case: Path) -> None:
    inp = load_case(case)
    for child in render_children(inp):
        meta = child["metadata"]
        assert meta["namespace"] == inp.namespace
        assert meta["labels"]["pagestream.dev/pipeline"] == inp.name
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "pagestream-operator"
        assert "ownerReferences" not in meta  # apply adds them


def test_suspended_maps_to_spark_suspend() -> None:
    inp = case("suspended-servicemonitor")
    assert render_spark_application(inp)["spec"]["suspend"] is True


def test_a_new_epoch_is_a_new_checkpoint_folder() -> None:
    inp = case("minimal")
    later = RenderInput(inp.name, inp.namespace, inp.spec, checkpoint_epoch=9)
    assert checkpoint_location(inp) != checkpoint_location(later)
    assert checkpoint_location(later).endswith("/analytics/shop/epoch-9")


# What the Spark operator turns into spark-submit configuration (its submission.go), so it
# reaches the pods without its mutating webhook; everything else about a pod is in its template.
SUBMIT_CONF_FIELDS = {
    "driver": {
        "cores",
        "coreRequest",
        "memory",
        "memoryOverhead",
        "serviceAccount",
        "labels",
        "annotations",
        "template",
    },
    "executor": {
        "instances",
        "cores",
        "coreRequest",
        "memory",
        "memoryOverhead",
        "labels",
        "annotations",
        "template",
    },
}
RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 185,
    "runAsGroup": 185,
    "fsGroup": 185,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_pods_need_no_webhook_and_meet_the_restricted_pod_security_standard(case: Path) -> None:
    app = render_spark_application(load_case(case))["spec"]
    assert "volumes" not in app, "volumes belong in the pod templates"
    for role, container_name in (
        ("driver", "spark-kubernetes-driver"),
        ("executor", "spark-kubernetes-executor"),
    ):
        assert set(app[role]) <= SUBMIT_CONF_FIELDS[role], set(app[role]) - SUBMIT_CONF_FIELDS[role]
        pod = app[role]["template"]["spec"]
        assert pod["securityContext"] == RESTRICTED_POD
        (container,) = pod["containers"]
        assert container["name"] == container_name
        assert container["securityContext"] == RESTRICTED_CONTAINER
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert set(mounts.values()) == set(volumes)
        # The writable places of a read-only root filesystem.
        for path in ("/tmp", "/opt/spark/work-dir"):
            assert volumes[mounts[path]] == {"name": mounts[path], "emptyDir": {}}
    executor = app["executor"]["template"]["spec"]["containers"][0]
    assert "env" not in executor, "the job's secrets go to the driver only"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_the_jars_are_on_the_classpath_not_submitted(case: Path) -> None:
    app = render_spark_application(load_case(case))["spec"]
    assert "deps" not in app
    assert app["sparkConf"]["spark.driver.extraClassPath"] == f"{JOB_JARS_DIR}/*"
    assert app["sparkConf"]["spark.executor.extraClassPath"] == f"{JOB_JARS_DIR}/*"
    assert "spark.jars" not in app["sparkConf"]


def test_a_pvc_checkpoint_is_mounted_in_the_driver_and_the_executors() -> None:
    inp = case("full")
    app = render_spark_application(inp)["spec"]
    assert checkpoint_location(inp).startswith(f"file://{CHECKPOINT_MOUNT}/")
    for role in ("driver", "executor"):
        pod = app[role]["template"]["spec"]
        assert {"name": "checkpoint", "mountPath": CHECKPOINT_MOUNT} in pod["containers"][0][
            "volumeMounts"
        ]
        assert {
            "name": "checkpoint",
            "persistentVolumeClaim": {"claimName": "storefront-checkpoints"},
        } in pod["volumes"]


def test_resources_and_pod_settings_reach_both_kinds_of_pod() -> None:
    inp = case("full")
    pods = inp.spec.spark.pods
    app = render_spark_application(inp)["spec"]
    assert (app["driver"]["coreRequest"], app["driver"]["memoryOverhead"]) == ("500m", "512m")
    assert (app["executor"]["coreRequest"], app["executor"]["memoryOverhead"]) == ("1.5", "1g")
    # The application-wide node selector is the one the Spark operator passes to spark-submit.
    assert app["nodeSelector"] == {"pool": "streaming"}
    for role in ("driver", "executor"):
        pod = app[role]["template"]["spec"]
        assert pod["priorityClassName"] == "streaming"
        assert [t["key"] for t in pod["tolerations"]] == [t.key for t in pods.tolerations]
        assert pod["tolerations"][1]["tolerationSeconds"] == 120
        assert "nodeAffinity" in pod["affinity"]
        labels = app[role]["labels"]
        assert labels["team"] == "storefront"
        assert labels["pagestream.dev/pipeline"] == inp.name
        assert app[role]["annotations"]["example.com/owner"] == "storefront-team"


def test_without_pod_settings_the_templates_hold_only_what_the_operator_needs() -> None:
    app = render_spark_application(case("minimal"))["spec"]
    assert "nodeSelector" not in app
    for role in ("driver", "executor"):
        pod = app[role]["template"]["spec"]
        assert set(pod) == {"securityContext", "containers", "volumes"}
        assert "coreRequest" not in app[role] and "memoryOverhead" not in app[role]
    assert "annotations" not in app["executor"]


# --- TLS: what each combination of the tls sections renders ----------------------------------


def _tls_input(kafka: dict[str, Any], postgres: dict[str, Any]) -> RenderInput:
    return RenderInput(
        name="shop",
        namespace="ns",
        spec=parse_spec(minimal_spec(kafka=kafka, postgres=postgres)),
        checkpoint_epoch=1,
    )


STRIMZI = {"strimziCluster": {"name": "events", "port": 9093}, "topic": {"name": "views"}}
BOOTSTRAP = {"bootstrapServers": "kafka.example:9093", "topic": {"name": "views"}}
SCRAM = {"secretRef": {"name": "job-user"}}
CNPG = {"cnpgCluster": {"name": "warehouse"}}
HOST = {"secretRef": {"name": "db-user"}, "host": "db.example"}


@pytest.mark.parametrize(
    ("kafka", "protocol", "ca_secret"),
    [
        (STRIMZI, "PLAINTEXT", None),
        ({**STRIMZI, "tls": {}}, "SSL", ("events-cluster-ca-cert", "ca.crt")),
        (
            {**STRIMZI, "tls": {}, "authentication": SCRAM},
            "SASL_SSL",
            ("events-cluster-ca-cert", "ca.crt"),
        ),
        ({**STRIMZI, "authentication": SCRAM}, "SASL_PLAINTEXT", None),
        ({**BOOTSTRAP, "tls": {}}, "SSL", None),
        (
            {**BOOTSTRAP, "tls": {"caSecretRef": {"name": "corp-ca", "key": "root.pem"}}},
            "SSL",
            ("corp-ca", "root.pem"),
        ),
        # Before spec.kafka.tls, SASL_SSL was asked for here: TLS with the image's trust store.
        (
            {**BOOTSTRAP, "authentication": {**SCRAM, "securityProtocol": "SASL_SSL"}},
            "SASL_SSL",
            None,
        ),
    ],
    ids=[
        "plain",
        "strimzi-tls",
        "strimzi-scram-tls",
        "strimzi-scram",
        "bootstrap-tls-system-ca",
        "bootstrap-tls-own-ca",
        "older-sasl-ssl",
    ],
)
def test_kafka_tls_renders_the_protocol_and_mounts_the_ca_in_the_driver_only(
    kafka: dict[str, Any], protocol: str, ca_secret: tuple[str, str] | None
) -> None:
    inp = _tls_input(kafka, CNPG)
    config = job_config(inp)
    assert config.kafka_security_protocol == protocol
    app = render_spark_application(inp)["spec"]
    driver = app["driver"]["template"]["spec"]
    volumes = {v["name"]: v for v in driver["volumes"]}
    if ca_secret is None:
        assert config.kafka_tls_ca_file == "" and KAFKA_CA_VOLUME not in volumes
    else:
        assert config.kafka_tls_ca_file == KAFKA_CA_FILE
        name, key = ca_secret
        assert volumes[KAFKA_CA_VOLUME]["secret"] == {
            "secretName": name,
            "items": [{"key": key, "path": "ca.crt"}],
        }
        mounts = driver["containers"][0]["volumeMounts"]
        assert {
            "name": KAFKA_CA_VOLUME,
            "mountPath": str(Path(KAFKA_CA_FILE).parent),
            "readOnly": True,
        } in mounts
    executor_volumes = {v["name"] for v in app["executor"]["template"]["spec"]["volumes"]}
    assert not executor_volumes & {KAFKA_CA_VOLUME, POSTGRES_CA_VOLUME}


@pytest.mark.parametrize(
    ("postgres", "mode", "root_cert", "ca_secret"),
    [
        # CloudNativePG always serves TLS, with a certificate for <cluster>-rw.<ns>.svc.
        (CNPG, "verify-full", POSTGRES_CA_FILE, ("warehouse-ca", "ca.crt")),
        ({**CNPG, "tls": {"mode": "require"}}, "require", "", None),
        ({**CNPG, "tls": {"mode": "disable"}}, "disable", "", None),
        (HOST, "prefer", "", None),
        ({**HOST, "tls": {"mode": "verify-full"}}, "verify-full", "system", None),
        (
            {**HOST, "tls": {"mode": "verify-ca", "caSecretRef": {"name": "db-ca"}}},
            "verify-ca",
            POSTGRES_CA_FILE,
            ("db-ca", "ca.crt"),
        ),
    ],
    ids=["cnpg", "cnpg-require", "cnpg-disable", "host", "host-public-ca", "host-own-ca"],
)
def test_postgres_tls_renders_the_sslmode_and_mounts_only_the_ca_certificate(
    postgres: dict[str, Any], mode: str, root_cert: str, ca_secret: tuple[str, str] | None
) -> None:
    inp = _tls_input(STRIMZI, postgres)
    config = job_config(inp)
    assert (config.postgres_sslmode, config.postgres_ssl_root_cert) == (mode, root_cert)
    driver = render_spark_application(inp)["spec"]["driver"]["template"]["spec"]
    volumes = {v["name"]: v for v in driver["volumes"]}
    if ca_secret is None:
        assert POSTGRES_CA_VOLUME not in volumes
    else:
        name, key = ca_secret
        # Only ca.crt: CloudNativePG's <cluster>-ca Secret also holds the CA's private key.
        assert volumes[POSTGRES_CA_VOLUME]["secret"] == {
            "secretName": name,
            "items": [{"key": key, "path": "ca.crt"}],
        }


@pytest.mark.parametrize(
    ("kafka", "postgres", "message"),
    [
        (
            {
                **STRIMZI,
                "tls": {},
                "authentication": {**SCRAM, "securityProtocol": "SASL_PLAINTEXT"},
            },
            CNPG,
            KAFKA_TLS_CONTRADICTION_MESSAGE,
        ),
        (STRIMZI, {**HOST, "tls": {"caSecretRef": {"name": "db-ca"}}}, POSTGRES_CA_UNUSED_MESSAGE),
        (
            STRIMZI,
            {**CNPG, "tls": {"mode": "require", "caSecretRef": {"name": "db-ca"}}},
            POSTGRES_CA_UNUSED_MESSAGE,
        ),
    ],
    ids=["kafka-tls-with-sasl-plaintext", "host-ca-without-verifying", "cnpg-ca-with-require"],
)
def test_tls_settings_that_contradict_each_other_are_refused_naming_the_field(
    kafka: dict[str, Any], postgres: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(minimal_spec(kafka=kafka, postgres=postgres))
    assert message in str(info.value)


def test_monitor_auto_is_a_pod_monitor_where_the_cluster_serves_them() -> None:
    """The default monitor: a PodMonitor where prometheus-operator's CRD is installed, none
    elsewhere (a pipeline must not fail to apply for want of an optional CRD). An explicit
    choice is kept whatever the cluster serves."""
    import dataclasses

    from pagestream_operator.render import monitor_kind
    from pagestream_operator.spec import MonitorKind

    inp = case("minimal")
    assert inp.spec.monitoring.monitor is MonitorKind.AUTO  # the default
    served = dataclasses.replace(inp, pod_monitors_served=True)
    assert monitor_kind(inp) is MonitorKind.NONE
    assert [c["kind"] for c in render_children(inp)] == ["SparkApplication"]
    assert monitor_kind(served) is MonitorKind.POD_MONITOR
    (podmon,) = [c for c in render_children(served) if c["kind"] == "PodMonitor"]
    assert podmon["spec"]["selector"]["matchLabels"] == {
        "pagestream.dev/pipeline": inp.name,
        "spark-role": "driver",
    }
    for explicit in (MonitorKind.NONE, MonitorKind.SERVICE_MONITOR, MonitorKind.POD_MONITOR):
        spec = inp.spec.model_copy(
            update={"monitoring": inp.spec.monitoring.model_copy(update={"monitor": explicit})}
        )
        for on_cluster in (False, True):
            given = dataclasses.replace(inp, spec=spec, pod_monitors_served=on_cluster)
            assert monitor_kind(given) is explicit


@pytest.mark.parametrize(
    ("retention", "days"),
    [
        (None, ("90", "730")),
        ({"events": 30}, ("30", "730")),
        ({"events": 14, "rollups": 365}, ("14", "365")),
        ({"events": 30, "rollups": "Forever"}, ("30", "0")),
        ({"events": "Forever", "rollups": "Forever"}, ("0", "0")),
    ],
    ids=["defaults", "events", "both", "rollups-forever", "forever"],
)
def test_retention_renders_the_jobs_day_counts_with_0_for_forever(
    retention: dict[str, Any] | None, days: tuple[str, str]
) -> None:
    raw = minimal_spec() if retention is None else minimal_spec(retention=retention)
    inp = RenderInput("views", "ns", parse_spec(raw), checkpoint_epoch=1)
    config = job_config(inp)
    assert (str(config.retention_days), str(config.rollup_retention_days)) == days
    args = render_spark_application(inp)["spec"]["arguments"]
    assert args[args.index("--retention-days") + 1] == days[0]
    assert args[args.index("--rollup-retention-days") + 1] == days[1]
    assert args.count("--retention-days") == args.count("--rollup-retention-days") == 1


def test_the_full_case_keeps_events_30_days_and_rollups_forever() -> None:
    config = job_config(case("full"))
    assert (config.retention_days, config.rollup_retention_days) == (30, 0)
