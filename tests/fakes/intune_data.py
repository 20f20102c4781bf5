"""Deterministic Microsoft Intune data in Graph's v1.0 wire shape: audit events and devices.

Shapes follow Graph's `auditEvent` and `managedDevice` resources (every property Graph
returns, so the connector's $select is what trims them); the values are made up. Audit
event n happens at base_time + n * step. Timestamps carry Graph's seven fractional digits.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from .graph_data import BASE_TIME, graph_time

AuditEvent = dict[str, Any]
Device = dict[str, Any]

_NAMESPACE = uuid.UUID("5d0c3f6e-8a1b-4c2d-9e7f-1a2b3c4d5e6f")
NEVER_SYNCED = "0001-01-01T00:00:00Z"  # what Graph returns for a device that never synced

AUDIT_KINDS = ("policy_change", "compliance_policy", "device_wipe", "app_actor", "minimal")

# A device's posture: (complianceState, jailBroken, partnerReportedThreatState).
POSTURES: dict[str, tuple[str, str, str]] = {
    "healthy": ("compliant", "False", "secured"),
    "noncompliant": ("noncompliant", "False", "secured"),
    "jailbroken": ("compliant", "True", "secured"),
    "threat_low": ("compliant", "False", "lowSeverity"),
    "threat_medium": ("compliant", "False", "mediumSeverity"),
    "threat_high": ("compliant", "False", "highSeverity"),
    "compromised": ("noncompliant", "False", "compromised"),
    "unknown": ("unknown", "Unknown", "unknown"),
}
# The demo and the default generated fleet: mostly healthy, a few in each bad state.
FLEET = ("healthy",) * 6 + ("noncompliant", "healthy", "jailbroken", "healthy",
                            "threat_medium", "healthy", "threat_high", "unknown")

_PLATFORMS = (
    ("Windows", "10.0.22631.3447", "Latitude 7440", "Dell Inc."),
    ("iOS", "17.4.1", "iPhone 15", "Apple"),
    ("Android", "14", "Pixel 8", "Google"),
    ("macOS", "14.4.1", "MacBook Pro", "Apple"),
)


def _uuid(kind: str, n: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}-{n}"))


# -- audit events --------------------------------------------------------------------------


def make_audit_event(n: int, *, base_time: datetime = BASE_TIME,
                     step: timedelta = timedelta(minutes=1), kind: str | None = None) -> AuditEvent:
    kind = kind or AUDIT_KINDS[n % len(AUDIT_KINDS)]
    event: AuditEvent = {
        "@odata.type": "#microsoft.graph.auditEvent",
        "id": _uuid("audit", n),
        "displayName": None,
        "componentName": None,
        "actor": None,
        "activity": None,
        "activityDateTime": graph_time(base_time + n * step),
        "activityType": None,
        "activityOperationType": None,
        "activityResult": None,
        "correlationId": _uuid("correlation", n),
        "resources": [],
        "category": None,
    }
    event.update(_AUDIT_SHAPES[kind](n))
    return event


def make_audit_events(count: int, *, first: int = 0, **kwargs: Any) -> list[AuditEvent]:
    return [make_audit_event(n, **kwargs) for n in range(first, first + count)]


def _admin(n: int) -> dict[str, Any]:
    return {
        "@odata.type": "microsoft.graph.auditActor",
        "type": "ItPro",
        "auditActorType": "ItPro",
        "userPermissions": ["*"],
        "applicationId": "0000000a-0000-0000-c000-000000000000",
        "applicationDisplayName": "Microsoft Intune",
        "userPrincipalName": f"admin{n % 3}@contoso.example",
        "servicePrincipalName": None,
        "ipAddress": f"198.51.100.{n % 250}",
        "userId": _uuid("admin", n % 3),
    }


def _resource(kind: str, name: str, n: int, changes: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "@odata.type": "microsoft.graph.auditResource",
        "displayName": name,
        "modifiedProperties": [
            {"@odata.type": "microsoft.graph.auditProperty", "displayName": prop,
             "oldValue": old, "newValue": new}
            for prop, old, new in changes
        ],
        "type": kind,
        "auditResourceType": kind,
        "resourceId": _uuid(kind, n),
    }


def _policy_change(n: int) -> dict[str, Any]:
    return {
        "displayName": "Patch DeviceConfiguration",
        "componentName": "DeviceConfiguration",
        "actor": _admin(n),
        "activity": "Patch DeviceConfiguration",
        "activityType": "Patch DeviceConfiguration",
        "activityOperationType": "Patch",
        "activityResult": "Success",
        "category": "DeviceConfiguration",
        "resources": [_resource("DeviceConfiguration", f"Windows baseline {n}", n,
                                [("PasswordRequired", "True", "False")])],
    }


def _compliance_policy(n: int) -> dict[str, Any]:
    return {
        "displayName": "Create DeviceCompliancePolicy",
        "componentName": "DeviceCompliance",
        "actor": _admin(n),
        "activity": "Create DeviceCompliancePolicy",
        "activityType": "Create DeviceCompliancePolicy",
        "activityOperationType": "Create",
        "activityResult": "Success",
        "category": "Compliance",
        "resources": [_resource("DeviceCompliancePolicy", f"iOS compliance {n}", n,
                                [("OsMinimumVersion", "", "17.0")])],
    }


def _device_wipe(n: int) -> dict[str, Any]:
    return {
        "displayName": "wipe ManagedDevice",
        "componentName": "Devices",
        "actor": _admin(n),
        "activity": "wipe ManagedDevice",
        "activityType": "wipe ManagedDevice",
        "activityOperationType": "Action",
        "activityResult": "Failure",
        "category": "Device",
        "resources": [_resource("ManagedDevice", f"DESKTOP-{n:04d}", n, [])],
    }


def _app_actor(n: int) -> dict[str, Any]:
    """A change made by an app registration (app-only automation), not a person."""
    return {
        "displayName": "Delete MobileApp",
        "componentName": "MobileApps",
        "actor": {
            "@odata.type": "microsoft.graph.auditActor",
            "type": "Application",
            "auditActorType": "Application",
            "userPermissions": [],
            "applicationId": _uuid("automation-app", n % 2),
            "applicationDisplayName": "Fleet automation",
            "userPrincipalName": None,
            "servicePrincipalName": "fleet-automation",
            "ipAddress": "123.456.7.89",  # an invalid address, as Graph's docs examples have
            "userId": None,
        },
        "activity": "Delete MobileApp",
        "activityType": "Delete MobileApp",
        "activityOperationType": "Delete",
        "activityResult": "Success",
        "category": "Application",
        "resources": [_resource("MobileApp", f"Legacy VPN {n}", n, [])],
    }


def _minimal(n: int) -> dict[str, Any]:
    """Only the identity and the time: no actor, no resources, no names."""
    return {"resources": None}


_AUDIT_SHAPES = {
    "policy_change": _policy_change,
    "compliance_policy": _compliance_policy,
    "device_wipe": _device_wipe,
    "app_actor": _app_actor,
    "minimal": _minimal,
}


# -- managed devices -----------------------------------------------------------------------


def make_device(n: int, posture: str = "healthy", *, synced: datetime | None = None) -> Device:
    """A managedDevice as Graph returns it without $select (every v1.0 property)."""
    compliance, jailbroken, threat = POSTURES[posture]
    platform, os_version, model, manufacturer = _PLATFORMS[n % len(_PLATFORMS)]
    enrolled = BASE_TIME - timedelta(days=200) + n * timedelta(hours=1)
    return {
        "@odata.type": "#microsoft.graph.managedDevice",
        "id": _uuid("device", n),
        "userId": _uuid("user", n),
        "deviceName": f"{platform.upper()[:3]}-{n:04d}",
        "managedDeviceOwnerType": "company",
        "deviceActionResults": [],
        "enrolledDateTime": graph_time(enrolled),
        "lastSyncDateTime": graph_time(synced or BASE_TIME),
        "operatingSystem": platform,
        "complianceState": compliance,
        "jailBroken": jailbroken,
        "managementAgent": "mdm",
        "osVersion": os_version,
        "easActivated": False,
        "easDeviceId": None,
        "easActivationDateTime": NEVER_SYNCED,
        "azureADRegistered": True,
        "deviceEnrollmentType": "windowsAzureADJoin" if platform == "Windows" else "userEnrollment",
        "activationLockBypassCode": f"BYPASS-{n:04d}-SECRET",  # never $select-ed by alertpull
        "emailAddress": f"user{n}@contoso.example",
        "azureADDeviceId": _uuid("aad-device", n),
        "deviceRegistrationState": "registered",
        "deviceCategoryDisplayName": "Unknown",
        "isSupervised": platform == "iOS",
        "exchangeLastSuccessfulSyncDateTime": NEVER_SYNCED,
        "exchangeAccessState": "none",
        "exchangeAccessStateReason": "none",
        "remoteAssistanceSessionUrl": None,
        "remoteAssistanceSessionErrorDetails": None,
        "isEncrypted": True,
        "userPrincipalName": f"user{n}@contoso.example",
        "model": model,
        "manufacturer": manufacturer,
        "imei": None,
        "complianceGracePeriodExpirationDateTime": "9999-12-31T23:59:59Z",
        "serialNumber": f"SN{n:08d}",
        "phoneNumber": None,
        "androidSecurityPatchLevel": "2024-04-01" if platform == "Android" else None,
        "userDisplayName": f"User {n}",
        "configurationManagerClientEnabledFeatures": None,
        "wiFiMacAddress": f"02:00:00:00:{n // 256 % 256:02x}:{n % 256:02x}",
        "deviceHealthAttestationState": None,
        "subscriberCarrier": None,
        "meid": None,
        "totalStorageSpaceInBytes": 256_000_000_000,
        "freeStorageSpaceInBytes": 100_000_000_000,
        "managedDeviceName": f"user{n}_{platform}_{n}",
        "partnerReportedThreatState": threat,
    }


def make_devices(count: int, *, first: int = 0, postures: tuple[str, ...] = FLEET,
                 synced: datetime | None = None) -> list[Device]:
    return [make_device(n, postures[n % len(postures)], synced=synced)
            for n in range(first, first + count)]


def set_posture(device: Device, posture: str, *, synced: datetime | None = None) -> Device:
    """Change a device in place as a sync reporting a new posture would."""
    compliance, jailbroken, threat = POSTURES[posture]
    device.update(complianceState=compliance, jailBroken=jailbroken,
                  partnerReportedThreatState=threat)
    if synced is not None:
        device["lastSyncDateTime"] = graph_time(synced)
    return device


# Every v1.0 managedDevice property: what $select may name.
DEVICE_PROPERTIES = frozenset(make_device(0)) - {"@odata.type"}
