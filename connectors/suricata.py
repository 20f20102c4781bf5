"""Suricata IDS/IPS alerts from EVE JSON: files on this host, or objects in S3.

Suricata has no pull API: it writes one JSON object per line to `eve.json`, and AWS
Network Firewall (Suricata inside) delivers the same lines, wrapped, as gzip objects in S3.
So this source reads with the engine's *position cursor* instead of a time window (see
connector.Position): connectors/eve_files.py keeps per file content the offset read,
connectors/eve_s3.py per key stream the keys read. The runner commits that position with
the cursor after the output is published, in the same two-phase delivery as every other
source, so a crash at any point reads every line exactly once.

Alerts are append-only: an EVE line never changes, so each is one version of its own.
The mapping (severity policy, native id recipe) is documented in docs/sources/suricata.md.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any, ClassVar

from alertpull.connector import (
    Connector,
    Landmarks,
    Log,
    Memory,
    Option,
    Scope,
    Vendor,
    Window,
)
from alertpull.connectors.eve import EventFilter, eve_event
from alertpull.connectors.eve_files import EveFiles
from alertpull.connectors.eve_s3 import EveBucket, network_firewall_account, parse_s3_uri
from alertpull.errors import ConfigError, MalformedAlert
from alertpull.record import Normalized, compact, dig, text, unique_strings
from alertpull.timeutil import from_epoch_ms, parse_time_or_none
from alertpull.validate import endpoint_url, require_modules

EVENT_TYPES = ("alert", "anomaly", "drop")
PAGE = 1000  # events handed to the engine at once
# An EVE event has no id field: a degraded one is named by its content hash.
LANDMARKS = Landmarks(id=(), title=("alert.signature",), created=("timestamp",),
                      updated=("timestamp",))

# Suricata's alert.severity is the rule's priority: 1 is the most urgent, 4 the least
# (Emerging Threats rules use 1-3; classification.config gives 1-4).
SEVERITIES = {1: "high", 2: "medium", 3: "low", 4: "informational"}

# alert.metadata keys of Emerging Threats rules that name MITRE ATT&CK entries.
MITRE_KEYS = {"tactics": ("mitre_tactic_id", "mitre_tactic_name"),
              "techniques": ("mitre_technique_id", "mitre_technique_name")}

# The EVE fields that tell one alert from another: the same line read twice gives the
# same id, two alerts of one flow differ by time, rule or direction.
NATIVE_ID_FIELDS = (
    ("event_type",), ("flow_id",), ("timestamp",), ("alert", "gid"), ("alert", "signature_id"),
    ("alert", "rev"), ("src_ip",), ("src_port",), ("dest_ip",), ("dest_port",), ("proto",),
    ("anomaly", "type"), ("anomaly", "event"),
)


class SuricataConnector(Connector):
    type_name = "suricata"
    vendor = Vendor("OISF Suricata")
    default_overlap = timedelta(hours=1)
    options: ClassVar[Mapping[str, Option]] = {
        "path": Option("path", help="eve.json file or glob on this host, e.g. "
                                    "/var/log/suricata/eve.json*"),
        "s3_uri": Option(help="s3://bucket/prefix/ of Network Firewall alert logs or uploads"),
        "event_types": Option("list", default=["alert"], choices=EVENT_TYPES,
                              help="EVE event types to pull: alert, anomaly, drop"),
        "sensor": Option(help="tenant of lines with no `host` field (default: this host's "
                              "name, or the S3 stream)"),
        "late_arrival": Option("duration", default=timedelta(hours=1),
                               help="s3_uri: how late an object may land behind newer keys "
                                    "and still be read"),
        "endpoint_url": Option(help="S3 endpoint override (else AWS_ENDPOINT_URL_S3)"),
        "region": Option(help="S3 region"),
    }

    def __init__(self, source_name: str, settings: Mapping[str, Any], log: Log) -> None:
        super().__init__(source_name, settings, log)
        self.events = EventFilter(settings["event_types"])
        self._bucket: EveBucket | None = None

    @classmethod
    def check_settings(cls, where: str, settings: Mapping[str, Any]) -> None:
        if (settings["path"] is None) == (settings["s3_uri"] is None):
            raise ConfigError(f"{where}: set exactly one of path (files on this host) and "
                              "s3_uri (objects in S3)")
        if settings["s3_uri"] is not None:
            parse_s3_uri(settings["s3_uri"], f"{where}.s3_uri")
            require_modules(f"{where}.s3_uri", {"boto3": "aws"})
        else:
            stray = [key for key in ("endpoint_url", "region") if settings[key]]
            if stray:
                raise ConfigError(f"{where}.{stray[0]}: used only with s3_uri; remove it "
                                  "when reading files from path")
        if settings["endpoint_url"]:
            endpoint_url(settings["endpoint_url"], f"{where}.endpoint_url",
                         form="http(s)://host[:port] of an S3-compatible endpoint")

    # -- the connector contract ----------------------------------------------------------

    def scopes(self) -> list[Scope]:
        if self.settings["path"] is not None:
            return [Scope(key=f"file:{self.settings['path']}", position=True)]
        bucket = self._s3()
        return [Scope(key=f"s3://{bucket.bucket}/{stream}", position=True,
                      params={"stream": stream, "dated": dated,
                              "account": network_firewall_account(stream),
                              "region": _network_firewall_region(stream)})
                for stream, dated in bucket.streams()]

    def fetch(self, scope: Scope, window: Window, memory: Memory) -> Iterator[list[Any]]:
        position = memory.position
        unparsed_before = self.events.unparsed
        if self.settings["path"] is not None:
            files = EveFiles(self.settings["path"], position.previous, self.events, self.log)
            yield from _pages(files.read())
            position.advance(files.position())
        else:
            events, keys = self._s3().read(scope.params["stream"], scope.params["dated"],
                                           position.previous, first_since=window.start)
            yield from _pages(events)
            position.advance(keys)
        memory.unparsed += self.events.unparsed - unparsed_before  # this scope's share

    def landmarks(self, scope: Scope) -> Landmarks:
        return LANDMARKS

    def normalize(self, scope: Scope, raw: Any) -> Normalized:
        if not isinstance(raw, dict):
            raise MalformedAlert("EVE line is not a JSON object")
        return normalize_eve(raw, self._tenant(scope, raw), scope.params)

    def check(self) -> str:
        if self.settings["path"] is not None:
            files = EveFiles(self.settings["path"], None, self.events, self.log)
            return f"{len(files.paths())} file(s) match {self.settings['path']}"
        bucket = self._s3()
        return f"{len(bucket.streams())} EVE stream(s) under {self.settings['s3_uri']}"

    def describe(self, raw: Any) -> str:
        if not isinstance(raw, dict):
            return super().describe(raw)
        event = eve_event(raw)
        return (f"{event.get('event_type')} at {event.get('timestamp')} flow "
                f"{event.get('flow_id')} sid {dig(event, 'alert', 'signature_id')}")

    # -- helpers -------------------------------------------------------------------------

    def _s3(self) -> EveBucket:
        if self._bucket is None:
            self._bucket = EveBucket(self.settings, self.events, self.log)
        return self._bucket

    def _tenant(self, scope: Scope, raw: dict[str, Any]) -> str:
        """Network Firewall: account/firewall; else the sensor that wrote the line."""
        firewall = text(raw.get("firewall_name"))
        if firewall and "event" in raw:
            account = scope.params.get("account")
            return f"{account}/{firewall}" if account else firewall
        host = text(eve_event(raw).get("host"))
        if host:
            return host
        if self.settings["sensor"]:
            return str(self.settings["sensor"])
        if "stream" in scope.params:
            return scope.key
        return socket.gethostname()


def _pages(events: Iterable[dict[str, Any]]) -> Iterator[list[Any]]:
    page: list[Any] = []
    for event in events:
        page.append(event)
        if len(page) == PAGE:
            yield page
            page = []
    if page:
        yield page


def _network_firewall_region(stream: str) -> str | None:
    parts = stream.split("/")
    if "network-firewall" in parts:
        at = parts.index("network-firewall")
        return parts[at + 2] if len(parts) > at + 2 and parts[at + 2] else None
    return None


# -- mapping -------------------------------------------------------------------------------


def native_id(event: dict[str, Any]) -> str:
    """SHA-256 (first 32 hex digits) of the NATIVE_ID_FIELDS values joined by '|'
    (absent = empty): see docs/sources/suricata.md, "Native id"."""
    values = ("" if (v := dig(event, *path)) is None else str(v) for path in NATIVE_ID_FIELDS)
    return hashlib.sha256("|".join(values).encode()).hexdigest()[:32]


def normalize_eve(raw: dict[str, Any], tenant: str, params: Mapping[str, Any]) -> Normalized:
    event = eve_event(raw)
    alert = event.get("alert") if isinstance(event.get("alert"), dict) else {}
    seen_at = parse_time_or_none(event.get("timestamp"))
    if seen_at is None and str(raw.get("event_timestamp", "")).isdigit():
        seen_at = from_epoch_ms(int(raw["event_timestamp"]) * 1000)  # Network Firewall's
    if seen_at is None:
        raise MalformedAlert(f"EVE timestamp {event.get('timestamp')!r} is not a time")
    severity = alert.get("severity")
    firewall = text(raw.get("firewall_name"))
    return Normalized(
        native_id=native_id(event),
        tenant=tenant,
        changed_at=seen_at,
        title=_title(event, alert),
        severity=SEVERITIES.get(severity, "unknown") if isinstance(severity, int) else "unknown",
        severity_raw=None if severity is None else str(severity),
        status="new",  # an IDS line has no workflow state
        status_raw=None,
        created_at=seen_at,
        updated_at=seen_at,
        link=None,
        extra={
            "description": _description(event, alert),
            "category": text(alert.get("category")),
            "type": text(event.get("event_type")),
            "region": params.get("region"),
            "product": "AWS Network Firewall" if firewall else "Suricata",
            "first_seen_at": seen_at,
            "mitre": _mitre(alert.get("metadata")),
            "resources": [compact({"type": "network_firewall", "id": firewall,
                                   "availability_zone": text(raw.get("availability_zone"))})]
            if firewall else [],
            "related": compact({
                "ips": unique_strings([event.get("src_ip"), event.get("dest_ip")]),
                "domains": unique_strings([dig(event, "http", "hostname"),
                                           dig(event, "tls", "sni")]),
            }),
        },
    )


def _title(event: dict[str, Any], alert: dict[str, Any]) -> str:
    signature = text(alert.get("signature"))
    if signature:
        return signature
    if alert.get("signature_id") is not None:
        return f"Suricata rule {alert.get('gid', 1)}:{alert['signature_id']}:{alert.get('rev', 0)}"
    anomaly = dig(event, "anomaly", "event") or dig(event, "anomaly", "type")
    if anomaly:
        return f"Protocol anomaly: {anomaly}"
    return f"Suricata {event.get('event_type') or 'event'}"


def _description(event: dict[str, Any], alert: dict[str, Any]) -> str | None:
    if not event.get("src_ip"):
        return None
    action = text(alert.get("action"))
    flow = (f"{event.get('proto') or ''} {event['src_ip']}:{event.get('src_port', '')} -> "
            f"{event.get('dest_ip')}:{event.get('dest_port', '')}").strip()
    return f"{action}: {flow}" if action else flow


def _mitre(metadata: Any) -> dict[str, list[str]]:
    """ATT&CK ids from an Emerging Threats rule's metadata (values are lists of strings);
    names where a rule gives no ids."""
    if not isinstance(metadata, dict):
        return {}
    mitre = {}
    for field, (ids, names) in MITRE_KEYS.items():
        values = metadata.get(ids) or metadata.get(names)
        found = unique_strings(values if isinstance(values, list) else [values])
        if found:
            mitre[field] = found
    return mitre
