"""Microsoft Entra ID: Defender XDR alerts and Identity Protection risk detections, via Graph.

Two streams per tenant, each its own scope and cursor (`{tenant_id}/{stream}`):
- `alerts`: GET /v1.0/security/alerts_v2, every Defender XDR alert (Entra ID Protection's
  included, serviceSource azureAdIdentityProtection), by lastUpdateDateTime ascending,
  $top=1000, following @odata.nextLink (never $skip, which stalls past 500: elastic/
  integrations#20234), with `Prefer: include-unknown-enum-members` so newer enum members
  are not masked as unknownFutureValue. Paced to `alerts_per_minute` per tenant and app.
- `risk_detections`: GET /v1.0/identityProtection/riskDetections by lastUpdatedDateTime,
  $top=500. Identity Protection allows 1 request per second per tenant for all apps and
  answers 429 without Retry-After: paced below that, per tenant.

Auth, paging, throttling and error lines are the shared Graph plumbing in msgraph.py.
Offline risk detections surface up to 48 h late: their scope re-reads 48 h, alerts 1 h.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from alertpull.connector import Connector, Landmarks, Memory, Option, Scope, Stream, Vendor, Window
from alertpull.errors import ConfigError, MalformedAlert, SourceError, WindowIncomplete
from alertpull.ratebudget import RateBudget
from alertpull.record import (
    Normalized,
    compact,
    dig,
    is_ip_address,
    text,
    unique_objects,
    unique_strings,
)
from alertpull.timeutil import format_time, parse_time_or_none

from .msgraph import (
    GRAPH_OPTIONS,
    GRAPH_REQUIRES,
    Endpoint,
    GraphApp,
    GraphClient,
    check_graph_settings,
)

ALERTS = "alerts"
RISK_DETECTIONS = "risk_detections"
# Identity Protection: 1 request/second per tenant; 10% margin for network jitter.
RISK_CALLS, RISK_PERIOD = 1, 1.1
_ENUM_MEMBER = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


# Defender XDR keeps alerts ~180 days (tenant policy); risk detections 7/30/90 days
# (Free/P1/P2): their scope's retention is the risk_detections_retention option.
RETENTION = timedelta(days=180)


@dataclass(frozen=True)
class Collection:
    """What differs between the two Graph collections this source pulls, beside its Stream
    (ordered: asked for in ascending changed_field order; page_size: Graph's $top cap)."""

    stream: Stream
    path: str
    changed_field: str  # the "last updated" field the window filters on
    permission: str
    headers: Mapping[str, str]
    landmarks: Landmarks  # for a degraded record


STREAMS: dict[str, Collection] = {
    ALERTS: Collection(
        # alerts_v2 shows alerts minutes late: the connector's default overlap.
        stream=Stream(ALERTS, ordered=True, retention=RETENTION, page_size=1000),
        path="/v1.0/security/alerts_v2",
        changed_field="lastUpdateDateTime",
        permission="SecurityAlert.Read.All",
        headers={"Prefer": "include-unknown-enum-members"},
        landmarks=Landmarks(title=("title", "category"), created=("createdDateTime",),
                            updated=("lastUpdateDateTime",)),
    ),
    RISK_DETECTIONS: Collection(
        # Offline detections surface up to 48 h late. $orderby is not documented for
        # riskDetections: a window cut short is read again.
        stream=Stream(RISK_DETECTIONS, ordered=False,
                      overlap=timedelta(hours=48), page_size=500),
        path="/v1.0/identityProtection/riskDetections",
        changed_field="lastUpdatedDateTime",
        permission="IdentityRiskEvent.Read.All",
        headers={},
        landmarks=Landmarks(title=("riskEventType", "riskType"), created=("detectedDateTime",),
                            updated=("lastUpdatedDateTime",)),
    ),
}


class EntraIdConnector(Connector):
    type_name = "entra_id"
    vendor = Vendor("Microsoft")
    default_overlap = timedelta(hours=1)
    options: ClassVar[Mapping[str, Option]] = {
        **GRAPH_OPTIONS,
        "streams": Option("list", default=[ALERTS, RISK_DETECTIONS],
                          choices=(ALERTS, RISK_DETECTIONS),
                          help="the streams to pull, each with its own cursor"),
        "service_sources": Option(
            "list", help="only alerts of these serviceSource values, e.g. [microsoft365Defender]"
        ),
        "alerts_per_minute": Option(
            "int", default=150, help="alerts_v2 call budget per tenant and app (Graph allows 150)"
        ),
        "risk_detections_retention": Option(
            "duration", default=timedelta(days=30),
            help="how long the tenant's licence keeps risk detections: 7d (Free), 30d (P1), "
            "90d (P2); a run that finds its window older says what was lost",
        ),
    }
    requires = GRAPH_REQUIRES

    @classmethod
    def check_settings(cls, where: str, settings: Mapping[str, Any]) -> None:
        check_graph_settings(where, settings)
        _service_filter(where, settings["service_sources"])
        if settings["risk_detections_retention"] <= timedelta(0):
            raise ConfigError(f"{where}.risk_detections_retention: must be longer than 0, "
                              "e.g. 30d")

    def __init__(self, source_name: str, settings: Mapping[str, Any],
                 log: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        super().__init__(source_name, settings, log)
        self.app = GraphApp.from_settings(source_name, settings)
        self.streams: list[str] = settings["streams"]
        self.service_filter = _service_filter(f"sources.{source_name}",
                                              settings["service_sources"])
        self.endpoints = {
            name: Endpoint(stream.path, stream.permission, self._budget(name), stream.headers)
            for name, stream in STREAMS.items()
        }
        self.graph = GraphClient(self.app, log, settings)

    # -- the connector contract ----------------------------------------------------------

    def scopes(self) -> list[Scope]:
        tenant = self.app.tenant_id
        # The licence sets how long risk detections are kept: the config says which.
        retention = {RISK_DETECTIONS: self.settings["risk_detections_retention"]}
        return [STREAMS[name].stream.scope(f"{tenant}/{name}",
                                           {"tenant_id": tenant, "stream": name}, tenant,
                                           retention=retention.get(name))
                for name in self.streams]

    def fetch(self, scope: Scope, window: Window, memory: Memory) -> Iterator[list[Any]]:
        name = scope.params["stream"]
        collection = STREAMS[name]
        order = OrderWatch(collection.changed_field)
        try:
            for page in self.graph.pages(self.endpoints[name], self._query(name, window)):
                order.see(page)
                yield page
        except WindowIncomplete as stop:
            if collection.stream.ordered and order.ascending:
                raise  # the runner keeps the mark reached and resumes there next run
            # Out of order, the mark reached says nothing about what is left unread.
            raise SourceError(f"{stop}; the window is read again next run") from None

    def normalize(self, scope: Scope, raw: Any) -> Normalized:
        if not isinstance(raw, dict):
            raise MalformedAlert("Graph object is not a JSON object")
        tenant = scope.params["tenant_id"]
        if scope.params["stream"] == ALERTS:
            return normalize_alert(raw, tenant)
        return normalize_risk_detection(raw, tenant)

    def landmarks(self, scope: Scope) -> Landmarks:
        return STREAMS[scope.params["stream"]].landmarks

    def check(self) -> str:
        read = []
        for name in self.streams:
            self.graph.first_page(self.endpoints[name], {"$top": "1"})
            read.append(STREAMS[name].path)
        return (f"tenant {self.app.tenant_id}: app {self.app.client_id} signed in and read "
                f"{', '.join(read)}")

    # -- calls ---------------------------------------------------------------------------

    def _budget(self, name: str) -> RateBudget:
        """Shared by every source of this process that calls the same limit."""
        tenant, client = self.app.tenant_id, self.app.client_id
        if name == ALERTS:  # Graph: 150 requests a minute per app per tenant
            calls = self.settings["alerts_per_minute"]
            return RateBudget.shared(f"msgraph-security:{tenant}:{client}", calls, 60.0)
        # Identity Protection: 1 request a second per tenant, whichever app calls
        return RateBudget.shared(f"msgraph-identity-protection:{tenant}", RISK_CALLS, RISK_PERIOD)

    def _query(self, name: str, window: Window) -> dict[str, str]:
        collection = STREAMS[name]
        field = collection.changed_field
        clauses = [f"{field} ge {format_time(window.start)}",
                   f"{field} lt {format_time(window.end)}"]
        if name == ALERTS and self.service_filter:
            clauses.append(self.service_filter)
        query = {"$filter": " and ".join(clauses), "$top": str(collection.stream.page_size)}
        if collection.stream.ordered:
            query["$orderby"] = f"{field} asc"
        return query


class OrderWatch:
    """Whether a stream's items have come in ascending changed-at order, as asked for."""

    def __init__(self, changed_field: str) -> None:
        self.changed_field = changed_field
        self.ascending = True
        self._last: datetime | None = None

    def see(self, page: list[Any]) -> None:
        for raw in page:
            value = raw.get(self.changed_field) if isinstance(raw, dict) else None
            changed = parse_time_or_none(value)
            if changed is None:
                continue  # normalize() reports it
            if self._last is not None and changed < self._last:
                self.ascending = False
            self._last = changed


def _service_filter(block: str, sources: list[str] | None) -> str | None:
    """`(serviceSource eq 'a' or serviceSource eq 'b')`, or None for every source. `block` is
    the source's place in the config, sources.NAME."""
    if not sources:
        return None
    bad = [value for value in sources if not _ENUM_MEMBER.match(value)]
    if bad:  # also keeps quotes and operators out of the OData filter
        raise ConfigError(f"{block}.service_sources: {bad[0]!r} is not a serviceSource "
                          "value such as microsoftDefenderForEndpoint")
    return "(" + " or ".join(f"serviceSource eq '{value}'" for value in sources) + ")"


# -- alerts_v2 ---------------------------------------------------------------------------

ALERT_SEVERITIES = {"informational": "informational", "low": "low", "medium": "medium",
                    "high": "high"}  # unknown, unknownFutureValue -> unknown
ALERT_STATUSES = {"new": "new", "inProgress": "in_progress", "resolved": "resolved"}
# Defender files most alerts under a MITRE ATT&CK tactic; the rest (Malware, Ransomware,
# SuspiciousActivity, ...) are categories only.
MITRE_TACTICS = frozenset({
    "Reconnaissance", "ResourceDevelopment", "InitialAccess", "Execution", "Persistence",
    "PrivilegeEscalation", "DefenseEvasion", "CredentialAccess", "Discovery",
    "LateralMovement", "Collection", "CommandAndControl", "Exfiltration", "Impact",
})


def normalize_alert(raw: dict[str, Any], tenant: str) -> Normalized:
    native_id = _required_text(raw, "id", "alert")
    changed = _required_time(raw, "lastUpdateDateTime", "alert")
    severity, status = raw.get("severity"), raw.get("status")
    category = text(raw.get("category"))
    evidence = [item for item in raw.get("evidence") or [] if isinstance(item, dict)]
    return Normalized(
        native_id=native_id,
        tenant=tenant,
        changed_at=changed,
        title=text(raw.get("title")) or category or "Defender alert without a title",
        severity=ALERT_SEVERITIES.get(str(severity), "unknown"),
        severity_raw=text(severity),
        status=ALERT_STATUSES.get(str(status), "unknown"),
        status_raw=text(status),
        created_at=parse_time_or_none(raw.get("createdDateTime")),
        updated_at=changed,
        link=text(raw.get("alertWebUrl")),
        extra={
            "description": text(raw.get("description")),
            "category": category,
            "type": text(raw.get("detectionSource")),
            "product": text(raw.get("serviceSource")),
            "first_seen_at": parse_time_or_none(raw.get("firstActivityDateTime")),
            "last_seen_at": parse_time_or_none(raw.get("lastActivityDateTime")),
            "resolved_at": parse_time_or_none(raw.get("resolvedDateTime")),
            "assignee": text(raw.get("assignedTo")),
            "mitre": compact({
                "tactics": [category] if category in MITRE_TACTICS else [],
                "techniques": unique_strings(raw.get("mitreTechniques") or []),
            }),
            "users": unique_objects(_user(item.get("userAccount")) for item in evidence),
            "devices": unique_objects(_device(item) for item in evidence),
            "related": compact(_evidence_related(evidence)),
        },
    )


def _user(account: Any) -> dict[str, Any] | None:
    if not isinstance(account, dict):
        return None
    upn, name = text(account.get("userPrincipalName")), text(account.get("accountName"))
    ident = text(account.get("azureAdUserId")) or text(account.get("userSid"))
    if not (upn or name or ident):
        return None
    return compact({
        "type": "user", "id": ident, "name": upn or name, "account_name": name,
        "upn": upn, "domain": text(account.get("domainName")),
        "display_name": text(account.get("displayName")),
    })


def _device(item: dict[str, Any]) -> dict[str, Any] | None:
    # Only deviceEvidence: file and process evidence also carry an mdeDeviceId, of the
    # same device.
    if not str(item.get("@odata.type", "")).endswith(".deviceEvidence"):
        return None
    ident = text(item.get("mdeDeviceId")) or text(item.get("azureAdDeviceId"))
    name = text(item.get("deviceDnsName"))
    if not (name or ident):
        return None
    return compact({
        "type": "device", "id": ident, "name": name, "os": text(item.get("osPlatform")),
        "azure_ad_device_id": text(item.get("azureAdDeviceId")),
    })


def _evidence_related(evidence: list[dict[str, Any]]) -> dict[str, list[str]]:
    ips, urls, hashes, emails = [], [], [], []
    for item in evidence:
        ips += [item.get("ipAddress"), item.get("senderIp")]
        urls.append(item.get("url"))
        for file in (item.get("fileDetails"), item.get("imageFile")):
            if isinstance(file, dict):
                hashes += [file.get("sha1"), file.get("sha256")]
        emails += [item.get("primaryAddress"), item.get("recipientEmailAddress")]
        emails += [dig(item, "p1Sender", "emailAddress"), dig(item, "p2Sender", "emailAddress")]
    return {"ips": _ips(ips), "urls": unique_strings(urls), "hashes": unique_strings(hashes),
            "emails": unique_strings(emails)}


# -- riskDetections ----------------------------------------------------------------------

RISK_LEVELS = {"low": "low", "medium": "medium", "high": "high", "none": "informational"}
# hidden (the tenant lacks P2) and unknownFutureValue -> unknown
RISK_STATES = {
    "atRisk": "new",  # still counts toward the user's risk: needs a look
    "confirmedCompromised": "new",  # an admin confirmed it; remediation still pending
    "remediated": "resolved",
    "dismissed": "resolved",
    "confirmedSafe": "resolved",
}  # none, unknownFutureValue -> unknown
# The names the Entra admin center shows for the common riskEventType values.
RISK_EVENT_TITLES = {
    "unfamiliarFeatures": "Unfamiliar sign-in properties",
    "anonymizedIPAddress": "Anonymous IP address",
    "maliciousIPAddress": "Malicious IP address",
    "unlikelyTravel": "Atypical travel",
    "mcasImpossibleTravel": "Impossible travel",
    "leakedCredentials": "Leaked credentials",
    "passwordSpray": "Password spray",
    "investigationsThreatIntelligence": "Microsoft Entra threat intelligence",
    "adminConfirmedUserCompromised": "Admin confirmed user compromised",
    "anomalousToken": "Anomalous token",
    "tokenIssuerAnomaly": "Token issuer anomaly",
    "suspiciousInboxForwarding": "Suspicious inbox forwarding",
    "mcasSuspiciousInboxManipulationRules": "Suspicious inbox manipulation rules",
    "generic": "Additional risk detected",
}
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def risk_event_title(event_type: str) -> str:
    """The admin center's name, else the camelCase spelled out: 'newIPRisk' -> 'New IP risk'."""
    if event_type in RISK_EVENT_TITLES:
        return RISK_EVENT_TITLES[event_type]
    words = [w if w.isupper() else w.lower() for w in _WORDS.findall(event_type)]
    phrase = " ".join(words)
    return phrase[:1].upper() + phrase[1:] if phrase else event_type


def normalize_risk_detection(raw: dict[str, Any], tenant: str) -> Normalized:
    native_id = _required_text(raw, "id", "risk detection")
    changed = _required_time(raw, "lastUpdatedDateTime", "risk detection")
    # Graph's beta and older objects name the kind riskType only.
    event_type = text(raw.get("riskEventType")) or text(raw.get("riskType"))
    level, state = raw.get("riskLevel"), raw.get("riskState")
    info = additional_info(raw.get("additionalInfo"))
    activity_at = parse_time_or_none(raw.get("activityDateTime"))
    return Normalized(
        native_id=native_id,
        tenant=tenant,
        changed_at=changed,
        title=risk_event_title(event_type) if event_type else "Risk detection",
        severity=RISK_LEVELS.get(str(level), "unknown"),
        severity_raw=text(level),
        status=RISK_STATES.get(str(state), "unknown"),
        status_raw=text(state),
        created_at=parse_time_or_none(raw.get("detectedDateTime")),
        updated_at=changed,
        link=text(info.get("alertUrl")),  # Defender for Cloud Apps detections carry one
        extra={
            "type": event_type,
            "category": text(raw.get("activity")),  # signin or user
            "product": "azureAdIdentityProtection",  # alerts_v2's serviceSource for it
            "first_seen_at": activity_at,
            "last_seen_at": activity_at,
            "mitre": compact({"techniques": _split(info.get("mitreTechniques"))}),
            "users": unique_objects([_risky_user(raw, info)]),
            "related": compact({"ips": _ips([raw.get("ipAddress")])}),
        },
    )


def additional_info(value: Any) -> dict[str, Any]:
    """additionalInfo is a JSON *string* of [{"Key": k, "Value": v}]: as {k: v} ({} if bad)."""
    try:
        pairs = json.loads(value) if isinstance(value, str) else []
    except ValueError:
        return {}
    if not isinstance(pairs, list):
        return {}
    return {str(p["Key"]): p.get("Value") for p in pairs if isinstance(p, dict) and "Key" in p}


def _risky_user(raw: dict[str, Any], info: Mapping[str, Any]) -> dict[str, Any] | None:
    upn, ident = text(raw.get("userPrincipalName")), text(raw.get("userId"))
    if not (upn or ident):
        return None
    return compact({
        "type": "user", "id": ident, "name": upn,
        "display_name": text(raw.get("userDisplayName")),
        "location": _location(raw.get("location")),
        "user_agent": text(info.get("userAgent")),
    })


def _location(location: Any) -> str | None:
    """'Seattle, Washington, US' from Graph's signInLocation."""
    if not isinstance(location, dict):
        return None
    parts = (location.get(key) for key in ("city", "state", "countryOrRegion"))
    return ", ".join(p for p in parts if isinstance(p, str) and p) or None


# -- shared helpers ----------------------------------------------------------------------


def _required_text(raw: dict[str, Any], name: str, what: str) -> str:
    value = text(raw.get(name))
    if value is None:
        raise MalformedAlert(f"Graph {what} has no {name}")
    return value


def _required_time(raw: dict[str, Any], name: str, what: str) -> datetime:
    if raw.get(name) in (None, ""):
        raise MalformedAlert(f"Graph {what} has no {name}")
    value = parse_time_or_none(raw[name])
    if value is None:
        raise MalformedAlert(f"Graph {what} {name} {raw[name]!r} is not a time")
    return value


def _split(value: Any) -> list[str]:
    """'T1078, T1110.003' or a list of them -> ['T1078', 'T1110.003']."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    return unique_strings(item.strip() for item in items if isinstance(item, str))


def _ips(values: Iterable[Any]) -> list[str]:
    """Valid IP addresses only (Graph's own docs example has 123.456.7.89); raw keeps all."""
    return [v for v in unique_strings(values) if is_ip_address(v)]


