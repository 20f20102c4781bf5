"""Google Cloud Security Command Center (API v2): every source's findings under one parent.

A scope is one (parent, location): `organizations/123`, `folders/456` or `projects/p`
with `sources/-` (all sources), plus `/locations/L` for each configured data-residency
location, each with its own cursor. A window is read with ListFindings filtered on
`event_time` in [start, end) and ordered by event_time ascending (event_time moves when
a finding is updated, and is the only time field SCC filters on).

The REST API is read through the Google SDK's own pieces, not the generated
securitycenter_v2 client: that client parses every page into protos in pure Python, and
rendering them back to JSON cost many times what downloading them does. google-auth's
AuthorizedSession signs the calls (self-signed JWTs for service-account keys, as the
generated clients do), api-core's HTTPIterator follows nextPageToken, its Retry retries
transient faults and from_http_response raises the same exceptions the client raised.

`raw` is the ListFindingsResult (finding + resource) exactly as the API sends it: the
default `$alt=json` encoding, camelCase, enums by name, defaults left out. That rendering
is deterministic, so an unchanged finding re-read in the overlap hashes the same and a
changed state, mute or severity hashes differently.

google.* is imported inside the methods only: `alertpull --help` and sources of other
types never import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

from alertpull import __version__
from alertpull.connector import (
    Connector,
    Landmarks,
    Log,
    Memory,
    Option,
    Scope,
    Stream,
    Vendor,
    Window,
    retry_base_option,
)
from alertpull.connectors.google import GOOGLE_ERROR_BODY
from alertpull.errors import ConfigError, MalformedAlert, SourceError, one_line
from alertpull.http import error_body
from alertpull.paging import MAX_PAGES_OPTION, PageGuard
from alertpull.ratebudget import RateBudget
from alertpull.record import Normalized, compact, dig, parse_json, text, unique_strings
from alertpull.timeutil import format_time, parse_time_or_none
from alertpull.validate import endpoint_url, key_file

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
# The credential files Application Default Credentials loads from GOOGLE_APPLICATION_CREDENTIALS.
ADC_FILE_TYPES = ("service_account", "external_account", "authorized_user",
                  "external_account_authorized_user", "impersonated_service_account")
VIEWER_ROLE = "roles/securitycenter.findingsViewer"
PAGE_SIZE = 1000  # the API's maximum (its default is 10)
ORDER_BY = "event_time"
LANDMARKS = Landmarks(id=("finding.canonicalName", "finding.name"), title=("finding.category",),
                      created=("finding.createTime",), updated=("finding.eventTime",))
RESULTS = "listFindingsResults"  # a ListFindingsResponse's items
DEFAULT_HOST = "securitycenter.googleapis.com"  # the global endpoint
RETRY_INITIAL, RETRY_MAXIMUM = 1.0, 32.0  # seconds: api-core's first and longest sleeps
GLOBAL = "global"
CONSOLE = "https://console.cloud.google.com/security/command-center/findingsv2"
_PARENT = re.compile(r"^(organizations|folders|projects)/[a-z0-9][a-z0-9.:-]*$")
_CRM_KINDS = ("organizations/", "folders/", "projects/")

SEVERITIES = {"CRITICAL": "critical", "HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
# Words kept upper-case when a SCREAMING_SNAKE category becomes a title.
ACRONYMS = frozenset({
    "2SV", "ACL", "AI", "API", "CMEK", "CSEK", "CVE", "DLP", "DNS", "GCS", "GKE", "HTTP",
    "HTTPS", "IAM", "IAP", "IP", "KMS", "MFA", "OS", "RDP", "SQL", "SSH", "SSL", "TLS",
    "URL", "VM", "VPC", "XSS",
})
_ENUM_LIKE = re.compile(r"^[A-Z0-9]+(?:_[A-Z0-9]+)*$")


# Asked for by event_time ascending (ORDER_BY): a window cut short keeps the mark it
# reached. SCC keeps findings "at least 13 months".
FINDINGS = Stream("findings", ordered=True, retention=timedelta(days=395))


class SccConnector(Connector):
    type_name = "scc"
    vendor = Vendor("Google Cloud", cloud="GCP")
    default_overlap = timedelta(hours=24)  # event_time can precede create_time by hours
    options: ClassVar[Mapping[str, Option]] = {
        "parent": Option(
            required=True,
            help="organizations/123 | folders/456 | projects/my-proj: all sources' findings "
            "under it",
        ),
        "locations": Option(
            "list",
            help="SCC data-residency locations, e.g. [eu] (default: none, the global "
            "location); one cursor each",
        ),
        "credentials_file": Option(
            "path",
            help="service-account key JSON, relative to this config file (default: Application "
            "Default Credentials)",
        ),
        "impersonate_service_account": Option(
            help="service account to impersonate (the caller needs "
            "roles/iam.serviceAccountTokenCreator on it)"
        ),
        "api_endpoint": Option(
            help="SCC endpoint override (default securitycenter.googleapis.com, "
            "securitycenter.LOCATION.rep.googleapis.com for a location)"
        ),
        "iam_endpoint": Option(
            help="IAM Credentials endpoint used to impersonate (default "
            "https://iamcredentials.googleapis.com)"
        ),
        "quota_project": Option(
            help="project whose quota and billing the calls use (default: the credentials' "
            "project)"
        ),
        "reads_per_minute": Option(
            "int",
            default=900,
            help="pace list calls under SCC's 1,000 reads/min quota, shared per quota project",
        ),
        "timeout_seconds": Option(
            "seconds",
            default=60,
            help="seconds to wait for a vendor's answer (connect and read), per attempt",
        ),
        "retry_deadline_seconds": Option(
            "seconds",
            default=180,
            help="how long one call is retried through 429, 5xx and network faults before "
            "the source fails",
        ),
        "retry_base_seconds": retry_base_option(RETRY_INITIAL),
        "max_pages": MAX_PAGES_OPTION,
    }
    requires: ClassVar[Mapping[str, str]] = {"google.auth": "gcp", "google.api_core": "gcp"}

    @classmethod
    def check_settings(cls, where: str, settings: Mapping[str, Any]) -> None:
        try:
            checked_parent(settings["parent"])
        except ConfigError as err:
            raise ConfigError(f"{where}.parent: {err}") from None
        if settings["credentials_file"]:
            key_file(settings["credentials_file"], f"{where}.credentials_file",
                     types=("service_account",),
                     fix="point it at the service account's JSON key (for workload identity "
                     "federation, remove it and set GOOGLE_APPLICATION_CREDENTIALS)")
        elif os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):  # what ADC reads first
            key_file(os.environ["GOOGLE_APPLICATION_CREDENTIALS"],
                     f"{where}: GOOGLE_APPLICATION_CREDENTIALS", types=ADC_FILE_TYPES,
                     fix="point it at a service-account key or a workload identity federation "
                     "(external_account) config, or unset it")
        if settings["api_endpoint"]:
            endpoint_url(settings["api_endpoint"], f"{where}.api_endpoint", bare_host=True,
                         what="an SCC endpoint",
                         form="host[:port] or https://host[:port], e.g. "
                         "securitycenter.googleapis.com")
        if settings["iam_endpoint"]:
            if not settings["impersonate_service_account"]:
                raise ConfigError(f"{where}.iam_endpoint: used only with "
                                  "impersonate_service_account; set that or remove it")
            endpoint_url(settings["iam_endpoint"], f"{where}.iam_endpoint",
                         form="https://host[:port], e.g. https://iamcredentials.googleapis.com")

    def __init__(self, source_name: str, settings: Mapping[str, Any], log: Log) -> None:
        super().__init__(source_name, settings, log)
        # Credentials and the HTTP session are made once under this lock, then shared by
        # the worker threads that run fetch() for different locations.
        self._lock = threading.Lock()
        self._auth: _Auth | None = None
        self._http: Any = None  # google.auth.transport.requests.AuthorizedSession

    # -- the connector contract ----------------------------------------------------------

    def scopes(self) -> list[Scope]:
        parent = checked_parent(self.settings["parent"])
        return [_scope(parent, location) for location in self.settings["locations"] or [None]]

    def fetch(self, scope: Scope, window: Window, memory: Memory) -> Iterator[list[Any]]:
        path = scope.params["path"]
        query = {"filter": event_time_filter(window), "orderBy": ORDER_BY, "pageSize": PAGE_SIZE}
        with self._google_errors(scope):
            pager = self._list(scope, query)
            # A token seen before: the pager itself would ask for the same pages forever.
            guard = PageGuard("SCC", f"for {path}", self.settings["max_pages"],
                              then="; stopped at the findings read so far")
            guard.check(None)
            for page in pager.pages:
                yield list(page)
                token = pager.next_page_token
                if not token:
                    return
                guard.check(token)

    def normalize(self, scope: Scope, raw: Any) -> Normalized:
        finding, resource = _parts(raw)
        name = _required(finding, "name")
        category = text(finding.get("category"))  # the title when there is one
        event_time = parse_time_or_none(_required(finding, "eventTime"))
        if event_time is None:
            raise MalformedAlert(f"SCC finding eventTime {finding['eventTime']!r} is not a time")
        native_id = finding.get("canonicalName") or name  # one id through org and project
        state = finding.get("state") or "STATE_UNSPECIFIED"
        mute = finding.get("mute")  # absent = MUTE_UNSPECIFIED
        severity_raw = finding.get("severity") or "SEVERITY_UNSPECIFIED"
        return Normalized(
            native_id=native_id,
            tenant=crm_ancestor(native_id) or scope.params["parent"],
            changed_at=event_time,
            title=humanize_category(category) if category else "Security Command Center finding",
            severity=SEVERITIES.get(severity_raw, "unknown"),
            severity_raw=severity_raw,
            status=status_of(state, mute),
            status_raw=f"{state}/{mute}" if mute else state,
            created_at=parse_time_or_none(finding.get("createTime")),
            updated_at=event_time,
            link=console_link(name, resource),
            extra=_extra(finding, resource, category, event_time),
        )

    def check(self) -> str:
        scopes = self.scopes()
        scope = scopes[0]
        with self._google_errors(scope):
            first = next(self._list(scope, {"pageSize": 1}).pages)
        total = first.raw_page.get("totalSize", 0)  # left out when 0
        return (
            f"{scope.params['path']}: {total} finding(s) readable as {self._principal()}; "
            f"pulling {len(scopes)} scope(s)"
        )

    def landmarks(self, scope: Scope) -> Landmarks:
        return LANDMARKS

    def describe(self, raw: Any) -> str:
        name = dig(raw, "finding", "name")
        return name if isinstance(name, str) and name else "<unnamed SCC finding>"

    # -- credentials, session, pacing ----------------------------------------------------

    def _list(self, scope: Scope, query: dict[str, Any]) -> Any:
        """An HTTPIterator over the scope's ListFindings pages: GET {endpoint}/v2/{path}/findings
        with `query` and each page's pageToken. Every attempt waits for the read budget, has
        timeout_seconds, and transient faults are retried for retry_deadline_seconds."""
        from google.api_core.page_iterator import HTTPIterator

        http = self._session()
        base = base_url(endpoint_for(scope.params["location"], self.settings["api_endpoint"]))
        budget, timeout = self._budget(), self.settings["timeout_seconds"]

        def get_page(method: str, path: str, query_params: dict[str, Any]) -> dict[str, Any]:
            budget.acquire()  # each request is one read of the project's quota
            return read_page(http.request(method, base + path, params=query_params,
                                          timeout=timeout))

        return HTTPIterator(
            client=None,
            api_request=_retry(self.settings["retry_deadline_seconds"],
                               self.settings["retry_base_seconds"])(get_page),
            path=f"/v2/{scope.params['path']}/findings",
            item_to_value=_as_is,
            items_key=RESULTS,
            extra_params=query,
        )

    def _ensure_auth(self) -> _Auth:
        with self._lock:
            if self._auth is None:
                self._auth = _load_auth(self.settings)
            return self._auth

    def _principal(self) -> str:
        return self._auth.principal if self._auth else "the configured credentials"

    def _session(self) -> Any:
        """One AuthorizedSession for every endpoint: a requests.Session, so HTTPS_PROXY,
        NO_PROXY, REQUESTS_CA_BUNDLE and an http:// test endpoint all work."""
        auth = self._ensure_auth()
        with self._lock:
            if self._http is None:
                from google.auth.transport.requests import AuthorizedSession

                # default_host: the JWT audience the generated client gives a key without
                # scopes (ours have scopes, so the JWT names them instead).
                self._http = AuthorizedSession(auth.credentials, default_host=DEFAULT_HOST)
                self._http.headers["User-Agent"] = f"alertpull/{__version__}"
            return self._http

    def _budget(self) -> RateBudget:
        # The quota is per project and shared by every caller using that project.
        project = self._ensure_auth().quota_project or "unknown-project"
        return RateBudget.shared(f"scc:{project}", self.settings["reads_per_minute"], 60.0)

    @contextlib.contextmanager
    def _google_errors(self, scope: Scope) -> Iterator[None]:
        """Turn Google errors escaping the block into a one-line, secret-free SourceError."""
        from google.api_core.exceptions import GoogleAPICallError, RetryError
        from google.auth.exceptions import GoogleAuthError
        from requests import RequestException

        try:
            yield
        # (A NotAPage is always retried, so it arrives as the cause of a RetryError.)
        except (GoogleAPICallError, RetryError, GoogleAuthError, RequestException) as err:
            where = _Where(scope.params["path"], scope.params["parent"], self._principal(),
                           endpoint_for(scope.params["location"], self.settings["api_endpoint"]),
                           self.settings)
            raise SourceError(describe_error(err, where)) from None


# -- scopes and requests -------------------------------------------------------------------


def checked_parent(parent: str) -> str:
    """`organizations/ID`, `folders/ID` or `projects/ID` (a trailing `/sources/-` is allowed)."""
    value = parent.strip().removesuffix("/sources/-")
    if not _PARENT.match(value):
        raise ConfigError(
            f"parent {parent!r} is not organizations/ID, folders/ID or projects/ID; fix 'parent'"
        )
    return value


def _scope(parent: str, location: str | None) -> Scope:
    path = f"{parent}/sources/-" + (f"/locations/{location}" if location else "")
    key = f"{parent}/locations/{location}" if location else parent
    return FINDINGS.scope(key, {"parent": parent, "location": location, "path": path}, parent)


def endpoint_for(location: str | None, override: str | None) -> str | None:
    """The API host for a location; None = the global endpoint (DEFAULT_HOST).

    Resources under data residency are served only by their location's regional endpoint.
    """
    if override:
        return override
    if location in (None, GLOBAL):
        return None
    return f"securitycenter.{location}.rep.googleapis.com"


def event_time_filter(window: Window) -> str:
    return (
        f'event_time >= "{format_time(window.start)}" AND '
        f'event_time < "{format_time(window.end)}"'
    )


def base_url(endpoint: str | None) -> str:
    """An endpoint as a URL prefix: https:// unless it names its scheme (as the SDK does)."""
    endpoint = (endpoint or DEFAULT_HOST).rstrip("/")
    return endpoint if "://" in endpoint else f"https://{endpoint}"


def _retry(deadline: float, initial: float) -> Any:
    """Retry quota and transient server/network errors for `deadline` seconds, backing off
    from `initial` seconds, never 4xx auth errors."""
    import requests
    from google.api_core import exceptions as api
    from google.api_core.retry import Retry, if_exception_type
    from google.auth.exceptions import TransportError

    transient = if_exception_type(
        api.TooManyRequests,  # 429 over REST; ResourceExhausted is its gRPC twin
        api.ResourceExhausted,
        api.InternalServerError,
        api.BadGateway,
        api.ServiceUnavailable,
        api.GatewayTimeout,
        api.DeadlineExceeded,
        requests.exceptions.ConnectionError,  # (not SSLError: see below)
        requests.exceptions.ChunkedEncodingError,  # a body cut short of its Content-Length
        requests.exceptions.Timeout,
        TransportError,  # the token endpoint unreachable
    )
    def worth_retrying(err: Exception) -> bool:
        # A certificate the CA bundle does not trust fails the same way on every try; an
        # answer that is not a page was mangled on its way, like a body cut short.
        return ((transient(err) and not isinstance(err, requests.exceptions.SSLError))
                or isinstance(err, NotAPage))

    return Retry(predicate=worth_retrying, initial=initial, maximum=RETRY_MAXIMUM,
                 multiplier=2.0, timeout=deadline)


class NotAPage(ValueError):
    """A successful answer whose body is not a ListFindingsResponse JSON object."""


def read_page(response: Any) -> dict[str, Any]:
    """A ListFindingsResponse as the API sent it; an error answer as api-core's exception
    (PermissionDenied, TooManyRequests, …), which the retry predicate and describe_error know."""
    from google.api_core.exceptions import from_http_response

    if response.status_code >= 400:
        raise from_http_response(response)
    try:
        page = parse_json(response.content)
    except ValueError as err:  # e.g. a proxy's HTML page, or a body cut short
        where = f" at character {err.pos}" if isinstance(err, json.JSONDecodeError) else ""
        raise NotAPage(f"malformed JSON{where}") from None
    if not isinstance(page, dict) or not isinstance(page.get(RESULTS, []), list):
        raise NotAPage(f"a JSON value without a {RESULTS} list")
    return page


def _as_is(_pager: Any, result: Any) -> Any:
    """HTTPIterator's item_to_value: raw is the result as sent."""
    return result


# -- credentials ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Auth:
    credentials: Any
    principal: str  # who the calls run as, for error messages
    quota_project: str | None  # the project whose read quota the calls draw on


def _load_auth(settings: Mapping[str, Any]) -> _Auth:
    import google.auth
    from google.auth import impersonated_credentials
    from google.oauth2 import service_account

    path = settings["credentials_file"]
    if path:
        credentials = _service_account_key(path)
        project = credentials.project_id
    else:
        # ADC also covers workload identity federation (an external_account config named
        # by GOOGLE_APPLICATION_CREDENTIALS) and an attached service account.
        credentials, project = google.auth.default(scopes=SCOPES)
    principal = getattr(credentials, "service_account_email", None) or (
        "Application Default Credentials"
    )
    target = settings["impersonate_service_account"]
    if target:
        credentials = impersonated_credentials.Credentials(
            source_credentials=credentials,
            target_principal=target,
            target_scopes=list(SCOPES),
            lifetime=3600,
            iam_endpoint_override=_impersonation_url(settings["iam_endpoint"], target),
        )
        principal, project = target, _service_account_project(target) or project
    if settings["quota_project"]:
        # Sent as x-goog-user-project on every call, by the credentials themselves.
        credentials = credentials.with_quota_project(settings["quota_project"])
    if isinstance(credentials, service_account.Credentials):
        # As the generated clients do: a key signs its own JWT for the API (AIP-4111)
        # instead of trading it for a token at Google's token endpoint first.
        credentials = credentials.with_always_use_jwt_access(True)
    return _Auth(credentials, principal, settings["quota_project"] or project)


def _service_account_key(path: str) -> Any:
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_file(path, scopes=SCOPES)
    except (OSError, ValueError) as err:  # unreadable, not JSON, or not a service-account key
        reason = (err.strerror if isinstance(err, OSError) else None) or one_line(str(err))
        raise SourceError(
            f"credentials_file {path} is not a usable service-account key: {reason}"
        ) from None


def _impersonation_url(base: str | None, target: str) -> str | None:
    if not base:
        return None  # google-auth's own iamcredentials URL
    return f"{base.rstrip('/')}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"


def _service_account_project(email: str) -> str | None:
    """my-sa@my-project.iam.gserviceaccount.com -> my-project."""
    domain = email.partition("@")[2]
    project, _, rest = domain.partition(".")
    return project if rest == "iam.gserviceaccount.com" else None


# -- errors --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    path: str
    parent: str
    principal: str
    endpoint: str | None
    settings: Mapping[str, Any]


def describe_error(err: Exception, where: _Where) -> str:
    """One line for a Google error: what failed, where, and what to fix."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    if isinstance(err, api.RetryError):
        cause = err.cause if isinstance(err.cause, Exception) else err
        return f"{_describe_cause(cause, where)} (still failing after retries)"
    if isinstance(err, auth.GoogleAuthError):
        return _describe_auth_error(err, where)
    return _describe_cause(err, where)


def _describe_cause(err: Exception, where: _Where) -> str:
    from google.api_core import exceptions as api

    endpoint = where.endpoint or DEFAULT_HOST
    if isinstance(err, NotAPage):
        return f"SCC answered {where.path} with {err} instead of a ListFindingsResponse"
    if isinstance(err, api.Forbidden):
        status, message = _status_and_message(err)
        if err.reason == "SERVICE_DISABLED" or "has not been used" in message:
            return (
                "the Security Command Center API is disabled in the calling project: enable "
                "securitycenter.googleapis.com there, or set quota_project to a project where "
                "it is enabled"
            )
        return (
            f"permission denied listing findings of {where.path} as {where.principal} "
            f"({err.code} {status}): grant {VIEWER_ROLE} on {where.parent}"
        )
    if isinstance(err, api.Unauthorized):
        return (
            f"Google rejected the credentials of {where.principal} (401 UNAUTHENTICATED): "
            "check credentials_file or Application Default Credentials (the key may be "
            "disabled or deleted)"
        )
    if isinstance(err, api.TooManyRequests):
        return (
            f"SCC read quota exhausted listing {where.path} (429 RESOURCE_EXHAUSTED): lower "
            "reads_per_minute or share the quota with fewer callers"
        )
    if isinstance(err, api.NotFound):
        return f"{where.path} was not found at {endpoint} (404): check parent and locations"
    if isinstance(err, api.GoogleAPICallError):
        status, message = _status_and_message(err)
        hint = "; check parent and locations" if isinstance(err, api.BadRequest) else ""
        return f"SCC list_findings of {where.path} failed: {err.code} {status}: {message}{hint}"
    return (
        f"cannot reach the SCC API at {endpoint} ({type(err).__name__}): check api_endpoint, "
        "the network and HTTPS_PROXY"
    )


def _describe_auth_error(err: Exception, where: _Where) -> str:
    from google.auth import exceptions as auth

    target = where.settings["impersonate_service_account"]
    detail = one_line(str(err.args[0])) if err.args else type(err).__name__
    if isinstance(err, auth.DefaultCredentialsError):
        return (
            "no Google credentials found: set credentials_file to a service-account key, or "
            "set up Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, "
            "gcloud auth application-default login, or an attached service account)"
        )
    if isinstance(err, auth.RefreshError) and target:
        return (
            f"cannot impersonate {target}: {detail}; grant the caller "
            "roles/iam.serviceAccountTokenCreator on it and enable the IAM Credentials API"
        )
    if isinstance(err, auth.RefreshError):
        return (
            f"cannot get an access token for {where.principal}: {detail}; check that the key "
            "is valid and not disabled or deleted"
        )
    return f"Google authentication failed for {where.principal}: {detail}"


def _status_and_message(err: Any) -> tuple[str, str]:
    """The `status` and `message` of Google's JSON error body (the exception's own message
    also carries the request URL)."""
    response = getattr(err, "response", None)
    if response is None:
        return "", one_line(str(err.message))
    # Not Google's JSON: a proxy's or load balancer's page says no more than its status.
    return error_body(GOOGLE_ERROR_BODY, response)


# -- normalization -------------------------------------------------------------------------


def _parts(raw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The finding and its resource (possibly empty) of a ListFindingsResult."""
    finding = raw.get("finding") if isinstance(raw, dict) else None
    if not isinstance(finding, dict):
        raise MalformedAlert("SCC result has no finding object")
    resource = raw.get("resource")
    return finding, resource if isinstance(resource, dict) else {}


def _required(finding: dict[str, Any], field: str) -> str:
    value = finding.get(field)
    if not isinstance(value, str) or not value:
        raise MalformedAlert(f"SCC finding has no {field}")
    return value


def crm_ancestor(name: str) -> str | None:
    """`projects/123` of `projects/123/sources/…`; None for a name not under a CRM node."""
    parts = name.split("/")
    if len(parts) >= 2 and name.startswith(_CRM_KINDS) and parts[1]:
        return f"{parts[0]}/{parts[1]}"
    return None


def humanize_category(category: str) -> str:
    """PUBLIC_BUCKET_ACL -> "Public bucket ACL"; a category already in words is kept."""
    if not _ENUM_LIKE.match(category):
        return category
    words = [word if word in ACRONYMS else word.lower() for word in category.split("_")]
    words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


def status_of(state: str, mute: str | None) -> str:
    """INACTIVE -> resolved (whatever the mute), MUTED -> suppressed, ACTIVE -> new."""
    if state == "INACTIVE":
        return "resolved"
    if mute == "MUTED":
        return "suppressed"
    return "new" if state == "ACTIVE" else "unknown"


def console_link(name: str, resource: dict[str, Any]) -> str | None:
    """The finding's page in the console; None when its organization is unknown."""
    kind, _, rest = name.partition("/")
    ident = rest.split("/", 1)[0]
    organization = crm_ancestor(dig(resource, "gcpMetadata", "organization") or "")
    if kind == "organizations":
        context = f"organizationId={ident}"
    elif kind == "projects":
        context = f"project={ident}"
    elif organization:  # a folder-level name: the console opens it in its organization
        context = f"organizationId={organization.split('/')[1]}"
    else:
        return None
    # = quote(name, safe=""), but through quote's fast path when the name has nothing to
    # escape but its slashes (the byte-by-byte path was a quarter of normalize's time).
    return f"{CONSOLE};name={quote(name, safe='/').replace('/', '%2F')}?{context}"


def _extra(finding: dict[str, Any], resource: dict[str, Any], category: str | None,
           event_time: datetime) -> dict[str, Any]:
    return {
        "description": finding.get("description"),
        "category": category,
        "type": finding.get("findingClass"),
        "region": resource.get("location"),
        "product": finding.get("parentDisplayName") or "Security Command Center",
        # event_time "reflects when the finding was resolved" for an INACTIVE one.
        "resolved_at": event_time if finding.get("state") == "INACTIVE" else None,
        "mitre": _mitre(finding.get("mitreAttack")),
        "resources": _resources(finding, resource),
        "users": _users(finding.get("access")),
        "related": _related(finding),
    }


def _mitre(attack: Any) -> dict[str, list[str]]:
    if not isinstance(attack, dict):
        return {}
    mitre = {
        "tactics": unique_strings(
            [attack.get("primaryTactic"), *attack.get("additionalTactics", [])]
        ),
        "techniques": unique_strings(
            [*attack.get("primaryTechniques", []), *attack.get("additionalTechniques", [])]
        ),
    }
    return {key: values for key, values in mitre.items() if values}


def _resources(finding: dict[str, Any], resource: dict[str, Any]) -> list[dict[str, Any]]:
    metadata = resource.get("gcpMetadata") or {}
    entry = compact({
        "type": resource.get("type"),
        "id": resource.get("name") or finding.get("resourceName"),
        "name": resource.get("displayName"),
        "project": metadata.get("projectDisplayName") or metadata.get("project"),
        "region": resource.get("location"),
        "cloud_provider": resource.get("cloudProvider"),
    })
    return [entry] if entry.get("id") else []


_PRINCIPAL_TYPES = {"serviceAccount": "ServiceAccount", "user": "User", "group": "Group"}


def _users(access: Any) -> list[dict[str, Any]]:
    if not isinstance(access, dict) or not (access.get("principalEmail")
                                            or access.get("principalSubject")):
        return []
    subject = access.get("principalSubject") or ""
    kind = _PRINCIPAL_TYPES.get(subject.partition(":")[0], "Principal")
    user = {
        "type": kind,
        "id": subject,
        "name": access.get("principalEmail"),
        "user_agent": access.get("userAgent"),
    }
    return [compact(user)]


def _related(finding: dict[str, Any]) -> dict[str, list[str]]:
    indicator = finding.get("indicator") or {}
    access = finding.get("access") or {}
    related = {
        "ips": unique_strings([*indicator.get("ipAddresses", []), access.get("callerIp")]),
        "domains": unique_strings(indicator.get("domains", [])),
        "urls": unique_strings([*indicator.get("uris", []), finding.get("externalUri")]),
        "hashes": unique_strings(_hashes(finding)),
        "emails": unique_strings([access.get("principalEmail")]),
    }
    return {name: values for name, values in related.items() if values}


def _hashes(finding: dict[str, Any]) -> Iterator[Any]:
    """SHA-256 of the files and of the processes' binaries, scripts and libraries."""
    for file in finding.get("files") or []:
        yield dig(file, "sha256")
    for process in finding.get("processes") or []:
        yield dig(process, "binary", "sha256")
        yield dig(process, "script", "sha256")
        yield from (dig(library, "sha256") for library in dig(process, "libraries") or [])
