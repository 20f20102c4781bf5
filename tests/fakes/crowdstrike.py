"""A fake of CrowdStrike Falcon's OAuth2 token and combined Alerts API, on 127.0.0.1.

- POST /oauth2/token (form client_id, client_secret, optional member_cid): 201
  {"access_token", "token_type": "bearer", "expires_in"}; wrong credentials 403.
- POST /alerts/combined/alerts/v1 with a bearer token, JSON {filter, sort, limit (<= 1000),
  after}: FQL range terms on a time field joined by `+` (`updated_timestamp:>='T'`,
  `:<'T'`, `:>`, `:<=`), sort `field|asc|desc`; answers {"meta": {"pagination": {"total",
  "limit", "after"}}, "resources", "errors": []}. `after` is bound to the filter and sort
  (400 otherwise) and absent on the last page. A missing, expired or unknown token: 401.
Errors carry {"errors": [{"code", "message"}]}, as the Falcon API's do; every answer has
the X-RateLimit-Limit/Remaining headers.
"""

from __future__ import annotations

import operator
import re
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from alertpull.timeutil import format_time, parse_time, utcnow

from .generated import Generated
from .http_fake import FakeServer, Request, Response
from .tokens import BadToken, bind, unbind

TOKEN_PATH = "/oauth2/token"
ALERTS_PATH = "/alerts/combined/alerts/v1"
CID = "9f1c2ad8e4b54fd1a0c2e3b4d5f60718"
_TERM = re.compile(r"^(\w+):(>=|<=|>|<)'([^']+)'$")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def _error(status: int, message: str) -> Response:
    return Response.json({"meta": {"powered_by": "fake"}, "resources": [],
                          "errors": [{"code": status, "message": message}]}, status)


class CrowdStrikeFake(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.client_id = secrets.token_hex(16)
        self.client_secret = secrets.token_hex(20)
        self.alerts: list[dict[str, Any]] | Generated[dict[str, Any]] = []
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.lifetime = 1799
        self.member_cids: list[str] = []  # member_cid values the token calls carried
        self.page_cap = 1000  # Falcon's maximum `limit`; lower it to page a few alerts

    def expire_tokens(self) -> None:
        self.tokens = dict.fromkeys(self.tokens, 0.0)

    def handle(self, request: Request) -> Response:
        if request.path == TOKEN_PATH and request.method == "POST":
            return self._token(request.form())
        if request.path != ALERTS_PATH or request.method != "POST":
            return _error(404, "Not Found")
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.tokens.get(token, 0.0) < time.monotonic():
            return _error(401, "access denied, invalid bearer token")
        try:
            return Response.json(self._alerts(request.json()),
                                 headers={"X-RateLimit-Limit": "6000",
                                          "X-RateLimit-Remaining": "5999"})
        except ValueError as bad:
            return _error(400, str(bad))

    def _token(self, form: dict[str, str]) -> Response:
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id,
                                                                 self.client_secret):
            return _error(403, "Failed to issue access token - Not Authorized")
        if form.get("member_cid"):
            self.member_cids.append(form["member_cid"])
        token = secrets.token_urlsafe(32)
        self.tokens[token] = time.monotonic() + self.lifetime
        return Response.json({"access_token": token, "token_type": "bearer",
                              "expires_in": self.lifetime}, 201)

    def _alerts(self, body: dict[str, Any]) -> dict[str, Any]:
        limit = int(body.get("limit") or 100)
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        found = self._listed(_terms(str(body.get("filter") or "")),
                             str(body.get("sort") or "created_timestamp|desc"))
        limit = min(limit, self.page_cap)
        query = {"filter": body.get("filter"), "sort": body.get("sort")}
        try:
            offset = unbind(body["after"], query) if body.get("after") else 0
        except BadToken:
            raise ValueError("invalid after token") from None
        page = list(found[offset:offset + limit])
        pagination: dict[str, Any] = {"total": len(found), "limit": limit}
        if offset + len(page) < len(found):
            pagination["after"] = bind(offset + len(page), query)
        return {"meta": {"query_time": 0.01, "pagination": pagination, "powered_by": "fake",
                         "trace_id": secrets.token_hex(8)},
                "resources": page, "errors": []}

    def _listed(self, terms: list[Term], sort: str) -> Sequence[dict[str, Any]]:
        """The alerts a query lists, in its order. Generated alerts filtered on the time
        they are sorted by alone, ascending (the bench's), are a window found by bisection;
        a list is filtered and sorted."""
        field, _, direction = sort.partition("|")
        alerts = self.alerts
        if isinstance(alerts, Generated) and alerts.sorted_by == field and \
                direction == "asc" and all(name == field for name, _, _ in terms):
            for _, compare, bound in terms:
                alerts = alerts.where(lambda a: parse_time(a[field]), compare, bound)
            return alerts
        found = [a for a in alerts
                 if all(compare(parse_time(a[name]), bound) for name, compare, bound in terms)]
        found.sort(key=lambda a: (parse_time(a[field]), str(a["composite_id"])),
                   reverse=direction == "desc")
        return found


Term = tuple[str, Callable[[Any, Any], bool], datetime]  # field, comparison, bound


def _terms(fql: str) -> list[Term]:
    terms = []
    for term in filter(None, fql.split("+")):
        match = _TERM.match(term)
        if match is None:
            raise ValueError(f"invalid filter term {term!r}")
        field, op, value = match.groups()
        terms.append((field, _OPS[op], parse_time(value)))
    return terms


def make_alert(n: int, updated: datetime, *, severity: int = 50, status: str = "new",
               cid: str = CID) -> dict[str, Any]:
    """An alert as Falcon's combined call returns it (an endpoint detection)."""
    created = updated - timedelta(minutes=5)
    aggregate = f"aggind:{n:032x}"
    stamp = format_time(updated).replace("Z", "456789Z")  # Falcon writes nanoseconds
    return {
        "composite_id": f"{cid}:ind:{n:032x}:{1000 + n}-10-{2000 + n}",
        "id": f"ind:{n:032x}:{1000 + n}-10-{2000 + n}", "aggregate_id": aggregate, "cid": cid,
        "created_timestamp": format_time(created), "updated_timestamp": stamp,
        "timestamp": format_time(created), "severity": severity,
        "severity_name": _band(severity), "status": status, "product": "epp", "type": "ldt",
        "name": "CredentialDumping", "display_name": f"CredentialDumping on host-{n}",
        "description": "A process accessed credentials in LSASS memory.",
        "tactic": "Credential Access", "technique": "OS Credential Dumping",
        "user_name": f"user{n}", "user_id": f"S-1-5-21-{n}",
        "sha256": f"{n:064x}", "md5": f"{n:032x}",
        "falcon_host_link": f"https://falcon.crowdstrike.com/activity-v2/detections/{cid}:ind:"
                            f"{n:032x}",
        "device": {"device_id": f"{n:032x}", "hostname": f"host-{n}",
                   "platform_name": "Windows", "local_ip": f"10.0.0.{n % 250 + 1}",
                   "external_ip": "198.51.100.7"},
    }


def touch(alert: dict[str, Any], when: datetime) -> None:
    """What Falcon does now and then: updated_timestamp moves, nothing else changes."""
    alert["updated_timestamp"] = format_time(when)


def _band(severity: int) -> str:
    for top, name in ((19, "Informational"), (39, "Low"), (59, "Medium"), (79, "High")):
        if severity <= top:
            return name
    return "Critical"


def demo_replay() -> tuple[CrowdStrikeFake, Callable[[str], dict[str, str]], dict[str, Any]]:
    fake = CrowdStrikeFake()
    start = utcnow() - timedelta(hours=12)
    fake.alerts.extend(make_alert(n, start + timedelta(minutes=11 * n), severity=10 + n % 90)
                       for n in range(60))

    def env_for(url: str) -> dict[str, str]:
        return {"CS_DEMO_URL": url, "CS_DEMO_ID": fake.client_id,
                "CS_DEMO_SECRET": fake.client_secret}

    return fake, env_for, {"type": "crowdstrike", "base_url": "${CS_DEMO_URL}",
                           "client_id": "${CS_DEMO_ID}", "client_secret": "${CS_DEMO_SECRET}"}
