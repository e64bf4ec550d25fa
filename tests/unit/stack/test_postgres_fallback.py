"""Fallback data folders (outside a state folder the service user cannot reach) go when their
state folder has gone and their server is not running."""

from __future__ import annotations

import os
from pathlib import Path

from pagestream.stack.postgres import FALLBACK_OWNER, prune_orphaned_data_roots


def _fallback(root: Path, name: str, owner: Path | None, postmaster: int | None = None) -> Path:
    folder = root / name
    (folder / "data").mkdir(parents=True)
    if owner is not None:
        (folder / FALLBACK_OWNER).write_text(f"{owner}\n")
    if postmaster is not None:
        (folder / "data" / "postmaster.pid").write_text(f"{postmaster}\n/data\n")
    return folder


def test_only_folders_whose_state_is_gone_and_server_is_down_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "fallback"
    live_state = tmp_path / "live-state"
    live_state.mkdir()
    gone_state = tmp_path / "gone-state"
    kept_live = _fallback(root, "a", live_state)
    orphan = _fallback(root, "b", gone_state)
    running = _fallback(root, "c", gone_state, postmaster=os.getpid())
    unowned = _fallback(root, "d", None)
    stale_pid = _fallback(root, "e", gone_state, postmaster=2**22 + 1)  # above pid_max

    assert prune_orphaned_data_roots(root) == [orphan, stale_pid]
    assert sorted(p.name for p in root.iterdir()) == ["a", "c", "d"]
    assert kept_live.exists() and running.exists() and unowned.exists()


def test_a_missing_root_is_nothing_to_prune(tmp_path: Path) -> None:
    assert prune_orphaned_data_roots(tmp_path / "absent") == []
