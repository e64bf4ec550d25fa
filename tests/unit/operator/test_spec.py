"""The typed spec model agrees with the CRD, and parsing reports problems by field name."""

from __future__ import annotations

import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from pagestream_operator.spec import PipelineSpec, SpecError, parse_spec

REPO = Path(__file__).resolve().parents[3]
CRD_FILE = REPO / "charts/pagestream/crds/pagestream.dev_pageanalyticspipelines.yaml"


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside ``X | None`` (or X itself), if any."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    for candidate in (annotation, *candidates):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _forbidden(prop: dict[str, Any]) -> bool:
    # Fields the CRD declares only to reject them (inline credentials) say so first thing.
    return prop.get("description", "").startswith("Not allowed")


def _compare(schema: dict[str, Any], model: type[BaseModel], path: str) -> list[str]:
    problems = []
    props = {k: v for k, v in schema["properties"].items() if not _forbidden(v)}
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    if set(props) != set(fields):
        problems.append(f"{path}: CRD has {sorted(props)}, model has {sorted(fields)}")
        return problems
    for key, prop in props.items():
        field = fields[key]
        where = f"{path}.{key}"
        required = key in schema.get("required", [])
        if required != field.is_required():
            problems.append(f"{where}: required in CRD={required}, in model={field.is_required()}")
        sub = _model_of(field.annotation)
        if prop.get("type") == "object" and "properties" in prop:
            if sub is None:
                problems.append(f"{where}: an object in the CRD, not a model")
                continue
            problems += _compare(prop, sub, where)
            if prop.get("default") == {} and field.get_default() != sub():
                problems.append(f"{where}: CRD defaults to {{}}, the model to something else")
        elif "default" in prop:
            default = _plain(field.get_default(call_default_factory=True))
            if default != prop["default"]:
                problems.append(f"{where}: CRD default {prop['default']!r}, model {default!r}")
        if "enum" in prop:
            enum_type = field.annotation
            values = sorted(e.value for e in enum_type)  # type: ignore[union-attr]
            if values != sorted(prop["enum"]):
                problems.append(f"{where}: CRD enum {prop['enum']}, model {values}")
    return problems


def test_model_fields_and_defaults_match_the_crd() -> None:
    spec_schema = crd_schema()["properties"]["spec"]
    assert _compare(spec_schema, PipelineSpec, "spec") == []


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


MINIMAL = {
    "kafka": {"bootstrapServers": "k:9092", "topic": {"name": "views"}},
    "postgres": {"cnpgCluster": {"name": "db"}},
    "spark": {"image": "img"},
    "processing": {"pii": {"hashKeySecretRef": {"name": "pii"}}},
    "checkpoint": {"uri": "s3a://b"},
}


def _with(**changes: Any) -> dict[str, Any]:
    spec = yaml.safe_load(yaml.safe_dump(MINIMAL))
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
    spec = parse_spec(MINIMAL)
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
        ({"checkpoint__persistentVolumeClaim": {"claimName": "c"}}, "spec.checkpoint"),
        ({"spark__conf": {"spark.kubernetes.namespace": "x"}}, "spec.spark.conf"),
        ({"spark__driver": {"cores": -1}}, "spec.spark.driver.cores"),
        ({"lifecycle": {"state": "paused"}}, "spec.lifecycle.state"),
        ({"spark__executor": {"memory": "lots"}}, "spec.spark.executor.memory"),
    ],
)
def test_invalid_specs_are_rejected_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_with(**changes))
    assert message in str(info.value)
