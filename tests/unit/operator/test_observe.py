"""What the SparkApplication reports becomes the pipeline's lifecycle state and conditions."""

from __future__ import annotations

import pytest

from pagestream_operator.observe import (
    LifecycleState,
    Observation,
    SparkAppObservation,
    assess,
    invalid_spec_conditions,
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
    assert times == {"Ready": "t2", "Progressing": "t2", "Degraded": "t1"}
    assert {c["observedGeneration"] for c in merged} == {2}


def test_invalid_spec_conditions_name_the_problem() -> None:
    c = {x.type: x for x in invalid_spec_conditions("spec.kafka: set exactly one of ...")}
    assert c["Degraded"].status == "True"
    assert c["Degraded"].reason == "InvalidSpec"
    assert "spec.kafka" in c["Ready"].message
