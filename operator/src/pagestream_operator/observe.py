"""Observing: what the children report becomes the pipeline's lifecycle state and conditions.

Pure functions only (a unit test inspects the imports). The observer changes nothing; the
reconciler writes what :func:`assess` returns. States follow the Flink Kubernetes Operator's
job lifecycle. Conditions, each with a CamelCase reason:

- ``Ready`` (the desired state is reached), ``Progressing`` (the operator or the Spark operator
  is working towards it) and ``Degraded`` (something is wrong that will not fix itself by
  waiting), as before;
- ``Reconciling`` and ``Stalled``, the two abnormal-true conditions sigs.k8s.io/cli-utils'
  kstatus reads (pkg/kstatus/status/generic.go, checkGenericProperties): ``Reconciling`` True
  is kstatus' InProgress, ``Stalled`` True its Failed; with both False kstatus falls back to
  ``Ready`` (True: Current). :func:`kstatus_conditions` derives them from ``Progressing`` and
  ``Degraded``, and never sets both True (kstatus would take the first one listed).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pagestream_operator.spec import DesiredState


class LifecycleState(StrEnum):
    CREATED = "CREATED"
    DEPLOYING = "DEPLOYING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    FAILED = "FAILED"
    UPGRADING = "UPGRADING"


class Reason(StrEnum):
    """Condition reasons, and the reasons of the Events the operator posts."""

    CREATING = "Creating"
    DEPLOYING = "Deploying"
    RESUMING = "Resuming"
    RUNNING = "Running"
    SUSPENDING = "Suspending"
    SUSPENDED = "Suspended"
    UPGRADING = "Upgrading"
    UPGRADE_STARTED = "UpgradeStarted"
    UPGRADE_COMPLETED = "UpgradeCompleted"
    SPARK_APPLICATION_FAILED = "SparkApplicationFailed"
    SUBMISSION_FAILED = "SubmissionFailed"
    JOB_COMPLETED = "JobCompleted"
    INVALID_SPEC = "InvalidSpec"
    APPLY_FAILED = "ApplyFailed"
    CHILD_CREATED = "ChildCreated"
    CHILD_UPDATED = "ChildUpdated"
    CHILD_DELETED = "ChildDeleted"
    AS_EXPECTED = "AsExpected"


# What to do about each reason Stalled can be True for; its message ends with it.
# Keyed by str: a Reason is its value, and a condition's reason is a str.
REMEDIES: dict[str, str] = {
    Reason.SPARK_APPLICATION_FAILED: (
        "Read the driver's log and the SparkApplication's events for the cause; once fixed, "
        "the Spark operator's restart policy resubmits it, or bump "
        "spec.lifecycle.restartNonce to resubmit now."
    ),
    Reason.SUBMISSION_FAILED: (
        "The Spark operator could not submit the job: check the SparkApplication's events "
        "(image, service account, quotas), fix the cause and bump spec.lifecycle.restartNonce "
        "to resubmit."
    ),
    Reason.JOB_COMPLETED: (
        "If the Spark operator does not restart it, read the driver's log for why the query "
        "stopped and bump spec.lifecycle.restartNonce to resubmit."
    ),
    Reason.INVALID_SPEC: (
        "Fix the field named and apply the pipeline again; until then the last valid spec "
        "keeps running."
    ),
    Reason.APPLY_FAILED: (
        "Check the operator's RBAC and that the child's CRD is installed; the operator retries "
        "the pass with backoff."
    ),
}


# SparkApplication status.applicationState.state values (Kubeflow Spark operator v2).
SUBMITTED = "SUBMITTED"
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
SUBMISSION_FAILED = "SUBMISSION_FAILED"
PENDING_RERUN = "PENDING_RERUN"
INVALIDATING = "INVALIDATING"
SUCCEEDING = "SUCCEEDING"
FAILING = "FAILING"
SUSPENDING = "SUSPENDING"
SUSPENDED = "SUSPENDED"
RESUMING = "RESUMING"
UNKNOWN = "UNKNOWN"
NEW = ""  # created, not yet picked up by the Spark operator


@dataclass(frozen=True)
class SparkAppObservation:
    exists: bool
    state: str = NEW
    error_message: str = ""
    submission_id: str = ""
    running_executors: int = 0

    @classmethod
    def from_object(cls, obj: dict[str, Any] | None) -> SparkAppObservation:
        if obj is None:
            return cls(exists=False)
        status = obj.get("status") or {}
        app_state = status.get("applicationState") or {}
        executors = status.get("executorState") or {}
        return cls(
            exists=True,
            state=str(app_state.get("state") or NEW),
            error_message=str(app_state.get("errorMessage") or ""),
            submission_id=str(status.get("submissionID") or ""),
            running_executors=sum(1 for s in executors.values() if s == RUNNING),
        )

    @property
    def has_run(self) -> bool:
        """Submitted at least once and not parked: a spec change to it is a restart."""
        return self.exists and self.state not in (NEW, SUSPENDED)


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


@dataclass(frozen=True)
class Observation:
    desired_state: DesiredState
    app: SparkAppObservation
    upgrade_from_submission: str | None = None  # an upgrade is in progress
    apply_error: str | None = None


@dataclass(frozen=True)
class Assessment:
    lifecycle_state: LifecycleState
    conditions: tuple[Condition, ...]
    upgrade_completed: bool = False


def _conditions(
    ready: tuple[bool, Reason, str],
    progressing: tuple[bool, Reason, str],
    degraded: tuple[bool, Reason, str],
) -> tuple[Condition, ...]:
    def cond(kind: str, value: tuple[bool, Reason, str]) -> Condition:
        ok, reason, message = value
        return Condition(kind, "True" if ok else "False", reason.value, message)

    return _with_kstatus(
        cond("Ready", ready), cond("Progressing", progressing), cond("Degraded", degraded)
    )


def kstatus_conditions(progressing: Condition, degraded: Condition) -> tuple[Condition, Condition]:
    """``Reconciling`` and ``Stalled`` from ``Progressing`` and ``Degraded``.

    ``Stalled`` is ``Degraded``, its message followed by what to do. ``Reconciling`` is
    ``Progressing`` while nothing is stalled: a stalled pipeline waits for someone, so kstatus
    must report it Failed, not InProgress (the Spark operator may still be restarting a
    completed job, and ``Progressing`` keeps saying so)."""
    if degraded.status == "True":
        remedy = REMEDIES.get(degraded.reason)
        stalled = Condition(
            "Stalled",
            "True",
            degraded.reason,
            f"{degraded.message} {remedy}" if remedy else degraded.message,
        )
        reconciling = Condition(
            "Reconciling",
            "False",
            degraded.reason,
            "Not reconciling: the pipeline is stalled until its cause is fixed (see Stalled).",
        )
        return reconciling, stalled
    stalled = Condition("Stalled", degraded.status, degraded.reason, degraded.message)
    reconciling = Condition(
        "Reconciling", progressing.status, progressing.reason, progressing.message
    )
    return reconciling, stalled


def _with_kstatus(
    ready: Condition, progressing: Condition, degraded: Condition
) -> tuple[Condition, ...]:
    return (ready, progressing, degraded, *kstatus_conditions(progressing, degraded))


def _fine() -> tuple[bool, Reason, str]:
    return (False, Reason.AS_EXPECTED, "No problems observed.")


def _settled() -> tuple[bool, Reason, str]:
    return (False, Reason.AS_EXPECTED, "Nothing is being rolled out.")


def assess(obs: Observation) -> Assessment:
    """Lifecycle state and conditions from what was observed. Order matters: failures win over
    everything, then the desired state decides what "done" means."""
    assessment = _assess_app(obs)
    if not obs.apply_error:
        return assessment
    progressing = next(c for c in assessment.conditions if c.type == "Progressing")
    message = f"Applying a child failed: {obs.apply_error}"
    return Assessment(
        assessment.lifecycle_state,
        _with_kstatus(
            Condition("Ready", "False", Reason.APPLY_FAILED.value, message),
            progressing,
            Condition("Degraded", "True", Reason.APPLY_FAILED.value, message),
        ),
        assessment.upgrade_completed,
    )


def _assess_app(obs: Observation) -> Assessment:
    app, desired = obs.app, obs.desired_state
    state = app.state
    L = LifecycleState

    if not app.exists:
        msg = "The SparkApplication is being created."
        return Assessment(
            L.CREATED,
            _conditions((False, Reason.CREATING, msg), (True, Reason.CREATING, msg), _fine()),
        )

    if state in (FAILED, FAILING, SUBMISSION_FAILED):
        reason = (
            Reason.SUBMISSION_FAILED
            if state == SUBMISSION_FAILED
            else Reason.SPARK_APPLICATION_FAILED
        )
        msg = f"The SparkApplication is {state}" + (
            f": {app.error_message}" if app.error_message else "."
        )
        return Assessment(
            L.FAILED,
            _conditions((False, reason, msg), (False, reason, msg), (True, reason, msg)),
        )
    if state in (COMPLETED, SUCCEEDING):
        msg = (
            f"The SparkApplication is {state}, but a streaming job should never finish; the "
            "Spark operator restarts it (restartPolicy Always)."
        )
        r = Reason.JOB_COMPLETED
        return Assessment(L.FAILED, _conditions((False, r, msg), (True, r, msg), (True, r, msg)))

    if desired is DesiredState.SUSPENDED:
        if state in (SUSPENDED, NEW):
            msg = "The job is suspended; its checkpoint is kept."
            r = Reason.SUSPENDED
            return Assessment(L.SUSPENDED, _conditions((True, r, msg), _settled(), _fine()))
        msg = f"Suspending: the SparkApplication is {state}."
        current = L.RUNNING if state == RUNNING else L.DEPLOYING
        r = Reason.SUSPENDING
        return Assessment(current, _conditions((False, r, msg), (True, r, msg), _fine()))

    if obs.upgrade_from_submission is not None:
        if state == RUNNING and app.submission_id != obs.upgrade_from_submission:
            msg = f"Upgraded: submission {app.submission_id} is running."
            r = Reason.RUNNING
            return Assessment(
                L.RUNNING,
                _conditions((True, r, msg), _settled(), _fine()),
                upgrade_completed=True,
            )
        msg = f"Upgrading: waiting for a new submission to run (SparkApplication is {state or 'new'})."
        r = Reason.UPGRADING
        return Assessment(L.UPGRADING, _conditions((False, r, msg), (True, r, msg), _fine()))

    if state == RUNNING:
        msg = f"The job is running (submission {app.submission_id or 'unknown'})."
        r = Reason.RUNNING
        return Assessment(L.RUNNING, _conditions((True, r, msg), _settled(), _fine()))
    if state == INVALIDATING:
        msg = "The Spark operator is replacing the application after a spec change."
        r = Reason.UPGRADING
        return Assessment(L.UPGRADING, _conditions((False, r, msg), (True, r, msg), _fine()))
    if state in (SUSPENDED, SUSPENDING, RESUMING):
        msg = f"Resuming: the SparkApplication is {state}."
        r = Reason.RESUMING
        return Assessment(L.DEPLOYING, _conditions((False, r, msg), (True, r, msg), _fine()))
    # NEW, SUBMITTED, PENDING_RERUN, UNKNOWN and states this version does not know yet.
    msg = f"Deploying: the SparkApplication is {state or 'not yet submitted'}."
    r = Reason.DEPLOYING
    return Assessment(L.DEPLOYING, _conditions((False, r, msg), (True, r, msg), _fine()))


def merge_conditions(
    previous: list[dict[str, Any]],
    current: tuple[Condition, ...],
    *,
    now: str,
    generation: int,
) -> list[dict[str, Any]]:
    """Conditions as written to status: ``lastTransitionTime`` moves only when the status of a
    condition changes, as metav1.Condition requires."""
    before = {c.get("type"): c for c in previous}
    merged = []
    for cond in current:
        old = before.get(cond.type)
        if old is None or old.get("status") != cond.status:
            transition = now
        else:
            transition = old["lastTransitionTime"]
        merged.append(
            {
                "type": cond.type,
                "status": cond.status,
                "reason": cond.reason,
                "message": cond.message,
                "observedGeneration": generation,
                "lastTransitionTime": transition,
            }
        )
    return merged


def invalid_spec_conditions(message: str) -> tuple[Condition, ...]:
    """The spec can never be deployed: the last valid spec keeps running (nothing is applied)."""
    r = Reason.INVALID_SPEC
    text = f"The spec is invalid and was not applied: {message}"
    return _with_kstatus(
        Condition("Ready", "False", r.value, text),
        Condition("Progressing", "False", r.value, text),
        Condition("Degraded", "True", r.value, text),
    )
