"""The chart's Grafana dashboards, checked against Grafana's published schema (the models of
grafana-foundation-sdk): each file parses into the SDK's Dashboard model and encodes back to
the same JSON (nothing unknown to the schema, nothing mistyped), every panel type and every
Prometheus query has a model, and the layout and variables are consistent."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog import runtime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel
from grafana_foundation_sdk.models.prometheus import Dataquery as PrometheusQuery

DASHBOARDS = Path(__file__).resolve().parents[3] / "charts" / "pagestream" / "dashboards"
FILES = sorted(DASHBOARDS.glob("*.json"))
DATASOURCE_TYPES = {"prometheus", "grafana-postgresql-datasource"}

register_default_plugins()


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def contained(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Every key and value of ``expected`` is in ``actual`` (the encoder may add defaults)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {actual!r} is not an object"]
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}.{key}: not in Grafana's schema (dropped)")
            else:
                problems += contained(value, actual[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: list changed to {actual!r}"]
        return [
            p
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for p in contained(e, a, f"{where}[{i}]")
        ]
    return [] if expected == actual else [f"{where}: {expected!r} became {actual!r}"]


def test_there_are_the_two_dashboards() -> None:
    assert [p.name for p in FILES] == ["page-analytics.json", "pipeline-health.json"]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_round_trips_through_grafanas_schema(path: Path) -> None:
    data = load(path)
    model = Dashboard.from_json(data)
    encoded = json.loads(JSONEncoder().encode(model))
    assert contained(data, encoded) == []


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_panels_have_models_and_consistent_datasources(path: Path) -> None:
    data = load(path)
    model = Dashboard.from_json(data)
    variables = {v["name"]: v for v in data["templating"]["list"]}
    ids = [p.id_val for p in model.panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    queries = 0
    for panel in model.panels:
        if isinstance(panel, RowPanel):
            continue
        assert isinstance(panel, Panel)
        assert runtime.panelcfg_config(panel.type_val) is not None, panel.type_val
        assert panel.title and panel.targets, panel.title
        assert panel.type_val != "row"
        assert panel.datasource is not None, panel.title
        ds = panel.datasource.to_json()
        assert ds["type"] in DATASOURCE_TYPES, panel.title
        # Datasources are chosen by a dashboard variable of the same type.
        var = variables[str(ds["uid"]).strip("${}")]
        assert var["type"] == "datasource" and var["query"] == ds["type"]
        for target in panel.targets:
            queries += 1
            raw = target.to_json()
            assert raw["datasource"] == ds
            if ds["type"] == "prometheus":
                assert isinstance(target, PrometheusQuery), panel.title
                assert target.expr
            else:
                assert raw["rawSql"] and raw["rawQuery"] is True, panel.title
                assert raw["format"] in {"table", "time_series"}
    assert queries >= 10


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_layout_has_no_overlaps(path: Path) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in load(path)["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_variable_used_is_defined(path: Path) -> None:
    data = load(path)
    defined = {v["name"] for v in data["templating"]["list"]}
    text = json.dumps(data["panels"])
    used = set(re.findall(r"\$\{?([a-z]\w*)", text))
    assert used <= defined, used - defined
    assert data["uid"].startswith("pagestream-") and len(data["uid"]) <= 40


HEALTH = DASHBOARDS / "pipeline-health.json"
# The operator's own series, over all its pipelines: they have no pipeline to filter by.
OPERATOR_WIDE = {
    "pagestream_operator_reconciles_total",
    "pagestream_operator_reconcile_duration_seconds_bucket",
}
METRIC = re.compile(r"\b(pagestream_\w+)(\{[^}]*\})?")
COUNTER_INSIDE = re.compile(r"\b(rate|increase|irate)\(\s*(pagestream_\w+_total)\b")


def prometheus_targets(data: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    return [
        (p, t["expr"])
        for p in data["panels"]
        if p["type"] != "row" and p["datasource"]["type"] == "prometheus"
        for t in p["targets"]
    ]


def test_pipeline_health_has_a_namespace_variable_before_the_pipeline() -> None:
    """Same-named pipelines in two namespaces are two pipelines: the namespace is chosen
    first and the pipeline list is the chosen namespaces'."""
    variables = load(HEALTH)["templating"]["list"]
    names = [v["name"] for v in variables]
    assert names == ["prometheus", "namespace", "pipeline"]
    namespace, pipeline = variables[1], variables[2]
    assert namespace["query"]["query"] == "label_values(pagestream_job_records_total, namespace)"
    assert pipeline["query"]["query"] == (
        'label_values(pagestream_job_records_total{namespace=~"$namespace"}, pipeline)'
    )
    for var in (namespace, pipeline):
        assert var["multi"] and var["includeAll"] and var["allValue"] == ".*"


def test_every_pipeline_query_is_filtered_by_namespace_and_pipeline() -> None:
    filtered = 0
    for panel, expr in prometheus_targets(load(HEALTH)):
        for name, selector in METRIC.findall(expr):
            if name in OPERATOR_WIDE:
                assert not selector, (panel["title"], expr)
                continue
            assert 'namespace=~"$namespace"' in selector, (panel["title"], expr)
            assert 'pipeline=~"$pipeline"' in selector, (panel["title"], expr)
            filtered += 1
        # A series per pipeline is one per namespace and name, never merged across namespaces.
        for group in re.findall(r"by \(([^)]*)\)", expr):
            labels = {label.strip() for label in group.split(",")}
            if "pipeline" in labels:
                assert "namespace" in labels, (panel["title"], expr)
        for target in panel["targets"]:
            if "{{pipeline}}" in target.get("legendFormat", ""):
                assert "{{namespace}}/{{pipeline}}" in target["legendFormat"], panel["title"]
    assert filtered >= 16


def test_stat_and_gauge_panels_have_thresholds_and_show_no_raw_counter() -> None:
    """A counter restarts at 0 with the driver: a stat shows its increase over the time range
    (or a rate), never its raw value."""
    single_value = [p for p in load(HEALTH)["panels"] if p["type"] in {"stat", "gauge", "bargauge"}]
    assert len(single_value) >= 5
    for panel in single_value:
        defaults = panel["fieldConfig"]["defaults"]
        steps = defaults["thresholds"]["steps"]
        assert defaults["thresholds"]["mode"] == "absolute", panel["title"]
        assert steps[0]["value"] is None, panel["title"]  # the base colour
        values = [s["value"] for s in steps[1:]]
        assert values == sorted(values), panel["title"]
        assert defaults["color"] == {"mode": "thresholds"}, panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            counters = set(re.findall(r"\bpagestream_\w+_total\b", expr))
            wrapped = {name for _, name in COUNTER_INSIDE.findall(expr)}
            assert counters == wrapped, (panel["title"], expr)
            if "increase(" in expr:
                assert "[$__range]" in expr, (panel["title"], expr)
