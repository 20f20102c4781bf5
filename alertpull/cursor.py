"""The engine's common cursor form and the per-run window plan.

A scope's cursor holds:
- `watermark`: everything whose changed-at is before it has been pulled (modulo the
  vendor's lateness, which `overlap` absorbs by re-reading [watermark - overlap, ...));
- `covered`: the changed-at ranges already pulled, merged (as Airbyte's CDK keeps), so a
  backfill pulls only what is missing;
- `seen`: the last version emitted per alert whose changed-at lies within `overlap` of
  the watermark, so overlap re-reads and inclusive bounds never duplicate a line and
  same-timestamp siblings are never lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alertpull.connector import Window
from alertpull.timeutil import format_duration, format_time, parse_time, to_epoch_ms

Interval = tuple[datetime, datetime]


@dataclass
class Cursor:
    watermark: datetime | None = None
    covered: list[Interval] = field(default_factory=list)
    seen: dict[str, tuple[int, str]] = field(default_factory=dict)  # native_id -> (ms, sha)
    memory: dict[str, Any] | None = None  # the connector's own JSON (see connector.Memory)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Cursor:
        if not data:
            return cls()
        return cls(
            watermark=parse_time(data["watermark"]) if data.get("watermark") else None,
            covered=[(parse_time(a), parse_time(b)) for a, b in data.get("covered", [])],
            seen={key: (int(ms), str(sha)) for key, (ms, sha) in data.get("seen", {}).items()},
            memory=data.get("memory"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "watermark": format_time(self.watermark) if self.watermark else None,
            "covered": [[format_time(a), format_time(b)] for a, b in self.covered],
            "seen": {key: [ms, sha] for key, (ms, sha) in sorted(self.seen.items())},
            "memory": self.memory,
        }


def merge_intervals(intervals: list[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union; touching intervals are joined."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def subtract_intervals(span: Interval, covered: list[Interval]) -> list[Interval]:
    """The parts of `span` not inside any covered interval."""
    gaps: list[Interval] = []
    start, end = span
    for c_start, c_end in merge_intervals(covered):
        if c_end <= start or c_start >= end:
            continue
        if c_start > start:
            gaps.append((start, c_start))
        start = max(start, c_end)
    if start < end:
        gaps.append((start, end))
    return gaps


@dataclass(frozen=True)
class WindowPolicy:
    """The source's timing settings and this run's flags."""

    overlap: timedelta
    settle: timedelta
    first_run_since: timedelta
    retention: timedelta | None
    since: datetime | None = None
    until: datetime | None = None
    refetch: bool = False


@dataclass(frozen=True)
class Plan:
    ranges: list[Window]
    end: datetime
    warnings: list[str]


def plan_windows(cursor: Cursor, policy: WindowPolicy, now: datetime) -> Plan:
    """Fix this run's query ranges once, from the cursor, the flags and `now`."""
    warnings: list[str] = []
    end = policy.until or now - policy.settle
    floor = now - policy.retention if policy.retention else None

    def clamp(start: datetime, what: str) -> datetime:
        if floor and start < floor:
            warnings.append(
                f"{what} {format_time(start)} is older than this source's "
                f"{format_duration(policy.retention)} retention; "
                f"clamped to {format_time(floor)}"
            )
            return floor
        return start

    incremental_start = (
        cursor.watermark - policy.overlap if cursor.watermark else now - policy.first_run_since
    )
    if policy.since is None:
        spans = [(clamp(incremental_start, "start"), end)]
    else:
        since = clamp(policy.since, "--since")
        if policy.refetch:
            spans = [(since, end)]
        else:
            # A backfill adds only what was never pulled, plus the normal incremental
            # range when the window reaches past the watermark.
            spans = subtract_intervals((since, end), cursor.covered)
            if cursor.watermark and end > cursor.watermark:
                spans.append((max(since, incremental_start), end))
    ranges = [Window(a, b) for a, b in merge_intervals(spans)]
    return Plan(ranges=ranges, end=end, warnings=warnings)


class VersionFilter:
    """Admits each alert version once, across the overlap re-reads of successive runs.

    Keeps memory bounded by the overlap window, not by the run's volume: entries older
    than (mark - overlap) can never be re-read by a later run and are pruned as the
    mark advances.
    """

    _PRUNE_EVERY = 50_000

    def __init__(self, cursor: Cursor, overlap: timedelta, end: datetime, refetch: bool):
        self.seen: dict[str, tuple[int, str]] = {} if refetch else dict(cursor.seen)
        self._overlap_ms = int(overlap.total_seconds() * 1000)
        self._end_ms = to_epoch_ms(end)
        self.max_changed_ms: int | None = None
        self._since_prune = 0

    def admit(self, native_id: str, changed: datetime, sha: str) -> bool:
        changed_ms = to_epoch_ms(changed)
        # The mark reached counts duplicates too: they were read, just not rewritten.
        if self.max_changed_ms is None or changed_ms > self.max_changed_ms:
            self.max_changed_ms = changed_ms
        previous = self.seen.get(native_id)
        if previous is not None and previous[1] == sha:
            return False
        self.seen[native_id] = (changed_ms, sha)
        self._since_prune += 1
        if self._since_prune >= self._PRUNE_EVERY:
            self._prune(min(self._end_ms, self.max_changed_ms))
        return True

    def _prune(self, mark_ms: int) -> None:
        # The final mark is never below min(end, max changed-at seen), so nothing a
        # later run could re-read is dropped here.
        cutoff = mark_ms - self._overlap_ms
        self.seen = {k: v for k, v in self.seen.items() if v[0] >= cutoff}
        self._since_prune = 0

    def advanced(self, cursor: Cursor, ranges: list[Window], reached: datetime | None,
                 memory: dict[str, Any] | None = None) -> Cursor:
        """The cursor after this run: ranges covered (up to `reached` if cut short)."""
        spans = [(w.start, min(w.end, reached) if reached else w.end) for w in ranges]
        covered = merge_intervals([*cursor.covered, *spans])
        ends = [b for a, b in spans if a < b]
        watermark = cursor.watermark
        if ends and (watermark is None or max(ends) > watermark):
            watermark = max(ends)
        if watermark is not None:
            self._prune(to_epoch_ms(watermark))
        return Cursor(watermark=watermark, covered=covered, seen=self.seen,
                      memory=memory if memory is not None else cursor.memory)
