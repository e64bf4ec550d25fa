"""How long a started process lives: a tied one ends with the process (thread) that started it,
a detached one outlives it, and the watchdog ends what a dead session recorded. The processes
are `sleep`s started through ManagedProcess by a child Python, which the test then SIGKILLs as
a CI timeout would; the real servers get the same treatment in
tests/integration/test_killed_session.py."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pagestream.stack.errors import StackError
from pagestream.stack.process import (
    ManagedProcess,
    kill_recorded,
    pid_alive,
    popen_tied,
    recorded_pids,
)

STARTER = """
import sys, time
from pathlib import Path
from pagestream.stack.process import ManagedProcess
from pagestream.stack.watchdog import start_watchdog

folder, tied, user, watch = Path(sys.argv[1]), sys.argv[2] == "tied", sys.argv[3] or None, sys.argv[4]
if watch == "watch":
    start_watchdog(folder, folder / "cache", log_file=folder / "watchdog.log")
proc = ManagedProcess("sleeper", folder / "sleeper.pid", folder / "sleeper.log", tied=tied)
print(proc.start(["sleep", "600"], user=user), flush=True)
time.sleep(600)
"""


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def _start_and_kill_starter(
    folder: Path, *, tied: bool, user: str = "", watch: bool = False
) -> int:
    """A child Python starts `sleep 600` through ManagedProcess; SIGKILL the child; the pid of
    the sleep (checked to run as ``user``, if given)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # a service user must be able to read the sleeper's folder
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            STARTER,
            str(folder),
            "tied" if tied else "detached",
            user,
            "watch" if watch else "",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert starter.stdout is not None
    with starter.stdout:
        sleeper = int(starter.stdout.readline())
    assert pid_alive(sleeper)
    if user:
        assert Path(f"/proc/{sleeper}").stat().st_uid == pwd.getpwnam(user).pw_uid
    starter.kill()
    starter.wait()
    return sleeper


def test_a_tied_process_ends_with_its_starter(tmp_path: Path) -> None:
    sleeper = _start_and_kill_starter(tmp_path, tied=True)
    assert _gone_within(sleeper, 5)


def test_a_detached_process_outlives_its_starter(tmp_path: Path) -> None:
    """What `pagestream up` relies on: the servers keep running after the command exits."""
    sleeper = _start_and_kill_starter(tmp_path, tied=False)
    try:
        assert not _gone_within(sleeper, 1)
    finally:
        os.killpg(sleeper, signal.SIGKILL)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_a_tied_process_run_as_another_user_still_ends_with_its_starter(tmp_path: Path) -> None:
    """PostgreSQL runs as a service user when we are root; the change of user clears a
    parent-death signal set before it, so the tie must be made after it."""
    try:
        user = pwd.getpwnam("pagestream").pw_name
    except KeyError:
        pytest.skip("no `pagestream` service user on this machine (PostgreSQL's tests make it)")
    sleeper = _start_and_kill_starter(tmp_path, tied=True, user=user)
    assert _gone_within(sleeper, 5)


def test_the_watchdog_ends_a_detached_process_of_a_dead_session(tmp_path: Path) -> None:
    sleeper = _start_and_kill_starter(tmp_path, tied=False, watch=True)
    try:
        assert _gone_within(sleeper, 10), (tmp_path / "watchdog.log").read_text()
    finally:
        if pid_alive(sleeper):
            os.killpg(sleeper, signal.SIGKILL)
    log = tmp_path / "watchdog.log"
    deadline = time.monotonic() + 10
    while "the watched process is gone" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"killed {sleeper} " in log.read_text()


def test_only_the_main_thread_may_start_a_tied_process() -> None:
    """The kernel sends the signal when the starting thread exits, not the process."""
    errors: list[BaseException] = []

    def start() -> None:
        try:
            popen_tied(["true"])
        except StackError as exc:
            errors.append(exc)

    worker = threading.Thread(target=start)
    worker.start()
    worker.join()
    assert len(errors) == 1 and "main thread" in str(errors[0])
    assert popen_tied(["true"]).wait(10) == 0


def test_recorded_pids_are_the_recorded_processes_only(tmp_path: Path) -> None:
    live = ManagedProcess("live", tmp_path / "a" / "live.pid", tmp_path / "live.log")
    pid = live.start(["sleep", "600"])
    try:
        # A pid file older than its process: the pid was reused since by another process.
        reused = tmp_path / "b" / "reused.pid"
        reused.parent.mkdir()
        reused.write_text(f"{pid}\n")
        os.utime(reused, (time.time() - 3600, time.time() - 3600))
        # PostgreSQL's own postmaster.pid has more lines than a pid: not ours to read.
        (tmp_path / "b" / "postmaster.pid").write_text(f"{pid}\n/data\n")
        (tmp_path / "b" / "dead.pid").write_text("999999999\n")
        assert recorded_pids(tmp_path / "b") == []
        assert recorded_pids(tmp_path) == [pid]
        assert kill_recorded(tmp_path) == [pid]
        assert not pid_alive(pid)
    finally:
        live.stop(timeout=1)
