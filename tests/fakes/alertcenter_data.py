"""Deterministic, realistic Google Workspace Alert Center alerts in the v1beta1 wire JSON.

Eleven alert kinds rotate by index, each with the `data` payload its `@type` carries:
suspicious login and leaked password (AccountWarning), user-reported phishing, phishing
and malware reclassification (MailPhishing), device compromised, suspicious activity and a
device-management rule (the MDM alerts of Google endpoint management), account suspension
warning, activity rule and reporting rule. Every alert has its own alertId (a UUID derived
from the customer and the index); severity and status rotate, a severity is sometimes
absent, as Alert Center leaves it when it cannot tell. IPs are documentation ranges,
external domains are example.net/example.org, the customer's domain is example.com.
`touch()` changes an alert the way an admin or Google does (status, assignee, deletion),
moving its updateTime. `generated_alerts` is the bench's lazy form: alerts made when read.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .generated import Generated

CUSTOMER_ID = "03ph8a2z"  # Alert Center's customerId: the Workspace customer ID without its "C"
DOMAIN = "example.com"
BASE_TIME = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(minutes=1)
TYPE_PREFIX = "type.googleapis.com/google.apps.alertcenter.type."
SEVERITIES = ("HIGH", "MEDIUM", "LOW", "HIGH", "MEDIUM", None)  # None: no severity set
STATUSES = ("NOT_STARTED", "IN_PROGRESS", "CLOSED", "NOT_STARTED")
_ID_NAMESPACE = uuid.UUID("0c2f9d3e-6b1a-4e7f-9a58-3d0e6c1b2a47")

Alert = dict[str, Any]


def wire_time(moment: datetime) -> str:
    """Alert Center's timestamps: RFC 3339 with microseconds and 'Z'."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alert_id(customer_id: str, index: int) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{customer_id}/{index}"))


def _etag(*parts: object) -> str:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return base64.urlsafe_b64encode(digest[:8]).decode()  # like "OiGPjc-58EQ=", stable


class _Context:
    """Per-alert values the payloads share, all derived from the index."""

    def __init__(self, index: int, created: datetime) -> None:
        self.index = index
        self.created = created
        self.user = f"user{index % 17}@{DOMAIN}"
        self.ip = f"203.0.113.{index % 250 + 1}"
        self.sender = f"billing-{index % 9}@invoices-{index % 5}.example.net"
        self.device_id = f"d{index:07d}-8c1f-4e8a"
        self.serial = f"R58N{index:06d}X"
        self.resource_id = f"AFiQxQ{index:08x}"

    def sha256(self, what: str) -> str:
        return hashlib.sha256(f"{what}-{self.index}".encode()).hexdigest()

    def md5(self, what: str) -> str:
        return hashlib.md5(f"{what}-{self.index}".encode(), usedforsecurity=False).hexdigest()

    def message(self, recipient: str, *, reported: bool) -> dict[str, Any]:
        message: dict[str, Any] = {
            "messageId": f"<{self.index}.{recipient.split('@')[0]}@mail.example.net>",
            "recipient": recipient,
            "md5HashMessageBody": self.md5("body"),
            "attachmentsSha256Hash": [self.sha256("invoice.pdf.html")],
            "date": wire_time(self.created - timedelta(minutes=20)),
            "sentTime": wire_time(self.created - timedelta(minutes=21)),
        }
        if reported:  # subject and snippet only come with reported messages
            message |= {
                "md5HashSubject": self.md5("subject"),
                "subjectText": f"Overdue invoice #{4000 + self.index}",
                "messageBodySnippet": "Please review the attached invoice before Friday",
            }
        return message


def _account_warning(ctx: _Context, *, with_login_time: bool) -> dict[str, Any]:
    login: dict[str, Any] = {"ipAddress": ctx.ip}
    if with_login_time:  # absent for blocked attempts and for leaked passwords
        login["loginTime"] = wire_time(ctx.created - timedelta(minutes=4))
    return {"@type": TYPE_PREFIX + "AccountWarning", "email": ctx.user, "loginDetails": login}


def _mail_phishing(ctx: _Context, *, reported: bool, action: str) -> dict[str, Any]:
    recipients = [ctx.user, f"user{(ctx.index + 5) % 17}@{DOMAIN}"]
    return {
        "@type": TYPE_PREFIX + "MailPhishing",
        "domainId": {"customerPrimaryDomain": DOMAIN},
        "maliciousEntity": {
            "entity": {"emailAddress": ctx.sender, "displayName": "Accounts Payable"},
            "fromHeader": ctx.sender,
            "displayName": "Accounts Payable",
        },
        "messages": [ctx.message(r, reported=reported) for r in recipients],
        "isInternal": False,
        "systemActionType": action,
    }


def _device(ctx: _Context, **extra: str) -> dict[str, Any]:
    return {
        "deviceId": ctx.device_id,
        "serialNumber": ctx.serial,
        "deviceType": "ANDROID",
        "deviceModel": "Pixel 8",
        "resourceId": ctx.resource_id,
        "iosVendorId": "",
        **extra,
    }


def _suspicious_login(ctx: _Context) -> tuple[str, str, dict[str, Any]]:
    return "Suspicious login", "Google identity", _account_warning(ctx, with_login_time=True)


def _leaked_password(ctx: _Context) -> tuple[str, str, dict[str, Any]]:
    return "Leaked password", "Google identity", _account_warning(ctx, with_login_time=False)


def _user_reported_phishing(ctx: _Context) -> tuple[str, str, dict[str, Any]]:
    data = _mail_phishing(ctx, reported=True, action="NO_OPERATION")
    return "User reported phishing", "Gmail phishing", data


def _phishing_reclassification(ctx: _Context) -> tuple[str, str, dict[str, Any]]:
    data = _mail_phishing(ctx, reported=False, action="REMOVED_FROM_INBOX")
    return "Phishing reclassification", "Gmail phishing", data


def _malware_reclassification(ctx: _Context) -> tuple[str, str, dict[str, Any]]:
    data = _mail_phishing(ctx, reported=False, action="REMOVED_FROM_INBOX")
    data["messages"][0]["attachmentsSha256Hash"].append(ctx.sha256("payload.docm"))
    return "Malware reclassification", "Gmail phishing", data


def _device_compromised(ctx: _Context) -> tuple[str, str, dict[str, Any]]:
    data = {
        "@type": TYPE_PREFIX + "DeviceCompromised",
        "email": ctx.user,
        "events": [_device(ctx, deviceCompromisedState="Compromised")],
    }
    return "Device compromised", "Mobile device management", data


def _suspicious_activity(ctx: _Context) -> tuple[str, str, dict[str, Any]]:
    # Two property changes on one device: the device is listed once.
    changes = [("DEVICE_IS_COMPROMISED", "false", "true"), ("DEVELOPER_OPTIONS", "off", "on")]
    events = [
        _device(ctx, deviceProperty=prop, oldValue=old, newValue=new) for prop, old, new in changes
    ]
    data = {"@type": TYPE_PREFIX + "SuspiciousActivity", "email": ctx.user, "events": events}
    return "Suspicious activity", "Mobile device management", data


def _device_management_rule(ctx: _Context) -> tuple[str, str, dict[str, Any]]:
    data = {
        "@type": TYPE_PREFIX + "DeviceManagementRule",
        "email": ctx.user,
        **_device(ctx),
        "ruleAction": "ACCOUNT_WIPE",
        "ownerId": f"owner-{ctx.index % 17:04d}",
        "id": f"rule-{ctx.index % 3}",
    }
    return "Device management rule", "Device management rules", data


def _account_suspension_warning(ctx: _Context) -> tuple[str, str, dict[str, Any]]:
    data = {
        "@type": TYPE_PREFIX + "AccountSuspensionWarning",
        "state": "WARNING",
        "suspensionDetails": [{"abuseReason": "SPAM", "productName": "Gmail"}],
        "appealWindow": "259200s",
    }
    return "Account suspension warning", "Google identity", data


def _activity_rule(ctx: _Context) -> tuple[str, str, dict[str, Any]]:
    data = {
        "@type": TYPE_PREFIX + "ActivityRule",
        "name": f"rules/{900 + ctx.index % 4}",
        "displayName": "Mass download of Drive files",
        "description": "More than 200 Drive files downloaded by one user within an hour",
        "query": "drive.event_name == 'download'",
        "threshold": "COUNT > 200",
        "windowSize": "3600s",
        "triggerSource": "USER_EVENTS",
        "actionNames": ["Send to alert center"],
        "createTime": "2025-10-02T09:00:00Z",
        "updateTime": "2025-10-02T09:00:00Z",
    }
    return "Activity Rule", "Activity Rule", data


def _reporting_rule(ctx: _Context) -> tuple[str, str, dict[str, Any]]:
    data = {
        "@type": TYPE_PREFIX + "ReportingRule",
        "name": "Drive visibility changed to public",
        "query": "CkAKPgj22tyw0BYaEmNoYW5nZV91c2VyX2FjY2Vzcw==",
        "alertDetails": "Cg8SCQoFCgEBEAESABoAMAM=",
    }
    return "Reporting Rule", "Reporting Rule", data


_SHAPES: dict[str, Callable[[_Context], tuple[str, str, dict[str, Any]]]] = {
    "suspicious_login": _suspicious_login,
    "leaked_password": _leaked_password,
    "user_reported_phishing": _user_reported_phishing,
    "phishing_reclassification": _phishing_reclassification,
    "malware_reclassification": _malware_reclassification,
    "device_compromised": _device_compromised,
    "suspicious_activity": _suspicious_activity,
    "device_management_rule": _device_management_rule,
    "account_suspension_warning": _account_suspension_warning,
    "activity_rule": _activity_rule,
    "reporting_rule": _reporting_rule,
}
KINDS = tuple(_SHAPES)


def make_alert(
    index: int,
    *,
    customer_id: str = CUSTOMER_ID,
    base_time: datetime = BASE_TIME,
    step: timedelta = STEP,
    kind: str | None = None,
    created_at: datetime | None = None,
) -> Alert:
    """Alert number `index`, created (and last updated) at base_time + index * step."""
    kind = kind or KINDS[index % len(KINDS)]
    created = created_at or base_time + index * step
    ident = alert_id(customer_id, index)
    alert_type, source, data = _SHAPES[kind](_Context(index, created))
    etag = _etag(ident, created)
    metadata: dict[str, Any] = {
        "customerId": customer_id,
        "alertId": ident,
        "status": STATUSES[index % len(STATUSES)],
        "updateTime": wire_time(created),
        "etag": etag,
    }
    severity = SEVERITIES[index % len(SEVERITIES)]
    if severity:
        metadata["severity"] = severity
    if metadata["status"] != "NOT_STARTED":
        metadata["assignee"] = f"secops{index % 3}@{DOMAIN}"
    alert: Alert = {
        "customerId": customer_id,
        "alertId": ident,
        "createTime": wire_time(created),
        "startTime": wire_time(created - timedelta(minutes=30)),
        "type": alert_type,
        "source": source,
        "data": data,
        "securityInvestigationToolLink": f"admin.google.com/ac/ac/investigate?alert={ident}",
        "metadata": metadata,
        "updateTime": wire_time(created),
        "etag": etag,
    }
    if index % 4 != 3:  # the others are still ongoing: no endTime
        alert["endTime"] = wire_time(created - timedelta(minutes=5))
    return alert


def make_alerts(count: int, *, first: int = 0, **kwargs: Any) -> list[Alert]:
    """Alerts number first .. first+count-1 (see make_alert for the keyword args)."""
    return [make_alert(index, **kwargs) for index in range(first, first + count)]


def generated_alerts(count: int, *, base_time: datetime = BASE_TIME,
                     step: timedelta = STEP) -> Generated[Alert]:
    """Alerts 0 .. count-1 made when read (a bench's million), ascending in createTime.

    None is ever touched: each one's updateTime is its createTime and none is deleted, so
    AlertCenterFake serves update_time desc as createTime order reversed.
    """
    return Generated(lambda index: make_alert(index, base_time=base_time, step=step), count,
                     "createTime")


def touch(
    alert: Alert,
    at: datetime,
    *,
    status: str | None = None,
    assignee: str | None = None,
    deleted: bool | None = None,
) -> Alert:
    """Change an alert as Alert Center does: the change moves updateTime and the etags."""
    metadata = alert["metadata"]
    if status is not None:
        metadata["status"] = status
    if assignee is not None:
        metadata["assignee"] = assignee
    if deleted is not None:
        alert["deleted"] = deleted
    alert["updateTime"] = metadata["updateTime"] = wire_time(at)
    alert["etag"] = metadata["etag"] = _etag(alert["alertId"], at)
    return alert


def unknown_alert(index: int, **kwargs: Any) -> Alert:
    """An alert of a type this project has never heard of, with a payload to keep verbatim."""
    alert = make_alert(index, kind="reporting_rule", **kwargs)
    alert["type"] = "Quantum entanglement anomaly"
    alert["source"] = "Future product"
    alert["data"] = {
        "@type": TYPE_PREFIX + "QuantumAnomaly",
        "qubits": [{"id": "q1", "fidelity": 0.42}],
        "email": f"user{index % 17}@{DOMAIN}",
    }
    return alert
