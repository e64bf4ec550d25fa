"""Every query of every dashboard panel, run against real data: the PromQL panels against the
real Prometheus scraping a running streaming job (Spark local mode, real Kafka and PostgreSQL)
and a running operator reconciling a real pipeline; the SQL panels against the PostgreSQL
schema that job wrote. Grafana's variables and macros are expanded the way Grafana expands
them; each query must return data, and numbers, not NaN or NULL."""

from __future__ import annotations

import datetime as dt
import json
import math
import numbers
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2
import pytest
import yaml
from chart_harness import CHART, NO_DEPENDENCIES, Chart, kubectl
from grafana_macros import expand_promql
from polling import eventually
from streaming.conftest import JobRun, new_job_run, produce, stop_all
from streaming.dataset import build_dataset

from pagestream.stack.kafka import Kafka
from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import REPO_ROOT, StackPaths
from pagestream.stack.postgres import Postgres
from pagestream.stack.process import free_port, popen_tied
from pagestream.stack.prometheus import Prometheus

pytestmark = [
    pytest.mark.spark,
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.prometheus,
    pytest.mark.kube,
]

DASHBOARDS = CHART / "dashboards"


def panels(name: str) -> list[dict[str, Any]]:
    data = json.loads((DASHBOARDS / f"{name}.json").read_text())
    return [p for p in data["panels"] if p["type"] != "row"]


def cases(name: str) -> list[tuple[str, str]]:
    return [(p["title"], t.get("expr") or t["rawSql"]) for p in panels(name) for t in p["targets"]]


PROM_CASES = cases("pipeline-health")
SQL_CASES = cases("page-analytics")


@dataclass
class Running:
    run: JobRun
    pipeline: str
    prometheus: Prometheus
    postgres: Postgres
    operator_port: int


def _fresh_page_views(count: int) -> list[tuple[bytes | None, bytes]]:
    """Page views that happen now (for the realtime panel), built from the dataset's events."""
    now = int(time.time())
    out = []
    for rec in build_dataset(seed=11, valid_events=200, now=now).records:
        event = rec.event
        if event is None or rec.is_bot or event.get("collection") != "view_product_detail":
            continue
        event = {**event, "id": f"fresh-{uuid.uuid4().hex}", "time_stamp": now}
        out.append((rec.key, json.dumps(event).encode()))
        if len(out) == count:
            break
    return out


@pytest.fixture(scope="module")
def running(
    kafka: Kafka,
    postgres: Postgres,
    prometheus: Prometheus,
    kube: KubeControlPlane,
    chart_crds: list[str],
    stack_paths: StackPaths,
) -> Iterator[Running]:
    # The operator, reconciling the minimal example pipeline every 2 s, scraped by Prometheus.
    namespace = f"dash-{uuid.uuid4().hex[:8]}"
    kubectl(kube, "create", "namespace", namespace)
    op_metrics, op_live = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAGESTREAM_OPERATOR_")}
    log = (stack_paths.logs / "operator-dashboards.log").open("ab")
    operator = popen_tied(
        [
            sys.executable,
            "-m",
            "pagestream_operator",
            f"--kubeconfig={kube.kubeconfig}",
            f"--namespaces={namespace}",
            "--resync-seconds=2",
            f"--metrics-port={op_metrics}",
            f"--liveness-port={op_live}",
            "--bind-address=127.0.0.1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**env, "KUBECONFIG": str(kube.kubeconfig)},
    )
    log.close()
    run = new_job_run(kafka, postgres, stack_paths)
    try:
        kubectl(
            kube,
            "apply",
            "-n",
            namespace,
            "-f",
            str(REPO_ROOT / "manifests/examples/minimal.yaml"),
        )
        prometheus.set_targets("pagestream-operator", [f"127.0.0.1:{op_metrics}"])

        # The streaming job on the seeded dataset (duplicates, malformed records, bots, late
        # events), scraped by Prometheus while it runs.
        dataset = build_dataset(seed=23, valid_events=2000, now=int(time.time()))
        records = [(r.key, r.value) for r in dataset.records]
        proc = run.start()
        prometheus.set_targets("pagestream-job", [f"127.0.0.1:{run.metrics_port}"])
        # Traffic only once Prometheus has scraped the job: rates need a sample before it.
        selector = f'pagestream_job_batch_duration_seconds_count{{pipeline="{run.schema.replace("_", "-")}"}}'
        eventually(
            lambda: prometheus.query(selector), timeout=180, what="a first scrape of the job"
        )
        half = len(records) // 2
        produce(kafka, run.topic, records[:half])
        run.wait_consumed(half, proc=proc)
        produce(kafka, run.topic, records[half:])
        fresh = _fresh_page_views(50)
        produce(kafka, run.topic, fresh)
        run.wait_consumed(len(records) + len(fresh), proc=proc)
        yield Running(run, run.schema.replace("_", "-"), prometheus, postgres, op_metrics)
    finally:
        prometheus.set_targets("pagestream-job", [])
        prometheus.set_targets("pagestream-operator", [])
        stop_all(run)
        operator.terminate()
        operator.wait(30)
        kubectl(kube, "delete", "namespace", namespace, "--wait=false")


def expand_sql(sql: str, schema: str, start: dt.datetime, end: dt.datetime) -> str:
    """Grafana's PostgreSQL macros, as its SQL datasource expands them."""
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    frm, to = f"'{start.strftime(fmt)}'", f"'{end.strftime(fmt)}'"
    sql = sql.replace("${schema}", schema).replace("$schema", schema)
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN {frm} AND {to}", sql)
    sql = sql.replace("$__timeFrom()", frm).replace("$__timeTo()", to)

    def group(m: re.Match[str]) -> str:
        column, interval = m.group(1).strip(), m.group(2)
        seconds = int(interval[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[interval[-1]]
        return f'floor(extract(epoch from {column})/{seconds})*{seconds} AS "time"'

    sql = re.sub(r"\$__timeGroupAlias\(([^,]+),\s*'(\w+)'\)", group, sql)
    assert "$" not in sql.replace("$$", ""), f"unexpanded macro in {sql}"
    return sql


def prom_query(running: Running, expr: str) -> list[dict[str, Any]]:
    return running.prometheus.query(expand_promql(expr, running.pipeline))


def finite(result: list[dict[str, Any]]) -> list[float]:
    return [float(s["value"][1]) for s in result if math.isfinite(float(s["value"][1]))]


def test_pipeline_variable_lists_the_running_pipeline(running: Running) -> None:
    """The dashboard's `pipeline` variable: label_values(pagestream_job_records_total, pipeline)."""
    data = json.loads((DASHBOARDS / "pipeline-health.json").read_text())
    (var,) = [v for v in data["templating"]["list"] if v["name"] == "pipeline"]
    m = re.fullmatch(r"label_values\((\w+), (\w+)\)", var["query"]["query"])
    assert m
    url = f"{running.prometheus.url}/api/v1/label/{m.group(2)}/values?" + urllib.parse.urlencode(
        {"match[]": m.group(1)}
    )

    def listed() -> bool:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return running.pipeline in json.load(resp)["data"]

    eventually(listed, timeout=60, what=f"{running.pipeline} among the pipeline label values")


@pytest.mark.parametrize(("title", "expr"), PROM_CASES, ids=[c[0] for c in PROM_CASES])
def test_promql_panel_returns_data(running: Running, title: str, expr: str) -> None:
    # Rates need two scrapes after the job's batches; wait for the data, never a fixed time.
    result = eventually(
        lambda: finite(prom_query(running, expr)), timeout=90, what=f"data for {title!r}"
    )
    assert result
    if "pipeline" in expr and "operator" not in expr:
        # The job's panels are about the selected pipeline only.
        for sample in prom_query(running, expr):
            assert sample["metric"].get("pipeline", running.pipeline) == running.pipeline


def test_promql_panels_agree_with_the_job(running: Running) -> None:
    """Not only data: the numbers are the job's. The stored + duplicate + dead-letter + bot
    counts Prometheus scraped equal the consumed records PostgreSQL committed."""
    (consumed,) = running.run.query("SELECT sum(consumed) FROM batch_commits")[0]

    def scraped_total() -> float | None:
        result = prom_query(running, 'sum(pagestream_job_records_total{pipeline=~"$pipeline"})')
        value = float(result[0]["value"][1]) if result else None
        return value if value == consumed else None

    eventually(scraped_total, timeout=60, what=f"records_total to reach {consumed}")


@pytest.mark.parametrize(("title", "sql"), SQL_CASES, ids=[c[0] for c in SQL_CASES])
def test_sql_panel_returns_rows(running: Running, title: str, sql: str) -> None:
    now = dt.datetime.now(dt.UTC)
    query = expand_sql(sql, running.run.schema, now - dt.timedelta(days=2), now)
    with psycopg2.connect(running.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
        columns = [c.name for c in cur.description]
    conn.close()
    assert rows, f"{title}: no rows"
    values = [
        v for row in rows for v in row if isinstance(v, numbers.Number) and not isinstance(v, bool)
    ]
    assert values, f"{title}: no numbers in {columns} {rows[:3]}"
    assert sum(values) > 0, f"{title}: {columns} {rows[:3]}"


def test_realtime_panel_counts_the_fresh_page_views(running: Running) -> None:
    (sql,) = [s for t, s in SQL_CASES if t.startswith("Last 5 minutes")]
    now = dt.datetime.now(dt.UTC)
    query = expand_sql(sql, running.run.schema, now - dt.timedelta(hours=1), now)
    rows = running.run.query(query)
    assert sum(views for _, views in rows) >= 50


def test_every_dashboard_query_was_run() -> None:
    assert len(PROM_CASES) >= 16 and len(SQL_CASES) >= 15
    titles = {t for t, _ in PROM_CASES + SQL_CASES}
    for wanted in (
        "Input vs processed rate",
        "Kafka lag (records behind latest)",
        "Batch duration",
        "Dead letters by reason",
        "Freshness (commit time minus event time)",
        "Operator reconciles",
        "Page views over time",
        "Top products",
        "Countries",
        "Referrer media",
        "Top referrer domains",
        "Browsers / OS",
        "Device classes",
        "Stores",
        "Unique visitors",
        "Last 5 minutes (realtime)",
    ):
        assert wanted in titles, wanted


def test_the_helm_test_job_passes_against_a_running_operator(
    running: Running, chart: Chart
) -> None:
    """The chart's `helm test` Job runs its script against the operator's metrics Service; here
    the same script runs against the real operator process (the Service's address replaced by
    the process's), and succeeds."""
    objects = chart.objects([], NO_DEPENDENCIES, namespace="pagestream")
    (job,) = [o for o in objects if o["kind"] == "Job"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["python", "-c"]
    script = container["command"][2]
    service_url = "http://ps-pagestream-operator-metrics.pagestream.svc:8080/metrics"
    assert service_url in script
    script = script.replace(service_url, f"http://127.0.0.1:{running.operator_port}/metrics")
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=200, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "operator metrics served"


def alert_exprs() -> dict[str, str]:
    rules = yaml.safe_load((CHART / "rules" / "pagestream-alerts.yaml").read_text())
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}


def test_alert_conditions_on_the_real_series(running: Running) -> None:
    """The alert expressions, evaluated by the real Prometheus on the real series: the running
    job commits and has read everything, so its stall and lag conditions are false; the
    pipeline the operator reconciles has no Spark operator to run it (the test cluster has
    none), so it stays DEPLOYING and the not-Ready condition holds, while nothing is FAILED."""
    exprs = alert_exprs()

    def for_pipeline(name: str) -> list[dict[str, Any]]:
        return [
            s
            for s in running.prometheus.query(exprs[name])
            if s["metric"].get("pipeline") == running.pipeline
        ]

    # Both series exist, so an empty result means the condition is false, not absent data.
    assert finite(
        prom_query(running, 'pagestream_job_last_commit_timestamp_seconds{pipeline=~"$pipeline"}')
    )
    assert finite(
        prom_query(running, 'pagestream_job_kafka_offsets_behind_latest{pipeline=~"$pipeline"}')
    )
    assert for_pipeline("PagestreamNoCommittedBatch") == []
    assert for_pipeline("PagestreamKafkaLagGrowing") == []
    assert running.prometheus.query(exprs["PagestreamPipelineFailed"]) == []

    def not_ready() -> list[dict[str, Any]]:
        return running.prometheus.query(exprs["PagestreamPipelineNotReady"])

    (sample,) = eventually(not_ready, timeout=60, what="the not-Ready condition")
    assert sample["metric"]["lifecycle_state"] in {"CREATED", "DEPLOYING"}
    assert float(sample["value"][1]) == 1
