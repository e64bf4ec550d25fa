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
    ],
)
def test_bad_values_are_rejected(override: dict[str, Any], where: str) -> None:
    found = errors(merge(DEFAULTS, override))
    assert any(e.startswith(f"{where}:") for e in found), found
