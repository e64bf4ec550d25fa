"""values.schema.json: a valid JSON Schema, satisfied by the chart's defaults and by every
ci/*-values.yaml merged over them, and strict enough to reject typos and bad values."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

CHART = Path(__file__).resolve().parents[3] / "charts" / "pagestream"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge: maps merge key by key, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def errors(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)
    ]


def test_schema_is_valid_draft7() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_defaults_validate() -> None:
    assert errors(DEFAULTS) == []


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_scenario_validates(path: Path) -> None:
    assert errors(merge(DEFAULTS, yaml.safe_load(path.read_text()))) == []


def test_every_default_is_described_by_the_schema() -> None:
    """additionalProperties is false wherever the chart owns the keys, so the schema lists every
    value the templates read; a value in values.yaml the schema does not know fails here."""

    def walk(values: Any, schema: dict[str, Any], path: str) -> None:
        if not isinstance(values, dict) or schema.get("additionalProperties") is not False:
            return
        for key, value in values.items():
            assert key in schema["properties"], f"{path}.{key} is not in values.schema.json"
            walk(value, schema["properties"][key], f"{path}.{key}")

    walk(DEFAULTS, SCHEMA, "")


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ({"operator": {"replicas": 2}}, "operator/replicas"),
        ({"operator": {"metricsPort": 0}}, "operator/metricsPort"),
        ({"kafka": {"replicas": 0}}, "kafka/replicas"),
        ({"kafka": {"topic": "bad topic"}}, "kafka/topic"),
        ({"kafka": {"name": "Not_DNS"}}, "kafka/name"),
        ({"postgres": {"storage": {"size": "lots"}}}, "postgres/storage/size"),
        ({"strimzi": {"enabled": "yes"}}, "strimzi/enabled"),
        ({"examplePipeline": {"create": True}, "kafka": {"create": False}}, "kafka/create"),
        ({"operatr": {}}, ""),
        # The operator pod's settings (issue 14, item 6).
        ({"operator": {"image": {"digest": "sha256:abc"}}}, "operator/image/digest"),
        ({"operator": {"image": {"digest": "latest"}}}, "operator/image/digest"),
        (
            {"operator": {"podSecurityContext": {"runAsUser": "root"}}},
            "operator/podSecurityContext/runAsUser",
        ),
        (
            {"operator": {"podSecurityContext": {"runAsUser": -1}}},
            "operator/podSecurityContext/runAsUser",
        ),
        (
            {"operator": {"podSecurityContext": {"runAsNonRoot": "true"}}},
            "operator/podSecurityContext/runAsNonRoot",
        ),
        (
            {"operator": {"podSecurityContext": {"seccompProfile": {"type": "runtime/default"}}}},
            "operator/podSecurityContext/seccompProfile/type",
        ),
        (
            {"operator": {"containerSecurityContext": {"readOnlyRootFileSystem": True}}},
            "operator/containerSecurityContext",
        ),
        (
            {"operator": {"containerSecurityContext": {"capabilities": {"drop": "ALL"}}}},
            "operator/containerSecurityContext/capabilities/drop",
        ),
        (
            {"operator": {"containerSecurityContext": {"privileged": "no"}}},
            "operator/containerSecurityContext/privileged",
        ),
        ({"operator": {"priorityClassName": "High_Priority"}}, "operator/priorityClassName"),
        ({"operator": {"priorityClassName": 1000}}, "operator/priorityClassName"),
        ({"operator": {"extraEnv": {"LOG": "1"}}}, "operator/extraEnv"),
        ({"operator": {"extraEnv": [{"name": "LOG", "value": 1}]}}, "operator/extraEnv/0/value"),
        ({"operator": {"extraEnv": [{"value": "1"}]}}, "operator/extraEnv/0"),
        (
            {"operator": {"extraEnv": [{"name": "A", "value": "1", "valueFrom": {}}]}},
            "operator/extraEnv/0",
        ),
        ({"operator": {"readinessPort": 70000}}, "operator/readinessPort"),
        (
            {"operator": {"livenessProbe": {"periodSeconds": 0}}},
            "operator/livenessProbe/periodSeconds",
        ),
        (
            {"operator": {"readinessProbe": {"timeoutSeconds": "5s"}}},
            "operator/readinessProbe/timeoutSeconds",
        ),
        ({"operator": {"readinessProbe": {"httpGet": {"path": "/"}}}}, "operator/readinessProbe"),
        (
            {"operator": {"podDisruptionBudget": {"enabled": "yes"}}},
            "operator/podDisruptionBudget/enabled",
        ),
        (
            {"operator": {"podDisruptionBudget": {"minAvailable": "half"}}},
            "operator/podDisruptionBudget/minAvailable",
        ),
        (
            {"operator": {"podDisruptionBudget": {"unhealthyPodEvictionPolicy": "Never"}}},
            "operator/podDisruptionBudget/unhealthyPodEvictionPolicy",
        ),
        ({"operator": {"networkPolicy": {"enabled": 1}}}, "operator/networkPolicy/enabled"),
        (
            {"operator": {"networkPolicy": {"metricsFrom": {"namespaceSelector": {}}}}},
            "operator/networkPolicy/metricsFrom",
        ),
        (
            {"operator": {"networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1"]}}}},
            "operator/networkPolicy/apiServer/cidrs/0",
        ),
        (
            {"operator": {"networkPolicy": {"apiServer": {"ports": [0]}}}},
            "operator/networkPolicy/apiServer/ports/0",
        ),
        (
            {"operator": {"networkPolicy": {"dns": {"ports": []}}}},
            "operator/networkPolicy/dns/ports",
        ),
        ({"operator": {"networkPolicy": {"dns": {"to": []}}}}, "operator/networkPolicy/dns/to"),
        (
            {"operator": {"networkPolicy": {"extraEgress": [{"to": []}, "all"]}}},
            "operator/networkPolicy/extraEgress/1",
        ),
    ],
)
def test_bad_values_are_rejected(override: dict[str, Any], where: str) -> None:
    found = errors(merge(DEFAULTS, override))
    assert any(e.startswith(f"{where}:") for e in found), found


@pytest.mark.parametrize(
    "override",
    [
        # What OpenShift's restricted-v2 SCC and a cluster of its own would set.
        {"operator": {"podSecurityContext": {"runAsUser": 1000680000, "fsGroup": 1000680000}}},
        {"operator": {"containerSecurityContext": {"runAsUser": 1000680000, "runAsGroup": 0}}},
        {"operator": {"podDisruptionBudget": {"enabled": True, "minAvailable": "100%"}}},
        {"operator": {"image": {"digest": "sha256:" + "0a" * 32}}},
        {
            "operator": {
                "extraEnv": [
                    {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
                ]
            }
        },
        {
            "operator": {
                "networkPolicy": {
                    "enabled": True,
                    "apiServer": {"cidrs": ["10.0.0.0/8", "fd00::/8"], "ports": [443]},
                }
            }
        },
    ],
)
def test_good_pod_settings_validate(override: dict[str, Any]) -> None:
    assert errors(merge(DEFAULTS, override)) == []


def test_the_pod_defaults_fix_no_uid_and_are_restricted() -> None:
    """Secure by default, yet no uid, gid or fsGroup, so a platform may assign its own."""
    operator = DEFAULTS["operator"]
    pod, container = operator["podSecurityContext"], operator["containerSecurityContext"]
    for context in (pod, container):
        assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(context), context
        assert context["runAsNonRoot"] is True
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["privileged"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert operator["podDisruptionBudget"]["enabled"] is False
    assert operator["networkPolicy"]["enabled"] is False
