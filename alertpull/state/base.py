"""The state-store contract: one JSON document per source, a lock per source.

The document holds every scope's cursor, the pending delivery (if a run stopped
between publishing and committing) and the last run's outcome. Saves are
compare-and-swap on the token returned by the last load/save, so two hosts that
somehow both hold a source can never silently overwrite each other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Any

import orjson

from alertpull.errors import StateError
from alertpull.record import dump_json, parse_json

STATE_SCHEMA_VERSION = 1


def parse_document(source: str, text: bytes | str, where: str) -> dict[str, Any]:
    """Decode a state document, refusing corrupt or newer-schema ones with a clear fix."""
    try:
        doc = parse_json(text)  # orjson: a cursor may remember ~100k versions (see below)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except ValueError:
        raise StateError(
            f"state for source {source!r} at {where} is corrupt (not valid JSON); "
            f"inspect it, or run 'alertpull cursor reset --source {source}' to start over"
        ) from None
    version = doc.get("schema_version")
    if not isinstance(version, int) or version > STATE_SCHEMA_VERSION:
        raise StateError(
            f"state for source {source!r} at {where} has schema_version {version!r}, "
            f"this alertpull reads {STATE_SCHEMA_VERSION}; upgrade alertpull"
        )
    return doc


def render_document(doc: dict[str, Any]) -> bytes:
    """The document as stored: keys sorted and indented, for a person reading it. (orjson
    underneath: a cursor may remember tens of thousands of versions, a day's overlap of a
    busy SCC organization, and json's indenting encoder is pure Python, holding several
    times the output in pieces at the end of every run.)"""
    return dump_json(doc, orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)


class StateStore(ABC):
    @abstractmethod
    def load(self, source: str) -> tuple[dict[str, Any] | None, Any]:
        """Return (document or None, token). The token is passed back to save()."""

    @abstractmethod
    def save(self, source: str, doc: dict[str, Any], token: Any) -> Any:
        """Durably replace the document if it still matches `token`; return the new token.

        Raises StateError when another writer changed it since (a lost lock).
        """

    @abstractmethod
    def discard(self, source: str) -> None:
        """Delete the source's document (used by `cursor reset` on a corrupt one)."""

    @abstractmethod
    def lock(self, source: str) -> AbstractContextManager[None]:
        """Hold the source's exclusive lock for the block; raise LockHeld if taken."""

    def assert_held(self, source: str) -> None:
        """Raise StateError if this run no longer holds the source's lock.

        A local lock is held until the process exits; a bucket lease can be lost (see
        state/bucket.py). The runner asks right before it publishes and commits.
        """
        return None  # held: the stores whose lock can be lost override this

    @abstractmethod
    def sources(self) -> list[str]:
        """Names of sources with a state document."""

    @abstractmethod
    def location(self, source: str) -> str:
        """Where the document lives, for messages."""
