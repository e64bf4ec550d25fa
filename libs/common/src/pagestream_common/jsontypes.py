"""The JSON names of parsed values' types, for error messages that say what was found."""

from __future__ import annotations


def json_type_name(value: object, *, integer: bool = False) -> str:
    """``null``, ``boolean``, ``number``, ``string``, ``array`` or ``object``; with ``integer``,
    whole numbers are ``integer`` (OpenAPI's distinction, as kube-apiserver words it). Anything
    a JSON parser does not produce counts as ``object``."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is a subclass of int
        return "boolean"
    if isinstance(value, int):
        return "integer" if integer else "number"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
