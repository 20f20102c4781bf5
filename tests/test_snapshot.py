"""The one snapshot diff (alertpull.snapshot): once per run, changes only, nothing kept from
a listing cut short. Intune's and Kandji's tests prove it through their vendors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from alertpull.connector import Memory
from alertpull.errors import MalformedAlert, SourceError, WindowIncomplete
from alertpull.snapshot import VersionDiff, snapshot_changes


def name_of(item: Any) -> str:
    if "name" not in item:
        raise MalformedAlert("no name")
    return str(item["name"])


def diff(previous: Any) -> VersionDiff:
    return VersionDiff(previous, name_of)


def run(memory: Memory, pages: list[list[Any]]) -> list[Any]:
    changes = snapshot_changes(memory, iter(pages), diff, "listed again next run")
    return [item for page in changes for item in page]


def test_only_new_or_changed_items_are_yielded_and_the_snapshot_is_kept() -> None:
    first = Memory()
    listing = [[{"name": "a", "v": 1}, {"name": "b", "v": 1}], [{"name": "c", "v": 1}]]
    assert run(first, listing) == [item for page in listing for item in page]

    second = Memory(previous=first.current)
    changed = [[{"name": "a", "v": 1}, {"name": "b", "v": 2}], [{"name": "c", "v": 1}]]
    assert run(second, changed) == [{"name": "b", "v": 2}]
    assert second.current is not None and set(second.current["versions"]) == {"a", "b", "c"}


def test_an_item_it_cannot_name_is_passed_on_for_normalize_to_report() -> None:
    assert run(Memory(), [[{"v": 1}]]) == [{"v": 1}]


def test_one_snapshot_per_run_a_later_window_yields_nothing() -> None:
    memory = Memory()
    run(memory, [[{"name": "a"}]])
    taken = memory.current
    assert run(memory, [[{"name": "z"}]]) == [] and memory.current is taken


def test_a_listing_cut_short_fails_the_scope_and_keeps_no_snapshot() -> None:
    def cut() -> Iterator[list[Any]]:
        yield [{"name": "a"}]
        raise WindowIncomplete("Vendor repeated a cursor of GET /list")

    memory = Memory(previous={"versions": {"a": "old"}})
    with pytest.raises(SourceError,
                       match=r"^Vendor repeated a cursor of GET /list; listed again next run$"):
        list(snapshot_changes(memory, cut(), diff, "listed again next run"))
    assert memory.current is None
