"""The engine's common cursor form and the per-run window plan.

A scope's cursor holds:
- `watermark`: everything whose changed-at is before it has been pulled (modulo the
  vendor's lateness, which `overlap` absorbs by re-reading [watermark - overlap, ...));
- `covered`: the changed-at ranges already pulled, merged (as Airbyte's CDK keeps), so a
  backfill pulls only what is missing;
- `seen`: the last version emitted per alert whose changed-at lies within `overlap` of
  the watermark, so overlap re-reads and inclusive bounds never duplicate a line and
  same-timestamp siblings are never lost;
- `seen_from`: from when on `seen` holds every version written. A re-read of pulled time
  starts no earlier, so a larger `overlap` than the last run's never writes again what
  `seen` has forgotten (it takes effect as the memory grows, run by run);
- `position`: where a position-cursor stream has read up to (see connector.Position).

The watermark never passes time that was not read: a refetch or a recent `--since`
still pulls the incremental range, and `set_watermark` refuses to move forward.
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
    seen_from: datetime | None = None  # None: a cursor from before it was kept
    position: Any = None  # a position-cursor stream's vendor position (connector.Position)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Cursor:
        if not data:
            return cls()
        return cls(
            watermark=parse_time(data["watermark"]) if data.get("watermark") else None,
            covered=[(parse_time(a), parse_time(b)) for a, b in data.get("covered", [])],
            seen={key: (int(ms), str(sha)) for key, (ms, sha) in data.get("seen", {}).items()},
            memory=data.get("memory"),
            seen_from=parse_time(data["seen_from"]) if data.get("seen_from") else None,
            position=data.get("position"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "watermark": format_time(self.watermark) if self.watermark else None,
            "covered": [[format_time(a), format_time(b)] for a, b in self.covered],
            "seen": self.seen,  # (ms, sha) tuples: JSON arrays, in key order when stored
            "memory": self.memory,
            "seen_from": format_time(self.seen_from) if self.seen_from else None,
            "position": self.position,
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
    # Changed-at span an incremental run should have read but the vendor no longer keeps
    # (the job was off longer than the retention): those alerts may be lost.
    lost: Interval | None = None


def plan_windows(cursor: Cursor, policy: WindowPolicy, now: datetime) -> Plan:
    """Fix this run's query ranges once, from the cursor, the flags and `now`."""
    warnings: list[str] = []
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # state keeps milliseconds
    latest = now - policy.settle
    end = policy.until or latest
    if end > latest:
        # Alerts changing between `latest` and a future --until are not all visible yet;
        # a watermark past them would skip them for good.
        warnings.append(f"--until is later than now minus settle; pulling up to "
                        f"{format_time(latest)}")
        end = latest
    floor = now - policy.retention if policy.retention else None

    def clamp(start: datetime, what: str) -> datetime:
        if floor and policy.retention and start < floor:
            warnings.append(
                f"{what} {format_time(start)} is older than this source's "
                f"{format_duration(policy.retention)} retention; clamped to {format_time(floor)}"
            )
            return floor
        return start

    lost: Interval | None = None
    if cursor.watermark is None:
        incremental = [(clamp(now - policy.first_run_since, "start"), end)]
    else:
        start = cursor.watermark - policy.overlap
        if floor and start < floor:
            lost = (start, floor)
            start = floor
        incremental = _incremental(cursor, start, end)
    if policy.since is None:
        spans = incremental
    else:
        since = clamp(policy.since, "--since")
        # --refetch pulls its whole range again; a backfill adds only what was never
        # pulled. Either also pulls the normal incremental range whenever the window
        # reaches past the watermark, so the watermark never passes unread time.
        spans = [(since, end)] if policy.refetch else subtract_intervals((since, end),
                                                                         cursor.covered)
        if cursor.watermark is None or end > cursor.watermark:
            spans += incremental
    ranges = [Window(a, b) for a, b in merge_intervals(spans)]
    return Plan(ranges=ranges, end=end, warnings=warnings, lost=lost)


def _incremental(cursor: Cursor, start: datetime, end: datetime) -> list[Interval]:
    """[start, end), less the pulled time before `seen_from` that the memory forgot."""
    remembered = max(start, cursor.seen_from) if cursor.seen_from else start
    return [*subtract_intervals((start, remembered), cursor.covered), (remembered, end)]


def set_watermark(cursor: Cursor, mark: datetime) -> Cursor:
    """`cursor set`: move the watermark back (the next run re-reads from `mark`, and may
    write again the versions it no longer remembers), never forward past unread time."""
    if cursor.watermark is not None and mark > cursor.watermark:
        raise ValueError(
            f"{format_time(mark)} is later than the watermark {format_time(cursor.watermark)}:"
            " alerts changed in between were never pulled and would be skipped"
        )
    # Ranges after the new mark count as not pulled, so the next run reads them again.
    covered = merge_intervals([(a, min(b, mark)) for a, b in cursor.covered])
    return Cursor(watermark=mark, covered=covered, seen=cursor.seen, memory=cursor.memory,
                  seen_from=cursor.seen_from, position=cursor.position)


class VersionFilter:
    """Admits each alert version once, across the overlap re-reads of successive runs.

    `prior` holds the versions the last run left for the overlap window and is only read
    during a run; `fresh` collects this run's versions. Memory stays bounded by the
    overlap window, not by the run's volume: fresh entries that no later run can re-read
    are pruned as the run goes (the final watermark is never below min(end, max
    changed-at read) for an ordered stream, nor below `end` for any other).
    """

    _PRUNE_FLOOR = 5_000  # fresh entries kept before the first prune

    def __init__(self, cursor: Cursor, overlap: timedelta, end: datetime, *,
                 refetch_from: datetime | None, ordered: bool) -> None:
        self._prior = cursor.seen
        self._fresh: dict[str, tuple[int, str]] = {}
        # --refetch writes again even what the cursor remembers, but only inside its range:
        # the incremental range it also pulls stays deduplicated.
        self._refetch_ms = to_epoch_ms(refetch_from) if refetch_from else None
        self._prior_from = cursor.seen_from or (
            cursor.watermark - overlap if cursor.watermark else None)
        self._overlap = overlap
        self._ordered = ordered
        self._overlap_ms = int(overlap.total_seconds() * 1000)
        self._end_ms = to_epoch_ms(end)
        self._max_changed_ms: int | None = None
        self._prune_at = self._PRUNE_FLOOR

    def admit(self, key: str, changed_ms: int, sha: str) -> bool:
        """Whether this version (changed-at in epoch ms, content hash) is to be written."""
        if self._max_changed_ms is None or changed_ms > self._max_changed_ms:
            self._max_changed_ms = changed_ms
        latest = self._fresh.get(key)
        if latest is None and (self._refetch_ms is None or changed_ms < self._refetch_ms):
            latest = self._prior.get(key)
        if latest is not None and latest[1] == sha:
            return False
        self._fresh[key] = (changed_ms, sha)
        if len(self._fresh) >= self._prune_at:
            mark = min(self._end_ms, self._max_changed_ms) if self._ordered else self._end_ms
            self._fresh = self._recent(self._fresh, mark)
            # A quarter again what survived: pruning stays linear in the run (a prune scans
            # at most five entries per one added since the last) however many alerts the
            # overlap window holds, and memory peaks at 1.25x what that window needs.
            survived = len(self._fresh)
            self._prune_at = survived + max(self._PRUNE_FLOOR, survived // 4)
        return True

    def known(self, key: str) -> bool:
        """Whether a version of this alert was written before: in this run, or in the
        overlap window the cursor remembers (older writes are beyond its memory)."""
        return key in self._fresh or key in self._prior

    def _recent(self, versions: dict[str, tuple[int, str]],
                mark_ms: int) -> dict[str, tuple[int, str]]:
        cutoff = mark_ms - self._overlap_ms
        return {k: v for k, v in versions.items() if v[0] >= cutoff}

    def seen_at(self, watermark: datetime | None) -> dict[str, tuple[int, str]]:
        """The versions a later run may re-read: those within the overlap of the mark."""
        merged = {**self._prior, **self._fresh}
        return self._recent(merged, to_epoch_ms(watermark)) if watermark else merged

    def complete_from(self, watermark: datetime | None) -> datetime | None:
        """From when on `seen_at(watermark)` holds every version written."""
        if watermark is None:
            return None
        mark = watermark - self._overlap
        return max(mark, self._prior_from) if self._prior_from else mark


def advance(cursor: Cursor, pulled: list[Interval], versions: VersionFilter,
            memory: dict[str, Any] | None, position: Any = None) -> Cursor:
    """The cursor after a successful run that pulled the given ranges completely and read
    a position stream up to `position` (None: the cursor's own is kept)."""
    covered = merge_intervals([*cursor.covered, *pulled])
    ends = [b for a, b in pulled if a < b]
    watermark = cursor.watermark
    if ends and (watermark is None or max(ends) > watermark):
        watermark = max(ends)
    return Cursor(watermark=watermark, covered=covered, seen=versions.seen_at(watermark),
                  memory=memory if memory is not None else cursor.memory,
                  seen_from=versions.complete_from(watermark),
                  position=position if position is not None else cursor.position)
