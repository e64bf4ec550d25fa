"""Which spec changes are upgrades, and what each upgrade mode does to the checkpoint."""

from __future__ import annotations

from typing import Any

from pagestream_operator.spec import parse_spec
from pagestream_operator.upgrade import CheckpointRecord, plan_deploy, upgrade_fingerprint

BASE: dict[str, Any] = {
    "kafka": {"bootstrapServers": "k:9092", "topic": {"name": "views"}},
    "postgres": {"cnpgCluster": {"name": "db"}},
    "spark": {"image": "img:1"},
    "processing": {"pii": {"hashKeySecretRef": {"name": "pii"}}},
    "checkpoint": {"uri": "s3a://b"},
}


def spec(**overrides: Any):  # type: ignore[no-untyped-def]
    raw = {**BASE, **overrides}
    return parse_spec(raw)


def test_no_upgrade_fields_do_not_change_the_fingerprint() -> None:
    base = upgrade_fingerprint(spec())
    assert upgrade_fingerprint(spec(lifecycle={"state": "suspended"})) == base
    assert upgrade_fingerprint(spec(spark={"image": "img:1", "executor": {"instances": 5}})) == base
    assert (
        upgrade_fingerprint(spec(monitoring={"monitor": "PodMonitor", "dashboards": True})) == base
    )


def test_upgrade_fields_change_the_fingerprint() -> None:
    base = upgrade_fingerprint(spec())
    assert upgrade_fingerprint(spec(spark={"image": "img:2"})) != base
    assert upgrade_fingerprint(spec(lifecycle={"restartNonce": 1})) != base
    assert upgrade_fingerprint(spec(monitoring={"metricsPort": 9200})) != base


def test_fields_left_at_their_defaults_do_not_count() -> None:
    """A field a newer CRD adds arrives at its default: existing pipelines keep their
    fingerprint, so an operator upgrade is no job upgrade (stateless ones keep their state)."""
    base = upgrade_fingerprint(spec())
    assert upgrade_fingerprint(spec(spark={"image": "img:1", "pods": {}})) == base
    assert upgrade_fingerprint(spec(spark={"image": "img:1", "driver": {"cores": 1}})) == base
    placed = spec(spark={"image": "img:1", "pods": {"priorityClassName": "streaming"}})
    assert upgrade_fingerprint(placed) != base


def test_first_deploy_starts_an_epoch_at_the_generation() -> None:
    plan = plan_deploy(spec(), generation=1, recorded=None)
    assert plan.checkpoint.epoch == 1
    assert not plan.is_upgrade


def test_unchanged_spec_keeps_the_record() -> None:
    record = CheckpointRecord(epoch=1, spec_fingerprint=upgrade_fingerprint(spec()))
    plan = plan_deploy(spec(lifecycle={"state": "suspended"}), generation=4, recorded=record)
    assert plan.checkpoint == record
    assert not plan.is_upgrade


def test_last_state_keeps_the_checkpoint_across_an_upgrade() -> None:
    record = CheckpointRecord(epoch=1, spec_fingerprint=upgrade_fingerprint(spec()))
    plan = plan_deploy(spec(spark={"image": "img:2"}), generation=3, recorded=record)
    assert plan.is_upgrade
    assert plan.checkpoint.epoch == 1
    assert plan.checkpoint.spec_fingerprint != record.spec_fingerprint


def test_stateless_starts_a_new_checkpoint_on_an_upgrade_and_is_idempotent() -> None:
    stateless = {"upgradeMode": "stateless"}
    record = CheckpointRecord(
        epoch=1, spec_fingerprint=upgrade_fingerprint(spec(lifecycle=stateless))
    )
    changed = spec(spark={"image": "img:2"}, lifecycle=stateless)
    plan = plan_deploy(changed, generation=3, recorded=record)
    assert plan.is_upgrade
    assert plan.checkpoint.epoch == 3
    # Repeating the same reconcile (e.g. after a crash) picks the same folder.
    again = plan_deploy(changed, generation=3, recorded=plan.checkpoint)
    assert again.checkpoint == plan.checkpoint
    assert not again.is_upgrade


def test_record_round_trips_through_status() -> None:
    assert CheckpointRecord.from_status({}) is None
    status = {"checkpoint": {"epoch": 2, "specFingerprint": "abc", "location": "x"}}
    assert CheckpointRecord.from_status(status) == CheckpointRecord(2, "abc")
