"""The CRD's defaults pass the schema they stand in, as kube-apiserver requires before it
installs a CRD: a CEL rule on an object that defaults to ``{}`` must hold for ``{}``. And the
local validator's reading of x-kubernetes-int-or-string, which the pipeline CRD's retention
uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pagestream.local.crd_schema import InvalidResource, default_errors, load_crd, validate
from pagestream.stack.paths import PIPELINE_CRD


def test_every_default_of_the_pipeline_crd_passes_its_schema() -> None:
    for version in load_crd(PIPELINE_CRD).values():
        assert default_errors(version.schema) == []


def test_a_rule_that_an_empty_default_breaks_is_found() -> None:
    # The shape that once made the API server refuse the CRD: pii defaulted to {} under a rule
    # requiring one of its fields.
    schema = yaml.safe_load(
        """
        type: object
        properties:
          pii:
            type: object
            default: {}
            x-kubernetes-validations:
              - rule: has(self.hashKeySecretRef)
                message: hashKeySecretRef is required
                fieldPath: .hashKeySecretRef
            properties:
              hashEmail: {type: boolean, default: true}
              hashKeySecretRef: {type: object}
        """
    )
    (error,) = default_errors(schema)
    assert error.field == "pii.hashKeySecretRef (default)"
    assert error.message == 'Invalid value: "object": hashKeySecretRef is required'


def test_a_default_is_checked_without_the_defaults_beneath_it() -> None:
    # kube-apiserver refused the CRD for this shape (retention's first rules): it evaluates the
    # rule on {} itself, where days is absent ("no such key: days"), not on {days: 90}.
    schema = yaml.safe_load(
        """
        type: object
        properties:
          retention:
            type: object
            default: {}
            x-kubernetes-validations:
              - rule: self.days >= 1
                message: days must be at least 1
                fieldPath: .days
            properties:
              days: {type: integer, default: 90}
        """
    )
    assert [str(e) for e in default_errors(schema)] == [
        'retention (default): Invalid value: "object": no such key: days evaluating rule: days '
        "must be at least 1"
    ]
    guarded = schema["properties"]["retention"]["x-kubernetes-validations"][0]
    guarded["rule"] = "!has(self.days) || self.days >= 1"
    assert default_errors(schema) == []


def test_a_default_of_the_wrong_type_is_found() -> None:
    schema = {"type": "object", "properties": {"cores": {"type": "integer", "default": "two"}}}
    (error,) = default_errors(schema)
    assert error.field.startswith("cores")


# --- x-kubernetes-int-or-string, as kube-apiserver checks it ----------------------------------

INT_OR_STRING_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.example.com}
spec:
  group: example.com
  names: {kind: Thing, plural: things}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                days: {x-kubernetes-int-or-string: true, default: 7}
"""


@pytest.mark.parametrize("days", [1, "Forever", 2.0, None], ids=repr)
def test_an_int_or_string_takes_an_integer_or_a_string(days: object, tmp_path: Path) -> None:
    crd = tmp_path / "crd.yaml"
    crd.write_text(INT_OR_STRING_CRD)
    spec = {} if days is None else {"days": days}
    thing = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}}
    assert validate({**thing, "spec": spec}, crd)["spec"]["days"] == (7 if days is None else days)


@pytest.mark.parametrize(
    ("days", "kind"),
    [(True, "boolean"), (1.5, "number"), ({"n": 1}, "object"), ([1], "array")],
    ids=repr,
)
def test_an_int_or_string_of_another_type_is_refused_naming_both_types(
    days: object, kind: str, tmp_path: Path
) -> None:
    crd = tmp_path / "crd.yaml"
    crd.write_text(INT_OR_STRING_CRD)
    thing = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}}
    with pytest.raises(InvalidResource) as info:
        validate({**thing, "spec": {"days": days}}, crd)
    assert str(info.value.errors[0]) == (
        f'spec.days: Invalid value: "{kind}": spec.days in body must be of type '
        f'integer,string: "{kind}"'
    )
