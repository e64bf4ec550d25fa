"""Supervising one server process: start detached, remember its pid, stop it cleanly.

A server is detached by default: the embedded product (`pagestream up`) leaves its servers
running after the command exits. A *tied* one ends with the thread that started it (test runs:
a killed pytest must not leave its servers behind), through Linux's parent-death signal, set by
util-linux's ``setpriv`` just before it executes the server (see :func:`popen_tied`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pagestream.stack.errors import StackError

log = logging.getLogger(__name__)

# Servers this Python process started and has not yet reaped, by pid. It mirrors the kernel's
# own table of our children: keeping the Popen objects lets stop() collect exit statuses (no
# zombies) and keeps Popen.__del__ from warning about a server that is meant to outlive it.
_children: dict[int, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    alive: Callable[[], bool] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ``check`` until it is true; fail early if ``alive`` says the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise StackError(
                f"{what}: the process exited during start-up",
                log=str(log_path) if log_path else None,
                hint="read the last lines of the log above",
            )
        time.sleep(interval)
    raise StackError(
        f"{what}: not ready after {timeout:.0f}s",
        log=str(log_path) if log_path else None,
        hint="the machine may be overloaded; read the log, then retry",
    )


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def processes_referring_to(folder: Path) -> list[str]:
    """Every live process whose command line or working folder points into ``folder``, as
    "pid: command line" (how tests prove a stack left nothing running)."""
    hits = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if str(folder) in cmdline or cwd.startswith(str(folder)):
            hits.append(f"{proc.name}: {cmdline[:120]}")
    return hits


def popen_tied(
    argv: Sequence[str], *, death_signal: int = signal.SIGKILL, **options: Any
) -> subprocess.Popen[Any]:
    """``subprocess.Popen(argv, **options)``, the process tied to the calling thread: the kernel
    sends it ``death_signal`` when that thread ends. It runs under ``setpriv --pdeathsig``,
    which sets the parent-death signal and executes ``argv`` (same pid, same command line from
    then on).

    Why a program and not ``preexec_fn``: that runs Python between fork and exec, which the
    subprocess docs call unsafe in a threaded process (a test process is one: each live
    librdkafka client runs five threads), and it would have to run after the switch to another
    user (``user=``), since a change of user clears the signal; ``setpriv`` runs after Popen's
    switch, as the new user, so PostgreSQL (run as a service user when we are root) keeps it.
    Executing a set-user-ID program clears it too: none of the servers is one.

    The kernel sends the signal when the *thread* that forked the child exits, not the
    process: so only the main thread may start a tied process, or it would be killed when a
    short-lived worker thread finished.

    A server's own children are not covered. Most servers here have none; PostgreSQL's
    backends watch the postmaster and exit with it; Spark's JVM, a child of the job's Python
    driver, exits when the driver's end of its stdin pipe closes. The node's containers are
    not (containerd's shims detach them): the test session's watchdog ends them by cgroup
    (pagestream.stack.watchdog).
    """
    if threading.current_thread() is not threading.main_thread():
        raise StackError(
            "a tied process must be started from the main thread",
            hint="the kernel ends it when the starting thread exits: start it from the main thread",
        )
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise StackError(
            "`setpriv` is not on PATH: a tied process cannot be started",
            hint="install util-linux (Debian's is essential; `apt-get install util-linux`)",
        )
    name = signal.Signals(death_signal).name.removeprefix("SIG")
    proc = subprocess.Popen([setpriv, "--pdeathsig", name, "--", *argv], **options)
    # The signal is armed against whoever is the parent when setpriv sets it: return once it
    # has executed argv, so that from here on our death cannot go unnoticed.
    _wait_for_exec(proc.pid, os.path.realpath(setpriv))
    return proc


def _wait_for_exec(pid: int, launcher: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{pid}/exe") != launcher:
                return
        except OSError:
            return  # it exited (argv could not be run): the caller sees the exit status
        time.sleep(0.001)


def start_time(pid: int) -> float | None:
    """When ``pid`` started, in seconds on the boot-time clock (``time.CLOCK_BOOTTIME``), or
    None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22, starttime, in clock ticks since boot; the command name (field 2) may contain
    # spaces and parentheses, so count from after its closing one.
    return int(stat.rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")


def recorded_pids(folder: Path) -> list[int]:
    """Live processes recorded in a pid file under ``folder`` (``ManagedProcess`` pid files,
    also of servers started by commands that have exited since), each still the process that
    was recorded: a pid reused since by a process started after its pid file was written is
    left out."""
    boot_epoch = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    pids = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if not name.endswith(".pid"):
                continue
            path = Path(root) / name
            try:
                pid = int(path.read_text().strip())
                written = path.stat().st_mtime - boot_epoch
            except (OSError, ValueError):
                continue  # gone meanwhile, or not one of ours (PostgreSQL's postmaster.pid)
            started = start_time(pid)
            # The pid file is written right after the fork; a second of slack for clock steps.
            if started is not None and started <= written + 1.0 and pid_alive(pid):
                pids.append(pid)
    return sorted(set(pids))


def kill_recorded(folder: Path, *, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process recorded under ``folder`` (its whole process group when it leads
    one, as ``ManagedProcess`` servers do); wait until they are gone; return their pids.

    A PostgreSQL postmaster gets SIGQUIT first, its immediate shutdown: it ends its backends
    and frees its SysV shared memory segment, which a SIGKILL would leave behind."""
    pids = [pid for pid in recorded_pids(folder) if pid != os.getpid()]
    postmasters = [pid for pid in pids if _executable(pid) == "postgres"]
    for pid in postmasters:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
    _wait_gone(postmasters, timeout=min(timeout, 6.0))  # it SIGKILLs stragglers after 5 s
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
    _wait_gone(pids, timeout=timeout)
    return pids


def _executable(pid: int) -> str | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return None


def _wait_gone(pids: list[int], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:  # pid_alive calls a zombie dead: collect the exit status of our own
        _reap(pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as dead. But a multi-threaded process (a JVM)
    # whose main thread has exited also shows state Z while its other threads still run.
    with contextlib.suppress(OSError):
        status = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if ":" in line
        )
        if status.get("State", "").strip().startswith("Z") and int(status.get("Threads", "1")) <= 1:
            return False
    return True


@dataclass
class ManagedProcess:
    """A server process with a pid file and a log file in a known place.

    The process gets its own session, so stopping it signals its whole process group and
    no helper it spawned outlives it.
    """

    name: str
    pid_file: Path
    log_file: Path
    # PostgreSQL wants the stop signal on the postmaster alone; it then stops its children.
    signal_group: bool = True
    # End the server with the thread that starts it (see popen_tied) instead of leaving
    # it running; the stack's components set it from StackPaths.tied.
    tied: bool = False
    # What the kernel sends a tied server then: SIGKILL, unless it has a quick shutdown that
    # also frees what a kill would leave behind (PostgreSQL's SysV shared memory segment).
    death_signal: int = signal.SIGKILL

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        pass_fds: Sequence[int] = (),
    ) -> int:
        if (pid := self.pid()) is not None:
            return pid
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            out.write(
                f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(argv)}\n".encode()
            )
            out.flush()
            options: dict[str, Any] = {
                "stdin": subprocess.DEVNULL,
                "stdout": out,
                "stderr": subprocess.STDOUT,
                "env": dict(env) if env is not None else None,
                "cwd": cwd,
                "start_new_session": True,
                "user": user,
                "group": user,
                "extra_groups": [] if user else None,
                "pass_fds": tuple(pass_fds),
            }
            proc: subprocess.Popen[bytes] = (
                popen_tied(argv, death_signal=self.death_signal, **options)
                if self.tied
                else subprocess.Popen(list(argv), **options)
            )
        _children[proc.pid] = proc
        self.pid_file.write_text(f"{proc.pid}\n")
        log.info("started %s", self.name, extra={"pid": proc.pid, "log": str(self.log_file)})
        return proc.pid

    def stop(self, *, timeout: float = 30.0, sig: int = signal.SIGTERM) -> None:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        with contextlib.suppress(ProcessLookupError):
            if self.signal_group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        child = _children.get(pid)
        if child is not None:  # our own child: wait for its exit status, not just its state
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout)
        while time.monotonic() < deadline and pid_alive(pid):
            _reap(pid)
            time.sleep(0.1)
        if pid_alive(pid):
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            if child is not None:
                child.wait()
            while pid_alive(pid):
                _reap(pid)
                time.sleep(0.05)
        # Stragglers in the group (e.g. a forked helper) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        log.info("stopped %s", self.name, extra={"pid": pid})


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our child, so it does not linger as a zombie."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
