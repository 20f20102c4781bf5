"""A fake of a Thinkst Canary console's incidents feed, on 127.0.0.1.

GET /api/v1/incidents/all with `auth_token` in the query (401 {"result": "error",
"message"} otherwise): `incidents_since` (incidents whose updated_id is greater),
`limit` (starts cursor paging), `cursor`; answers {"cursor": {"next", "next_link",
"prev", "prev_link"}, "feed", "incidents", "max_updated_id" (only when there are
incidents), "result": "success", "updated_timestamp"}. A cursor carries its query: it is
sent alone, as `next_link` shows (which, as the real console's, includes the auth_token).
Acknowledging an incident gives it a new updated_id, so it is listed again.
"""

from __future__ import annotations

import operator
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from alertpull.timeutil import to_epoch_ms, utcnow

from .generated import Generated
from .http_fake import FakeServer, Request, Response
from .tokens import BadToken, bind, peek

INCIDENTS_PATH = "/api/v1/incidents/all"
KINDS = (("SSH Login Attempt", "4002", "22"), ("Host Port Scan", "5003", ""),
         ("Canarytoken triggered", "17000", ""), ("Canary Disconnected", "1004", ""))


class CanaryFake(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.auth_token = secrets.token_hex(16)
        self.incidents: list[dict[str, Any]] | Generated[dict[str, Any]] = []
        self.page_cap = 10_000  # lower it to page a few incidents whatever `limit` asks
        self._updated_id = 0

    def add(self, n: int, when: datetime, kind: int = 0) -> dict[str, Any]:
        """A new incident on the console."""
        incident = self.make(n, when, kind)
        self.incidents.append(incident)
        return incident

    def make(self, n: int, when: datetime, kind: int = 0) -> dict[str, Any]:
        """Incident n (its updated_id the console's next), not yet listed."""
        summary, logtype, port = KINDS[kind % len(KINDS)]
        stamp = str(to_epoch_ms(when) // 1000)
        incident = {
            "id": f"incident:{summary.lower().replace(' ', '')}:{n:024x}:10.0.3.{n % 250}:"
                  f"{stamp}",
            "hash_id": f"{n:032x}", "summary": summary,
            "description": {"acknowledged": "False", "created": stamp,
                            "description": summary, "dst_host": "10.0.0.5", "dst_port": port,
                            "events": [{"timestamp": int(stamp)}], "events_count": "1",
                            "logtype": logtype, "name": f"bird-{n % 3}",
                            "node_id": f"0000000{n % 3}cafe", "notified": "False",
                            "src_host": f"10.0.3.{n % 250}", "src_port": "51515"},
            "updated_time": stamp,
        }
        self._bump(incident)
        return incident

    def acknowledge(self, incident: dict[str, Any], when: datetime) -> None:
        incident["description"]["acknowledged"] = "True"
        incident["updated_time"] = str(to_epoch_ms(when) // 1000)
        self._bump(incident)

    def _bump(self, incident: dict[str, Any]) -> None:
        self._updated_id += 1
        incident["updated_id"] = self._updated_id

    def handle(self, request: Request) -> Response:
        if request.path != INCIDENTS_PATH or request.method != "GET":
            return Response.json({"result": "error", "message": "Not found"}, 404)
        params = {k: v[-1] for k, v in request.query.items()}
        if params.pop("auth_token", None) != self.auth_token:
            return Response.json({"result": "error", "message": "Invalid auth_token"}, 401)
        try:
            if "cursor" in params:
                offset, params = peek(params["cursor"])
            else:
                offset = 0
            return Response.json(self._page(params, offset))
        except (BadToken, ValueError):
            return Response.json({"result": "error", "message": "Invalid parameters"}, 400)

    def _since(self, since: int) -> Sequence[dict[str, Any]]:
        """The incidents changed after `since`, in change order. Generated incidents in that
        order (the bench's) are found by bisection; a list is filtered and sorted."""
        incidents = self.incidents
        if isinstance(incidents, Generated) and incidents.sorted_by == "updated_id":
            return incidents.where(lambda i: i["updated_id"], operator.gt, since)
        return sorted((i for i in incidents if i["updated_id"] > since),
                      key=lambda i: i["updated_id"])

    def _page(self, params: dict[str, Any], offset: int) -> dict[str, Any]:
        since = int(params.get("incidents_since") or 0)
        found = self._since(since)
        limit = min(int(params["limit"]) if params.get("limit") else len(found) or 1,
                    self.page_cap)
        page = list(found[offset:offset + limit])
        next_token = bind(offset + limit, params) if offset + limit < len(found) else None
        link = (f"{self.url}{INCIDENTS_PATH}?"
                f"{urlencode({'cursor': next_token, 'auth_token': self.auth_token})}"
                if next_token else None)
        answer: dict[str, Any] = {
            "cursor": {"next": next_token, "next_link": link, "prev": None, "prev_link": None},
            "feed": "All Incidents", "incidents": page, "page_count": len(page),
            "result": "success", "updated_timestamp": int(time.time())}
        if found:
            answer["max_updated_id"] = found[-1]["updated_id"]
        return answer


def demo_replay() -> tuple[CanaryFake, Callable[[str], dict[str, str]], dict[str, Any]]:
    fake = CanaryFake()
    start = utcnow() - timedelta(hours=12)
    for n in range(30):
        fake.add(n, start + timedelta(minutes=23 * n), kind=n)
    for incident in fake.incidents[:5]:
        fake.acknowledge(incident, utcnow() - timedelta(hours=1))

    def env_for(url: str) -> dict[str, str]:
        return {"CANARY_DEMO_URL": url, "CANARY_DEMO_TOKEN": fake.auth_token}

    return fake, env_for, {"type": "thinkst_canary", "base_url": "${CANARY_DEMO_URL}",
                           "auth_token": "${CANARY_DEMO_TOKEN}"}
