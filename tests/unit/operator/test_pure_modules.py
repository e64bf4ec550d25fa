"""The pure modules stay pure: rendering, observing, planning and the spec and status models
import no Kubernetes client, no kopf and nothing that does I/O, so they can be tested as plain
functions.

The import-linter contracts in pyproject.toml (``lint-imports``, run by ``make test``) say most
of it: the operator's pure modules import none of its other modules, no Kubernetes, kopf,
PostgreSQL or Kafka client even indirectly, and no standard-library module that touches the
outside world. What a contract cannot say is an allowlist of outside packages (it forbids
names it is given, not every name but some), so that part stays here: apart from the standard
library and the operator itself, they import pydantic and the job config, and nothing else."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import pagestream_operator

PACKAGE = Path(pagestream_operator.__file__).parent
PURE_MODULES = ("render", "observe", "spec", "status", "upgrade")
ALLOWED_THIRD_PARTY = {"pydantic"}
ALLOWED_FIRST_PARTY = {"pagestream_common.jobconfig"}


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
def test_module_imports_no_outside_package_but_the_allowed(module: str) -> None:
    bad = []
    for name in imports_of(PACKAGE / f"{module}.py"):
        top = name.split(".")[0]
        # The standard library and the operator's own modules: the contracts' part.
        if top in sys.stdlib_module_names or top == "pagestream_operator":
            continue
        if top in ALLOWED_THIRD_PARTY or name in ALLOWED_FIRST_PARTY:
            continue
        bad.append(name)
    assert bad == [], f"{module}.py must stay pure but imports {bad}"
