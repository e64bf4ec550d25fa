"""Which spec changes are upgrades, and what an upgrade does to the checkpoint, in the spirit of the Flink Kubernetes Operator's spec diff.

Every spec field is in one of two classes:

- *upgrade*: the job must restart with the change (its arguments, image, resources, the restart
  nonce...). ``upgradeMode`` decides whether the restarted job keeps its checkpoint.
- *no upgrade*: changing it never resets the checkpoint: ``lifecycle.state`` (suspend keeps
  the checkpoint by definition), the executor count (a scale), the managed topic's settings
  (they change the KafkaTopic, not the job) and monitoring objects.

The fingerprint is a digest of the upgrade-class fields; the reconciler compares it with the
one recorded in status when the current checkpoint was chosen.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pagestream_operator.spec import PipelineSpec, UpgradeMode

# Dotted paths (CRD field names) excluded from the fingerprint: changing them is no upgrade.
NO_UPGRADE_FIELDS: tuple[str, ...] = (
    "lifecycle.state",
    "lifecycle.upgradeMode",
    "spark.executor.instances",
    "kafka.topic.manage",
    "kafka.topic.partitions",
    "kafka.topic.replicas",
    "kafka.topic.retentionHours",
    "monitoring.monitor",
    "monitoring.monitorLabels",
    "monitoring.dashboards",
)


def _drop(tree: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    node: Any = tree
    for part in parents:
        node = node.get(part)
        if not isinstance(node, dict):
            return
    node.pop(leaf, None)


def _without_empty(tree: dict[str, Any]) -> dict[str, Any]:
    """The tree without the objects left empty (all their fields at defaults or dropped)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            value = _without_empty(value)
            if not value:
                continue
        out[key] = value
    return out


def upgrade_fingerprint(spec: PipelineSpec) -> str:
    # Only what differs from the defaults: a field a newer CRD adds (with a default) leaves every
    # existing pipeline's fingerprint as it was, so upgrading the operator is no job upgrade.
    tree = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    for dotted in NO_UPGRADE_FIELDS:
        _drop(tree, dotted)
    canonical = json.dumps(_without_empty(tree), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CheckpointRecord:
    """status.checkpoint: the epoch (and so the folder) of the current checkpoint, and the
    fingerprint of the spec deployed with it."""

    epoch: int
    spec_fingerprint: str

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> CheckpointRecord | None:
        raw = status.get("checkpoint") or {}
        if "epoch" not in raw or "specFingerprint" not in raw:
            return None
        return cls(epoch=int(raw["epoch"]), spec_fingerprint=str(raw["specFingerprint"]))


@dataclass(frozen=True)
class DeployPlan:
    checkpoint: CheckpointRecord
    is_upgrade: bool  # the job's spec changed since the checkpoint was chosen


def plan_deploy(
    spec: PipelineSpec, generation: int, recorded: CheckpointRecord | None
) -> DeployPlan:
    """Choose the checkpoint epoch for this generation.

    The first deploy starts epoch ``generation``. A spec change is an upgrade: ``last-state``
    keeps the epoch (the job resumes from its checkpoint), ``stateless`` moves to epoch
    ``generation`` (a new, empty checkpoint folder). Deriving the epoch from the generation
    keeps this idempotent: a reconcile repeated after a crash picks the same folder.
    """
    fingerprint = upgrade_fingerprint(spec)
    if recorded is None:
        return DeployPlan(CheckpointRecord(generation, fingerprint), is_upgrade=False)
    if recorded.spec_fingerprint == fingerprint:
        return DeployPlan(recorded, is_upgrade=False)
    if spec.lifecycle.upgrade_mode is UpgradeMode.STATELESS:
        epoch = max(generation, recorded.epoch)
    else:
        epoch = recorded.epoch
    return DeployPlan(CheckpointRecord(epoch, fingerprint), is_upgrade=True)


def recover_record(
    spec: PipelineSpec, driver_annotations: dict[str, str], annotation: str
) -> CheckpointRecord | None:
    """Rebuild a lost status.checkpoint (a restore from backup drops status) from the
    checkpoint location the running SparkApplication's driver is annotated with. The spec is
    assumed unchanged: losing status must never reset a job's state."""
    location = driver_annotations.get(annotation, "")
    _, sep, epoch = location.rpartition("/epoch-")
    if not sep or not epoch.isdigit():
        return None
    return CheckpointRecord(epoch=int(epoch), spec_fingerprint=upgrade_fingerprint(spec))
