"""The current state of every alert, read from the published log in one streaming pass.

The log holds alert versions; the latest per `id` (by `updated_at`, then `pulled_at`) is
the alert's current state. A pass keeps one entry per id, holding the winning line as
bytes (the most compact form there is), never every line; winners are parsed again only
when they are shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from alertpull.alerts.reader import Log
from alertpull.errors import ConfigError, SourceError
from alertpull.record import SEVERITY_IDS
from alertpull.timeutil import format_time, parse_time_or_none

OPEN = ("new", "in_progress")
SEVERITY_ORDER = sorted(SEVERITY_IDS, key=lambda s: -SEVERITY_IDS[s])  # critical first


@dataclass(frozen=True)
class Query:
    sources: tuple[str, ...] = ()  # none: every source
    since: datetime | None = None  # alerts updated at or after
    min_severity: str | None = None
    statuses: tuple[str, ...] = ()  # none: every status
    limit: int | None = None


def records(log: Log, sources: Iterable[str] | None,
            since: datetime | None) -> Iterator[tuple[str, dict[str, Any], bytes]]:
    """(part, record, line) of every published line, reading only the partitions needed:
    a version updated at `since` or later was pulled then or later, so it is in a `dt=`
    partition of that day or after."""
    day = f"{since:%Y-%m-%d}" if since else None
    for part in log.select(sources, day):
        for number, line in enumerate(log.lines(part), 1):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise SourceError(f"{part} line {number} is not JSON") from None
            if "id" not in record:
                raise ConfigError(
                    f"{part} holds no alertpull records (OCSF events?): `alertpull alerts` "
                    "reads the native format; query OCSF output with DuckDB or Athena "
                    "(see docs/working-with-the-log.md)")
            yield part, record, line


def latest_lines(log: Log, query: Query) -> dict[str, bytes]:
    """The latest line of each alert in the partitions the query needs."""
    best: dict[str, tuple[str, str, bytes]] = {}
    for _, record, line in records(log, query.sources or None, query.since):
        order = (record["updated_at"], record["pulled_at"])
        held = best.get(record["id"])
        if held is None or order >= held[:2]:  # equal: the later line is the later write
            best[record["id"]] = (*order, line)
    return {key: held[2] for key, held in best.items()}


def current(log: Log, query: Query) -> list[dict[str, Any]]:
    """The alerts the query selects, in their current state, newest first."""
    since = format_time(query.since) if query.since else None
    floor = SEVERITY_IDS[query.min_severity] if query.min_severity else None
    chosen = []
    for line in latest_lines(log, query).values():
        record = orjson.loads(line)
        if since and record["updated_at"] < since:
            continue
        if floor is not None and SEVERITY_IDS.get(record["severity"], 0) < floor:
            continue
        if query.statuses and record["status"] not in query.statuses:
            continue
        chosen.append(record)
    # The id settles ties, so equal times list in the same order on every read.
    chosen.sort(key=lambda r: (r["updated_at"], r["pulled_at"], r["id"]), reverse=True)
    return chosen[: query.limit] if query.limit is not None else chosen


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
    """Every version of one alert (by id, dedup_key or native_id), oldest first."""
    found = [r for _, r, _ in records(log, sources, None)
             if wanted in (r["id"], r.get("dedup_key"), r.get("native_id"))]
    ids = {r["id"] for r in found}
    if len(ids) > 1:
        raise ConfigError(f"{wanted} names {len(ids)} alerts (one native id in several "
                          "sources or tenants); give its id: " + ", ".join(sorted(ids)))
    return sorted(found, key=lambda r: (r["updated_at"], r["pulled_at"]))


TRACKED = ("status", "severity", "assignee", "count")


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """What changed between two versions, among the fields a responder follows."""
    return [(name, before.get(name), after.get(name)) for name in TRACKED
            if before.get(name) != after.get(name)]
