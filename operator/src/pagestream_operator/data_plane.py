"""The data plane the chart asks for, applied by the operator once its CRDs are served: pure part.

Helm cannot create a CloudNativePG ``Cluster`` or a Strimzi ``Kafka`` in the release that
installs their operators (their CRDs are not there when the release is rendered, and their
admission webhooks are not serving yet). So the chart renders those objects into one ConfigMap
(key :data:`OBJECTS_KEY`) and the operator applies them, each as soon as its kind is served
and its operator's webhook accepts it, retrying until then (:mod:`.data_plane_loop`). This
module decides what to apply and what to say about it; no I/O.

Every applied object carries the label :data:`DATA_PLANE_LABEL` (the ConfigMap's name) and an
owner reference to the ConfigMap: ``helm uninstall`` deletes the ConfigMap and the garbage
collector the objects, as it deleted them when they were the chart's own; an object no longer
listed (``postgres.create=false`` on upgrade) is deleted by the operator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml

OBJECTS_KEY = "objects.yaml"
DATA_PLANE_LABEL = "pagestream.dev/data-plane"
STATUS_ANNOTATION = "pagestream.dev/data-plane-status"

# The kinds the chart may list, with their plurals (applying needs no discovery) and the CRD
# that brings each, named in what the operator says while it waits.
DATA_PLANE_KINDS: tuple[tuple[str, str, str], ...] = (
    ("kafka.strimzi.io/v1", "Kafka", "kafkas"),
    ("kafka.strimzi.io/v1", "KafkaNodePool", "kafkanodepools"),
    ("kafka.strimzi.io/v1", "KafkaUser", "kafkausers"),
    ("postgresql.cnpg.io/v1", "Cluster", "clusters"),
)
_PLURALS = {(api, kind): plural for api, kind, plural in DATA_PLANE_KINDS}


class DataPlaneError(ValueError):
    """The ConfigMap's objects cannot be applied as they are; the message says which."""


@dataclass(frozen=True)
class DataPlaneObject:
    api_version: str
    kind: str
    name: str
    body: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def crd(self) -> str:
        """The CRD's name, ``<plural>.<group>``."""
        return f"{_PLURALS[(self.api_version, self.kind)]}.{self.api_version.split('/')[0]}"


def parse_objects(text: str) -> list[DataPlaneObject]:
    """The ConfigMap's objects, in order; :class:`DataPlaneError` for a document that is no
    object of a listed kind, or a name listed twice."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise DataPlaneError(f"{OBJECTS_KEY} is not YAML: {exc}") from exc
    objects: list[DataPlaneObject] = []
    seen: set[tuple[str, str]] = set()
    for index, doc in enumerate(documents):
        where = f"{OBJECTS_KEY} document {index + 1}"
        if not isinstance(doc, dict):
            raise DataPlaneError(f"{where} is not an object")
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        name = (doc.get("metadata") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise DataPlaneError(f"{where} has no metadata.name")
        if (api_version, kind) not in _PLURALS:
            known = ", ".join(f"{k} ({a})" for a, k, _ in DATA_PLANE_KINDS)
            raise DataPlaneError(f"{where}: {kind} ({api_version}) is not one of {known}")
        obj = DataPlaneObject(str(api_version), str(kind), name, doc)
        if (obj.kind, name) in seen:
            raise DataPlaneError(f"{where}: {obj} is listed twice")
        seen.add((obj.kind, name))
        objects.append(obj)
    return objects


def desired(obj: DataPlaneObject, namespace: str, owner: dict[str, Any]) -> dict[str, Any]:
    """The object to apply: in the ConfigMap's namespace, labelled with the ConfigMap's name and
    owned by it (``owner`` is the ConfigMap: its name and uid)."""
    meta = dict(obj.body.get("metadata") or {})
    meta["namespace"] = namespace
    meta["labels"] = {**(meta.get("labels") or {}), DATA_PLANE_LABEL: owner["metadata"]["name"]}
    meta["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
        }
    ]
    return {**obj.body, "metadata": meta}


class ObjectState(StrEnum):
    APPLIED = "Applied"
    # Its kind is not served: the operator that brings the CRD is not installed (yet).
    WAITING_FOR_CRD = "WaitingForCRD"
    # The API server refused it (its operator's webhook not serving yet, or a bad field).
    FAILED = "Failed"


@dataclass(frozen=True)
class ObjectOutcome:
    ref: str
    state: ObjectState
    message: str = ""


def waiting_for_crd(obj: DataPlaneObject) -> ObjectOutcome:
    return ObjectOutcome(
        str(obj),
        ObjectState.WAITING_FOR_CRD,
        f"waiting for the CRD {obj.crd}: the operator that serves it is not installed yet",
    )


def settled(outcomes: list[ObjectOutcome]) -> bool:
    """Whether every object is applied (the loop then checks less often)."""
    return all(o.state is ObjectState.APPLIED for o in outcomes)


def status_text(outcomes: list[ObjectOutcome], error: str | None = None) -> str:
    """The ConfigMap's status annotation: JSON a person and ``kubectl get -o jsonpath`` read,
    stable for equal outcomes (so an unchanged pass writes nothing)."""
    return json.dumps(
        {
            "ready": error is None and settled(outcomes),
            **({"error": error} if error else {}),
            "objects": [
                {
                    "object": o.ref,
                    "state": o.state.value,
                    **({"message": o.message} if o.message else {}),
                }
                for o in outcomes
            ],
        },
        sort_keys=True,
    )


def stale(labelled: list[tuple[str, str]], wanted: list[DataPlaneObject]) -> list[tuple[str, str]]:
    """Of the (kind, name) pairs found carrying the ConfigMap's label, those it lists no more."""
    keep = {(o.kind, o.name) for o in wanted}
    return [ref for ref in labelled if ref not in keep]
