"""Google Workspace Alert Center (v1beta1): the alerts of one Workspace customer.

Alert Center can filter alerts.list on `createTime` only, yet alerts change after they are
created (`updateTime`: status, assignee, `deleted`, `endTime`). A window is therefore read
in two passes, both kept inside the window pinned for the run:

1. new alerts: `createTime >= start AND createTime < end`, ordered `create_time asc`;
2. updates: the alerts created before the window (`createTime < start`), ordered
   `update_time desc`, read from the newest down and stopped after the page where
   updateTime drops below the window's start. This catches alerts created before the
   window and changed inside it.

A version whose updateTime is at or after the window's end is left for the next run, whose
window starts there. Pass 2 asks the server to leave out the alerts created inside the
window: pass 1 read them, in the version pass 2 would meet (one changed since carries an
updateTime past the window's end), so nothing is downloaded twice, a first run or backfill
reads each alert once, and no per-alert memory grows with the window.
What pass 1 could not see yet (a change visible only late) the next run's overlap reads.
The changed-at field is updateTime (createTime when absent); the stream is not
ordered by it, so a run cut short fails instead of committing a partial mark.

Auth is a service-account key with domain-wide delegation impersonating an admin
(`subject`): the only way to reach this API (a service account acting as itself gets a bare
400, user OAuth cannot be granted the scope). The client is google-api-python-client with
its bundled discovery document, over an httplib2 transport built here with a timeout, the
environment's proxy settings and CA bundle. Quota errors (503, and 429) are retried with the
backoff Google's limits guide asks for, starting at 5 s.

google-api-python-client, google-auth and httplib2 are imported inside the methods only.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

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
    max_retries_option,
    retry_base_option,
)
from alertpull.connectors.google import GOOGLE_ERROR_BODY
from alertpull.errors import ConfigError, MalformedAlert, SourceError, one_line
from alertpull.http import UnreadableAnswer, error_fields
from alertpull.paging import MAX_PAGES_OPTION, PageGuard
from alertpull.record import Normalized, dig, text, unique_strings
from alertpull.timeutil import format_time, parse_time_or_none
from alertpull.validate import endpoint_url, key_file

SCOPE = "https://www.googleapis.com/auth/apps.alerts"
KEY_FIX = ("point it at the JSON key of a service account with domain-wide delegation (Alert "
           f"Center accepts no other credentials: user OAuth cannot be granted {SCOPE})")
DELEGATION_PATH = "Admin console > Security > API controls > Domain-wide delegation"
DEFAULT_API_ROOT = "https://alertcenter.googleapis.com/"
DEFAULT_CUSTOMER = "my_customer"  # the tenant when neither the alert nor config names one
CREATED_ASCENDING = "create_time asc"
CREATED_DESCENDING = "create_time desc"
UPDATED_DESCENDING = "update_time desc"
# alerts.list serves at most 1,000 alerts a page, whatever pageSize asks (the reference says
# only "server may return fewer"); fewer per page only multiplies the round trips.
MAX_PAGE_SIZE = 1000
# Google's limits guide: quota errors are 503s; back off exponentially, "wait 5 seconds and
# retry". 429 and the other transient 5xx get the same treatment.
RETRY_BASE_SECONDS = 5
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRIES = 4  # max_retries' default: 5 + 10 + 20 + 40 s of waiting (plus jitter)
SEVERITIES = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
STATUSES = {"NOT_STARTED": "new", "IN_PROGRESS": "in_progress", "CLOSED": "resolved"}
REQUIRED_FIELDS = ("alertId", "createTime")
LANDMARKS = Landmarks(id=("alertId",), title=("type",), created=("createTime",),
                      updated=("updateTime", "createTime"))


# Read in two passes (created, then changed), so not in changed-at order: a window cut short
# is read again. Google documents no retention for alerts (only that deleted ones are purged
# after 30 days), so --since is not clamped: older backfills are best effort.
ALERTS = Stream("alerts", ordered=False, retention=None)


class AlertCenterConnector(Connector):
    type_name = "workspace_alertcenter"
    vendor = Vendor("Google Workspace")
    default_overlap = timedelta(hours=1)
    options: ClassVar[Mapping[str, Option]] = {
        "credentials_file": Option(
            "path",
            required=True,
            help="the service account's JSON key (domain-wide delegation), relative to this "
            "config file",
        ),
        "subject": Option(
            required=True,
            help="admin email the service account impersonates; Alert Center refuses a "
            "service account acting as itself",
        ),
        "customer_id": Option(
            help="Workspace customer ID without its leading C (default: the subject's customer)"
        ),
        "api_endpoint": Option(
            help="Alert Center endpoint override (default https://alertcenter.googleapis.com/)"
        ),
        "page_size": Option("int", default=MAX_PAGE_SIZE, help="alerts asked for per page"),
        "retry_base_seconds": retry_base_option(RETRY_BASE_SECONDS),
        "timeout_seconds": Option(
            "seconds", default=60, help="connect and read timeout of each HTTP call"
        ),
        "max_retries": max_retries_option(MAX_RETRIES),
        "max_pages": MAX_PAGES_OPTION,
    }
    requires: ClassVar[Mapping[str, str]] = {
        "googleapiclient": "workspace", "google_auth_httplib2": "workspace",
        "httplib2": "workspace", "google.oauth2": "workspace",
    }

    @classmethod
    def check_settings(cls, where: str, settings: Mapping[str, Any]) -> None:
        key_file(settings["credentials_file"], f"{where}.credentials_file",
                 types=("service_account",), fix=KEY_FIX)
        if "@" not in settings["subject"]:
            raise ConfigError(f"{where}.subject: {settings['subject']!r} is not an email "
                              "address; use the admin the service account acts as, e.g. "
                              "admin@example.com")
        if settings["api_endpoint"]:
            endpoint_url(settings["api_endpoint"], f"{where}.api_endpoint", path=True,
                         form="https://host[:port]/, e.g. https://alertcenter.googleapis.com/")

    def __init__(self, source_name: str, settings: Mapping[str, Any], log: Log) -> None:
        super().__init__(source_name, settings, log)
        self._lock = threading.Lock()
        self._client: _Client | None = None

    # -- the connector contract ----------------------------------------------------------

    def scopes(self) -> list[Scope]:
        customer = self.settings["customer_id"] or DEFAULT_CUSTOMER
        return [ALERTS.scope(customer, {"customer_id": self.settings["customer_id"]}, customer)]

    def fetch(self, scope: Scope, window: Window, memory: Memory) -> Iterator[list[Any]]:
        client = self._connect()
        with client.errors():
            for page in client.pages(filter=created_in(window), orderBy=CREATED_ASCENDING):
                kept = [alert for alert in page if not _changed_at_or_after(alert, window.end)]
                if kept:
                    yield kept
            for page in client.pages(filter=created_before(window), orderBy=UPDATED_DESCENDING):
                updated, passed_start = updated_in(page, window)
                if updated:
                    yield updated
                if passed_start:
                    return

    def normalize(self, scope: Scope, raw: Any) -> Normalized:
        created_at, updated_at = _validated(raw)
        metadata = _object(raw.get("metadata"))
        payload = payload_of(_object(raw.get("data")))
        severity_raw = str(metadata["severity"]) if metadata.get("severity") else None
        status, status_raw = _status(raw, metadata)
        tenant = raw.get("customerId") or self.settings["customer_id"] or DEFAULT_CUSTOMER
        return Normalized(
            native_id=raw["alertId"],
            tenant=str(tenant),
            changed_at=updated_at or created_at,
            title=title(text(raw.get("type")) or "Alert Center alert", payload.rule),
            severity=SEVERITIES.get(severity_raw or "", "unknown"),
            severity_raw=severity_raw,
            status=status,
            status_raw=status_raw,
            created_at=created_at,
            updated_at=updated_at,
            link=investigation_link(raw.get("securityInvestigationToolLink")),
            extra=_extra(raw, metadata, payload),
        )

    def landmarks(self, scope: Scope) -> Landmarks:
        return LANDMARKS

    def check(self) -> str:
        client = self._connect()
        with client.errors():
            newest = next(client.pages(orderBy=CREATED_DESCENDING, pageSize=1), [])
        customer = self.settings["customer_id"] or "the subject's customer"
        seen = (
            f"newest alert created {newest[0].get('createTime')}" if newest else "no alerts yet"
        )
        return f"Alert Center of {customer} as {self.settings['subject']}: {seen}"

    # -- client ----------------------------------------------------------------------------

    def _connect(self) -> _Client:
        with self._lock:
            if self._client is None:
                self._client = _Client.open(self.settings, self.log)
            return self._client


# -- the API client ---------------------------------------------------------------------------


@dataclass
class _Client:
    """alerts() of the discovery-built service, with the retry and error policy around it."""

    alerts: Any
    credentials: Any
    settings: Mapping[str, Any]
    log: Log
    client_id: str
    token_uri: str

    @classmethod
    def open(cls, settings: Mapping[str, Any], log: Log) -> _Client:
        import google_auth_httplib2
        import httplib2
        from google.oauth2 import service_account
        from googleapiclient.discovery import build

        key_info = read_key_file(settings["credentials_file"])
        try:
            credentials = service_account.Credentials.from_service_account_info(
                key_info, scopes=[SCOPE], subject=settings["subject"]
            )
        except ValueError as err:
            raise SourceError(
                f"credentials_file {settings['credentials_file']} is not a usable "
                f"service-account key ({one_line(str(err))}); download a new JSON key"
            ) from None
        # httplib2 has no timeout unless given one; the proxy and CA settings are read from
        # the environment as requests does (httplib2 needs PySocks for the proxy).
        http = httplib2.Http(
            timeout=settings["timeout_seconds"],
            proxy_info=httplib2.proxy_info_from_environment,
            ca_certs=os.environ.get("REQUESTS_CA_BUNDLE") or None,
        )
        endpoint = settings["api_endpoint"]
        service = build(
            "alertcenter",
            "v1beta1",
            http=google_auth_httplib2.AuthorizedHttp(credentials, http=http),
            static_discovery=True,  # the bundled document: no discovery call at run time
            cache_discovery=False,
            client_options={"api_endpoint": endpoint} if endpoint else None,
        )
        return cls(
            alerts=service.alerts(),
            credentials=credentials,
            settings=settings,
            log=log,
            client_id=str(key_info.get("client_id", "")),
            token_uri=str(key_info["token_uri"]),
        )

    def pages(self, **query: Any) -> Iterator[list[dict[str, Any]]]:
        """Each page of alerts.list, nextPageToken followed until the last page."""
        params = {"pageSize": self.settings["page_size"], **query}
        if self.settings["customer_id"]:
            params["customerId"] = self.settings["customer_id"]
        request = self.alerts.list(**params)
        guard = PageGuard("Alert Center", "", self.settings["max_pages"], then="; stopped there")
        guard.check(None)
        while request is not None:
            response = self.execute(request)
            yield list(response.get("alerts", []))
            if response.get("nextPageToken"):
                guard.check(response["nextPageToken"])
            request = self.alerts.list_next(request, response)

    def execute(self, request: Any) -> dict[str, Any]:
        """One call, retried with backoff on quota and transient errors."""
        base = float(self.settings["retry_base_seconds"])
        attempt = 1
        while True:
            try:
                return _json_object(request.execute())
            except Exception as err:
                reason = _transient_reason(err)
                if reason is None or attempt == self.attempts:
                    raise
            delay = base * 2 ** (attempt - 1) + random.uniform(0, base / 2)
            attempt += 1
            self.log.info(
                "Alert Center: %s; retrying in %.1fs (attempt %d of %d)",
                reason, delay, attempt, self.attempts,
            )
            time.sleep(delay)

    @property
    def attempts(self) -> int:
        """How many times execute() makes one call: the first time and its retries."""
        return int(self.settings["max_retries"]) + 1

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Turn a Google error escaping the block into one secret-free SourceError line."""
        try:
            yield
        except Exception as err:
            message = self.describe_error(err)
            if message is None:
                raise
            raise SourceError(message) from None

    def describe_error(self, err: Exception) -> str | None:
        """One line for an error of the Google stack (None: not one of ours to explain)."""
        from google.auth.exceptions import RefreshError
        from googleapiclient.errors import HttpError

        if isinstance(err, UnreadableAnswer):
            return str(UnreadableAnswer(err.answer, self.attempts - 1))
        if isinstance(err, HttpError):
            return self._describe_http_error(err)
        if isinstance(err, RefreshError):
            return self._describe_token_error(err)
        if _transient_reason(err) is not None or isinstance(err, ssl.SSLError):
            return self._describe_unreachable(err)
        return None

    def _delegation_fix(self) -> str:
        return (
            f"grant domain-wide delegation in the {DELEGATION_PATH}: add client ID "
            f"{self.client_id or '(see the key file)'} with scope {SCOPE}, and make "
            f"{self.settings['subject']} an admin allowed to view Alert Center (changes can "
            "take up to 24 h to apply)"
        )

    def _describe_http_error(self, err: Any) -> str:
        code, status, message = _google_error(err)
        said = f"{code} {status}".strip() + (f" {message!r}" if message else "")
        if code in (401, 403) and re.search(r"SERVICE_DISABLED|has not been used|is disabled",
                                            f"{status} {message}"):
            return (
                f"Alert Center refused the call ({said}): enable the Alert Center API "
                "(alertcenter.googleapis.com) in the service account's Google Cloud project"
            )
        if code in (401, 403):
            return f"Alert Center refused the call ({said}): {self._delegation_fix()}"
        if code == 400:
            return (
                f"Alert Center rejected the request ({said}): check subject (an existing "
                "admin user) and customer_id (the customer ID without its leading C)"
            )
        if code in RETRY_STATUSES:
            return (
                f"Alert Center answered {said} to {_attempts(self.attempts)} (quota exceeded "
                "or outage); the next run reads the same window again"
            )
        return f"Alert Center alerts.list failed: {said}"

    def _describe_token_error(self, err: Any) -> str:
        detail = one_line(str(err.args[0]) if err.args else str(err))
        if detail.startswith(("unauthorized_client", "access_denied")):
            return f"the token endpoint refused the service account ({detail}): " + (
                self._delegation_fix()
            )
        if detail.startswith("invalid_grant"):
            return (
                f"the token endpoint refused the key or subject ({detail}): check that "
                f"{self.settings['subject']} is an existing user of the domain and that the "
                "key in credentials_file is current (not deleted or disabled)"
            )
        return f"cannot get an access token from {self.token_uri} ({detail})"

    def _describe_unreachable(self, err: Exception) -> str:
        # Before the first token (or when it must be renewed) the failing call is the token
        # endpoint's; otherwise it is Alert Center's.
        where = (
            (self.settings["api_endpoint"] or DEFAULT_API_ROOT)
            if self.credentials.valid
            else self.token_uri
        )
        if isinstance(err, ssl.SSLCertVerificationError):
            return (
                f"the TLS certificate of {where} is not trusted "
                f"({one_line(str(err.verify_message or err))}); set REQUESTS_CA_BUNDLE to the "
                "CA bundle that signs it"
            )
        detail = one_line(str(err)) or type(err).__name__
        return (
            f"cannot reach {where} after {_attempts(self.attempts)} ({type(err).__name__}: "
            f"{detail}); check api_endpoint, the network and HTTPS_PROXY/NO_PROXY"
        )


def _attempts(count: int) -> str:
    return f"all {count} attempts" if count > 1 else "its one attempt (max_retries: 0)"


def _json_object(body: Any) -> dict[str, Any]:
    """An answer's JSON object. googleapiclient hands back a body that is not JSON (a proxy's
    page, a reply mangled on its way) as its text, which must not read as an empty page."""
    if not isinstance(body, dict):
        raise UnreadableAnswer("Alert Center answered alerts.list")
    return body


def read_key_file(path: str) -> dict[str, Any]:
    """The service-account key's JSON, read again when the source is pulled (the file may
    have changed since the config was loaded); its content never appears in an error."""
    try:
        info = key_file(path, "credentials_file", types=("service_account",), fix=KEY_FIX)
    except ConfigError as err:
        raise SourceError(str(err)) from None
    if not info.get("token_uri"):
        raise SourceError(
            f"credentials_file {path} has no token_uri; download a new JSON key"
        ) from None
    return info


def _transient_reason(err: Exception) -> str | None:
    """Why `err` is worth retrying, or None when it is not."""
    import httplib2
    from google.auth.exceptions import TransportError
    from googleapiclient.errors import HttpError

    if isinstance(err, HttpError):
        if err.status_code not in RETRY_STATUSES:
            return None
        code, status, _ = _google_error(err)
        return f"{code} {status}"
    if isinstance(err, UnreadableAnswer):
        return "a body that is not JSON"
    if isinstance(err, ssl.SSLCertVerificationError):
        return None  # a trust problem, not a passing one
    # Refused or reset connections, timeouts, DNS, a body cut short.
    transport = (OSError, httplib2.HttpLib2Error, TransportError, http.client.HTTPException)
    return type(err).__name__ if isinstance(err, transport) else None


def _google_error(err: Any) -> tuple[int, str, str]:
    """(HTTP code, Google status, one-line message) of an HttpError."""
    try:
        body = json.loads(err.content)
    except ValueError:  # also UnicodeDecodeError
        body = None
    reason = str(err.reason or "")
    status, message = error_fields(GOOGLE_ERROR_BODY, body, int(err.status_code), reason)
    return int(err.status_code), status, message or one_line(reason)


# -- the two passes ---------------------------------------------------------------------------


def created_in(window: Window) -> str:
    """The alerts.list filter of pass 1 (createTime is the only filterable time of change)."""
    return (
        f'createTime >= "{format_time(window.start)}" AND '
        f'createTime < "{format_time(window.end)}"'
    )


def created_before(window: Window) -> str:
    """The alerts.list filter of pass 2: the alerts pass 1 did not read."""
    return f'createTime < "{format_time(window.start)}"'


def changed_at(alert: Any) -> datetime | None:
    """The alert's changed-at: updateTime, or createTime when absent; None if unreadable."""
    if not isinstance(alert, dict):
        return None
    updated = parse_time_or_none(alert.get("updateTime"))
    return updated or parse_time_or_none(alert.get("createTime"))


def _changed_at_or_after(alert: Any, moment: datetime) -> bool:
    changed = changed_at(alert)
    return changed is not None and changed >= moment


def updated_in(page: list[Any], window: Window) -> tuple[list[Any], bool]:
    """Pass 2: the page's alerts changed inside the window, and whether the page reached
    below its start (the page is sorted newest first, so the pass can stop after it)."""
    stamped = [(changed_at(alert), alert) for alert in page]
    inside = [a for t, a in stamped if t is not None and window.start <= t < window.end]
    passed_start = any(t is not None and t < window.start for t, _ in stamped)
    return inside, passed_start


# -- normalization ------------------------------------------------------------------------------


def _validated(raw: Any) -> tuple[datetime, datetime | None]:
    """Check what the mapping needs; return (createTime, updateTime)."""
    if not isinstance(raw, dict):
        raise MalformedAlert("Alert Center alert is not a JSON object")
    for name in REQUIRED_FIELDS:
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise MalformedAlert(f"Alert Center alert has no {name}")
    created_at = parse_time_or_none(raw["createTime"])
    if created_at is None:
        raise MalformedAlert(f"Alert Center alert createTime {raw['createTime']!r} is not a time")
    updated_at = parse_time_or_none(raw.get("updateTime"))
    if raw.get("updateTime") is not None and updated_at is None:
        raise MalformedAlert(f"Alert Center alert updateTime {raw['updateTime']!r} is not a time")
    return created_at, updated_at


def _status(raw: dict[str, Any], metadata: dict[str, Any]) -> tuple[str, str | None]:
    if raw.get("deleted") is True:
        return "deleted", "deleted"  # marked for deletion: purged from Alert Center in 30 days
    status_raw = metadata.get("status") or None
    return STATUSES.get(str(status_raw), "unknown"), status_raw


def title(alert_type: str, rule: str | None) -> str:
    """The alert type as Google names it (humanized when it comes as an identifier), with
    the rule's name for rule-based alerts. Alert Center has no title of its own."""
    name = alert_type.strip()
    if not re.search(r"\s", name):
        words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.replace("_", " ")).split()
        name = " ".join([words[0], *(w.lower() for w in words[1:])]) if words else alert_type
    return f"{name}: {rule}" if rule else name


def investigation_link(value: Any) -> str | None:
    """securityInvestigationToolLink as a URL: Google sends it without a scheme."""
    if not isinstance(value, str) or not value.strip():
        return None
    link = value.strip()
    if re.match(r"^https?://", link):
        return link
    if re.match(r"^[a-z0-9-]+(\.[a-z0-9-]+)+/\S*$", link, re.IGNORECASE):
        return "https://" + link
    return None  # a placeholder, not a link


@dataclass
class Payload:
    """What one alert's `data` says about who and what is affected."""

    users: list[str] = field(default_factory=list)  # emails
    devices: list[dict[str, Any]] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    description: str | None = None
    rule: str | None = None  # the admin-configured rule that raised the alert


def payload_of(data: dict[str, Any]) -> Payload:
    """Read `data` by its @type; an unknown type still gives its `email`, as most do."""
    kind = str(data.get("@type", "")).rsplit(".", 1)[-1]
    payload = _PAYLOADS.get(kind, _generic)(data)
    email = data.get("email")
    if isinstance(email, str) and email and email not in payload.users:
        payload.users.insert(0, email)
    return payload


def _generic(data: dict[str, Any]) -> Payload:
    return Payload()


def _account_warning(data: dict[str, Any]) -> Payload:
    """Suspicious login, leaked password, suspicious programmatic login, …"""
    return Payload(ips=unique_strings([dig(data, "loginDetails", "ipAddress")]))


def _mail_phishing(data: dict[str, Any]) -> Payload:
    """User reported phishing, phishing/malware reclassification, suspicious message, …"""
    messages = [m for m in _list(data.get("messages")) if isinstance(m, dict)]
    senders = unique_strings(
        [dig(data, "maliciousEntity", "fromHeader"),
         dig(data, "maliciousEntity", "entity", "emailAddress")]
    )
    return Payload(
        users=unique_strings(m.get("recipient") for m in messages),
        emails=senders,
        domains=unique_strings(s.rpartition("@")[2] for s in senders if "@" in s),
        hashes=unique_strings(h for m in messages for h in _list(m.get("attachmentsSha256Hash"))),
    )


def _device_events(data: dict[str, Any]) -> Payload:
    """DeviceCompromised and SuspiciousActivity: MDM events, possibly several per device."""
    devices: dict[str, dict[str, Any]] = {}
    for event in _list(data.get("events")):
        device = _device(event, data.get("email"))
        if device.get("id"):
            devices.setdefault(device["id"], device)
    return Payload(devices=list(devices.values()))


def _device_management_rule(data: dict[str, Any]) -> Payload:
    device = _device(data, data.get("email"))  # the device fields sit in `data` itself
    return Payload(devices=[device] if device.get("id") else [])


def _account_suspension_warning(data: dict[str, Any]) -> Payload:
    reasons = [
        f"{d.get('productName', '?')}: {d.get('abuseReason', '?')}"
        for d in _list(data.get("suspensionDetails"))
        if isinstance(d, dict)
    ]
    state = text(data.get("state"))
    description = "; ".join([*([f"state {state}"] if state else []), *reasons]) or None
    return Payload(description=description)


def _activity_rule(data: dict[str, Any]) -> Payload:
    return Payload(
        description=text(data.get("description")),
        rule=text(data.get("displayName")) or text(data.get("name")),
    )


def _reporting_rule(data: dict[str, Any]) -> Payload:
    return Payload(rule=text(data.get("name")))


def _google_operations(data: dict[str, Any]) -> Payload:
    return Payload(
        users=unique_strings(_list(data.get("affectedUserEmails"))),
        description=text(data.get("description")) or text(data.get("title")),
    )


_PAYLOADS: dict[str, Callable[[dict[str, Any]], Payload]] = {
    "AccountWarning": _account_warning,
    "MailPhishing": _mail_phishing,
    "DeviceCompromised": _device_events,
    "SuspiciousActivity": _device_events,
    "DeviceManagementRule": _device_management_rule,
    "AccountSuspensionWarning": _account_suspension_warning,
    "ActivityRule": _activity_rule,
    "ReportingRule": _reporting_rule,
    "GoogleOperations": _google_operations,
}


def _device(event: Any, email: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        return {}
    device = {
        "id": event.get("deviceId"),
        "type": event.get("deviceType"),
        "model": event.get("deviceModel"),
        "serial_number": event.get("serialNumber"),
        "resource_id": event.get("resourceId"),
        "ios_vendor_id": event.get("iosVendorId"),
        "user": email,
    }
    return {k: v for k, v in device.items() if isinstance(v, str) and v}


def _extra(raw: dict[str, Any], metadata: dict[str, Any], payload: Payload) -> dict[str, Any]:
    data_type = str(_object(raw.get("data")).get("@type", "")).rsplit(".", 1)[-1]
    related = {
        "ips": payload.ips,
        "domains": payload.domains,
        "emails": payload.emails,
        "hashes": payload.hashes,
    }
    return {
        "description": payload.description,
        "type": text(raw.get("type")),
        "category": data_type or None,
        "product": text(raw.get("source")),
        "first_seen_at": parse_time_or_none(raw.get("startTime")),
        "last_seen_at": parse_time_or_none(raw.get("endTime")),
        "assignee": text(metadata.get("assignee")),
        "users": [{"name": email, "email": email} for email in payload.users],
        "devices": payload.devices,
        "related": {name: values for name, values in related.items() if values},
    }


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
