"""The six analytics reports: names users type, the SQL functions behind them (created by
migrations/V002__reports.sql, rebuilt on the rollups by V005), and reading one for a day or a
range of days."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection


@dataclass(frozen=True)
class Report:
    name: str
    function: str
    title: str


REPORTS = {
    r.name: r
    for r in (
        Report("top-products", "report_top_products", "Top 10 products by views"),
        Report("top-countries", "report_top_countries", "Top 10 countries by views"),
        Report("top-referrers", "report_top_referrers", "Top 5 referrer domains"),
        Report("store-performance", "report_store_performance", "Store performance by country"),
        Report("hourly-product-views", "report_hourly_product_views", "Hourly views by product"),
        Report("hourly-browser-os", "report_hourly_browser_os", "Hourly browser / OS breakdown"),
    )
}


class UnknownReport(KeyError):
    def __str__(self) -> str:
        return f"unknown report {self.args[0]!r}; choose from: {', '.join(REPORTS)}"


def read_report(
    conn: PgConnection,
    schema: str,
    name: str,
    day: dt.date | None = None,
    tz: str | None = None,
    to: dt.date | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of a report for ``day`` (default: today in ``tz``, default: the
    pipeline's report time zone), or for the calendar days from ``day`` to ``to``."""
    if name not in REPORTS:
        raise UnknownReport(name)
    query = sql.SQL("SELECT * FROM {}.{}(%s, %s, %s)").format(
        sql.Identifier(schema), sql.Identifier(REPORTS[name].function + "_range")
    )
    with conn, conn.cursor() as cur:
        cur.execute(query, (day, to or day, tz))
        # A SELECT always has a result description (None is for statements without rows).
        assert cur.description is not None
        columns = [d.name for d in cur.description]
        return columns, cur.fetchall()
