"""The dashboard snapshot draws every chart in a real browser: the page is rendered from panel
results shaped as the dashboard's queries return them, opened in headless Chromium, and each
chart's marks are counted after layout."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from chromium import RenderedPage

from pagestream.local.snapshot import PanelResult, dashboard_panels, render_html


def _result_for(panel, start: dt.datetime) -> PanelResult:  # type: ignore[no-untyped-def]
    """Rows of the shape each panel's SQL returns (types as psycopg2 returns them)."""
    minutes = [start + dt.timedelta(minutes=i) for i in range(30)]
    if panel.kind == "stat":
        return PanelResult(panel, ["value"], [(1234,)])
    if panel.kind == "timeseries" and "metric" in panel.sql:
        return PanelResult(
            panel,
            ["time", "metric", "views"],
            [
                (t, b, Decimal(10 + i))
                for i, t in enumerate(minutes)
                for b in ("Chrome / Linux", "Safari / iOS")
            ],
        )
    if panel.kind == "timeseries":
        return PanelResult(
            panel, ["time", "page views"], [(t, Decimal(i * 3)) for i, t in enumerate(minutes)]
        )
    if "dim_product" in panel.sql:  # Top products: label (or id), id, page URL, views
        return PanelResult(
            panel,
            ["product", "id", "url", "views"],
            [
                (
                    f"Ring Luno {i}",
                    str(550_000 + i),
                    f"https://www.lumera.de/{i}.html",
                    Decimal(100 - i * 7),
                )
                for i in range(10)
            ],
        )
    if panel.kind == "piechart":
        return PanelResult(
            panel, ["medium", "views"], [("search", 30), ("social", 12), ("direct", 8)]
        )
    return PanelResult(panel, ["label", "views"], [(f"item {i}", 100 - i * 7) for i in range(10)])


def test_every_chart_is_drawn(
    tmp_path: Path, open_in_chromium: Callable[[Path], RenderedPage]
) -> None:
    start = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    title, sections = dashboard_panels()
    results = [(name, [_result_for(p, start) for p in panels]) for name, panels in sections]
    page = tmp_path / "snapshot.html"
    page.write_text(
        render_html(
            title, results, pipeline="page-views", start=start, end=start + dt.timedelta(hours=1)
        )
    )

    rendered = open_in_chromium(page)
    assert 'data-charts-ready="true"' in rendered.dom
    charts = {r.panel.title for _, panels in results for r in panels if r.panel.kind != "stat"}
    marks = rendered.drawn_marks
    assert set(marks) == charts
    assert all(n > 0 for n in marks.values()), marks
    assert marks["Page views by hour and browser"] == 2  # one line per browser
    assert marks["Referrer media"] == 3  # one slice per medium
    assert marks["Top products"] == 10  # one bar per product
    assert "Ring Luno 3 / 550003" in rendered.dom  # labelled with the product's label
