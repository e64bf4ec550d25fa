"""Retention's pure part: which tables are partitions, and which of them a pass drops."""

from __future__ import annotations

import datetime as dt

from pagestream_spark.sink.retention import (
    Partition,
    RetentionPolicy,
    expired,
    parse_partition,
)

TODAY = dt.date(2026, 12, 3)


def day_partition(parent: str, day: dt.date, *, pending: bool = False) -> Partition:
    part = parse_partition(f"{parent}_p{day:%Y%m%d}", parent, "day", "events", True, pending)
    assert part is not None
    return part


def test_names_parse_into_their_days_and_months() -> None:
    day = parse_partition("event_ids_p20261130", "event_ids", "day", "events", True, False)
    assert day is not None
    assert (day.first_day, day.last_day) == (dt.date(2026, 11, 30), dt.date(2026, 11, 30))
    month = parse_partition(
        "visitor_bitmaps_p202612", "visitor_bitmaps", "month", "rollups", False, False
    )
    assert month is not None
    assert (month.first_day, month.last_day) == (dt.date(2026, 12, 1), dt.date(2026, 12, 31))
    february = parse_partition(
        "visitor_bitmaps_p202802", "visitor_bitmaps", "month", "rollups", True, False
    )
    assert february is not None and february.last_day == dt.date(2028, 2, 29)


def test_tables_that_only_look_like_partitions_are_left_alone() -> None:
    for name, parent, period in (
        ("event_ids_p2026113", "event_ids", "day"),  # 7 digits
        ("event_ids_p20261332", "event_ids", "day"),  # no such date
        ("event_ids_p202611", "event_ids", "day"),  # a month stamp on a daily table
        ("visitor_bitmaps_p20261101", "visitor_bitmaps", "month"),
        ("fact_page_views_p20261101", "fact_page_views_extra", "day"),
        ("fact_page_views_backup", "fact_page_views", "day"),
    ):
        assert parse_partition(name, parent, period, "events", True, False) is None, name


def test_a_day_is_dropped_a_day_after_it_falls_out_of_the_retention() -> None:
    """Validation keeps days >= today - N; partitions go when they end before today - N - 1."""
    policy = RetentionPolicy(event_days=10, rollup_days=0)
    parts = [day_partition("fact_page_views", TODAY - dt.timedelta(days=n)) for n in range(14)]
    dropped = {TODAY - p.first_day for p in expired(parts, policy, TODAY)}
    assert dropped == {dt.timedelta(days=12), dt.timedelta(days=13)}
    assert policy.drop_before("events", TODAY) == TODAY - dt.timedelta(days=11)


def test_months_go_when_their_last_day_is_past_the_rollup_horizon() -> None:
    policy = RetentionPolicy(event_days=10, rollup_days=30)
    months = [
        parse_partition(
            f"visitor_bitmaps_p2026{m:02d}", "visitor_bitmaps", "month", "rollups", True, False
        )
        for m in (9, 10, 11, 12)
    ]
    # Horizon: 2026-12-03 - 31 days = 2026-11-02; October ends before it, November does not.
    assert [p.name for p in expired([m for m in months if m], policy, TODAY)] == [
        "visitor_bitmaps_p202609",
        "visitor_bitmaps_p202610",
    ]


def test_forever_drops_nothing_and_a_pending_detach_goes_first() -> None:
    old = [day_partition("event_ids", TODAY - dt.timedelta(days=n)) for n in (400, 300)]
    assert expired(old, RetentionPolicy(0, 0), TODAY) == []
    pending = day_partition("fact_page_views", TODAY - dt.timedelta(days=100), pending=True)
    order = expired([*old, pending], RetentionPolicy(30, 60), TODAY)
    assert [p.name for p in order] == [
        pending.name,
        "event_ids_p" + f"{TODAY - dt.timedelta(days=400):%Y%m%d}",
        "event_ids_p" + f"{TODAY - dt.timedelta(days=300):%Y%m%d}",
    ]
