"""The JSON type names the job's and the local CRD validator's messages use."""

from __future__ import annotations

import pytest

from pagestream_common.jsontypes import json_type_name


@pytest.mark.parametrize(
    ("value", "plain", "openapi"),
    [
        (None, "null", "null"),
        (True, "boolean", "boolean"),
        (3, "number", "integer"),
        (2.5, "number", "number"),
        ("x", "string", "string"),
        ([1], "array", "array"),
        ({"a": 1}, "object", "object"),
    ],
)
def test_names(value: object, plain: str, openapi: str) -> None:
    assert json_type_name(value) == plain
    assert json_type_name(value, integer=True) == openapi
