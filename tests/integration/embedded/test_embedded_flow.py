"""The embedded default end to end, through the CLI as a user runs it: `up` with the local
pipeline YAML, analytics and status while events flow, `down` with nothing left running, `up`
again resuming from the checkpoint with exact accounting against the simulator's ground truth.

Everything runs in a state folder of its own (its own Kafka, PostgreSQL and Prometheus), so the
test never touches ./.pagestream.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from chromium import RenderedPage

from pagestream.stack.paths import REPO_ROOT, StackPaths
from pagestream.stack.process import processes_referring_to
from pagestream.stack.stack import LocalStack

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.prometheus, pytest.mark.spark]

PIPELINE = REPO_ROOT / "manifests" / "local" / "page-views.yaml"
# Enough events for every fault kind to show up, few enough for 2 shared cores.
EVENTS_PER_RUN = 1500
RATE = 300
MALFORMED_RATE = 0.03


def _cli(state: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pagestream", *args],
        env={**os.environ, "PAGESTREAM_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _up(state: Path) -> subprocess.CompletedProcess[str]:
    proc = _cli(
        state,
        "up",
        "-f",
        str(PIPELINE),
        f"--rate={RATE}",
        f"--events={EVENTS_PER_RUN}",
        f"--malformed-rate={MALFORMED_RATE}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _status(state: Path) -> dict[str, Any]:
    proc = _cli(state, "status", "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _manifests(state: Path) -> list[dict[str, Any]]:
    folder = state / "pipelines" / "page-views" / "simulator"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("run-*.json"))]


def _wait_until_everything_sent_is_committed(state: Path, runs: int) -> dict[str, Any]:
    """Wait (bounded) for the simulator's run to finish and the job to commit all it sent."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        manifests = _manifests(state)
        status = _status(state)
        assert status["state"] != "stopped", status  # the job process must stay up
        if len(manifests) == runs and not status["simulator_running"]:
            sent = sum(m["records_sent"] for m in manifests)
            if status["accounting"]["consumed"] >= sent:
                return status
        time.sleep(2)
    raise AssertionError(f"not everything sent was committed in time: {_status(state)}")


def _expected(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The job's outcomes the simulators' ground truth predicts, summed over runs."""
    dead: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for manifest in manifests:
        outcomes = manifest["ground_truth"]["job_outcomes"]
        dead.update(outcomes["dead_letters"])
        for key in ("stored_page_views", "stored_other_events", "duplicates", "bots"):
            totals[key] += outcomes[key]
        totals["consumed"] += manifest["records_sent"]
    return {"dead_letters": dict(sorted(dead.items())), **totals}


def _check_accounting(status: dict[str, Any], manifests: list[dict[str, Any]]) -> None:
    acc, expected = status["accounting"], _expected(manifests)
    assert acc["consumed"] == expected["consumed"]
    assert acc["page_views"] == expected["stored_page_views"]
    assert acc["other_events"] == expected["stored_other_events"]
    assert acc["duplicates"] == expected["duplicates"]
    assert acc["bots"] == expected["bots"]
    assert status["dead_letters_by_reason"] == expected["dead_letters"]
    assert acc["dead_lettered"] == sum(expected["dead_letters"].values())
    assert acc["consumed"] == acc["stored"] + acc["duplicates"] + acc["dead_lettered"] + acc["bots"]


def _query(stack: LocalStack, statement: str) -> list[tuple[Any, ...]]:
    with psycopg2.connect(stack.postgres().dsn()) as conn, conn.cursor() as cur:
        cur.execute(statement)
        rows = cur.fetchall()
    conn.close()
    return rows


@pytest.fixture
def embedded_state(stack_paths: StackPaths) -> Iterator[Path]:
    state = stack_paths.state.parent / "embedded"
    yield state
    _cli(state, "down")


def test_up_report_status_down_up_again(
    embedded_state: Path,
    stack_paths: StackPaths,
    tmp_path: Path,
    open_in_chromium: Callable[[Path], RenderedPage],
) -> None:
    state = embedded_state

    # --- up: returns after the first committed batch, and says where everything is
    first = _up(state)
    # Read after `up`: the servers' ports are the ones it chose (stack.json).
    stack = LocalStack(StackPaths(cache=stack_paths.cache, state=state))
    assert "the first batch is committed" in first.stdout
    for place in ("kafka", "postgres", "prometheus", "job metrics", "logs"):
        assert f"  {place}" in first.stdout
    status = _status(state)
    assert status["state"] == "running"
    assert status["accounting"]["batches"] >= 1

    # --- up on a running platform changes nothing
    job_pid = (state / "pipelines" / "page-views" / "job.pid").read_text()
    again = _cli(state, "up", "-f", str(PIPELINE))
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr
    assert (state / "pipelines" / "page-views" / "job.pid").read_text() == job_pid

    # --- events flow; dead letters are exactly what the simulator injected
    status = _wait_until_everything_sent_is_committed(state, runs=1)
    _check_accounting(status, _manifests(state))
    dead_share = status["accounting"]["dead_lettered"] / status["accounting"]["consumed"]
    assert MALFORMED_RATE / 2 < dead_share < MALFORMED_RATE * 2

    # --- the reports have analytics in them; Prometheus scrapes the job
    report = _cli(state, "report", "top-products", timeout=60)
    assert report.returncode == 0, report.stderr
    assert "no page views for this day yet" not in report.stdout
    assert "product_id" in report.stdout
    # The simulator's product pages give the products their labels (its brand comes first).
    assert "product_label" in report.stdout and "Lumera " in report.stdout, report.stdout
    deadline = time.monotonic() + 60
    scraped: list[dict[str, Any]] = []
    while not scraped and time.monotonic() < deadline:
        scraped = stack.prometheus().query('pagestream_job_records_total{job="pagestream-job"}')
        time.sleep(1)
    assert scraped, "Prometheus does not scrape the job's metrics"

    # --- down leaves nothing running
    down = _cli(state, "down")
    assert down.returncode == 0, down.stderr
    assert processes_referring_to(state) == []
    assert _status(state)["state"] == "stopped"

    # --- up again resumes from the checkpoint: nothing lost, nothing counted twice
    _up(state)
    status = _wait_until_everything_sent_is_committed(state, runs=2)
    manifests = _manifests(state)
    assert len(manifests) == 2
    _check_accounting(status, manifests)
    ((ids, distinct),) = _query(
        stack, "SELECT count(*), count(DISTINCT event_id) FROM pagestream.fact_page_views"
    )
    assert ids == distinct == status["accounting"]["page_views"]

    # --- the dashboard snapshot, from this PostgreSQL, draws its charts in a real browser
    page = tmp_path / "snapshot.html"
    snapshot = _cli(state, "snapshot", "-o", str(page), timeout=120)
    assert snapshot.returncode == 0, snapshot.stderr
    marks = open_in_chromium(page).drawn_marks
    for chart in (
        "Page views over time",
        "Top products",
        "Countries",
        "Top referrer domains",
        "Browsers / OS",
        "Referrer media",
    ):
        assert marks.get(chart, 0) > 0, (chart, marks)
    assert "Lumera " in page.read_text()  # the top products' bars carry their labels
    (unique_visitors,) = re.findall(
        r"Unique visitors</figcaption><p class=\"stat-value\">([\d,]+)</p>", page.read_text()
    )
    assert int(unique_visitors.replace(",", "")) > 0

    down = _cli(state, "down")
    assert down.returncode == 0, down.stderr
    assert processes_referring_to(state) == []
