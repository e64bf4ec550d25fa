"""Grafana's template expansion of a dashboard query, as its datasources do it, for tests that
run the dashboards' queries against the real Prometheus (importable as ``grafana_macros``)."""

from __future__ import annotations

import re

# Grafana sets $__rate_interval from the panel's resolution; this is its value for a dashboard
# viewed over a few hours (the last scrape of every series lies within it).
RATE_INTERVAL = "5m"
# $__range is the dashboard's time range (the default, the last hour); every test's data lies
# within it.
RANGE = "1h"
# What Grafana substitutes for a multi-value variable set to All: its allValue, as is.
ALL = ".*"


def _escaped(value: str) -> str:
    # A single selected value: Grafana substitutes it regex-escaped for a PromQL string (its
    # prometheusSpecialRegexEscape: a doubled backslash before each regex metacharacter).
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


def expand_promql(expr: str, pipeline: str, namespace: str | None = None) -> str:
    """``expr`` with ``$pipeline`` set to ``pipeline`` and ``$namespace`` to ``namespace``
    (All when None)."""
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", RANGE)
    ns = ALL if namespace is None else _escaped(namespace)
    expr = expr.replace("${namespace}", ns).replace("$namespace", ns)
    value = _escaped(pipeline)
    return expr.replace("${pipeline}", value).replace("$pipeline", value)
