"""The alert rules pass `promtool check rules` and their unit tests (`promtool test rules`),
and every alert the issue asks for exists."""

from __future__ import annotations

import shutil
import subprocess

import yaml
from chart_harness import CHART

RULES = CHART / "rules" / "pagestream-alerts.yaml"
RULE_TESTS = CHART / "rules" / "pagestream-alerts.test.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not on PATH (Debian package prometheus; make bootstrap)"
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, check=False, cwd=RULES.parent
    )


def test_promtool_check_rules() -> None:
    proc = promtool("check", "rules", RULES.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 9 rules found" in proc.stdout


def test_promtool_unit_tests_pass() -> None:
    proc = promtool("test", "rules", RULE_TESTS.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_a_unit_test_severity_and_runbook() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"]}
    assert set(alerts) == {
        "PagestreamPipelineFailed",
        "PagestreamPipelineNotReady",
        "PagestreamPipelineStalled",
        "PagestreamOperatorReconcileErrors",
        "PagestreamPipelineMetricsAbsent",
        "PagestreamKafkaLagGrowing",
        "PagestreamDeadLetterRateHigh",
        "PagestreamNoCommittedBatch",
        "PagestreamFreshnessTooOld",
    }
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {
        case["alertname"]
        for t in tests
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert firing == set(alerts)
    # The alerts that name a pipeline are tested not firing too (an empty expectation).
    quiet = {
        case["alertname"]
        for t in tests
        for case in t.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }
    assert {
        "PagestreamPipelineFailed",
        "PagestreamPipelineNotReady",
        "PagestreamPipelineStalled",
        "PagestreamPipelineMetricsAbsent",
    } <= quiet
    docs = (CHART.parents[1] / "docs" / "alerts.md").read_text()
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor == name.lower()
        assert f"## {name}" in docs, f"docs/alerts.md has no section for {name}"
