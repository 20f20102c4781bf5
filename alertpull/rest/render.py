"""The spec's only template form: `{name}` replaced by a value, nothing else.

A name is an option of the source, `start`/`end` (the pinned window, in the spec's time
format) or `position` (a position cursor). No expressions, loops or calls: what a template
can say is decided when the spec loads, and it is rendered once per window, never per page.
`{{` and `}}` are literal braces (an FQL or JSON fragment may need them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from alertpull.timeutil import format_time, to_epoch_ms

_NAME = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
TIME_FORMATS = ("rfc3339", "epoch_s", "epoch_ms")
WINDOW_NAMES = ("start", "end")


class Missing(Exception):
    """A template names a value that is not set (an optional option left out)."""


def names(template: str) -> list[str]:
    """The names a template refers to, in order."""
    return [m.group(1) for m in _NAME.finditer(template) if m.group(1)]


def names_in(value: Any) -> Iterable[str]:
    """Every name referred to anywhere in a nested value of templates."""
    if isinstance(value, str):
        yield from names(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from names_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from names_in(item)


def render(template: str, values: Mapping[str, Any]) -> Any:
    """The template filled in. A template that is one `{name}` alone gives the value itself
    (a number stays a number, a list stays a list); inside text a list is joined by commas.
    Raises Missing when a named value is None."""
    whole = _NAME.fullmatch(template)
    if whole and whole.group(1):
        return _value(whole.group(1), values)

    def one(match: re.Match[str]) -> str:
        if not match.group(1):
            return match.group(0)[0]
        value = _value(match.group(1), values)
        return ",".join(map(str, value)) if isinstance(value, list) else str(value)

    return _NAME.sub(one, template)


def render_all(value: Any, values: Mapping[str, Any]) -> Any:
    """A nested value of templates filled in; a key whose template names an unset value is
    left out (so an optional filter such as `accountIds: "{account_ids}"` is simply not
    sent when the option is not configured)."""
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            try:
                out[key] = render_all(item, values)
            except Missing:
                continue
        return out
    if isinstance(value, list):
        return [render_all(item, values) for item in value]
    return value


def _value(name: str, values: Mapping[str, Any]) -> Any:
    value = values.get(name)
    if value is None or value == []:
        raise Missing(name)
    return value


def format_bound(moment: datetime, time_format: str) -> str | int:
    """A window bound as the vendor wants it: rfc3339 (UTC, milliseconds, Z), epoch_s,
    epoch_ms, or any strftime pattern (taken in UTC)."""
    if time_format == "rfc3339":
        return format_time(moment)
    if time_format == "epoch_ms":
        return to_epoch_ms(moment)
    if time_format == "epoch_s":
        return to_epoch_ms(moment) // 1000
    return moment.astimezone(UTC).strftime(time_format)
