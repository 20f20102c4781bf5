"""The `--format ocsf` output: one OCSF 1.8.0 Detection Finding (class 2004) per record.

`to_ocsf` is a pure function of a native record (the dict `build_record` returns), so
every connector gets the mapping without knowing about it. Every record field lands
somewhere: in its OCSF attribute, in an entity's `data`, or verbatim under `unmapped`.

activity_id is Close (3) when the record's status is resolved, Create (1) when the
record was created and last updated at the same instant or when the caller has never
seen an earlier version of the alert, and Update (2) otherwise. The caller knows only
the versions its cursor remembers (those inside the overlap window), so an alert first
written long ago and updated now, or one whose creation was never pulled, reads as
Create: consumers should upsert on `finding_info.uid`, not trust Create to mean "new".
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from alertpull.connector import Vendor
from alertpull.record import ID_NAMESPACE, canonical_json, is_ip_address
from alertpull.timeutil import parse_time, to_epoch_ms

OCSF_VERSION = "1.8.0"
CLASS_UID = 2004  # Detection Finding
CATEGORY_UID = 2  # Findings

ACTIVITY_CREATE, ACTIVITY_UPDATE, ACTIVITY_CLOSE = 1, 2, 3
ACTIVITY_NAMES = {ACTIVITY_CREATE: "Create", ACTIVITY_UPDATE: "Update", ACTIVITY_CLOSE: "Close"}
SEVERITY_NAMES = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High",
                  5: "Critical"}
# The record's statuses were chosen to be OCSF's finding statuses, one for one.
STATUS_IDS = {"unknown": 0, "new": 1, "in_progress": 2, "suppressed": 3, "resolved": 4,
              "archived": 5, "deleted": 6}
STATUS_NAMES = {0: "Unknown", 1: "New", 2: "In Progress", 3: "Suppressed", 4: "Resolved",
                5: "Archived", 6: "Deleted"}


# related{} kind -> OCSF observable type_id and its caption.
OBSERVABLE_TYPES = {
    "ips": (2, "IP Address"),
    "domains": (1, "Hostname"),
    "urls": (6, "URL String"),
    "hashes": (8, "Hash"),
    "emails": (5, "Email Address"),
}
# Record entity keys -> OCSF attribute, per entity kind; other keys go to `data`.
RESOURCE_KEYS = {"id": "uid", "name": "name", "type": "type"}
CLOUD_RESOURCE_KEYS = {**RESOURCE_KEYS, "region": "region"}  # region needs the cloud profile
USER_KEYS = {"id": "uid", "name": "name", "type": "type", "email": "email_addr",
             "display_name": "display_name", "domain": "domain"}
DEVICE_KEYS = {"id": "uid", "name": "name", "model": "model", "manufacturer": "vendor_name"}
# OCSF os.type_id by the start of a device's OS name, as vendors spell it.
OS_TYPE_IDS = (("windows", 100), ("android", 201), ("ipados", 302), ("ios", 301),
               ("macos", 300), ("mac os", 300), ("linux", 200))
# Record fields no OCSF attribute of this class holds; kept verbatim under `unmapped`.
UNMAPPED_FIELDS = ("source_type", "dedup_key", "severity_raw", "assignee", "resolved_at",
                   "normalize_error")

# What a passed-through vendor finding carries of the record, under unmapped.alertpull.
PROVENANCE_FIELDS = ("id", "dedup_key", "source", "source_type", "native_id", "pulled_at",
                     "raw_sha256")

_TECHNIQUE = re.compile(r"^T\d{4}$")
_SUB_TECHNIQUE = re.compile(r"^(T\d{4})\.\d{3}$")
_TACTIC = re.compile(r"^TA\d{4}$")
SHA256_ALGORITHM_ID = 3
# The schema's own email_t pattern (ocsf-json-schema 1.8.0), so what we type validates.
_EMAIL = re.compile(r"^[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$")


def _is_email(value: str) -> bool:
    return _EMAIL.match(value) is not None


def _is_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return False
    return bool(parts.scheme and parts.netloc)


# A value that breaks its OCSF format is left out of the typed field (the record's raw
# keeps it): per OCSF attribute of an entity, and per related{} kind of an observable.
ATTRIBUTE_CHECKS = {"email_addr": _is_email}
RELATED_CHECKS = {"ips": is_ip_address, "urls": _is_url, "emails": _is_email}


def to_ocsf(record: Mapping[str, Any], *, seen_before: bool, vendor: Vendor | None = None,
            raw_data: bool = True, native: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Detection Finding event for one record version.

    `seen_before`: an earlier version of this alert was written (see the module doc).
    `vendor`: the connector's Vendor (product vendor, cloud provider), if known.
    `raw_data`: carry the vendor object as `raw_data` (its canonical JSON, which is what
    `raw_sha256` hashes, so `raw_data_hash` matches it exactly).
    `native`: the vendor's own OCSF finding (Connector.ocsf_finding), passed through
    instead of a mapping of the record (see passed_through).
    """
    if native is not None:
        return passed_through(record, native)
    activity = activity_id(record, seen_before)
    status = STATUS_IDS[record["status"]]
    cloud = _cloud(record, vendor)
    resources, unnamed = _resources(record.get("resources", []), cloud is not None)
    event: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity,
        "activity_name": ACTIVITY_NAMES[activity],
        "type_uid": CLASS_UID * 100 + activity,
        "type_name": f"Detection Finding: {ACTIVITY_NAMES[activity]}",
        **_time("time", _event_time(record)),
        "severity_id": record["severity_id"],
        "severity": SEVERITY_NAMES[record["severity_id"]],
        "status_id": status,
        "status": STATUS_NAMES[status],
        "status_detail": record["status_raw"],
        "is_alert": True,
        "message": record["title"],
        "count": record.get("count"),
        "finding_info": _finding_info(record),
        "metadata": _metadata(record, vendor, profiles=["cloud"] if cloud else []),
        "cloud": cloud,
        "resources": resources,
        **_devices(record.get("devices", [])),
        "evidences": _evidences(record),
        "observables": list(_observables(record.get("related", {}))),
        "unmapped": _unmapped(record, cloud, unnamed),
    }
    if raw_data:
        event["raw_data"] = canonical_json(record["raw"]).decode()
        event["raw_data_hash"] = {"algorithm_id": SHA256_ALGORITHM_ID, "algorithm": "SHA-256",
                                  "value": record["raw_sha256"]}
    else:
        event["unmapped"]["raw_sha256"] = record["raw_sha256"]
    return _compact(event)


def passed_through(record: Mapping[str, Any], native: Mapping[str, Any]) -> dict[str, Any]:
    """A vendor's own OCSF finding, as it sent it, with alertpull's provenance added.

    Whatever the vendor filled stays as it is (its class, version, uids and times); the
    metadata gains the tenant and the time alertpull logged it where the vendor left them
    out, and `unmapped.alertpull` carries the record's identity (`id`, the key to upsert
    on, and `dedup_key`), its source and the hash of the vendor object.
    """
    metadata = {**(native.get("metadata") or {})}
    metadata.setdefault("tenant_uid", record["tenant"])
    metadata.setdefault("logged_time", to_epoch_ms(parse_time(record["pulled_at"])))
    unmapped = {**(native.get("unmapped") or {})}
    unmapped["alertpull"] = {name: record[name] for name in PROVENANCE_FIELDS}
    return {**native, "metadata": metadata, "unmapped": unmapped}


def activity_id(record: Mapping[str, Any], seen_before: bool) -> int:
    if record["status"] == "resolved":
        return ACTIVITY_CLOSE
    created, updated = record.get("created_at"), record.get("updated_at")
    if not seen_before or (created is not None and created == updated):
        return ACTIVITY_CREATE
    return ACTIVITY_UPDATE


def event_uid(record: Mapping[str, Any]) -> str:
    """metadata.uid: one per alert version (finding_info.uid is the alert's record id)."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{record['id']}|{record['raw_sha256']}"))


def _event_time(record: Mapping[str, Any]) -> str:
    return record.get("updated_at") or record.get("created_at") or record["pulled_at"]


def _time(name: str, value: str | None) -> dict[str, Any]:
    """An OCSF timestamp (epoch ms) and its `_dt` twin of the datetime profile."""
    if value is None:
        return {}
    return {name: to_epoch_ms(parse_time(value)), f"{name}_dt": value}


def _finding_info(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "uid": record["id"],
        "uid_alt": record["native_id"],
        "title": record["title"],
        "desc": record.get("description"),
        "types": _unique([record.get("type"), record.get("category")]),
        "src_url": record["link"],
        "attacks": _attacks(record.get("mitre", {})),
        **_time("created_time", record["created_at"]),
        **_time("modified_time", record["updated_at"]),
        **_time("first_seen_time", record.get("first_seen_at")),
        **_time("last_seen_time", record.get("last_seen_at")),
    }


def _metadata(record: Mapping[str, Any], vendor: Vendor | None,
              profiles: list[str]) -> dict[str, Any]:
    return {
        "version": OCSF_VERSION,
        "product": {"name": record.get("product") or record["source_type"],
                    "vendor_name": vendor.name if vendor else None},
        "uid": event_uid(record),
        "source": record["source"],  # the configured source name
        "tenant_uid": record["tenant"],
        "original_time": record.get("updated_at") or record.get("created_at"),
        **_time("logged_time", record["pulled_at"]),
        "profiles": sorted([*profiles, "datetime"]),
    }


def _cloud(record: Mapping[str, Any], vendor: Vendor | None) -> dict[str, Any] | None:
    if vendor is None or vendor.cloud is None:
        return None
    tenant = record["tenant"]
    project = tenant.removeprefix("projects/") if tenant.startswith("projects/") else None
    return {
        "provider": vendor.cloud,
        "account": {"uid": tenant, "type_id": vendor.account_type_id},
        "project_uid": project,
        "region": record.get("region"),
    }


def _attacks(mitre: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """One attack per tactic and per technique: the record does not say which go together."""
    attacks = [{"tactic": _id_or_name(t, _TACTIC)} for t in mitre.get("tactics", [])]
    for technique in mitre.get("techniques", []):
        parent = _SUB_TECHNIQUE.match(technique)
        if parent:
            attacks.append({"technique": {"uid": parent.group(1)},
                            "sub_technique": {"uid": technique}})
        else:
            attacks.append({"technique": _id_or_name(technique, _TECHNIQUE)})
    return attacks


def _id_or_name(value: str, id_pattern: re.Pattern[str]) -> dict[str, str]:
    return {"uid": value} if id_pattern.match(value) else {"name": value}


def _entity(entity: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    """An OCSF object from a record entity; keys without an attribute go to `data`."""
    typed = {k: str(v) for k, v in entity.items() if k in keys and v is not None}
    fitting = {k: v for k, v in typed.items()
               if ATTRIBUTE_CHECKS.get(keys[k], lambda _: True)(v)}
    mapped = {keys[k]: v for k, v in fitting.items()}
    rest = {k: v for k, v in entity.items() if k not in keys or (k in typed and k not in fitting)}
    return {**mapped, "data": rest or None}


def _resources(entities: list[Mapping[str, Any]],
               cloud: bool) -> tuple[list[dict[str, Any]], list[Any]]:
    """The resources OCSF can hold (with a uid or a name), and the others, kept whole."""
    keys = CLOUD_RESOURCE_KEYS if cloud else RESOURCE_KEYS
    mapped = [_entity(entity, keys) for entity in entities]
    return ([r for r in mapped if _identified(r)],
            [e for e, r in zip(entities, mapped, strict=True) if not _identified(r)])


def _identified(obj: Mapping[str, Any]) -> bool:
    """OCSF users, devices and resources need a uid or a name."""
    return bool(obj.get("uid") or obj.get("name"))


def _device(entity: Mapping[str, Any]) -> dict[str, Any]:
    device = _entity(entity, DEVICE_KEYS)
    data = device.get("data") or {}
    serial = data.pop("serial_number", None)
    os_name, os_version = data.pop("os", None), data.pop("os_version", None)
    return {
        **device,
        # Unknown: no vendor says reliably whether it is a laptop, a phone or a server.
        "type_id": 0,
        "hw_info": {"serial_number": serial} if serial else None,
        "os": _os(str(os_name), os_version) if os_name else None,
    }


def _os(name: str, version: Any) -> dict[str, Any]:
    type_id = next((t for prefix, t in OS_TYPE_IDS if name.lower().startswith(prefix)), 0)
    return {"name": name, "type_id": type_id, "version": str(version) if version else None}


def _devices(devices: list[Mapping[str, Any]]) -> dict[str, Any]:
    """`device`: the first device the alert is about (the class has one); all of them are
    also evidences, with the keys OCSF has no attribute for."""
    if not devices:
        return {}
    first = _device(devices[0])
    first.pop("data", None)
    return {"device": first} if _identified(first) else {}


def _evidences(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [*(_evidence("user", _entity(u, USER_KEYS), u) for u in record.get("users", [])),
            *(_evidence("device", _device(d), d) for d in record.get("devices", []))]


def _evidence(kind: str, mapped: dict[str, Any], entity: Mapping[str, Any]) -> dict[str, Any]:
    if not _identified(mapped):
        return {"data": dict(entity)}  # nothing to name it by: kept whole
    data = mapped.pop("data", None)
    return {kind: mapped, "data": data}


def _observables(related: Mapping[str, list[str]]) -> Iterator[dict[str, Any]]:
    for kind, values in related.items():
        type_id, caption = OBSERVABLE_TYPES[kind]
        fits = RELATED_CHECKS.get(kind, lambda _: True)
        for value in values:
            if fits(value):
                yield {"type_id": type_id, "type": caption, "value": value}


def _unmapped(record: Mapping[str, Any], cloud: dict[str, Any] | None,
              unnamed_resources: list[Any]) -> dict[str, Any]:
    unmapped = {name: record.get(name) for name in UNMAPPED_FIELDS}
    unmapped["resources"] = unnamed_resources
    if cloud is None:
        unmapped["region"] = record.get("region")  # cloud.region holds it for cloud sources
    return unmapped


def _unique(values: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _compact(value: Any) -> Any:
    """Drop None and empty containers, recursively, except inside vendor `data`."""
    if isinstance(value, dict):
        kept = {k: v if k == "data" else _compact(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value
