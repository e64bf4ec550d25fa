"""Grafana's template expansion of a dashboard query, as its datasources do it, for tests that
run the dashboards' queries against the real Prometheus (importable as ``grafana_macros``)."""

from __future__ import annotations

import re

# Grafana sets $__rate_interval from the panel's resolution; this is its value for a dashboard
# viewed over a few hours (the last scrape of every series lies within it).
RATE_INTERVAL = "5m"


def expand_promql(expr: str, pipeline: str) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    # A single selected value: Grafana substitutes it regex-escaped for a PromQL string (its
    # prometheusSpecialRegexEscape: a doubled backslash before each regex metacharacter).
    value = re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", pipeline)
    return expr.replace("${pipeline}", value).replace("$pipeline", value)
