"""Microsoft Graph plumbing shared by the Microsoft connectors (Entra ID; Intune builds on it).

One implementation, for every Graph source, of:
- app-only auth: MSAL's ConfidentialClientApplication with a client secret or a certificate
  (PEM private key + SHA-1 thumbprint). The token comes from MSAL's own cache, so it is
  requested once per run; a 401 from Graph makes it drop the token and ask once more, then
  fail;
- sovereign clouds: `authority_host` and `graph_endpoint` are options. MSAL's instance
  discovery is turned off for authority hosts Microsoft does not list (it would ask
  login.microsoftonline.com to vouch for them);
- HTTP: sessions from alertpull.http.make_session (timeouts, proxies, CA bundles, retries
  on 5xx and dropped connections), a RateBudget per endpoint, and 429s retried in the
  endpoint's budget (alertpull.http.retried_in_budget, see GraphClient._send);
- paging: alertpull.paging's loop, following `@odata.nextLink` until it is absent, with
  its loop guard (a link seen before in the window, max_pages);
- errors: one secret-free line naming the problem and the fix (GRAPH_VOICE through
  alertpull.http.answer_error, token_error).

A connector uses it as:

    app = GraphApp.from_settings(source_name, settings)     # settings include GRAPH_OPTIONS
    graph = GraphClient(app, log, settings)
    devices = Endpoint("/v1.0/deviceManagement/managedDevices",
                       "DeviceManagementManagedDevices.Read.All",
                       RateBudget.shared(f"msgraph-intune:{app.tenant_id}", 100, 20.0))
    for page in graph.pages(devices, {"$top": "1000"}): ...

msal is imported inside the methods that need it: `alertpull --help` never imports it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests

from alertpull.connector import Option, Secret, max_retries_option, retry_base_option
from alertpull.errors import ConfigError, SourceError, one_line
from alertpull.http import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    RETRY_BASE_SECONDS,
    RETRY_STATUSES,
    ErrorVoice,
    RateBudget,
    UnreadableAnswer,
    answer_error,
    asked_again_if_unreadable,
    error_body,
    make_session,
    retried_in_budget,
    transport_errors,
)
from alertpull.http import throttle_wait as throttle_wait  # Graph's 429 wait, for its tests
from alertpull.paging import MAX_PAGES_OPTION, NextUrlInBody, Request, pages
from alertpull.record import parse_json
from alertpull.validate import endpoint_url

PUBLIC_AUTHORITY = "https://login.microsoftonline.com"
PUBLIC_GRAPH = "https://graph.microsoft.com"

# What every Graph source imports when it signs in -> the extra that installs it.
GRAPH_REQUIRES = {"msal": "microsoft"}

# The options every Graph source takes; a connector adds its own beside them.
GRAPH_OPTIONS: dict[str, Option] = {
    "tenant_id": Option(required=True, help="directory (tenant) id or verified domain"),
    "client_id": Option(required=True, help="application (client) id of the app registration"),
    "client_secret": Option(
        secret=True, help="client secret Value (not its Secret ID); or use certificate_file"
    ),
    "certificate_file": Option(
        "path", help="PEM file holding the private key of a certificate uploaded to the app"
    ),
    "certificate_thumbprint": Option(
        help="SHA-1 thumbprint of that certificate (hex, as the Entra admin center shows it)"
    ),
    "authority_host": Option(
        default=PUBLIC_AUTHORITY,
        help="sign-in host, e.g. https://login.microsoftonline.us (US Government)",
    ),
    "graph_endpoint": Option(
        default=PUBLIC_GRAPH,
        help="Graph host, e.g. https://graph.microsoft.us or https://microsoftgraph.chinacloudapi.cn",
    ),
    "timeout_seconds": Option(
        "seconds", default=60, help="seconds to wait for a vendor's answer (connect and read)"
    ),
    # Bounds both retry loops of a call: GraphClient's own for 429s, urllib3's for the rest.
    "max_retries": max_retries_option(DEFAULT_RETRIES),
    "retry_base_seconds": retry_base_option(RETRY_BASE_SECONDS),
    "max_pages": MAX_PAGES_OPTION,
}

# 429 is retried by GraphClient itself, inside the endpoint's budget.
SERVER_ERRORS = tuple(status for status in RETRY_STATUSES if status != 429)


@dataclass(frozen=True)
class GraphApp:
    """Who signs in where: an app registration in one tenant of one cloud."""

    source: str
    tenant_id: str
    client_id: str
    client_secret: Secret | None
    certificate_file: str | None
    private_key: Secret | None  # the PEM text of certificate_file
    thumbprint: str | None
    authority_host: str
    graph_endpoint: str

    @classmethod
    def from_settings(cls, source: str, settings: Mapping[str, Any]) -> GraphApp:
        """Check what the option types cannot (credential choice, URLs); read the key file."""
        return cls.checked(f"sources.{source}", source, settings)

    @classmethod
    def checked(cls, where: str, source: str, settings: Mapping[str, Any]) -> GraphApp:
        secret, cert_file = settings["client_secret"], settings["certificate_file"]
        if (secret is None) == (cert_file is None):
            raise ConfigError(
                f"{where}: set exactly one of client_secret and certificate_file "
                "(the app's credential)"
            )
        thumbprint = None
        if cert_file is not None:
            thumbprint = _thumbprint(settings["certificate_thumbprint"], where)
        elif settings["certificate_thumbprint"]:
            raise ConfigError(f"{where}.certificate_thumbprint: used only with "
                              "certificate_file; remove it, or set certificate_file instead "
                              "of client_secret")
        return cls(
            source=source,
            tenant_id=settings["tenant_id"],
            client_id=settings["client_id"],
            client_secret=secret,
            certificate_file=cert_file,
            private_key=_read_private_key(cert_file, where) if cert_file else None,
            thumbprint=thumbprint,
            authority_host=_https_base(settings["authority_host"], f"{where}.authority_host"),
            graph_endpoint=_https_base(settings["graph_endpoint"], f"{where}.graph_endpoint"),
        )

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def scope(self) -> str:
        """App-only tokens ask for every application permission granted on the resource."""
        return f"{self.graph_endpoint}/.default"

    def credential(self) -> str | dict[str, str]:
        """The credential in MSAL's form. Reveals the secret: hand it to MSAL only."""
        if self.private_key is not None and self.thumbprint is not None:
            return {"private_key": self.private_key.reveal(), "thumbprint": self.thumbprint}
        assert self.client_secret is not None
        return self.client_secret.reveal()


def check_graph_settings(where: str, settings: Mapping[str, Any]) -> None:
    """Everything GraphApp checks (credential choice, URLs, the key file), while the config
    loads: `where` is sources.NAME."""
    GraphApp.checked(where, where.removeprefix("sources."), settings)


def _https_base(value: str, where: str) -> str:
    if urlsplit(value.strip()).scheme != "https":
        raise ConfigError(f"{where}: {value!r} is not an https:// host URL (MSAL requires https)")
    return endpoint_url(value, where, what="a Graph or sign-in host URL",
                        form="https://host[:port], without a path")


def _thumbprint(value: str | None, where: str) -> str:
    if not value:
        raise ConfigError(
            f"{where}.certificate_thumbprint: required with certificate_file; copy it from "
            "the app's Certificates & secrets page"
        )
    digits = value.replace(":", "").replace(" ", "")
    if len(digits) != 40 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ConfigError(
            f"{where}.certificate_thumbprint: expected the 40 hex digits of a SHA-1 thumbprint"
        )
    return digits.upper()


def _read_private_key(path: str, where: str) -> Secret:
    """The PEM text, checked here: MSAL would only fail on it mid-run, with a traceback."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a text file"
        raise ConfigError(f"{where}.certificate_file: cannot read {path}: {reason}") from None
    if "ENCRYPTED" in text:
        raise ConfigError(
            f"{where}.certificate_file: {path} holds an encrypted key; store it decrypted "
            "(openssl pkey -in KEY -out PLAIN.pem) with file permissions 0600"
        )
    try:
        key = load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, RSAPrivateKey):  # Entra app certificates are RSA (RS256)
        raise ConfigError(f"{where}.certificate_file: {path} holds no PEM RSA private key")
    return Secret(text)


@dataclass(frozen=True)
class Endpoint:
    """One Graph collection: where it is, which permission reads it, how fast it may go."""

    path: str  # under graph_endpoint, e.g. /v1.0/security/alerts_v2
    permission: str  # the application permission to grant when Graph answers 403
    budget: RateBudget  # spent before every call, retries included
    headers: Mapping[str, str] = field(default_factory=dict)

    def url(self, base: str, params: Mapping[str, str]) -> str:
        # %20 for spaces (not '+') and a literal '$' in OData's $filter/$top, as Graph's
        # own documentation writes them.
        query = urlencode(params, quote_via=quote, safe="$")
        return f"{base}{self.path}?{query}" if query else f"{base}{self.path}"


class GraphClient:
    """Authenticated, paced, paged GETs on Graph. Shared by the threads of one run."""

    def __init__(self, app: GraphApp, log: logging.Logger | logging.LoggerAdapter[Any],
                 settings: Mapping[str, Any]) -> None:
        """`settings`: the source's, GRAPH_OPTIONS among them."""
        self.app = app
        self.log = log
        self.max_retries = max_retries = settings["max_retries"]
        self.backoff = backoff = settings["retry_base_seconds"]
        self.max_pages = settings["max_pages"]
        # (connect, read): the engine's connect timeout unless timeout_seconds is shorter.
        seconds = settings["timeout_seconds"]
        timeout = (min(DEFAULT_TIMEOUT[0], seconds), seconds)
        # MSAL's calls: the engine's policy, 429s included.
        self._auth_http = make_session(retries=max_retries, backoff=backoff, timeout=timeout)
        self._graph_http = make_session(retries=max_retries, backoff=backoff,
                                        statuses=SERVER_ERRORS, timeout=timeout)
        self._lock = threading.Lock()
        self._msal: Any = None
        self._token: str | None = None

    def pages(self, endpoint: Endpoint, params: Mapping[str, str]) -> Iterator[list[Any]]:
        """Yield the `value` of every page, following @odata.nextLink."""
        def send(request: Request) -> tuple[requests.Response, Any]:
            return self._get(endpoint, request.url)

        def values(body: dict[str, Any]) -> list[Any]:
            found = body.get("value")
            if not isinstance(found, list):
                raise SourceError(f"Graph answered GET {endpoint.path} without a value list")
            return found

        first = Request("GET", endpoint.url(self.app.graph_endpoint, params))
        # The link's host is checked in _get, with the token at stake named.
        next_link = NextUrlInBody('"@odata.nextLink"', noun="nextLink", same_origin=False)
        yield from pages(send, first, next_link, values, vendor="Graph",
                         max_pages=self.max_pages)

    def first_page(self, endpoint: Endpoint, params: Mapping[str, str]) -> list[Any]:
        """One call, e.g. for `alertpull check`."""
        return next(self.pages(endpoint, params), [])

    # -- one GET ---------------------------------------------------------------------------

    def _get(self, endpoint: Endpoint, url: str) -> tuple[requests.Response, dict[str, Any]]:
        """One GET's answer and JSON object, asked again while its body is not JSON."""
        self._check_own_host(url, endpoint)
        return asked_again_if_unreadable(lambda: self._get_once(endpoint, url),
                                         self.max_retries, self.backoff)

    def _get_once(self, endpoint: Endpoint,
                  url: str) -> tuple[requests.Response, dict[str, Any]]:
        token = self._access_token()
        response = self._send(endpoint, url, token)
        if response.status_code == 401:
            # An expired or revoked token: ask for a new one once; a second 401 is real.
            self.log.info("Graph refused the access token for GET %s; acquiring a new one",
                          endpoint.path)
            response = self._send(endpoint, url, self._access_token(rejected=token))
        if response.status_code != 200:
            raise graph_error(response, endpoint, self.app.client_id, self.max_retries)
        try:
            body = parse_json(response.content)
        except ValueError:
            raise UnreadableAnswer(f"Graph answered GET {endpoint.path}") from None
        if not isinstance(body, dict):
            raise SourceError(f"Graph answered GET {endpoint.path} with JSON that is not an "
                              "object")
        return response, body

    def _send(self, endpoint: Endpoint, url: str, token: str) -> requests.Response:
        """GET within the endpoint's budget, its 429s retried there rather than in urllib3:
        Identity Protection allows one request per second per tenant and its 429 carries no
        Retry-After, so urllib3 would send the first retry at once, outside the pacing."""
        headers = {"Authorization": f"Bearer {token}", **endpoint.headers}

        def get() -> requests.Response:
            with transport_errors(f"GET {endpoint.path}", self.app.graph_endpoint,
                                  self.max_retries, "check graph_endpoint"):
                return self._graph_http.get(url, headers=headers)

        def throttled(wait: float) -> None:
            self.log.info("Graph throttled GET %s (429); retrying in %.1fs", endpoint.path, wait)

        return retried_in_budget(get, endpoint.budget, self.max_retries, throttled,
                                 self.backoff)

    def _check_own_host(self, url: str, endpoint: Endpoint) -> None:
        """Never send the token anywhere but graph_endpoint."""
        own = urlsplit(self.app.graph_endpoint)
        link = urlsplit(url)
        if (link.scheme, link.netloc) != (own.scheme, own.netloc):
            raise SourceError(
                f"Graph's nextLink for GET {endpoint.path} points to {link.scheme}://"
                f"{link.netloc}, not graph_endpoint; refusing to send the token there"
            )

    # -- the token -------------------------------------------------------------------------

    def _access_token(self, rejected: str | None = None) -> str:
        """The app's token from MSAL's cache; a new one if Graph rejected `rejected`."""
        with self._lock:
            if self._msal is None:
                self._msal = self._new_msal_app()
            if rejected is not None and rejected == self._token:
                self._msal.remove_tokens_for_client()
            with self._msal_errors():
                result = self._msal.acquire_token_for_client(scopes=[self.app.scope])
            if "access_token" not in result:
                raise SourceError(token_error(result, self.app))
            self._token = str(result["access_token"])
            return self._token

    def _new_msal_app(self) -> Any:
        import msal
        from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

        host = urlsplit(self.app.authority_host).hostname
        with self._msal_errors():
            return msal.ConfidentialClientApplication(
                self.app.client_id,
                client_credential=self.app.credential(),
                authority=self.app.authority,
                http_client=self._auth_http,
                # Off for hosts Microsoft does not list, or MSAL would ask the public
                # cloud to vouch for them (and fail offline, in tests and air gaps).
                instance_discovery=host in WELL_KNOWN_AUTHORITY_HOSTS,
            )

    @contextlib.contextmanager
    def _msal_errors(self) -> Iterator[None]:
        """MSAL raises ValueError for an authority it cannot discover (or settings it rejects)."""
        with transport_errors("sign-in", self.app.authority_host, self.max_retries,
                              "check authority_host"):
            try:
                yield
            except ValueError as exc:
                raise SourceError(_msal_value_error(exc, self.app)) from None


# -- errors --------------------------------------------------------------------------------

# Graph's error body: {"error": {"code": ..., "message": ...}}.
GRAPH_VOICE = ErrorVoice("Graph", code_path="error.code", message_path="error.message", lines={
    "401": "Graph rejected a fresh access token for {call} ({said}); check that "
           "authority_host and graph_endpoint are the same cloud and tenant_id is the right one",
    "403": "Graph denied {call} ({said}); check that the app {client} has the application "
           "permission {permission} with admin consent",
})
MISSING_ROLES = ("Graph denied {call}: the app {client} lacks the application permission "
                 "{permission}; add it (API permissions > Microsoft Graph > Application "
                 "permissions) and grant admin consent")


def graph_error(response: requests.Response, endpoint: Endpoint, client_id: str,
                retries: int) -> SourceError:
    """One line for a Graph error answer (after `retries` and the one token renewal)."""
    voice = GRAPH_VOICE
    if response.status_code == 403 and "Missing application roles" in error_body(voice,
                                                                                  response)[1]:
        voice = ErrorVoice(voice.vendor, voice.message_path, voice.code_path,
                           {"403": MISSING_ROLES})
    return answer_error(voice, response, f"GET {endpoint.path}", retries,
                        client=client_id, permission=endpoint.permission)


# AADSTS codes with a known fix. Entra's descriptions never hold the secret; ours don't either.
_TOKEN_FIXES = {
    7000215: "the client secret for {client} was rejected; check client_secret (use the "
    "secret's Value, not its Secret ID)",
    7000222: "the client secret for {client} has expired; create a new one under "
    "Certificates & secrets and update client_secret",
    700027: "the certificate for {client} was rejected; check that certificate_file and "
    "certificate_thumbprint match a certificate uploaded to the app",
    700016: "application {client} was not found in tenant {tenant}; check client_id and "
    "tenant_id (a multi-tenant app needs admin consent in this tenant)",
    7000229: "application {client} has no service principal in tenant {tenant}; an admin "
    "must consent to it in this tenant",
    90002: "tenant {tenant} was not found at {authority_host}; check tenant_id and that "
    "authority_host is the tenant's cloud",
}


def token_error(result: Mapping[str, Any], app: GraphApp) -> str:
    """One line for a failed MSAL token request (MSAL returns errors as a dict)."""
    codes = [code for code in result.get("error_codes") or [] if code in _TOKEN_FIXES]
    error = str(result.get("error") or "error")
    if not codes and error == "invalid_client":
        codes = [7000215 if app.client_secret is not None else 700027]
    if codes:
        fix = _TOKEN_FIXES[codes[0]]
        return fix.format(client=app.client_id, tenant=app.tenant_id,
                          authority_host=app.authority_host)
    # The first line only: Entra appends trace and correlation ids on the next ones.
    description = str(result.get("error_description") or "").strip().splitlines()
    first = one_line(description[0]) if description else "no description"
    return f"token request for {app.client_id} at {app.authority} failed: {error}: {first}"


def _msal_value_error(exc: ValueError, app: GraphApp) -> str:
    # MSAL replaces the discovery answer (e.g. AADSTS90002, no such tenant) with its own text.
    if "authority" in str(exc).lower():
        return (
            f"cannot read the sign-in metadata of tenant {app.tenant_id} at {app.authority}"
            "/v2.0/.well-known/openid-configuration; check tenant_id and authority_host"
        )
    return f"MSAL refused the sign-in settings of {app.client_id}: {one_line(str(exc))}"
