"""Session-scoped fixtures that start the real servers a test asks for, and stop them after.

Each test session keeps its state in ``.pagestream/test-runs/<start time>-<pid>`` in the
repository, kept after the run so a failure's server logs (``…/state/logs``) can be read. At
start, earlier runs whose pytest process is gone have their servers stopped; all but the newest
few are deleted. Concurrent sessions (two terminals, two engineers) never touch each other.
Artifacts come from the shared cache (``~/.cache/pagestream``), fetched or built on first use.

A killed session (a CI timeout, Ctrl-C twice) leaves nothing running: the servers the fixtures
start are tied to the session (``StackPaths.tied``: the kernel kills them when pytest's main
thread ends), and a watchdog started with the session (``pagestream.stack.watchdog``, log in
``…/watchdog.log``) kills whatever is still recorded under the run's folder once pytest is
gone, such as the servers of a ``pagestream up`` the tests ran in a subprocess.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagestream.stack.helm import Helm
from pagestream.stack.kafka import Kafka
from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import REPO_ROOT, StackPaths, default_cache_dir
from pagestream.stack.postgres import Postgres, prune_orphaned_data_roots
from pagestream.stack.process import pid_alive
from pagestream.stack.prometheus import Prometheus
from pagestream.stack.stack import LocalStack
from pagestream.stack.watchdog import end_leftovers, start_watchdog

TEST_RUNS = REPO_ROOT / ".pagestream" / "test-runs"
KEEP_RUNS = 3


def _owner_alive(run_dir: Path) -> bool:
    try:
        return pid_alive(int(run_dir.name.rsplit("-", 1)[1]))
    except (IndexError, ValueError):
        return False


def _reap_old_runs() -> None:
    finished = sorted(d for d in TEST_RUNS.glob("*-*") if d.is_dir() and not _owner_alive(d))
    for run_dir in finished:
        # A session whose watchdog was killed too may have left servers behind, and a node
        # with its pods: what its watchdog would have done.
        end_leftovers(run_dir, default_cache_dir())
    for run_dir in finished[: max(0, len(finished) - KEEP_RUNS)]:
        shutil.rmtree(run_dir, ignore_errors=True)
    prune_orphaned_data_roots()  # their PostgreSQL data, where it lay outside them


@pytest.fixture(scope="session")
def stack_paths() -> StackPaths:
    TEST_RUNS.mkdir(parents=True, exist_ok=True)
    _reap_old_runs()
    run_dir = TEST_RUNS / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    paths = StackPaths(cache=default_cache_dir(), state=run_dir / "state", tied=True)
    paths.state.mkdir(parents=True)
    start_watchdog(run_dir, paths.cache, log_file=run_dir / "watchdog.log")
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
