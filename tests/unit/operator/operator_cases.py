"""The rendering cases in ``cases/``, shared by the golden-file and property tests.

(Not a package: a ``tests/unit/operator/__init__.py`` would shadow the standard library's
``operator`` module, so test modules import this one by its unique name.)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from pagestream_operator.render import RenderInput
from pagestream_operator.spec import parse_spec

# The smallest valid spec: every required field and nothing else. The spec, upgrade and
# reconcile tests start from it.
MINIMAL_SPEC: dict[str, Any] = {
    "kafka": {"bootstrapServers": "k:9092", "topic": {"name": "views"}},
    "postgres": {"cnpgCluster": {"name": "db"}},
    "spark": {"image": "img:1"},
    "processing": {"pii": {"hashKeySecretRef": {"name": "pii"}}},
    "checkpoint": {"uri": "s3a://b"},
}


def minimal_spec(**sections: Any) -> dict[str, Any]:
    """A copy of MINIMAL_SPEC with the given top-level sections replaced."""
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec.update(sections)
    return spec


HERE = Path(__file__).parent
CASES = sorted((HERE / "cases").glob("*.yaml"))


def load_case(path: Path) -> RenderInput:
    raw = yaml.safe_load(path.read_text())
    return RenderInput(
        name=raw["name"],
        namespace=raw["namespace"],
        spec=parse_spec(raw["spec"]),
        checkpoint_epoch=raw["checkpointEpoch"],
    )


def case(stem: str) -> RenderInput:
    return load_case(HERE / "cases" / f"{stem}.yaml")
