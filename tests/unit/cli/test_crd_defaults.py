"""The CRD's defaults pass the schema they stand in, as kube-apiserver requires before it
installs a CRD: a CEL rule on an object that defaults to ``{}`` must hold for ``{}``."""

from __future__ import annotations

import yaml

from pagestream.local.crd_schema import default_errors, load_crd
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


def test_a_default_of_the_wrong_type_is_found() -> None:
    schema = {"type": "object", "properties": {"cores": {"type": "integer", "default": "two"}}}
    (error,) = default_errors(schema)
    assert error.field.startswith("cores")
