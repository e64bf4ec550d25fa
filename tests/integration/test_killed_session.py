"""A test session that is killed (a CI timeout's SIGKILL) leaves no server running.

A pytest of its own runs streaming/session_to_kill.py: the real servers through the session
fixtures, the streaming job as JobRun starts it, and a `pagestream stack up` in a subprocess.
The test SIGKILLs that pytest alone, as a CI timeout would, and checks both mechanisms that
end what it left, one at a time:

1. the tie (``StackPaths.tied``, ``popen_tied``): with the session's watchdog held stopped,
   every process of the session's tree still ends within seconds: the servers, PostgreSQL's
   backends (PostgreSQL runs as a service user when we are root), the job and its JVM (a
   grandchild). The PostgreSQL the exited `pagestream stack up` left behind stays: no tie
   reaches it, as none should for a user's `pagestream up`.
2. the watchdog: let go, it ends that one too, and then nothing refers to the run's folder.

Neither PostgreSQL leaves its SysV shared memory segment behind (a SIGKILL would).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pagestream.stack.paths import REPO_ROOT, StackPaths
from pagestream.stack.postgres import prune_orphaned_data_roots
from pagestream.stack.process import (
    pid_alive,
    popen_tied,
    processes_referring_to,
    recorded_pids,
    start_time,
)
from pagestream.stack.watchdog import end_leftovers

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.prometheus,
    pytest.mark.kube,
    pytest.mark.spark,
]

SESSION = REPO_ROOT / "tests" / "integration" / "streaming" / "session_to_kill.py"
READY_ENV = "PAGESTREAM_KILLED_SESSION_READY"
# How long the kernel and the JVM may take to end everything once the session is dead.
GRACE_SECONDS = 10


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, command line) of a live process."""
    try:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return None
    return ppid, cmdline.strip()


def _tree(root: int) -> dict[int, tuple[float, int, str]]:
    """Every live descendant of ``root``: pid -> (start time, parent pid, command line)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and (stat := _stat(int(proc.name))) is not None:
            children.setdefault(stat[0], []).append(int(proc.name))
    found: dict[int, tuple[float, int, str]] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        started, stat = start_time(pid), _stat(pid)
        if started is not None and stat is not None:
            found[pid] = (started, stat[0], stat[1][:160])
            todo += children.get(pid, [])
    return found


def _survivors(processes: dict[int, tuple[float, int, str]]) -> list[str]:
    """Those of ``processes`` still running (the same processes: pids are not reused)."""
    return [
        f"{pid}: {cmdline}"
        for pid, (started, _, cmdline) in sorted(processes.items())
        if start_time(pid) == started and pid_alive(pid)
    ]


def _shared_memory_ids(postmasters: list[int]) -> list[int]:
    """The SysV shared memory segments of these PostgreSQL servers (line 7 of postmaster.pid
    in the data folder each was started on, ``-D``: "key id"). The data folder may lie outside
    the run's folder (FALLBACK_DATA_ROOT, when the service user cannot reach it)."""
    ids = []
    for pid in postmasters:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        data_dir = Path(argv[argv.index("-D") + 1])
        ids.append(int((data_dir / "postmaster.pid").read_text().splitlines()[6].split()[1]))
    return sorted(ids)


def _segments() -> set[int]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(line.split()[1]) for line in lines}


def _eventually_empty(probe: Callable[[], list[str]], seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := probe()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_a_killed_session_leaves_no_server_running(stack_paths: StackPaths, tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    stack_paths.logs.mkdir(parents=True, exist_ok=True)
    with (stack_paths.logs / "killed-session.log").open("ab") as log:
        session = popen_tied(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SESSION)],
            cwd=REPO_ROOT,
            env={**env, READY_ENV: str(ready)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # out of reach of this session's Ctrl-C, like a server
        )
    run_dir: Path | None = None
    watchdog: int | None = None
    try:
        deadline = time.monotonic() + 300
        while not ready.exists() and time.monotonic() < deadline:
            assert session.poll() is None, f"the session ended; see {log.name}"
            time.sleep(0.5)
        assert ready.exists(), f"the session did not get ready; see {log.name}"
        info = json.loads(ready.read_text())
        run_dir = Path(info["run_dir"])
        tree = _tree(session.pid)

        # What the session runs: six servers recorded in its state, each a child of the
        # session, PostgreSQL as the service user when we are root; the job and its JVM.
        servers = recorded_pids(run_dir / "state")
        assert len(servers) == 6, [tree.get(pid) for pid in servers]
        assert all(pid in tree and tree[pid][1] == session.pid for pid in servers)
        (postgres,) = (pid for pid in servers if "/postgres -D" in tree[pid][2])
        if os.geteuid() == 0:
            assert Path(f"/proc/{postgres}").stat().st_uid == pwd.getpwnam("pagestream").pw_uid
        assert any(parent == postgres for _, parent, _ in tree.values()), "no backends"
        assert tree[info["jvm"]][1] == info["job"] and tree[info["job"]][1] == session.pid
        (detached,) = recorded_pids(Path(info["detached"]))
        assert detached not in tree
        # The watchdog, forked off by the session at start, in a session of its own.
        watchdog = int((run_dir / "watchdog.pid").read_text())
        assert pid_alive(watchdog) and watchdog not in tree
        segments = _shared_memory_ids([postgres, detached])
        assert len(segments) == 2 and set(segments) <= _segments()

        # 1. The tie alone: the watchdog held, the session killed.
        os.kill(watchdog, signal.SIGSTOP)
        session.kill()
        session.wait()
        assert _eventually_empty(lambda: _survivors(tree), GRACE_SECONDS) == []
        assert pid_alive(detached), "only the watchdog ends what an exited command started"

        # 2. The watchdog, let go: nothing refers to the run's folder any more.
        os.kill(watchdog, signal.SIGCONT)
        assert _eventually_empty(lambda: processes_referring_to(run_dir), GRACE_SECONDS) == []
        assert not pid_alive(detached)
        assert not set(segments) & _segments(), "PostgreSQL's shared memory is left behind"
        killed = (run_dir / "watchdog.log").read_text().rsplit(" killed ", 1)[1].split(" in ")[0]
        assert str(detached) in killed.split(", ")
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
        if watchdog is not None and pid_alive(watchdog):
            os.kill(watchdog, signal.SIGCONT)
        if run_dir is not None:
            end_leftovers(run_dir, stack_paths.cache)
    # Passed: the killed run's folder is of no use (it would push a real run's logs out), nor
    # are its servers' data folders outside it.
    shutil.rmtree(run_dir, ignore_errors=True)
    prune_orphaned_data_roots()
