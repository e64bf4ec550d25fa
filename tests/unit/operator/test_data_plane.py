"""What the operator makes of the chart's data plane ConfigMap (pure: no API server)."""

from __future__ import annotations

import json

import pytest
import yaml

from pagestream_operator.data_plane import (
    DATA_PLANE_LABEL,
    DataPlaneError,
    ObjectOutcome,
    ObjectState,
    desired,
    parse_objects,
    settled,
    stale,
    status_text,
    waiting_for_crd,
)
from pagestream_operator.settings import OperatorSettings, SettingsError

CLUSTER = {
    "apiVersion": "postgresql.cnpg.io/v1",
    "kind": "Cluster",
    "metadata": {"name": "pagestream-db", "namespace": "elsewhere", "labels": {"a": "b"}},
    "spec": {"instances": 1},
}
KAFKA = {"apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka", "metadata": {"name": "k"}}
OWNER = {"metadata": {"name": "ps-data-plane", "uid": "u-1"}}


def test_objects_are_read_in_order() -> None:
    objects = parse_objects(yaml.safe_dump_all([CLUSTER, KAFKA]) + "---\n")
    assert [str(o) for o in objects] == ["Cluster/pagestream-db", "Kafka/k"]
    assert [o.crd for o in objects] == ["clusters.postgresql.cnpg.io", "kafkas.kafka.strimzi.io"]


@pytest.mark.parametrize(
    ("documents", "words"),
    [
        ("a: [", "objects.yaml is not YAML"),
        ("- 1\n", "document 1 is not an object"),
        (
            yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
            "Secret (v1) is not one of Kafka (kafka.strimzi.io/v1)",
        ),
        (yaml.safe_dump({**CLUSTER, "metadata": {}}), "document 1 has no metadata.name"),
        (
            yaml.safe_dump_all([CLUSTER, CLUSTER]),
            "document 2: Cluster/pagestream-db is listed twice",
        ),
    ],
    ids=["not-yaml", "not-an-object", "other-kind", "no-name", "twice"],
)
def test_a_configmap_that_cannot_be_applied_says_which_document(documents: str, words: str) -> None:
    with pytest.raises(DataPlaneError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_objects(documents)


def test_an_object_is_applied_in_the_configmaps_namespace_labelled_and_owned_by_it() -> None:
    (obj,) = parse_objects(yaml.safe_dump(CLUSTER))
    body = desired(obj, "platform", OWNER)
    assert body["metadata"] == {
        "name": "pagestream-db",
        "namespace": "platform",
        "labels": {"a": "b", DATA_PLANE_LABEL: "ps-data-plane"},
        "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "ps-data-plane", "uid": "u-1"}
        ],
    }
    assert body["spec"] == {"instances": 1}
    assert CLUSTER["metadata"]["namespace"] == "elsewhere"  # the ConfigMap's copy is untouched


def test_the_status_is_stable_and_ready_only_when_all_is_applied() -> None:
    (cluster, kafka) = parse_objects(yaml.safe_dump_all([CLUSTER, KAFKA]))
    waiting = [ObjectOutcome(str(cluster), ObjectState.APPLIED), waiting_for_crd(kafka)]
    text = status_text(waiting)
    assert text == status_text(list(waiting))
    found = json.loads(text)
    assert found["ready"] is False and not settled(waiting)
    assert found["objects"][1] == {
        "object": "Kafka/k",
        "state": "WaitingForCRD",
        "message": "waiting for the CRD kafkas.kafka.strimzi.io: the operator that serves it is "
        "not installed yet",
    }
    applied = [ObjectOutcome(str(o), ObjectState.APPLIED) for o in (cluster, kafka)]
    assert json.loads(status_text(applied))["ready"] is True and settled(applied)
    broken = json.loads(status_text([], "objects.yaml is not YAML"))
    assert broken == {"ready": False, "error": "objects.yaml is not YAML", "objects": []}


def test_objects_no_longer_listed_are_the_stale_ones() -> None:
    wanted = parse_objects(yaml.safe_dump(CLUSTER))
    found = [("Cluster", "pagestream-db"), ("Cluster", "old-db"), ("KafkaUser", "u")]
    assert stale(found, wanted) == [("Cluster", "old-db"), ("KafkaUser", "u")]


def test_the_data_plane_configmap_needs_its_namespace() -> None:
    with pytest.raises(SettingsError, match="data_plane_configmap needs data_plane_namespace"):
        OperatorSettings.load(["--data-plane-configmap=dp"], {})
    settings = OperatorSettings.load(
        ["--data-plane-configmap=dp", "--data-plane-namespace=ns", "--data-plane-resync-seconds=5"],
        {},
    )
    assert (settings.data_plane_configmap, settings.data_plane_namespace) == ("dp", "ns")
    assert settings.data_plane_resync_seconds == 5
