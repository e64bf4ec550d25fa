"""What the SparkApplication reports becomes the pipeline's lifecycle state and conditions."""

from __future__ import annotations

import pytest

from pagestream_operator.observe import (
    Condition,
    LifecycleState,
    Observation,
    SparkAppObservation,
    assess,
    invalid_spec_conditions,
    kstatus_conditions,
    merge_conditions,
)
from pagestream_operator.spec import DesiredState

RUN, SUSP = DesiredState.RUNNING, DesiredState.SUSPENDED
L = LifecycleState


def app(state: str | None, submission: str = "s1", **status: object) -> dict:
    body: dict = {"metadata": {"name": "p"}, "spec": {}}
    if state is not None:
        body["status"] = {
            "applicationState": {"state": state},
            "submissionID": submission,
            **status,
        }
    return body


def conds(assessment) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {c.type: (c.status, c.reason) for c in assessment.conditions}


@pytest.mark.parametrize(
    ("desired", "state", "lifecycle", "ready", "progressing", "degraded"),
    [
        (RUN, None, L.DEPLOYING, "False", "True", "False"),
        (RUN, "SUBMITTED", L.DEPLOYING, "False", "True", "False"),
        (RUN, "PENDING_RERUN", L.DEPLOYING, "False", "True", "False"),
        (RUN, "RUNNING", L.RUNNING, "True", "False", "False"),
        (RUN, "INVALIDATING", L.UPGRADING, "False", "True", "False"),
        (RUN, "FAILED", L.FAILED, "False", "False", "True"),
        (RUN, "SUBMISSION_FAILED", L.FAILED, "False", "False", "True"),
        (RUN, "FAILING", L.FAILED, "False", "False", "True"),
        (RUN, "COMPLETED", L.FAILED, "False", "True", "True"),
        (RUN, "SUSPENDED", L.DEPLOYING, "False", "True", "False"),  # resuming
        (RUN, "RESUMING", L.DEPLOYING, "False", "True", "False"),
        (RUN, "UNKNOWN", L.DEPLOYING, "False", "True", "False"),
        (SUSP, None, L.SUSPENDED, "True", "False", "False"),
        (SUSP, "SUSPENDED", L.SUSPENDED, "True", "False", "False"),
        (SUSP, "SUSPENDING", L.DEPLOYING, "False", "True", "False"),
        (SUSP, "RUNNING", L.RUNNING, "False", "True", "False"),
        (SUSP, "FAILED", L.FAILED, "False", "False", "True"),
    ],
)
def test_spark_application_state_maps_to_lifecycle_and_conditions(
    desired: DesiredState,
    state: str | None,
    lifecycle: LifecycleState,
    ready: str,
    progressing: str,
    degraded: str,
) -> None:
    result = assess(Observation(desired, SparkAppObservation.from_object(app(state))))
    assert result.lifecycle_state is lifecycle
    c = conds(result)
    assert (c["Ready"][0], c["Progressing"][0], c["Degraded"][0]) == (ready, progressing, degraded)
    assert all(cond.reason and cond.message for cond in result.conditions)


def test_no_spark_application_yet_is_created() -> None:
    result = assess(Observation(RUN, SparkAppObservation.from_object(None)))
    assert result.lifecycle_state is L.CREATED
    assert conds(result)["Progressing"] == ("True", "Creating")


def test_failure_message_carries_the_spark_error() -> None:
    body = app("FAILED")
    body["status"]["applicationState"]["errorMessage"] = "driver OOMKilled"
    result = assess(Observation(RUN, SparkAppObservation.from_object(body)))
    ready = next(c for c in result.conditions if c.type == "Ready")
    assert ready.reason == "SparkApplicationFailed"
    assert "driver OOMKilled" in ready.message


def test_an_upgrade_ends_only_when_a_new_submission_runs() -> None:
    still_old = SparkAppObservation.from_object(app("RUNNING", submission="old"))
    during = assess(Observation(RUN, still_old, upgrade_from_submission="old"))
    assert during.lifecycle_state is L.UPGRADING
    assert not during.upgrade_completed
    submitted = SparkAppObservation.from_object(app("SUBMITTED", submission="new"))
    assert assess(Observation(RUN, submitted, upgrade_from_submission="old")).lifecycle_state is (
        L.UPGRADING
    )
    new = SparkAppObservation.from_object(app("RUNNING", submission="new"))
    done = assess(Observation(RUN, new, upgrade_from_submission="old"))
    assert done.lifecycle_state is L.RUNNING
    assert done.upgrade_completed


def test_an_apply_error_degrades_whatever_the_job_does() -> None:
    running = SparkAppObservation.from_object(app("RUNNING"))
    result = assess(Observation(RUN, running, apply_error="403 forbidden"))
    assert result.lifecycle_state is L.RUNNING
    c = conds(result)
    assert c["Ready"] == ("False", "ApplyFailed")
    assert c["Degraded"] == ("True", "ApplyFailed")
    assert c["Stalled"] == ("True", "ApplyFailed")
    assert c["Reconciling"] == ("False", "ApplyFailed")


def test_running_executors_are_counted() -> None:
    body = app("RUNNING", executorState={"e1": "RUNNING", "e2": "PENDING", "e3": "RUNNING"})
    assert SparkAppObservation.from_object(body).running_executors == 2


def test_transition_time_moves_only_when_a_status_changes() -> None:
    first = assess(Observation(RUN, SparkAppObservation.from_object(app("SUBMITTED"))))
    written = merge_conditions([], first.conditions, now="t1", generation=1)
    assert {c["lastTransitionTime"] for c in written} == {"t1"}
    second = assess(Observation(RUN, SparkAppObservation.from_object(app("RUNNING"))))
    merged = merge_conditions(written, second.conditions, now="t2", generation=2)
    times = {c["type"]: c["lastTransitionTime"] for c in merged}
    # Reconciling follows Progressing, Stalled follows Degraded.
    assert times == {
        "Ready": "t2",
        "Progressing": "t2",
        "Degraded": "t1",
        "Reconciling": "t2",
        "Stalled": "t1",
    }
    assert {c["observedGeneration"] for c in merged} == {2}


def test_invalid_spec_conditions_name_the_problem() -> None:
    c = {x.type: x for x in invalid_spec_conditions("spec.kafka: set exactly one of ...")}
    assert c["Degraded"].status == "True"
    assert c["Degraded"].reason == "InvalidSpec"
    assert "spec.kafka" in c["Ready"].message
    assert (c["Stalled"].status, c["Stalled"].reason) == ("True", "InvalidSpec")
    assert "spec.kafka" in c["Stalled"].message
    assert "Fix the field named" in c["Stalled"].message
    assert c["Reconciling"].status == "False"


# --- Reconciling / Stalled, as kstatus reads them -----------------------------------------------


def kstatus_verdict(conditions: tuple[Condition, ...]) -> str:
    """kstatus' Compute for a custom resource whose observedGeneration is current, transcribed
    from sigs.k8s.io/cli-utils v0.37.2 pkg/kstatus/status: checkGenericProperties (generic.go:
    the first Reconciling=True is InProgress, the first Stalled=True Failed), then
    checkReadyCondition (status.go: Ready True is Current, False or Unknown InProgress), else
    Current. tests/integration/operator/test_kstatus.py asks the real kstatus."""
    for cond in conditions:
        if cond.type == "Reconciling" and cond.status == "True":
            return "InProgress"
        if cond.type == "Stalled" and cond.status == "True":
            return "Failed"
    for cond in conditions:
        if cond.type == "Ready":
            return "Current" if cond.status == "True" else "InProgress"
    return "Current"


@pytest.mark.parametrize(
    ("desired", "state", "reconciling", "stalled", "reason", "verdict"),
    [
        (RUN, None, "True", "False", "Deploying", "InProgress"),
        (RUN, "SUBMITTED", "True", "False", "Deploying", "InProgress"),
        (RUN, "PENDING_RERUN", "True", "False", "Deploying", "InProgress"),
        (RUN, "UNKNOWN", "True", "False", "Deploying", "InProgress"),
        (RUN, "RUNNING", "False", "False", "AsExpected", "Current"),
        (RUN, "INVALIDATING", "True", "False", "Upgrading", "InProgress"),
        (RUN, "SUSPENDED", "True", "False", "Resuming", "InProgress"),
        (RUN, "RESUMING", "True", "False", "Resuming", "InProgress"),
        (RUN, "FAILED", "False", "True", "SparkApplicationFailed", "Failed"),
        (RUN, "FAILING", "False", "True", "SparkApplicationFailed", "Failed"),
        (RUN, "SUBMISSION_FAILED", "False", "True", "SubmissionFailed", "Failed"),
        (RUN, "COMPLETED", "False", "True", "JobCompleted", "Failed"),
        (SUSP, None, "False", "False", "AsExpected", "Current"),
        (SUSP, "SUSPENDED", "False", "False", "AsExpected", "Current"),
        (SUSP, "SUSPENDING", "True", "False", "Suspending", "InProgress"),
        (SUSP, "RUNNING", "True", "False", "Suspending", "InProgress"),
        (SUSP, "FAILED", "False", "True", "SparkApplicationFailed", "Failed"),
    ],
)
def test_reconciling_and_stalled_follow_the_state(
    desired: DesiredState,
    state: str | None,
    reconciling: str,
    stalled: str,
    reason: str,
    verdict: str,
) -> None:
    result = assess(Observation(desired, SparkAppObservation.from_object(app(state))))
    c = conds(result)
    assert c["Reconciling"][0] == reconciling
    assert c["Stalled"][0] == stalled
    # The True one names why (and a False Reconciling on a stalled pipeline names the stall).
    true_one = "Stalled" if stalled == "True" else "Reconciling"
    assert c[true_one][1] == reason
    assert kstatus_verdict(result.conditions) == verdict


def test_no_spark_application_yet_is_reconciling() -> None:
    result = assess(Observation(RUN, SparkAppObservation.from_object(None)))
    assert conds(result)["Reconciling"] == ("True", "Creating")
    assert kstatus_verdict(result.conditions) == "InProgress"


def test_an_upgrade_is_reconciling_until_the_new_submission_runs() -> None:
    old = SparkAppObservation.from_object(app("RUNNING", submission="old"))
    during = assess(Observation(RUN, old, upgrade_from_submission="old"))
    assert conds(during)["Reconciling"] == ("True", "Upgrading")
    assert kstatus_verdict(during.conditions) == "InProgress"
    new = SparkAppObservation.from_object(app("RUNNING", submission="new"))
    done = assess(Observation(RUN, new, upgrade_from_submission="old"))
    assert conds(done)["Reconciling"][0] == "False"
    assert kstatus_verdict(done.conditions) == "Current"


@pytest.mark.parametrize("state", [None, "SUBMITTED", "RUNNING", "FAILED", "COMPLETED"])
def test_an_apply_error_stalls_whatever_the_job_does(state: str | None) -> None:
    observed = SparkAppObservation.from_object(app(state))
    result = assess(Observation(RUN, observed, apply_error="403 forbidden"))
    c = {x.type: x for x in result.conditions}
    assert (c["Stalled"].status, c["Stalled"].reason) == ("True", "ApplyFailed")
    assert "403 forbidden" in c["Stalled"].message
    assert "RBAC" in c["Stalled"].message
    assert c["Reconciling"].status == "False"
    assert kstatus_verdict(result.conditions) == "Failed"


def test_a_failure_says_what_to_do() -> None:
    body = app("FAILED")
    body["status"]["applicationState"]["errorMessage"] = "driver OOMKilled"
    result = assess(Observation(RUN, SparkAppObservation.from_object(body)))
    stalled = next(c for c in result.conditions if c.type == "Stalled")
    assert stalled.reason == "SparkApplicationFailed"
    assert "driver OOMKilled" in stalled.message
    assert "restartNonce" in stalled.message
    submission = assess(Observation(RUN, SparkAppObservation.from_object(app("SUBMISSION_FAILED"))))
    stalled = next(c for c in submission.conditions if c.type == "Stalled")
    assert stalled.reason == "SubmissionFailed"
    assert "could not submit" in stalled.message


def test_reconciling_and_stalled_are_never_both_true() -> None:
    """kstatus takes the first true one in list order: both true would make the verdict depend
    on the order."""
    for desired in DesiredState:
        for state in [None, "", *STATES]:
            for apply_error in (None, "boom"):
                for upgrade in (None, "s0"):
                    obs = Observation(
                        desired,
                        SparkAppObservation.from_object(app(state)),
                        upgrade_from_submission=upgrade,
                        apply_error=apply_error,
                    )
                    c = conds(assess(obs))
                    assert (c["Reconciling"][0], c["Stalled"][0]) != ("True", "True"), obs
                    # Stalled always says what Degraded says; Reconciling never hides Progressing
                    # unless stalled.
                    assert c["Stalled"] == c["Degraded"]
                    if c["Stalled"][0] == "False":
                        assert c["Reconciling"] == c["Progressing"]
                    assert all(x.reason and x.message for x in assess(obs).conditions)


def test_kstatus_conditions_are_derived_from_progressing_and_degraded() -> None:
    progressing = Condition("Progressing", "True", "Deploying", "Deploying: SUBMITTED.")
    fine = Condition("Degraded", "False", "AsExpected", "No problems observed.")
    reconciling, stalled = kstatus_conditions(progressing, fine)
    assert reconciling == Condition("Reconciling", "True", "Deploying", "Deploying: SUBMITTED.")
    assert stalled == Condition("Stalled", "False", "AsExpected", "No problems observed.")
    broken = Condition("Degraded", "True", "SomethingNew", "It broke.")
    reconciling, stalled = kstatus_conditions(progressing, broken)
    assert (reconciling.status, stalled.status, stalled.message) == ("False", "True", "It broke.")


STATES = [
    "SUBMITTED",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "SUBMISSION_FAILED",
    "PENDING_RERUN",
    "INVALIDATING",
    "SUCCEEDING",
    "FAILING",
    "SUSPENDING",
    "SUSPENDED",
    "RESUMING",
    "UNKNOWN",
    "SOMETHING_NEW",
]
