"""Error types that map to exit codes. Each carries a one-line, secret-free message."""

from __future__ import annotations

EXIT_OK = 0
EXIT_SOURCE_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75


class AlertpullError(Exception):
    """Base class: the message is shown to the user as one line, never with a traceback."""

    exit_code = EXIT_SOURCE_FAILED


class ConfigError(AlertpullError):
    """Bad config file, bad flag value, missing secret: the user must fix their input."""

    exit_code = EXIT_USAGE


class SourceError(AlertpullError):
    """A source could not be pulled (auth, permission, persistent vendor error)."""


class StateError(AlertpullError):
    """The state store holds something we cannot use (corrupt, newer schema)."""


class LockHeld(AlertpullError):
    """Another run holds this source's lock."""

    exit_code = EXIT_LOCKED


class MalformedAlert(Exception):
    """A single vendor object cannot be normalized; it is written as a degraded record."""


class WindowIncomplete(Exception):
    """A connector stopped before the end of the window (e.g. a looping page token).

    Raised after the pages that were read; for a stream ordered by its changed-at
    field the runner commits the mark reached so the next run resumes from there.
    """


def one_line(text: str, limit: int = 300) -> str:
    """A vendor's message fit for a one-line error: whitespace folded, cut at `limit`."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def retries_phrase(count: int) -> str:
    """How an error line says how often a call was retried: "1 retry", "6 retries"."""
    return "1 retry" if count == 1 else f"{count} retries"
