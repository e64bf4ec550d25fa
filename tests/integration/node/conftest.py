"""The real single-node cluster (pagestream.stack.node), started once for the session, with
pagestream's three images built and loaded into it. Tests here assert on what real pods did."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from pagestream.stack.images import COMPONENTS
from pagestream.stack.node.node import LocalNode
from pagestream.stack.paths import StackPaths


@pytest.fixture(scope="session")
def node(stack_paths: StackPaths) -> Iterator[LocalNode]:
    node = LocalNode(stack_paths)
    node.up()
    inodes = node.namespace_inodes()
    yield node
    node.down()
    assert node.leftovers(inodes) == []
    # The run's folder is kept for its logs; the node's image store (gigabytes) is not needed.
    shutil.rmtree(node.layout.containerd_root, ignore_errors=True)


@pytest.fixture(scope="session")
def node_images(node: LocalNode) -> dict[str, str]:
    """Image references by component (operator, simulator, spark), loaded into the node."""
    return node.load_components(COMPONENTS)
