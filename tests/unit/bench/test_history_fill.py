"""The history benchmark's pure parts: the daily plan of the fill and Grafana's macros."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from history import expand_panel_sql, panel_queries
from history_fill import PAGE_VIEW_SHARE, daily_plan


def test_the_plan_spreads_every_event_over_the_days_with_busier_weekends_and_growth() -> None:
    last = dt.date(2026, 12, 2)  # a Wednesday
    plans = daily_plan(1_000_000, 35, last)
    assert [p.day for p in plans] == [last - dt.timedelta(days=34 - n) for n in range(35)]
    total = sum(p.page_views + p.other_events for p in plans)
    assert abs(total - 1_000_000) <= 35  # rounding per day
    for p in plans:
        share = p.page_views / (p.page_views + p.other_events)
        assert abs(share - PAGE_VIEW_SHARE) < 0.001
    by_day = {p.day: p.page_views + p.other_events for p in plans}
    saturday, friday = dt.date(2026, 11, 28), dt.date(2026, 11, 27)
    assert by_day[saturday] > 1.25 * by_day[friday]
    assert by_day[last] > by_day[last - dt.timedelta(days=28)]  # same weekday, 4 weeks on
    assert max(plans, key=lambda p: p.page_views).day.isoweekday() >= 6


def test_every_panel_query_expands_without_a_macro_or_variable_left() -> None:
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    queries = panel_queries()
    assert len(queries) >= 10
    for title, text in queries:
        expanded = expand_panel_sql(text, "history", start, start + dt.timedelta(days=1))
        assert "$" not in expanded.replace("$$", ""), title
        assert "'history'" in expanded, title
    (top_products,) = [t for title, t in queries if title == "Top products"]
    expanded = expand_panel_sql(top_products, "o'hare", start, start + dt.timedelta(days=1))
    assert "'o''hare'" in expanded
    assert "BETWEEN '2026-12-01T00:00:00Z' AND '2026-12-02T00:00:00Z'" in expanded
