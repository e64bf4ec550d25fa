"""Opening HTML in a real headless Chromium (Debian's `chromium`, installed by
`dev/bootstrap.sh --browser`)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from chromium import RenderedPage

# Without these Chromium waits on network look-ups and background services that are not there.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Give the page's own script time to run after layout before the DOM is dumped.
    "--virtual-time-budget=5000",
)


@pytest.fixture
def open_in_chromium(tmp_path: Path) -> Callable[[Path], RenderedPage]:
    """An HTML file as Chromium shows it: loaded, laid out and scripted."""
    binary = shutil.which("chromium")
    assert binary, "chromium is missing: run `dev/bootstrap.sh --browser`"

    def render(page: Path) -> RenderedPage:
        profile = tmp_path / f"chromium-profile-{page.stem}"
        proc = subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return RenderedPage(proc.stdout)

    return render
