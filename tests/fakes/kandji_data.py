"""Deterministic, realistic Kandji objects in the wire JSON of its three alert-like endpoints.

- audit events (GET /api/v1/audit/events): ULID ids, `occurred_at` with microseconds and
  "Z". Seven kinds rotate by index: blueprint and library item changes, a device
  enrollment, access to a FileVault key, and three EDR events (a threat detected, a
  behavioral detection, a threat quarantined). Kandji does not publish its EDR event
  vocabulary; these target types and actions are this fake's assumption.
- behavioral detections (GET /api/v1/behavioral-detections): UUID ids, malicious or
  suspicious, detected or blocked, `detection_date` with a "+00:00" offset, process trees.
- threat details (GET /api/v1/threat-details): no id, MALWARE or PUP, QUARANTINED or
  NOT_QUARANTINED, naive timestamps (UTC) with microseconds, empty strings for the
  release fields until `release()` fills them as an admin's release does.

Hashes are SHA-256 of a label and the index; devices and serials repeat every 13 objects.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

BASE_TIME = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(minutes=1)
ADMIN_ID = "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5"
_NAMESPACE = uuid.UUID("5b0c2a8e-7d41-4f3a-9c2e-1e6f0a9b8d37")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

Obj = dict[str, Any]


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(map(str, parts))))


def sha256(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def ulid(moment: datetime, index: int) -> str:
    """A ULID: 48-bit Unix milliseconds then 80 bits (here derived from the index)."""
    millis = int(moment.timestamp() * 1000)
    randomness = int.from_bytes(hashlib.sha256(f"ulid/{index}".encode()).digest()[:10], "big")
    number = (millis << 80) | randomness
    return "".join(_CROCKFORD[(number >> shift) & 31] for shift in range(125, -1, -5))


def audit_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def detection_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")  # ...+00:00


def naive_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


class Device:
    """One of 13 Macs, by index."""

    def __init__(self, index: int) -> None:
        number = index % 13
        self.id = _uuid("device", number)
        self.name = f"mac-{number:02d}"
        self.serial = f"C02Z{number:04d}Q6L7"


# -- audit events -------------------------------------------------------------------------------

AUDIT_KINDS = ("blueprint_update", "library_item_create", "device_enrolled", "filevault_key_view",
               "edr_threat_detected", "edr_behavioral_detection", "edr_threat_quarantined")
EDR_DETECTION_KINDS = ("edr_threat_detected", "edr_behavioral_detection")


def _audit_body(kind: str, index: int) -> Obj:
    device = Device(index)
    blueprint = _uuid("blueprint", index % 3)
    bodies: dict[str, Obj] = {
        "blueprint_update": {
            "action": "update", "target_id": blueprint, "target_type": "blueprint",
            "target_component": "library_items",
            "new_state": {"name": f"Engineering {index % 3}", "library_items_removed": [],
                          "library_items_added": [{"id": _uuid("li", index), "name": "GitHub"}]},
            "metadata": {},
        },
        "library_item_create": {
            "action": "create", "target_id": _uuid("li", index), "target_type": "library_item",
            "target_component": "", "new_state": {"name": "Okta Verify", "type": "vpp-app"},
            "metadata": {"source": None, "source_id": None},
        },
        "device_enrolled": {
            "action": "enroll", "target_id": device.id, "target_type": "device",
            "target_component": "", "actor_type": "system", "actor_id": None,
            "new_state": {"name": device.name, "serial_number": device.serial,
                          "blueprint_id": blueprint},
            "metadata": {},
        },
        "filevault_key_view": {
            "action": "view", "target_id": device.id, "target_type": "device",
            "target_component": "filevault_recovery_key", "new_state": {},
            "metadata": {"device_name": device.name},
        },
        "edr_threat_detected": {
            "action": "detected", "target_id": _uuid("threat", index),
            "target_type": "edr_threat", "target_component": "malware", "actor_type": "system",
            "actor_id": None,
            "new_state": {"name": f"malware_{index}", "file_hash": sha256("threat", index),
                          "file_path": f"/Users/Shared/malware_{index}"},
            "metadata": {"device_id": device.id, "device_name": device.name},
        },
        "edr_behavioral_detection": {
            "action": "detected", "target_id": _uuid("bd", index),
            "target_type": "edr_behavioral_detection", "target_component": "",
            "actor_type": "system", "actor_id": None,
            "new_state": {"name": f"KTI_BD_{index % 400:04d}", "classification": "suspicious"},
            "metadata": {"device_id": device.id, "device_name": device.name},
        },
        "edr_threat_quarantined": {
            "action": "quarantined", "target_id": _uuid("threat", index),
            "target_type": "edr_threat", "target_component": "malware", "actor_type": "system",
            "actor_id": None, "new_state": {"name": f"malware_{index}", "status": "QUARANTINED"},
            "metadata": {"device_id": device.id},
        },
    }
    return bodies[kind]


def make_audit_event(index: int, occurred_at: datetime | None = None) -> Obj:
    moment = occurred_at or BASE_TIME + index * STEP
    body = _audit_body(AUDIT_KINDS[index % len(AUDIT_KINDS)], index)
    return {
        "id": ulid(moment, index),
        "action": body["action"],
        "occurred_at": audit_time(moment),
        "actor_id": body.get("actor_id", ADMIN_ID),
        "actor_type": body.get("actor_type", "user"),
        "target_id": body["target_id"],
        "target_type": body["target_type"],
        "target_component": body["target_component"],
        "new_state": body["new_state"],
        "metadata": body["metadata"],
    }


def make_audit_events(count: int, *, first: int = 0, base_time: datetime = BASE_TIME,
                      step: timedelta = STEP) -> list[Obj]:
    """Events first..first+count-1, the first at base_time + first * step, then every step."""
    return [make_audit_event(n, base_time + n * step) for n in range(first, first + count)]


# -- behavioral detections -------------------------------------------------------------------

CLASSIFICATIONS = ("malicious", "suspicious")
THREAT_STATUSES = ("detected", "blocked", "detected")


def _process(role: str, index: int, name: str, path: str, command: str, owner: str) -> Obj:
    return {"name": name, "command_line": command, "image_path": path,
            "pid": 4000 + index * 2 + (role == "target"), "owner": owner,
            "sha256": sha256(role, name, index)}


def make_behavioral_detection(index: int, detected_at: datetime | None = None) -> Obj:
    moment = detected_at or BASE_TIME + index * STEP
    device = Device(index)
    owner = "root" if index % 4 == 0 else f"user{index % 5}"
    return {
        "id": _uuid("bd", index).upper(),
        "threat_id": f"KTI_BD_{index % 400:04d}",
        "rule_version": 1 + index % 3,
        "description": "A shell spawned a process that reads browser credential stores.",
        "classification": CLASSIFICATIONS[index % 2],
        "informational_tags": ["credential_access"] if index % 2 else [],
        "malware_family": ["AMOS"] if index % 5 == 0 else [],
        "detection_date": detection_time(moment),
        "threat_status": THREAT_STATUSES[index % 3],
        "device_info": {"id": device.id, "name": device.name, "serial_number": device.serial},
        "parent_process": _process("parent", index, "zsh", "/bin/zsh", "-zsh", owner),
        "target_process": _process("target", index, "osascript", "/usr/bin/osascript",
                                   f"osascript -e 'do shell script {index}'", owner),
        "library_item": {"id": _uuid("edr-li"), "name": "EDR", "mal_posture_mode": "protect"},
        "blueprint": {"id": _uuid("blueprint", index % 3), "name": f"Engineering {index % 3}"},
    }


def make_behavioral_detections(count: int, *, first: int = 0, base_time: datetime = BASE_TIME,
                               step: timedelta = STEP) -> list[Obj]:
    return [make_behavioral_detection(n, base_time + n * step)
            for n in range(first, first + count)]


# -- threat details ----------------------------------------------------------------------------

THREAT_CLASSIFICATIONS = ("MALWARE", "MALWARE", "PUP")
THREAT_STATUSES_WIRE = ("QUARANTINED", "NOT_QUARANTINED", "QUARANTINED", "QUARANTINED")


def make_threat_detail(index: int, detected_at: datetime | None = None) -> Obj:
    moment = detected_at or BASE_TIME + index * STEP
    device = Device(index)
    classification = THREAT_CLASSIFICATIONS[index % 3]
    status = THREAT_STATUSES_WIRE[index % 4]
    name = f"{classification.lower()}_{index}"
    quarantined = moment + timedelta(seconds=1, microseconds=187_488)
    return {
        "threat_name": name,
        "classification": classification,
        "status": status,
        "process_name": "chmod",
        "process_owner": "root" if index % 2 else f"user{index % 5}",
        "device_name": device.name,
        "device_id": device.id,
        "detection_date": naive_time(moment),
        "date_of_quarantine": naive_time(quarantined) if status == "QUARANTINED" else "",
        "date_of_release": "",
        "released_by": "",
        "release_note": "",
        "file_path": f"/Users/Shared/Downloads/{name}",
        "file_hash": sha256("file", index),
        "bundle_path": "",
        "device_serial_number": device.serial,
        "blueprint_id": _uuid("blueprint", index % 3),
        "blueprint_name": f"Engineering {index % 3}",
        "library_item_name": "Avert",
        "library_item_id": _uuid("avert"),
        "pup_posture": "protect",
        "malware_posture": "protect",
    }


def make_threat_details(count: int, *, first: int = 0, base_time: datetime = BASE_TIME,
                        step: timedelta = STEP) -> list[Obj]:
    return [make_threat_detail(n, base_time + n * step) for n in range(first, first + count)]


def release(detail: Obj, at: datetime, by: str = "secops@example.com",
            note: str = "Internal build tool, allowed") -> Obj:
    """An admin releases the file from quarantine: the same record changes (vendor-apis §6)."""
    detail.update(status="RELEASED", date_of_release=naive_time(at), released_by=by,
                  release_note=note)
    return detail
