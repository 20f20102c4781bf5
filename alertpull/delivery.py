"""Effectively-once delivery: a two-phase commit between the sink and the state store.

1. every scope's part is staged and fsynced (invisible to readers);
2. state records `pending`: for each scope, the part this run publishes and the cursor
   it then commits;
3. the parts are published (atomic rename / single PUT);
4. the cursors are committed and `pending` cleared, in one atomic state write.

A crash between any two steps leaves either no pending entry (nothing was published;
the staged files are garbage and the rerun pulls again) or a pending entry that the
next run rolls forward scope by scope (the part is published or still staged) or back
(the staged part vanished unpublished, so its cursor must not move).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from alertpull.notify.ledger import enqueue
from alertpull.sinks.base import Part, Sink
from alertpull.state.base import STATE_SCHEMA_VERSION


@dataclass(frozen=True)
class ScopeCommit:
    """What one scope of a run delivers: its part (None if it wrote nothing) and cursor."""

    part: Part | None
    cursor: dict[str, Any]
    firsts: list[list[int]] = field(default_factory=list)  # first-version lines (notify)


def new_document(source: str, source_type: str) -> dict[str, Any]:
    return {
        "schema_version": STATE_SCHEMA_VERSION,
        "source": source,
        "type": source_type,
        "scopes": {},
        "pending": None,
        "last_run": None,
        "last_success": None,
        "last_failure": None,
    }


def stage_pending(doc: dict[str, Any], run_id: str, commits: dict[str, ScopeCommit],
                  notify: list[str] | None = None) -> None:
    """Record what this run publishes; `notify`: the targets each published part is owed."""
    doc["pending"] = {
        "run_id": run_id,
        "scopes": {
            key: {"part": c.part.to_json() if c.part else None, "cursor": c.cursor,
                  "firsts": c.firsts}
            for key, c in commits.items()
        },
        "notify": notify or [],
    }


def publish(sink: Sink, commits: dict[str, ScopeCommit]) -> None:
    for commit in commits.values():
        if commit.part is not None:
            sink.publish(commit.part)


def apply_cursors(doc: dict[str, Any], commits: dict[str, ScopeCommit]) -> None:
    for key, commit in commits.items():
        doc["scopes"].setdefault(key, {})["cursor"] = commit.cursor
    # In the same write as the cursors: the parts now published are owed to the targets.
    enqueue(doc, [(c.part.to_json(), c.firsts) for c in commits.values() if c.part],
            (doc.get("pending") or {}).get("notify", []))
    doc["pending"] = None


def recover_pending(doc: dict[str, Any], sink: Sink, log: logging.LoggerAdapter[Any]) -> bool:
    """Finish or undo a run that stopped between recording `pending` and committing.

    Returns True when the document changed and must be saved.
    """
    pending = doc.get("pending")
    if not pending:
        return False
    forward: dict[str, ScopeCommit] = {}
    lost = []
    for key, entry in pending["scopes"].items():
        part = Part.from_json(entry["part"]) if entry["part"] else None
        if part is None or sink.is_published(part) or os.path.exists(part.staged):
            forward[key] = ScopeCommit(part, entry["cursor"], entry.get("firsts", []))
        else:
            lost.append(key)
    publish(sink, forward)
    apply_cursors(doc, forward)
    log.warning("recovered interrupted run %s: committed %d scope(s)", pending["run_id"],
                len(forward))
    if lost:
        # The staged file vanished unpublished (e.g. a wiped temp dir): those versions
        # were never written, so those cursors stay put and the next pull re-reads them.
        log.warning("interrupted run %s lost its staged output for %s; it will be pulled again",
                    pending["run_id"], ", ".join(lost))
    return True
