"""Shared test configuration. Server fixtures live in tests/integration/conftest.py: the unit
tests start no server (one of them starts a local Spark JVM, to compare with Spark's xxhash64;
see tests/unit/spark/conftest.py).

`make test` runs the session on two pytest-xdist workers (``--dist loadfile``). Each worker is a
session of its own, with its own servers (the fixtures already keep concurrent sessions apart,
see tests/integration/conftest.py); the grouping below decides what shares a worker."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

# The tests that need the real node live here, and only here: they share one node (a session
# fixture), so they must share one xdist worker too.
NODE_TESTS = "tests/integration/node/"


def _is_node_test(nodeid: str) -> bool:
    return nodeid.startswith(NODE_TESTS)


def _work_unit(nodeid: str) -> str:
    """What one xdist worker runs together: the node tests as one unit (they run in file order
    on the node's deployments), every other test with the rest of its module (its
    module-scoped fixtures: a streaming job, a dataset)."""
    return "node" if _is_node_test(nodeid) else nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadfile``: xdist's file scheduling, with the node tests as one unit.

    (xdist's own ``loadgroup`` marks cannot do it here: the group travels as a suffix it writes
    into ``item._nodeid``, which pytest 9 no longer reads.)"""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class NodeTestsTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return NodeTestsTogether(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A node test outside NODE_TESTS would start a second node on another worker: refuse it.
    On an xdist worker, put the node tests first: at about half the session's time they are the
    longest unit of work, so they start at once on one worker while the other works through
    everything else (with ``--no-loadscope-reorder`` xdist hands out units in this order)."""
    strays = [
        i.nodeid for i in items if i.get_closest_marker("node") and not _is_node_test(i.nodeid)
    ]
    if strays:
        raise pytest.UsageError(f"tests marked `node` belong in {NODE_TESTS}: {strays}")
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: not _is_node_test(item.nodeid))  # stable: file order otherwise


@pytest.fixture(autouse=True)
def keep_root_logging() -> Iterator[None]:
    """The command-line entry points configure the root logger for their process; put it back
    for the next test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
