"""Golden files pin what the renderer produces for each case in ``cases/``.

Each case is a pipeline (name, namespace, checkpoint epoch, spec as the user writes it); its
golden file ``golden/<case>.yaml`` holds every child the operator would apply, in apply order.

To regenerate after an intended change, run

    PAGESTREAM_UPDATE_GOLDEN=1 uv run pytest tests/unit/operator/test_render_golden.py

then read the diff (``git diff tests/unit/operator/golden``) before committing it: the diff is
the review of the rendering change. Without the variable a mismatch fails the test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from operator_cases import CASES, HERE, load_case

from pagestream_operator.render import render_children

UPDATE = os.environ.get("PAGESTREAM_UPDATE_GOLDEN") == "1"


class _GoldenDumper(yaml.SafeDumper):
    """Multi-line strings (dashboard JSON) as literal blocks, so golden diffs read line by line."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_GoldenDumper.add_representer(str, _str)


def dump(children: list[dict]) -> str:
    return yaml.dump_all(
        children, Dumper=_GoldenDumper, sort_keys=False, default_flow_style=False, width=100
    )


def test_there_are_cases() -> None:
    assert {c.stem for c in CASES} >= {"minimal", "full", "suspended-servicemonitor"}


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_rendered_children_match_the_golden_file(case: Path) -> None:
    rendered = dump(render_children(load_case(case)))
    golden = HERE / "golden" / case.name
    if UPDATE:
        golden.write_text(rendered)
    assert golden.exists(), f"no golden file for {case.name}; run with PAGESTREAM_UPDATE_GOLDEN=1"
    assert rendered == golden.read_text(), (
        f"{case.name} renders differently from {golden}; if intended, regenerate (see the module "
        "docstring) and review the diff"
    )
