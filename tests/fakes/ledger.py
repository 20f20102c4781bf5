"""A fake of "Ledger", a vendor that exists only for the engine's own tests, on 127.0.0.1.

Ledger keeps one list of alerts and serves it two ways, so the engine's two cursor kinds can
be proven against one wire fake without any real vendor's quirks:

- GET /v1/alerts?changed_since=T&changed_before=T&limit=N[&page_token=P]: the alerts whose
  `changed_at` lies in [changed_since, changed_before), in (changed_at, id) order; answers
  {"alerts": [...], "next_page_token": P or null}. A token is bound to its query: sent with
  another window it is refused (400), as AWS and Graph page tokens are.
- GET /v1/feed?after=S&limit=N: the alerts whose `seq` is greater than S, in `seq` order;
  answers {"alerts": [...], "max_seq": the last seq of the page (S when none)}. `seq` is
  the vendor's monotonic update id (as Thinkst Canary's `max_updated_id`): every change of an
  alert gives it a new, higher one (`stamp`).

Auth is `Authorization: Bearer <token>`, else 401; errors are {"error": {"code", "message"}}.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime, timedelta
from itertools import count
from typing import Any

from alertpull.timeutil import format_time, parse_time

from .http_fake import FakeServer, Request, Response

ALERTS_PATH = "/v1/alerts"
FEED_PATH = "/v1/feed"
MAX_LIMIT = 100

Alert = dict[str, Any]


def ledger_error(status: int, code: str, message: str) -> Response:
    return Response.json({"error": {"code": code, "message": message}}, status)


class LedgerFake(FakeServer):
    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token or secrets.token_hex(24)
        self.alerts: list[Alert] = []
        self.max_limit = MAX_LIMIT
        self._seq = count(1)

    def stamp(self, alert: Alert) -> Alert:
        """Give the alert the next update id: it is news on the feed."""
        alert["seq"] = next(self._seq)
        return alert

    def make(self, total: int, first: int, base_time: datetime, step: timedelta) -> list[Alert]:
        """Alerts first..first+total-1, the first changed at base_time, then every step."""
        return [self.stamp(make_alert(first + i, base_time + i * step)) for i in range(total)]

    def handle(self, request: Request) -> Response:
        if request.method != "GET" or request.path not in (ALERTS_PATH, FEED_PATH):
            return ledger_error(404, "NotFound", f"no route {request.method} {request.path}")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return ledger_error(401, "Unauthorized", "missing or invalid token")
        query = {key: values[-1] for key, values in request.query.items()}
        try:
            limit = min(int(query.get("limit", MAX_LIMIT)), self.max_limit)
            if request.path == FEED_PATH:
                return self._feed(int(query.get("after", 0)), limit)
            return self._window(query, limit)
        except (KeyError, ValueError) as exc:
            return ledger_error(400, "BadRequest", f"bad query: {exc}")

    def _feed(self, after: int, limit: int) -> Response:
        page = sorted((a for a in self.alerts if a["seq"] > after), key=lambda a: a["seq"])[:limit]
        return Response.json({"alerts": page, "max_seq": page[-1]["seq"] if page else after})

    def _window(self, query: dict[str, str], limit: int) -> Response:
        since, before = parse_time(query["changed_since"]), parse_time(query["changed_before"])
        bound = f"{query['changed_since']}|{query['changed_before']}"
        offset = 0
        if query.get("page_token"):
            token = json.loads(base64.urlsafe_b64decode(query["page_token"]))
            if token["query"] != bound:
                return ledger_error(400, "InvalidPageToken", "page token of another query")
            offset = token["offset"]
        matching = sorted((a for a in self.alerts
                           if since <= parse_time(a["changed_at"]) < before),
                          key=lambda a: (a["changed_at"], a["id"]))
        page = matching[offset:offset + limit]
        more = offset + limit < len(matching)
        next_token = base64.urlsafe_b64encode(json.dumps(
            {"query": bound, "offset": offset + limit}).encode()).decode() if more else None
        return Response.json({"alerts": page, "next_page_token": next_token})


def make_alert(index: int, changed_at: datetime) -> Alert:
    stamp = format_time(changed_at)
    return {
        "id": f"al-{index:05d}",
        "changed_at": stamp,
        "created_at": stamp,
        "title": f"Suspicious sign-in #{index}",
        "severity": ("low", "medium", "high", "critical")[index % 4],
        "state": "open",
        "description": f"Sign-in from an unusual place for user{index}@example.com",
        "source_ip": f"198.51.100.{index % 250 + 1}",
    }


def touch(alert: Alert, at: datetime, fake: LedgerFake) -> Alert:
    """An update of the alert: its state changes, its changed_at and seq move on."""
    alert["state"] = "acknowledged" if alert["state"] == "open" else "closed"
    alert["changed_at"] = format_time(at)
    return fake.stamp(alert)
