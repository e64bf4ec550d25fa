"""Supervising one server process: start detached, remember its pid, stop it cleanly."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

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
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                user=user,
                group=user,
                extra_groups=[] if user else None,
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
