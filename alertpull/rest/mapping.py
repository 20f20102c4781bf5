"""One vendor object to a record, by the spec's JMESPath field paths.

What a path cannot read raises MalformedAlert (the engine then writes the alert degraded,
never drops it); a field the mapping merely prefers is left out when absent.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from alertpull.errors import MalformedAlert
from alertpull.record import Normalized, compact, holds_something, unique_strings
from alertpull.rest.render import Missing, render
from alertpull.rest.spec import Choice, Fields
from alertpull.timeutil import from_epoch_ms, parse_time

EPOCH_MS_FROM = 10**11  # a number above this is epoch milliseconds (year 5138 in seconds)


def normalize(raw: Any, fields: Fields, tenant: str, values: Mapping[str, Any]) -> Normalized:
    if not isinstance(raw, dict):
        raise MalformedAlert("the vendor's object is not a JSON object")
    native_id = _text(fields.id.search(raw))
    if native_id is None:
        raise MalformedAlert(f"no id at {fields.id.expression}")
    changed_at = to_time(fields.changed_at.search(raw), fields.changed_at.expression)
    created = fields.created_at.search(raw) if fields.created_at else None
    created_at = to_time(created, fields.created_at.expression) if created is not None else None
    found = _text(fields.tenant.search(raw)) if fields.tenant else None
    tenant = found or values.get("base_url_host") or tenant
    severity, severity_raw = choose(fields.severity, raw)
    status, status_raw = choose(fields.status, raw)
    extra: dict[str, Any] = {name: path.search(raw) for name, path in fields.extra.items()}
    if "related" in extra:
        extra["related"] = _related(extra["related"])
    for name in ("resources", "users", "devices"):
        if isinstance(extra.get(name), list):  # an entity's absent keys are left out
            extra[name] = [compact(e) if isinstance(e, dict) else e for e in extra[name]]
    extra["description"] = _text(fields.description.search(raw)) if fields.description else None
    if fields.severity.derived:
        extra["severity_derived"] = True
    return Normalized(
        native_id=native_id,
        tenant=tenant,
        changed_at=changed_at,
        title=_text(fields.title.search(raw)) or f"{native_id}",
        severity=severity,
        severity_raw=severity_raw,
        status=status,
        status_raw=status_raw,
        created_at=created_at or changed_at,
        updated_at=changed_at,
        link=_link(raw, fields, native_id, tenant, values),
        extra={k: v for k, v in extra.items() if holds_something(v) and _shaped(k, v)},
    )


def choose(choice: Choice, raw: Any) -> tuple[str, str | None]:
    """(the value, what the vendor said): the exact map first, then the numeric ranges."""
    found = choice.path.search(raw)
    if found is None:
        return choice.default, None
    said = str(found).lower() if isinstance(found, bool) else str(found)
    if said in choice.map:
        return choice.map[said], said
    if isinstance(found, (int, float)) and not isinstance(found, bool):
        for low, high, value in choice.ranges:
            if low <= found <= high:
                return value, said
    return choice.default, said


def to_time(value: Any, where: str) -> datetime:
    """A vendor time: RFC 3339 text, or epoch seconds/milliseconds (number or digits)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ms = value if value >= EPOCH_MS_FROM else value * 1000
        return from_epoch_ms(int(ms))
    if isinstance(value, str) and value.strip():
        try:
            return parse_time(value)
        except ValueError:
            pass
        try:  # "2020-04-17 20:29:30 UTC+0000", as some consoles write
            return datetime.strptime(value.replace("UTC", ""), "%Y-%m-%d %H:%M:%S %z"
                                     ).astimezone(UTC)
        except ValueError:
            pass
    raise MalformedAlert(f"{where} {value!r} is not a time")


def version_view(raw: Any, ignores: tuple[str, ...]) -> Any:
    """raw without the fields whose change alone is not a new version (dotted paths)."""
    if not ignores or not isinstance(raw, dict):
        return raw
    view = copy.copy(raw)
    for dotted in ignores:
        node, *rest = dotted.split(".")
        parent = view
        for step in rest:
            child = parent.get(node)
            if not isinstance(child, dict):
                break
            parent[node] = parent = dict(child)
            node = step
        else:
            parent.pop(node, None)
    return view


def _link(raw: Any, fields: Fields, native_id: str, tenant: str,
          values: Mapping[str, Any]) -> str | None:
    if fields.link is not None:
        return _text(fields.link.search(raw))
    if fields.link_template:
        try:
            return str(render(fields.link_template, {**values, "id": native_id,
                                                      "tenant": tenant}))
        except Missing:
            return None
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return value if isinstance(value, str) and value else None


def _shaped(name: str, value: Any) -> bool:
    """Whether a mapped common field has the record's shape (a path to the wrong place is
    left out rather than failing the schema). Loops, not all() over generators: this runs
    for every mapped field of every alert."""
    if name in ("category", "type", "description"):
        return isinstance(value, str)
    if name == "severity_derived":
        return value is True
    if name == "related":
        if not isinstance(value, dict):
            return False
        for items in value.values():
            if not isinstance(items, list):
                return False
            for item in items:
                if not isinstance(item, str):
                    return False
        return True
    if not isinstance(value, list):
        return False
    for item in value:  # noqa: SIM110 (a loop: see above)
        if not isinstance(item, dict):
            return False
    return True


def _related(value: Any) -> Any:
    """related's lists without the nulls and repeats a path over absent fields gives."""
    if not isinstance(value, dict):
        return value
    return compact({key: unique_strings(items) if isinstance(items, list) else items
                    for key, items in value.items()})
