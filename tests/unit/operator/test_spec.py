"""The typed spec model agrees with the CRD, and parsing reports problems by field name.

The CRD's own rules (schema and CEL) are checked here too, without a server, by the validator
that `pagestream up` uses (pagestream.local.crd_schema, which evaluates CEL with cel-python);
tests/integration compares that validator with the real kube-apiserver.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from crd_models import CRD_FILE, compare, crd_schema
from operator_cases import MINIMAL_SPEC

from pagestream.local.crd_schema import CEL_SKIPPED, InvalidResource
from pagestream.local.crd_schema import validate as crd_validate
from pagestream_operator import spec as spec_module
from pagestream_operator.spec import PipelineSpec, SpecError, parse_spec


def test_model_fields_and_defaults_match_the_crd() -> None:
    spec_schema = crd_schema()["properties"]["spec"]
    assert compare(spec_schema, PipelineSpec, "spec") == []


def test_every_crd_field_has_a_description() -> None:
    missing = []

    def walk(schema: dict[str, Any], path: str) -> None:
        for key, prop in schema.get("properties", {}).items():
            if path.lstrip(".").startswith("status.conditions") or key in (
                "apiVersion",
                "kind",
                "metadata",
            ):
                continue
            if not prop.get("description"):
                missing.append(f"{path}.{key}".lstrip("."))
            walk(prop, f"{path}.{key}")
            if "items" in prop:
                walk(prop["items"], f"{path}.{key}[]")

    walk(crd_schema(), "")
    assert missing == []


def _with(**changes: Any) -> dict[str, Any]:
    spec = yaml.safe_load(yaml.safe_dump(MINIMAL_SPEC))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = spec
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return spec


def test_a_minimal_spec_parses_with_the_crd_defaults() -> None:
    spec = parse_spec(MINIMAL_SPEC)
    assert spec.spark.executor.instances == 1
    assert spec.lifecycle.upgrade_mode.value == "last-state"
    assert spec.postgres.schema_ == "pagestream"
    assert spec.monitoring.metrics_port == 9108


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kafka__strimziCluster": {"name": "events"}}, "spec.kafka: set exactly one of"),
        ({"kafka__bootstrapServers": None}, "spec.kafka: set exactly one of"),
        ({"kafka__topic__manage": True}, "spec.kafka.topic.manage"),
        ({"postgres__secretRef": {"name": "s"}}, "spec.postgres: set exactly one of"),
        (
            {"postgres__cnpgCluster": None, "postgres__secretRef": {"name": "s"}},
            "spec.postgres.host is required",
        ),
        ({"processing__pii__hashKeySecretRef": None}, "spec.processing.pii.hashKeySecretRef"),
        (
            {"processing__pii": {"hashEmail": False}},
            "spec.processing.pii.hashKeySecretRef is required",
        ),
        ({"checkpoint__persistentVolumeClaim": {"claimName": "c"}}, "spec.checkpoint"),
        ({"spark__conf": {"spark.kubernetes.namespace": "x"}}, "spec.spark.conf"),
        ({"spark__driver": {"cores": -1}}, "spec.spark.driver.cores"),
        ({"lifecycle": {"state": "paused"}}, "spec.lifecycle.state"),
        ({"spark__executor": {"memory": "lots"}}, "spec.spark.executor.memory"),
        ({"retention": {"events": 0}}, "spec.retention.events"),
        ({"retention": {"rollups": "forever"}}, "spec.retention.rollups"),
        ({"retention": {"events": 100, "rollups": 99}}, "spec.retention.rollups"),
    ],
)
def test_invalid_specs_are_rejected_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_with(**changes))
    assert message in str(info.value)


# --- the PII key: required for every pipeline, e-mail hashing or not --------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"processing__pii__hashKeySecretRef": None},
        {"processing__pii": {"hashEmail": False}},
        {"processing__pii": {"hashEmail": False, "anonymizeIp": False}},
        {"processing__pii": {"hashEmail": True}},
        {"processing": None},
    ],
    ids=["no-key", "hash-email-off", "all-pii-off", "hash-email-on", "no-processing"],
)
def test_a_pipeline_without_a_hash_key_is_refused_naming_the_field(
    changes: dict[str, Any],
) -> None:
    raw = _with(**changes)
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert spec_module.HASH_KEY_REQUIRED_MESSAGE in str(info.value)
    assert str(info.value).startswith("spec.processing.pii.hashKeySecretRef is required: ")
    # The API server says the same, on the same field (the rule's fieldPath).
    assert _crd_errors(raw) == [
        'spec.processing.pii.hashKeySecretRef: Invalid value: "object": '
        + spec_module.HASH_KEY_REQUIRED_MESSAGE
    ]


def test_hash_email_off_with_a_key_is_accepted() -> None:
    raw = _with(processing__pii={"hashEmail": False, "hashKeySecretRef": {"name": "pii"}})
    assert _crd_errors(raw) == []
    spec = parse_spec(raw)
    assert spec.processing.pii.hash_email is False
    assert spec.processing.pii.hash_key_secret_ref is not None
    assert spec.processing.pii.hash_key_secret_ref.key == "key"


# --- spark resources and pods: the CRD's rules and the model's, case by case ------------------

POD_SETTINGS: dict[str, Any] = {
    "nodeSelector": {"kubernetes.io/arch": "amd64", "pool": "streaming"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "spark", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
        {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {
                        "matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]
                    },
                }
            ]
        }
    },
    "priorityClassName": "streaming-high",
    "labels": {"team": "analytics", "example.com/cost-centre": "shop-42"},
    "annotations": {"example.com/owner": "analytics team <analytics@example.com>"},
}


def _resource(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "pagestream.dev/v1alpha1",
        "kind": "PageAnalyticsPipeline",
        "metadata": {"name": "p"},
        "spec": spec,
    }


def _crd_errors(spec: dict[str, Any]) -> list[str]:
    """What kube-apiserver would say, as the local validator (schema + CEL) reproduces it."""
    try:
        crd_validate(_resource(spec), CRD_FILE)
    except InvalidResource as exc:
        return [str(e) for e in exc.errors]
    return []


def test_resources_and_pod_settings_are_accepted_by_the_crd_and_the_model() -> None:
    raw = _with(
        spark__driver={"cores": 1, "coreRequest": "250m", "memory": "1g", "memoryOverhead": "512m"},
        spark__executor={"cores": 2, "coreRequest": "0.5", "memoryOverhead": "1g"},
        spark__pods=POD_SETTINGS,
    )
    assert _crd_errors(raw) == []
    spec = parse_spec(raw)
    assert spec.spark.driver.core_request == "250m"
    assert spec.spark.executor.memory_overhead == "1g"
    assert spec.spark.pods.tolerations[2].toleration_seconds == 60
    assert spec.spark.pods.affinity is not None and spec.spark.pods.affinity.node_affinity


def test_pod_settings_default_to_nothing() -> None:
    spec = parse_spec(MINIMAL_SPEC)
    pods = spec.spark.pods
    assert (pods.node_selector, pods.tolerations, pods.labels, pods.annotations) == ({}, [], {}, {})
    assert pods.affinity is None and pods.priority_class_name is None
    assert spec.spark.driver.core_request is None and spec.spark.executor.memory_overhead is None


# (changes, the field both the CRD and parse_spec must name)
INVALID_SPARK: list[tuple[dict[str, Any], str]] = [
    ({"spark__driver": {"coreRequest": "half"}}, "spec.spark.driver.coreRequest"),
    ({"spark__executor": {"coreRequest": "500M"}}, "spec.spark.executor.coreRequest"),
    ({"spark__driver": {"memoryOverhead": "1.5g"}}, "spec.spark.driver.memoryOverhead"),
    ({"spark__executor": {"memoryOverhead": "512"}}, "spec.spark.executor.memoryOverhead"),
    ({"spark__conf": {"spark.driver.extraClassPath": "/x/*"}}, "spec.spark.conf"),
    ({"spark__conf": {"spark.executor.extraClassPath": "/x/*"}}, "spec.spark.conf"),
    ({"spark__conf": {"spark.jars": "local:///x.jar"}}, "spec.spark.conf"),
    ({"spark__pods": {"labels": {"app.kubernetes.io/name": "x"}}}, "spec.spark.pods.labels"),
    ({"spark__pods": {"labels": {"pagestream.dev/pipeline": "x"}}}, "spec.spark.pods.labels"),
    ({"spark__pods": {"labels": {"spark-role": "executor"}}}, "spec.spark.pods.labels"),
    ({"spark__pods": {"labels": {"sparkoperator.k8s.io/app-name": "x"}}}, "spec.spark.pods.labels"),
    ({"spark__pods": {"labels": {"not a key": "x"}}}, "spec.spark.pods.labels"),
    ({"spark__pods": {"labels": {"team": "not a value"}}}, "spec.spark.pods.labels"),
    ({"spark__pods": {"labels": {"team": "x" * 64}}}, "spec.spark.pods.labels"),
    ({"spark__pods": {"nodeSelector": {"-pool": "a"}}}, "spec.spark.pods.nodeSelector"),
    ({"spark__pods": {"nodeSelector": {"pool": "a b"}}}, "spec.spark.pods.nodeSelector"),
    (
        {"spark__pods": {"annotations": {"pagestream.dev/restart-nonce": "9"}}},
        "spec.spark.pods.annotations",
    ),
    ({"spark__pods": {"annotations": {"a/b/c": "x"}}}, "spec.spark.pods.annotations"),
    ({"spark__pods": {"tolerations": [{"value": "x"}]}}, "spec.spark.pods.tolerations"),
    (
        {"spark__pods": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
        "spec.spark.pods.tolerations",
    ),
    (
        {"spark__pods": {"tolerations": [{"key": "k", "tolerationSeconds": 30}]}},
        "spec.spark.pods.tolerations",
    ),
    (
        {"spark__pods": {"tolerations": [{"key": "k", "effect": "NoRun"}]}},
        "spec.spark.pods.tolerations",
    ),
    (
        {"spark__pods": {"tolerations": [{"key": "k", "operator": "In"}]}},
        "spec.spark.pods.tolerations",
    ),
    ({"spark__pods": {"priorityClassName": "High_Priority"}}, "spec.spark.pods.priorityClassName"),
    ({"spark__pods": {"affinity": "anywhere"}}, "spec.spark.pods.affinity"),
]


@pytest.mark.parametrize(("changes", "field"), INVALID_SPARK, ids=lambda v: str(v)[:60])
def test_invalid_spark_settings_are_refused_by_the_crd_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    errors = _crd_errors(_with(**changes))
    assert errors, "the CRD accepted it"
    assert field in errors[0], errors


@pytest.mark.parametrize(("changes", "field"), INVALID_SPARK, ids=lambda v: str(v)[:60])
def test_invalid_spark_settings_are_refused_by_parse_spec_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_with(**changes))
    assert field in str(info.value)


def test_a_toleration_of_every_taint_is_accepted() -> None:
    raw = _with(spark__pods={"tolerations": [{"operator": "Exists"}]})
    assert _crd_errors(raw) == []
    assert parse_spec(raw).spark.pods.tolerations[0].key is None


# --- retention: whole days of at least 1, or Forever; rollups at least as long as events -------


def test_retention_defaults_to_90_days_of_events_and_730_of_rollups() -> None:
    spec = parse_spec(MINIMAL_SPEC)
    assert (spec.retention.events, spec.retention.rollups) == (90, 730)
    assert (spec.retention.retention_days(), spec.retention.rollup_retention_days()) == (90, 730)
    # The API server stores the same defaults in a pipeline written without the section.
    assert crd_validate(_resource(_with()), CRD_FILE)["spec"]["retention"] == {
        "events": 90,
        "rollups": 730,
    }
    assert parse_spec(_with(retention={"events": 30})).retention.rollups == 730


# (spec.retention as written, JobConfig's retention_days and rollup_retention_days)
VALID_RETENTION: list[tuple[dict[str, Any], tuple[int, int]]] = [
    ({"events": "Forever", "rollups": "Forever"}, (0, 0)),
    ({"events": 30, "rollups": "Forever"}, (30, 0)),
    ({"events": 1, "rollups": 1}, (1, 1)),
    ({"events": 400, "rollups": 400}, (400, 400)),
    ({"events": 7, "rollups": 3650}, (7, 3650)),
    ({"rollups": "Forever"}, (90, 0)),
    ({"events": 730}, (730, 730)),
]


@pytest.mark.parametrize(("retention", "days"), VALID_RETENTION, ids=lambda v: str(v))
def test_retention_in_days_or_forever_is_accepted_by_the_crd_and_the_model(
    retention: dict[str, Any], days: tuple[int, int]
) -> None:
    raw = _with(retention=retention)
    assert _crd_errors(raw) == []
    kept = parse_spec(raw).retention
    assert (kept.retention_days(), kept.rollup_retention_days()) == days
    for field in ("events", "rollups"):
        if field in retention:
            assert getattr(kept, field) == retention[field]


BAD_DAYS: list[Any] = [0, -3, "90d", "forever ", "forever", "FOREVER", "90", "", "Forever "]


@pytest.mark.parametrize("field", ["events", "rollups"])
@pytest.mark.parametrize("value", BAD_DAYS, ids=repr)
def test_retention_that_is_no_day_count_nor_forever_is_refused_naming_the_field(
    field: str, value: Any
) -> None:
    # The other field Forever: only the value under test can be wrong.
    other = "rollups" if field == "events" else "events"
    raw = _with(retention={field: value, other: "Forever"})
    where = f"spec.retention.{field}"
    message = f"{where}: {spec_module.RETENTION_DAYS_MESSAGE}"
    assert _crd_errors(raw) == [f'{where}: Invalid value: "object": {message}']
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "kind"),
    [(True, "boolean"), (1.5, "number"), ({"days": 90}, "object"), ([90], "array")],
    ids=repr,
)
def test_retention_of_another_type_is_refused_by_type_naming_the_field(
    value: Any, kind: str
) -> None:
    raw = _with(retention={"events": value})
    # As kube-apiserver words it: an int-or-string is checked against both types.
    assert _crd_errors(raw) == [
        f'spec.retention.events: Invalid value: "{kind}": spec.retention.events in body must '
        f'be of type integer,string: "{kind}"',
        f"<nil>: Invalid value: null: {CEL_SKIPPED}",
    ]
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert str(info.value) == f"spec.retention.events: {spec_module.RETENTION_DAYS_MESSAGE}"


@pytest.mark.parametrize(
    "retention",
    [
        {"events": 100, "rollups": 99},
        {"events": 731},
        {"events": "Forever", "rollups": 36500},
        {"events": "Forever"},
    ],
    ids=str,
)
def test_rollups_kept_less_long_than_events_are_refused_naming_rollups(
    retention: dict[str, Any],
) -> None:
    raw = _with(retention=retention)
    message = spec_module.RETENTION_ROLLUPS_MESSAGE
    assert message.startswith("spec.retention.rollups: ")
    assert "hour rollups count the events" in message
    assert _crd_errors(raw) == [f'spec.retention.rollups: Invalid value: "object": {message}']
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert str(info.value) == message


def test_the_crd_and_the_model_give_the_same_messages() -> None:
    """problems() repeats the CRD's CEL messages word for word (adding the offending keys)."""
    rules = {}

    def walk(schema: dict[str, Any]) -> None:
        for rule in schema.get("x-kubernetes-validations", []):
            rules[rule["rule"]] = " ".join(rule["message"].split())
        for prop in schema.get("properties", {}).values():
            walk(prop)

    walk(crd_schema())
    messages = set(rules.values())
    for text, field in [
        (spec_module.RESERVED_LABELS_MESSAGE, "spec.spark.pods.labels"),
        (spec_module.RESERVED_ANNOTATIONS_MESSAGE, "spec.spark.pods.annotations"),
        (spec_module.TOLERATION_NO_KEY_MESSAGE, "spec.spark.pods.tolerations"),
        (spec_module.TOLERATION_EXISTS_VALUE_MESSAGE, "spec.spark.pods.tolerations"),
        (spec_module.TOLERATION_SECONDS_MESSAGE, "spec.spark.pods.tolerations"),
    ]:
        assert f"{field}: {text}" in messages, text
    assert spec_module.HASH_KEY_REQUIRED_MESSAGE in messages
    for field in ("spec.retention.events", "spec.retention.rollups"):
        assert f"{field}: {spec_module.RETENTION_DAYS_MESSAGE}" in messages
    assert spec_module.RETENTION_ROLLUPS_MESSAGE in messages
    # The reserved keys the model checks are the ones the CEL rules list.
    labels_rule = next(r for r in rules if "spark-role" in r)
    for key in spec_module.RESERVED_LABELS:
        assert f"'{key}'" in labels_rule
    for prefix in spec_module.RESERVED_LABEL_PREFIXES:
        assert f"k.startsWith('{prefix}')" in labels_rule
    conf_rule = next(r for r in rules if "spark.jars" in r)
    for key in spec_module.RESERVED_SPARK_CONF:
        assert f"'{key}'" in conf_rule
    # The patterns the CEL rules use for keys are the model's.
    assert f"k.matches('{spec_module.QUALIFIED_NAME}')" in next(r for r in rules if "matches" in r)
