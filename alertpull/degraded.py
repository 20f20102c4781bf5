"""What an alert is written as when its mapping fails: a degraded record.

An odd payload (a list where an object was expected, a null, an unreadable time) must
not be lost, nor stop the run: whatever normalize() raised, the alert is still written,
with only what can be read honestly. Its native id comes from the vendor's id field
(the connector's Landmarks), else from its content hash (and the reason says so); its
title from a title-like field, else "Unparsed <type> alert"; severity and status are
`unknown`; its times are the vendor's where readable, else the pull's; its tenant is
the scope's. `normalize_error` carries the one-line reason.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from alertpull.connector import Landmarks, Scope
from alertpull.errors import MalformedAlert, one_line
from alertpull.record import Normalized, dig, text
from alertpull.timeutil import parse_time_or_none

_T = TypeVar("_T")

UNKNOWN_TENANT = "unknown"  # a scope that does not know its tenant: said, never guessed


def degraded(source_type: str, scope: Scope, landmarks: Landmarks, raw: Any, sha: str,
             error: Exception, pulled_at: datetime) -> Normalized:
    """The record of an alert whose normalize() raised `error`."""
    native_id = _first(raw, landmarks.id, text)
    reason = failure(error)
    if native_id is None:
        native_id = f"sha256:{sha}"
        reason += "; no id field, native_id is its raw_sha256"
    created = _first(raw, landmarks.created, parse_time_or_none)
    updated = _first(raw, landmarks.updated, parse_time_or_none)
    created_at = created or updated or pulled_at
    updated_at = updated or created or pulled_at
    return Normalized(
        native_id=native_id,
        tenant=scope.tenant or UNKNOWN_TENANT,
        changed_at=updated_at,
        title=_first(raw, landmarks.title, text) or f"Unparsed {source_type} alert",
        severity="unknown",
        severity_raw=None,
        status="unknown",
        status_raw=None,
        created_at=created_at,
        updated_at=updated_at,
        link=None,
        extra={"normalize_error": reason},
    )


def failure(error: Exception) -> str:
    """One line: a MalformedAlert's own words; for anything else the exception and the
    line of the mapping that raised it, which is what a bug report needs."""
    if isinstance(error, MalformedAlert):
        return one_line(str(error)) or "malformed alert"
    said = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        said += f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return one_line(said)


def _first(raw: Any, paths: tuple[str, ...], read: Callable[[Any], _T | None]) -> _T | None:
    """The first of the paths whose value `read` makes something of, or None."""
    for path in paths:
        value = read(dig(raw, *path.split(".")))
        if value is not None:
            return value
    return None
