"""How the local pipeline is doing: rates, lag and freshness from the job's metrics endpoint,
the exact accounting from PostgreSQL (the job's ``batch_commits`` and ``dead_letters``)."""

from __future__ import annotations

import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pagestream.local.platform import LocalPlatform
from pagestream_common.jobconfig import JobConfig

if TYPE_CHECKING:
    from rich.console import Group


@dataclass(frozen=True)
class Accounting:
    """Sums over every committed batch: consumed = stored + duplicates + dead-lettered + bots."""

    batches: int = 0
    consumed: int = 0
    page_views: int = 0
    other_events: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    bots: int = 0

    @property
    def stored(self) -> int:
        return self.page_views + self.other_events


@dataclass(frozen=True)
class PipelineStatus:
    pipeline: str
    # stopped: no job process; starting: the process runs but has committed nothing since it
    # started; running: it commits batches; degraded: the process runs but its metrics endpoint
    # does not answer.
    state: str
    input_rows_per_second: float | None = None
    processed_rows_per_second: float | None = None
    kafka_offsets_behind_latest: float | None = None
    # Now minus the newest event time committed: how far behind the tables are.
    freshness_seconds: float | None = None
    seconds_since_last_commit: float | None = None
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    accounting: Accounting = Accounting()
    simulator_running: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["accounting"]["stored"] = self.accounting.stored
        return out


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]] | None:
    """Samples by name from a Prometheus text endpoint; None when it does not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _one(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float | None:
    values = samples.get(name)
    return values[0][1] if values else None


def _accounting(
    platform: LocalPlatform, config: JobConfig
) -> tuple[Accounting, dict[str, int]] | None:
    import psycopg2
    from psycopg2 import sql

    try:
        conn = psycopg2.connect(platform.stack.postgres().dsn(config.postgres_database))
    except psycopg2.OperationalError:
        return None
    schema = sql.Identifier(config.postgres_schema)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT count(*), coalesce(sum(consumed), 0), coalesce(sum(page_views), 0), "
                    "coalesce(sum(other_events), 0), coalesce(sum(duplicates), 0), "
                    "coalesce(sum(dead_lettered), 0), coalesce(sum(bots), 0) "
                    "FROM {}.batch_commits"
                ).format(schema)
            )
            totals = cur.fetchone()
            assert totals is not None  # an aggregate without GROUP BY returns one row
            accounting = Accounting(*(int(v) for v in totals))
            cur.execute(
                sql.SQL(
                    "SELECT reason, count(*) FROM {}.dead_letters GROUP BY 1 ORDER BY 1"
                ).format(schema)
            )
            by_reason = {str(reason): int(n) for reason, n in cur.fetchall()}
        return accounting, by_reason
    except psycopg2.Error:
        return None  # the job has not created its tables yet
    finally:
        conn.close()


def pipeline_status(platform: LocalPlatform) -> PipelineStatus | None:
    pipeline = platform.current()
    if pipeline is None:
        return None
    simulator_running = platform.simulator_process(pipeline.name).running()
    config = platform.job_config(pipeline) if platform.stack.known() else None
    accounting: Accounting = Accounting()
    by_reason: dict[str, int] = {}
    if config is not None and platform.stack.postgres().healthy():
        found = _accounting(platform, config)
        if found is not None:
            accounting, by_reason = found
    if config is None or not platform.job_process(pipeline.name).running():
        return PipelineStatus(
            pipeline.name,
            "stopped",
            accounting=accounting,
            dead_letters_by_reason=by_reason,
            simulator_running=simulator_running,
        )
    samples = scrape(config.metrics_port)
    if samples is None:
        return PipelineStatus(
            pipeline.name,
            "degraded" if accounting.batches else "starting",
            accounting=accounting,
            dead_letters_by_reason=by_reason,
            simulator_running=simulator_running,
        )
    last_commit = _one(samples, "pagestream_job_last_commit_timestamp_seconds")
    return PipelineStatus(
        pipeline.name,
        "running" if last_commit else "starting",
        input_rows_per_second=_one(samples, "pagestream_job_input_rows_per_second"),
        processed_rows_per_second=_one(samples, "pagestream_job_processed_rows_per_second"),
        kafka_offsets_behind_latest=_one(samples, "pagestream_job_kafka_offsets_behind_latest"),
        freshness_seconds=_one(samples, "pagestream_job_watermark_delay_seconds"),
        seconds_since_last_commit=time.time() - last_commit if last_commit else None,
        dead_letters_by_reason=by_reason,
        accounting=accounting,
        simulator_running=simulator_running,
    )


def render(status: PipelineStatus) -> Group:
    """A rich renderable: the state, the flow, the accounting, dead letters by reason."""
    from rich.console import Group
    from rich.table import Table

    def number(value: float | None, unit: str = "") -> str:
        return "-" if value is None else f"{value:,.1f}{unit}"

    colour = {"running": "green", "starting": "yellow"}.get(status.state, "red")
    flow = Table(
        title=f"pipeline {status.pipeline}: [{colour}]{status.state}[/]", show_header=False
    )
    flow.add_column(justify="left")
    flow.add_column(justify="right")
    flow.add_row("input rate", number(status.input_rows_per_second, " rows/s"))
    flow.add_row("processed rate", number(status.processed_rows_per_second, " rows/s"))
    flow.add_row("Kafka lag", number(status.kafka_offsets_behind_latest, " records"))
    flow.add_row("freshness", number(status.freshness_seconds, " s"))
    flow.add_row("last commit", number(status.seconds_since_last_commit, " s ago"))
    flow.add_row("simulator", "sending" if status.simulator_running else "stopped")
    acc = status.accounting
    books = Table(title="accounting (all committed batches)")
    for column in ("batches", "consumed", "stored", "duplicates", "dead-lettered", "bots"):
        books.add_column(column, justify="right")
    books.add_row(
        *(
            f"{v:,}"
            for v in (
                acc.batches,
                acc.consumed,
                acc.stored,
                acc.duplicates,
                acc.dead_lettered,
                acc.bots,
            )
        )
    )
    dead = Table(title="dead letters by reason")
    dead.add_column("reason")
    dead.add_column("records", justify="right")
    for reason, count in status.dead_letters_by_reason.items():
        dead.add_row(reason, f"{count:,}")
    if not status.dead_letters_by_reason:
        dead.caption = "none yet"
    return Group(flow, books, dead)
