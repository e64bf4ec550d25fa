"""The typed status model agrees with the CRD's status schema, and writes what it is given."""

from __future__ import annotations

from crd_models import compare, crd_schema

from pagestream_operator.observe import LifecycleState
from pagestream_operator.status import PipelineStatus, UpgradeStatus


def test_model_fields_match_the_crd_status_schema() -> None:
    status_schema = crd_schema()["properties"]["status"]
    assert compare(status_schema, PipelineStatus, "status") == []


def test_a_patch_holds_only_the_fields_set_and_none_removes_one() -> None:
    patch = PipelineStatus(lifecycle_state=LifecycleState.UPGRADING, upgrade=None).to_patch()
    assert patch == {"lifecycleState": "UPGRADING", "upgrade": None}


def test_an_upgrade_marker_round_trips_and_a_partial_one_is_none() -> None:
    marker = UpgradeStatus(from_submission_id="s1", started_at="2026-01-01T00:00:00Z")
    status = PipelineStatus(upgrade=marker).to_patch()
    assert status == {"upgrade": {"fromSubmissionID": "s1", "startedAt": "2026-01-01T00:00:00Z"}}
    assert UpgradeStatus.from_status(status) == marker
    assert UpgradeStatus.from_status({"upgrade": {"startedAt": "x"}}) is None
    assert UpgradeStatus.from_status({}) is None
