"""The notification ledger: which published parts each target has still to be told about.

It lives in the source's state document under `notify.outbox`, one entry per published
part, in publish order:

    {"part": <final path or key>, "records": N, "firsts": [[a, b], ...],
     "waiting": {<target key>: <next line to deliver>}}

An entry is added in the same state write that commits the part's cursor (delivery.
apply_cursors, on a normal run and on crash recovery alike), so a part is never published
and committed without the targets owing it. A target's position moves only after it
accepted what lies before; an entry goes when no target waits on it any more. `firsts`
are the line ranges [a, b) holding an alert's first version, as the run's version filter
knew when it wrote them (for `changes: new`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class FirstVersions:
    """Line ranges [a, b) of a part whose lines are an alert's first version, built line
    by line; a part of only new alerts is one range however long it is."""

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []
        self._lines = 0

    def add(self, first: bool) -> None:
        if first:
            if self.ranges and self.ranges[-1][1] == self._lines:
                self.ranges[-1][1] += 1
            else:
                self.ranges.append([self._lines, self._lines + 1])
        self._lines += 1


def is_first(ranges: list[list[int]], line: int) -> bool:
    return any(a <= line < b for a, b in ranges)


def outbox(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc.setdefault("notify", {}).setdefault("outbox", [])


def enqueue(doc: dict[str, Any], parts: Iterable[tuple[Mapping[str, Any], list[list[int]]]],
            targets: list[str]) -> None:
    """Owe every target each published part (a part as Part.to_json, its firsts)."""
    if not targets:
        return
    entries = outbox(doc)
    for part, firsts in parts:
        entries.append({"part": part["final"], "records": part["records"], "firsts": firsts,
                        "waiting": dict.fromkeys(targets, 0)})


def forget_targets(doc: dict[str, Any], configured: set[str]) -> dict[str, int]:
    """Drop positions of targets no longer configured; how many parts each still owed."""
    dropped: dict[str, int] = {}
    for entry in outbox(doc):
        for key in [k for k in entry["waiting"] if k not in configured]:
            dropped[key] = dropped.get(key, 0) + 1
            del entry["waiting"][key]
    prune(doc)
    return dropped


def prune(doc: dict[str, Any]) -> None:
    """Remove entries no target waits on any more."""
    doc["notify"]["outbox"] = [e for e in outbox(doc) if e["waiting"]]
    if not doc["notify"]["outbox"]:
        del doc["notify"]
