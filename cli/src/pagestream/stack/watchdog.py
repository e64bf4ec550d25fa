"""A watchdog for a test session's folder: when the session's process is gone, however it went
(a CI timeout's SIGKILL, Ctrl-C twice, a crash), it ends every server recorded under the folder.

Tied servers (``StackPaths.tied``) already end with the session's main thread. The watchdog
catches the rest: servers started by a command that has exited since (``pagestream up`` in a
subprocess leaves its servers running, as it should for a user), a server whose start raced
the kill, and the node's containers, which containerd's shims keep out of any process tree
(``LocalNode.down`` ends them by cgroup).

It runs as ``python -m pagestream.stack.watchdog FOLDER --cache CACHE …``, forked off so that
it is no child of the watched process, in a session of its own (a Ctrl-C in the terminal or a
kill of the session's process group does not reach it; ``FOLDER/watchdog.pid`` records it),
holding a pidfd of the watched process: the pidfd becomes readable when that process exits,
and cannot be confused with a later process that reuses its pid.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pagestream.stack.errors import StackError
from pagestream.stack.paths import StackPaths
from pagestream.stack.process import kill_recorded

log = logging.getLogger(__name__)


def start_watchdog(folder: Path, cache: Path, *, log_file: Path) -> int:
    """Watch this process; when it exits, end what is recorded under ``folder``. The pid."""
    pid_file = folder / "watchdog.pid"
    pidfd = os.pidfd_open(os.getpid())
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as out:
            starter = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pagestream.stack.watchdog",
                    str(folder),
                    f"--cache={cache}",
                    f"--pidfd={pidfd}",
                    f"--pid-file={pid_file}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(pidfd,),
                cwd="/",  # not inside the folder: its processes are what tests look for
                start_new_session=True,
            )
        # The starter forks the watchdog, records its pid and exits: the watchdog is no child
        # of ours (none to reap, none for Popen to warn about when we exit before it).
        if starter.wait(60) != 0:
            raise StackError("the watchdog did not start", log=str(log_file))
    finally:
        os.close(pidfd)
    return int(pid_file.read_text())


def end_leftovers(folder: Path, cache: Path) -> list[int]:
    """SIGKILL every process recorded under ``folder`` (pid files, any depth), then take down
    any local node whose state is there; the pids killed."""
    killed = kill_recorded(folder)
    for node_file in sorted(folder.rglob("node/node.json")):
        # A state folder with a node in it: its containers are in no one's process group.
        from pagestream.stack.node.node import LocalNode

        node = LocalNode(StackPaths(cache=cache, state=node_file.parent.parent))
        if node.home == node_file.parent:
            node.down()
    return killed


def wait_for_exit(pidfd: int) -> None:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    while not poller.poll():
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pagestream.stack.watchdog")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--pidfd", type=int, required=True, help="a pidfd of the watched process")
    parser.add_argument("--pid-file", type=Path, required=True, help="where to record the pid")
    args = parser.parse_args(argv)
    if (pid := os.fork()) != 0:
        args.pid_file.write_text(f"{pid}\n")
        return 0
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s watchdog %(levelname)s %(message)s", force=True
    )
    log.info("watching over %s (pid %d)", args.folder, os.getpid())
    wait_for_exit(args.pidfd)
    started = time.monotonic()
    killed = end_leftovers(args.folder, args.cache)
    log.info(
        "the watched process is gone; killed %s in %.1fs",
        ", ".join(map(str, killed)) or "nothing",
        time.monotonic() - started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
