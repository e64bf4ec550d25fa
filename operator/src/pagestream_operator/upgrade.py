"""What a spec change needs, and what an upgrade does to the checkpoint, in the spirit of the Flink Kubernetes Operator's spec diff.

Every spec field declares its :class:`~.spec.DiffType` on itself (``SpecDiff`` in its
annotation; unmarked fields are *upgrade*), and :data:`SPEC_DIFF` collects them by dotted path:

- *upgrade*: the job restarts with the change (its arguments, image, resources, the restart
  nonce...); ``upgradeMode`` decides whether the restarted job keeps its checkpoint;
- *restart*: the job restarts with its checkpoint, whatever ``upgradeMode`` says: the executor
  count (spark-operator resubmits the application; it cannot rescale a running one), the
  retention horizons, the TLS settings and the reader role;
- *ignore*: the job is untouched: ``lifecycle.state`` (suspend keeps the checkpoint by
  definition), ``lifecycle.upgradeMode``, the managed topic's settings (they change the
  KafkaTopic) and the monitoring objects.

The fingerprint is a digest of the upgrade-class fields; the reconciler compares it with the
one recorded in status when the current checkpoint was chosen. The spec itself is recorded too
(status ``lastReconciledSpec``, as Flink's ``ReconciliationStatus.lastReconciledSpec``), so an
upgrade can say which fields changed (:func:`changed_fields`).
"""

from __future__ import annotations

import hashlib
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from pagestream_operator.spec import DiffType, PipelineSpec, SpecDiff, UpgradeMode


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a field that holds one (``X`` or ``X | None``): its fields are classed one
    by one. Anything else (scalars, maps, lists) is one field, compared whole."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    for candidate in (annotation, *candidates):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def diff_types(
    model: type[BaseModel], prefix: str = "", inherited: DiffType = DiffType.UPGRADE
) -> dict[str, DiffType]:
    """Every field of ``model`` by dotted path (the CRD's names), with its class: its own
    ``SpecDiff``, else the nearest enclosing field's, else *upgrade*."""
    out: dict[str, DiffType] = {}
    for name, info in model.model_fields.items():
        path = f"{prefix}{info.alias or name}"
        marks = [m.type for m in info.metadata if isinstance(m, SpecDiff)]
        kind = marks[0] if marks else inherited
        nested = _nested_model(info.annotation)
        if nested is None:
            out[path] = kind
        else:
            out.update(diff_types(nested, f"{path}.", kind))
    return out


SPEC_DIFF: Final[dict[str, DiffType]] = diff_types(PipelineSpec)


def diff_type(path: str) -> DiffType:
    """The class of the spec field at ``path``; a path that is no spec field is an error (a
    misspelt path must not silently count as something)."""
    try:
        return SPEC_DIFF[path]
    except KeyError:
        raise KeyError(f"{path}: no such spec field") from None


# Excluded from the fingerprint: changing them is no upgrade.
NO_UPGRADE_FIELDS: Final[tuple[str, ...]] = tuple(
    path for path, kind in SPEC_DIFF.items() if kind is not DiffType.UPGRADE
)


def _drop(tree: dict[str, Any], dotted: str) -> None:
    diff_type(dotted)  # the path must be a field; only its value may be absent from ``tree``
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


# Values an older CRD defaulted (so the API server stored them in every pipeline of that time)
# whose field has no default now, and which mean what the unset field means wherever they are
# valid: dropped like defaults, so those pipelines keep their fingerprints.
FORMER_DEFAULTS: Final[dict[str, object]] = {
    # Unset, it follows spec.kafka.tls; SASL_PLAINTEXT with spec.kafka.tls is refused.
    "kafka.authentication.securityProtocol": "SASL_PLAINTEXT",
}


def _drop_former_defaults(tree: dict[str, Any]) -> None:
    for dotted, former in FORMER_DEFAULTS.items():
        if _value_at(tree, dotted) == former:
            _drop(tree, dotted)


def upgrade_fingerprint(spec: PipelineSpec) -> str:
    # Only what differs from the defaults: a field a newer CRD adds (with a default) leaves every
    # existing pipeline's fingerprint as it was, so upgrading the operator is no job upgrade.
    tree = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    _drop_former_defaults(tree)
    for dotted in NO_UPGRADE_FIELDS:
        _drop(tree, dotted)
    canonical = json.dumps(_without_empty(tree), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _value_at(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def changed_fields(before: PipelineSpec, after: PipelineSpec) -> list[tuple[str, DiffType]]:
    """The fields whose values differ, in the spec's order, each with its class."""
    old = before.model_dump(mode="json", by_alias=True)
    new = after.model_dump(mode="json", by_alias=True)
    return [
        (path, kind)
        for path, kind in SPEC_DIFF.items()
        if _value_at(old, path) != _value_at(new, path)
    ]


def describe_changes(before: PipelineSpec | None, after: PipelineSpec) -> str:
    """The changed fields for an Event: ``spark.image, spark.executor.instances (restart)``."""
    if before is None:
        return "the previous spec was not recorded"
    changed = changed_fields(before, after)
    if not changed:
        return "no recorded field differs"
    return ", ".join(
        path if kind is DiffType.UPGRADE else f"{path} ({kind.value})" for path, kind in changed
    )


def reconciled_spec(spec: PipelineSpec) -> str:
    """The spec as status ``lastReconciledSpec`` records it: JSON (a string, as Flink's, so a
    merge patch replaces it whole instead of merging an old spec's fields into the new one),
    defaults filled in, canonical so that an unchanged spec is an unchanged status."""
    tree = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps(tree, sort_keys=True, separators=(",", ":"))


def last_reconciled_spec(status: dict[str, Any]) -> PipelineSpec | None:
    """The spec recorded in ``status``; None when there is none (an older operator's status,
    or one lost in a restore) or it no longer parses."""
    raw = status.get("lastReconciledSpec")
    if not isinstance(raw, str):
        return None
    try:
        return PipelineSpec.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        return None


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
