"""Session-scoped fixtures that start the real servers a test asks for, and stop them after.

All state lives in ``.pagestream/test-stack`` in the repository: wiped at the start of a run,
kept after it, so a failure's server logs (``.pagestream/test-stack/state/logs``) can be read.
Artifacts come from the shared cache (``~/.cache/pagestream``), fetched or built on first use.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from pagestream.stack.helm import Helm
from pagestream.stack.kafka import Kafka
from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import REPO_ROOT, StackPaths, default_cache_dir
from pagestream.stack.postgres import Postgres
from pagestream.stack.prometheus import Prometheus
from pagestream.stack.stack import LocalStack

TEST_STATE = REPO_ROOT / ".pagestream" / "test-stack"


@pytest.fixture(scope="session")
def stack_paths() -> StackPaths:
    paths = StackPaths(cache=default_cache_dir(), state=TEST_STATE / "state")
    if TEST_STATE.exists():
        # A run that was killed may have left servers behind: stop them before wiping.
        LocalStack(paths).down()
        shutil.rmtree(TEST_STATE)
    paths.state.mkdir(parents=True)
    return paths


@pytest.fixture(scope="session")
def local_stack(stack_paths: StackPaths) -> Iterator[LocalStack]:
    stack = LocalStack(stack_paths, durable_postgres=False, with_controller_manager=True)
    yield stack
    stack.down()


@pytest.fixture(scope="session")
def kafka(local_stack: LocalStack) -> Kafka:
    comp = local_stack.start("kafka")
    assert isinstance(comp, Kafka)
    return comp


@pytest.fixture(scope="session")
def postgres(local_stack: LocalStack) -> Postgres:
    comp = local_stack.start("postgres")
    assert isinstance(comp, Postgres)
    return comp


@pytest.fixture(scope="session")
def prometheus(local_stack: LocalStack) -> Prometheus:
    comp = local_stack.start("prometheus")
    assert isinstance(comp, Prometheus)
    return comp


@pytest.fixture(scope="session")
def kube(local_stack: LocalStack) -> KubeControlPlane:
    comp = local_stack.start("kube")
    assert isinstance(comp, KubeControlPlane)
    return comp


@pytest.fixture(scope="session")
def helm(stack_paths: StackPaths) -> Helm:
    helm = Helm(stack_paths)
    helm.ensure_installed()
    return helm


@pytest.fixture(scope="session")
def spark(stack_paths: StackPaths):  # type: ignore[no-untyped-def]
    from pagestream.stack.spark import local_spark_session

    session = local_spark_session(stack_paths, "pagestream-tests")
    yield session
    session.stop()
