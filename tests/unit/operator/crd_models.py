"""Compare a pydantic model with the CRD's schema for it, for the spec and the status models.

(Not a package, like ``operator_cases``: test modules import it by its unique name.)
"""

from __future__ import annotations

import types
import typing
from enum import Enum
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from pagestream.stack.paths import PIPELINE_CRD

CRD_FILE = PIPELINE_CRD

# The CRD's type for each Python type a model field may have.
_OPENAPI_TYPES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    str: "string",
    dict: "object",
    list: "array",
}


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _without_none(annotation: Any) -> Any:
    """X for ``X | None``; the annotation itself otherwise."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return _without_none(rest[0])
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside ``X | None`` (or X itself), if any."""
    candidate = _without_none(annotation)
    if isinstance(candidate, type) and issubclass(candidate, BaseModel):
        return candidate
    return None


def _int_or_string(annotation: Any) -> bool:
    """Whether the annotation is what x-kubernetes-int-or-string holds: a union of int and
    strings (str or string Literals), each member possibly Annotated."""
    union = _without_none(annotation)
    if not (isinstance(union, types.UnionType) or typing.get_origin(union) is typing.Union):
        return False
    kinds = set()
    for member in typing.get_args(union):
        member = _without_none(member)
        literal = typing.get_args(member) if typing.get_origin(member) is typing.Literal else ()
        if member is int:
            kinds.add("integer")
        elif member is str or (literal and all(isinstance(v, str) for v in literal)):
            kinds.add("string")
        else:
            return False
    return kinds == {"integer", "string"}


def _openapi_type(annotation: Any) -> str | None:
    """The CRD type a field of this annotation must have; None when it cannot be told."""
    candidate = _without_none(annotation)
    if _model_of(candidate) is not None:
        return "object"
    origin = typing.get_origin(candidate) or candidate
    if isinstance(origin, type):
        for python, openapi in _OPENAPI_TYPES.items():
            # bool is an int subclass: it is checked first.
            if issubclass(origin, python):
                return openapi
    return None


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _forbidden(prop: dict[str, Any]) -> bool:
    # Fields the CRD declares only to reject them (inline credentials) say so first thing.
    return bool(prop.get("description", "").startswith("Not allowed"))


def _compare_field(prop: dict[str, Any], field: FieldInfo, where: str) -> list[str]:
    problems = []
    if bool(prop.get("x-kubernetes-int-or-string")) != _int_or_string(field.annotation):
        problems.append(
            f"{where}: x-kubernetes-int-or-string in CRD={bool(prop.get('x-kubernetes-int-or-string'))}"
            f", model an int-or-string union={_int_or_string(field.annotation)}"
        )
    expected = _openapi_type(field.annotation)
    if expected is not None and prop.get("type") != expected:
        problems.append(f"{where}: CRD type {prop.get('type')!r}, model {expected!r}")
    sub = _model_of(field.annotation)
    if prop.get("type") == "object" and "properties" in prop:
        if sub is None:
            return [*problems, f"{where}: an object in the CRD, not a model"]
        problems += compare(prop, sub, where)
        if prop.get("default") == {} and field.get_default() != sub():
            problems.append(f"{where}: CRD defaults to {{}}, the model to something else")
    elif prop.get("type") == "array" and "properties" in prop.get("items", {}):
        (item,) = typing.get_args(_without_none(field.annotation))
        item_model = _model_of(item)
        if item_model is None:
            return [*problems, f"{where}: an array of objects in the CRD, not of a model"]
        problems += compare(prop["items"], item_model, f"{where}[]")
    elif "default" in prop:
        default = _plain(field.get_default(call_default_factory=True))
        if default != prop["default"]:
            problems.append(f"{where}: CRD default {prop['default']!r}, model {default!r}")
    if "enum" in prop:
        enum_type = _without_none(field.annotation)
        values = sorted(e.value for e in enum_type)
        if values != sorted(prop["enum"]):
            problems.append(f"{where}: CRD enum {prop['enum']}, model {values}")
    return problems


def compare(schema: dict[str, Any], model: type[BaseModel], path: str) -> list[str]:
    """Every difference between ``schema`` (an object's schema in the CRD) and ``model``: field
    names, required fields, types (int-or-string too), defaults, enums, and the same for nested
    objects and arrays of objects."""
    props = {k: v for k, v in schema["properties"].items() if not _forbidden(v)}
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    if set(props) != set(fields):
        return [f"{path}: CRD has {sorted(props)}, model has {sorted(fields)}"]
    problems = []
    for key, prop in props.items():
        field = fields[key]
        where = f"{path}.{key}"
        required = key in schema.get("required", [])
        if required != field.is_required():
            problems.append(f"{where}: required in CRD={required}, in model={field.is_required()}")
        problems += _compare_field(prop, field, where)
    return problems
