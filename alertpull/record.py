"""The normalized alert record: what a connector provides and what the engine adds.

A connector turns one vendor object into a `Normalized` value. The engine adds the
identity (`dedup_key`, `id`), the content hash (`raw_sha256`) and the provenance
(`source`, `pulled_at`), producing one JSON line per alert version.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import orjson

from alertpull.timeutil import format_time

SCHEMA_VERSION = "1.0"

# OCSF severity_id values.
SEVERITY_IDS = {
    "unknown": 0,
    "informational": 1,
    "low": 2,
    "medium": 3,
    "high": 4,
    "critical": 5,
}
STATUSES = ("new", "in_progress", "suppressed", "resolved", "archived", "deleted", "unknown")
_STATUSES = frozenset(STATUSES)

# Fixed namespace so `id` is the same UUID on every host and every run.
ID_NAMESPACE = uuid.UUID("6f0c7d1e-3a8b-5c2f-9e4d-a1b2c3d4e5f6")
_ID_NAMESPACE_BYTES = ID_NAMESPACE.bytes

OPTIONAL_FIELDS = (
    "description",
    "category",
    "type",
    "region",
    "product",
    "first_seen_at",
    "last_seen_at",
    "resolved_at",
    "count",
    "mitre",
    "assignee",
    "resources",
    "users",
    "devices",
    "related",
    "severity_derived",
    "normalize_error",
)
_OPTIONAL = frozenset(OPTIONAL_FIELDS)
_Object = TypeVar("_Object", bound=Mapping[str, Any])


@dataclass(slots=True)  # slots: one is built for every alert, and read field by field
class Normalized:
    """One vendor alert mapped onto the common shape. Built by a connector."""

    native_id: str
    tenant: str
    changed_at: datetime  # the vendor's changed-at value that the incremental filter uses
    title: str
    severity: str
    severity_raw: str | None
    status: str
    status_raw: str | None
    created_at: datetime | None
    updated_at: datetime | None
    link: str | None
    extra: dict[str, Any] = field(default_factory=dict)  # any of OPTIONAL_FIELDS

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_IDS:
            raise ValueError(f"severity {self.severity!r} is not one of {sorted(SEVERITY_IDS)}")
        if self.status not in _STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")
        if not self.extra.keys() <= _OPTIONAL:
            raise ValueError(f"unknown record fields {sorted(self.extra.keys() - _OPTIONAL)}")


def dig(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]…, or None where a level is missing or is not an object.

    Vendor payloads are partial and change; normalizers read them through this."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def text(value: Any) -> str | None:
    """A vendor's non-empty string, or None for anything else (absent, empty, not text)."""
    return value if isinstance(value, str) and value else None


def is_ip_address(value: str) -> bool:
    """Whether a vendor's string is an IPv4 or IPv6 address."""
    # Strings through the cache; anything else (unhashable, maybe) asked uncached.
    return _parses_as_ip(value) if isinstance(value, str) else _parses_as_ip.__wrapped__(value)


@functools.lru_cache(maxsize=4096)  # ipaddress parses in Python; a tenant's IPs recur
def _parses_as_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_FALSY_SOMETHING = (bool, int, float)  # a 0 or false is something (see holds_something)


def holds_something(value: Any) -> bool:
    """Not None, an empty string, list or object; a 0 or false is something."""
    # Truth first: it settles nearly every value at once (this runs per field per alert).
    return bool(value) or isinstance(value, _FALSY_SOMETHING)


def compact(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The entries that hold something (see holds_something)."""
    # A loop, and holds_something(value) inlined: this runs for every entity of every
    # alert, and a comprehension builds a function each call (before Python 3.12).
    kept = {}
    for key, value in mapping.items():
        if value or isinstance(value, _FALSY_SOMETHING):
            kept[key] = value
    return kept


def unique_strings(values: Iterable[Any]) -> list[str]:
    """The non-empty strings among values, each once, in first-occurrence order."""
    found = []
    for value in values:  # a loop: see compact
        if isinstance(value, str) and value:
            found.append(value)
    return list(dict.fromkeys(found)) if len(found) > 1 else found


def unique_objects(objects: Iterable[_Object | None]) -> list[_Object]:
    """The non-empty objects, each once (equal content = the same), in first-occurrence order."""
    found = [obj for obj in objects if obj]
    if len(found) < 2:  # nothing to compare (the usual case): no JSON to write
        return found
    seen: dict[bytes, _Object] = {}
    for obj in found:
        seen.setdefault(canonical_json(obj), obj)
    return list(seen.values())


def parse_json(body: bytes | str) -> Any:
    """A vendor's JSON answer, or a state document (raises ValueError when not JSON).

    orjson, as it parses pages 2-3x faster than json. It reads integers up to 64 bits
    exactly (beyond that it gives a float): Graph's Edm.Int64, AWS's long and proto3 JSON
    (64-bit integers sent as strings) never exceed that, nor do Kandji's numbers (counts,
    process ids). What it refuses but JSON readers accept (NaN, Infinity) is read by json.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dump_json(value: Any, option: int = 0) -> bytes:
    """UTF-8 JSON, datetimes as RFC 3339; `option`: orjson's OPT_SORT_KEYS, OPT_INDENT_2.

    orjson (a run's hot path); json for what orjson refuses but JSON allows, e.g.
    integers beyond 64 bits."""
    try:
        return orjson.dumps(value, option=option, default=_json_default)
    except orjson.JSONEncodeError:
        indent = 2 if option & orjson.OPT_INDENT_2 else None
        return json.dumps(value, sort_keys=bool(option & orjson.OPT_SORT_KEYS), indent=indent,
                          separators=None if indent else (",", ":"), ensure_ascii=False,
                          default=_json_default).encode()


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8, datetimes as RFC 3339."""
    return dump_json(value, orjson.OPT_SORT_KEYS)


def canonical_and_sha256(raw: Any) -> tuple[bytes, str]:
    """raw's canonical JSON and its SHA-256 (the record's raw_sha256): a line carries both."""
    canonical = canonical_json(raw)
    return canonical, hashlib.sha256(canonical).hexdigest()


def raw_sha256(raw: Any) -> str:
    return canonical_and_sha256(raw)[1]


def json_line(record: Mapping[str, Any]) -> bytes:
    """One output line."""
    return dump_json(record)


def record_line(fields: Mapping[str, Any], raw_canonical: bytes, sha: str) -> bytes:
    """The line of a native record: `fields` (record_fields), then `raw` written as its
    canonical JSON, then `raw_sha256`. The vendor object is serialized once per alert,
    for the hash, not a second time for the line (most of a line's cost: the raw is most
    of its bytes), and the raw text of a line is exactly what its raw_sha256 digests."""
    return b"".join((dump_json(fields)[:-1], b',"raw":', raw_canonical,
                     b',"raw_sha256":"', sha.encode(), b'"}'))


def dedup_key(source: str, tenant: str, native_id: str) -> str:
    return f"{source}|{tenant}|{native_id}"


# The RFC 4122 variant bits over the hex digit that holds them: 10xx.
_VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 0x3] for digit in "0123456789abcdef"}


def record_id(key: str) -> str:
    """uuid.uuid5(ID_NAMESPACE, key) as a string, without building a UUID object: this runs
    once per alert, and the object's construction and str() cost more than the SHA-1. The
    version (5) and the variant are written into the digest's hex digits 12 and 16."""
    h = hashlib.sha1(_ID_NAMESPACE_BYTES + key.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:32]}"


def _time_or_none(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def build_record(
    source: str,
    source_type: str,
    alert: Normalized,
    raw: Any,
    sha: str,
    pulled_at: str,
) -> dict[str, Any]:
    """Assemble the output record. `raw` is kept verbatim (datetimes rendered as RFC 3339).

    `pulled_at` comes formatted (format_time): the caller stamps a whole page at once."""
    record = record_fields(source, source_type, alert, pulled_at)
    record["raw"] = raw
    record["raw_sha256"] = sha
    return record


def record_fields(source: str, source_type: str, alert: Normalized,
                  pulled_at: str) -> dict[str, Any]:
    """The record's fields before `raw` and `raw_sha256`, which close every record."""
    key = dedup_key(source, alert.tenant, alert.native_id)
    created, updated = alert.created_at, alert.updated_at
    # One moment is often the created, the updated and an optional time at once (the same
    # datetime): it is formatted once.
    created_at = format_time(created) if created is not None else None
    updated_at = created_at if updated is created else _time_or_none(updated)
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": record_id(key),
        "dedup_key": key,
        "source": source,
        "source_type": source_type,
        "tenant": alert.tenant,
        "native_id": alert.native_id,
        "title": alert.title,
        "severity": alert.severity,
        "severity_id": SEVERITY_IDS[alert.severity],
        "severity_raw": alert.severity_raw,
        "status": alert.status,
        "status_raw": alert.status_raw,
        "created_at": created_at,
        "updated_at": updated_at,
        "pulled_at": pulled_at,
        "link": alert.link,
    }
    for name, value in alert.extra.items():
        # holds_something(value), inlined: this runs for every optional field of every alert
        if value or isinstance(value, _FALSY_SOMETHING):
            if isinstance(value, datetime):
                value = (created_at if value is created else
                         updated_at if value is updated else format_time(value))
            record[name] = value
    return record
