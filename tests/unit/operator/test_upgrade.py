"""What each spec change needs (its class), which are upgrades, and what each upgrade mode does
to the checkpoint."""

from __future__ import annotations

import json
from typing import Any

import pytest
from crd_models import crd_schema
from operator_cases import case, minimal_spec

from pagestream_operator.spec import DiffType, parse_spec
from pagestream_operator.upgrade import (
    NO_UPGRADE_FIELDS,
    SPEC_DIFF,
    CheckpointRecord,
    changed_fields,
    describe_changes,
    diff_type,
    last_reconciled_spec,
    plan_deploy,
    reconciled_spec,
    upgrade_fingerprint,
)


def spec(**overrides: Any):  # type: ignore[no-untyped-def]
    return parse_spec(minimal_spec(**overrides))


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


def test_the_fingerprint_of_an_existing_pipeline_is_unchanged() -> None:
    """Classing the fields on the model must not move a fingerprint: a new one would be an
    upgrade of every running pipeline when the operator is upgraded (values from before)."""
    assert upgrade_fingerprint(spec()) == "0e031c8a51a4aa1d"
    assert upgrade_fingerprint(case("full").spec) == "335dca3e6b08c475"
    # This case was written before the PII key was required of every pipeline; its spec as it
    # was then (no hashKeySecretRef), built without parse_spec, still has its old fingerprint.
    suspended = case("suspended-servicemonitor").spec
    pii = suspended.processing.pii.model_copy(update={"hash_key_secret_ref": None})
    before_key = suspended.model_copy(
        update={"processing": suspended.processing.model_copy(update={"pii": pii})}
    )
    assert upgrade_fingerprint(before_key) == "f6f915dacd0763aa"
    assert upgrade_fingerprint(suspended) == "579b02997a35c3e4"


def test_a_value_an_older_crd_defaulted_keeps_the_fingerprint() -> None:
    """The CRD defaulted authentication.securityProtocol to SASL_PLAINTEXT until spec.kafka.tls
    came; pipelines stored then carry the value, newer ones leave it unset: one fingerprint."""
    kafka = minimal_spec()["kafka"]
    auth = {"secretRef": {"name": "job-user"}}
    unset = spec(kafka={**kafka, "authentication": auth})
    stored = spec(kafka={**kafka, "authentication": {**auth, "securityProtocol": "SASL_PLAINTEXT"}})
    assert upgrade_fingerprint(stored) == upgrade_fingerprint(unset)
    tls = spec(kafka={**kafka, "authentication": {**auth, "securityProtocol": "SASL_SSL"}})
    assert upgrade_fingerprint(tls) != upgrade_fingerprint(unset)


def test_retention_is_a_restart_and_leaves_every_fingerprint_as_it_was() -> None:
    """spec.retention came with defaults the API server now stores in every pipeline: neither
    that nor a change of it moves the fingerprint (a change restarts the job with its
    checkpoint, whatever upgradeMode says, as the executor count does)."""
    assert diff_type("retention.events") is DiffType.RESTART
    assert diff_type("retention.rollups") is DiffType.RESTART
    base = upgrade_fingerprint(spec())
    assert base == "0e031c8a51a4aa1d"  # as before the field existed
    assert upgrade_fingerprint(spec(retention={"events": 90, "rollups": 730})) == base
    assert upgrade_fingerprint(spec(retention={"events": 7, "rollups": "Forever"})) == base
    stateless = {"upgradeMode": "stateless"}
    record = CheckpointRecord(
        epoch=1, spec_fingerprint=upgrade_fingerprint(spec(lifecycle=stateless))
    )
    changed = spec(retention={"events": 30}, lifecycle=stateless)
    plan = plan_deploy(changed, generation=2, recorded=record)
    assert plan.checkpoint == record and not plan.is_upgrade  # the stateless job keeps its state
    assert describe_changes(spec(), changed) == (
        "retention.events (restart), lifecycle.upgradeMode (ignore)"
    )


def test_a_spec_recorded_before_retention_existed_reads_with_its_defaults() -> None:
    """status.lastReconciledSpec written by an older operator has no retention: it parses, and
    the defaults the API server now fills in are no change."""
    recorded = json.loads(reconciled_spec(spec()))
    del recorded["retention"]
    before = last_reconciled_spec({"lastReconciledSpec": json.dumps(recorded)})
    assert before is not None
    assert changed_fields(before, spec(retention={"events": 90, "rollups": 730})) == []


def _crd_field(path: str) -> dict[str, Any] | None:
    node = crd_schema()["properties"]["spec"]
    for part in path.split("."):
        node = node.get("properties", {}).get(part)
        if node is None:
            return None
    return node


def test_every_classed_path_is_a_crd_field_and_every_crd_field_is_classed() -> None:
    assert [p for p in SPEC_DIFF if _crd_field(p) is None] == []

    def leaves(schema: dict[str, Any], prefix: str) -> list[str]:
        out = []
        for key, prop in schema.get("properties", {}).items():
            if prop.get("description", "").startswith("Not allowed"):
                continue  # declared only to be rejected
            if prop.get("type") == "object" and "properties" in prop:
                out += leaves(prop, f"{prefix}{key}.")
            else:
                out.append(f"{prefix}{key}")
        return out

    assert sorted(leaves(crd_schema()["properties"]["spec"], "")) == sorted(SPEC_DIFF)


def test_an_unknown_path_is_an_error_not_skipped() -> None:
    with pytest.raises(KeyError, match=r"spark\.executor\.count: no such spec field"):
        diff_type("spark.executor.count")


def test_each_field_has_the_class_a_change_to_it_needs() -> None:
    # spark-operator resubmits the application on a new executor count: a restart.
    assert diff_type("spark.executor.instances") is DiffType.RESTART
    assert diff_type("spark.image") is DiffType.UPGRADE
    assert diff_type("spark.pods.tolerations") is DiffType.UPGRADE
    assert diff_type("lifecycle.restartNonce") is DiffType.UPGRADE
    assert diff_type("lifecycle.state") is DiffType.IGNORE
    assert diff_type("kafka.topic.partitions") is DiffType.IGNORE
    assert diff_type("kafka.topic.name") is DiffType.UPGRADE
    assert diff_type("monitoring.metricsPort") is DiffType.UPGRADE
    assert diff_type("monitoring.monitor") is DiffType.IGNORE
    # The fingerprint leaves out exactly the fields that are no upgrade.
    assert set(NO_UPGRADE_FIELDS) == {p for p, k in SPEC_DIFF.items() if k is not DiffType.UPGRADE}


def test_changed_fields_are_named_with_their_class() -> None:
    before = spec()
    after = spec(
        spark={"image": "img:2", "executor": {"instances": 3}},
        monitoring={"dashboards": True},
    )
    assert changed_fields(before, after) == [
        ("spark.image", DiffType.UPGRADE),
        ("spark.executor.instances", DiffType.RESTART),
        ("monitoring.dashboards", DiffType.IGNORE),
    ]
    assert describe_changes(before, after) == (
        "spark.image, spark.executor.instances (restart), monitoring.dashboards (ignore)"
    )
    assert describe_changes(None, after) == "the previous spec was not recorded"
    assert changed_fields(before, spec()) == []


def test_the_reconciled_spec_round_trips_through_status() -> None:
    full = case("full").spec
    record = reconciled_spec(full)
    assert last_reconciled_spec({"lastReconciledSpec": record}) == full
    assert reconciled_spec(parse_spec(json.loads(record))) == record
    assert last_reconciled_spec({}) is None
    assert last_reconciled_spec({"lastReconciledSpec": "{not json"}) is None
