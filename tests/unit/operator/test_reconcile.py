"""The reconcile pass's logic, on an in-memory stand-in for the few API calls it makes.

These are unit tests of ordering and bookkeeping (intent recorded before applying, idempotent
repeats, upgrade markers, deletion of unwanted children). The integration tests run the same
code against the real kube-apiserver.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from crd_models import crd_schema
from kubernetes.client.rest import ApiException
from operator_cases import minimal_spec

from pagestream_operator.apply import PIPELINE_API, ChildRef
from pagestream_operator.reconcile import ReconcileError, reconcile
from pagestream_operator.spec import KIND
from pagestream_operator.status import PipelineStatus

NS = "shop"


class MemoryApi:
    """Objects by (apiVersion, kind, name) in one namespace, with generation bookkeeping."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_kinds: set[str] = set()
        # The kinds the cluster serves beyond the built-in ones (none: no prometheus-operator).
        self.served_kinds: set[str] = set()
        self._version = 0

    def _bump(self, obj: dict[str, Any]) -> None:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", f"{kind}/{name}"))
        obj = self.objects.get((api_version, kind, name))
        return copy.deepcopy(obj) if obj else None

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("apply", f"{obj['kind']}/{obj['metadata']['name']}"))
        if obj["kind"] in self.fail_kinds:
            raise ApiException(status=422, reason="Unprocessable Entity")
        key = (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
        existing = self.objects.get(key)
        new = copy.deepcopy(obj)
        new["metadata"]["generation"] = 1
        if existing:
            if existing.get("spec") == new.get("spec") and existing["metadata"].get(
                "labels"
            ) == new["metadata"].get("labels"):
                return copy.deepcopy(existing)
            new["metadata"]["generation"] = existing["metadata"]["generation"] + 1
            if "status" in existing:
                new["status"] = existing["status"]
        self._bump(new)
        self.objects[key] = new
        return copy.deepcopy(new)

    def serves(self, api_version: str, kind: str) -> bool:
        self.calls.append(("serves", f"{api_version}/{kind}"))
        return kind in self.served_kinds

    def delete(self, ref: ChildRef, namespace: str) -> bool:
        self.calls.append(("delete", str(ref)))
        return self.objects.pop((ref.api_version, ref.kind, ref.name), None) is not None

    def patch_pipeline_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.calls.append(("status", name))
        current = self.objects[(PIPELINE_API, KIND, name)].setdefault("status", {})
        for key, value in status.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = copy.deepcopy(value)

    # test helpers

    def pipeline(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.objects[(PIPELINE_API, KIND, name)])

    def add_pipeline(self, name: str, spec: dict[str, Any]) -> None:
        self.objects[(PIPELINE_API, KIND, name)] = {
            "apiVersion": PIPELINE_API,
            "kind": KIND,
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1},
            "spec": spec,
        }

    def set_spec(self, name: str, spec: dict[str, Any]) -> None:
        obj = self.objects[(PIPELINE_API, KIND, name)]
        obj["spec"] = spec
        obj["metadata"]["generation"] += 1

    def spark_status(self, name: str, state: str, submission: str) -> None:
        app = self.objects[("sparkoperator.k8s.io/v1beta2", "SparkApplication", name)]
        app["status"] = {"applicationState": {"state": state}, "submissionID": submission}

    def app(self, name: str) -> dict[str, Any]:
        return self.objects[("sparkoperator.k8s.io/v1beta2", "SparkApplication", name)]


class Events(list[tuple[str, str, str]]):
    def __call__(self, kind: str, reason: str, message: str) -> None:
        self.append((kind, reason, message))

    def reasons(self) -> list[str]:
        return [r for _, r, _ in self]


def run(api: MemoryApi, name: str = "p") -> Events:
    events = Events()
    reconcile(api, api.pipeline(name), events)  # type: ignore[arg-type]
    return events


def checkpoint_arg(app: dict[str, Any]) -> str:
    args = app["spec"]["arguments"]
    return str(args[args.index("--checkpoint-location") + 1])


def test_first_pass_records_intent_before_applying_and_owns_the_child() -> None:
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec())
    events = run(api)
    writes = [c for c in api.calls if c[0] in ("status", "apply")]
    assert writes[0] == ("status", "p")  # intent first
    assert ("apply", "SparkApplication/p") in writes
    app = api.app("p")
    assert app["metadata"]["ownerReferences"][0]["uid"] == "uid-p"
    status = api.pipeline("p")["status"]
    assert status["lifecycleState"] == "DEPLOYING"
    assert status["checkpoint"]["epoch"] == 1
    assert status["children"] == [
        {"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication", "name": "p"}
    ]
    assert events.reasons() == ["ChildCreated", "Deploying"]


def test_a_repeated_pass_changes_nothing() -> None:
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec())
    run(api)
    api.calls.clear()
    events = run(api)
    assert [c for c in api.calls if c[0] in ("status", "delete")] == []
    assert events == []


def test_last_state_upgrade_marks_and_completes() -> None:
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec())
    run(api)
    api.spark_status("p", "RUNNING", "s1")
    run(api)
    before = checkpoint_arg(api.app("p"))

    api.set_spec("p", minimal_spec(spark={"image": "img:2"}))
    events = run(api)
    status = api.pipeline("p")["status"]
    assert status["lifecycleState"] == "UPGRADING"
    assert status["upgrade"]["fromSubmissionID"] == "s1"
    assert checkpoint_arg(api.app("p")) == before
    assert "UpgradeStarted" in events.reasons()
    assert "ChildUpdated" in events.reasons()

    run(api)  # the Spark operator has not resubmitted yet: still upgrading
    assert api.pipeline("p")["status"]["lifecycleState"] == "UPGRADING"
    api.spark_status("p", "RUNNING", "s2")
    events = run(api)
    status = api.pipeline("p")["status"]
    assert status["lifecycleState"] == "RUNNING"
    assert "upgrade" not in status
    assert "UpgradeCompleted" in events.reasons()


def _kstatus_conditions(api: MemoryApi) -> tuple[int, str, str, str]:
    pipeline = api.pipeline("p")
    cond = {c["type"]: c for c in pipeline["status"]["conditions"]}
    assert pipeline["status"]["observedGeneration"] == pipeline["metadata"]["generation"]
    assert {c["observedGeneration"] for c in cond.values()} == {pipeline["metadata"]["generation"]}
    return (
        pipeline["status"]["observedGeneration"],
        cond["Ready"]["status"],
        cond["Reconciling"]["status"],
        cond["Stalled"]["status"],
    )


def test_status_describes_the_generation_with_reconciling_and_stalled() -> None:
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec())
    run(api)
    assert _kstatus_conditions(api) == (1, "False", "True", "False")  # deploying
    api.spark_status("p", "RUNNING", "s1")
    run(api)
    assert _kstatus_conditions(api) == (1, "True", "False", "False")  # running
    api.set_spec("p", minimal_spec(spark={"image": "img:2"}))
    run(api)
    assert _kstatus_conditions(api) == (2, "False", "True", "False")  # upgrading
    reconciling = {c["type"]: c for c in api.pipeline("p")["status"]["conditions"]}["Reconciling"]
    assert reconciling["reason"] == "Upgrading"
    api.spark_status("p", "FAILED", "s2")
    run(api)
    assert _kstatus_conditions(api) == (2, "False", "False", "True")  # failed
    api.set_spec("p", minimal_spec(lifecycle={"state": "suspended"}))
    api.spark_status("p", "SUSPENDED", "s2")
    run(api)
    assert _kstatus_conditions(api) == (3, "True", "False", "False")  # suspended


def test_stateless_upgrade_moves_the_checkpoint_to_the_new_generation() -> None:
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec(lifecycle={"upgradeMode": "stateless"}))
    run(api)
    assert checkpoint_arg(api.app("p")).endswith("/epoch-1")
    api.set_spec(
        "p", minimal_spec(lifecycle={"upgradeMode": "stateless"}, spark={"image": "img:2"})
    )
    run(api)
    assert checkpoint_arg(api.app("p")).endswith("/epoch-2")
    assert api.pipeline("p")["status"]["checkpoint"]["epoch"] == 2


def test_children_no_longer_wanted_are_deleted_and_forgotten() -> None:
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec(monitoring={"monitor": "PodMonitor", "dashboards": True}))
    run(api)
    assert len(api.pipeline("p")["status"]["children"]) == 3
    api.set_spec("p", minimal_spec())
    events = run(api)
    assert sorted(c for c in api.calls if c[0] == "delete") == [
        ("delete", "ConfigMap/p-dashboard-health"),
        ("delete", "PodMonitor/p"),
    ]
    assert events.reasons().count("ChildDeleted") == 2
    assert [c["kind"] for c in api.pipeline("p")["status"]["children"]] == ["SparkApplication"]


def test_an_invalid_spec_applies_nothing_and_is_reported_once() -> None:
    api = MemoryApi()
    # Both Kafka sources: the CRD would reject this; the operator must not rely on it.
    api.add_pipeline(
        "p",
        minimal_spec(
            kafka={
                "bootstrapServers": "k:1",
                "strimziCluster": {"name": "e"},
                "topic": {"name": "v"},
            }
        ),
    )
    events = run(api)
    assert not [c for c in api.calls if c[0] == "apply"]
    degraded = {c["type"]: c for c in api.pipeline("p")["status"]["conditions"]}["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "InvalidSpec")
    assert "spec.kafka" in degraded["message"]
    status = api.pipeline("p")["status"]
    stalled = {c["type"]: c for c in status["conditions"]}["Stalled"]
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    assert status["observedGeneration"] == api.pipeline("p")["metadata"]["generation"]
    assert events.reasons() == ["InvalidSpec"]
    assert run(api) == []


def test_an_apply_failure_is_reported_and_retried() -> None:
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec(monitoring={"monitor": "PodMonitor"}))
    api.fail_kinds.add("PodMonitor")
    with pytest.raises(ReconcileError, match="PodMonitor/p: 422"):
        run(api)
    status = api.pipeline("p")["status"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["reason"] == "ApplyFailed"
    cond = {c["type"]: c for c in status["conditions"]}
    assert (cond["Stalled"]["status"], cond["Stalled"]["reason"]) == ("True", "ApplyFailed")
    assert cond["Reconciling"]["status"] == "False"
    assert api.app("p")  # the other children were still applied


def test_a_pipeline_being_deleted_is_left_to_the_garbage_collector() -> None:
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec())
    api.objects[(PIPELINE_API, KIND, "p")]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert run(api) == []
    assert not [c for c in api.calls if c[0] in ("apply", "status")]


def test_a_deleted_child_is_recreated() -> None:
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec())
    run(api)
    del api.objects[("sparkoperator.k8s.io/v1beta2", "SparkApplication", "p")]
    events = run(api)
    assert "ChildCreated" in events.reasons()
    assert api.app("p")


def test_a_lost_status_does_not_reset_the_checkpoint() -> None:
    """A restore from backup brings the pipeline back without status: the checkpoint epoch is
    recovered from the running SparkApplication instead of starting a new one."""
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec(lifecycle={"upgradeMode": "stateless"}))
    run(api)
    api.set_spec(
        "p", minimal_spec(lifecycle={"upgradeMode": "stateless"}, spark={"image": "img:2"})
    )
    run(api)
    assert checkpoint_arg(api.app("p")).endswith("/epoch-2")
    api.objects[(PIPELINE_API, KIND, "p")]["metadata"]["generation"] = 7
    api.objects[(PIPELINE_API, KIND, "p")].pop("status")
    run(api)
    assert checkpoint_arg(api.app("p")).endswith("/epoch-2")
    assert api.pipeline("p")["status"]["checkpoint"]["epoch"] == 2


def test_a_paused_pipeline_is_left_alone_until_resumed() -> None:
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec())
    run(api)
    meta = api.objects[(PIPELINE_API, KIND, "p")]["metadata"]
    meta["annotations"] = {"pagestream.dev/reconcile": "paused"}
    api.app("p")["spec"]["image"] = "hand/edited:1"
    api.calls.clear()
    assert run(api) == []
    assert not [c for c in api.calls if c[0] in ("apply", "status", "delete")]
    assert api.app("p")["spec"]["image"] == "hand/edited:1"
    del meta["annotations"]
    run(api)
    assert api.app("p")["spec"]["image"] == "img:1"


def test_the_upgrade_event_names_the_fields_changed_since_the_last_reconciled_spec() -> None:
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec())
    run(api)
    recorded = json.loads(api.pipeline("p")["status"]["lastReconciledSpec"])
    assert recorded["spark"]["image"] == "img:1"
    assert recorded["spark"]["executor"]["instances"] == 1  # defaults filled in
    api.spark_status("p", "RUNNING", "s1")
    run(api)

    api.set_spec("p", minimal_spec(spark={"image": "img:2", "executor": {"instances": 3}}))
    events = run(api)
    (message,) = [m for _, r, m in events if r == "UpgradeStarted"]
    assert "spark.image, spark.executor.instances (restart);" in message
    recorded = json.loads(api.pipeline("p")["status"]["lastReconciledSpec"])
    assert recorded["spark"]["image"] == "img:2"


def test_an_upgrade_without_a_recorded_spec_says_so() -> None:
    """A status written by an operator that did not record the spec yet."""
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec())
    run(api)
    api.spark_status("p", "RUNNING", "s1")
    run(api)
    api.objects[(PIPELINE_API, KIND, "p")]["status"].pop("lastReconciledSpec")
    api.set_spec("p", minimal_spec(spark={"image": "img:2"}))
    events = run(api)
    (message,) = [m for _, r, m in events if r == "UpgradeStarted"]
    assert "the previous spec was not recorded" in message


def test_a_scale_restarts_the_job_without_an_upgrade() -> None:
    """The executor count is a restart: the SparkApplication changes (spark-operator resubmits
    it) but the checkpoint stays, even in stateless mode, and no upgrade is marked."""
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec(lifecycle={"upgradeMode": "stateless"}))
    run(api)
    api.spark_status("p", "RUNNING", "s1")
    run(api)
    before = checkpoint_arg(api.app("p"))
    api.set_spec(
        "p",
        minimal_spec(
            lifecycle={"upgradeMode": "stateless"},
            spark={"image": "img:1", "executor": {"instances": 3}},
        ),
    )
    events = run(api)
    assert api.app("p")["spec"]["executor"]["instances"] == 3
    assert checkpoint_arg(api.app("p")) == before
    assert "ChildUpdated" in events.reasons()
    assert "UpgradeStarted" not in events.reasons()
    assert "upgrade" not in api.pipeline("p")["status"]


def _undeclared(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Paths in ``value`` that ``schema`` does not declare (the API server would prune them)."""
    if isinstance(value, list):
        return [
            p for i, v in enumerate(value) for p in _undeclared(v, schema["items"], f"{path}[{i}]")
        ]
    if not isinstance(value, dict):
        return []
    props = schema.get("properties", {})
    return [f"{path}.{k}" for k in value if k not in props] + [
        p for k, v in value.items() if k in props for p in _undeclared(v, props[k], f"{path}.{k}")
    ]


class RecordingApi(MemoryApi):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[dict[str, Any]] = []

    def patch_pipeline_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.written.append(copy.deepcopy(status))
        super().patch_pipeline_status(namespace, name, status)


def test_every_status_written_is_one_the_crd_accepts_whole() -> None:
    api = RecordingApi()
    api.add_pipeline("p", minimal_spec(monitoring={"monitor": "PodMonitor"}))
    run(api)
    api.spark_status("p", "RUNNING", "s1")
    run(api)
    api.set_spec("p", minimal_spec(spark={"image": "img:2"}))
    run(api)
    api.spark_status("p", "RUNNING", "s2")
    run(api)
    schema = crd_schema()["properties"]["status"]
    assert len(api.written) >= 4
    for status in api.written:
        assert (
            _undeclared({k: v for k, v in status.items() if v is not None}, schema, "status") == []
        )
    # What the passes left is exactly a status model (which test_status checks against the CRD).
    status = api.pipeline("p")["status"]
    assert PipelineStatus.model_validate(status).to_patch() == status


def test_the_outcome_carries_the_state_and_ready_reason_the_metrics_export() -> None:
    """handlers.Reconciler exports each pipeline's lifecycle state and Ready reason from the
    outcome (pagestream_operator_pipeline_state); they are what status says."""

    def outcome(api: MemoryApi) -> tuple[str | None, str | None]:
        result = reconcile(api, api.pipeline("p"), Events())  # type: ignore[arg-type]
        status = api.pipeline("p")["status"]
        ready = {c["type"]: c for c in status["conditions"]}["Ready"]
        assert (result.lifecycle_state, result.reason) == (
            status["lifecycleState"],
            ready["reason"],
        )
        return result.lifecycle_state, result.reason

    api = MemoryApi()
    api.add_pipeline("p", minimal_spec())
    assert outcome(api) == ("DEPLOYING", "Deploying")
    api.spark_status("p", "RUNNING", "s1")
    assert outcome(api) == ("RUNNING", "Running")
    api.spark_status("p", "FAILED", "s1")
    assert outcome(api) == ("FAILED", "SparkApplicationFailed")
    api.spark_status("p", "RUNNING", "s1")
    assert outcome(api) == ("RUNNING", "Running")

    # An invalid spec keeps the last state, with the reason InvalidSpec.
    api.set_spec(
        "p",
        minimal_spec(
            kafka={
                "bootstrapServers": "k:1",
                "strimziCluster": {"name": "e"},
                "topic": {"name": "v"},
            }
        ),
    )
    assert outcome(api) == ("RUNNING", "InvalidSpec")

    # A failed apply raises, and the error carries what status recorded.
    failing = MemoryApi()
    failing.add_pipeline("p", minimal_spec(monitoring={"monitor": "PodMonitor"}))
    failing.fail_kinds.add("PodMonitor")
    with pytest.raises(ReconcileError) as raised:
        run(failing)
    assert raised.value.outcome is not None
    status = failing.pipeline("p")["status"]
    assert (raised.value.outcome.lifecycle_state, raised.value.outcome.reason) == (
        status["lifecycleState"],
        "ApplyFailed",
    )
    assert status["lifecycleState"] == "DEPLOYING"  # the SparkApplication was applied


def test_monitor_auto_follows_what_the_cluster_serves() -> None:
    """A pipeline that does not choose a monitor gets a PodMonitor where the cluster serves
    PodMonitors, nothing where it does not, and loses it when the CRD goes away. Only Auto
    asks the cluster."""
    api = MemoryApi()
    api.add_pipeline("p", minimal_spec())
    run(api)
    assert ("serves", "monitoring.coreos.com/v1/PodMonitor") in api.calls
    assert ("apply", "PodMonitor/p") not in api.calls

    api.served_kinds.add("PodMonitor")
    events = run(api)
    assert ("apply", "PodMonitor/p") in api.calls
    assert "ChildCreated" in events.reasons()
    children = {c["kind"] for c in api.pipeline("p")["status"]["children"]}
    assert children == {"SparkApplication", "PodMonitor"}

    api.served_kinds.clear()
    api.calls.clear()
    run(api)
    assert ("delete", "PodMonitor/p") in api.calls
    assert [c["kind"] for c in api.pipeline("p")["status"]["children"]] == ["SparkApplication"]

    explicit = MemoryApi()
    explicit.served_kinds.add("PodMonitor")
    explicit.add_pipeline("p", minimal_spec(monitoring={"monitor": "None"}))
    run(explicit)
    assert not [c for c in explicit.calls if c[0] == "serves"]
    assert ("apply", "PodMonitor/p") not in explicit.calls
