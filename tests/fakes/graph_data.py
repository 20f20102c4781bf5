"""Deterministic Microsoft Graph data in the wire shape: alerts_v2 alerts and risk detections.

Shapes follow Graph's v1.0 resources (security alert + evidence types, riskDetection);
the values are made up. Alert n is updated at base_time + n * step, and so is risk
detection n. Timestamps carry Graph's seven fractional digits.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

Alert = dict[str, Any]
RiskDetection = dict[str, Any]

TENANT_ID = "4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
BASE_TIME = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
_NAMESPACE = uuid.UUID("0b9e7c2a-1d3f-4e5a-8b6c-7d8e9f0a1b2c")

ALERT_KINDS = ("endpoint", "identity", "email", "sentinel", "minimal")
SEVERITIES = ("informational", "low", "medium", "high")
STATUSES = ("new", "inProgress", "resolved")
# serviceSource members added after unknownFutureValue: Graph masks them as
# unknownFutureValue unless the request says `Prefer: include-unknown-enum-members`.
EVOLVED_SERVICE_SOURCES = frozenset(
    {"microsoftDefenderForCloud", "microsoftSentinel", "microsoftInsiderRiskManagement"}
)

RISK_EVENT_TYPES = (
    "unfamiliarFeatures",
    "anonymizedIPAddress",
    "leakedCredentials",
    "unlikelyTravel",
    "suspiciousAPITraffic",  # not in the connector's table: humanized
)
RISK_LEVELS = ("low", "medium", "high", "none", "hidden")
RISK_STATES = ("atRisk", "remediated", "dismissed", "confirmedCompromised", "confirmedSafe", "none")


def graph_time(moment: datetime) -> str:
    """Graph's format: seven fractional digits and Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def user_account(n: int) -> dict[str, Any]:
    return {
        "accountName": f"user{n}",
        "domainName": "CONTOSO",
        "userSid": f"S-1-5-21-1004336348-1177238915-682003330-{1000 + n}",
        "azureAdUserId": str(uuid.uuid5(_NAMESPACE, f"user-{n}")),
        "userPrincipalName": f"user{n}@contoso.example",
        "displayName": f"User {n}",
    }


def make_alert(n: int, *, base_time: datetime = BASE_TIME,
               step: timedelta = timedelta(minutes=1), kind: str | None = None,
               tenant_id: str = TENANT_ID) -> Alert:
    kind = kind or ALERT_KINDS[n % len(ALERT_KINDS)]
    updated = base_time + n * step
    status = STATUSES[n % len(STATUSES)]
    alert_id = f"da6375512276775{n:05d}_{-961444813 - n}"
    alert: Alert = {
        "@odata.type": "#microsoft.graph.security.alert",
        "id": alert_id,
        "providerAlertId": alert_id,
        "incidentId": str(28000 + n),
        "status": status,
        "severity": SEVERITIES[n % len(SEVERITIES)],
        "classification": "truePositive" if status == "resolved" else None,
        "determination": "malware" if status == "resolved" else None,
        "tenantId": tenant_id,
        "title": f"Alert {n}",
        "description": f"Description of alert {n}.",
        "assignedTo": f"analyst{n % 3}@contoso.example" if status != "new" else None,
        "alertWebUrl": f"https://security.microsoft.com/alerts/{alert_id}?tid={tenant_id}",
        "incidentWebUrl": f"https://security.microsoft.com/incidents/{28000 + n}?tid={tenant_id}",
        "mitreTechniques": [],
        "createdDateTime": graph_time(updated - timedelta(minutes=10)),
        "lastUpdateDateTime": graph_time(updated),
        "resolvedDateTime": graph_time(updated) if status == "resolved" else None,
        "firstActivityDateTime": graph_time(updated - timedelta(minutes=30)),
        "lastActivityDateTime": graph_time(updated - timedelta(minutes=12)),
        "comments": [],
        "evidence": [],
        "systemTags": [],
    }
    alert.update(_ALERT_SHAPES[kind](n))
    return alert


def make_alerts(count: int, *, first: int = 0, **kwargs: Any) -> list[Alert]:
    return [make_alert(n, **kwargs) for n in range(first, first + count)]


def _endpoint_alert(n: int) -> dict[str, Any]:
    device_id = f"73e7e2de709dff64ef64b1d0c30e67fab632{n:04d}"
    content = f"file {n}".encode()
    file = {"sha1": hashlib.sha1(content).hexdigest(),
            "sha256": hashlib.sha256(content).hexdigest(), "fileName": "MsSense.exe",
            "filePath": "C:\\Program Files\\temp", "fileSize": 6136392}
    return {
        "serviceSource": "microsoftDefenderForEndpoint",
        "detectionSource": "antivirus",
        "category": "DefenseEvasion",
        "title": "Suspicious execution of hidden file",
        "mitreTechniques": ["T1564.001"],
        "evidence": [
            {"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": device_id,
             "azureAdDeviceId": None, "deviceDnsName": f"host{n}.contoso.example",
             "osPlatform": "Windows10", "ipInterfaces": ["10.0.0.4"], "roles": ["compromised"]},
            {"@odata.type": "#microsoft.graph.security.fileEvidence", "mdeDeviceId": device_id,
             "detectionStatus": "detected", "fileDetails": file},
            {"@odata.type": "#microsoft.graph.security.processEvidence", "mdeDeviceId": device_id,
             "processId": 4780, "imageFile": file, "userAccount": user_account(n)},
            {"@odata.type": "#microsoft.graph.security.registryKeyEvidence",
             "registryKey": "SYSTEM\\CONTROLSET001", "registryHive": "HKEY_LOCAL_MACHINE"},
        ],
    }


def _identity_alert(n: int) -> dict[str, Any]:
    return {
        "serviceSource": "azureAdIdentityProtection",
        "detectionSource": "azureAdIdentityProtection",
        "category": "InitialAccess",
        "title": "Unfamiliar sign-in properties",
        "evidence": [
            {"@odata.type": "#microsoft.graph.security.userEvidence",
             "userAccount": user_account(n), "roles": ["impacted"]},
            {"@odata.type": "#microsoft.graph.security.ipEvidence",
             "ipAddress": f"203.0.113.{n % 250}", "countryLetterCode": "NL"},
        ],
    }


def _email_alert(n: int) -> dict[str, Any]:
    return {
        "serviceSource": "microsoftDefenderForOffice365",
        "detectionSource": "microsoftDefenderForOffice365",
        "category": "InitialAccess",
        "title": "Email messages containing malicious URL removed after delivery",
        "mitreTechniques": ["T1566.002"],
        "evidence": [
            {"@odata.type": "#microsoft.graph.security.mailboxEvidence",
             "primaryAddress": f"user{n}@contoso.example", "userAccount": user_account(n)},
            {"@odata.type": "#microsoft.graph.security.analyzedMessageEvidence",
             "senderIp": f"198.51.100.{n % 250}",
             "recipientEmailAddress": f"user{n}@contoso.example",
             "p1Sender": {"emailAddress": f"billing{n}@invoices.example"},
             "p2Sender": {"emailAddress": f"billing{n}@invoices.example"},
             "subject": "Invoice overdue"},
            {"@odata.type": "#microsoft.graph.security.urlEvidence",
             "url": f"https://invoices.example/pay/{n}"},
        ],
    }


def _sentinel_alert(n: int) -> dict[str, Any]:
    return {
        "serviceSource": "microsoftSentinel",  # masked without the Prefer header
        "detectionSource": "scheduledAlerts",
        "category": "SuspiciousActivity",
        "severity": "unknownFutureValue",
        "status": "unknownFutureValue",
        "title": "Rare sign-in from a service account",
    }


def _minimal_alert(n: int) -> dict[str, Any]:
    """The fields Elastic's mock alerts carry, and no more (no evidence, no links)."""
    return {
        "serviceSource": "microsoftDefenderForEndpoint",
        "detectionSource": "customDetection",
        "category": "Malware",
        "title": "Suspicious network connection",
        "alertWebUrl": None,
        "evidence": None,
        "mitreTechniques": None,
    }


_ALERT_SHAPES = {
    "endpoint": _endpoint_alert,
    "identity": _identity_alert,
    "email": _email_alert,
    "sentinel": _sentinel_alert,
    "minimal": _minimal_alert,
}


def make_risk_detection(n: int, *, base_time: datetime = BASE_TIME,
                        step: timedelta = timedelta(minutes=1)) -> RiskDetection:
    updated = base_time + n * step
    event_type = RISK_EVENT_TYPES[n % len(RISK_EVENT_TYPES)]
    offline = event_type == "leakedCredentials"
    info: list[dict[str, Any]] = [{"Key": "userAgent", "Value": f"Mozilla/5.0 (agent {n})"}]
    if event_type == "anonymizedIPAddress":
        info.append({"Key": "mitreTechniques", "Value": "T1090.003"})
    detection_id = str(uuid.uuid5(_NAMESPACE, f"risk-{n}"))
    return {
        "@odata.type": "#microsoft.graph.riskDetection",
        "id": detection_id,
        "requestId": detection_id,
        "correlationId": str(uuid.uuid5(_NAMESPACE, f"correlation-{n}")),
        "riskEventType": event_type,
        "riskState": RISK_STATES[n % len(RISK_STATES)],
        "riskLevel": RISK_LEVELS[n % len(RISK_LEVELS)],
        "riskDetail": "none",
        "source": "IdentityProtection" if offline else "activeDirectory",
        "detectionTimingType": "offline" if offline else "realtime",
        "activity": "user" if offline else "signin",
        "tokenIssuerType": "AzureAD",
        # Graph's own docs example carries the invalid 123.456.7.89: every 7th one does too.
        "ipAddress": None if offline else ("123.456.7.89" if n % 7 == 6 else f"192.0.2.{n % 250}"),
        "location": None if offline else {"city": "Seattle", "state": "Washington",
                                          "countryOrRegion": "US", "geoCoordinates": None},
        "activityDateTime": graph_time(updated - timedelta(hours=30 if offline else 0, minutes=5)),
        "detectedDateTime": graph_time(updated - timedelta(minutes=2)),
        "lastUpdatedDateTime": graph_time(updated),
        "userId": str(uuid.uuid5(_NAMESPACE, f"user-{n % 4}")),
        "userDisplayName": f"User {n % 4}",
        "userPrincipalName": f"user{n % 4}@contoso.example",
        "additionalInfo": json.dumps(info),
    }


def make_risk_detections(count: int, *, first: int = 0, **kwargs: Any) -> list[RiskDetection]:
    return [make_risk_detection(n, **kwargs) for n in range(first, first + count)]
