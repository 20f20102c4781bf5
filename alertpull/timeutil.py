"""Time parsing and formatting. Every datetime in alertpull is timezone-aware UTC."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_duration(text: str) -> timedelta:
    """'90m', '36h', '30d', '1.5s' -> timedelta. Raises ValueError with the accepted forms."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration; use a number and a unit, e.g. 90m, 36h, 30d")
    amount, unit = match.groups()
    return timedelta(**{_UNITS[unit]: float(amount) if "." in amount else int(amount)})


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (a naive one is taken as UTC)."""
    try:
        # Most vendor times as they come (3.11 reads a "Z"): this runs for every time of
        # every alert, and the forms it refuses are read below exactly as before.
        parsed = datetime.fromisoformat(text)
    except (ValueError, TypeError):
        value = str(text).strip()
        if value.endswith(("Z", "z")):
            value = value[:-1] + "+00:00"
        parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)


def parse_time_or_none(value: object) -> datetime | None:
    """A vendor's RFC 3339 timestamp, or None when it is absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def parse_time_arg(text: str, now: datetime) -> datetime:
    """A CLI time: RFC 3339, a date (midnight UTC), or a relative duration back from now."""
    value = str(text).strip()
    try:
        return now - parse_duration(value)
    except (ValueError, OverflowError):
        pass
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        return parse_time(value)
    except (ValueError, OverflowError):
        raise ValueError(
            f"{text!r} is not a time; use RFC 3339 (2026-01-31T12:00:00Z), a date (2026-01-31) "
            "or a relative duration (90m, 36h, 30d)"
        ) from None


# Zero-padded field texts, looked up: this runs for every time of every record, and the
# lookups take half the time of %-formatting the fields (a quarter of isoformat's with
# timespec and its offset to cut off).
_TWO_DIGITS = tuple(f"{number:02d}" for number in range(100))
_MILLIS = tuple(f"{number:03d}" for number in range(1000))


def format_time(moment: datetime) -> str:
    """RFC 3339, UTC, millisecond precision, 'Z' suffix."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    two = _TWO_DIGITS
    return (f"{moment.year:04d}-{two[moment.month]}-{two[moment.day]}T{two[moment.hour]}:"
            f"{two[moment.minute]}:{two[moment.second]}.{_MILLIS[moment.microsecond // 1000]}Z")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_epoch_ms(moment: datetime) -> int:
    # Integer arithmetic: exact, unlike float timestamps, and cheap on the hot path.
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_epoch_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def format_duration(delta: timedelta) -> str:
    """A compact human duration: '45s', '12m', '3h12m', '2d4h'."""
    seconds = max(0, int(delta.total_seconds()))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{seconds}s"
