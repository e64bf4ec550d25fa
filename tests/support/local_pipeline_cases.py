"""The local pipeline YAML (manifests/local/page-views.yaml) and invalid edits of it, each with
the field the first refusal must name: checked by the local validator in the unit tests and
against the real API server in the integration tests.

(On pytest's pythonpath, ``tests/support``: test modules import it by its unique name.)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import yaml

from pagestream.local.crd_schema import InvalidResource, validate
from pagestream.stack.paths import REPO_ROOT

LOCAL_PIPELINE = REPO_ROOT / "manifests" / "local" / "page-views.yaml"
Edit = Callable[[dict[str, Any]], None]


def base() -> dict[str, Any]:
    return yaml.safe_load(LOCAL_PIPELINE.read_text())


def edited(edit: Edit) -> dict[str, Any]:
    resource = copy.deepcopy(base())
    edit(resource)
    return resource


def _set(path: str, value: Any) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = resource
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    return edit


def _drop(path: str) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = resource
        for key in parents:
            node = node[key]
        del node[leaf]

    return edit


def _both(*edits: Edit) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        for one in edits:
            one(resource)

    return edit


# name → (edit, the field the first message must name)
INVALID: dict[str, tuple[Edit, str]] = {
    "bad-enum": (_set("spec.lifecycle.state", "paused"), "spec.lifecycle.state"),
    "negative-cores": (_set("spec.spark.driver.cores", -1), "spec.spark.driver.cores"),
    "both-kafka-sources": (
        _set("spec.kafka.strimziCluster", {"name": "pagestream-kafka"}),
        "spec.kafka",
    ),
    "wrong-type": (_set("spec.spark.executor.cores", "two"), "spec.spark.executor.cores"),
    "missing-checkpoint": (_drop("spec.checkpoint"), "spec.checkpoint"),
    "bad-duration": (_set("spec.spark.triggerInterval", "5s"), "spec.spark.triggerInterval"),
    "inline-password": (_set("spec.kafka.password", "hunter2"), "spec.kafka.password"),
    "long-name": (_set("metadata.name", "p" * 41), "metadata.name"),
    "empty-bootstrap": (_set("spec.kafka.bootstrapServers", ""), "spec.kafka.bootstrapServers"),
    "long-topic": (_set("spec.kafka.topic.name", "t" * 300), "spec.kafka.topic.name"),
    # The PII key is required for every pipeline: visitor ids are salted with it.
    "no-pii-key": (
        _drop("spec.processing.pii.hashKeySecretRef"),
        "spec.processing.pii.hashKeySecretRef",
    ),
    "no-pii-key-without-email-hashing": (
        _both(
            _drop("spec.processing.pii.hashKeySecretRef"),
            _set("spec.processing.pii.hashEmail", False),
        ),
        "spec.processing.pii.hashKeySecretRef",
    ),
    # TLS settings that contradict each other (CEL rules across fields).
    "kafka-tls-with-sasl-plaintext": (
        _both(
            _set("spec.kafka.tls", {}),
            _set(
                "spec.kafka.authentication",
                {"securityProtocol": "SASL_PLAINTEXT", "secretRef": {"name": "job-user"}},
            ),
        ),
        "spec.kafka.authentication.securityProtocol",
    ),
    "postgres-ca-with-require": (
        _set("spec.postgres.tls", {"mode": "require", "caSecretRef": {"name": "db-ca"}}),
        "spec.postgres.tls.caSecretRef",
    ),
    # An explicit host defaults to prefer, which verifies nothing.
    "postgres-ca-without-a-verifying-mode": (
        _set("spec.postgres.tls", {"caSecretRef": {"name": "db-ca"}}),
        "spec.postgres.tls.caSecretRef",
    ),
    "postgres-unknown-sslmode": (
        _set("spec.postgres.tls", {"mode": "allow"}),
        "spec.postgres.tls.mode",
    ),
    # Retention: whole days of at least 1 or Forever (an int-or-string), rollups at least as
    # long as events.
    "retention-zero-days": (_set("spec.retention", {"events": 0}), "spec.retention.events"),
    "retention-forever-misspelt": (
        _set("spec.retention", {"rollups": "forever"}),
        "spec.retention.rollups",
    ),
    "retention-wrong-type": (_set("spec.retention", {"events": True}), "spec.retention.events"),
    "retention-rollups-before-events": (
        _set("spec.retention", {"events": "Forever", "rollups": 730}),
        "spec.retention.rollups",
    ),
}


def local_messages(resource: dict[str, Any]) -> list[str]:
    try:
        validate(resource)
    except InvalidResource as exc:
        return sorted(str(e) for e in exc.errors)
    return []
