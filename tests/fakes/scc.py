"""A fake of the Google APIs alertpull's SCC connector calls, on one local port.

- SCC v2 REST: GET /v2/{organizations|folders|projects}/{id}/sources/{source}
  [/locations/{location}]/findings with filter, orderBy, pageSize, pageToken and
  `$alt=json;enum-encoding=int` (answered with numeric enums, as Google does).
- OAuth 2.0 token endpoint: POST /token, the JWT-bearer grant of each known key
  (tests.fakes.google_sa.TokenEndpoint), used by impersonation's source credentials.
- IAM Credentials: POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken, for
  service-account impersonation.

API calls must carry a bearer token the fake issued, or a self-signed JWT of a known
key (what google-auth sends for service-account keys on the v2 client). It is strict
where SCC is strict: page_size in [1, 1000], only the filter and order_by grammar it
documents for event_time, page tokens bound to the query that produced them. Errors use
Google's JSON shape {"error": {"code", "message", "status"}}. Stored results are
serialized through the v2 protos, so a field the API does not have fails loudly. The
bench's Generated results (scc_data.generated_results) are checked against the protos one
per shape, then served as made and found by bisection: a page costs the same at any size.

    python -m tests.fakes.scc --findings 300 --port 8085   # serve a generated dataset
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import operator
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from alertpull.timeutil import parse_time, to_epoch_ms, utcnow

from .generated import Generated
from .google_sa import ServiceAccountKey, TokenEndpoint, google_api_error, make_key, oauth_error
from .http_fake import FakeServer, Request, Response
from .scc_data import KINDS, ORG, Result, make_results

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 10
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
IAM_SCOPE = "https://www.googleapis.com/auth/iam"  # what impersonation's source token asks
LIST_PERMISSION = "securitycenter.findings.list"

_LIST = re.compile(
    r"^/v2/(?P<parent>(?:organizations|folders|projects)/[^/]+)/sources/(?P<source>[^/]+)"
    r"(?:/locations/(?P<location>[^/]+))?/findings$"
)
_IMPERSONATE = re.compile(r"^/v1/projects/-/serviceAccounts/(?P<email>[^/:]+):generateAccessToken$")
_CLAUSE = re.compile(r'^event_time\s*(>=|<=|>|<|=)\s*(?:"([^"]+)"|(\d+))$')
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq,
}
EventTimeBound = tuple[Callable[[int, int], bool], int]  # (comparison, epoch ms) of a clause


def quota_exceeded() -> Response:
    return google_api_error(
        429,
        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' "
        "of service 'securitycenter.googleapis.com'.")


def permission_denied(resource: str, permission: str = LIST_PERMISSION) -> Response:
    return google_api_error(
        403,
        f"Permission '{permission}' denied on resource '{resource}' (or it may not exist).")


def unauthenticated() -> Response:
    return google_api_error(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential.")


def invalid_argument(message: str) -> Response:
    return google_api_error(400, message)


class Rejected(Exception):
    """Raised inside a handler to answer with an error response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def wire(results: list[Result]) -> list[dict[str, Any]]:
    """Results as the v2 API renders them in its default JSON (timestamps, enums and numbers
    normalized by the protos): what the connector's `raw` holds."""
    from google.protobuf import json_format

    return json_format.MessageToDict(_page_proto(results))["listFindingsResults"]


def _page_fields(results: list[Result], token: str, total: int) -> dict[str, Any]:
    return {"listFindingsResults": results, "nextPageToken": token, "totalSize": total}


def _page_proto(results: list[Result], token: str = "", total: int = 0) -> Any:
    from google.cloud import securitycenter_v2
    from google.protobuf import json_format

    message = securitycenter_v2.ListFindingsResponse.pb(securitycenter_v2.ListFindingsResponse())
    # strict: unknown fields are an error
    return json_format.ParseDict(_page_fields(results, token, total), message)


class SccFake(FakeServer):
    """One organization's SCC findings behind Google's auth.

    results: the ListFindingsResult objects (wire JSON); tests may edit them in place. The
    bench passes a Generated sequence (scc_data.generated_results) instead.
    token_endpoints: the service-account keys Google knows, by client_email.
    denied: principals lacking roles/securitycenter.findingsViewer (answered 403).
    token_creators: target service account -> principals allowed to impersonate it.
    page_limit: the most results one page holds (SCC may return fewer than page_size).
    repeat_token_from_page: from this page on, answer with the page token asked with.
    verbatim: serve the results as they are, without the protos' pass, which would refuse
        what an odd payload holds (a list where the API has an object, a v1 field).
    """

    def __init__(self, results: list[Result] | Generated[Result] | None = None) -> None:
        super().__init__()
        self.results: list[Result] | Generated[Result] = (
            results if isinstance(results, Generated) else list(results or []))
        if isinstance(results, Generated):
            _page_proto(list(results[:len(KINDS)]))  # one of each shape: fields the API has
        self.token_endpoints: dict[str, TokenEndpoint] = {}  # client_email -> its grant
        self.denied: set[str] = set()
        self.token_creators: dict[str, set[str]] = {}
        self.page_limit = MAX_PAGE_SIZE
        self.repeat_token_from_page: int | None = None
        self.verbatim = False
        self.impersonation_tokens: dict[str, str] = {}  # access token -> target account
        self._tokens: dict[str, tuple[str, int]] = {}  # page token -> (bound query, offset)
        self._state = threading.Lock()

    # -- credentials ---------------------------------------------------------------------

    def add_key(self, key: ServiceAccountKey) -> ServiceAccountKey:
        """Make a key known to Google: its token grant and its self-signed JWTs work."""
        self.token_endpoints[key.client_email] = TokenEndpoint(key)
        return key

    def write_key_file(self, directory: Path,
                       email: str = "alertpull@scc-reader.iam.gserviceaccount.com") -> Path:
        """A throwaway service-account key whose token_uri is this fake (start it first)."""
        project = email.split("@")[1].split(".")[0]
        key = self.add_key(make_key(email, project))
        return key.write(directory / f"{email.split('@')[0]}-key.json", f"{self.url}/token")

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        with self._state:
            try:
                return self._dispatch(request)
            except Rejected as rejected:
                return rejected.response

    def _dispatch(self, request: Request) -> Response:
        if request.method == "POST" and request.path == "/token":
            return self._token(request)
        if request.method == "POST" and (match := _IMPERSONATE.match(request.path)):
            caller = self._principal(request, {CLOUD_PLATFORM, IAM_SCOPE})
            return self._impersonate(caller, match["email"], request.json())
        if request.method == "GET" and (match := _LIST.match(request.path)):
            principal = self._principal(request, {CLOUD_PLATFORM})
            parent = match["parent"]
            if principal in self.denied:
                raise Rejected(permission_denied(
                    f"//securitycenter.googleapis.com/{parent}/sources/{match['source']}"))
            return self._list_findings(parent, match["source"], match["location"] or "global",
                                       request)
        return google_api_error(404, f"The requested URL {request.path} was not found.")

    # -- auth ----------------------------------------------------------------------------

    def _principal(self, request: Request, scopes: set[str]) -> str:
        """Who a request's bearer token stands for: a token the fake issued for one of
        `scopes`, or a current self-signed JWT of a known key naming one of them."""
        for endpoint in self.token_endpoints.values():
            grant = endpoint.grant_for(request)
            if grant and grant.scopes & scopes:
                return grant.client_email
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if token in self.impersonation_tokens and CLOUD_PLATFORM in scopes:
            return self.impersonation_tokens[token]
        claims = self.self_signed_claims(token) if scheme == "Bearer" else None
        if claims is None or not scopes & set(str(claims.get("scope", "")).split()):
            raise Rejected(unauthenticated())
        return str(claims["iss"])

    def self_signed_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a current RS256 JWT a known key signed for itself; None otherwise."""
        try:
            header_b64, claims_b64, signature_b64 = token.split(".")
            header = json.loads(_b64decode(header_b64))
            claims = json.loads(_b64decode(claims_b64))
            key = self.token_endpoints[claims["iss"]].key
            if header.get("alg") != "RS256" or header.get("kid") != key.private_key_id:
                return None
            key.private_key.public_key().verify(
                _b64decode(signature_b64), f"{header_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, KeyError, TypeError, binascii.Error, InvalidSignature):
            return None
        now, skew = time.time(), 60
        issued, expires = claims.get("iat"), claims.get("exp")
        if not isinstance(issued, int) or not isinstance(expires, int):
            return None
        if claims.get("sub") != claims["iss"] or issued > now + skew or expires < now - skew:
            return None
        return dict(claims)

    def _token(self, request: Request) -> Response:
        """Route a JWT-bearer grant to the token endpoint of the key it names."""
        try:
            claims = json.loads(_b64decode(request.form().get("assertion", "").split(".")[1]))
            endpoint = self.token_endpoints[claims["iss"]]
        except (ValueError, IndexError, KeyError, TypeError, binascii.Error):
            return oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        return endpoint.handle(request)

    def _impersonate(self, caller: str, target: str, body: dict[str, Any]) -> Response:
        if caller not in self.token_creators.get(target, set()):
            return permission_denied(f"projects/-/serviceAccounts/{target}",
                                     "iam.serviceAccounts.getAccessToken")
        if CLOUD_PLATFORM not in body.get("scope", []):
            return invalid_argument("Scope must include the API's scope.")
        token = "ya29.impersonated-" + secrets.token_urlsafe(32)
        self.impersonation_tokens[token] = target
        expires = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return Response.json({"accessToken": token, "expireTime": expires})

    # -- ListFindings --------------------------------------------------------------------

    def _list_findings(self, parent: str, source: str, location: str,
                       request: Request) -> Response:
        query = {key: values[-1] for key, values in request.query.items()}
        page_size = _page_size(query.get("pageSize"))
        matches = self._matches(parent, source, location, query.get("filter", ""),
                                query.get("orderBy", ""))
        bound = json.dumps([parent, source, location, query.get("filter"), query.get("orderBy")])
        offset = self._resume(query.get("pageToken"), bound)
        page = list(matches[offset: offset + min(page_size, self.page_limit)])
        end = offset + len(page)
        token = self._next_token(query.get("pageToken"), bound, end) if end < len(matches) else ""
        numeric = "enum-encoding=int" in query.get("$alt", "")
        if self.verbatim or (isinstance(self.results, Generated) and not numeric):
            # As made: their shapes met the protos in __init__, and a proto pass costs about
            # 0.4 s per 1000 results. The protos' JSON but for key order, and a time on a whole
            # second keeps its ".000" (the protos drop it).
            fields = _page_fields(page, token, len(matches))
            body = orjson.dumps({name: value for name, value in fields.items() if value},
                                option=orjson.OPT_INDENT_2)  # json.dumps(indent=2), faster
        else:
            from google.protobuf import json_format

            body = json_format.MessageToJson(_page_proto(page, token, len(matches)),
                                             use_integers_for_enums=numeric).encode()
        return Response(200, body, {"Content-Type": "application/json; charset=UTF-8"})

    def _matches(self, parent: str, source: str, location: str, text: str,
                 order_by: str) -> Sequence[Result]:
        """The results a query lists, in its order. Generated results asked for by all sources
        of their organization and location, ordered by event_time ascending, are a window
        found by bisection; a list is scanned and sorted."""
        bounds = _event_time_bounds(text)
        results = self.results
        if isinstance(results, Generated) and results.sorted_by == "eventTime" and \
                order_by.split() in (["event_time"], ["event_time", "asc"]) and \
                _all_under(results, parent, source, location):
            for compare, bound in bounds:
                results = results.where(_event_ms, compare, bound)
            return results
        matches = [r for r in results if _under(r, parent, source, location)]
        return _ordered([r for r in matches if _matches_filter(r, bounds)], order_by)

    def _resume(self, token: str | None, bound: str) -> int:
        if not token:
            return 0
        if self._tokens.get(token, ("", 0))[0] != bound:
            raise Rejected(invalid_argument("Invalid page token."))
        return self._tokens[token][1]

    def _next_token(self, token: str | None, bound: str, end: int) -> str:
        if token and self.repeat_token_from_page:
            pages_served = sum(1 for query, _ in self._tokens.values() if query == bound) + 1
            if pages_served >= self.repeat_token_from_page:
                return token
        new_token = secrets.token_urlsafe(24)
        self._tokens[new_token] = (bound, end)
        return new_token


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _page_size(value: str | None) -> int:
    size = int(value) if value else DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise Rejected(invalid_argument(f"page_size must be in [1, {MAX_PAGE_SIZE}]."))
    return size


def _under(result: Result, parent: str, source: str, location: str) -> bool:
    """Whether a finding is listed under parent/sources/source/locations/location."""
    finding = result["finding"]
    names = (finding.get("name", ""), finding.get("canonicalName", ""))
    in_parent = any(name.startswith(parent + "/") for name in names)
    parts = finding.get("name", "").split("/")
    in_source = source == "-" or parts[3] == source
    return in_parent and in_source and parts[5] == location


def _all_under(results: Generated[Result], parent: str, source: str, location: str) -> bool:
    """Whether every generated result is listed under an organization's sources/- in a
    location: they share one organization and one location, so the first one tells."""
    return source == "-" and parent.startswith("organizations/") and bool(results) and \
        _under(results[0], parent, source, location)


def _event_ms(result: Result) -> int | None:
    value = result["finding"].get("eventTime")
    return to_epoch_ms(parse_time(value)) if value else None


def _event_time_bounds(text: str) -> list[EventTimeBound]:
    """The clauses of the subset of SCC's filter grammar on event_time that an incremental
    pull uses."""
    bounds = []
    for clause in re.split(r"\s+AND\s+", text.strip()) if text.strip() else []:
        match = _CLAUSE.match(clause.strip())
        if match is None:
            raise Rejected(invalid_argument(f"Invalid filter: {text}"))
        comparison, quoted, epoch_ms = match.groups()
        try:
            bound = to_epoch_ms(parse_time(quoted)) if quoted else int(epoch_ms)
        except ValueError:
            raise Rejected(invalid_argument(f"Invalid filter: {text}")) from None
        bounds.append((_COMPARE[comparison], bound))
    return bounds


def _matches_filter(result: Result, bounds: list[EventTimeBound]) -> bool:
    if not bounds:
        return True
    event = _event_ms(result)
    return event is not None and all(compare(event, bound) for compare, bound in bounds)


def _ordered(results: list[Result], order_by: str) -> list[Result]:
    """order_by "event_time" [asc|desc]; name breaks ties so pages are stable."""
    words = order_by.split()
    if not words:
        return sorted(results, key=lambda r: r["finding"].get("name", ""))
    if words[0] != "event_time" or len(words) > 2 or words[1:] not in ([], ["asc"], ["desc"]):
        raise Rejected(invalid_argument(f"Invalid order_by: {order_by}"))
    return sorted(results, key=lambda r: (_event_ms(r) or 0, r["finding"].get("name", "")),
                  reverse=words[1:] == ["desc"])


# -- demo ----------------------------------------------------------------------------------


def demo_data(count: int = 240) -> list[Result]:
    """`count` findings whose event_time spreads over the last 12 hours (the last 5 minutes
    ago), a few muted and resolved, as an SCC organization shows them."""
    span = timedelta(hours=12) - timedelta(minutes=5)
    results = make_results(count, base_time=utcnow() - timedelta(hours=12),
                           step=span / max(count, 1))
    for index, result in enumerate(results):
        if index % 11 == 3:
            result["finding"]["mute"] = "MUTED"
            result["finding"]["muteUpdateTime"] = result["finding"]["eventTime"]
        if index % 13 == 5:
            result["finding"]["state"] = "INACTIVE"
    return results


def demo_replay() -> tuple[SccFake, Callable[[str], dict[str, str]], dict[str, Any]]:
    """The demo's SCC: (an unstarted fake, env(url) for the CLI once it is started, the
    YAML source block). env(url) writes a throwaway service-account key for that url."""
    fake = SccFake(demo_data())

    def env(url: str) -> dict[str, str]:
        assert url == fake.url, "start the fake first, then pass its url"
        key = fake.write_key_file(Path(tempfile.mkdtemp(prefix="alertpull-scc-demo-")))
        return {"DEMO_SCC_URL": url, "DEMO_SCC_CREDENTIALS": str(key)}

    source = {
        "type": "scc",
        "parent": f"organizations/{ORG}",
        "credentials_file": "${DEMO_SCC_CREDENTIALS}",
        "api_endpoint": "${DEMO_SCC_URL}",
    }
    return fake, env, source


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake SCC v2 API with generated findings.")
    parser.add_argument("--findings", type=int, default=240, help="number of findings")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    args = parser.parse_args()
    fake = SccFake(demo_data(args.findings)).start(args.port)
    key = fake.write_key_file(Path(tempfile.mkdtemp(prefix="alertpull-scc-")))
    print(fake.url, flush=True)  # the first line is the URL, for scripts that start the fake
    print(f"service-account key: {key}", flush=True)
    fake.serve_until_interrupted()


if __name__ == "__main__":
    main()
