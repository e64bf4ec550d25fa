"""The alert rules read the operator's per-pipeline series by the labels and values the
operator exports: the label names of ``pagestream_operator_pipeline_state``, its lifecycle
states, and for PagestreamPipelineStalled exactly the reasons Stalled can be True for. (promtool
checks and unit-tests the rules themselves: tests/integration/chart/test_alert_rules.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pagestream_operator.metrics import PIPELINE_STATE
from pagestream_operator.observe import REMEDIES, LifecycleState

RULES = Path(__file__).resolve().parents[3] / "charts" / "pagestream" / "rules"
SELECTOR = re.compile(r"pagestream_operator_pipeline_state\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!=|=)\s*"([^"]*)"')


def alerts() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load((RULES / "pagestream-alerts.yaml").read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"]}


def matchers(expr: str) -> list[tuple[str, str, str]]:
    return [m for sel in SELECTOR.findall(expr) for m in MATCHER.findall(sel)]


def test_the_pipeline_alerts_select_labels_and_states_the_operator_exports() -> None:
    states = {s.value for s in LifecycleState}
    using = {name: rule for name, rule in alerts().items() if SELECTOR.search(rule["expr"])}
    assert set(using) == {
        "PagestreamPipelineFailed",
        "PagestreamPipelineNotReady",
        "PagestreamPipelineStalled",
        "PagestreamPipelineMetricsAbsent",
    }
    for name, rule in using.items():
        for label, op, value in matchers(rule["expr"]):
            assert label in PIPELINE_STATE._labelnames, (name, label)
            if label == "state":
                assert set(value.split("|")) <= states if op == "=~" else value in states, name
        # Every label the alert's text uses is one its expression keeps.
        kept = re.search(r"by \(([^)]*)\)", rule["expr"])
        assert kept, name
        text = " ".join(rule["annotations"].values())
        used = set(re.findall(r"\$labels\.(\w+)", text))
        assert used <= {label.strip() for label in kept.group(1).split(",")}, name


def test_stalled_covers_every_reason_stalled_can_be_true_for() -> None:
    expr = alerts()["PagestreamPipelineStalled"]["expr"]
    (reasons,) = [v for label, op, v in matchers(expr) if label == "reason" and op == "=~"]
    assert set(reasons.split("|")) == set(REMEDIES)
    # FAILED pipelines are PagestreamPipelineFailed's.
    assert ("state", "!=", "FAILED") in matchers(expr)
