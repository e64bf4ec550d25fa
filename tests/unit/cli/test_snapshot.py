"""The snapshot's drawing of the dashboard's rankings, on rows shaped as the panels' SQL returns
them (the queries themselves run against PostgreSQL in tests/integration/chart and the page in
Chromium in tests/integration/embedded)."""

from __future__ import annotations

import re
from decimal import Decimal

from pagestream.local.snapshot import PanelResult, dashboard_panels, render_panel


def _panel(title: str):  # type: ignore[no-untyped-def]
    _, sections = dashboard_panels()
    (panel,) = [p for _, panels in sections for p in panels if p.title == title]
    return panel


def _bar_labels(drawing: str) -> list[str]:
    return re.findall(r'<text x="\d+" y="\d+" text-anchor="end">([^<]*)</text>', drawing)


def test_top_products_bars_show_the_label_and_id_not_the_url() -> None:
    panel = _panel("Top products")
    # The panel's own column list, in its order.
    assert re.match(r"SELECT product, id, url, views\n", panel.sql)
    rows = [
        (
            "Lumera Ring Luno",
            "550250",
            "https://www.lumera.de/lumera-ring-luno-skum550250.html",
            Decimal(9),
        ),
        ("Tom & Jerry Pendant", "550251", "https://www.lumera.de/tom-jerry.html", Decimal(5)),
        ("550252", "550252", None, Decimal(2)),  # no label yet: the id, once
    ]
    drawing = render_panel(PanelResult(panel, ["product", "id", "url", "views"], rows))
    assert _bar_labels(drawing) == [
        "Lumera Ring Luno / 550250",
        "Tom &amp; Jerry Pendant / 550\u2026",  # cut before escaping, with an ellipsis
        "550252",
    ]
    assert "https://" not in drawing
    # The whole label is in the bar's tooltip.
    assert "<title>Tom &amp; Jerry Pendant / 550251: 5</title>" in drawing
