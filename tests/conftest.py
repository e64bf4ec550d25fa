"""Shared test configuration. Server fixtures live in tests/integration/conftest.py: the unit
tests start no server (one of them starts a local Spark JVM, to compare with Spark's xxhash64;
see tests/unit/spark/conftest.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def keep_root_logging() -> Iterator[None]:
    """The command-line entry points configure the root logger for their process; put it back
    for the next test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
