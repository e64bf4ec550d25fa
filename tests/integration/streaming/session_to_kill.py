"""A test session that is killed: tests/integration/test_killed_session.py runs this file in a
pytest of its own and SIGKILLs it, as a CI timeout would. Not collected by `make test` (no
``test_`` prefix; pytest collects it only when given its path).

Its one test starts what test sessions start, through the same fixtures: Kafka, PostgreSQL,
Prometheus, etcd, kube-apiserver and kube-controller-manager, the streaming job as JobRun runs
it (its Python driver and the driver's Spark JVM), and, as the embedded and lifecycle tests do,
a `pagestream stack up postgres` in a subprocess, which exits and leaves its server running. It
then says where everything is (a JSON file named by $PAGESTREAM_KILLED_SESSION_READY) and waits
to be killed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pagestream.stack.kafka import Kafka
from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import StackPaths
from pagestream.stack.postgres import Postgres
from pagestream.stack.prometheus import Prometheus

from .conftest import JobRun

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.prometheus,
    pytest.mark.kube,
    pytest.mark.spark,
]

READY_ENV = "PAGESTREAM_KILLED_SESSION_READY"


def _java_child(pid: int) -> int | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            exe = os.readlink(proc / "exe")
        except (OSError, ValueError):
            continue
        if ppid == pid and Path(exe).name == "java":
            return int(proc.name)
    return None


def test_serve_until_killed(
    kafka: Kafka,
    postgres: Postgres,
    prometheus: Prometheus,
    kube: KubeControlPlane,
    job_run: JobRun,
    stack_paths: StackPaths,
) -> None:
    job = job_run.start()
    deadline = time.monotonic() + 120
    jvm = None
    while jvm is None and time.monotonic() < deadline and job.poll() is None:
        jvm = _java_child(job.pid)
        time.sleep(0.2)
    assert jvm is not None, f"the job started no JVM; see {stack_paths.logs}"

    detached = stack_paths.state.parent / "detached"
    up = subprocess.run(
        [sys.executable, "-m", "pagestream", "stack", "up", "postgres"],
        env={**os.environ, "PAGESTREAM_STATE_DIR": str(detached)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert up.returncode == 0, up.stderr

    Path(os.environ[READY_ENV]).write_text(
        json.dumps(
            {
                "run_dir": str(stack_paths.state.parent),
                "job": job.pid,
                "jvm": jvm,
                "detached": str(detached),
            }
        )
    )
    time.sleep(600)
    pytest.fail("this session was meant to be killed")
