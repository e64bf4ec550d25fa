"""The rendering cases in ``cases/``, shared by the golden-file and property tests.

(Not a package: a ``tests/unit/operator/__init__.py`` would shadow the standard library's
``operator`` module, so test modules import this one by its unique name.)
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pagestream_operator.render import RenderInput
from pagestream_operator.spec import parse_spec

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
