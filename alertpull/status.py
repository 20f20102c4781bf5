"""`alertpull status`: what the state says about each source. Reads state only."""

from __future__ import annotations

from typing import Any

from alertpull.config import SourceConfig
from alertpull.timeutil import format_duration, parse_time, utcnow


def source_status(source: SourceConfig, doc: dict[str, Any] | None,
                  state_error: str | None = None) -> dict[str, Any]:
    """Per-source status from its state document (None: never run, or unreadable)."""
    doc = doc or {}
    entries = doc.get("scopes", {})
    scopes = {key: (entry.get("cursor") or {}) for key, entry in entries.items()}
    retired = sorted(key for key, entry in entries.items() if entry.get("retired"))
    # A retired scope (no longer configured) stops at its watermark: not a lag.
    marks = [c["watermark"] for key, c in scopes.items()
             if c.get("watermark") and key not in retired]
    # The source is as fresh as its most lagging scope.
    watermark = min(marks, key=parse_time) if marks else None
    lag = utcnow() - parse_time(watermark) if watermark else None
    last_run = doc.get("last_run")
    state = ("unreadable state" if state_error else "never run" if not last_run
             else "ok" if last_run["ok"] else "failing")
    return {
        "source": source.name,
        "type": source.type,
        "state": state,
        "watermark": watermark,
        "lag": format_duration(lag) if lag is not None else None,
        "lag_seconds": int(lag.total_seconds()) if lag is not None else None,
        "last_success": doc.get("last_success"),
        "last_failure": doc.get("last_failure") or (
            {"at": None, "error": state_error} if state_error else None),
        "last_run": last_run,
        "pending": bool(doc.get("pending")),
        "scopes": {key: c.get("watermark") for key, c in scopes.items()},
        "retired_scopes": retired,
        # Alerts that may be lost: the job was off longer than the vendor keeps them.
        "retention_gaps": {key: entry["retention_gap"] for key, entry in entries.items()
                           if entry.get("retention_gap")},
    }
