"""Pull one scope: its planned windows, through normalize and dedup, into a writer.

This is the hot path of a run: every alert passes through `_one`. It never touches
state; it returns what it read (the ranges now covered, the counts) and the runner
decides what to commit.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from alertpull.connector import Connector, Memory, Position, Scope, Window
from alertpull.cursor import Cursor, Interval, Plan, VersionFilter, WindowPolicy, advance
from alertpull.degraded import degraded
from alertpull.errors import SourceError, WindowIncomplete
from alertpull.failpoints import failpoint
from alertpull.log import Progress
from alertpull.notify.ledger import FirstVersions
from alertpull.ocsf import to_ocsf
from alertpull.readahead import ReadAhead
from alertpull.record import (
    Normalized,
    build_record,
    canonical_and_sha256,
    json_line,
    raw_sha256,
    record_fields,
    record_line,
)
from alertpull.sinks.base import Writer
from alertpull.timeutil import format_time, from_epoch_ms, parse_time, to_epoch_ms, utcnow


@dataclass
class Counts:
    fetched: int = 0
    written: int = 0
    duplicates: int = 0
    degraded: int = 0  # written as degraded records: their mapping failed
    out_of_window: int = 0
    pages: int = 0
    unparsed: int = 0  # input the connector read but could not make an alert of (Memory)

    def add(self, other: Counts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


class ScopePull:
    def __init__(self, source: str, source_type: str, connector: Connector, scope: Scope,
                 cursor: Cursor, plan: Plan, policy: WindowPolicy, writer: Writer | None,
                 progress: Progress, log: logging.LoggerAdapter[Any], *,
                 output_format: str = "native") -> None:
        self.source = source
        self.source_type = source_type
        self.connector = connector
        self.scope = scope
        self.cursor = cursor
        self.plan = plan
        self.writer = writer
        self.progress = progress
        self.log = log
        self.output_format = output_format  # native | ocsf
        self.counts = Counts()
        # The scope's stream says, where it declares it; else the connector as a whole.
        self.ordered = connector.ordered if scope.ordered is None else scope.ordered
        self.firsts = FirstVersions()  # which lines are an alert's first version (notify)
        self.versions = VersionFilter(cursor, policy.overlap, plan.end,
                                      refetch_from=policy.since if policy.refetch else None,
                                      ordered=self.ordered)
        self._window_max_ms: int | None = None

    def run(self) -> Cursor:
        """Pull every planned window; return the cursor to commit if all goes well."""
        memory = Memory(previous=self.cursor.memory, position=Position(self.cursor.position))
        pulled: list[Interval] = []
        for window in self._windows():
            self._window_max_ms = None
            try:
                # The next page is fetched while this one is written (see readahead).
                with ReadAhead(self.connector.fetch(self.scope, window, memory)) as pages:
                    for page in pages:
                        self.counts.pages += 1
                        pulled_at = format_time(utcnow())  # one stamp a page: it came at once
                        for raw in page:
                            self._one(raw, window, pulled_at)
                        self.progress.add(self.source, len(page))
                        failpoint("after_page")
            except WindowIncomplete as exc:
                if self.scope.position:
                    pulled.extend(self._position_cut_short(memory.position, exc))
                else:
                    pulled.extend(self._cut_short(window, exc, progressed=bool(pulled)))
                break
            pulled.append((window.start, window.end))
        self.counts.unparsed += memory.unparsed
        self.counts.fetched += memory.unchanged
        self.counts.duplicates += memory.unchanged
        return advance(self.cursor, pulled, self.versions, memory.current,
                       memory.position.reached)

    def _windows(self) -> list[Window]:
        """The planned ranges; one window spanning them for a position stream, which reads
        once per run from its position, whatever the time."""
        ranges = self.plan.ranges
        if self.scope.position and ranges:
            return [Window(ranges[0].start, ranges[-1].end)]
        return ranges

    def _position_cut_short(self, position: Position, exc: WindowIncomplete) -> list[Interval]:
        """A position stream that stopped early commits the position it reached (the
        connector advanced it past what it yielded) and no time: its watermark stays."""
        if not position.advanced:
            raise SourceError(f"pull stopped early and made no progress: {exc}") from None
        self.log.warning("%s: pull stopped early (%s); the next run resumes from the position "
                         "reached", self.scope.key, exc)
        return []

    def _cut_short(self, window: Window, exc: WindowIncomplete,
                   progressed: bool) -> list[Interval]:
        """An ordered stream that stopped early covers its window up to the last alert read.

        Windows after it count as not pulled; a stop with no progress at all fails the
        scope, so a vendor that loops on every run cannot stall it silently.
        """
        if self.ordered and self._window_max_ms is not None:
            reached = from_epoch_ms(self._window_max_ms)
            self.log.warning("%s: pull stopped early (%s); the next run resumes from %s",
                             self.scope.key, exc, format_time(reached))
            return [(window.start, reached)]
        if not self.ordered:
            # No mark can be trusted in an unordered stream: nothing of it is committed.
            raise SourceError(
                f"pull stopped early ({exc}); this scope is read again next run"
            ) from None
        if not progressed:
            raise SourceError(f"pull stopped early and made no progress: {exc}") from None
        return []

    def _one(self, raw: Any, window: Window, pulled_at: str) -> None:
        self.counts.fetched += 1
        try:
            alert = self.connector.normalize(self.scope, raw)
        except Exception as exc:  # the mapping's fault only: it stays with this alert
            canonical, sha = canonical_and_sha256(raw)
            alert = self._degraded(raw, exc, sha, pulled_at)
            changed_ms = to_epoch_ms(alert.changed_at)
        else:
            in_window = self._in_window(alert, window)
            if in_window is None:
                return
            changed_ms = in_window
            canonical, sha = canonical_and_sha256(raw)
        view = self.connector.version_view(raw)
        version = sha if view is raw else raw_sha256(view)
        key = f"{alert.tenant}|{alert.native_id}"
        seen_before = self.versions.known(key)
        if not self.versions.admit(key, changed_ms, version):
            self.counts.duplicates += 1
            return
        self.counts.written += 1
        if self.writer is not None:
            self.writer.write(self._line(alert, raw, canonical, sha, pulled_at, seen_before))
            self.firsts.add(not seen_before)

    def _in_window(self, alert: Normalized, window: Window) -> int | None:
        """The alert's changed-at in epoch ms when it is this window's to write (it then
        counts towards the mark reached, see _cut_short); None when it is not."""
        takes_all = self.scope.snapshot or self.scope.position  # they find their changes
        if not takes_all and not window.start <= alert.changed_at < window.end:
            # Not this window's to write: later changes are read by the next run, earlier
            # ones were read before; writing them would repeat them run after run.
            self.counts.out_of_window += 1
            return None
        changed_ms = to_epoch_ms(alert.changed_at)
        if self._window_max_ms is None or changed_ms > self._window_max_ms:
            self._window_max_ms = changed_ms
        return changed_ms

    def _degraded(self, raw: Any, error: Exception, sha: str, pulled_at: str) -> Normalized:
        """The alert as a degraded record. The window filter does not apply (its changed-at
        may be unreadable: the vendor listed it in this window) nor does it move the mark
        reached; version dedup does, so a rerun does not write it again."""
        alert = degraded(self.source_type, self.scope, self.connector.landmarks(self.scope),
                         raw, sha, error, parse_time(pulled_at))
        self.counts.degraded += 1
        self.log.warning("%s: wrote alert %s degraded: %s", self.scope.key,
                         self.connector.describe(raw), alert.extra["normalize_error"])
        return alert

    def _line(self, alert: Normalized, raw: Any, canonical: bytes, sha: str, pulled_at: str,
              seen_before: bool) -> bytes:
        if self.output_format == "ocsf":
            record = build_record(self.source, self.source_type, alert, raw, sha, pulled_at)
            # Create vs Update: what this run and the cursor's overlap memory know of
            # earlier versions is all there is (see alertpull.ocsf).
            return json_line(to_ocsf(record, seen_before=seen_before,
                                     vendor=self.connector.vendor,
                                     native=self.connector.ocsf_finding(raw)))
        return record_line(record_fields(self.source, self.source_type, alert, pulled_at),
                           canonical, sha)
