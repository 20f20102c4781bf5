"""Kandji (Apple MDM with built-in EDR): audit events, behavioral detections, threat details.

Plain REST over requests. Each stream is its own scope and cursor, `{host}/{stream}`:

- `audit_events`: GET /api/v1/audit/events, the Activity log (blueprint and library item
  changes, device lifecycle, access to secrets, admin actions, and Endpoint Detection and
  Response events). `limit=500` (Kandji's cap), `sort_by=occurred_at` (ascending),
  `start_date`/`end_date` = the pinned window, cursor paging: the `cursor` of each page's
  `next` URL is sent back with the same query (see `_cursor_pages`). Ids are ULIDs.
- `behavioral_detections`: GET /api/v1/behavioral-detections with `detection_date_from`/
  `detection_date_to` = the window, `sort_by=detection_date`, `limit=1000` (the cap) and
  `offset` paging.
- `threat_details` (opt-in): GET /api/v1/threat-details, EDR file detections (malware,
  PUP) and their quarantine/release. They have no id and can only be filtered by
  `date_range` (whole days back from now), so the stream is a snapshot scope: every run
  lists the last `threat_details_days` days and yields only the details that are new or
  changed since the previous run's list, kept in the scope's Memory as {key: sha256}.

Every call has alertpull.http's timeouts and retries (429 and 5xx, honouring Retry-After)
and is paced by a RateBudget shared per base_url: Kandji allows 10,000 requests an hour
per tenant, whoever calls. Kandji has no severity field: severities (and statuses) come
from the policy tables below, documented in docs/sources/kandji.md, and `severity_raw`
names the rule applied ("policy:classification=malicious").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import requests

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
from alertpull.errors import ConfigError, MalformedAlert, SourceError
from alertpull.http import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    RETRY_BASE_SECONDS,
    ErrorVoice,
    UnreadableAnswer,
    answer_error,
    asked_again_if_unreadable,
    make_session,
    transport_errors,
)
from alertpull.paging import MAX_PAGES_OPTION, CursorParam, OffsetLimit, Paginator, Request, pages
from alertpull.ratebudget import RateBudget
from alertpull.record import Normalized, compact, parse_json, text, unique_strings
from alertpull.snapshot import VersionDiff, snapshot_changes
from alertpull.timeutil import parse_time
from alertpull.validate import endpoint_url

AUDIT_EVENTS = "audit_events"
BEHAVIORAL_DETECTIONS = "behavioral_detections"
THREAT_DETAILS = "threat_details"
RATE_PERIOD = 3600.0  # Kandji's limit is per hour
LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_FIX = "create a new API token in Kandji Settings > Access and update api_token"
BASE_URL_FORM = "https://SUBDOMAIN.api.kandji.io (EU: https://SUBDOMAIN.api.eu.kandji.io)"


@dataclass(frozen=True)
class Endpoint:
    """One Kandji list endpoint, and the Stream it serves."""

    stream: Stream
    path: str
    permission: str  # as the token's Permissions tab (and the API docs) name it
    landmarks: Landmarks  # for a degraded record

    @property
    def name(self) -> str:
        return self.stream.name

    @property
    def limit(self) -> int:
        """Kandji's hard cap on records per page."""
        assert self.stream.page_size is not None
        return self.stream.page_size


# Kandji documents no retention for these endpoints. Audit events and behavioral
# detections are asked for oldest first (sort_by, which Kandji documents), so a window cut
# short keeps the mark it reached; threat details are a snapshot diff.
STREAMS: dict[str, Endpoint] = {
    AUDIT_EVENTS: Endpoint(Stream(AUDIT_EVENTS, ordered=True, page_size=500),
                           "/api/v1/audit/events", "Audit Log > List audit events",
                           Landmarks(created=("occurred_at",), updated=("occurred_at",))),
    BEHAVIORAL_DETECTIONS: Endpoint(Stream(BEHAVIORAL_DETECTIONS, ordered=True, page_size=1000),
                                    "/api/v1/behavioral-detections",
                                    "Threats > Get Behavioral Detections",
                                    Landmarks(created=("detection_date",),
                                              updated=("detection_date",))),
    THREAT_DETAILS: Endpoint(Stream(THREAT_DETAILS, snapshot=True, page_size=1000),
                             "/api/v1/threat-details", "Threats > Get Threat Details",
                             # no id: a degraded one is named by its content hash
                             Landmarks(id=(), title=("threat_name",),
                                       created=("detection_date",),
                                       updated=("date_of_release", "date_of_quarantine",
                                                "detection_date"))),
}

# The severity policy: Kandji rates nothing, so alertpull derives a severity from what each
# object says. Keys are (stream, rule); the rule is what `severity_raw` shows after
# "policy:". A value missing from the table gives `unknown`.
SEVERITY_POLICY: dict[tuple[str, str], str] = {
    (BEHAVIORAL_DETECTIONS, "classification=malicious"): "high",
    (BEHAVIORAL_DETECTIONS, "classification=suspicious"): "medium",
    (THREAT_DETAILS, "classification=malware"): "high",
    (THREAT_DETAILS, "classification=pup"): "low",
    (AUDIT_EVENTS, "edr_detection"): "medium",
    (AUDIT_EVENTS, "edr_other"): "informational",  # EDR remediations and admin actions
    (AUDIT_EVENTS, "other"): "informational",
}

# The status policy, by (stream, the object's status lower-cased). Containment by Kandji
# (a blocked process, a quarantined file) resolves a detection; an admin releasing a file
# from quarantine overrides the detection, i.e. suppresses it. Anything else is `unknown`;
# audit events have no status and are all `new`.
STATUS_POLICY: dict[tuple[str, str], str] = {
    (BEHAVIORAL_DETECTIONS, "detected"): "new",
    (BEHAVIORAL_DETECTIONS, "blocked"): "resolved",
    # Reported, not stopped: Kandji's own examples carry it beside `detected`.
    (BEHAVIORAL_DETECTIONS, "informational"): "new",
    (THREAT_DETAILS, "not_quarantined"): "new",
    (THREAT_DETAILS, "quarantined"): "resolved",
    (THREAT_DETAILS, "released"): "suppressed",
}

# Kandji does not publish the vocabulary of its EDR audit events: an audit event is taken
# for an EDR one when its target type or component contains one of these words, and for an
# EDR detection when, in addition, its action contains "detect".
EDR_TARGET_WORDS = ("edr", "threat", "malware", "behavioral_detection")
_EDR_TARGET = re.compile("|".join(map(re.escape, EDR_TARGET_WORDS)))  # any of them, one scan
ACRONYMS = {"edr": "EDR", "api": "API", "mdm": "MDM", "ade": "ADE", "pup": "PUP"}


class KandjiConnector(Connector):
    type_name = "kandji"
    vendor = Vendor("Kandji")
    default_overlap = timedelta(hours=1)
    options: ClassVar[Mapping[str, Option]] = {
        "base_url": Option(required=True, help=f"the tenant's API URL, {BASE_URL_FORM}"),
        "api_token": Option(required=True, secret=True,
                            help="API token from Kandji Settings > Access"),
        "streams": Option("list", default=[AUDIT_EVENTS, BEHAVIORAL_DETECTIONS],
                          choices=(AUDIT_EVENTS, BEHAVIORAL_DETECTIONS, THREAT_DETAILS),
                          help="the streams to pull, each with its own cursor (threat_details "
                          "is opt-in)"),
        "threat_details_days": Option(
            "int", default=7, help="threat details are re-listed this many days back"
        ),
        "requests_per_hour": Option(
            "int", default=9000, help="call budget per base_url (Kandji allows 10,000/hour)"
        ),
        "timeout_seconds": Option(
            "seconds", default=60, help="seconds to wait for a vendor's answer (connect and read)"
        ),
        "max_retries": max_retries_option(DEFAULT_RETRIES),
        "retry_base_seconds": retry_base_option(RETRY_BASE_SECONDS),
        "max_pages": MAX_PAGES_OPTION,
    }

    @classmethod
    def check_settings(cls, where: str, settings: Mapping[str, Any]) -> None:
        _base_url(where, settings["base_url"])

    def __init__(self, source_name: str, settings: Mapping[str, Any], log: Log) -> None:
        super().__init__(source_name, settings, log)
        self.base_url = _base_url(f"sources.{source_name}", settings["base_url"])
        self.host = urlsplit(self.base_url).netloc
        self.streams: list[str] = settings["streams"]
        self._token = settings["api_token"]
        seconds = settings["timeout_seconds"]
        # (connect, read): the engine's connect timeout unless timeout_seconds is shorter.
        self._http = make_session(retries=settings["max_retries"],
                                  backoff=settings["retry_base_seconds"],
                                  timeout=(min(DEFAULT_TIMEOUT[0], seconds), seconds))
        # Shared by every source and scope of this process on the same tenant.
        self._budget = RateBudget.shared(f"kandji:{self.base_url}",
                                         settings["requests_per_hour"], RATE_PERIOD)

    # -- the connector contract ----------------------------------------------------------

    def scopes(self) -> list[Scope]:
        return [STREAMS[name].stream.scope(f"{self.host}/{name}",
                                           {"host": self.host, "stream": name}, self.host)
                for name in self.streams]

    def fetch(self, scope: Scope, window: Window, memory: Memory) -> Iterator[list[Any]]:
        stream = STREAMS[scope.params["stream"]]
        if stream.name == THREAT_DETAILS:
            yield from self._threat_detail_changes(stream, memory)
        elif stream.name == AUDIT_EVENTS:
            query = {"limit": stream.limit, "sort_by": "occurred_at",
                     "start_date": _wire_time(window.start), "end_date": _wire_time(window.end)}
            yield from self._cursor_pages(stream, query)
        else:
            query = {"sort_by": "detection_date",
                     "detection_date_from": _wire_time(window.start),
                     "detection_date_to": _wire_time(window.end)}
            yield from self._offset_pages(stream, query)

    def normalize(self, scope: Scope, raw: Any) -> Normalized:
        if not isinstance(raw, dict):
            raise MalformedAlert("Kandji object is not a JSON object")
        return NORMALIZERS[scope.params["stream"]](raw, scope.params["host"])

    def landmarks(self, scope: Scope) -> Landmarks:
        return STREAMS[scope.params["stream"]].landmarks

    def check(self) -> str:
        for name in self.streams:
            stream = STREAMS[name]
            self._get(stream, _probe_query(stream, self.settings["threat_details_days"]))
        paths = ", ".join(STREAMS[name].path for name in self.streams)
        return f"Kandji {self.host}: the API token reads {paths}"

    def describe(self, raw: Any) -> str:
        if isinstance(raw, dict) and "id" not in raw and "threat_name" in raw:
            device = raw.get("device_name") or raw.get("device_id")
            return f"threat detail {raw.get('threat_name')!r} on {device}"
        return super().describe(raw)

    # -- paging ----------------------------------------------------------------------------

    def _cursor_pages(self, stream: Endpoint, query: Mapping[str, Any]) -> Iterator[list[Any]]:
        """Each page of a cursor-paged list, until `next` is null.

        `next` is a full URL carrying `cursor=`. Its cursor is sent back to base_url with the
        same query, which Kandji documents as equivalent: the window stays pinned and the
        token never goes to whatever scheme or host Kandji wrote into the link.
        """
        cursor = CursorParam("next", "cursor", read=lambda link: _next_cursor(link, stream))
        yield from self._pages(stream, dict(query), cursor)

    def _offset_pages(self, stream: Endpoint, query: Mapping[str, Any]) -> Iterator[list[Any]]:
        """Each page of a limit/offset list, until a short page without `next` (`next` says
        more follow; a full page without it is checked with one more call)."""
        offset = OffsetLimit("offset", "limit", stream.limit, more_path="next")
        yield from self._pages(stream, offset.first(dict(query)), offset)

    def _pages(self, stream: Endpoint, params: dict[str, Any],
               paginator: Paginator) -> Iterator[list[Any]]:
        def send(request: Request) -> tuple[requests.Response, Any]:
            return self._answer(stream, request.params)

        first = Request("GET", self.base_url + stream.path, params)
        yield from pages(send, first, paginator, lambda body: body["results"], vendor="Kandji",
                         max_pages=self.settings["max_pages"])

    def _threat_detail_changes(self, stream: Endpoint, memory: Memory) -> Iterator[list[Any]]:
        """The threat details new or changed since the last run's list (a snapshot diff)."""
        query = {"date_range": self.settings["threat_details_days"], "sort_by": "detection_date"}
        yield from snapshot_changes(
            memory, self._offset_pages(stream, query),
            lambda previous: VersionDiff(previous, _threat_key),
            "the threat details are listed again next run")

    # -- one call --------------------------------------------------------------------------

    def _get(self, stream: Endpoint, params: Mapping[str, Any]) -> dict[str, Any]:
        return self._answer(stream, params)[1]

    def _answer(self, stream: Endpoint,
                params: Mapping[str, Any]) -> tuple[requests.Response, dict[str, Any]]:
        """One paced, authenticated GET (retried by the session, and asked again while its
        body is not JSON): the answer and the JSON page it holds."""
        return asked_again_if_unreadable(lambda: self._answer_once(stream, params),
                                         self.settings["max_retries"],
                                         self.settings["retry_base_seconds"])

    def _answer_once(self, stream: Endpoint,
                     params: Mapping[str, Any]) -> tuple[requests.Response, dict[str, Any]]:
        self._budget.acquire()
        call = f"GET {stream.path}"
        retries = self.settings["max_retries"]
        with transport_errors(call, self.base_url, retries, "check base_url"):
            response = self._http.get(
                self.base_url + stream.path, params=params,
                headers={"Authorization": f"Bearer {self._token.reveal()}",
                         "Accept": "application/json"},
            )
        if response.status_code != 200:
            raise answer_error(VOICE, response, call, retries, self.base_url,
                               permission=stream.permission)
        try:
            body = parse_json(response.content)
        except ValueError:
            raise UnreadableAnswer(f"Kandji answered {call}") from None
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise SourceError(f"Kandji answered {call} without a results list")
        return response, body


# -- config ----------------------------------------------------------------------------------


def _base_url(block: str, value: str) -> str:
    """scheme://host[:port] of the tenant's API; http only towards this machine. `block` is
    the source's place in the config, sources.NAME."""
    where = f"{block}.base_url"
    url = endpoint_url(value, where, what="a Kandji API URL",
                       form=f"{BASE_URL_FORM}, as Settings > Access shows it")
    parts = urlsplit(url)
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise ConfigError(f"{where}: plain http would send the API token unencrypted; use "
                          "https:// (http is accepted for 127.0.0.1 and localhost only)")
    return f"{parts.scheme}://{parts.netloc}"


# -- paging helpers ----------------------------------------------------------------------------


def _wire_time(moment: datetime) -> str:
    """The form Kandji's examples use: 2024-11-26T22:58:26.239570Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _next_cursor(link: Any, stream: Endpoint) -> str | None:
    if not link:
        return None
    cursors = parse_qs(urlsplit(str(link)).query).get("cursor")
    if not cursors or not cursors[-1]:
        raise SourceError(f"Kandji's next link for GET {stream.path} carries no cursor")
    return cursors[-1]


def _probe_query(stream: Endpoint, days: int) -> dict[str, Any]:
    """The cheapest call that proves the token may read the stream (for `alertpull check`)."""
    if stream.name == AUDIT_EVENTS:
        return {"limit": 1, "sort_by": "-occurred_at"}
    if stream.name == THREAT_DETAILS:
        return {"limit": 1, "date_range": days}
    return {"limit": 1}


def _threat_key(raw: Any) -> str | None:
    return threat_detail_key(raw) if isinstance(raw, dict) else None


# -- errors --------------------------------------------------------------------------------------

# Kandji's error body is {"detail": ...}; it has no codes of its own.
VOICE = ErrorVoice("Kandji", message_path="detail", lines={
    "401": "Kandji rejected the API token for {call} ({said}): the token is invalid, expired "
           f"or revoked; {TOKEN_FIX}",
    "403": "Kandji denied {call} ({said}): the API token lacks the permission {permission!r}; "
           "tick it in Kandji Settings > Access > the token > Permissions",
    "404": f"Kandji answered 404 to {{call}} at {{base}}: check base_url, {BASE_URL_FORM}",
    "429": "Kandji kept rate-limiting {call} (429) after {retries}: the tenant's 10,000 "
           "requests/hour are used up; lower requests_per_hour or share the limit with fewer "
           "API clients; the next run resumes",
    "5xx": "Kandji failed {call} with HTTP {status} after {retries}: {message}; the next run "
           "reads the window again",
    "other": "Kandji refused {call} with HTTP {status}: {message}",
})


# -- normalization: shared ------------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    """A wire timestamp (a naive one is UTC), or None when absent, empty or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _required_time(raw: dict[str, Any], field: str, what: str) -> datetime:
    value = raw.get(field)
    if value in (None, ""):
        raise MalformedAlert(f"Kandji {what} has no {field}")
    moment = _time(value)
    if moment is None:
        raise MalformedAlert(f"Kandji {what} {field} {value!r} is not a time")
    return moment


def _required_text(raw: dict[str, Any], field: str, what: str) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or not value:
        raise MalformedAlert(f"Kandji {what} has no {field}")
    return value


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _severity(stream: str, rule: str) -> tuple[str, str]:
    return SEVERITY_POLICY.get((stream, rule), "unknown"), f"policy:{rule}"


def _status(stream: str, value: Any) -> tuple[str, str | None]:
    raw = text(value)
    return STATUS_POLICY.get((stream, (raw or "").lower()), "unknown"), raw


@functools.lru_cache(maxsize=1024)  # a tenant's few target types, for every audit event
def humanize(identifier: str) -> str:
    """edr_threat -> "EDR threat", library_item -> "Library item"."""
    words = [ACRONYMS.get(word, word) for word in identifier.replace("-", "_").split("_") if word]
    if not words:
        return identifier
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def _device(ident: Any, name: Any, serial: Any) -> list[dict[str, Any]]:
    device = compact({"type": "device", "id": text(ident), "name": text(name),
                       "serial_number": text(serial)})
    return [device] if device.get("id") or device.get("name") else []


def _local_accounts(names: Iterable[Any]) -> list[dict[str, Any]]:
    """The device accounts that owned the processes involved."""
    return [{"type": "local_account", "name": name} for name in unique_strings(names)]


# -- audit events ----------------------------------------------------------------------------------


def audit_rule(raw: dict[str, Any]) -> str:
    """The SEVERITY_POLICY rule of an audit event: edr_detection, edr_other or other."""
    target = f"{raw.get('target_type') or ''} {raw.get('target_component') or ''}".lower()
    if not _EDR_TARGET.search(target):
        return "other"
    return "edr_detection" if "detect" in str(raw.get("action") or "").lower() else "edr_other"


def normalize_audit_event(raw: dict[str, Any], host: str) -> Normalized:
    what = "audit event"
    native_id = _required_text(raw, "id", what)
    occurred_at = _required_time(raw, "occurred_at", what)
    action = text(raw.get("action")) or "event"
    target_type = text(raw.get("target_type")) or "object"
    name = text(_object(raw.get("new_state")).get("name"))
    rule = audit_rule(raw)
    severity, severity_raw = _severity(AUDIT_EVENTS, rule)
    title = f"{humanize(target_type)} {action}" + (f": {name}" if name else "")
    return Normalized(
        native_id=native_id,
        tenant=host,
        changed_at=occurred_at,
        title=title,
        severity=severity,
        severity_raw=severity_raw,
        status="new",  # an audit event has no lifecycle
        status_raw=None,
        created_at=occurred_at,
        updated_at=occurred_at,
        link=None,
        extra={
            "severity_derived": True,  # from alertpull's policy table, not the vendor
            "category": "EDR" if rule != "other" else target_type,
            "type": action,
            "product": "Kandji EDR" if rule != "other" else "Kandji",
            "users": [compact({"type": text(raw.get("actor_type")),
                                "id": text(raw.get("actor_id"))})] if raw.get("actor_id") else [],
            "resources": [compact({"type": target_type, "id": text(raw.get("target_id")),
                                    "name": name,
                                    "component": text(raw.get("target_component"))})],
        },
    )


# -- behavioral detections -------------------------------------------------------------------------


def normalize_behavioral_detection(raw: dict[str, Any], host: str) -> Normalized:
    what = "behavioral detection"
    native_id = _required_text(raw, "id", what)
    detected_at = _required_time(raw, "detection_date", what)
    classification = text(raw.get("classification")) or ""
    severity, severity_raw = _severity(BEHAVIORAL_DETECTIONS,
                                       f"classification={classification.lower()}")
    status, status_raw = _status(BEHAVIORAL_DETECTIONS, raw.get("threat_status"))
    processes = {role: _object(raw.get(f"{role}_process")) for role in ("target", "parent")}
    device = _object(raw.get("device_info"))
    threat_id = text(raw.get("threat_id"))
    target_name = text(processes["target"].get("name"))
    title = " ".join(filter(None, [classification.capitalize() or "Unclassified",
                                   "behavior detected", f"({threat_id})" if threat_id else None]))
    if target_name:
        title += f" in {target_name}"
    return Normalized(
        native_id=native_id,
        tenant=host,
        changed_at=detected_at,
        title=title,
        severity=severity,
        severity_raw=severity_raw,
        status=status,
        status_raw=status_raw,
        created_at=detected_at,
        updated_at=detected_at,
        link=None,
        extra={
            "severity_derived": True,  # from alertpull's policy table, not the vendor
            "description": text(raw.get("description")),
            "category": "behavioral_detection",
            "type": threat_id,
            "product": "Kandji EDR",
            "first_seen_at": detected_at,
            "resolved_at": detected_at if status == "resolved" else None,
            "devices": _device(device.get("id"), device.get("name"),
                               device.get("serial_number")),
            "users": _local_accounts(p.get("owner") for p in processes.values()),
            "resources": [entry for role, process in processes.items()
                          if (entry := _process(role, process))],
            "related": compact({"hashes": unique_strings(p.get("sha256")
                                                   for p in processes.values())}),
        },
    )


def _process(role: str, process: dict[str, Any]) -> dict[str, Any]:
    path, name = text(process.get("image_path")), text(process.get("name"))
    if not (path or name):
        return {}
    pid = process.get("pid")
    return compact({
        "type": "process", "role": role, "id": path or name, "name": name,
        "command_line": text(process.get("command_line")),
        "pid": pid if isinstance(pid, int) else None,
        "owner": text(process.get("owner")), "sha256": text(process.get("sha256")),
    })


# -- threat details --------------------------------------------------------------------------------

THREAT_KEY_FIELDS = ("device_id", "file_hash", "file_path", "detection_date")


def threat_detail_key(raw: dict[str, Any]) -> str:
    """device_id|file_hash|file_path|detection_date: threat details have no id."""
    return "|".join(_required_text(raw, field, "threat detail") for field in THREAT_KEY_FIELDS)


def normalize_threat_detail(raw: dict[str, Any], host: str) -> Normalized:
    native_id = threat_detail_key(raw)
    detected_at = _required_time(raw, "detection_date", "threat detail")
    quarantined_at = _time(raw.get("date_of_quarantine"))
    released_at = _time(raw.get("date_of_release"))
    # The latest of the three is when this version came to be (a release is the usual one).
    changed_at = max(t for t in (detected_at, quarantined_at, released_at) if t is not None)
    classification = text(raw.get("classification")) or ""
    severity, severity_raw = _severity(THREAT_DETAILS, f"classification={classification.lower()}")
    status, status_raw = _status(THREAT_DETAILS, raw.get("status"))
    file_path, file_hash = raw["file_path"], raw["file_hash"]
    label = ACRONYMS.get(classification.lower(), classification.capitalize()) or "Threat"
    threat_name = text(raw.get("threat_name"))
    return Normalized(
        native_id=native_id,
        tenant=host,
        changed_at=changed_at,
        title=f"{label} detected: {threat_name or file_path.rsplit('/', 1)[-1]}",
        severity=severity,
        severity_raw=severity_raw,
        status=status,
        status_raw=status_raw,
        created_at=detected_at,
        updated_at=changed_at,
        link=None,
        extra={
            "severity_derived": True,  # from alertpull's policy table, not the vendor
            "description": _release_note(raw),
            "category": classification.lower() or None,
            "type": threat_name,
            "product": "Kandji EDR",
            "first_seen_at": detected_at,
            "resolved_at": quarantined_at if status == "resolved" else None,
            "devices": _device(raw["device_id"], raw.get("device_name"),
                               raw.get("device_serial_number")),
            "users": _local_accounts([raw.get("process_owner")]),
            "resources": [compact({
                "type": "file", "id": file_path, "name": file_path.rsplit("/", 1)[-1],
                "sha256": file_hash, "bundle_path": text(raw.get("bundle_path")),
                "process": text(raw.get("process_name")),
            })],
            "related": {"hashes": [file_hash]},
        },
    )


def _release_note(raw: dict[str, Any]) -> str | None:
    """Who released the file from quarantine and why, when someone did."""
    by, note = text(raw.get("released_by")), text(raw.get("release_note"))
    if not (by or note):
        return None
    return f"Released by {by or 'an admin'}" + (f": {note}" if note else "")


# Each stream's mapping, by stream name.
NORMALIZERS: dict[str, Callable[[dict[str, Any], str], Normalized]] = {
    AUDIT_EVENTS: normalize_audit_event,
    BEHAVIORAL_DETECTIONS: normalize_behavioral_detection,
    THREAT_DETAILS: normalize_threat_detail,
}
