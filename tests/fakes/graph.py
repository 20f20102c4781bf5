"""A fake of Microsoft's sign-in service and of Microsoft Graph, over HTTPS on one local port.

Sign-in (the authority, as MSAL calls it):
- GET  /{tenant}/v2.0/.well-known/openid-configuration
- POST /{tenant}/oauth2/v2.0/token: client credentials, with a client_secret or a
  client_assertion JWT signed by the app's certificate (checked: signature, x5t, aud, iss).
Graph:
- GET /v1.0/security/alerts_v2
- GET /v1.0/identityProtection/riskDetections

It is strict where Graph is strict and a client could slip: tokens must be the fake's own,
unrevoked and for this host's `/.default` scope; each collection needs its application role
(403 "Missing application roles" otherwise); $filter names only real properties; $top is
capped (1000 silently, 500 with an error); @odata.nextLink skip tokens are bound to the
query; evolvable enum members are masked as unknownFutureValue unless the request says
`Prefer: include-unknown-enum-members`; Identity Protection answers 429 without Retry-After
to a second call within one second. Errors have Graph's and Entra's shapes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import operator
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from alertpull.timeutil import parse_time, utcnow

from .generated import Generated
from .graph_data import (
    EVOLVED_SERVICE_SOURCES,
    TENANT_ID,
    make_alerts,
    make_risk_detections,
)
from .http_fake import FakeServer, Request, Response
from .tls import ThrowawayCA, bundle_with_system_roots, make_throwaway_ca

ALERTS_PATH = "/v1.0/security/alerts_v2"
RISK_PATH = "/v1.0/identityProtection/riskDetections"
ALERT_ROLES = ("SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All",
               "SecurityIncident.Read.All", "SecurityIncident.ReadWrite.All")
RISK_ROLES = ("IdentityRiskEvent.Read.All", "IdentityRiskEvent.ReadWrite.All")
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_DISCOVERY = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$")
_TOKEN = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
_TIME_CLAUSE = re.compile(r"^(\w+) (ge|gt|lt|le|eq) (\S+)$")
_SOURCES_CLAUSE = re.compile(r"^\(serviceSource eq '(\w+)'((?: or serviceSource eq '\w+')*)\)$")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "ge": operator.ge, "gt": operator.gt, "lt": operator.lt, "le": operator.le, "eq": operator.eq,
}


Items = list[dict[str, Any]] | Generated[dict[str, Any]]
TimeClause = tuple[str, Callable[[Any, Any], bool], datetime]  # property, comparison, bound


@dataclass(frozen=True)
class Collection:
    """A Graph collection the fake serves."""

    path: str
    entity: str  # the OData type, for error messages
    changed_field: str
    time_fields: tuple[str, ...]  # the DateTimeOffset properties $filter may name
    roles: tuple[str, ...]  # application roles that read it (any one)
    max_top: int
    reject_larger_top: bool  # 400 above max_top, else silently capped
    default_top: int


COLLECTIONS = {
    ALERTS_PATH: Collection(ALERTS_PATH, "microsoft.graph.security.alert", "lastUpdateDateTime",
                            ("lastUpdateDateTime", "createdDateTime"), ALERT_ROLES, 1000,
                            False, 100),
    RISK_PATH: Collection(RISK_PATH, "microsoft.graph.riskDetection", "lastUpdatedDateTime",
                          ("lastUpdatedDateTime", "detectedDateTime", "activityDateTime"),
                          RISK_ROLES, 500, True, 20),
}


@dataclass
class FakeApp:
    """An app registration with its credentials and consented application roles."""

    client_id: str
    secret: str | None = None
    certificate: x509.Certificate | None = None
    roles: set[str] = field(
        default_factory=lambda: {"SecurityAlert.Read.All", "IdentityRiskEvent.Read.All"}
    )


@dataclass(frozen=True)
class IssuedToken:
    client_id: str
    scope: str


class Rejected(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def graph_error_response(status: int, code: str, message: str,
                         headers: dict[str, str] | None = None) -> Response:
    inner = {"date": "2026-03-02T08:00:00", "request-id": "00000000-0000-0000-0000-000000000000"}
    return Response.json({"error": {"code": code, "message": message, "innerError": inner}},
                         status, headers)


def entra_error_response(status: int, error: str, code: int, description: str) -> Response:
    trailer = ("\r\nTrace ID: 0f1e2d3c-0000-0000-0000-000000000000\r\nCorrelation ID: "
               "1a2b3c4d-0000-0000-0000-000000000000\r\nTimestamp: 2026-03-02 08:00:00Z")
    return Response.json({"error": error, "error_description": f"AADSTS{code}: {description}"
                          + trailer, "error_codes": [code], "timestamp": "2026-03-02 08:00:00Z"},
                         status)


def throttled(retry_after: str | None = None) -> Response:
    """Graph's 429; Identity Protection's carries no Retry-After."""
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return graph_error_response(429, "TooManyRequests", "Too many requests.", headers)


class GraphFake(FakeServer):
    """One tenant: its app registrations, alerts_v2 alerts and risk detections.

    alerts / risk_detections: wire objects; tests may edit them between runs. The bench
        sets a Generated sequence sorted by the collection's changed-at field instead.
    max_page: the most a page holds, below $top (Graph pages as it sees fit).
    repeat_link_from_page: from that page on, answer with the nextLink just followed.
    risk_interval: the least time between two riskDetections calls (Graph: 1 s per tenant).
    """

    collections: ClassVar[dict[str, Collection]] = COLLECTIONS  # the GET routes served

    def __init__(self, tls: Any, tenant_id: str = TENANT_ID) -> None:
        super().__init__(tls)
        self.tenant_id = tenant_id
        self.apps: dict[str, FakeApp] = {}
        self.alerts: Items = []
        self.risk_detections: Items = []
        self.max_page: int | None = None
        self.repeat_link_from_page: int | None = None
        self.risk_interval = 1.0
        self.risk_throttled = 0
        self.arrivals: list[tuple[float, str]] = []  # (monotonic time, path) of every request
        self._tokens: dict[str, IssuedToken] = {}
        self._last_risk_call: float | None = None

    def add_app(self, client_id: str, **kwargs: Any) -> FakeApp:
        app = self.apps[client_id] = FakeApp(client_id, **kwargs)
        return app

    def revoke_tokens(self) -> None:
        """Every token issued so far is refused from now on (401 InvalidAuthenticationToken)."""
        with self._lock:
            self._tokens.clear()

    def calls(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    @property
    def token_requests(self) -> list[Request]:
        return [r for r in self.requests if _TOKEN.match(r.path)]

    def _record(self, request: Request) -> Any:
        # The base class logs what was asked, not when; the pacing tests need arrival times,
        # scripted faults included (those never reach handle()).
        with self._lock:
            self.arrivals.append((time.monotonic(), request.path))
        return super()._record(request)

    # -- routing -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        try:
            if match := _DISCOVERY.match(request.path):
                return self._discovery(request, match.group(1))
            if match := _TOKEN.match(request.path):
                return self._token(request, match.group(1))
            if request.path in self.collections and request.method == "GET":
                return self._list(request, self.collections[request.path])
        except Rejected as rejected:
            return rejected.response
        return graph_error_response(400, "BadRequest",
                                    f"Resource not found for the segment '{request.path}'.")

    # -- sign-in -------------------------------------------------------------------------

    def _discovery(self, request: Request, tenant: str) -> Response:
        self._known_tenant(tenant)
        base = f"https://{request.headers['host']}/{tenant}"
        return Response.json({
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "token id_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                      "private_key_jwt"],
        })

    def _known_tenant(self, tenant: str) -> None:
        if tenant != self.tenant_id:
            raise Rejected(entra_error_response(
                400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found. Check to make sure "
                "you have the correct tenant ID and are signing into the correct cloud."))

    def _token(self, request: Request, tenant: str) -> Response:
        self._known_tenant(tenant)
        form = request.form()
        if form.get("grant_type") != "client_credentials":
            return entra_error_response(400, "unsupported_grant_type", 70003,
                                        "The app requested an unsupported grant type.")
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            return entra_error_response(
                400, "unauthorized_client", 700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the "
                f"directory '{tenant}'.")
        self._authenticate(app, form, f"https://{request.headers['host']}{request.path}")
        scope = form.get("scope", "")
        if not scope.endswith("/.default") or " " in scope:
            return entra_error_response(400, "invalid_scope", 1002012,
                                        f"The provided value for scope {scope} is not valid.")
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = IssuedToken(app.client_id, scope)
        return Response.json({"token_type": "Bearer", "expires_in": 3599,
                              "ext_expires_in": 3599, "access_token": token})

    def _authenticate(self, app: FakeApp, form: dict[str, str], token_endpoint: str) -> None:
        if "client_secret" in form:
            if app.secret is None or not secrets.compare_digest(form["client_secret"], app.secret):
                raise Rejected(entra_error_response(
                    401, "invalid_client", 7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added "
                    f"to app '{app.client_id}'."))
            return
        if form.get("client_assertion_type") == JWT_BEARER and "client_assertion" in form:
            if not self._valid_assertion(app, form["client_assertion"], token_endpoint):
                raise Rejected(entra_error_response(
                    401, "invalid_client", 700027,
                    "Client assertion failed signature validation."))
            return
        raise Rejected(entra_error_response(
            401, "invalid_client", 7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the "
            "'client_credentials' grant type."))

    @staticmethod
    def _valid_assertion(app: FakeApp, assertion: str, token_endpoint: str) -> bool:
        if app.certificate is None:
            return False
        sha1 = app.certificate.fingerprint(hashes.SHA1())
        expected_x5t = base64.urlsafe_b64encode(sha1).decode().rstrip("=")
        try:
            if str(jwt.get_unverified_header(assertion).get("x5t")).rstrip("=") != expected_x5t:
                return False
            claims = jwt.decode(assertion, app.certificate.public_key(),  # type: ignore[arg-type]
                                algorithms=["RS256"], audience=token_endpoint,
                                issuer=app.client_id, options={"require": ["exp", "jti"]})
        except jwt.PyJWTError:
            return False
        return claims.get("sub") == app.client_id

    # -- Graph ---------------------------------------------------------------------------

    def _authorize(self, request: Request, collection: Collection) -> None:
        bearer = request.headers.get("authorization", "")
        with self._lock:
            issued = self._tokens.get(bearer.removeprefix("Bearer "))
        if issued is None:
            raise Rejected(graph_error_response(
                401, "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired."))
        if issued.scope != f"https://{request.headers['host']}/.default":
            raise Rejected(graph_error_response(
                401, "InvalidAuthenticationToken", "Access token validation failure. Invalid "
                "audience."))
        granted = self.apps[issued.client_id].roles
        if not granted & set(collection.roles):
            raise Rejected(graph_error_response(
                403, "Forbidden", f"Missing application roles. API required roles: "
                f"{','.join(collection.roles)}, application roles: {','.join(sorted(granted))}."))

    def _list(self, request: Request, collection: Collection) -> Response:
        self._authorize(request, collection)
        if collection.path == RISK_PATH:
            self._risk_rate_limit()
        params = {key: values[-1] for key, values in request.query.items()}
        items = self._filtered(collection, params.get("$filter"))
        ascending = self._order(collection, params.get("$orderby"))
        if isinstance(items, list):
            items.sort(key=lambda item: _sort_key(item, collection), reverse=not ascending)
        size = self._page_size(collection, params.get("$top"))
        query = {k: v for k, v in params.items() if k != "$skiptoken"}
        if "$skiptoken" in params:
            items = _after(items, _skip_key(params["$skiptoken"], query), collection, ascending)
        if isinstance(items, Generated) and not ascending:
            items = items[::-1]  # a Generated window stays ascending for bisection until here
        page = [self._present(item, request, collection) for item in items[:size]]
        rest = items[size:]
        host = f"https://{request.headers['host']}"
        body: dict[str, Any] = {"@odata.context": f"{host}/v1.0/$metadata#{collection.entity}",
                                "value": page}
        if rest:
            token = _skip_token(_sort_key(page[-1], collection), query)
            link_params = {**query, "$skiptoken": token}
            if self._repeat_link(request):
                link_params = params
            body["@odata.nextLink"] = f"{host}{collection.path}?{urlencode(link_params)}"
        return Response.json(body)

    def _repeat_link(self, request: Request) -> bool:
        if self.repeat_link_from_page is None:
            return False
        return len(self.calls(request.path)) >= self.repeat_link_from_page and \
            "$skiptoken" in request.query

    def _risk_rate_limit(self) -> None:
        now = time.monotonic()
        with self._lock:
            last, self._last_risk_call = self._last_risk_call, now
            if last is not None and now - last < self.risk_interval:
                self.risk_throttled += 1
                raise Rejected(throttled())

    def _items(self, collection: Collection) -> Items:
        """The objects of a collection (a subclass serving more collections extends this)."""
        return self.alerts if collection.path == ALERTS_PATH else self.risk_detections

    def _present(self, item: dict[str, Any], request: Request,
                 collection: Collection) -> dict[str, Any]:
        """An object as this request sees it (a subclass may shape more, e.g. $select)."""
        return self._enum_members(item, request) if collection.path == ALERTS_PATH else item

    def _filtered(self, collection: Collection, text: str | None) -> Items:
        """The items the filter keeps: a list, or a Generated window (in ascending order) when
        the items are Generated in the collection's changed-at order and every clause bounds
        that time, found by bisection."""
        clauses = text.split(" and ") if text else []
        source, field = self._items(collection), collection.changed_field
        if isinstance(source, Generated) and source.sorted_by == field:
            bounds = [_time_clause(collection, clause) for clause in clauses]
            if all(bound and bound[0] == field for bound in bounds):
                window = source
                for _, compare, moment in filter(None, bounds):
                    window = window.where(lambda item: parse_time(item[field]), compare, moment)
                return window
        items = list(source)
        for clause in clauses:
            items = [item for item in items if _clause(collection, clause)(item)]
        return items

    @staticmethod
    def _order(collection: Collection, orderby: str | None) -> bool:
        """True for ascending. Without $orderby Graph lists the most recent first."""
        if orderby is None:
            return False
        field_name, _, direction = orderby.partition(" ")
        if field_name not in collection.time_fields or direction not in ("asc", "desc", ""):
            raise Rejected(graph_error_response(400, "BadRequest",
                                                f"Invalid $orderby '{orderby}'."))
        return direction != "desc"

    def _page_size(self, collection: Collection, top: str | None) -> int:
        size = int(top) if top and top.isdigit() else collection.default_top
        if size > collection.max_top and collection.reject_larger_top:
            raise Rejected(graph_error_response(
                400, "BadRequest", f"The limit of '{collection.max_top}' for Top query has been "
                "exceeded."))
        return min(size, collection.max_top, self.max_page or size)

    @staticmethod
    def _enum_members(alert: dict[str, Any], request: Request) -> dict[str, Any]:
        if "include-unknown-enum-members" in request.headers.get("prefer", ""):
            return alert
        if alert.get("serviceSource") in EVOLVED_SERVICE_SOURCES:
            return {**alert, "serviceSource": "unknownFutureValue"}
        return alert


def _time_clause(collection: Collection, clause: str) -> TimeClause | None:
    """A clause comparing a time property with a time; None for another kind of clause."""
    match = _TIME_CLAUSE.match(clause)
    if match is None:
        return None
    name, comparison, value = match.groups()
    if name not in collection.time_fields:
        raise Rejected(graph_error_response(
            400, "BadRequest", f"Could not find a property named '{name}' on type "
            f"'{collection.entity}'."))
    try:
        bound = parse_time(value)
    except ValueError:
        raise Rejected(graph_error_response(
            400, "BadRequest", f"The DateTimeOffset text '{value}' is not valid.")) from None
    return name, _COMPARE[comparison], bound


def _clause(collection: Collection, clause: str) -> Callable[[dict[str, Any]], bool]:
    if time_clause := _time_clause(collection, clause):
        name, compare, bound = time_clause
        return lambda item: item.get(name) is not None and compare(parse_time(item[name]), bound)
    if collection.path == ALERTS_PATH and (match := _SOURCES_CLAUSE.match(clause)):
        wanted = {match.group(1), *re.findall(r"'(\w+)'", match.group(2))}
        return lambda item: item.get("serviceSource") in wanted
    raise Rejected(graph_error_response(400, "BadRequest", f"Invalid filter clause: {clause}"))


def _sort_key(item: dict[str, Any], collection: Collection) -> tuple[datetime, str]:
    return parse_time(item[collection.changed_field]), str(item["id"])


def _fingerprint(query: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:16]


def _skip_token(key: tuple[datetime, str], query: dict[str, str]) -> str:
    payload = json.dumps([key[0].isoformat(), key[1], _fingerprint(query)])
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _skip_key(token: str, query: dict[str, str]) -> tuple[datetime, str]:
    try:
        moment, ident, fingerprint = json.loads(base64.urlsafe_b64decode(token))
    except ValueError:
        fingerprint = None
    if fingerprint != _fingerprint(query):
        raise Rejected(graph_error_response(400, "BadRequest",
                                            "The $skiptoken is not valid for this query."))
    return datetime.fromisoformat(moment), ident


def _after(items: Items, key: tuple[datetime, str], collection: Collection,
           ascending: bool) -> Items:
    """Keyset paging: what follows the last item of the previous page, in the same order."""
    if isinstance(items, Generated):  # still ascending: a bisection on the sort key
        return items.where(lambda item: _sort_key(item, collection),
                           operator.gt if ascending else operator.lt, key)
    if ascending:
        return [item for item in items if _sort_key(item, collection) > key]
    return [item for item in items if _sort_key(item, collection) < key]


# -- the demo replay -------------------------------------------------------------------------

DEMO_CLIENT_ID = "8a1c6e2f-5b3d-4f7a-9c0e-1d2b3a4c5e6f"
DEMO_SECRET = "demo-client-secret-not-real"


@functools.cache
def demo_tls() -> tuple[ThrowawayCA, Path]:
    """The throwaway CA of every Microsoft demo replay in this process, and its bundle with
    the public roots: the demo runs all its replays under one REQUESTS_CA_BUNDLE."""
    directory = Path(tempfile.mkdtemp(prefix="alertpull-graph-demo-"))
    ca = make_throwaway_ca(directory)
    return ca, bundle_with_system_roots(ca, directory / "ca-bundle.pem")


def demo_replay() -> tuple[GraphFake, Callable[[str], dict[str, str]], dict[str, Any]]:
    """An unstarted fake tenant with 120 alerts and 60 risk detections over the last 12 hours.

    Returns (fake, env, source): `env(fake.url)` once the fake is started gives the
    variables the CLI needs (REQUESTS_CA_BUNDLE holds a throwaway CA made here, plus the
    public roots, so it breaks no other HTTPS), and `source` is the YAML source block.
    """
    ca, bundle = demo_tls()
    fake = GraphFake(ca.server_context())
    fake.add_app(DEMO_CLIENT_ID, secret=DEMO_SECRET)
    start = utcnow() - timedelta(hours=12)
    span = timedelta(hours=12) - timedelta(minutes=5)
    fake.alerts = make_alerts(120, base_time=start, step=span / 120)
    fake.risk_detections = make_risk_detections(60, base_time=start, step=span / 60)

    def env(url: str) -> dict[str, str]:
        return {"REQUESTS_CA_BUNDLE": str(bundle), "DEMO_ENTRA_URL": url,
                "DEMO_ENTRA_SECRET": DEMO_SECRET}

    source = {
        "type": "entra_id",
        "tenant_id": TENANT_ID,
        "client_id": DEMO_CLIENT_ID,
        "client_secret": "${DEMO_ENTRA_SECRET}",
        "authority_host": "${DEMO_ENTRA_URL}",
        "graph_endpoint": "${DEMO_ENTRA_URL}",
    }
    return fake, env, source
