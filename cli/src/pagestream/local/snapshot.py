"""A static HTML snapshot of the Page analytics dashboard, for people who would rather look than
read and have no Grafana at hand.

The panels and their SQL are the dashboard's own (``charts/pagestream/dashboards/page-analytics.json``):
each panel's query runs against PostgreSQL with Grafana's macros expanded for the chosen time
range, so the snapshot cannot drift from the dashboard. Charts are inline SVG drawn here in
Python: the file is one self-contained page that opens offline, with no JavaScript library to
vendor or keep up to date. A few lines of script only record, once the browser has laid the page
out, how many marks each chart drew (``data-drawn-marks``), which the tests read.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pagestream.stack.paths import REPO_ROOT

DASHBOARD = REPO_ROOT / "charts" / "pagestream" / "dashboards" / "page-analytics.json"
PALETTE = ("#3274d9", "#56a64b", "#e0b400", "#e02f44", "#8f3bb8", "#ff780a", "#1f9e89", "#96d98d")
WIDTH, HEIGHT = 560, 240


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # the Grafana panel type: timeseries, stat, table, piechart
    sql: str


@dataclass(frozen=True)
class PanelResult:
    panel: Panel
    columns: list[str]
    rows: list[tuple[Any, ...]]


def dashboard_panels(path: Path = DASHBOARD) -> tuple[str, list[tuple[str, list[Panel]]]]:
    """The dashboard's title and its panels grouped under their rows, in order."""
    board = json.loads(path.read_text())
    sections: list[tuple[str, list[Panel]]] = []
    for item in board["panels"]:
        if item["type"] == "row":
            sections.append((item["title"], []))
            continue
        if not sections:
            sections.append(("", []))
        for target in item.get("targets", []):
            if target.get("rawSql"):
                sections[-1][1].append(Panel(item["title"], item["type"], target["rawSql"]))
    return board["title"], sections


_TIME_GROUP = re.compile(r"\$__timeGroupAlias\(([^,]+),\s*'(\d+)([smhd])'\)")
_TIME_FILTER = re.compile(r"\$__timeFilter\(([^)]+)\)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# How every panel names its pipeline: the schema as a string literal, for
# pagestream_dashboards.run to check and make the search path (Grafana cannot quote an
# identifier safely, only a string).
SCHEMA_VARIABLE = "${schema:sqlstring}"


def sqlstring(value: str) -> str:
    """Grafana's ``sqlstring`` variable format: the value in single quotes, each quote doubled
    (safe under standard_conforming_strings, PostgreSQL's default)."""
    return "'" + value.replace("'", "''") + "'"


def expand_macros(sql_text: str, schema: str) -> str:
    """Grafana's PostgreSQL macros, as its data source expands them, with the time range left as
    query parameters (%(time_from)s, %(time_to)s)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ValueError(f"not a schema name: {schema!r}")

    def group(match: re.Match[str]) -> str:
        column, n, unit = match.group(1).strip(), int(match.group(2)), match.group(3)
        seconds = n * _UNIT_SECONDS[unit]
        return f'to_timestamp(floor(extract(epoch from {column})/{seconds})*{seconds}) AS "time"'

    out = _TIME_GROUP.sub(group, sql_text)
    out = _TIME_FILTER.sub(
        lambda m: f"{m.group(1).strip()} BETWEEN %(time_from)s AND %(time_to)s", out
    )
    out = out.replace("$__timeFrom()", "%(time_from)s").replace("$__timeTo()", "%(time_to)s")
    # psycopg2 reads % as a parameter marker; the panels' own text has none.
    return out.replace(SCHEMA_VARIABLE, sqlstring(schema).replace("%", "%%"))


def run_panels(
    conn: Any,
    schema: str,
    sections: list[tuple[str, list[Panel]]],
    start: dt.datetime,
    end: dt.datetime,
) -> list[tuple[str, list[PanelResult]]]:
    results = []
    for title, panels in sections:
        found = []
        for panel in panels:
            with conn.cursor() as cur:
                cur.execute(expand_macros(panel.sql, schema), {"time_from": start, "time_to": end})
                found.append(
                    PanelResult(panel, [d.name for d in cur.description], list(cur.fetchall()))
                )
        results.append((title, found))
    return results


# --- drawing ---------------------------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _svg(body: str, title: str, height: int = HEIGHT) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{_esc(title)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def _number(value: Any) -> str:
    if isinstance(value, int | float) or hasattr(value, "as_integer_ratio"):
        number = float(value)
        return f"{number:,.0f}" if number.is_integer() else f"{number:,.2f}"
    return _esc(value)


def _segments(
    values: list[tuple[dt.datetime, float]],
) -> list[list[tuple[dt.datetime, float]]]:
    """Split a sorted series where buckets are missing (no rows means no views), so a line never
    bridges an empty hour as Grafana would not."""
    if len(values) < 2:
        return [values]
    step = min(b[0] - a[0] for a, b in itertools.pairwise(values))
    segments = [[values[0]]]
    for previous, point in itertools.pairwise(values):
        if point[0] - previous[0] > step * 2:
            segments.append([])
        segments[-1].append(point)
    return segments


def line_chart(title: str, series: dict[str, list[tuple[dt.datetime, float]]]) -> str:
    """Lines over time; x from the first to the last point of all series."""
    points = [p for values in series.values() for p in values]
    if not points:
        return ""
    left, right, top, bottom = 56, WIDTH - 12, 12, HEIGHT - 28
    t0 = min(t for t, _ in points).timestamp()
    t1 = max(t for t, _ in points).timestamp()
    peak = max(v for _, v in points) or 1.0
    span = (t1 - t0) or 1.0

    def x(t: dt.datetime) -> float:
        return left + (t.timestamp() - t0) / span * (right - left)

    def y(v: float) -> float:
        return bottom - v / peak * (bottom - top)

    parts = [
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#999"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" class="tick">{_number(peak)}</text>',
        f'<text x="{left - 6}" y="{bottom}" text-anchor="end" class="tick">0</text>',
        f'<text x="{left}" y="{HEIGHT - 8}" class="tick">{min(t for t, _ in points):%Y-%m-%d %H:%M}</text>',
        f'<text x="{right}" y="{HEIGHT - 8}" text-anchor="end" class="tick">'
        f"{max(t for t, _ in points):%H:%M} UTC</text>",
    ]
    for i, (name, values) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        for segment in _segments(sorted(values)):
            if len(segment) == 1:
                ((t, v),) = segment
                parts.append(
                    f'<circle class="mark" cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                    f"<title>{_esc(name)}</title></circle>"
                )
                continue
            coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in segment)
            parts.append(
                f'<polyline class="mark" fill="none" stroke="{colour}" stroke-width="2" '
                f'points="{coords}"><title>{_esc(name)}</title></polyline>'
            )
    legend = "".join(
        f'<span class="key"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{_esc(n)}</span>'
        for i, n in enumerate(series)
    )
    return _svg("".join(parts), title) + f'<div class="legend">{legend}</div>'


def _cut(text: str, length: int) -> str:
    """``text`` within ``length`` characters, an ellipsis saying when it was cut (cut before
    escaping: an entity cut in half would show)."""
    return text if len(text) <= length else text[: length - 1].rstrip() + "\u2026"


def bar_chart(title: str, bars: Sequence[tuple[str, float]]) -> str:
    """Horizontal bars, largest first, labelled with their values."""
    if not bars:
        return ""
    row, label_width = 22, 170
    height = row * len(bars) + 8
    peak = max(v for _, v in bars) or 1.0
    parts = []
    for i, (label, value) in enumerate(bars):
        y = 4 + i * row
        width = max(1.0, value / peak * (WIDTH - label_width - 70))
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end">{_esc(_cut(label, 26))}</text>'
            f'<rect class="mark" x="{label_width}" y="{y + 3}" width="{width:.1f}" height="{row - 6}" '
            f'fill="{PALETTE[0]}"><title>{_esc(label)}: {_number(value)}</title></rect>'
            f'<text x="{label_width + width + 6:.1f}" y="{y + 15}" class="tick">{_number(value)}</text>'
        )
    return _svg("".join(parts), title, height)


def pie_chart(title: str, slices: Sequence[tuple[str, float]]) -> str:
    total = sum(v for _, v in slices)
    if total <= 0:
        return ""
    cx, cy, r = 120, HEIGHT / 2, 100
    parts, angle = [], -math.pi / 2
    for i, (label, value) in enumerate(slices):
        colour = PALETTE[i % len(PALETTE)]
        sweep = value / total * 2 * math.pi
        if sweep >= 2 * math.pi - 1e-9:
            parts.append(f'<circle class="mark" cx="{cx}" cy="{cy}" r="{r}" fill="{colour}"/>')
        else:
            x0, y0 = cx + r * math.cos(angle), cy + r * math.sin(angle)
            x1, y1 = cx + r * math.cos(angle + sweep), cy + r * math.sin(angle + sweep)
            large = 1 if sweep > math.pi else 0
            parts.append(
                f'<path class="mark" d="M{cx},{cy} L{x0:.2f},{y0:.2f} A{r},{r} 0 {large} 1 '
                f'{x1:.2f},{y1:.2f} Z" fill="{colour}"><title>{_esc(label)}: {_number(value)}'
                "</title></path>"
            )
        angle += sweep
        parts.append(
            f'<rect x="250" y="{20 + i * 22}" width="12" height="12" fill="{colour}"/>'
            f'<text x="268" y="{31 + i * 22}">{_esc(label)} — {_number(value)} '
            f"({value / total:.0%})</text>"
        )
    return _svg("".join(parts), title)


def table(result: PanelResult) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in result.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_number(v)}</td>" for v in row) + "</tr>" for row in result.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# Columns a bar's label leaves out: a product page's URL is for the table, not the bar.
_NOT_IN_BAR_LABELS = frozenset({"url"})


def _bar_label(columns: list[str], row: tuple[Any, ...]) -> str:
    """A ranking row's bar label: its values but the last (the count) and any URL, each once
    (a product without a label shows its id once, not twice), joined by " / "."""
    values = (
        str(v)
        for column, v in zip(columns[:-1], row[:-1], strict=True)
        if column not in _NOT_IN_BAR_LABELS and v not in (None, "")
    )
    return " / ".join(dict.fromkeys(values))


def render_panel(result: PanelResult) -> str:
    title, kind, rows, columns = result.panel.title, result.panel.kind, result.rows, result.columns
    if not rows or all(v is None for row in rows for v in row):
        drawing = '<p class="empty">no data in this time range</p>'
    elif kind == "stat":
        drawing = f'<p class="stat-value">{_number(rows[0][0])}</p>'
    elif kind == "timeseries" and len(columns) == 2:
        drawing = line_chart(title, {columns[1]: [(t, float(v)) for t, v in rows]})
    elif kind == "timeseries":  # (time, metric, value): one line per metric, the biggest eight
        series: dict[str, list[tuple[dt.datetime, float]]] = {}
        for t, metric, v in rows:
            series.setdefault(str(metric), []).append((t, float(v)))
        biggest = sorted(series, key=lambda m: -sum(v for _, v in series[m]))[:8]
        drawing = line_chart(title, {m: series[m] for m in biggest})
    elif kind == "piechart":
        drawing = pie_chart(title, [(str(r[0]), float(r[-1])) for r in rows])
    elif columns[-1] == "views":  # a ranking: bars, with the full table underneath
        labels = [_bar_label(columns, r) for r in rows]
        drawing = bar_chart(
            title, [(label, float(r[-1])) for label, r in zip(labels, rows, strict=True)]
        )
    else:
        drawing = table(result)
    return f'<figure class="panel {kind}"><figcaption>{_esc(title)}</figcaption>{drawing}</figure>'


STYLE = """
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { margin: 0 0 4px; } .meta { color: #666; margin-bottom: 16px; }
section { display: flex; flex-wrap: wrap; gap: 16px; margin-bottom: 24px; }
h2 { width: 100%; margin: 8px 0 0; font-size: 18px; border-bottom: 1px solid #ddd; }
figure { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 12px; margin: 0;
         min-width: 200px; }
figcaption { font-weight: 600; margin-bottom: 8px; }
.stat-value { font-size: 40px; font-weight: 700; margin: 16px 8px; color: #3274d9; }
.tick { fill: #666; font-size: 11px; } svg text { font-size: 12px; }
.legend { display: flex; flex-wrap: wrap; gap: 8px; font-size: 12px; max-width: 560px; }
.key i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
table { border-collapse: collapse; font-size: 13px; } td, th { padding: 3px 8px; text-align: left;
         border-bottom: 1px solid #eee; } .empty { color: #999; }
"""

# Runs after layout: a mark the browser drew has a non-empty bounding box.
COUNT_DRAWN_MARKS = """
for (const svg of document.querySelectorAll('svg.chart')) {
  const drawn = [...svg.querySelectorAll('.mark')].filter(m => {
    const box = m.getBBox(); return box.width > 0 || box.height > 0; });
  svg.closest('figure').setAttribute('data-drawn-marks', String(drawn.length));
}
document.body.setAttribute('data-charts-ready', 'true');
"""


def render_html(
    title: str,
    results: list[tuple[str, list[PanelResult]]],
    *,
    pipeline: str,
    start: dt.datetime,
    end: dt.datetime,
) -> str:
    sections = "".join(
        f"<section><h2>{_esc(name)}</h2>{''.join(render_panel(r) for r in panels)}</section>"
        for name, panels in results
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)} — {_esc(pipeline)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{_esc(title)}</h1><p class="meta">pipeline {_esc(pipeline)} · '
        f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC · snapshot taken "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC from PostgreSQL</p>{sections}"
        f"<script>{COUNT_DRAWN_MARKS}</script></body></html>"
    )


def write_snapshot(conn: Any, schema: str, pipeline: str, output: Path, hours: float) -> Path:
    end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    start = end - dt.timedelta(hours=hours)
    title, sections = dashboard_panels()
    results = run_panels(conn, schema, sections, start, end)
    output.write_text(render_html(title, results, pipeline=pipeline, start=start, end=end))
    return output
