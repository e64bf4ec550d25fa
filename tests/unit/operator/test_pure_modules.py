"""The pure modules stay pure: rendering, observing, planning and the spec and status models
import no Kubernetes client, no kopf and nothing that does I/O, so they can be tested as plain
functions."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import pagestream_operator

PACKAGE = Path(pagestream_operator.__file__).parent
PURE_MODULES = ("render", "observe", "spec", "status", "upgrade")
ALLOWED_THIRD_PARTY = {"pydantic"}
ALLOWED_FIRST_PARTY = {
    "pagestream_common.jobconfig",
    "pagestream_operator.spec",
    "pagestream_operator.render",
    "pagestream_operator.upgrade",
    "pagestream_operator.observe",
    "pagestream_operator.status",
}
# Standard-library modules that touch the outside world.
IMPURE_STDLIB = {"os", "subprocess", "socket", "urllib", "http", "asyncio", "threading", "time"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.add(f"pagestream_operator.{node.module}")
    return found


@pytest.mark.parametrize("module", PURE_MODULES)
def test_module_imports_nothing_impure(module: str) -> None:
    bad = []
    for name in imports_of(PACKAGE / f"{module}.py"):
        top = name.split(".")[0]
        if name == "__future__" or (top in sys.stdlib_module_names and top not in IMPURE_STDLIB):
            continue
        if top in ALLOWED_THIRD_PARTY or name in ALLOWED_FIRST_PARTY:
            continue
        bad.append(name)
    assert bad == [], f"{module}.py must stay pure but imports {bad}"
