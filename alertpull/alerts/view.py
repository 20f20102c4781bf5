"""The current state of every alert, read from the published log in streaming passes.

The log holds alert versions; the latest per `id` (by `updated_at`, then `pulled_at`) is
the alert's current state. The first pass keeps per id only what choosing and counting
need (an order key, severity, status, created_at, and where its latest line is: part and
line number), never the line: a few hundred bytes an alert, whatever its raw payload
weighs. The summary is counted from that alone; a listing chooses its alerts (filters,
newest first, `limit`) and a second pass reads just the parts holding them, parsing only
their lines.
"""

from __future__ import annotations

import heapq
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from alertpull.alerts.reader import Log
from alertpull.errors import ConfigError, SourceError
from alertpull.record import SEVERITY_IDS
from alertpull.timeutil import format_time, parse_time_or_none

OPEN = ("new", "in_progress")
SEVERITY_ORDER = sorted(SEVERITY_IDS, key=lambda s: -SEVERITY_IDS[s])  # critical first
_RAW = b',"raw":'
# What a pass reads of every line: choosing, counting, and finding one alert's versions.
_HEAD = frozenset(("id", "dedup_key", "native_id", "updated_at", "pulled_at", "severity",
                   "status", "created_at"))


@dataclass(frozen=True)
class Query:
    sources: tuple[str, ...] = ()  # none: every source
    since: datetime | None = None  # alerts updated at or after
    min_severity: str | None = None
    statuses: tuple[str, ...] = ()  # none: every status
    limit: int | None = None


def head(line: bytes) -> dict[str, Any]:
    """The fields a pass needs, parsed from the bytes before the record's `raw` when it can.

    The writer (alertpull.record.record_line) puts every field before the vendor's raw
    payload, the bulk of a line, so parsing only the head is several times faster.
    `,"raw":` cannot occur inside a JSON string (a quote there is escaped), so the cut is
    either just before the top-level raw, or inside a nested object, where the head then
    does not parse (a container is left open) and the whole line is parsed instead. A
    line cut short (it does not end its object) is parsed whole too, to fail as it should.
    JSONDecodeError when the line is not JSON.
    """
    cut = line.find(_RAW)
    if cut > 0 and line.endswith(b"}"):
        try:
            fields = orjson.loads(line[:cut] + b"}")
        except orjson.JSONDecodeError:
            pass
        else:
            if fields.keys() >= _HEAD:
                return fields  # type: ignore[no-any-return]
    return orjson.loads(line)  # type: ignore[no-any-return]


def _parsed(part: str, number: int, line: bytes,
            parse: Callable[[bytes], Any] = orjson.loads) -> dict[str, Any]:
    try:
        record = parse(line)
    except orjson.JSONDecodeError:
        raise SourceError(f"{part} line {number} is not JSON") from None
    if "id" not in record:
        raise ConfigError(
            f"{part} holds no alertpull records (OCSF events?): `alertpull alerts` "
            "reads the native format; query OCSF output with DuckDB or Athena "
            "(see docs/working-with-the-log.md)")
    return record  # type: ignore[no-any-return]


class Entry(NamedTuple):
    """What the first pass keeps of an alert's latest version."""

    order: str  # updated_at NUL pulled_at: sorts as the pair does, in one string
    severity: str
    status: str
    created_at: str | None  # kept for open alerts only: the summary's oldest open one
    part: int  # index into Latest.parts
    line: int  # its line number in that part, from 1


def order_key(record: dict[str, Any]) -> str:
    # NUL sorts before every character of a time, so "a\0b" < "c\0d" exactly when
    # (a, b) < (c, d); an unknown updated_at sorts as the oldest.
    return f"{record['updated_at'] or ''}\0{record['pulled_at']}"


@dataclass
class Latest:
    """The first pass: the latest version of each alert in the partitions read."""

    parts: list[tuple[str, str]] = field(default_factory=list)  # (source, part)
    entries: dict[str, Entry] = field(default_factory=dict)  # by id

    def source(self, entry: Entry) -> str:
        return self.parts[entry.part][0]


def latest(log: Log, query: Query) -> Latest:
    """The latest version of each alert in the partitions the query needs: a version
    updated at `since` or later was pulled then or later, so it is in a `dt=` partition
    of that day or after."""
    found = Latest()
    entries = found.entries
    day = f"{query.since:%Y-%m-%d}" if query.since else None
    for source, part in log.select(query.sources or None, day):
        part_no = len(found.parts)
        found.parts.append((source, part))
        for number, line in enumerate(log.lines(part), 1):
            record = _parsed(part, number, line, head)
            order = order_key(record)
            held = entries.get(record["id"])
            if held is None or order >= held.order:  # equal: the later line is the later write
                status = sys.intern(record["status"])
                entries[record["id"]] = Entry(
                    order, sys.intern(record["severity"]), status,
                    record["created_at"] if status in OPEN else None, part_no, number)
    return found


def _selected(found: Latest, query: Query) -> Iterator[tuple[str, str]]:
    """(order, id) of the alerts the query's filters keep."""
    since = format_time(query.since) if query.since else None
    floor = SEVERITY_IDS[query.min_severity] if query.min_severity else None
    for key, entry in found.entries.items():
        if since and entry.order < since:  # as updated_at < since: see order_key
            continue
        if floor is not None and SEVERITY_IDS.get(entry.severity, 0) < floor:
            continue
        if query.statuses and entry.status not in query.statuses:
            continue
        yield entry.order, key


def current(log: Log, query: Query,
            fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The alerts the query selects, in their current state, newest first: whole
    records, or only `fields` of each (what a table shows, without its raw payload)."""
    found = latest(log, query)
    # The id settles ties, so equal times list in the same order on every read.
    if query.limit is not None:
        chosen = heapq.nlargest(query.limit, _selected(found, query))
    else:
        chosen = sorted(_selected(found, query), reverse=True)
    wanted: dict[int, dict[int, int]] = {}  # part -> line number -> rank in `chosen`
    for rank, (_, key) in enumerate(chosen):
        entry = found.entries[key]
        wanted.setdefault(entry.part, {})[entry.line] = rank
    found.entries.clear()  # from here on only what is shown is held, not every alert
    shown: list[dict[str, Any]] = [{}] * len(chosen)
    for part_no in sorted(wanted):
        lines = wanted[part_no]
        part = found.parts[part_no][1]
        for number, line in enumerate(log.lines(part), 1):
            if number in lines:
                record = _parsed(part, number, line)
                shown[lines.pop(number)] = (record if fields is None
                                            else {f: record.get(f) for f in fields})
                if not lines:
                    break  # the rest of the part holds nothing shown
        if lines:
            raise SourceError(f"{part} changed while it was read (lines {min(lines)}...); "
                              "run the command again")
    return shown


def open_alerts(log: Log, query: Query) -> Iterator[dict[str, Any]]:
    """The open alerts among the query's, with what the summary counts: from the first
    pass alone, one at a time."""
    found = latest(log, query)
    for _, key in _selected(found, query):
        entry = found.entries[key]
        if entry.status in OPEN:
            yield {"source": found.source(entry), "severity": entry.severity,
                   "status": entry.status, "created_at": entry.created_at}


@dataclass
class SourceSummary:
    source: str
    open_by_severity: Counter[str]
    oldest_open: datetime | None  # created_at of its oldest open alert

    @property
    def total(self) -> int:
        return sum(self.open_by_severity.values())


def summarize(alerts: Iterable[dict[str, Any]]) -> list[SourceSummary]:
    """Open alerts counted by source and severity, with each source's oldest open one."""
    by_source: dict[str, SourceSummary] = {}
    for alert in alerts:
        if alert["status"] not in OPEN:
            continue
        entry = by_source.setdefault(alert["source"],
                                     SourceSummary(alert["source"], Counter(), None))
        entry.open_by_severity[alert["severity"]] += 1
        created = parse_time_or_none(alert.get("created_at"))
        if created and (entry.oldest_open is None or created < entry.oldest_open):
            entry.oldest_open = created
    return sorted(by_source.values(), key=lambda s: s.source)


def versions(log: Log, wanted: str, sources: Iterable[str] | None) -> list[dict[str, Any]]:
    """Every version of one alert (by id, dedup_key or native_id), oldest first; only the
    lines whose head names it are parsed whole."""
    found = []
    for _, part in log.select(sources):
        for number, line in enumerate(log.lines(part), 1):
            fields = _parsed(part, number, line, head)
            if wanted in (fields["id"], fields.get("dedup_key"), fields.get("native_id")):
                found.append(_parsed(part, number, line))
    ids = {r["id"] for r in found}
    if len(ids) > 1:
        raise ConfigError(f"{wanted} names {len(ids)} alerts (one native id in several "
                          "sources or tenants); give its id: " + ", ".join(sorted(ids)))
    return sorted(found, key=lambda r: (r["updated_at"] or "", r["pulled_at"]))


TRACKED = ("status", "severity", "assignee", "count")


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """What changed between two versions, among the fields a responder follows."""
    return [(name, before.get(name), after.get(name)) for name in TRACKED
            if before.get(name) != after.get(name)]
