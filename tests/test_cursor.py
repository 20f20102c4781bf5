"""The window plan and the version filter: the heart of 'never lose, never duplicate'."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from alertpull.connector import Window
from alertpull.cursor import (
    Cursor,
    VersionFilter,
    WindowPolicy,
    advance,
    merge_intervals,
    plan_windows,
    set_watermark,
    subtract_intervals,
)
from alertpull.state.base import render_document
from alertpull.timeutil import to_epoch_ms

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


def versions(cursor: Cursor, end: datetime = NOW, *, refetch_from: datetime | None = None,
             ordered: bool = True) -> VersionFilter:
    return VersionFilter(cursor, H, end, refetch_from=refetch_from, ordered=ordered)


def test_refetch_rewrites_remembered_versions_and_still_remembers_them() -> None:
    cursor = Cursor(watermark=t(2), covered=[(t(10), t(2))], seen={"a": (to_ms(t(2.5)), "x")})
    plan = plan_windows(cursor, policy(since=t(30), refetch=True), NOW)
    assert [(w.start, w.end) for w in plan.ranges] == [(t(30), NOW - timedelta(minutes=2))]
    refetch = versions(cursor, refetch_from=t(30))
    assert refetch.admit("a", to_ms(t(2.5)), "x")
    assert not refetch.admit("a", to_ms(t(2.5)), "x")  # but never twice within the run


def test_a_refetch_of_an_old_slice_keeps_the_overlap_memory() -> None:
    cursor = Cursor(watermark=t(2), covered=[(t(50), t(2))], seen={"a": (to_ms(t(2.5)), "x")})
    refetch = versions(cursor, t(20), refetch_from=t(40))
    after = advance(cursor, [(t(40), t(20))], refetch, None)
    assert after.seen == {"a": (to_ms(t(2.5)), "x")}


def test_until_in_the_future_is_capped_at_now_minus_settle() -> None:
    plan = plan_windows(Cursor(), policy(until=NOW + timedelta(days=2)), NOW)
    assert plan.end == NOW - timedelta(minutes=2)
    assert "--until" in plan.warnings[0]


def test_a_recent_since_still_pulls_the_whole_incremental_range() -> None:
    cursor = Cursor(watermark=t(48), covered=[(t(72), t(48))])
    plan = plan_windows(cursor, policy(since=t(2)), NOW)
    assert plan.ranges[0].start == t(49)  # the outage is not skipped


def test_backfill_never_moves_the_watermark_backwards() -> None:
    cursor = Cursor(watermark=t(2), covered=[(t(10), t(2))])
    after = advance(cursor, [(t(30), t(20))], versions(cursor, t(20)), None)
    assert after.watermark == t(2)
    assert after.covered == [(t(30), t(20)), (t(10), t(2))]


def test_interval_algebra() -> None:
    assert merge_intervals([(t(5), t(3)), (t(4), t(1)), (t(9), t(8))]) == [(t(9), t(8)),
                                                                          (t(5), t(1))]
    assert subtract_intervals((t(10), t(0)), [(t(8), t(6)), (t(4), t(2))]) == [
        (t(10), t(8)), (t(6), t(4)), (t(2), t(0))]


def test_unchanged_repull_is_dropped_and_a_changed_version_is_admitted() -> None:
    filter_ = versions(Cursor())
    assert filter_.admit("a", to_ms(t(1)), "v1")
    assert not filter_.admit("a", to_ms(t(1)), "v1")
    assert filter_.admit("a", to_ms(t(0.5)), "v2")


def test_same_timestamp_siblings_are_all_admitted() -> None:
    filter_ = versions(Cursor())
    assert all(filter_.admit(f"id{i}", to_ms(t(1)), "same-content") for i in range(5))


def test_seen_versions_carry_over_to_the_next_run_only_within_the_overlap() -> None:
    first = versions(Cursor(), t(0))
    first.admit("old", to_ms(t(3)), "x")
    first.admit("recent", to_ms(t(0.5)), "y")
    cursor = advance(Cursor(), [(t(24), t(0))], first, None)
    assert set(cursor.seen) == {"recent"}
    second = versions(Cursor.from_json(cursor.to_json()))
    assert not second.admit("recent", to_ms(t(0.5)), "y")


def test_a_long_unordered_run_never_forgets_the_previous_runs_versions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VersionFilter, "_PRUNE_FLOOR", 10)
    cursor = Cursor(watermark=t(30), seen={"overlap-alert": (to_ms(t(30.5)), "x")})
    filter_ = versions(cursor, t(0), ordered=False)
    for i in range(100):  # a newest-first backlog: the overlap alerts come back last
        filter_.admit(f"new{i}", to_ms(t(i / 10)), f"v{i}")
    assert not filter_.admit("overlap-alert", to_ms(t(30.5)), "x")


def test_an_ordered_run_prunes_memory_as_it_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VersionFilter, "_PRUNE_FLOOR", 10)
    filter_ = versions(Cursor(), t(0))
    for i in range(1000):
        filter_.admit(f"a{i}", to_ms(t(100 - i / 10)), "v")
    assert len(filter_._fresh) < 50


def to_ms(moment: datetime) -> int:
    return to_epoch_ms(moment)


def test_cursor_json_roundtrip() -> None:
    cursor = Cursor(watermark=t(1), covered=[(t(5), t(1))], seen={"a": (123, "abc")})
    assert Cursor.from_json(cursor.to_json()) == cursor


@pytest.mark.parametrize("memory", [{"count": 7}, {"beyond 64 bits": 2**70}])
def test_a_stored_document_reads_back_as_it_was(memory: dict[str, int]) -> None:
    cursor = Cursor(watermark=t(1), seen={"b": (456, "def"), "a": (123, "abc")}, memory=memory)
    doc = {"schema_version": 1, "scopes": {"s": cursor.to_json()}}

    stored = render_document(doc)

    assert Cursor.from_json(json.loads(stored)["scopes"]["s"]) == cursor
    assert stored.index(b'"a"') < stored.index(b'"b"')  # keys sorted, so diffs stay small


def test_a_recent_refetch_after_days_off_also_pulls_from_the_watermark() -> None:
    cursor = Cursor(watermark=t(72), covered=[(t(96), t(72))], seen_from=t(73),
                    seen={"old": (to_ms(t(72.5)), "x")})
    plan = plan_windows(cursor, policy(since=t(2), refetch=True), NOW)
    assert [(w.start, w.end) for w in plan.ranges] == [(t(73), NOW - timedelta(minutes=2))]
    refetch = versions(cursor, refetch_from=t(2))
    assert not refetch.admit("old", to_ms(t(72.5)), "x")  # before --since: not repeated
    assert refetch.admit("new", to_ms(t(1)), "y")


def test_a_larger_overlap_rereads_only_what_the_memory_covers() -> None:
    cursor = Cursor(watermark=t(5), covered=[(t(30), t(5))], seen_from=t(6))
    plan = plan_windows(cursor, policy(overlap=3 * H), NOW)
    assert plan.ranges[0].start == t(6)
    grown = VersionFilter(cursor, 3 * H, NOW, refetch_from=None, ordered=True)
    after = advance(cursor, [(t(6), NOW)], grown, None)
    assert after.seen_from == NOW - 3 * H  # the next run may re-read 3 h


def test_cursor_set_moves_back_and_never_forward() -> None:
    cursor = Cursor(watermark=t(2), covered=[(t(10), t(2))], seen_from=t(3))
    moved = set_watermark(cursor, t(6))
    assert moved.watermark == t(6) and moved.covered == [(t(10), t(6))]
    plan = plan_windows(moved, policy(), NOW)
    assert plan.ranges[0].start == t(6)  # re-read from the mark, not only the overlap
    with pytest.raises(ValueError, match="never pulled"):
        set_watermark(cursor, t(1))


def test_an_incremental_start_beyond_retention_is_a_lost_span() -> None:
    cursor = Cursor(watermark=NOW - timedelta(days=100))
    plan = plan_windows(cursor, policy(), NOW)
    floor = NOW - timedelta(days=90)
    assert plan.lost == (NOW - timedelta(days=100) - H, floor)
    assert plan.ranges[0].start == floor
    assert plan_windows(Cursor(), policy(since=NOW - timedelta(days=200)), NOW).lost is None
