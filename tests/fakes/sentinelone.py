"""A fake of SentinelOne's Management API v2.1 threats list, on 127.0.0.1.

GET /web/api/v2.1/threats with `Authorization: ApiToken <token>`: filters
`updatedAt__gte`/`updatedAt__lt` (and `createdAt__*`), `accountIds`/`siteIds`
(comma-separated), `sortBy`/`sortOrder`, `limit` (1-1000), `cursor`; answers {"data",
"pagination": {"nextCursor", "totalItems"}}. The cursor is bound to the query that made it
(400 otherwise). Errors carry {"errors": [{"code", "detail", "title"}]}: 401 for a bad
token, 400 for a bad parameter.
"""

from __future__ import annotations

import operator
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from alertpull.timeutil import format_time, parse_time, utcnow

from .generated import Generated
from .http_fake import FakeServer, Request, Response
from .tokens import BadToken, bind, unbind

THREATS_PATH = "/web/api/v2.1/threats"
ACCOUNT = "1234567890123456789"
SITE = "9876543210987654321"


def _error(status: int, code: int, title: str, detail: str | None = None) -> Response:
    return Response.json({"errors": [{"code": code, "detail": detail, "title": title}]}, status)


class SentinelOneFake(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.token = secrets.token_hex(40)
        self.threats: list[dict[str, Any]] | Generated[dict[str, Any]] = []
        self.page_cap = 1000  # the API's maximum `limit`; lower it to page a few threats

    def handle(self, request: Request) -> Response:
        if request.path != THREATS_PATH or request.method != "GET":
            return _error(404, 4040010, "Not Found")
        if request.headers.get("authorization") != f"ApiToken {self.token}":
            return _error(401, 4010010, "Authentication Failed")
        params = {k: v[-1] for k, v in request.query.items()}
        try:
            return Response.json(self._threats(params))
        except ValueError as bad:
            return _error(400, 4000010, "Validation Error", str(bad))

    def calls(self) -> list[dict[str, str]]:
        return [{k: v[-1] for k, v in r.query.items()} for r in self.requests
                if r.path == THREATS_PATH]

    def _threats(self, params: dict[str, str]) -> dict[str, Any]:
        limit = int(params.get("limit", "10"))
        if not 1 <= limit <= 1000:
            raise ValueError("limit: must be between 1 and 1000")
        field = {"updatedAt": "updatedAt", "createdAt": "createdAt"}.get(
            params.get("sortBy", "createdAt"))
        if field is None:
            raise ValueError(f"sortBy: {params['sortBy']} is not a valid choice")
        found = self._listed(params, field)
        limit = min(limit, self.page_cap)
        query = {k: v for k, v in params.items() if k != "cursor"}
        try:
            offset = unbind(params["cursor"], query) if params.get("cursor") else 0
        except BadToken:
            raise ValueError("cursor: invalid cursor") from None
        page = list(found[offset:offset + limit])
        more = offset + len(page) < len(found)
        return {"data": page, "pagination": {
            "nextCursor": bind(offset + len(page), query) if more else None,
            "totalItems": len(found)}}

    def _listed(self, params: dict[str, str], field: str) -> Sequence[dict[str, Any]]:
        """The threats a query lists, in its order. Generated threats filtered on the time
        they are sorted by alone, ascending (the bench's), are a window found by bisection;
        a list is filtered and sorted."""
        threats = self.threats
        bounds = {f"{field}__gte": operator.ge, f"{field}__lt": operator.lt}
        if isinstance(threats, Generated) and threats.sorted_by == f"threatInfo.{field}" \
                and params.get("sortOrder") != "desc" \
                and set(params) <= {*bounds, "sortBy", "sortOrder", "limit", "cursor"}:
            for name, compare in bounds.items():
                if name in params:
                    threats = threats.where(lambda t: _when(t["threatInfo"][field]), compare,
                                            parse_time(params[name]))
            return threats
        found = [t for t in threats if _matches(t, params)]
        found.sort(key=lambda t: (_when(t["threatInfo"][field]), str(t["id"])),
                   reverse=params.get("sortOrder") == "desc")
        return found


def _matches(threat: dict[str, Any], params: dict[str, str]) -> bool:
    info = threat["threatInfo"]
    for field in ("updatedAt", "createdAt"):
        moment = _when(info[field])
        if moment == datetime.min.replace(tzinfo=UTC):
            continue  # a test's malformed threat reaches the client as a real list would
        if f"{field}__gte" in params and moment < parse_time(params[f"{field}__gte"]):
            return False
        if f"{field}__lt" in params and moment >= parse_time(params[f"{field}__lt"]):
            return False
    realtime = threat["agentRealtimeInfo"]
    for param, key in (("accountIds", "accountId"), ("siteIds", "siteId")):
        if param in params and realtime[key] not in params[param].split(","):
            return False
    return True


def _when(value: Any) -> datetime:
    try:
        return parse_time(value)
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=UTC)


def make_threat(n: int, updated: datetime, *, confidence: str = "malicious",
                status: str = "unresolved", verdict: str = "undefined",
                account: str = ACCOUNT, site: str = SITE) -> dict[str, Any]:
    created = updated - timedelta(minutes=3)
    return {
        "id": str(1700000000000000000 + n),
        "agentDetectionInfo": {"accountId": account, "siteId": site,
                               "agentIpV4": f"10.1.0.{n % 250 + 1}"},
        "agentRealtimeInfo": {"accountId": account, "accountName": "Acme", "siteId": site,
                              "siteName": "HQ", "agentId": str(1600000000000000000 + n),
                              "agentComputerName": f"laptop-{n}", "agentOsType": "windows"},
        "threatInfo": {
            "threatId": str(1700000000000000000 + n), "threatName": f"invoice-{n}.exe",
            "classification": "Trojan", "confidenceLevel": confidence,
            "incidentStatus": status, "analystVerdict": verdict,
            "mitigationStatus": "not_mitigated", "detectionType": "static",
            "filePath": f"\\Device\\HarddiskVolume3\\Users\\u{n}\\Downloads\\invoice-{n}.exe",
            "sha1": f"{n:040x}", "sha256": None, "md5": None, "processUser": f"ACME\\u{n}",
            "createdAt": format_time(created).replace("Z", "456Z"),
            "updatedAt": format_time(updated).replace("Z", "456Z"),
        },
        "mitigationStatus": [], "indicators": [],
    }


def demo_replay() -> tuple[SentinelOneFake, Callable[[str], dict[str, str]], dict[str, Any]]:
    fake = SentinelOneFake()
    start = utcnow() - timedelta(hours=12)
    fake.threats.extend(make_threat(n, start + timedelta(minutes=17 * n),
                                    confidence=("malicious", "suspicious")[n % 2])
                        for n in range(40))

    def env_for(url: str) -> dict[str, str]:
        return {"S1_DEMO_URL": url, "S1_DEMO_TOKEN": fake.token}

    return fake, env_for, {"type": "sentinelone", "base_url": "${S1_DEMO_URL}",
                           "api_token": "${S1_DEMO_TOKEN}"}
