"""The operator, as a real process against the real kube-apiserver with the real upstream CRDs,
reconciles PageAnalyticsPipelines into their children and reports their state. The tests play
the Kubeflow Spark operator by writing the SparkApplication's status."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from operator_harness import (
    PODMON,
    RESYNC_SECONDS,
    SERVICEMON,
    SPARK,
    TOPIC,
    Cluster,
    OperatorProcess,
    conditions,
    eventually,
    kubectl,
    metric_value,
    pipeline_body,
)
from prometheus_client.parser import text_string_to_metric_families

from pagestream.stack.kube import KubeControlPlane
from pagestream_operator.apply import KubeApi
from pagestream_operator.render import RenderInput, render_spark_application
from pagestream_operator.spec import parse_spec

pytestmark = pytest.mark.kube

FULL_EXTRAS = {
    "kafka": {
        "strimziCluster": {"name": "events"},
        "topic": {"name": "page-views", "manage": True, "partitions": 3, "replicas": 1},
        "authentication": {"secretRef": {"name": "pagestream-job"}},
    },
    "monitoring": {"monitor": "PodMonitor", "dashboards": True},
}


def arg(app: dict, flag: str) -> str:
    args = app["spec"]["arguments"]
    return str(args[args.index(flag) + 1])


def test_create_renders_owned_children_and_reports_status(
    operator: OperatorProcess, cluster: Cluster, kube: KubeControlPlane
) -> None:
    created = cluster.create(pipeline_body("shop", **FULL_EXTRAS))
    uid = created["metadata"]["uid"]

    app = cluster.wait_app("shop")
    topic = eventually(lambda: cluster.get(TOPIC, "shop"), what="KafkaTopic")
    podmon = eventually(lambda: cluster.get(PODMON, "shop"), what="PodMonitor")
    dashboard = eventually(
        lambda: cluster.core.read_namespaced_config_map("shop-dashboard-health", cluster.namespace),
        what="dashboard ConfigMap",
    )
    for child in (app, topic, podmon):
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "PageAnalyticsPipeline",
            uid,
            True,
        )
    assert dashboard.metadata.owner_references[0].uid == uid
    assert dashboard.metadata.labels["grafana_dashboard"] == "1"

    # The SparkApplication carries exactly the rendered spec (what the API server defaulted
    # into the pipeline, through the pure renderer, epoch = generation 1).
    pipeline = cluster.pipeline("shop")
    expected = render_spark_application(
        RenderInput("shop", cluster.namespace, parse_spec(pipeline["spec"]), 1)
    )
    for key, value in expected["spec"].items():
        assert app["spec"][key] == value, key
    assert topic["spec"]["topicName"] == "page-views"
    assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "events"

    status = cluster.wait_state("shop", "DEPLOYING")["status"]
    assert status["observedGeneration"] == pipeline["metadata"]["generation"]
    cond = conditions(status)
    assert (cond["Ready"]["status"], cond["Progressing"]["status"], cond["Degraded"]["status"]) == (
        "False",
        "True",
        "False",
    )
    assert {c["kind"] for c in status["children"]} == {
        "SparkApplication",
        "KafkaTopic",
        "PodMonitor",
        "ConfigMap",
    }

    printed = kubectl(kube, "get", "pap", "shop", "-n", cluster.namespace, "-o", "wide").stdout
    header, row = printed.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "STATE", "TOPIC", "READY", "EXECUTORS"]
    assert row.split()[:5] == ["shop", "DEPLOYING", "page-views", "False", "1"]
    reasons = {e["reason"] for e in cluster.events("shop")}
    assert {"ChildCreated", "Deploying"} <= reasons


def test_lifecycle_follows_the_spark_application(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    cluster.create(pipeline_body("follow"))
    cluster.wait_app("follow")

    cluster.play_spark_operator("follow", "SUBMITTED", "sub-1")
    cluster.wait_state("follow", "DEPLOYING")

    cluster.play_spark_operator("follow", "RUNNING", "sub-1")
    status = cluster.wait_state("follow", "RUNNING")["status"]
    cond = conditions(status)
    assert (cond["Ready"]["status"], cond["Ready"]["reason"]) == ("True", "Running")
    assert cond["Progressing"]["status"] == "False"
    assert status["sparkApplication"]["submissionID"] == "sub-1"

    wait_pipeline_state(operator, cluster.namespace, "follow", {("RUNNING", "Running")})

    cluster.play_spark_operator("follow", "FAILED", "sub-1", error="driver pod OOMKilled")
    status = cluster.wait_state("follow", "FAILED")["status"]
    # One series names the failed pipeline, with its Ready reason (the old one is gone).
    wait_pipeline_state(
        operator, cluster.namespace, "follow", {("FAILED", "SparkApplicationFailed")}
    )
    cond = conditions(status)
    assert cond["Degraded"]["status"] == "True"
    assert cond["Degraded"]["reason"] == "SparkApplicationFailed"
    assert "driver pod OOMKilled" in cond["Ready"]["message"]

    cluster.play_spark_operator("follow", "PENDING_RERUN", "sub-1")
    cluster.wait_state("follow", "DEPLOYING")
    cluster.play_spark_operator("follow", "RUNNING", "sub-2")
    cluster.wait_state("follow", "RUNNING")

    events = cluster.events("follow")
    warnings = [e for e in events if e["type"] == "Warning"]
    assert any(e["reason"] == "SparkApplicationFailed" for e in warnings), events
    text = operator.metrics()
    assert metric_value(text, "pagestream_operator_reconciles_total", result="ok") > 0
    assert metric_value(text, "pagestream_operator_reconcile_duration_seconds_count") > 0
    assert "pagestream_operator_pipelines{" in text
    wait_pipeline_state(operator, cluster.namespace, "follow", {("RUNNING", "Running")})


def pipeline_state(operator: OperatorProcess, namespace: str, name: str) -> set[tuple[str, str]]:
    """(state, reason) of the pipeline's pagestream_operator_pipeline_state series, value 1."""
    found = set()
    for family in text_string_to_metric_families(operator.metrics()):
        for sample in family.samples:
            labels = sample.labels
            if sample.name != "pagestream_operator_pipeline_state":
                continue
            if (labels["namespace"], labels["pipeline"]) == (namespace, name):
                assert sample.value == 1, sample
                found.add((labels["state"], labels["reason"]))
    return found


def wait_pipeline_state(
    operator: OperatorProcess, namespace: str, name: str, expected: set[tuple[str, str]]
) -> None:
    """The series follows status right after the pass that wrote it."""
    eventually(
        lambda: pipeline_state(operator, namespace, name) == expected,
        what=f"pagestream_operator_pipeline_state of {namespace}/{name} to be {expected}",
    )


def _running(cluster: Cluster, name: str, submission: str = "sub-1") -> dict:
    app = cluster.wait_app(name)
    cluster.play_spark_operator(name, "RUNNING", submission)
    cluster.wait_state(name, "RUNNING")
    return app


def test_last_state_upgrade_keeps_the_checkpoint(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    cluster.create(pipeline_body("keep"))
    before = _running(cluster, "keep")
    checkpoint = arg(before, "--checkpoint-location")

    cluster.patch_spec("keep", {"spark": {"image": "registry.example/pagestream-spark:0.2.0"}})
    after = cluster.wait_app("keep", "new image", lambda a: a["spec"]["image"].endswith(":0.2.0"))
    assert arg(after, "--checkpoint-location") == checkpoint
    status = cluster.wait_state("keep", "UPGRADING")["status"]
    assert status["upgrade"]["fromSubmissionID"] == "sub-1"
    assert conditions(status)["Progressing"]["reason"] == "Upgrading"

    # The Spark operator resubmits; the new submission running ends the upgrade.
    cluster.play_spark_operator("keep", "SUBMITTED", "sub-2")
    cluster.play_spark_operator("keep", "RUNNING", "sub-2")
    status = cluster.wait_state("keep", "RUNNING")["status"]
    assert "upgrade" not in status
    assert status["checkpoint"]["location"] == checkpoint
    reasons = {e["reason"] for e in cluster.events("keep")}
    assert {"UpgradeStarted", "UpgradeCompleted"} <= reasons


def test_stateless_upgrade_starts_a_new_checkpoint(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    cluster.create(pipeline_body("fresh", lifecycle={"upgradeMode": "stateless"}))
    before = _running(cluster, "fresh")
    assert arg(before, "--checkpoint-location").endswith("/fresh/epoch-1")

    patched = cluster.patch_spec("fresh", {"spark": {"maxOffsetsPerTrigger": 1000}})
    generation = patched["metadata"]["generation"]
    after = cluster.wait_app(
        "fresh", "new max offsets", lambda a: arg(a, "--max-offsets-per-trigger") == "1000"
    )
    assert arg(after, "--checkpoint-location").endswith(f"/fresh/epoch-{generation}")
    cluster.wait_state("fresh", "UPGRADING")

    # A scale is no upgrade: the checkpoint stays, even in stateless mode.
    cluster.patch_spec("fresh", {"spark": {"executor": {"instances": 3}}})
    scaled = cluster.wait_app(
        "fresh", "3 executors", lambda a: a["spec"]["executor"]["instances"] == 3
    )
    assert arg(scaled, "--checkpoint-location").endswith(f"/fresh/epoch-{generation}")


def test_suspend_sets_spark_suspend_and_keeps_the_checkpoint(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    cluster.create(pipeline_body("nap", lifecycle={"upgradeMode": "stateless"}))
    before = _running(cluster, "nap")

    cluster.patch_spec("nap", {"lifecycle": {"state": "suspended"}})
    suspended = cluster.wait_app("nap", "suspend: true", lambda a: a["spec"].get("suspend") is True)
    assert arg(suspended, "--checkpoint-location") == arg(before, "--checkpoint-location")
    cluster.play_spark_operator("nap", "SUSPENDED", "sub-1")
    status = cluster.wait_state("nap", "SUSPENDED")["status"]
    assert conditions(status)["Ready"]["reason"] == "Suspended"

    cluster.patch_spec("nap", {"lifecycle": {"state": "running"}})
    cluster.wait_app("nap", "suspend: false", lambda a: a["spec"].get("suspend") is False)
    cluster.wait_state("nap", "DEPLOYING")
    cluster.play_spark_operator("nap", "RUNNING", "sub-2")
    cluster.wait_state("nap", "RUNNING")


def test_restart_nonce_resubmits(operator: OperatorProcess, cluster: Cluster) -> None:
    cluster.create(pipeline_body("again"))
    before = _running(cluster, "again")
    assert "pagestream.dev/restart-nonce" not in before["spec"]["driver"].get("annotations", {})

    cluster.patch_spec("again", {"lifecycle": {"restartNonce": 1}})
    after = cluster.wait_app(
        "again",
        "nonce on the driver",
        lambda a: a["spec"]["driver"]["annotations"].get("pagestream.dev/restart-nonce") == "1",
    )
    # last-state (the default): the restart keeps the checkpoint.
    assert arg(after, "--checkpoint-location") == arg(before, "--checkpoint-location")
    cluster.wait_state("again", "UPGRADING")
    cluster.play_spark_operator("again", "RUNNING", "sub-2")
    cluster.wait_state("again", "RUNNING")


def test_hand_edits_are_reverted_and_deleted_children_recreated(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    cluster.create(pipeline_body("drift", **FULL_EXTRAS))
    cluster.wait_app("drift")
    eventually(lambda: cluster.get(TOPIC, "drift"), what="KafkaTopic")

    # A hand edit of a field the operator owns (kubectl edit / merge patch) is reverted.
    cluster.objects.patch_namespaced_custom_object(
        *SPARK[:2], cluster.namespace, SPARK[2], "drift", {"spec": {"image": "hand/edited:1"}}
    )
    cluster.objects.patch_namespaced_custom_object(
        *TOPIC[:2], cluster.namespace, TOPIC[2], "drift", {"spec": {"partitions": 99}}
    )
    timeout = 10 * RESYNC_SECONDS
    eventually(
        lambda: cluster.app("drift")["spec"]["image"] == "registry.example/pagestream-spark:0.1.0",  # type: ignore[index]
        what="image restored",
        timeout=timeout,
    )
    eventually(
        lambda: cluster.get(TOPIC, "drift")["spec"]["partitions"] == 3,  # type: ignore[index]
        what="partitions restored",
        timeout=timeout,
    )

    # Deleted children come back: the SparkApplication at once (its deletion is an event the
    # operator watches), the others at the next resync.
    old_uid = cluster.app("drift")["metadata"]["uid"]  # type: ignore[index]
    cluster.objects.delete_namespaced_custom_object(
        *SPARK[:2], cluster.namespace, SPARK[2], "drift"
    )
    cluster.objects.delete_namespaced_custom_object(
        *PODMON[:2], cluster.namespace, PODMON[2], "drift"
    )
    cluster.wait_app(
        "drift", "recreated SparkApplication", lambda a: a["metadata"]["uid"] != old_uid
    )
    eventually(lambda: cluster.get(PODMON, "drift"), what="recreated PodMonitor", timeout=timeout)


def test_children_no_longer_wanted_are_deleted(operator: OperatorProcess, cluster: Cluster) -> None:
    cluster.create(pipeline_body("trim", **FULL_EXTRAS))
    eventually(lambda: cluster.get(PODMON, "trim"), what="PodMonitor")

    cluster.patch_spec("trim", {"monitoring": {"monitor": "None", "dashboards": False}})
    eventually(lambda: cluster.get(PODMON, "trim") is None, what="PodMonitor deleted")

    def dashboard_gone() -> bool:
        try:
            cluster.core.read_namespaced_config_map("trim-dashboard-health", cluster.namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(dashboard_gone, what="dashboard ConfigMap deleted")

    # Switching to a ServiceMonitor brings a headless Service in front of the driver.
    cluster.patch_spec("trim", {"monitoring": {"monitor": "ServiceMonitor"}})
    servicemon = eventually(lambda: cluster.get(SERVICEMON, "trim"), what="ServiceMonitor")
    service = eventually(
        lambda: cluster.core.read_namespaced_service("trim-metrics", cluster.namespace),
        what="metrics Service",
    )
    assert service.spec.cluster_ip == "None"
    assert service.spec.selector == {"pagestream.dev/pipeline": "trim", "spark-role": "driver"}
    assert servicemon["spec"]["selector"]["matchLabels"].items() <= service.metadata.labels.items()
    cluster.patch_spec("trim", {"monitoring": {"monitor": "None"}})
    eventually(lambda: cluster.get(SERVICEMON, "trim") is None, what="ServiceMonitor deleted")
    status = cluster.wait_status(
        "trim", "children updated", lambda s: len(s.get("children", [])) == 2
    )["status"]
    assert {c["kind"] for c in status["children"]} == {"SparkApplication", "KafkaTopic"}
    assert cluster.app("trim") is not None


def test_a_pipeline_without_a_monitor_choice_gets_a_pod_monitor_here(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    """spec.monitoring.monitor defaults to Auto: a PodMonitor where prometheus-operator's CRD
    is installed, as it is on this API server (unit tests cover the cluster without it)."""
    cluster.create(pipeline_body("auto"))
    assert cluster.pipeline("auto")["spec"]["monitoring"]["monitor"] == "Auto"
    podmon = eventually(lambda: cluster.get(PODMON, "auto"), what="PodMonitor")
    assert podmon["spec"]["selector"]["matchLabels"] == {
        "pagestream.dev/pipeline": "auto",
        "spark-role": "driver",
    }
    status = cluster.wait_status(
        "auto", "children recorded", lambda s: len(s.get("children", [])) == 2
    )["status"]
    assert {c["kind"] for c in status["children"]} == {"SparkApplication", "PodMonitor"}


def test_discovery_tells_which_kinds_the_api_server_serves(
    api: client.ApiClient, crds: list[str]
) -> None:
    kube_api = KubeApi(api)
    assert kube_api.serves("monitoring.coreos.com/v1", "PodMonitor")
    assert not kube_api.serves("monitoring.coreos.com/v1", "NoSuchMonitor")
    assert not kube_api.serves("nothing.example.com/v1", "Thing")  # 404: no such group
    assert kube_api.serves("v1", "ConfigMap")


def test_deleting_the_pipeline_deletes_its_children(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    cluster.create(pipeline_body("gone", **FULL_EXTRAS))
    cluster.wait_app("gone")
    eventually(lambda: cluster.get(TOPIC, "gone"), what="KafkaTopic")
    eventually(lambda: pipeline_state(operator, cluster.namespace, "gone"), what="the state series")

    cluster.objects.delete_namespaced_custom_object(
        "pagestream.dev", "v1alpha1", cluster.namespace, "pageanalyticspipelines", "gone"
    )
    # kube-controller-manager's garbage collector follows the owner references.
    eventually(lambda: cluster.app("gone") is None, what="SparkApplication collected", timeout=60)
    eventually(lambda: cluster.get(TOPIC, "gone") is None, what="KafkaTopic collected", timeout=60)
    eventually(lambda: cluster.get(PODMON, "gone") is None, what="PodMonitor collected", timeout=60)
    # The deleted pipeline's series goes with it: no alert keeps naming it.
    wait_pipeline_state(operator, cluster.namespace, "gone", set())


def test_logs_are_json_lines_that_name_their_object(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    cluster.create(pipeline_body("logged"))
    cluster.wait_app("logged")

    def logged() -> list[dict]:
        entries = [json.loads(line) for line in operator.log_text().splitlines() if line.strip()]
        about = [e for e in entries if (e.get("object") or {}).get("name") == "logged"]
        return entries if about else []

    entries = eventually(logged, what="a log line about the pipeline")
    assert all({"ts", "level", "logger", "msg"} <= e.keys() for e in entries)
    assert not any("settings" in e for e in entries)  # kopf's settings dump is filtered out


def test_a_paused_pipeline_is_left_alone_until_the_annotation_goes(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    cluster.create(pipeline_body("hands-off"))
    cluster.wait_app("hands-off")
    cluster.objects.patch_namespaced_custom_object(
        "pagestream.dev",
        "v1alpha1",
        cluster.namespace,
        "pageanalyticspipelines",
        "hands-off",
        {"metadata": {"annotations": {"pagestream.dev/reconcile": "paused"}}},
    )

    def paused() -> float:
        return metric_value(
            operator.metrics(), "pagestream_operator_reconciles_total", result="paused"
        )

    eventually(lambda: paused() > 0, what="a paused reconcile")
    cluster.objects.patch_namespaced_custom_object(
        *SPARK[:2], cluster.namespace, SPARK[2], "hands-off", {"spec": {"image": "by/hand:1"}}
    )
    # Two more passes (timer or events) have seen the pipeline paused since the edit.
    after_edit = paused()
    eventually(lambda: paused() >= after_edit + 2, what="two more paused passes", timeout=30)
    assert cluster.app("hands-off")["spec"]["image"] == "by/hand:1"  # type: ignore[index]

    cluster.objects.patch_namespaced_custom_object(
        "pagestream.dev",
        "v1alpha1",
        cluster.namespace,
        "pageanalyticspipelines",
        "hands-off",
        {"metadata": {"annotations": {"pagestream.dev/reconcile": None}}},
    )
    cluster.wait_app(
        "hands-off",
        "image restored after unpausing",
        lambda a: a["spec"]["image"] == "registry.example/pagestream-spark:0.1.0",
    )
