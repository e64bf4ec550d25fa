"""One reconcile pass: observe -> validate -> plan -> record -> apply -> assess -> record.

Each pass is level-based and idempotent: it recomputes everything from the pipeline and its
children as they are now, so running it twice, or after a crash at any point, converges to the
same result. The steps, in the spirit of the Flink operator's controller flow and
CloudNativePG's chain of small steps:

1. *validate* the spec; an invalid spec is reported in status and nothing is applied (the last
   valid spec keeps running);
2. *observe* the SparkApplication (the observer changes nothing);
3. *plan*: choose the checkpoint epoch (``upgradeMode``) and whether this is an upgrade;
4. *record intent* before acting: the plan, an upgrade marker, and the children about to be
   applied go to status first, so a pass interrupted after applying still knows what it owns;
5. *apply* every desired child (server-side apply) and delete the ones no longer wanted;
6. *assess* lifecycle state and conditions, and write status only if it changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.rest import ApiException

from pagestream_operator.apply import ChildRef, KubeApi, owned
from pagestream_operator.observe import (
    Assessment,
    LifecycleState,
    Observation,
    Reason,
    SparkAppObservation,
    assess,
    invalid_spec_conditions,
    merge_conditions,
)
from pagestream_operator.render import (
    CHECKPOINT_ANNOTATION,
    PIPELINE_LABEL,
    SPARK_API,
    RenderInput,
    checkpoint_location,
    render_children,
)
from pagestream_operator.spec import DesiredState, SpecError, parse_spec
from pagestream_operator.upgrade import CheckpointRecord, plan_deploy, recover_record

log = logging.getLogger(__name__)

# Set to "paused" on a pipeline to stop reconciling it (children are left as they are).
PAUSE_ANNOTATION = "pagestream.dev/reconcile"

# (event type, reason, message) -> posted as a Kubernetes Event on the pipeline.
EmitFn = Callable[[str, str, str], None]


class ReconcileError(RuntimeError):
    """A step failed in a way that retrying may fix (API errors); status already says why."""


class NamespaceTerminating(RuntimeError):
    """The pipeline's namespace is being deleted: nothing can (or should) be created in it."""


def _terminating(exc: ApiException) -> bool:
    return exc.status == 403 and "being terminated" in (exc.body or "")


@dataclass
class Outcome:
    result: str  # "ok" | "invalid" | "error" | "paused"
    lifecycle_state: LifecycleState | None = None
    # The SparkApplication's resourceVersion as this pass left it: a watch event carrying it
    # is this pass's own write, not news.
    app_resource_version: str | None = None
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _api_error(exc: ApiException) -> str:
    return f"{exc.status} {exc.reason}: {(exc.body or '')[:300]}".strip()


def reconcile(api: KubeApi, pipeline: dict[str, Any], emit: EmitFn) -> Outcome:
    meta = pipeline["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    if meta.get("deletionTimestamp"):
        # Being deleted: the garbage collector removes the children; recreating them would race it.
        return Outcome("ok")
    if (meta.get("annotations") or {}).get(PAUSE_ANNOTATION) == "paused":
        # An operator's escape hatch (as CloudNativePG's reconciliation-loop annotation): hands
        # off this pipeline and its children until the annotation is removed.
        return Outcome("paused")
    generation = int(meta.get("generation") or 1)
    status: dict[str, Any] = dict(pipeline.get("status") or {})
    now = _now()

    # 1. validate
    try:
        spec = parse_spec(pipeline.get("spec") or {})
    except SpecError as exc:
        return _report_invalid(api, pipeline, status, str(exc), generation, now, emit)

    # 2. observe
    app_obj = api.get(SPARK_API, "SparkApplication", namespace, name)
    app = SparkAppObservation.from_object(app_obj)

    # 3. plan
    recorded = CheckpointRecord.from_status(status)
    if recorded is None and app_obj is not None:
        annotations = (app_obj.get("spec") or {}).get("driver", {}).get("annotations") or {}
        recorded = recover_record(spec, annotations, CHECKPOINT_ANNOTATION)
    plan = plan_deploy(spec, generation, recorded)
    inp = RenderInput(name, namespace, spec, plan.checkpoint.epoch)
    desired = render_children(inp)
    desired_refs = [ChildRef.of(c) for c in desired]
    previous_refs = [
        r for r in (ChildRef.from_status(c) for c in status.get("children") or []) if r
    ]
    upgrade = status.get("upgrade")
    running = spec.lifecycle.state is DesiredState.RUNNING
    if plan.is_upgrade and app.has_run and upgrade is None and running:
        upgrade = {"fromSubmissionID": app.submission_id, "startedAt": now}
        emit(
            "Normal",
            Reason.UPGRADE_STARTED.value,
            f"Spec changed ({spec.lifecycle.upgrade_mode.value}): restarting the job with "
            f"checkpoint {checkpoint_location(inp)}",
        )

    # 4. record intent
    checkpoint_status = {
        "epoch": plan.checkpoint.epoch,
        "specFingerprint": plan.checkpoint.spec_fingerprint,
        "location": checkpoint_location(inp),
    }
    intent = {
        "checkpoint": checkpoint_status,
        "upgrade": upgrade,
        "children": [r.to_status() for r in _union(previous_refs, desired_refs)],
    }
    if upgrade is not None and status.get("upgrade") is None:
        intent["lifecycleState"] = LifecycleState.UPGRADING.value
    if any(status.get(k) != v for k, v in intent.items()):
        api.patch_pipeline_status(namespace, name, intent)
        status.update(intent)

    # 5. apply
    outcome = Outcome("ok")
    app_obj, apply_errors = _apply_children(
        api, pipeline, desired, previous_refs, app_obj, outcome, emit
    )

    # 6. assess and record
    app = SparkAppObservation.from_object(app_obj)
    assessment = assess(
        Observation(
            desired_state=spec.lifecycle.state,
            app=app,
            upgrade_from_submission=(upgrade or {}).get("fromSubmissionID"),
            apply_error="; ".join(apply_errors) or None,
        )
    )
    if assessment.upgrade_completed:
        upgrade = None
        emit("Normal", Reason.UPGRADE_COMPLETED.value, f"Submission {app.submission_id} is running")
    kept_children = desired_refs + [
        r for r in previous_refs if r not in desired_refs and apply_errors
    ]
    final = _status(
        status, assessment, app, generation, now, name, upgrade, checkpoint_status, kept_children
    )
    _write_status(api, pipeline, status, final, assessment, emit)
    outcome.lifecycle_state = assessment.lifecycle_state
    if app_obj is not None:
        outcome.app_resource_version = app_obj["metadata"].get("resourceVersion")
    if apply_errors:
        outcome.result = "error"
        raise ReconcileError("; ".join(apply_errors))
    return outcome


def _apply_children(
    api: KubeApi,
    pipeline: dict[str, Any],
    desired: list[dict[str, Any]],
    previous_refs: list[ChildRef],
    app_obj: dict[str, Any] | None,
    outcome: Outcome,
    emit: EmitFn,
) -> tuple[dict[str, Any] | None, list[str]]:
    """Apply every desired child, delete the ones no longer wanted. Returns the
    SparkApplication as applied and the errors; one failing child does not stop the others."""
    namespace = pipeline["metadata"]["namespace"]
    desired_refs = [ChildRef.of(c) for c in desired]
    errors: list[str] = []
    for child in desired:
        ref = ChildRef.of(child)
        try:
            before = (
                app_obj
                if ref.kind == "SparkApplication"
                else api.get(ref.api_version, ref.kind, namespace, ref.name)
            )
            after = api.apply(owned(child, pipeline))
        except ApiException as exc:
            if _terminating(exc):
                raise NamespaceTerminating(namespace) from exc
            errors.append(f"{ref}: {_api_error(exc)}")
            continue
        if ref.kind == "SparkApplication":
            app_obj = after
        if before is None:
            outcome.created.append(str(ref))
            emit("Normal", Reason.CHILD_CREATED.value, f"Created {ref}")
        elif _changed(before, after):
            outcome.updated.append(str(ref))
            emit("Normal", Reason.CHILD_UPDATED.value, f"Updated {ref} to the rendered spec")
    for ref in previous_refs:
        if ref in desired_refs:
            continue
        try:
            if api.delete(ref, namespace):
                outcome.deleted.append(str(ref))
                emit("Normal", Reason.CHILD_DELETED.value, f"Deleted {ref}: no longer wanted")
        except ApiException as exc:
            errors.append(f"delete {ref}: {_api_error(exc)}")
    return app_obj, errors


def _changed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Did our apply change the object? Custom resources count spec changes in
    ``metadata.generation`` (a status write by their controller does not bump it); kinds without
    a generation fall back to the resourceVersion."""
    b, a = before["metadata"], after["metadata"]
    if "generation" in b and "generation" in a:
        return bool(b["generation"] != a["generation"] or b.get("labels") != a.get("labels"))
    return bool(b.get("resourceVersion") != a.get("resourceVersion"))


def _union(first: list[ChildRef], second: list[ChildRef]) -> list[ChildRef]:
    return first + [r for r in second if r not in first]


def _status(
    old: dict[str, Any],
    assessment: Assessment,
    app: SparkAppObservation,
    generation: int,
    now: str,
    name: str,
    upgrade: dict[str, Any] | None,
    checkpoint: dict[str, Any],
    children: list[ChildRef],
) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "lifecycleState": assessment.lifecycle_state.value,
        "conditions": merge_conditions(
            old.get("conditions") or [], assessment.conditions, now=now, generation=generation
        ),
        "sparkApplication": {
            "name": name,
            "state": app.state,
            "errorMessage": app.error_message,
            "submissionID": app.submission_id,
        },
        "checkpoint": checkpoint,
        "upgrade": upgrade,
        "replicas": app.running_executors,
        "selector": f"{PIPELINE_LABEL}={name},spark-role=executor",
        "children": [r.to_status() for r in children],
    }


def _write_status(
    api: KubeApi,
    pipeline: dict[str, Any],
    old: dict[str, Any],
    new: dict[str, Any],
    assessment: Assessment,
    emit: EmitFn,
) -> None:
    meta = pipeline["metadata"]
    changed = {k: v for k, v in new.items() if old.get(k) != v}
    if not changed:
        return
    if "conditions" in changed and _same_conditions(old.get("conditions"), new["conditions"]):
        # Only lastTransitionTime bookkeeping would differ; nothing to tell anyone.
        changed.pop("conditions")
        if not changed:
            return
    api.patch_pipeline_status(meta["namespace"], meta["name"], changed)
    previous_state = old.get("lifecycleState")
    if previous_state != new["lifecycleState"]:
        ready = next(c for c in assessment.conditions if c.type == "Ready")
        kind = "Warning" if assessment.lifecycle_state is LifecycleState.FAILED else "Normal"
        emit(
            kind,
            ready.reason,
            f"{previous_state or 'new'} -> {new['lifecycleState']}: {ready.message}",
        )


def _same_conditions(old: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> bool:
    def key(conds: list[dict[str, Any]] | None) -> list[tuple[Any, ...]]:
        return sorted(
            (
                c.get("type"),
                c.get("status"),
                c.get("reason"),
                c.get("message"),
                c.get("observedGeneration"),
            )
            for c in conds or []
        )

    return key(old) == key(new)


def _report_invalid(
    api: KubeApi,
    pipeline: dict[str, Any],
    status: dict[str, Any],
    message: str,
    generation: int,
    now: str,
    emit: EmitFn,
) -> Outcome:
    meta = pipeline["metadata"]
    conditions = merge_conditions(
        status.get("conditions") or [],
        invalid_spec_conditions(message),
        now=now,
        generation=generation,
    )
    new = {"observedGeneration": generation, "conditions": conditions}
    if not status.get("lifecycleState"):
        new["lifecycleState"] = LifecycleState.CREATED.value
    if (
        not _same_conditions(status.get("conditions"), conditions)
        or status.get("observedGeneration") != generation
    ):
        api.patch_pipeline_status(meta["namespace"], meta["name"], new)
        emit("Warning", Reason.INVALID_SPEC.value, message)
    return Outcome("invalid", LifecycleState(status.get("lifecycleState") or "CREATED"))
