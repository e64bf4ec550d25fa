"""Validate a custom resource against its CRD the way kube-apiserver does, without a server.

A local run must refuse exactly what a cluster would refuse, with the same words, so a YAML that
works here works there. This follows the API server's steps for a create: apply the structural
schema's defaults, check types, enums, bounds, lengths, patterns and required fields (messages as
kube-openapi words them), then, only when no *blocking* error was found (the server's rule: a wrong
type, an unsupported value, a missing field or a too-long value stops CEL), evaluate every
``x-kubernetes-validations`` rule with cel-python. Unknown fields are refused, as a strict
``kubectl apply`` does, instead of silently pruned.

Each problem is a :class:`FieldError`: the field path and the message, rendered as the server
renders a ``details.causes`` entry (``spec.kafka: Invalid value: "object": ...``).
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pagestream.stack.paths import PIPELINE_CRD
from pagestream_common.jsontypes import json_type_name

if TYPE_CHECKING:
    import celpy

# kube-apiserver: these error types make CEL validation skip (hasBlockingErr in the
# apiextensions strategy), and it adds one error saying so.
_BLOCKING = frozenset({"Required value", "Unsupported value", "Too long", "Invalid type"})
_ENVELOPE = frozenset({"apiVersion", "kind", "metadata", "status"})
CEL_SKIPPED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    kind: str = "Invalid value"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidResource(ValueError):
    """The resource breaks its CRD's schema; ``errors`` name each field, as the server does."""

    def __init__(self, kind: str, name: str, errors: list[FieldError]) -> None:
        self.kind, self.name, self.errors = kind, name, errors
        lines = "\n".join(f"  * {e}" for e in errors)
        super().__init__(f'The {kind} "{name}" is invalid:\n{lines}')


def _go_value(value: Any) -> str:
    """A value as Go's field.Invalid prints it: strings quoted, numbers and booleans bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(json_type_name(value, integer=True))


def _type_ok(value: Any, wanted: str) -> bool:
    actual = json_type_name(value, integer=True)
    if wanted == "number":
        return actual in ("integer", "number")
    if wanted == "integer" and actual == "number":
        return math.isfinite(value) and float(value).is_integer()
    return actual == wanted


def apply_defaults(value: Any, schema: dict[str, Any]) -> None:
    """Structural defaulting: an absent property with a default gets it, then is walked too."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in props:
                    apply_defaults(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])


def _structural(value: Any, schema: dict[str, Any], path: str, out: list[FieldError]) -> None:
    wanted = schema.get("type")
    # x-kubernetes-int-or-string: the server checks the value against both types, and names
    # them "integer,string" in its message.
    int_or_string = not wanted and schema.get("x-kubernetes-int-or-string") is True
    if int_or_string:
        wanted = "integer,string"
    if value is None:
        if not schema.get("nullable"):
            out.append(
                FieldError(
                    path,
                    f'Invalid value: "null": {path} in body must be of type {wanted}: "null"',
                    "Invalid type",
                )
            )
        return
    if int_or_string:
        ok = _type_ok(value, "integer") or _type_ok(value, "string")
    else:
        ok = not wanted or _type_ok(value, wanted)
    if not ok:
        actual = json_type_name(value, integer=True)
        out.append(
            FieldError(
                path,
                f'Invalid value: "{actual}": {path} in body must be of type {wanted}: "{actual}"',
                "Invalid type",
            )
        )
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_go_value(v) for v in schema["enum"])
        out.append(
            FieldError(
                path,
                f"Unsupported value: {_go_value(value)}: supported values: {supported}",
                "Unsupported value",
            )
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(
                FieldError(
                    path,
                    f"Invalid value: {_go_value(value)}: {path} in body should be greater than "
                    f"or equal to {_go_value(schema['minimum'])}",
                )
            )
        if "maximum" in schema and value > schema["maximum"]:
            out.append(
                FieldError(
                    path,
                    f"Invalid value: {_go_value(value)}: {path} in body should be less than or "
                    f"equal to {_go_value(schema['maximum'])}",
                )
            )
    if isinstance(value, str):
        # kube-openapi stops at the first failing string check, in this order.
        if "maxLength" in schema and len(value.encode()) > schema["maxLength"]:
            out.append(
                FieldError(
                    path, f"Too long: may not be more than {schema['maxLength']} bytes", "Too long"
                )
            )
        elif "minLength" in schema and len(value) < schema["minLength"]:
            out.append(
                FieldError(
                    path,
                    f"Invalid value: {_go_value(value)}: {path} in body should be at least "
                    f"{schema['minLength']} chars long",
                )
            )
        elif "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(
                FieldError(
                    path,
                    f"Invalid value: {_go_value(value)}: {path} in body should match "
                    f"'{schema['pattern']}'",
                )
            )
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                out.append(FieldError(f"{path}.{key}", "Required value", "Required value"))
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") or (
            wanted == "object" and not props and extra is None
        )
        for key, sub_value in value.items():
            if key in props:
                _structural(sub_value, props[key], f"{path}.{key}", out)
            elif isinstance(extra, dict):
                _structural(sub_value, extra, f"{path}[{key}]", out)
            elif not preserve:
                out.append(
                    FieldError(f"{path}.{key}", f'unknown field "{path}.{key}"', "Unknown field")
                )
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(
                FieldError(
                    path,
                    f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                    "Too long",
                )
            )
        for i, item in enumerate(value):
            _structural(item, schema["items"], f"{path}[{i}]", out)


@cache
def _compiled(rule: str) -> celpy.Runner:
    import celpy

    env = celpy.Environment()
    return env.program(env.compile(rule))


def _cel_go_error(exc: Exception) -> str:
    """cel-go's text for a celpy evaluation error: ``no such key: name`` for a missing field,
    celpy's own text otherwise."""
    text = str(exc.args[0]) if exc.args else str(exc)
    missing = re.fullmatch(r"no such member in mapping: '(.*)'", text)
    return f"no such key: {missing.group(1)}" if missing else text


def _cel(value: Any, schema: dict[str, Any], path: str, out: list[FieldError]) -> None:
    """Rules are checked bottom-up per node, as the server's CEL validator walks the object."""
    import celpy

    # Imported from where they are defined: celpy's __init__ re-exports them only implicitly.
    from celpy.adapter import json_to_cel
    from celpy.evaluation import CELEvalError

    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key, sub_value in value.items():
            if key in props:
                _cel(sub_value, props[key], f"{path}.{key}" if path else key, out)
    for rule in schema.get("x-kubernetes-validations", []):
        message = " ".join(str(rule.get("message", f"failed rule: {rule['rule']}")).split())
        try:
            result = _compiled(rule["rule"]).evaluate({"self": json_to_cel(value)})
        except CELEvalError as exc:
            # The server reports a rule that cannot be evaluated (a field it reads is absent)
            # on the rule's node, not its fieldPath, in cel-go's words where they are known.
            out.append(
                FieldError(
                    path or "<nil>",
                    f'Invalid value: "{schema.get("type", "object")}": '
                    f"{_cel_go_error(exc)} evaluating rule: {message}",
                )
            )
            continue
        # A Python bool or CEL's BoolType, true (celpy declares its results CEL types only).
        if isinstance(result, bool | celpy.celtypes.BoolType) and bool(result):
            continue
        # Go prints an empty field path (a rule on the root) as <nil>.
        field = (path + rule.get("fieldPath", "")).lstrip(".") or "<nil>"
        reason = rule.get("reason", "FieldValueInvalid")
        if reason == "FieldValueForbidden":
            out.append(FieldError(field, f"Forbidden: {message}", "Forbidden"))
        elif reason == "FieldValueRequired":
            out.append(FieldError(field, f"Required value: {message}", "Required value"))
        else:
            out.append(
                FieldError(field, f'Invalid value: "{schema.get("type", "object")}": {message}')
            )


def default_errors(schema: dict[str, Any], path: str = "") -> list[FieldError]:
    """What kube-apiserver refuses a CRD for in its defaults: each default, as it is written,
    must pass the schema it stands in, its CEL rules included (a rule on an object that
    defaults to ``{}`` must hold for ``{}``). The defaults beneath it are not applied first:
    the server checks ``{}`` itself, so a rule reading a field that has a default of its own
    must still guard it with ``has()``. Empty when the CRD may be installed."""
    out: list[FieldError] = []
    if "default" in schema:
        value = copy.deepcopy(schema["default"])
        found: list[FieldError] = []
        _structural(value, schema, path, found)
        if not any(e.kind in _BLOCKING for e in found):
            _cel(value, schema, path, found)
        out.extend(FieldError(f"{e.field} (default)", e.message, e.kind) for e in found)
    for key, sub in schema.get("properties", {}).items():
        out.extend(default_errors(sub, f"{path}.{key}" if path else key))
    if isinstance(schema.get("items"), dict):
        out.extend(default_errors(schema["items"], f"{path}[*]"))
    if isinstance(schema.get("additionalProperties"), dict):
        out.extend(default_errors(schema["additionalProperties"], f"{path}[*]"))
    return out


@dataclass(frozen=True)
class CrdVersion:
    group: str
    kind: str
    version: str
    schema: dict[str, Any]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


def load_crd(path: Path = PIPELINE_CRD) -> dict[str, CrdVersion]:
    """The CRD's served versions by apiVersion (group/version)."""
    crd = yaml.safe_load(path.read_text())
    spec = crd["spec"]
    return {
        f"{spec['group']}/{v['name']}": CrdVersion(
            spec["group"], spec["names"]["kind"], v["name"], v["schema"]["openAPIV3Schema"]
        )
        for v in spec["versions"]
        if v.get("served", True)
    }


def validate(resource: dict[str, Any], crd: Path = PIPELINE_CRD) -> dict[str, Any]:
    """The resource with the schema's defaults applied; :class:`InvalidResource` when the API
    server would refuse it."""
    versions = load_crd(crd)
    api_version = resource.get("apiVersion")
    name = str((resource.get("metadata") or {}).get("name", ""))
    version = versions.get(str(api_version))
    if version is None:
        kinds = ", ".join(sorted(versions))
        raise InvalidResource(
            str(resource.get("kind", "resource")),
            name,
            [
                FieldError(
                    "apiVersion",
                    f"Unsupported value: {_go_value(api_version)}: supported values: {kinds}",
                )
            ],
        )
    if resource.get("kind") != version.kind:
        raise InvalidResource(
            str(resource.get("kind")),
            name,
            [
                FieldError(
                    "kind",
                    f'Unsupported value: {_go_value(resource.get("kind"))}: supported values: "{version.kind}"',
                )
            ],
        )
    if not name:
        raise InvalidResource(
            version.kind,
            name,
            [
                FieldError(
                    "metadata.name",
                    "Required value: name or generateName is required",
                    "Required value",
                )
            ],
        )
    defaulted = copy.deepcopy(resource)
    apply_defaults(defaulted, version.schema)
    errors: list[FieldError] = []
    # The object's envelope is the API machinery's to check; the schema governs the rest.
    properties = version.schema.get("properties", {})
    for key, value in defaulted.items():
        if key in _ENVELOPE:
            continue
        if key in properties:
            _structural(value, properties[key], key, errors)
        else:
            errors.append(FieldError(key, f'unknown field "{key}"', "Unknown field"))
    for key in version.schema.get("required", []):
        if key not in defaulted:
            errors.append(FieldError(key, "Required value", "Required value"))
    if any(e.kind in _BLOCKING for e in errors):
        errors.append(FieldError("<nil>", f"Invalid value: null: {CEL_SKIPPED}"))
    else:
        _cel(defaulted, version.schema, "", errors)
    if errors:
        raise InvalidResource(version.kind, name, errors)
    return defaulted
