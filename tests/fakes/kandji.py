"""A fake of the Kandji API's three alert-like list endpoints, on 127.0.0.1.

- GET /api/v1/audit/events: `limit` (required, at most 500), `sort_by` (required:
  occurred_at, -occurred_at, id, -id), `start_date`/`end_date` (inclusive, datetime or
  date), `cursor`; answers {"results", "next", "previous"} where `next` is a full URL
  carrying `cursor=`. A cursor encodes the position AND the query that made it: sent with
  another window or order it is refused (400), as a page token bound to its query is.
- GET /api/v1/behavioral-detections: `limit` (at most 1000), `offset`, `sort_by`,
  `detection_date_from`/`detection_date_to` (inclusive); answers {"total_count", "next",
  "previous", "malicious_count", "suspicious_count", "results"}.
- GET /api/v1/threat-details: `limit` (at most 1000), `offset`, `sort_by`, `date_range`
  (whole days back from the fake's clock, `now`); answers {"count", "next", "previous",
  "malware_count", "pup_count", "results"}.

Auth is `Authorization: Bearer <token>`: anything else gets 401 {"detail": ...}; a stream
missing from `permissions` gets 403 {"detail": ...}, as Django REST framework (which
Kandji's API is built on) answers. `next_base` replaces scheme://host of `next` links, as
Kandji writes its public host there whatever host a proxy or test reached it by.
"""

from __future__ import annotations

import base64
import json
import operator
import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from alertpull.timeutil import parse_time, utcnow

from .generated import Generated
from .http_fake import FakeServer, Request, Response
from .kandji_data import (
    Obj,
    make_audit_events,
    make_behavioral_detections,
    make_threat_details,
    release,
)

AUDIT_PATH = "/api/v1/audit/events"
DETECTIONS_PATH = "/api/v1/behavioral-detections"
THREATS_PATH = "/api/v1/threat-details"
PATHS = {AUDIT_PATH: "audit_events", DETECTIONS_PATH: "behavioral_detections",
         THREATS_PATH: "threat_details"}
INVALID_TOKEN = {"detail": "Invalid token."}
NO_PERMISSION = {"detail": "You do not have permission to perform this action."}


class BadRequest(Exception):
    def __init__(self, payload: Obj) -> None:
        super().__init__(payload)
        self.payload = payload


class KandjiFake(FakeServer):
    """One Kandji tenant. Tests edit the three lists in place (see kandji_data.release);
    the bench sets `audit_events` to a Generated sequence sorted by occurred_at."""

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token or secrets.token_hex(32)
        self.permissions = set(PATHS.values())
        self.audit_events: list[Obj] | Generated[Obj] = []
        self.behavioral_detections: list[Obj] = []
        self.threat_details: list[Obj] = []
        self.now: Callable[[], datetime] = utcnow
        self.next_base: str | None = None

    def handle(self, request: Request) -> Response:
        stream = PATHS.get(request.path)
        if request.method != "GET" or stream is None:
            return Response.json({"detail": "Not found."}, 404)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Response.json(INVALID_TOKEN, 401)
        if stream not in self.permissions:
            return Response.json(NO_PERMISSION, 403)
        params = {name: values[-1] for name, values in request.query.items()}
        try:
            if request.path == AUDIT_PATH:
                return Response.json(self._audit(params))
            if request.path == DETECTIONS_PATH:
                return Response.json(self._detections(params))
            return Response.json(self._threats(params))
        except BadRequest as bad:
            return Response.json(bad.payload, 400)

    def calls(self, path: str) -> list[dict[str, str]]:
        """The query of every call made to `path`, in order."""
        return [{k: v[-1] for k, v in r.query.items()} for r in self.requests if r.path == path]

    def _link(self, path: str, params: Obj) -> str:
        return f"{self.next_base or self.url}{path}?{urlencode(params)}"

    # -- audit events ----------------------------------------------------------------------

    def _audit(self, params: dict[str, str]) -> Obj:
        limit = _int(params, "limit", required=True, maximum=500)
        order = params.get("sort_by")
        if order not in ("occurred_at", "-occurred_at", "id", "-id"):
            raise BadRequest({"sort_by": [f'"{order}" is not a valid choice.']})
        query = {k: params.get(k) for k in ("limit", "sort_by", "start_date", "end_date")}
        start = _bound(params, "start_date", end=False)
        end = _bound(params, "end_date", end=True)
        events = self._audit_window(order, start, end)
        offset = _decode_cursor(params.get("cursor"), query)
        page = list(events[offset : offset + limit])
        more = offset + len(page) < len(events)
        next_params = {k: v for k, v in query.items() if v is not None}
        cursor = _encode_cursor(offset + len(page), query)
        return {"results": page, "previous": None,
                "next": self._link(AUDIT_PATH, {**next_params, "cursor": cursor}) if more else None}

    def _audit_window(self, order: str, start: datetime | None,
                      end: datetime | None) -> Sequence[Obj]:
        """The events in [start, end], in `order`. Generated events asked for oldest first
        are a sub-range found by bisection; a list is scanned and sorted."""
        events = self.audit_events
        if isinstance(events, Generated) and events.sorted_by == "occurred_at" and \
                order == "occurred_at":
            def when(event: Obj) -> datetime:
                return _when(event, "occurred_at")
            if start is not None:
                events = events.where(when, operator.ge, start)
            return events if end is None else events.where(when, operator.le, end)
        found = _between(events, "occurred_at", start, end)
        field = order.lstrip("-")
        found.sort(key=lambda e: (_when(e, field) if field == "occurred_at" else e["id"],
                                  e["id"]), reverse=order.startswith("-"))
        return found

    # -- behavioral detections ---------------------------------------------------------------

    def _detections(self, params: dict[str, str]) -> Obj:
        start = _bound(params, "detection_date_from", end=False)
        end = _bound(params, "detection_date_to", end=True)
        found = _between(self.behavioral_detections, "detection_date", start, end)
        page, links = self._offset_page(DETECTIONS_PATH, params, _sorted(found, params))
        return {"total_count": len(found), **links,
                "malicious_count": sum(d["classification"] == "malicious" for d in found),
                "suspicious_count": sum(d["classification"] == "suspicious" for d in found),
                "results": page}

    # -- threat details ------------------------------------------------------------------------

    def _threats(self, params: dict[str, str]) -> Obj:
        found = self.threat_details
        if "date_range" in params:
            since = self.now() - timedelta(days=_int(params, "date_range", required=True))
            found = _between(found, "detection_date", since, None)
        page, links = self._offset_page(THREATS_PATH, params, _sorted(found, params))
        return {"count": len(found), **links,
                "malware_count": sum(t["classification"] == "MALWARE" for t in found),
                "pup_count": sum(t["classification"] == "PUP" for t in found),
                "results": page}

    def _offset_page(self, path: str, params: dict[str, str],
                     items: list[Obj]) -> tuple[list[Obj], Obj]:
        limit = _int(params, "limit", maximum=1000) or 300
        offset = _int(params, "offset") or 0
        page = items[offset : offset + limit]
        more = offset + len(page) < len(items)
        following = self._link(path, {**params, "offset": offset + limit}) if more else None
        before = {**params, "offset": max(0, offset - limit)}
        previous = self._link(path, before) if offset else None
        return page, {"next": following, "previous": previous}


def _int(params: dict[str, str], name: str, *, required: bool = False,
         maximum: int | None = None) -> int | None:
    value = params.get(name)
    if value is None:
        if required:
            raise BadRequest({name: ["This field is required."]})
        return None
    if not value.isdigit():
        raise BadRequest({name: ["A valid integer is required."]})
    if maximum is not None and int(value) > maximum:
        raise BadRequest({name: [f"Ensure this value is less than or equal to {maximum}."]})
    return int(value)


def _bound(params: dict[str, str], name: str, *, end: bool) -> datetime | None:
    """A datetime, or a date (its whole day when it is an end bound)."""
    value = params.get(name)
    if value is None:
        return None
    try:
        moment = parse_time(value)
    except ValueError:
        raise BadRequest({name: ["Enter a valid date/time."]}) from None
    if len(value) == 10 and end:
        moment += timedelta(days=1) - timedelta(microseconds=1)
    return moment


def _when(item: Obj, field: str) -> datetime:
    """The item's time; a broken one (a test's malformed object) sorts first."""
    try:
        return parse_time(item[field])
    except (KeyError, TypeError, ValueError):
        return datetime.min.replace(tzinfo=UTC)


def _between(items: Iterable[Obj], field: str, start: datetime | None,
             end: datetime | None) -> list[Obj]:
    """Items whose `field` is in [start, end] (inclusive); one whose time is broken is kept,
    so that a test's malformed object reaches the client as it would from a real list."""
    kept = []
    for item in items:
        moment = _when(item, field)
        broken = moment == datetime.min.replace(tzinfo=UTC)
        if broken or ((start is None or moment >= start) and (end is None or moment <= end)):
            kept.append(item)
    return kept


def _sorted(items: list[Obj], params: dict[str, str]) -> list[Obj]:
    order = params.get("sort_by")
    if order is None:
        return list(items)
    field = order.lstrip("-")
    if field == "detection_date":
        return sorted(items, key=lambda i: _when(i, field), reverse=order.startswith("-"))
    if field not in ("threat_id", "classification", "device_name", "status", "threat_name"):
        raise BadRequest({"sort_by": [f'"{order}" is not a valid choice.']})
    return sorted(items, key=lambda i: str(i.get(field)), reverse=order.startswith("-"))


def _encode_cursor(position: int, query: Obj) -> str:
    return base64.urlsafe_b64encode(json.dumps([position, query]).encode()).decode()


def _decode_cursor(cursor: str | None, query: Obj) -> int:
    if not cursor:
        return 0
    try:
        position, bound_to = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        raise BadRequest({"detail": "Invalid cursor"}) from None
    if bound_to != query:
        raise BadRequest({"detail": "Invalid cursor"})
    return int(position)


# -- make demo --------------------------------------------------------------------------------


def demo_replay() -> tuple[KandjiFake, Callable[[str], dict[str, str]], dict[str, Any]]:
    """An unstarted fake with objects relative to now, the env for the CLI, the YAML block.

    Call the second item with the started fake's url for the env vars the block refers to.
    """
    fake = KandjiFake()
    now = utcnow()
    start = now - timedelta(hours=12)
    fake.audit_events.extend(make_audit_events(90, base_time=start, step=timedelta(minutes=8)))
    fake.behavioral_detections.extend(
        make_behavioral_detections(30, base_time=start, step=timedelta(minutes=23)))
    # Threat details of the last five days; two of them released by an admin this morning.
    threats = make_threat_details(24, base_time=now - timedelta(days=5),
                                  step=timedelta(hours=5))
    for n, detail in enumerate(threats[:2]):
        release(detail, now - timedelta(hours=3 - n))
    fake.threat_details.extend(threats)

    def env_for(url: str) -> dict[str, str]:
        return {"KANDJI_DEMO_URL": url, "KANDJI_DEMO_TOKEN": fake.token}

    source = {
        "type": "kandji",
        "base_url": "${KANDJI_DEMO_URL}",
        "api_token": "${KANDJI_DEMO_TOKEN}",
        "streams": ["audit_events", "behavioral_detections", "threat_details"],
    }
    return fake, env_for, source
