"""`pagestream stack` is idempotent, survives restarts on the same ports, and stopping it
leaves no process behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pagestream.stack.paths import StackPaths
from pagestream.stack.process import pid_alive, processes_referring_to

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.prometheus]


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PAGESTREAM_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "pagestream", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _pids(state: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in state.glob("*/*.pid")}


def test_up_is_idempotent_and_down_leaves_nothing_running(stack_paths: StackPaths) -> None:
    state = stack_paths.state.parent / "lifecycle"
    first = _cli(state, "stack", "up")
    assert first.returncode == 0, first.stderr
    pids = _pids(state)
    assert set(pids) == {"kafka", "postgres", "prometheus"}
    assert all(pid_alive(pid) for pid in pids.values())
    ports = json.loads((state / "stack.json").read_text())["ports"]

    again = _cli(state, "stack", "up")
    assert again.returncode == 0, again.stderr
    assert _pids(state) == pids, "a second `up` must reuse the running servers"
    for name in ("kafka", "postgres", "prometheus"):
        assert f"{name}" in again.stdout and "up" in again.stdout

    down = _cli(state, "stack", "down")
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(pid) for pid in pids.values())
    assert processes_referring_to(state) == []
    assert list(state.glob("*/*.pid")) == []

    # Restarted, the stack comes back on the ports clients were told about, data intact.
    restart = _cli(state, "stack", "up", "postgres")
    try:
        assert restart.returncode == 0, restart.stderr
        assert (
            json.loads((state / "stack.json").read_text())["ports"]["postgres"] == ports["postgres"]
        )
    finally:
        assert _cli(state, "stack", "down").returncode == 0
    assert processes_referring_to(state) == []


def test_status_reports_where_each_component_listens(stack_paths: StackPaths) -> None:
    state = stack_paths.state.parent / "status-probe"
    out = _cli(state, "stack", "status")
    assert out.returncode == 0
    assert "no local stack here yet" in out.stdout
