"""The product as its users run it, on the real node: the upstream operators (spark-operator,
CloudNativePG, prometheus-operator, each built from its pinned module and installed from the
files that module ships), ``helm install`` of the app release, ``kubectl apply`` of a
PageAnalyticsPipeline in a namespace enforcing ``restricted``, driver and executor pods that
spark-operator submits, a simulator Job with a ground-truth manifest, and then, after each
lifecycle step and each fault, the exact accounting read from CloudNativePG's PostgreSQL.

The tests run in file order on one module-scoped deployment: each step starts from what the
previous one left, as an operator's day would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from grafana_macros import expand_promql
from pipeline_harness import (
    DB,
    JOB_USER,
    PAP,
    PIPELINE,
    PRODUCER_USER,
    Scenario,
    pipeline_manifest,
    support_objects,
)
from polling import eventually

from pagestream.stack.helm import Helm
from pagestream.stack.node.node import LocalNode
from pagestream.stack.node.platform import KAFKA_NAME, deploy_pipeline_stack
from pagestream.stack.paths import REPO_ROOT
from pagestream_operator.data_plane import DATA_PLANE_LABEL, STATUS_ANNOTATION

pytestmark = pytest.mark.node

NAMESPACE = "pagestream-e2e"
RELEASE = "pagestream-e2e"
# The chart's data plane ConfigMap for this release (templates/data-plane.yaml).
DATA_PLANE_CONFIGMAP = f"{RELEASE}-operator-data-plane"
DASHBOARDS = REPO_ROOT / "charts" / "pagestream" / "dashboards"
# Seconds per phase and the node's memory (PSS of every node process and pod, MiB) after each,
# written to the run's logs folder as node-pipeline-phases.json: the numbers docs/kubernetes.md
# reports. Recorded, never asserted on (speed belongs in benchmarks).
PHASES: dict[str, float] = {}
MEMORY_MIB: dict[str, int] = {}
_NODE: list[LocalNode] = []


def _timed(phase: str, started: float) -> None:
    PHASES[phase] = round(time.monotonic() - started, 1)
    if _NODE:
        MEMORY_MIB[phase] = int(_NODE[0].status()["memory_mib"])


@pytest.fixture(scope="module")
def scenario(node: LocalNode, node_images: dict[str, str]) -> Iterator[Scenario]:
    _NODE.append(node)
    stack = deploy_pipeline_stack(
        node,
        node_images["operator"],
        namespace=NAMESPACE,
        release_name=RELEASE,
        users=(JOB_USER, PRODUCER_USER),
        timings=PHASES,
    )
    assert stack.database == DB
    for phase in PHASES:
        MEMORY_MIB.setdefault(phase, int(node.status()["memory_mib"]))

    s = Scenario(node, NAMESPACE, node_images)
    s.apply(*support_objects(NAMESPACE))
    # The first dataset before the pipeline: the simulator creates the topic (3 partitions)
    # that the job reads from its earliest offsets.
    t = time.monotonic()
    s.send(count=6000)
    _timed("first dataset (6000 events + faults) sent by a simulator Job", t)
    t = time.monotonic()
    s.apply(pipeline_manifest(NAMESPACE, node_images["spark"]))
    s.wait_running(executors=1, timeout=420)
    _timed("pipeline applied until driver and executor Running", t)
    yield s
    report = node.paths.logs / "node-pipeline-phases.json"
    report.write_text(json.dumps({"seconds": PHASES, "memory_mib": MEMORY_MIB}, indent=2) + "\n")
    Helm(node.paths).run(
        "uninstall", RELEASE, "-n", NAMESPACE, "--wait", kubeconfig=node.kubeconfig, check=False
    )


def _pod_security_admitted(pod: dict[str, Any]) -> None:
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in spec["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["readOnlyRootFilesystem"] is True


def test_platform_database_is_a_cloudnativepg_pod_on_a_provisioned_volume(
    scenario: Scenario,
) -> None:
    cluster = scenario.get(f"clusters.postgresql.cnpg.io/{DB}")
    assert cluster["status"]["readyInstances"] == 1
    # Applied by the pagestream operator from the release's data plane ConfigMap, not by helm
    # (one install brings the data plane up once CloudNativePG's CRD is served).
    (owner,) = cluster["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("ConfigMap", DATA_PLANE_CONFIGMAP)
    assert cluster["metadata"]["labels"][DATA_PLANE_LABEL] == DATA_PLANE_CONFIGMAP
    configmap = scenario.get(f"configmap/{DATA_PLANE_CONFIGMAP}")
    status = json.loads(configmap["metadata"]["annotations"][STATUS_ANNOTATION])
    assert status == {
        "ready": True,
        "objects": [{"object": f"Cluster/{DB}", "state": "Applied"}],
    }
    pod = scenario.get(f"pod/{scenario.primary_pod()}")
    assert pod["status"]["phase"] == "Running"
    (claim,) = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    pvc = scenario.get(f"pvc/{claim}")
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["spec"]["storageClassName"] == "standard"
    ((version,),) = scenario.sql("SHOW server_version_num")
    assert version.startswith("15")


def test_driver_and_executor_pods_run_under_restricted(scenario: Scenario) -> None:
    app = scenario.get(f"sparkapplication/{PIPELINE}")
    assert app["status"]["applicationState"]["state"] == "RUNNING"
    driver = scenario.running("driver")[0]
    executor = scenario.running("executor")[0]
    for pod in (driver, executor):
        _pod_security_admitted(pod)
    ns = scenario.get(f"namespace/{NAMESPACE}")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # The checkpoint lives on its claim, mounted in the driver.
    mounts = {m["mountPath"] for c in driver["spec"]["containers"] for m in c["volumeMounts"]}
    assert "/opt/pagestream/checkpoints" in mounts


def test_simulator_job_through_scram_is_stored_exactly(scenario: Scenario) -> None:
    t = time.monotonic()
    acc = scenario.check_exact()
    _timed("first dataset committed, exact", t)
    assert acc["dead_lettered"] > 0 and acc["duplicates"] > 0 and acc["bots"] > 0


def test_prometheus_scrapes_the_driver_through_the_pod_monitor(scenario: Scenario) -> None:
    monitor = scenario.get(f"podmonitor/{PIPELINE}")
    assert monitor["metadata"]["ownerReferences"][0]["kind"] == "PageAnalyticsPipeline"
    acc = scenario.accounting()

    def scraped_total() -> float | None:
        result = scenario.prom_query(
            f'sum(pagestream_job_records_total{{namespace="{NAMESPACE}"}})'
        )
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if value == acc["consumed"] else None

    eventually(
        scraped_total,
        timeout=120,
        interval=3,
        what=f"Prometheus' pagestream_job_records_total to reach {acc['consumed']}",
    )
    up = scenario.prom_query(f'up{{namespace="{NAMESPACE}", pod="{PIPELINE}-driver"}}')
    assert [float(s["value"][1]) for s in up] == [1.0]


def _promql_panels() -> list[tuple[str, str]]:
    data = json.loads((DASHBOARDS / "pipeline-health.json").read_text())
    return [
        (p["title"], t["expr"])
        for p in data["panels"]
        if p["type"] != "row"
        for t in p["targets"]
        if "expr" in t
    ]


def test_every_promql_panel_returns_data_from_the_cluster_prometheus(scenario: Scenario) -> None:
    empty = []
    for title, expr in _promql_panels():

        def has_data(expr: str = expr) -> bool:
            return bool(scenario.prom_query(expand_promql(expr, PIPELINE, NAMESPACE)))

        try:
            eventually(has_data, timeout=60, interval=5, what=title)
        except AssertionError:
            empty.append(title)
    assert empty == []


def test_kubectl_shows_and_waits_for_the_state_real_pods_justify(scenario: Scenario) -> None:
    scenario.node.kubectl("-n", NAMESPACE, "wait", "--for=condition=Ready", PAP, "--timeout=60s")
    table = scenario.kubectl("get", "pap")
    assert PIPELINE in table and "RUNNING" in table and "True" in table
    pap = scenario.pipeline()
    ready = {c["type"]: c for c in pap["status"]["conditions"]}["Ready"]
    assert ready["status"] == "True"
    assert pap["status"]["observedGeneration"] == pap["metadata"]["generation"]


def test_suspend_removes_the_pods_and_resume_continues_from_the_checkpoint(
    scenario: Scenario,
) -> None:
    t = time.monotonic()
    scenario.patch({"spec": {"lifecycle": {"state": "suspended"}}})
    try:
        scenario.wait_state("SUSPENDED")
        eventually(
            lambda: not scenario.spark_pods("driver") and not scenario.spark_pods("executor"),
            timeout=180,
            interval=2,
            what="driver and executor pods gone",
        )
        _timed("suspend until pods gone", t)
        # Traffic while suspended waits in Kafka.
        scenario.send(count=1500)
    finally:
        # The next steps start from a running pipeline, whatever happened here.
        t = time.monotonic()
        scenario.patch({"spec": {"lifecycle": {"state": "running"}}})
    scenario.wait_running(executors=1)
    scenario.wait_state("RUNNING")
    scenario.check_exact()
    _timed("resume until caught up, exact", t)


def test_restart_nonce_gives_a_new_driver_still_exact(scenario: Scenario) -> None:
    before = scenario.running("driver")[0]["metadata"]["uid"]
    t = time.monotonic()
    scenario.patch({"spec": {"lifecycle": {"restartNonce": 1}}})
    scenario.wait_new_driver(before, what="a new driver pod")
    scenario.send(count=1000)
    scenario.check_exact()
    _timed("restart nonce until new driver caught up", t)


def test_scale_to_two_executors(scenario: Scenario) -> None:
    t = time.monotonic()
    scenario.kubectl("scale", PAP, "--replicas=2")
    scenario.wait_running(executors=2)
    eventually(
        lambda: scenario.pipeline().get("status", {}).get("replicas") == 2,
        timeout=120,
        interval=2,
        what="status.replicas 2",
    )
    scenario.send(count=1000)
    scenario.check_exact()
    _timed("scale to 2 executors, exact", t)


def test_upgrade_class_change_keeps_the_checkpoint_in_last_state_mode(scenario: Scenario) -> None:
    pap = scenario.pipeline()
    epoch_before = pap["status"].get("checkpoint", {}).get("epoch")
    before = scenario.running("driver")[0]["metadata"]["uid"]
    t = time.monotonic()
    scenario.patch({"spec": {"spark": {"triggerInterval": "3 seconds"}}})
    scenario.wait_new_driver(before, what="the upgraded driver")
    scenario.wait_state("RUNNING")
    assert scenario.pipeline()["status"].get("checkpoint", {}).get("epoch") == epoch_before
    scenario.send(count=1000)
    scenario.check_exact()
    _timed("last-state upgrade, exact", t)


def test_driver_pod_deleted_mid_stream(scenario: Scenario) -> None:
    t = time.monotonic()
    job = scenario.start_simulator(count=3000, rate=150)
    time.sleep(5)
    driver = scenario.running("driver")[0]["metadata"]["name"]
    scenario.kubectl("delete", "pod", driver, "--wait=false")
    scenario.finish_simulator(job)
    scenario.wait_running(executors=scenario.pipeline()["spec"]["spark"]["executor"]["instances"])
    scenario.check_exact()
    _timed("driver deleted mid-stream, recovered exact", t)


def test_postgres_pod_deleted_mid_stream(scenario: Scenario) -> None:
    t = time.monotonic()
    job = scenario.start_simulator(count=3000, rate=150)
    time.sleep(5)
    primary = scenario.primary_pod()
    # A crash rather than a clean stop: a graceful delete lets CloudNativePG wait out its
    # smart-shutdown timeout (180 s) for the job's open connection to close.
    scenario.kubectl("delete", "pod", primary, "--grace-period=1", "--wait=false")
    scenario.finish_simulator(job)
    scenario.node.kubectl(
        "-n",
        NAMESPACE,
        "wait",
        "--for=condition=Ready",
        f"clusters.postgresql.cnpg.io/{DB}",
        "--timeout=300s",
        timeout=330,
    )
    scenario.check_exact()
    _timed("PostgreSQL pod deleted mid-stream, recovered exact", t)


def test_operator_pod_deleted_mid_reconcile_converges(scenario: Scenario) -> None:
    """A change that needs no job restart (the dashboards off: a child to delete), with the
    operator pod deleted right after it: the new operator pod converges on it."""
    t = time.monotonic()
    driver = scenario.running("driver")[0]["metadata"]["uid"]
    scenario.patch({"spec": {"monitoring": {"dashboards": False}}})
    scenario.kubectl("delete", "pod", "-l", "app.kubernetes.io/component=operator", "--wait=false")

    def converged() -> bool:
        pap = scenario.pipeline()
        dashboards = scenario.get(
            "configmaps", "-l", f"pagestream.dev/pipeline={PIPELINE},grafana_dashboard=1"
        )["items"]
        return (
            pap["status"].get("observedGeneration") == pap["metadata"]["generation"]
            and not dashboards
            and pap["status"].get("lifecycleState") == "RUNNING"
        )

    eventually(converged, timeout=300, interval=3, what="the new operator pod to converge")
    assert [p["metadata"]["uid"] for p in scenario.running("driver")] == [driver]
    scenario.send(count=1000)
    scenario.check_exact()
    _timed("operator deleted mid-reconcile, converged exact", t)


def test_kafka_pod_restarted(scenario: Scenario) -> None:
    t = time.monotonic()
    scenario.kubectl("delete", "pod", f"{KAFKA_NAME}-0")
    scenario.node.kubectl(
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        f"statefulset/{KAFKA_NAME}",
        "--timeout=180s",
        timeout=200,
    )
    scenario.send(count=1000)
    scenario.check_exact()
    _timed("Kafka pod restarted, exact", t)


def test_deleting_the_pipeline_removes_every_child(scenario: Scenario) -> None:
    t = time.monotonic()
    scenario.kubectl("delete", PAP, "--timeout=180s")

    def gone() -> list[str]:
        left = []
        for kind in ("sparkapplications", "podmonitors", "configmaps", "pods"):
            items = scenario.get(kind, "-l", f"pagestream.dev/pipeline={PIPELINE}")["items"]
            left += [f"{kind}/{i['metadata']['name']}" for i in items]
        return left

    eventually(lambda: gone() == [], timeout=180, interval=2, what="every child deleted")
    _timed("pipeline deleted, children gone", t)
