"""One reconcile pass: an ordered chain of small steps over one pass context.

Each step does one thing and either lets the pass go on (it returns :data:`CONTINUE`) or ends
it with an :class:`Outcome`, as CloudNativePG's cluster controller does. The steps, in the
order :data:`STEPS` runs them:

1. ``skip_deleted``: a pipeline being deleted is left to the garbage collector;
2. ``skip_paused``: the ``pagestream.dev/reconcile: paused`` annotation hands it off;
3. ``validate`` the spec; an invalid spec is reported in status and nothing is applied (the
   last valid spec keeps running);
4. ``observe_application``: read the SparkApplication (nothing is changed);
5. ``plan``: choose the checkpoint epoch (``upgradeMode``), decide whether this is an upgrade,
   and render the children (:mod:`.render`, pure);
6. ``start_upgrade``: an upgrade of a job that has run gets a marker, and an Event naming the
   fields changed since the last reconciled spec;
7. ``record_intent`` before acting: the plan, the spec it is for, the upgrade marker and the
   children about to be applied go to status first, so a pass interrupted after applying still knows what it owns;
8. ``apply_children``: server-side apply of every rendered child, owned by the pipeline
   (:mod:`.apply`), and deletion of the ones no longer wanted;
9. ``assess`` lifecycle state and conditions from what the SparkApplication reports
   (:func:`.observe.assess`, pure);
10. ``record_status``: write status only if it changed, with an Event on a lifecycle change;
11. ``fail_on_apply_errors``: a failed apply makes the pass an error, so it is retried.

Each pass is level-based and idempotent: it recomputes everything from the pipeline and its
children as they are now, so running it twice, or after a crash at any point, converges to the
same result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from kubernetes.client.exceptions import ApiException

from pagestream_operator.apply import ChildRef, KubeApi, owned
from pagestream_operator.observe import (
    Assessment,
    LifecycleState,
    Observation,
    Reason,
    SparkAppObservation,
    invalid_spec_conditions,
    merge_conditions,
)
from pagestream_operator.observe import assess as assess_observation
from pagestream_operator.render import (
    CHECKPOINT_ANNOTATION,
    MONITORING_API,
    PIPELINE_LABEL,
    SPARK_API,
    RenderInput,
    checkpoint_location,
    render_children,
)
from pagestream_operator.spec import (
    DesiredState,
    MonitorKind,
    PipelineSpec,
    SpecError,
    parse_spec,
)
from pagestream_operator.status import (
    CheckpointStatus,
    ConditionStatus,
    PipelineStatus,
    SparkApplicationStatus,
    UpgradeStatus,
)
from pagestream_operator.upgrade import (
    CheckpointRecord,
    DeployPlan,
    describe_changes,
    last_reconciled_spec,
    plan_deploy,
    reconciled_spec,
    recover_record,
)

log = logging.getLogger(__name__)

# Set to "paused" on a pipeline to stop reconciling it (children are left as they are).
PAUSE_ANNOTATION = "pagestream.dev/reconcile"

# (event type, reason, message) -> posted as a Kubernetes Event on the pipeline.
EmitFn = Callable[[str, str, str], None]


class ReconcileError(RuntimeError):
    """A step failed in a way that retrying may fix (API errors); status already says why.
    ``outcome`` is what the pass recorded in status before failing (its lifecycle state and
    Ready reason, for the metrics), when it got that far."""

    def __init__(self, message: str, outcome: Outcome | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome


class NamespaceTerminating(RuntimeError):
    """The pipeline's namespace is being deleted: nothing can (or should) be created in it."""


def _terminating(exc: ApiException) -> bool:
    return exc.status == 403 and "being terminated" in (exc.body or "")


@dataclass
class Outcome:
    result: str  # "ok" | "invalid" | "error" | "paused"
    lifecycle_state: LifecycleState | None = None
    # The reason of the Ready condition the pass recorded (a Reason value), with the state.
    reason: str | None = None
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


@dataclass(frozen=True)
class Planned:
    """What ``plan`` decided from the valid spec; it holds for the rest of the pass."""

    spec: PipelineSpec
    deploy: DeployPlan
    inp: RenderInput
    children: list[dict[str, Any]]  # rendered, in apply order
    wanted: list[ChildRef]  # the rendered children's refs
    previous: list[ChildRef]  # the children earlier passes recorded in status
    checkpoint: CheckpointStatus
    spec_record: str  # status lastReconciledSpec for ``spec``


@dataclass
class PassContext:
    """One pass's inputs and what its steps found so far. Steps read and set these fields
    (and nothing else), in the order of :data:`STEPS`."""

    api: KubeApi
    pipeline: dict[str, Any]
    emit: EmitFn
    now: str
    # status as it is on the server: the pipeline's, then updated with every patch this pass
    # writes, so each write compares with what is there.
    status: dict[str, Any]
    outcome: Outcome = field(default_factory=lambda: Outcome("ok"))
    spec: PipelineSpec | None = None
    # The SparkApplication as last seen: as observed, then as the apply returned it.
    app: dict[str, Any] | None = None
    planned: Planned | None = None
    upgrade: UpgradeStatus | None = None
    apply_errors: list[str] = field(default_factory=list)
    assessment: Assessment | None = None

    @classmethod
    def start(cls, api: KubeApi, pipeline: dict[str, Any], emit: EmitFn) -> PassContext:
        status = dict(pipeline.get("status") or {})
        return cls(api, pipeline, emit, _now(), status, upgrade=UpgradeStatus.from_status(status))

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = self.pipeline["metadata"]
        return meta

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def namespace(self) -> str:
        return str(self.meta["namespace"])

    @property
    def generation(self) -> int:
        return int(self.meta.get("generation") or 1)

    # A step that needs what an earlier step sets reads it through these: running the steps
    # out of order is a bug, and fails loudly rather than with an AttributeError on None.

    def require_spec(self) -> PipelineSpec:
        if self.spec is None:
            raise RuntimeError("validate has not run")
        return self.spec

    def require_plan(self) -> Planned:
        if self.planned is None:
            raise RuntimeError("plan has not run")
        return self.planned

    def require_assessment(self) -> Assessment:
        if self.assessment is None:
            raise RuntimeError("assess has not run")
        return self.assessment

    def patch_status(self, patch: PipelineStatus) -> None:
        body = patch.to_patch()
        self.api.patch_pipeline_status(self.namespace, self.name, body)
        self.status.update(body)


# A step returns CONTINUE to let the pass go on, or the Outcome that ends it.
CONTINUE: Final = None
Step = Callable[[PassContext], Outcome | None]


def skip_deleted(ctx: PassContext) -> Outcome | None:
    if ctx.meta.get("deletionTimestamp"):
        # Being deleted: the garbage collector removes the children; recreating them would race it.
        return Outcome("ok")
    return CONTINUE


def skip_paused(ctx: PassContext) -> Outcome | None:
    if (ctx.meta.get("annotations") or {}).get(PAUSE_ANNOTATION) == "paused":
        # An operator's escape hatch (as CloudNativePG's reconciliation-loop annotation): hands
        # off this pipeline and its children until the annotation is removed.
        return Outcome("paused")
    return CONTINUE


def validate(ctx: PassContext) -> Outcome | None:
    try:
        ctx.spec = parse_spec(ctx.pipeline.get("spec") or {})
    except SpecError as exc:
        return _report_invalid(ctx, str(exc))
    return CONTINUE


def _report_invalid(ctx: PassContext, message: str) -> Outcome:
    """Conditions say why; nothing else in status changes, so the last valid spec's plan and
    children stay recorded. Reported (and posted as an Event) once per generation."""
    conditions = merge_conditions(
        ctx.status.get("conditions") or [],
        invalid_spec_conditions(message),
        now=ctx.now,
        generation=ctx.generation,
    )
    new = PipelineStatus(
        observed_generation=ctx.generation,
        conditions=[ConditionStatus.model_validate(c) for c in conditions],
    )
    if not ctx.status.get("lifecycleState"):
        new = new.model_copy(update={"lifecycle_state": LifecycleState.CREATED})
    if (
        not _same_conditions(ctx.status.get("conditions"), conditions)
        or ctx.status.get("observedGeneration") != ctx.generation
    ):
        ctx.api.patch_pipeline_status(ctx.namespace, ctx.name, new.to_patch())
        ctx.emit("Warning", Reason.INVALID_SPEC.value, message)
    return Outcome(
        "invalid",
        LifecycleState(ctx.status.get("lifecycleState") or "CREATED"),
        Reason.INVALID_SPEC.value,
    )


def observe_application(ctx: PassContext) -> Outcome | None:
    ctx.app = ctx.api.get(SPARK_API, "SparkApplication", ctx.namespace, ctx.name)
    return CONTINUE


def plan(ctx: PassContext) -> Outcome | None:
    spec = ctx.require_spec()
    recorded = CheckpointRecord.from_status(ctx.status)
    if recorded is None and ctx.app is not None:
        # status was lost (a restore from backup): the running job's checkpoint is kept.
        annotations = (ctx.app.get("spec") or {}).get("driver", {}).get("annotations") or {}
        recorded = recover_record(spec, annotations, CHECKPOINT_ANNOTATION)
    deploy = plan_deploy(spec, ctx.generation, recorded)
    inp = RenderInput(
        ctx.name,
        ctx.namespace,
        spec,
        deploy.checkpoint.epoch,
        pod_monitors_served=spec.monitoring.monitor is MonitorKind.AUTO
        and ctx.api.serves(MONITORING_API, "PodMonitor"),
    )
    children = render_children(inp)
    ctx.planned = Planned(
        spec=spec,
        deploy=deploy,
        inp=inp,
        children=children,
        wanted=[ChildRef.of(c) for c in children],
        previous=[
            r for r in (ChildRef.from_status(c) for c in ctx.status.get("children") or []) if r
        ],
        checkpoint=CheckpointStatus(
            epoch=deploy.checkpoint.epoch,
            spec_fingerprint=deploy.checkpoint.spec_fingerprint,
            location=checkpoint_location(inp),
        ),
        spec_record=reconciled_spec(spec),
    )
    return CONTINUE


def start_upgrade(ctx: PassContext) -> Outcome | None:
    planned = ctx.require_plan()
    app = SparkAppObservation.from_object(ctx.app)
    running = planned.spec.lifecycle.state is DesiredState.RUNNING
    # Only a job that has run is upgraded (one never submitted just starts with the new spec),
    # and only once per rollout: a marker already there is the same upgrade, still going.
    if planned.deploy.is_upgrade and app.has_run and ctx.upgrade is None and running:
        ctx.upgrade = UpgradeStatus(from_submission_id=app.submission_id, started_at=ctx.now)
        ctx.emit(
            "Normal",
            Reason.UPGRADE_STARTED.value,
            f"Spec changed ({planned.spec.lifecycle.upgrade_mode.value}): "
            f"{describe_changes(last_reconciled_spec(ctx.status), planned.spec)}; "
            f"restarting the job with checkpoint {planned.checkpoint.location}",
        )
    return CONTINUE


def record_intent(ctx: PassContext) -> Outcome | None:
    planned = ctx.require_plan()
    intent = PipelineStatus(
        checkpoint=planned.checkpoint,
        upgrade=ctx.upgrade,
        # Children about to be applied, and those about to be deleted (forgotten only once
        # they are gone), so a crash in between leaves nothing unowned.
        children=[r.to_status() for r in _union(planned.previous, planned.wanted)],
        # Recorded with the checkpoint's fingerprint, so the two always describe the same spec.
        last_reconciled_spec=planned.spec_record,
    )
    if ctx.upgrade is not None and ctx.status.get("upgrade") is None:
        # A new upgrade shows at once, not only after the (slow) apply.
        intent = intent.model_copy(update={"lifecycle_state": LifecycleState.UPGRADING})
    if any(ctx.status.get(k) != v for k, v in intent.to_patch().items()):
        ctx.patch_status(intent)
    return CONTINUE


def apply_children(ctx: PassContext) -> Outcome | None:
    """Apply every rendered child and delete the ones no longer wanted; one failing child does
    not stop the others (its error goes to ``apply_errors``)."""
    planned = ctx.require_plan()
    for child in planned.children:
        _apply_child(ctx, child)
    for ref in planned.previous:
        if ref not in planned.wanted:
            _delete_child(ctx, ref)
    return CONTINUE


def _apply_child(ctx: PassContext, child: dict[str, Any]) -> None:
    ref = ChildRef.of(child)
    try:
        before = (
            ctx.app
            if ref.kind == "SparkApplication"
            else ctx.api.get(ref.api_version, ref.kind, ctx.namespace, ref.name)
        )
        after = ctx.api.apply(owned(child, ctx.pipeline))
    except ApiException as exc:
        if _terminating(exc):
            raise NamespaceTerminating(ctx.namespace) from exc
        ctx.apply_errors.append(f"{ref}: {_api_error(exc)}")
        return
    if ref.kind == "SparkApplication":
        ctx.app = after
    if before is None:
        ctx.outcome.created.append(str(ref))
        ctx.emit("Normal", Reason.CHILD_CREATED.value, f"Created {ref}")
    elif _changed(before, after):
        ctx.outcome.updated.append(str(ref))
        ctx.emit("Normal", Reason.CHILD_UPDATED.value, f"Updated {ref} to the rendered spec")


def _delete_child(ctx: PassContext, ref: ChildRef) -> None:
    try:
        if ctx.api.delete(ref, ctx.namespace):
            ctx.outcome.deleted.append(str(ref))
            ctx.emit("Normal", Reason.CHILD_DELETED.value, f"Deleted {ref}: no longer wanted")
    except ApiException as exc:
        ctx.apply_errors.append(f"delete {ref}: {_api_error(exc)}")


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


def assess(ctx: PassContext) -> Outcome | None:
    app = SparkAppObservation.from_object(ctx.app)
    ctx.assessment = assess_observation(
        Observation(
            desired_state=ctx.require_plan().spec.lifecycle.state,
            app=app,
            upgrade_from_submission=ctx.upgrade.from_submission_id if ctx.upgrade else None,
            apply_error="; ".join(ctx.apply_errors) or None,
        )
    )
    if ctx.assessment.upgrade_completed:
        ctx.upgrade = None
        ctx.emit(
            "Normal", Reason.UPGRADE_COMPLETED.value, f"Submission {app.submission_id} is running"
        )
    return CONTINUE


def record_status(ctx: PassContext) -> Outcome | None:
    planned, assessment = ctx.require_plan(), ctx.require_assessment()
    app = SparkAppObservation.from_object(ctx.app)
    # A child that could not be deleted stays recorded, so the next pass tries again.
    kept = planned.wanted + [
        r for r in planned.previous if r not in planned.wanted and ctx.apply_errors
    ]
    conditions = merge_conditions(
        ctx.status.get("conditions") or [],
        assessment.conditions,
        now=ctx.now,
        generation=ctx.generation,
    )
    final = PipelineStatus(
        observed_generation=ctx.generation,
        lifecycle_state=assessment.lifecycle_state,
        conditions=[ConditionStatus.model_validate(c) for c in conditions],
        spark_application=SparkApplicationStatus(
            name=ctx.name,
            state=app.state,
            error_message=app.error_message,
            submission_id=app.submission_id,
        ),
        checkpoint=planned.checkpoint,
        upgrade=ctx.upgrade,
        replicas=app.running_executors,
        selector=f"{PIPELINE_LABEL}={ctx.name},spark-role=executor",
        children=[r.to_status() for r in kept],
        last_reconciled_spec=planned.spec_record,
    )
    _write_status(ctx, final.to_patch(), assessment)
    ctx.outcome.lifecycle_state = assessment.lifecycle_state
    ctx.outcome.reason = next(c for c in assessment.conditions if c.type == "Ready").reason
    if ctx.app is not None:
        ctx.outcome.app_resource_version = ctx.app["metadata"].get("resourceVersion")
    return CONTINUE


def _write_status(ctx: PassContext, new: dict[str, Any], assessment: Assessment) -> None:
    old = ctx.status
    changed = {k: v for k, v in new.items() if old.get(k) != v}
    if not changed:
        return
    if "conditions" in changed and _same_conditions(old.get("conditions"), new["conditions"]):
        # Only lastTransitionTime bookkeeping would differ; nothing to tell anyone.
        changed.pop("conditions")
        if not changed:
            return
    ctx.api.patch_pipeline_status(ctx.namespace, ctx.name, changed)
    previous_state = old.get("lifecycleState")
    if previous_state != new["lifecycleState"]:
        ready = next(c for c in assessment.conditions if c.type == "Ready")
        kind = "Warning" if assessment.lifecycle_state is LifecycleState.FAILED else "Normal"
        ctx.emit(
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


def fail_on_apply_errors(ctx: PassContext) -> Outcome | None:
    if ctx.apply_errors:
        # status already says what failed; raising makes kopf retry the pass.
        ctx.outcome.result = "error"
        raise ReconcileError("; ".join(ctx.apply_errors), ctx.outcome)
    return ctx.outcome


STEPS: Final[tuple[Step, ...]] = (
    skip_deleted,
    skip_paused,
    validate,
    observe_application,
    plan,
    start_upgrade,
    record_intent,
    apply_children,
    assess,
    record_status,
    fail_on_apply_errors,
)


def reconcile(api: KubeApi, pipeline: dict[str, Any], emit: EmitFn) -> Outcome:
    ctx = PassContext.start(api, pipeline, emit)
    for step in STEPS:
        outcome = step(ctx)
        if outcome is not None:
            return outcome
    return ctx.outcome
