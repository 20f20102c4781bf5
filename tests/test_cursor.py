"""The window plan and the version filter: the heart of 'never lose, never duplicate'."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alertpull.connector import Window
from alertpull.cursor import (
    Cursor,
    VersionFilter,
    WindowPolicy,
    merge_intervals,
    plan_windows,
    subtract_intervals,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def policy(**kw: object) -> WindowPolicy:
    base = dict(overlap=H, settle=timedelta(minutes=2), first_run_since=24 * H,
                retention=timedelta(days=90))
    base.update(kw)
    return WindowPolicy(**base)  # type: ignore[arg-type]


def t(hours_ago: float) -> datetime:
    return NOW - timedelta(hours=hours_ago)


def test_first_run_starts_at_first_run_since_and_ends_before_settle() -> None:
    plan = plan_windows(Cursor(), policy(), NOW)
    assert plan.ranges == [Window(t(24), NOW - timedelta(minutes=2))]


def test_next_run_rereads_the_overlap_before_the_watermark() -> None:
    plan = plan_windows(Cursor(watermark=t(5)), policy(), NOW)
    assert plan.ranges[0].start == t(6)


def test_since_older_than_retention_is_clamped_with_a_warning() -> None:
    plan = plan_windows(Cursor(), policy(since=NOW - timedelta(days=200)), NOW)
    assert plan.ranges[0].start == NOW - timedelta(days=90)
    assert "retention" in plan.warnings[0]


def test_backfill_pulls_only_uncovered_ranges_plus_the_incremental_range() -> None:
    cursor = Cursor(watermark=t(2), covered=[(t(10), t(2))])
    plan = plan_windows(cursor, policy(since=t(30)), NOW)
    assert [(w.start, w.end) for w in plan.ranges] == [
        (t(30), t(10)),
        (t(3), NOW - timedelta(minutes=2)),
    ]


def test_refetch_pulls_the_whole_range_and_forgets_seen_versions() -> None:
    cursor = Cursor(watermark=t(2), covered=[(t(10), t(2))], seen={"a": (0, "x")})
    plan = plan_windows(cursor, policy(since=t(30), refetch=True), NOW)
    assert [(w.start, w.end) for w in plan.ranges] == [(t(30), NOW - timedelta(minutes=2))]
    assert VersionFilter(cursor, H, plan.end, refetch=True).admit("a", t(3), "x")


def test_backfill_never_moves_the_watermark_backwards() -> None:
    cursor = Cursor(watermark=t(2), covered=[(t(10), t(2))])
    ranges = [Window(t(30), t(20))]
    after = VersionFilter(cursor, H, t(20), False).advanced(cursor, ranges, None)
    assert after.watermark == t(2)
    assert after.covered == [(t(30), t(20)), (t(10), t(2))]


def test_interval_algebra() -> None:
    assert merge_intervals([(t(5), t(3)), (t(4), t(1)), (t(9), t(8))]) == [(t(9), t(8)),
                                                                          (t(5), t(1))]
    assert subtract_intervals((t(10), t(0)), [(t(8), t(6)), (t(4), t(2))]) == [
        (t(10), t(8)), (t(6), t(4)), (t(2), t(0))]


def test_unchanged_repull_is_dropped_and_a_changed_version_is_admitted() -> None:
    versions = VersionFilter(Cursor(), H, NOW, refetch=False)
    assert versions.admit("a", t(1), "v1")
    assert not versions.admit("a", t(1), "v1")
    assert versions.admit("a", t(0.5), "v2")


def test_same_timestamp_siblings_are_all_admitted() -> None:
    versions = VersionFilter(Cursor(), H, NOW, refetch=False)
    assert all(versions.admit(f"id{i}", t(1), "same-content") for i in range(5))


def test_seen_versions_carry_over_to_the_next_run_only_within_the_overlap() -> None:
    first = VersionFilter(Cursor(), H, t(0), False)
    first.admit("old", t(3), "x")
    first.admit("recent", t(0.5), "y")
    cursor = first.advanced(Cursor(), [Window(t(24), t(0))], None)
    assert set(cursor.seen) == {"recent"}
    second = VersionFilter(Cursor.from_json(cursor.to_json()), H, NOW, False)
    assert not second.admit("recent", t(0.5), "y")


def test_an_incomplete_window_commits_only_the_mark_reached() -> None:
    versions = VersionFilter(Cursor(), H, t(0), False)
    versions.admit("a", t(10), "x")
    reached = t(10)
    cursor = versions.advanced(Cursor(), [Window(t(24), t(0))], reached)
    assert cursor.watermark == reached
    assert cursor.covered == [(t(24), reached)]
    assert "a" in cursor.seen


def test_cursor_json_roundtrip() -> None:
    cursor = Cursor(watermark=t(1), covered=[(t(5), t(1))], seen={"a": (123, "abc")})
    assert Cursor.from_json(cursor.to_json()) == cursor
