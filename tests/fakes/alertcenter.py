"""A fake of Google Workspace Alert Center v1beta1 and Google's token endpoint, on one port.

- POST /token: the OAuth 2.0 JWT-bearer grant (tests.fakes.google_sa.TokenEndpoint): the
  assertion must be signed by the service-account key, name the delegated admin in `sub`
  and ask for https://www.googleapis.com/auth/apps.alerts, for which delegation is granted.
- GET /v1beta1/alerts: alerts.list with `customerId`, `filter`, `orderBy`, `pageSize`,
  `pageToken`, answering {"alerts": [...], "nextPageToken": "..."} (empty lists omitted, as
  proto3 JSON does).

It is strict where the real service is strict and a client could slip: only the documented
filter fields (alertId, type, source, createTime, startTime, endTime; so no updateTime),
only the three documented orderBy values, a page token only continues the query that made
it, a customerId with its leading "C" is refused, a token without a delegated subject gets
Google's bare 400 "Request contains an invalid argument." (pitfall 22), and the server
returns at most `max_page_size` alerts whatever pageSize asks ("Server may return fewer
items than requested"). Alerts marked for deletion are listed with `deleted: true` unless
`list_deleted` is False (the docs do not say which; vendor-apis §9.5). Errors have Google's
shape {"error": {"code", "message", "status"}}. The bench's Generated alerts
(alertcenter_data.generated_alerts) are found by bisection on createTime: a page costs the
same at any size.
"""

from __future__ import annotations

import operator
import re
import secrets
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alertpull.timeutil import parse_time, utcnow

from .alertcenter_data import (
    CUSTOMER_ID,
    DOMAIN,
    Alert,
    make_alert,
    make_alerts,
    touch,
    unknown_alert,
)
from .generated import Generated
from .google_sa import ServiceAccountKey, TokenEndpoint, google_api_error, make_key
from .http_fake import FakeServer, Request, Response

SCOPE = "https://www.googleapis.com/auth/apps.alerts"
ADMIN = f"secops-admin@{DOMAIN}"
ALERTS_PATH = "/v1beta1/alerts"
TOKEN_PATH = "/token"
ORDER_KEYS = {
    "create_time asc": ("createTime", False),
    "create_time desc": ("createTime", True),
    "update_time desc": ("updateTime", True),
}
TIME_FIELDS = {"createTime", "startTime", "endTime"}
FILTER_FIELDS = TIME_FIELDS | {"alertId", "type", "source"}
DEFAULT_PAGE_SIZE = 20
INVALID_ARGUMENT = "Request contains an invalid argument."
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_CLAUSE = re.compile(r'^\s*(\w+)\s*(>=|<=|>|<|=)\s*"([^"]*)"\s*$')
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq,
}
Clause = tuple[str, Callable[[Any, Any], bool], Any]  # (field, comparison, value) of a filter


class Rejected(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def invalid_argument(message: str = INVALID_ARGUMENT) -> Rejected:
    return Rejected(google_api_error(400, message))


def quota_exceeded() -> Response:
    """What Alert Center answers when a quota is exceeded: 503, not 429 (its limits guide)."""
    return google_api_error(503, "The service is currently unavailable.", "UNAVAILABLE")


def permission_denied(message: str = "The caller does not have permission") -> Response:
    return google_api_error(403, message)


class AlertCenterFake(FakeServer):
    """One Workspace customer's Alert Center, reached by one service-account key.

    alerts: the customer's alerts in wire JSON; tests edit them in place (see `touch`). The
    bench sets a Generated sequence instead (alertcenter_data.generated_alerts).
    tls: serve HTTPS with this server context instead of plain HTTP.
    """

    def __init__(
        self,
        key: ServiceAccountKey,
        *,
        subject: str = ADMIN,
        customer_id: str = CUSTOMER_ID,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(tls)
        self.key = key
        self.tokens = TokenEndpoint(key, subject=subject, delegated_scopes=frozenset({SCOPE}))
        self.customer_id = customer_id
        self.alerts: list[Alert] | Generated[Alert] = []
        self.max_page_size = 50
        self.list_deleted = True
        self._page_tokens: dict[str, tuple[tuple[Any, ...], int]] = {}
        self._state = threading.Lock()

    @property
    def token_uri(self) -> str:
        return self.url + TOKEN_PATH

    def write_key(self, path: Path) -> Path:
        """The service-account key file, its token_uri pointing at this fake."""
        return self.key.write(path, self.token_uri)

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.method == "POST" and request.path == TOKEN_PATH:
            return self.tokens.handle(request)
        if request.method == "GET" and request.path == ALERTS_PATH:
            with self._state:
                try:
                    return self._list(request)
                except Rejected as rejected:
                    return rejected.response
        return google_api_error(404, f"The requested URL {request.path} was not found.")

    def list_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path == ALERTS_PATH]

    def token_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path == TOKEN_PATH]

    # -- alerts.list ---------------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        grant = self.tokens.grant_for(request)
        if grant is None:
            raise Rejected(google_api_error(401, UNAUTHENTICATED))
        if SCOPE not in grant.scopes:
            raise Rejected(permission_denied("Request had insufficient authentication scopes."))
        if grant.subject is None:  # a service account acting as itself (pitfall 22)
            raise invalid_argument()

    def _list(self, request: Request) -> Response:
        self._authorize(request)
        params = {name: values[-1] for name, values in request.query.items()}
        customer = params.get("customerId")
        if customer is not None and customer.startswith("C"):
            raise invalid_argument()
        if customer not in (None, self.customer_id):
            raise Rejected(permission_denied())
        order = params.get("orderBy")
        if order is not None and order not in ORDER_KEYS:
            raise invalid_argument(f"Invalid order by: {order}")
        page_size = self._page_size(params.get("pageSize"))
        query = (customer, params.get("filter"), order)
        offset = self._resume(params.get("pageToken"), query)
        matches = self._listed(params.get("filter"), order)
        page = list(matches[offset : offset + page_size])
        body: dict[str, Any] = {}
        if page:
            body["alerts"] = page
        if offset + len(page) < len(matches):
            token = secrets.token_urlsafe(18)
            self._page_tokens[token] = (query, offset + len(page))
            body["nextPageToken"] = token
        return Response.json(body)

    def _page_size(self, value: str | None) -> int:
        if value is None:
            return DEFAULT_PAGE_SIZE
        if not value.isdigit() or int(value) < 1:
            raise invalid_argument()
        return min(int(value), self.max_page_size)

    def _resume(self, token: str | None, query: tuple[Any, ...]) -> int:
        if not token:
            return 0
        bound = self._page_tokens.get(token)
        if bound is None or bound[0] != query:
            raise invalid_argument("Invalid page token.")
        return bound[1]

    def _listed(self, text: str | None, order: str | None) -> Sequence[Alert]:
        """The alerts a query lists, in its order. Generated alerts filtered on createTime
        alone are a window found by bisection, reversed for a descending order (none is
        touched: updateTime is createTime, none is deleted); a list is filtered and sorted."""
        clauses = [_clause(part) for part in re.split(r"\s+AND\s+", text)] if text else []
        alerts = self.alerts
        if isinstance(alerts, Generated) and alerts.sorted_by == "createTime" and \
                all(field == "createTime" for field, _, _ in clauses):
            for _, compare, bound in clauses:
                alerts = alerts.where(_created, compare, bound)
            return alerts[::-1] if order is not None and ORDER_KEYS[order][1] else alerts
        visible = (a for a in alerts if self.list_deleted or not a.get("deleted"))
        return _ordered([a for a in visible if all(_holds(clause, a) for clause in clauses)], order)


def _clause(text: str) -> Clause:
    match = _CLAUSE.match(text)
    if not match:
        raise invalid_argument(f"Invalid filter: {text}")
    field, comparison, literal = match.groups()
    if field not in FILTER_FIELDS:
        raise invalid_argument(f"Invalid filter: unsupported field {field}")
    if field in TIME_FIELDS:
        try:
            return field, _OPERATORS[comparison], parse_time(literal)
        except ValueError:
            raise invalid_argument(f"Invalid filter: {literal} is not a timestamp") from None
    if comparison != "=":
        raise invalid_argument(f"Invalid filter: {field} supports = only")
    return field, operator.eq, literal


def _holds(clause: Clause, alert: Alert) -> bool:
    field, compare, value = clause
    if field in TIME_FIELDS:
        return field in alert and compare(parse_time(alert[field]), value)
    return bool(alert.get(field) == value)


def _created(alert: Alert) -> datetime:
    return parse_time(alert["createTime"])


def _ordered(alerts: list[Alert], order: str | None) -> list[Alert]:
    """Sorted as asked (ties broken by alertId so pages are stable); unsorted otherwise."""
    if order is None:
        return alerts
    field, descending = ORDER_KEYS[order]
    return sorted(alerts, key=lambda a: (parse_time(a[field]), a["alertId"]), reverse=descending)


# -- make demo ------------------------------------------------------------------------------


def _demo_alerts(now: datetime) -> Iterable[Alert]:
    """60 alerts created over the last 12 hours, plus older ones an admin worked on today."""
    recent = make_alerts(60, base_time=now - timedelta(hours=12), step=timedelta(minutes=11))
    older = [make_alert(60 + n, created_at=now - timedelta(days=9 - n)) for n in range(6)]
    for n, alert in enumerate(older):
        touch(alert, now - timedelta(hours=6 - n), status="CLOSED", assignee=ADMIN)
    touch(older[-1], now - timedelta(minutes=30), deleted=True)
    return [*recent, *older, unknown_alert(66, created_at=now - timedelta(hours=2))]


def demo_replay() -> tuple[AlertCenterFake, Callable[[str], dict[str, str]], dict[str, Any]]:
    """An unstarted fake with alerts relative to now, the env for the CLI, the YAML block.

    Call the second item with the started fake's url: it writes a throwaway key file whose
    token_uri is that fake and returns the env vars the YAML block refers to.
    """
    fake = AlertCenterFake(make_key())
    fake.alerts = list(_demo_alerts(utcnow()))

    def env_for(url: str) -> dict[str, str]:
        key_path = Path(tempfile.mkdtemp(prefix="alertpull-demo-")) / "workspace-key.json"
        fake.key.write(key_path, url + TOKEN_PATH)
        return {"ALERTCENTER_DEMO_KEY": str(key_path), "ALERTCENTER_DEMO_URL": url}

    source = {
        "type": "workspace_alertcenter",
        "credentials_file": "${ALERTCENTER_DEMO_KEY}",
        "subject": ADMIN,
        "customer_id": CUSTOMER_ID,
        "api_endpoint": "${ALERTCENTER_DEMO_URL}",
    }
    return fake, env_for, source
