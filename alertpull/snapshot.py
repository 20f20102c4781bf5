"""A snapshot stream: a listing of state, diffed against the last run's, yields the changes.

For vendors whose list is state rather than events (Intune's device posture, Kandji's
threat details without ids): once per run the whole listing is read, each item is diffed
against what the scope's Memory kept, and the changes are yielded as alerts. The new
snapshot goes into Memory.current, which the runner commits with the output. A listing
cut short commits nothing: half a snapshot would read as items gone missing.

A connector supplies the listing and a `Diff` of its own (or `VersionDiff`, for a list
whose items only need "new or changed since the last list").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from alertpull.connector import Memory
from alertpull.errors import MalformedAlert, SourceError, WindowIncomplete
from alertpull.record import raw_sha256


class Diff(Protocol):
    """This run's listing against the last run's snapshot, one listed item at a time."""

    def see(self, item: Any) -> list[Any]:
        """The alerts (raw) one listed item gives: none when it is unchanged."""

    def finish(self) -> dict[str, Any]:
        """The snapshot to keep in Memory, once every item is seen."""


def snapshot_changes(memory: Memory, listing: Iterable[list[Any]],
                     diff: Callable[[Mapping[str, Any] | None], Diff],
                     again: str) -> Iterator[list[Any]]:
    """Yield, page by page, the changes of this run's listing against memory.previous, and
    set memory.current to the new snapshot once the listing is complete.

    One snapshot per run: a later window of the same run (a backfill) yields nothing. A
    listing cut short (WindowIncomplete) fails the scope with `again` appended (e.g. "the
    devices are listed again next run"), so the whole list is read again next run.
    """
    if memory.current is not None:
        return
    differ = diff(memory.previous)
    try:
        for page in listing:
            changes = [change for item in page for change in differ.see(item)]
            if changes:
                yield changes
    except WindowIncomplete as stop:
        raise SourceError(f"{stop}; {again}") from None
    memory.current = differ.finish()


class VersionDiff:
    """New or changed since the last list, by content: Memory {"versions": {key: sha256}}.

    `key` names an item (raising MalformedAlert, or returning None, for one it cannot
    name: such an item is passed on for normalize() to report). An item listed twice in
    one run counts once.
    """

    def __init__(self, previous: Mapping[str, Any] | None,
                 key: Callable[[Any], str | None]) -> None:
        versions = (previous or {}).get("versions")
        self.known: dict[str, str] = dict(versions) if isinstance(versions, dict) else {}
        self.current: dict[str, str] = {}
        self.key = key

    def see(self, item: Any) -> list[Any]:
        try:
            key = self.key(item)
        except MalformedAlert:
            key = None
        if key is None:
            return [item]
        sha = raw_sha256(item)
        before = self.current.get(key, self.known.get(key))
        self.current[key] = sha
        return [item] if sha != before else []

    def finish(self) -> dict[str, Any]:
        return {"versions": self.current}
