"""Microsoft Intune: the admin audit log and device-posture changes, via Microsoft Graph.

Two streams per tenant, each its own scope and cursor (`{tenant_id}/{stream}`):
- `audit_events`: GET /v1.0/deviceManagement/auditEvents with `$filter=activityDateTime ge
  START and activityDateTime lt END` (the pinned window), following @odata.nextLink. Who
  changed which policy, app, device or role, and how. An audit event never changes.
- `device_posture`: GET /v1.0/deviceManagement/managedDevices ($select of what the diff
  and the record need), every page to the end, with no $filter: Graph's listing is state,
  not events, and `lastSyncDateTime` filters were seen to answer empty lists
  (microsoftgraph/powershell-intune-samples#11). The scope is a snapshot scope: its Memory
  holds each device's last known {complianceState, jailBroken, threatState}, and a run
  yields one synthesized alert per *transition* of a device condition (noncompliant,
  jailbroken, threat): into a bad state, to a worse or milder bad state, and back to a
  healthy one (status resolved). Its raw is {"device": the device as Graph returned it,
  "transition": {...}}, its native_id `{device id}:{condition}`.

Auth, paging, 429/5xx retries and error lines are the shared Graph plumbing in msgraph.py.
Both streams spend one RateBudget per tenant (`requests_per_minute`). Intune has no
severity: severities come from SEVERITY_POLICY (docs/sources/intune.md), and severity_raw
names the rule applied ("policy:jailbroken").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
)
from alertpull.errors import ConfigError, MalformedAlert
from alertpull.ratebudget import RateBudget
from alertpull.record import Normalized, compact, text, unique_objects
from alertpull.snapshot import snapshot_changes
from alertpull.timeutil import format_time, parse_time_or_none

from .msgraph import (
    GRAPH_OPTIONS,
    GRAPH_REQUIRES,
    Endpoint,
    GraphApp,
    GraphClient,
    check_graph_settings,
)

AUDIT_EVENTS = "audit_events"
DEVICE_POSTURE = "device_posture"
STREAM_NAMES = (AUDIT_EVENTS, DEVICE_POSTURE)
# Intune keeps its audit log for a year (unverified on a live tenant); posture has no
# history to backfill. Graph documents no $orderby for auditEvents: a cut window is re-read.
# Page sizes are Graph's defaults: no $top maximum is documented for either collection.
STREAMS = {
    AUDIT_EVENTS: Stream(AUDIT_EVENTS, ordered=False, retention=timedelta(days=365)),
    DEVICE_POSTURE: Stream(DEVICE_POSTURE, ordered=False, retention=timedelta(days=365),
                           snapshot=True),
}
# For a degraded record. A posture change has no id of its own (it is the device's id and
# a condition, which a degraded one may not have): it is named by its content hash.
LANDMARKS = {
    AUDIT_EVENTS: Landmarks(title=("displayName", "activity", "activityType"),
                            created=("activityDateTime",), updated=("activityDateTime",)),
    DEVICE_POSTURE: Landmarks(id=(), title=("device.deviceName",),
                              created=("transition.observedAt",),
                              updated=("device.lastSyncDateTime", "transition.observedAt")),
}

AUDIT_PATH = "/v1.0/deviceManagement/auditEvents"
DEVICES_PATH = "/v1.0/deviceManagement/managedDevices"
PERMISSIONS = {
    AUDIT_EVENTS: "DeviceManagementApps.Read.All",  # Intune files its audit log under apps
    DEVICE_POSTURE: "DeviceManagementManagedDevices.Read.All",
}
# What the diff and the record need. Never activationLockBypassCode: it unlocks the device.
DEVICE_FIELDS = (
    "id", "deviceName", "serialNumber", "operatingSystem", "osVersion", "model",
    "manufacturer", "userPrincipalName", "userDisplayName", "userId", "complianceState",
    "jailBroken", "partnerReportedThreatState", "managementAgent", "managedDeviceOwnerType",
    "enrolledDateTime", "lastSyncDateTime", "azureADDeviceId",
)
# Devices missing from the listing are remembered this long, then forgotten (Intune's
# device clean-up rules remove devices idle for 30 days at the earliest).
FORGET_MISSING_AFTER = timedelta(days=30)
_OLDEST_REAL_TIME = datetime(2000, 1, 1, tzinfo=UTC)  # Graph says 0001-01-01 for "never"


# -- device conditions and the severity policy ---------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One posture condition of a device: where Graph reports it and how bad each value is.

    `levels` maps a reported value (Graph's spelling; matched ignoring case) to 0 (healthy)
    or a badness (higher is worse). A value not in it (unknown, unresponsive, absent…) says
    nothing, and the last known one stands.
    """

    name: str
    device_field: str  # the managedDevice property
    memory_key: str  # its key in the scope's Memory
    levels: Mapping[str, int]
    title: str

    def spelled(self, value: Any) -> str | None:
        """`value` in Graph's spelling if it is one of `levels`, else None."""
        if not isinstance(value, str):
            return None
        return next((known for known in self.levels if known.lower() == value.lower()), None)

    def level(self, value: Any) -> int | None:
        known = self.spelled(value)
        return self.levels[known] if known is not None else None


CONDITIONS = (
    Condition("noncompliant", "complianceState", "complianceState",
              # inGracePeriod: noncompliant but still granted access; Intune alerts later.
              {"compliant": 0, "inGracePeriod": 0, "noncompliant": 1},
              "Device not compliant with its Intune compliance policies"),
    Condition("jailbroken", "jailBroken", "jailBroken", {"False": 0, "True": 1},
              "Device jailbroken or rooted"),
    Condition("threat", "partnerReportedThreatState", "threatState",
              {"secured": 0, "activated": 0, "lowSeverity": 1, "mediumSeverity": 2,
               "highSeverity": 3, "compromised": 4},
              "Mobile Threat Defense partner reports a threat on the device"),
)
CONDITION_BY_NAME = {condition.name: condition for condition in CONDITIONS}

# The documented policy: rule -> severity. A posture alert's rule is its condition, or for
# `threat` the reported level; a recovery keeps the rule of the state it recovered from.
SEVERITY_POLICY = {
    "audit_event": "informational",
    "noncompliant": "medium",
    "jailbroken": "high",
    "threat:compromised": "high",
    "threat:highSeverity": "high",
    "threat:mediumSeverity": "medium",
    "threat:lowSeverity": "low",
}


def _rule(condition: Condition, bad_value: Any) -> str:
    """The policy rule of a condition in a bad state (for threat: per reported level)."""
    if condition.name != "threat":
        return condition.name
    return f"threat:{condition.spelled(bad_value)}"


# -- the connector -------------------------------------------------------------------------


class IntuneConnector(Connector):
    type_name = "intune"
    vendor = Vendor("Microsoft")
    default_overlap = timedelta(hours=1)
    options: ClassVar[Mapping[str, Option]] = {
        **GRAPH_OPTIONS,
        "streams": Option("list", default=list(STREAM_NAMES), choices=tuple(STREAM_NAMES),
                          help="the streams to pull, each with its own cursor"),
        "requests_per_minute": Option(
            "int", default=100,
            help="Graph calls per minute per tenant, both streams together (Intune allows "
                 "1000 per 20 s per app on audit events, 2000 on devices)"),
    }
    requires = GRAPH_REQUIRES

    @classmethod
    def check_settings(cls, where: str, settings: Mapping[str, Any]) -> None:
        check_graph_settings(where, settings)

    def __init__(self, source_name: str, settings: Mapping[str, Any], log: Log) -> None:
        super().__init__(source_name, settings, log)
        self.app = GraphApp.from_settings(source_name, settings)
        self.streams: list[str] = settings["streams"]
        per_minute = settings["requests_per_minute"]
        if per_minute < 1:
            raise ConfigError(f"sources.{source_name}.requests_per_minute: must be at least 1")
        # Per tenant, whichever app or source calls: alertpull's share of Intune's limits.
        budget = RateBudget.shared(f"msgraph-intune:{self.app.tenant_id}", per_minute, 60.0)
        self.endpoints = {
            AUDIT_EVENTS: Endpoint(AUDIT_PATH, PERMISSIONS[AUDIT_EVENTS], budget),
            DEVICE_POSTURE: Endpoint(DEVICES_PATH, PERMISSIONS[DEVICE_POSTURE], budget),
        }
        self.graph = GraphClient(self.app, log, settings)

    # -- the connector contract ----------------------------------------------------------

    def scopes(self) -> list[Scope]:
        tenant = self.app.tenant_id
        return [STREAMS[name].scope(f"{tenant}/{name}", {"tenant_id": tenant, "stream": name},
                                    tenant)
                for name in self.streams]

    def fetch(self, scope: Scope, window: Window, memory: Memory) -> Iterator[list[Any]]:
        if scope.params["stream"] == DEVICE_POSTURE:
            yield from self._posture_changes(window, memory)
            return
        query = {"$filter": f"activityDateTime ge {format_time(window.start)} and "
                            f"activityDateTime lt {format_time(window.end)}"}
        yield from self.graph.pages(self.endpoints[AUDIT_EVENTS], query)

    def normalize(self, scope: Scope, raw: Any) -> Normalized:
        if not isinstance(raw, dict):
            raise MalformedAlert("Graph object is not a JSON object")
        tenant = scope.params["tenant_id"]
        if scope.params["stream"] == DEVICE_POSTURE:
            return normalize_posture_change(raw, tenant)
        return normalize_audit_event(raw, tenant)

    def landmarks(self, scope: Scope) -> Landmarks:
        return LANDMARKS[scope.params["stream"]]

    def check(self) -> str:
        for name in self.streams:
            params = {"$top": "1", **({"$select": "id"} if name == DEVICE_POSTURE else {})}
            self.graph.first_page(self.endpoints[name], params)
        read = ", ".join(self.endpoints[name].path for name in self.streams)
        return f"tenant {self.app.tenant_id}: app {self.app.client_id} signed in and read {read}"

    def describe(self, raw: Any) -> str:
        if not isinstance(raw, dict):
            return super().describe(raw)
        device = raw.get("device")
        if isinstance(device, dict):
            return f"device {text(device.get('id')) or text(device.get('deviceName'))}"
        if text(raw.get("id")):
            return str(raw["id"])
        return f"audit event at {raw.get('activityDateTime')}"

    # -- device posture ------------------------------------------------------------------

    def _posture_changes(self, window: Window, memory: Memory) -> Iterator[list[Any]]:
        """The posture transitions since the last run's snapshot, page by page.

        One snapshot per run: a later window of the same run (a backfill) yields nothing.
        """
        params = {"$select": ",".join(DEVICE_FIELDS)}
        # Half a listing would read as devices gone missing: list them all next run.
        yield from snapshot_changes(
            memory, self.graph.pages(self.endpoints[DEVICE_POSTURE], params),
            lambda previous: PostureSnapshot(previous, observed_at=window.end),
            "the devices are listed again next run")


class PostureSnapshot:
    """This run's device list diffed against the last run's, one device at a time.

    Memory: {"devices": {id: {"complianceState", "jailBroken", "threatState"
    [, "missingSince"]}}}, the last *known* value of each condition. A device absent from
    this listing is carried over unchanged (no alert: Graph's listing may leave devices
    out, pitfall 21) and forgotten after FORGET_MISSING_AFTER.
    """

    def __init__(self, previous: Mapping[str, Any] | None, observed_at: datetime) -> None:
        devices = previous.get("devices") if isinstance(previous, Mapping) else None
        self.previous: dict[str, Any] = dict(devices) if isinstance(devices, Mapping) else {}
        self.current: dict[str, dict[str, Any]] = {}
        self.observed_at = observed_at

    def see(self, device: Any) -> list[dict[str, Any]]:
        """The alerts one listed device raises; a device without an id goes to normalize()
        as it is, to be reported and skipped as malformed."""
        ident = device.get("id") if isinstance(device, dict) else None
        if not isinstance(ident, str) or not ident:
            return [{"device": device, "transition": None}]
        known = self.previous.get(ident)
        known = known if isinstance(known, dict) else {}
        state: dict[str, Any] = {}
        changes = []
        for condition in CONDITIONS:
            before, now = known.get(condition.memory_key), device.get(condition.device_field)
            if condition.level(now) is None:  # says nothing new: the last known value stands
                state[condition.memory_key] = before if condition.memory_key in known else now
                continue
            state[condition.memory_key] = now
            if condition.level(now) != (condition.level(before) or 0):
                changes.append({"device": device, "transition": {
                    "condition": condition.name, "property": condition.device_field,
                    "from": before, "to": now, "observedAt": format_time(self.observed_at),
                }})
        self.current[ident] = state
        return changes

    def finish(self) -> dict[str, Any]:
        """The snapshot to commit: every device seen, plus the recently missing ones."""
        devices: dict[str, Any] = dict(self.current)
        for ident, state in self.previous.items():
            if ident in devices or not isinstance(state, dict):
                continue
            since = parse_time_or_none(state.get("missingSince")) or self.observed_at
            if self.observed_at - since < FORGET_MISSING_AFTER:
                devices[ident] = {**state, "missingSince": format_time(since)}
        return {"devices": devices}


# -- normalize: posture changes ------------------------------------------------------------


def normalize_posture_change(raw: dict[str, Any], tenant: str) -> Normalized:
    device, transition = raw.get("device"), raw.get("transition")
    if not isinstance(device, dict):
        raise MalformedAlert("Intune managedDevice is not a JSON object")
    ident = text(device.get("id"))
    if ident is None:
        raise MalformedAlert("Intune managedDevice has no id")
    if not isinstance(transition, dict):
        raise MalformedAlert("posture change has no transition")
    condition = CONDITION_BY_NAME.get(str(transition.get("condition")))
    if condition is None:
        raise MalformedAlert("posture change has no known condition")
    now, before = transition.get("to"), transition.get("from")
    bad = bool(condition.level(now))
    rule = _rule(condition, now if bad else before)
    changed = _sync_time(device) or parse_time_or_none(transition.get("observedAt"))
    if changed is None:
        raise MalformedAlert("posture change has neither lastSyncDateTime nor observedAt")
    name = text(device.get("deviceName")) or ident
    return Normalized(
        native_id=f"{ident}:{condition.name}",
        tenant=tenant,
        changed_at=changed,
        title=f"{condition.title}: {name}",
        severity=SEVERITY_POLICY.get(rule, "unknown"),
        severity_raw=f"policy:{rule}",
        status="new" if bad else "resolved",
        status_raw=text(now),
        created_at=changed if bad and not condition.level(before) else None,
        updated_at=changed,
        link=None,
        extra={
            "severity_derived": True,  # from alertpull's policy table, not the vendor
            "description": _transition_text(condition, before, now),
            "category": "device_posture",
            "type": condition.name,
            "product": "Microsoft Intune",
            "resolved_at": None if bad else changed,
            "devices": [_device_entity(device, ident)],
            "users": unique_objects([_device_user(device)]),
        },
    )


def _sync_time(device: dict[str, Any]) -> datetime | None:
    synced = parse_time_or_none(device.get("lastSyncDateTime"))
    return synced if synced is not None and synced >= _OLDEST_REAL_TIME else None


def _transition_text(condition: Condition, before: Any, now: Any) -> str:
    was = f"{before}" if before is not None else "not known before"
    return f"{condition.device_field} changed from {was} to {now}"


def _device_entity(device: dict[str, Any], ident: str) -> dict[str, Any]:
    return compact({
        "type": "device", "id": ident, "name": text(device.get("deviceName")),
        "serial_number": text(device.get("serialNumber")),
        "os": text(device.get("operatingSystem")), "os_version": text(device.get("osVersion")),
        "model": text(device.get("model")), "manufacturer": text(device.get("manufacturer")),
        "user": text(device.get("userPrincipalName")),
        "azure_ad_device_id": text(device.get("azureADDeviceId")),
    })


def _device_user(device: dict[str, Any]) -> dict[str, Any] | None:
    upn, ident = text(device.get("userPrincipalName")), text(device.get("userId"))
    if not (upn or ident):
        return None
    return compact({"type": "user", "id": ident, "name": upn,
                     "display_name": text(device.get("userDisplayName"))})


# -- normalize: audit events ---------------------------------------------------------------


def normalize_audit_event(raw: dict[str, Any], tenant: str) -> Normalized:
    ident = text(raw.get("id"))
    if ident is None:
        raise MalformedAlert("Intune audit event has no id")
    if raw.get("activityDateTime") in (None, ""):
        raise MalformedAlert("Intune audit event has no activityDateTime")
    happened = parse_time_or_none(raw["activityDateTime"])
    if happened is None:
        raise MalformedAlert(f"Intune audit event activityDateTime {raw['activityDateTime']!r} "
                             "is not a time")
    actor: dict[str, Any] = raw["actor"] if isinstance(raw.get("actor"), dict) else {}
    resources = [item for item in raw.get("resources") or [] if isinstance(item, dict)]
    return Normalized(
        native_id=ident,
        tenant=tenant,
        changed_at=happened,
        title=(text(raw.get("displayName")) or text(raw.get("activity"))
               or text(raw.get("activityType")) or "Intune audit event"),
        severity=SEVERITY_POLICY["audit_event"],
        severity_raw="policy:audit_event",
        status="new",
        status_raw=None,  # an audit event has no status
        created_at=happened,
        updated_at=happened,
        link=None,
        extra={
            "severity_derived": True,  # from alertpull's policy table, not the vendor
            "description": _audit_text(raw, actor, resources),
            "category": text(raw.get("category")),
            "type": text(raw.get("activityType")),
            "product": "Microsoft Intune",
            "users": unique_objects([_actor(actor)]),
            "resources": unique_objects(_resource(item) for item in resources),
            "related": compact({"ips": _ips([actor.get("ipAddress")])}),
        },
    )


def _actor(actor: dict[str, Any]) -> dict[str, Any] | None:
    """The person who acted, else the app (app-only automation) that did."""
    upn, user_id = text(actor.get("userPrincipalName")), text(actor.get("userId"))
    if upn or user_id:
        return compact({"type": "user", "id": user_id, "name": upn})
    app_id = text(actor.get("applicationId"))
    app_name = text(actor.get("applicationDisplayName")) or text(
        actor.get("servicePrincipalName"))
    if app_id or app_name:
        return compact({"type": "application", "id": app_id, "name": app_name})
    return None


def _resource(item: dict[str, Any]) -> dict[str, Any] | None:
    changed = [text(prop.get("displayName")) for prop in item.get("modifiedProperties") or []
               if isinstance(prop, dict)]
    resource = compact({
        "type": text(item.get("auditResourceType")) or text(item.get("type")),
        "id": text(item.get("resourceId")), "name": text(item.get("displayName")),
        "modified_properties": [name for name in changed if name],
    })
    return resource if resource.get("id") or resource.get("name") else None


def _audit_text(raw: dict[str, Any], actor: dict[str, Any],
                resources: list[dict[str, Any]]) -> str | None:
    """'Patch by admin@contoso.example on Windows baseline: Success'."""
    what = text(raw.get("activityOperationType")) or text(raw.get("activityType"))
    if what is None:
        return None
    who = (text(actor.get("userPrincipalName")) or text(actor.get("applicationDisplayName"))
           or text(actor.get("servicePrincipalName")))
    names = [name for name in (text(r.get("displayName")) for r in resources) if name]
    summary = what + (f" by {who}" if who else "") + (f" on {', '.join(names)}" if names else "")
    result = text(raw.get("activityResult"))
    return f"{summary}: {result}" if result else summary


# -- helpers -------------------------------------------------------------------------------


def _ips(values: Iterable[Any]) -> list[str]:
    """Valid IP addresses only (Graph's docs examples carry 123.456.7.89); raw keeps all."""
    found = []
    for value in values:
        if isinstance(value, str):
            try:
                found.append(str(ipaddress.ip_address(value)))
            except ValueError:
                continue
    return found
