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
from contextlib import closing
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

from pagestream.local.snapshot import SCHEMA_VARIABLE, sqlstring
from pagestream.stack.kafka import Kafka
from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import REPO_ROOT, StackPaths
from pagestream.stack.postgres import DATABASE, Postgres
from pagestream.stack.process import free_port, popen_tied
from pagestream.stack.prometheus import Prometheus
from pagestream_spark.migrate import migrate

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
    namespace: str
    prometheus: Prometheus
    postgres: Postgres
    operator_port: int
    # The datasource's login: the read-only role the job granted its schema to.
    reader: str

    def as_reader(self) -> Any:
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.postgres.port,
            dbname=DATABASE,
            user=self.reader,
            password=READER_PASSWORD,
        )
        conn.autocommit = True
        return conn


# The pipelines the operator reconciles in the test's namespace, besides the example one (which
# stays DEPLOYING: the test cluster runs no Spark operator). The test plays the Spark operator
# for these two, which report RUNNING: the one named after the running job (whose series carry
# the namespace, as a PodMonitor's scrape adds it) and one whose job nobody scrapes.
UNSCRAPED = "no-job"
READER_PASSWORD = "dashboard-reader-pw"


def _admin(postgres: Postgres) -> Any:
    conn = psycopg2.connect(postgres.dsn())
    conn.autocommit = True
    return conn


def _pipeline_manifest(name: str) -> str:
    """The minimal example's pipeline, under another name."""
    docs = list(yaml.safe_load_all((REPO_ROOT / "manifests/examples/minimal.yaml").read_text()))
    (pipeline,) = [d for d in docs if d and d["kind"] == "PageAnalyticsPipeline"]
    pipeline["metadata"]["name"] = name
    return yaml.safe_dump(pipeline)


def _play_spark_operator_running(kube: KubeControlPlane, namespace: str, name: str) -> None:
    """What the Kubeflow Spark operator writes once the application runs."""
    eventually(
        lambda: (
            kubectl(kube, "get", "sparkapplication", name, "-n", namespace, check=False).returncode
            == 0
        ),
        timeout=60,
        what=f"the SparkApplication {namespace}/{name}",
    )
    status = {
        "status": {
            "applicationState": {"state": "RUNNING"},
            "submissionID": f"sub-{name}",
            "driverInfo": {"podName": f"{name}-driver"},
        }
    }
    kubectl(
        kube,
        "patch",
        "sparkapplication",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )


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
    pipeline = run.schema.replace("_", "-")
    reader = f"grafana_{uuid.uuid4().hex[:8]}"
    with closing(_admin(postgres)) as admin, admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {reader} LOGIN PASSWORD '{READER_PASSWORD}'")
    try:
        kubectl(
            kube,
            "apply",
            "-n",
            namespace,
            "-f",
            str(REPO_ROOT / "manifests/examples/minimal.yaml"),
        )
        for name in (pipeline, UNSCRAPED):
            kubectl(kube, "apply", "-n", namespace, "-f", "-", stdin=_pipeline_manifest(name))
            _play_spark_operator_running(kube, namespace, name)
        prometheus.set_targets("pagestream-operator", [f"127.0.0.1:{op_metrics}"])

        # The streaming job on the seeded dataset (duplicates, malformed records, bots, late
        # events), scraped by Prometheus while it runs.
        dataset = build_dataset(seed=23, valid_events=2000, now=int(time.time()))
        records = [(r.key, r.value) for r in dataset.records]
        proc = run.start(**{"postgres-reader-role": reader})
        # The driver's namespace as a target label, as a PodMonitor's scrape adds it.
        prometheus.set_targets(
            "pagestream-job", [f"127.0.0.1:{run.metrics_port}"], {"namespace": namespace}
        )
        # Traffic only once Prometheus has scraped the job: rates need a sample before it.
        selector = f'pagestream_job_batch_duration_seconds_count{{pipeline="{pipeline}"}}'
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
        yield Running(run, pipeline, namespace, prometheus, postgres, op_metrics, reader)
    finally:
        with closing(_admin(postgres)) as admin, admin.cursor() as cur:
            cur.execute(f"DROP OWNED BY {reader}")
            cur.execute(f"DROP ROLE {reader}")
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
    sql = sql.replace(SCHEMA_VARIABLE, sqlstring(schema))
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN {frm} AND {to}", sql)
    sql = sql.replace("$__timeFrom()", frm).replace("$__timeTo()", to)

    def group(m: re.Match[str]) -> str:
        column, interval = m.group(1).strip(), m.group(2)
        seconds = int(interval[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[interval[-1]]
        return f'floor(extract(epoch from {column})/{seconds})*{seconds} AS "time"'

    sql = re.sub(r"\$__timeGroupAlias\(([^,]+),\s*'(\w+)'\)", group, sql)
    assert "$" not in sql.replace("$$", ""), f"unexpanded macro or variable in {sql}"
    return sql


def prom_query(running: Running, expr: str) -> list[dict[str, Any]]:
    return running.prometheus.query(expand_promql(expr, running.pipeline, running.namespace))


def finite(result: list[dict[str, Any]]) -> list[float]:
    return [float(s["value"][1]) for s in result if math.isfinite(float(s["value"][1]))]


def label_values(running: Running, query: str) -> list[str]:
    """A `label_values(metric{selector}, label)` variable query, as Grafana runs it (the
    series' label values API), with the dashboard's variables expanded."""
    m = re.fullmatch(r"label_values\((\w+(?:\{[^}]*\})?), (\w+)\)", query)
    assert m, query
    match = expand_promql(m.group(1), running.pipeline, running.namespace)
    url = f"{running.prometheus.url}/api/v1/label/{m.group(2)}/values?" + urllib.parse.urlencode(
        {"match[]": match}
    )
    with urllib.request.urlopen(url, timeout=10) as resp:
        return list(json.load(resp)["data"])


def test_variables_list_the_running_pipeline_and_its_namespace(running: Running) -> None:
    """The dashboard's `namespace` variable (label_values(pagestream_job_records_total,
    namespace)) lists the job's namespace; its `pipeline` variable, within that namespace,
    the job."""
    data = json.loads((DASHBOARDS / "pipeline-health.json").read_text())
    variables = {
        v["name"]: v["query"]["query"] for v in data["templating"]["list"] if v["type"] == "query"
    }
    assert set(variables) == {"namespace", "pipeline"}
    eventually(
        lambda: running.namespace in label_values(running, variables["namespace"]),
        timeout=60,
        what=f"{running.namespace} among the namespace label values",
    )
    eventually(
        lambda: label_values(running, variables["pipeline"]) == [running.pipeline],
        timeout=60,
        what=f"{running.pipeline}, alone, among the pipelines of {running.namespace}",
    )


@pytest.mark.parametrize(("title", "expr"), PROM_CASES, ids=[c[0] for c in PROM_CASES])
def test_promql_panel_returns_data(running: Running, title: str, expr: str) -> None:
    # Rates need two scrapes after the job's batches; wait for the data, never a fixed time.
    result = eventually(
        lambda: finite(prom_query(running, expr)), timeout=90, what=f"data for {title!r}"
    )
    assert result
    if "pipeline" in expr and "reconcile" not in expr:
        # The panels are about the selected namespace and pipeline only (the operator's own
        # reconcile series are about all its pipelines).
        for sample in prom_query(running, expr):
            assert sample["metric"].get("pipeline", running.pipeline) == running.pipeline
            assert sample["metric"].get("namespace", running.namespace) == running.namespace


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
    """As the datasource's read-only role: what the panels need, the job granted it."""
    now = dt.datetime.now(dt.UTC)
    query = expand_sql(sql, running.run.schema, now - dt.timedelta(days=2), now)
    with closing(running.as_reader()) as conn, conn.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
        columns = [c.name for c in cur.description]
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


# Panels that read rollups, and the same numbers counted from the facts.
_IN_RANGE = "f.event_time >= %s AND f.event_time < %s"
FROM_FACTS = {
    "Top referrer domains": f"""SELECT r.domain, r.medium, count(*) FROM fact_page_views f
        JOIN dim_referrer r USING (referrer_key) WHERE r.domain <> '' AND {_IN_RANGE} GROUP BY 1, 2""",
    "Campaigns": f"""SELECT c.source, c.medium, c.name, count(*) FROM fact_page_views f
        JOIN dim_campaign c USING (campaign_key) WHERE c.name <> '' AND {_IN_RANGE} GROUP BY 1, 2, 3""",
    "Device classes": f"""SELECT u.device_class, count(*) FROM fact_page_views f
        JOIN dim_user_agent u USING (user_agent_key) WHERE {_IN_RANGE} GROUP BY 1""",
    "Stores": f"""SELECT s.store_id, count(*) FROM fact_page_views f
        JOIN dim_store s USING (store_key) WHERE {_IN_RANGE} GROUP BY 1""",
}


@pytest.mark.parametrize("title", sorted(FROM_FACTS))
@pytest.mark.parametrize("long_range", [False, True], ids=["last-3-hours", "4-days"])
def test_rollup_panels_equal_the_facts(running: Running, title: str, long_range: bool) -> None:
    """Over a range starting and ending on bucket boundaries, the counts the facts of that
    range give: the last 3 whole hours (minute or hour rollups, as the panel's dimension has
    them) and 4 whole days holding every stored page view (day rollups)."""
    (sql,) = [s for t, s in SQL_CASES if t == title]
    ((oldest, newest),) = running.run.query(
        "SELECT min(event_time), max(event_time) FROM fact_page_views"
    )
    if long_range:
        start = oldest.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + dt.timedelta(days=4)
        assert newest < end, "the dataset spans more than 4 days"
    else:
        end = newest.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
        start = end - dt.timedelta(hours=3)
    # $__timeFilter is BETWEEN: end a second early so the bucket starting at `end` is out.
    query = expand_sql(sql, running.run.schema, start, end - dt.timedelta(seconds=1))
    panel = {tuple(row[:-1]): int(row[-1]) for row in running.run.query(query)}
    facts = {
        tuple(row[:-1]): int(row[-1]) for row in running.run.query(FROM_FACTS[title], (start, end))
    }
    top = sorted(facts.items(), key=lambda kv: -kv[1])[: len(panel)]
    assert panel and sum(panel.values()) == sum(v for _, v in top)
    assert all(facts[key] == views for key, views in panel.items())


def test_the_schema_variable_lists_the_pipelines_the_role_may_read(running: Running) -> None:
    """A closed list: of the pipelines in the database, the ones the role may read."""
    data = json.loads((DASHBOARDS / "page-analytics.json").read_text())
    (variable,) = [v for v in data["templating"]["list"] if v["name"] == "schema"]
    other = f"t_{uuid.uuid4().hex[:8]}"
    with closing(psycopg2.connect(running.postgres.dsn())) as conn:
        migrate(conn, other)
    try:
        with closing(running.as_reader()) as conn, conn.cursor() as cur:
            cur.execute(variable["query"])
            assert cur.fetchall() == [(running.run.schema,)]
        with closing(_admin(running.postgres)) as conn, conn.cursor() as cur:
            cur.execute(variable["query"])
            assert {running.run.schema, other} <= {row[0] for row in cur.fetchall()}
    finally:
        with closing(_admin(running.postgres)) as conn, conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA {other} CASCADE")


# Schema values a viewer could put in the dashboard's URL (var-schema=...): quotes, a
# backslash before a quote, comments, statements, a real schema that is no pipeline's.
HOSTILE_SCHEMAS = [
    "pagestream'; DROP TABLE batch_commits; --",
    "x' OR '1'='1",
    'x"; DROP SCHEMA public CASCADE; --',
    "x\\'; DELETE FROM batch_commits; --",
    "x'||pg_sleep(5)||'",
    "$$; DROP TABLE batch_commits; $$",
    "information_schema",
    "",
]


@pytest.mark.parametrize("hostile", HOSTILE_SCHEMAS)
def test_a_hostile_schema_value_reaches_no_sql(running: Running, hostile: str) -> None:
    """Every panel with the value as Grafana's sqlstring format writes it: one string, which
    pagestream_dashboards.run refuses as no pipeline's schema; nothing runs, nothing changes."""
    now = dt.datetime.now(dt.UTC)
    before = running.run.query("SELECT count(*), sum(consumed) FROM batch_commits")
    for title, sql in SQL_CASES:
        query = expand_sql(sql, hostile, now - dt.timedelta(days=2), now)
        with closing(running.as_reader()) as conn, conn.cursor() as cur:
            with pytest.raises(psycopg2.errors.InvalidSchemaName) as info:
                cur.execute(query)
        assert "no pagestream pipeline schema" in str(info.value), title
    assert running.run.query("SELECT count(*), sum(consumed) FROM batch_commits") == before


def test_a_pipeline_schema_the_role_was_not_granted_stays_closed(running: Running) -> None:
    """Another pipeline's schema in the same database passes the function's check (it is a
    pipeline's) and is then refused by PostgreSQL: the role's own rights decide."""
    other = f"t_{uuid.uuid4().hex[:8]}"
    with closing(psycopg2.connect(running.postgres.dsn())) as conn:
        migrate(conn, other)
    now = dt.datetime.now(dt.UTC)
    try:
        for _title, sql in SQL_CASES:
            query = expand_sql(sql, other, now - dt.timedelta(days=2), now)
            with closing(running.as_reader()) as conn, conn.cursor() as cur:
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(query)
    finally:
        with closing(_admin(running.postgres)) as conn, conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA {other} CASCADE")


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
        "Pipelines by lifecycle state",
        "Pipeline states",
        "Stored events by kind (time range)",
        "Late page views (time range)",
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
    job commits and has read everything, so its stall and lag conditions are false. Of the
    pipelines the operator reconciles, the example one has no Spark operator to run it (the
    test cluster has none), so it stays DEPLOYING and the not-Ready condition holds, naming it;
    the two the test reports RUNNING are not; the one whose job Prometheus scrapes has its job
    series (joined on namespace and pipeline), the other has none and the metrics-absent
    condition names it, and it alone. Nothing is FAILED or stalled."""
    exprs = alert_exprs()

    def for_pipeline(name: str) -> list[dict[str, Any]]:
        return [
            s
            for s in running.prometheus.query(exprs[name])
            if s["metric"].get("pipeline") == running.pipeline
        ]

    def named(name: str) -> set[tuple[str, ...]]:
        """The (namespace, pipeline, further labels) the condition holds for in this test's
        namespace: the labels its alert carries."""
        out = set()
        for sample in running.prometheus.query(exprs[name]):
            labels = sample["metric"]
            if labels.get("namespace") != running.namespace:
                continue
            assert float(sample["value"][1]) == 1, sample
            out.add(tuple(labels[k] for k in sorted(labels)))
        return out

    # Both series exist, so an empty result means the condition is false, not absent data.
    assert finite(
        prom_query(running, 'pagestream_job_last_commit_timestamp_seconds{pipeline=~"$pipeline"}')
    )
    assert finite(
        prom_query(running, 'pagestream_job_kafka_offsets_behind_latest{pipeline=~"$pipeline"}')
    )
    assert for_pipeline("PagestreamNoCommittedBatch") == []
    assert for_pipeline("PagestreamKafkaLagGrowing") == []

    example = yaml.safe_load_all((REPO_ROOT / "manifests/examples/minimal.yaml").read_text())
    (example_name,) = [
        d["metadata"]["name"] for d in example if d["kind"] != "PersistentVolumeClaim"
    ]

    def not_ready() -> set[tuple[str, ...]]:
        # Labels sorted: namespace, pipeline, state.
        return {n for n in named("PagestreamPipelineNotReady") if n[2] == "DEPLOYING"}

    assert eventually(not_ready, timeout=60, what="the not-Ready condition") == {
        (running.namespace, example_name, "DEPLOYING")
    }

    # The series the pipeline alerts read: one per pipeline, with its state and Ready reason.
    def states() -> set[tuple[str, str, str]]:
        return {
            (s["metric"]["pipeline"], s["metric"]["state"], s["metric"]["reason"])
            for s in prom_query(
                running, 'pagestream_operator_pipeline_state{namespace=~"$namespace"}'
            )
        }

    expected = {
        (example_name, "DEPLOYING", "Deploying"),
        (running.pipeline, "RUNNING", "Running"),
        (UNSCRAPED, "RUNNING", "Running"),
    }
    eventually(lambda: states() == expected, timeout=60, what=f"the state series {expected}")
    assert named("PagestreamPipelineMetricsAbsent") == {(running.namespace, UNSCRAPED)}
    assert named("PagestreamPipelineFailed") == set()
    assert named("PagestreamPipelineStalled") == set()
