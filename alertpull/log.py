"""Logging: readable text on a terminal, one JSON object per line for cron/journald,
and a live progress line for long pulls on a TTY only."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

from alertpull.timeutil import format_time, utcnow

LOGGER = "alertpull"
_SECRETS: set[str] = set()  # values no log line may show (see redact_in_logs)
_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


def redact_in_logs(secret: str) -> None:
    """From now on, `secret` is shown as *** in every log line of this process, whoever
    logs it: a query-string credential (Canary's auth_token) is in every URL that
    urllib3's retry warnings print."""
    if len(secret) >= 4:  # a shorter value would blank out ordinary words
        _SECRETS.add(secret)


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = record.getMessage()
            clean = message
            for secret in _SECRETS:
                clean = clean.replace(secret, "***")
            if clean != message:
                record.msg, record.args = clean, None
        return True


class _Formatter(logging.Formatter):
    """Tracebacks only when asked for (-v): under cron an error is one line."""

    def __init__(self, tracebacks: bool) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def traceback(self, record: logging.LogRecord) -> str | None:
        return self.formatException(record.exc_info) if self.tracebacks and record.exc_info \
            else None


class JsonFormatter(_Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": format_time(utcnow()),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS})
        if trace := self.traceback(record):
            entry["traceback"] = trace
        return json.dumps(entry, default=str)


class TextFormatter(_Formatter):
    def format(self, record: logging.LogRecord) -> str:
        source = getattr(record, "source", None)
        prefix = f"[{source}] " if source else ""
        line = f"{format_time(utcnow())} {record.levelname:<7} {prefix}{record.getMessage()}"
        trace = self.traceback(record)
        return f"{line}\n{trace}" if trace else line


class Progress:
    """A single self-overwriting status line on stderr, shown only on a TTY."""

    _INTERVAL = 0.25

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._last = 0.0
        self._shown = False

    def add(self, source: str, records: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._counts[source] = self._counts.get(source, 0) + records
            now = time.monotonic()
            if now - self._last >= self._INTERVAL:
                self._last = now
                text = "  ".join(f"{name}: {n:,} alerts" for name, n in self._counts.items())
                sys.stderr.write(f"\r\033[K{text}")
                sys.stderr.flush()
                self._shown = True

    def clear(self) -> None:
        with self._lock:
            if self._shown:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()
                self._shown = False


class _ProgressAwareHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Clears the progress line before a log line so the two never interleave."""

    def __init__(self, progress: Progress) -> None:
        super().__init__(sys.stderr)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.clear()
        super().emit(record)


def setup_logging(log_format: str | None, verbosity: int) -> Progress:
    """Configure the 'alertpull' logger; return the progress line (disabled off a TTY)."""
    tty = sys.stderr.isatty()
    fmt = log_format or "text"
    progress = Progress(enabled=tty and fmt == "text" and verbosity >= 0)
    handler = _ProgressAwareHandler(progress)
    handler.addFilter(_RedactingFilter())
    tracebacks = verbosity > 0
    handler.setFormatter(JsonFormatter(tracebacks) if fmt == "json" else TextFormatter(tracebacks))
    logger = logging.getLogger(LOGGER)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0
                    else logging.INFO)
    # Vendor SDK warnings go through the same handler, so they too are one line (botocore
    # logs a failed credential refresh with a traceback). Never their debug logs: those
    # print request headers, credentials included.
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    return progress


class _SourceAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Tags every line with its source and keeps a call's own `extra` fields."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def source_logger(source: str) -> logging.LoggerAdapter[logging.Logger]:
    return _SourceAdapter(logging.getLogger(LOGGER), {"source": source})
