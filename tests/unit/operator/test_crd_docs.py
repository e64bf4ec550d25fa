"""docs/crd-reference.md is generated from the CRD and must be regenerated when it changes."""

from __future__ import annotations

import yaml

from pagestream_operator import crd_docs


def test_committed_reference_is_up_to_date() -> None:
    assert crd_docs.main(["--check"]) == 0, (
        "docs/crd-reference.md is stale: run `uv run python -m pagestream_operator.crd_docs`"
    )


def test_reference_covers_every_spec_field_and_rule() -> None:
    crd = yaml.safe_load(crd_docs.CRD_FILE.read_text())
    text = crd_docs.render(crd)
    assert "| `spec.spark.executor.instances` | integer |" in text
    assert "| `spec.lifecycle.upgradeMode` | string |  | `last-state` |" in text
    assert "set exactly one of strimziCluster or bootstrapServers" in text
    assert "&lt;name&gt;-kafka-bootstrap" in text  # no raw <tags> for markdown to eat
