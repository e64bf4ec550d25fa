"""The PageAnalyticsPipeline status as typed objects, mirroring the CRD's status schema.

The operator is the only writer of status, and everything it writes goes through these models
(:meth:`PipelineStatus.to_patch`), so a field the CRD does not declare (and the API server would
prune silently) cannot be written by mistake; ``tests/unit/operator/test_status.py`` checks
field names, types, enums and required fields against the CRD, as ``test_spec.py`` does for the
spec.

Reading stays lenient on purpose (:meth:`UpgradeStatus.from_status`, ``ChildRef.from_status``,
``CheckpointRecord.from_status``): a status may come from an older operator, or be lost in a
restore from backup, and neither may stop a pass.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from pagestream_operator.observe import LifecycleState


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


class ConditionValue(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionStatus(_Model):
    """One metav1.Condition-shaped entry of status.conditions."""

    type: str
    status: ConditionValue
    observed_generation: int | None = None
    last_transition_time: str
    reason: str
    message: str


class SparkApplicationStatus(_Model):
    name: str
    state: str
    error_message: str
    submission_id: str = Field(alias="submissionID")


class CheckpointStatus(_Model):
    epoch: int
    location: str
    spec_fingerprint: str


class UpgradeStatus(_Model):
    """An upgrade of a running job being rolled out: it ends when a submission other than
    ``from_submission_id`` runs."""

    from_submission_id: str = Field(alias="fromSubmissionID")
    started_at: str

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> UpgradeStatus | None:
        raw = status.get("upgrade") or {}
        if "fromSubmissionID" not in raw or "startedAt" not in raw:
            return None
        return cls(
            from_submission_id=str(raw["fromSubmissionID"]), started_at=str(raw["startedAt"])
        )


class ChildStatus(_Model):
    api_version: str
    kind: str
    name: str


class PipelineStatus(_Model):
    """status, or the part of it one patch writes: fields left unset are not in the patch, and
    a field set to None is removed (a JSON merge patch deletes a key patched to null)."""

    observed_generation: int | None = None
    lifecycle_state: LifecycleState | None = None
    spark_application: SparkApplicationStatus | None = None
    checkpoint: CheckpointStatus | None = None
    upgrade: UpgradeStatus | None = None
    replicas: int | None = None
    selector: str | None = None
    children: list[ChildStatus] | None = None
    conditions: list[ConditionStatus] | None = None
    # upgrade.reconciled_spec(spec) of the spec last reconciled.
    last_reconciled_spec: str | None = None

    def to_patch(self) -> dict[str, Any]:
        """The merge patch for status: only the fields this object was given."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)
