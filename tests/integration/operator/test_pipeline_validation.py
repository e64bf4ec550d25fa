"""The API server itself rejects invalid pipelines (structural schema + CEL rules in the CRD),
with messages naming the field; the operator never sees them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from operator_harness import GROUP, PLURAL, VERSION, kubectl, pipeline_body

from pagestream.local.crd_schema import InvalidResource
from pagestream.local.crd_schema import validate as crd_validate
from pagestream.stack.kube import KubeControlPlane

pytestmark = pytest.mark.kube


def _set(spec: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value


RETENTION_DAYS = "must be a whole number of days of at least 1 (e.g. 90, unquoted) or the string"
RETENTION_ORDER = (
    "spec.retention.rollups: must be at least spec.retention.events, and Forever when events is "
    "Forever: hour rollups count the events, so they cannot be dropped before them"
)

# (changes to a valid spec, field the error names, words of the message)
INVALID = {
    "bad enum": (
        {"lifecycle.state": "paused"},
        "spec.lifecycle.state",
        'supported values: "running", "suspended"',
    ),
    "bad upgrade mode": (
        {"lifecycle.upgradeMode": "savepoint"},
        "spec.lifecycle.upgradeMode",
        "supported values",
    ),
    "negative driver cores": (
        {"spark.driver.cores": -1},
        "spec.spark.driver.cores",
        "greater than or equal to 1",
    ),
    "zero executors": (
        {"spark.executor.instances": 0},
        "spec.spark.executor.instances",
        "greater than or equal to 1",
    ),
    "both kafka sources": (
        {"kafka.strimziCluster": {"name": "events"}},
        "spec.kafka",
        "set exactly one of strimziCluster or bootstrapServers",
    ),
    "neither kafka source": (
        {"kafka.bootstrapServers": None},
        "spec.kafka",
        "set exactly one of strimziCluster or bootstrapServers",
    ),
    "inline kafka password": (
        {"kafka.authentication": {"secretRef": {"name": "u"}, "password": "hunter2"}},
        "spec.kafka.authentication.password",
        "inline credentials are not allowed",
    ),
    "inline postgres password": (
        {"postgres.password": "hunter2"},
        "spec.postgres.password",
        "inline credentials are not allowed",
    ),
    "inline pii key": (
        {"processing.pii.hashKey": "s3cret"},
        "spec.processing.pii.hashKey",
        "inline keys are not allowed",
    ),
    "both postgres sources": (
        {"postgres.secretRef": {"name": "db"}},
        "spec.postgres",
        "set exactly one of cnpgCluster or secretRef",
    ),
    "managed topic without strimzi": (
        {"kafka.topic.manage": True},
        "spec.kafka.topic.manage",
        "needs spec.kafka.strimziCluster",
    ),
    "no hash key": (
        {"processing.pii.hashKeySecretRef": None},
        "spec.processing.pii.hashKeySecretRef",
        "spec.processing.pii.hashKeySecretRef is required: visitor ids are salted with this key",
    ),
    "no hash key without email hashing": (
        {"processing.pii.hashKeySecretRef": None, "processing.pii.hashEmail": False},
        "spec.processing.pii.hashKeySecretRef",
        "spec.processing.pii.hashKeySecretRef is required: visitor ids are salted with this key",
    ),
    "bad memory notation": (
        {"spark.executor.memory": "2 GB"},
        "spec.spark.executor.memory",
        "should match",
    ),
    # spec.retention: whole days of at least 1, or exactly Forever (CEL on an int-or-string).
    "zero days of events": (
        {"retention.events": 0},
        "spec.retention.events",
        RETENTION_DAYS,
    ),
    "negative days of rollups": (
        {"retention.rollups": -3, "retention.events": 1},
        "spec.retention.rollups",
        RETENTION_DAYS,
    ),
    "days with a unit": (
        {"retention.events": "90d"},
        "spec.retention.events",
        RETENTION_DAYS,
    ),
    "days quoted": (
        {"retention.events": "90"},
        "spec.retention.events",
        RETENTION_DAYS,
    ),
    "forever with a space": (
        {"retention.rollups": "forever "},
        "spec.retention.rollups",
        RETENTION_DAYS,
    ),
    "days of another type": (
        {"retention.events": True},
        "spec.retention.events",
        "must be of type integer,string",
    ),
    "fractional days": (
        {"retention.events": 1.5},
        "spec.retention.events",
        "must be of type integer,string",
    ),
    # JSON's 1.0 passes the schema's integer type, but CEL cannot read it as an int-or-string:
    # the rules reading events fail, on spec.retention. (pagestream.local.crd_schema refuses it
    # with the events rule's own message instead: celpy reads 1.0 as a double.)
    "whole days as a float": (
        {"retention.events": 1.0},
        "spec.retention",
        "expected XIntOrString value to be either a string or integer evaluating rule: "
        "spec.retention.events: must be a whole number of days",
    ),
    "rollups shorter than events": (
        {"retention.events": 100, "retention.rollups": 99},
        "spec.retention.rollups",
        RETENTION_ORDER,
    ),
    "events forever, rollups not": (
        {"retention.events": "Forever"},
        "spec.retention.rollups",
        RETENTION_ORDER,
    ),
}
# Compared word for word with the local validator: all but "whole days as a float" (above).
RETENTION_CASES = [c for c in INVALID if INVALID[c][1].startswith("spec.retention.")]


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_pipelines_are_rejected_naming_the_field(
    objects: client.CustomObjectsApi, namespace: str, case: str
) -> None:
    changes, field, words = INVALID[case]
    body = pipeline_body(f"bad-{uuid.uuid4().hex[:6]}")
    for dotted, value in changes.items():
        _set(body["spec"], dotted, value)
    with pytest.raises(ApiException) as info:
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert info.value.status == 422, info.value.body
    causes = json.loads(info.value.body)["details"]["causes"]
    assert any(c.get("field") == field and words in c.get("message", "") for c in causes), causes


@pytest.mark.parametrize("case", RETENTION_CASES, ids=RETENTION_CASES)
def test_retention_refusals_are_the_local_validators_word_for_word(
    objects: client.CustomObjectsApi, namespace: str, case: str
) -> None:
    """x-kubernetes-int-or-string is new to the CRD: `pagestream up`'s validator
    (pagestream.local.crd_schema) must refuse these exactly as the server does."""
    changes, _, _ = INVALID[case]
    body = pipeline_body(f"bad-{uuid.uuid4().hex[:6]}")
    for dotted, value in changes.items():
        _set(body["spec"], dotted, value)
    try:
        crd_validate(body)
    except InvalidResource as exc:
        local = sorted(str(e) for e in exc.errors)
    else:
        local = []
    with pytest.raises(ApiException) as info:
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    causes = json.loads(info.value.body)["details"]["causes"]
    assert sorted(f"{c['field']}: {c['message']}" for c in causes) == local


@pytest.mark.parametrize(
    "retention",
    [
        {"events": "Forever", "rollups": "Forever"},
        {"events": 1, "rollups": 1},
        {"events": 30, "rollups": "Forever"},
        {"events": 400},
    ],
    ids=["forever", "one-day", "rollups-forever", "rollups-default"],
)
def test_retention_in_days_or_forever_is_accepted(
    objects: client.CustomObjectsApi, namespace: str, retention: dict[str, Any]
) -> None:
    name = f"ret-{uuid.uuid4().hex[:6]}"
    created = objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, pipeline_body(name, retention=retention)
    )
    assert created["spec"]["retention"] == {"rollups": 730, **retention}


def test_retention_changed_to_forever_alone_is_refused_on_update(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    """The usual slip: events set to Forever in a pipeline whose rollups are the default."""
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, pipeline_body("up"))
    with pytest.raises(ApiException) as info:
        objects.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "up", {"spec": {"retention": {"events": "Forever"}}}
        )
    assert info.value.status == 422
    causes = json.loads(info.value.body)["details"]["causes"]
    assert [(c["field"], c["message"]) for c in causes] == [
        ("spec.retention.rollups", f'Invalid value: "object": {RETENTION_ORDER}')
    ]
    both = {"spec": {"retention": {"events": "Forever", "rollups": "Forever"}}}
    patched = objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "up", both)
    assert patched["spec"]["retention"] == {"events": "Forever", "rollups": "Forever"}


def test_a_name_too_long_for_the_spark_pods_is_rejected(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    with pytest.raises(ApiException) as info:
        objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, pipeline_body("p" * 41)
        )
    assert info.value.status == 422
    assert "metadata.name must be at most 40 characters" in info.value.body


def test_a_valid_pipeline_is_accepted_and_defaulted(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    created = objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, pipeline_body("ok")
    )
    spec = created["spec"]
    assert spec["lifecycle"] == {"state": "running", "upgradeMode": "last-state"}
    assert spec["spark"]["executor"] == {"instances": 1, "cores": 1, "memory": "1g"}
    assert spec["monitoring"]["metricsPort"] == 9108
    assert spec["retention"] == {"events": 90, "rollups": 730}


def test_scale_subresource_sets_the_executor_count(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, pipeline_body("sc"))
    objects.patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, PLURAL, "sc", {"spec": {"replicas": 4}}
    )
    body = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "sc")
    assert body["spec"]["spark"]["executor"]["instances"] == 4


def test_kubectl_explain_reads_well(kube: KubeControlPlane, crds: list[str]) -> None:
    text = kubectl(kube, "explain", "pageanalyticspipeline.spec").stdout
    assert "Desired state of the pipeline." in text
    for field in (
        "kafka",
        "postgres",
        "spark",
        "processing",
        "checkpoint",
        "lifecycle",
        "monitoring",
        "retention",
    ):
        assert f"\n  {field}\t<Object>" in text, text
    lifecycle = kubectl(kube, "explain", "pap.spec.lifecycle.upgradeMode").stdout
    assert "last-state keeps" in lifecycle
    assert "stateless" in lifecycle
    events = kubectl(kube, "explain", "pap.spec.retention.events").stdout
    assert "dead-lettered with reason past_retention" in " ".join(events.split())
