"""A fake of Microsoft Graph's Intune collections, on the Graph fake's sign-in service and TLS.

IntuneFake is GraphFake (tests/fakes/graph.py: the authority, tokens, application roles,
paging by bound skip tokens, scripted faults) serving two more collections:
- GET /v1.0/deviceManagement/auditEvents (role DeviceManagementApps.Read.All): $filter on
  activityDateTime;
- GET /v1.0/deviceManagement/managedDevices (role DeviceManagementManagedDevices.Read.All):
  $select is honoured and must name real managedDevice properties (400 otherwise, as Graph
  answers); a $filter on lastSyncDateTime answers an empty list, as one tenant saw
  (microsoftgraph/powershell-intune-samples#11), so a client must never rely on it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

from alertpull.timeutil import utcnow

from .graph import (
    COLLECTIONS,
    Collection,
    GraphFake,
    Items,
    Rejected,
    demo_tls,
    graph_error_response,
)
from .graph_data import TENANT_ID
from .http_fake import Request, Response
from .intune_data import DEVICE_PROPERTIES, make_audit_events, make_devices

AUDIT_PATH = "/v1.0/deviceManagement/auditEvents"
DEVICES_PATH = "/v1.0/deviceManagement/managedDevices"
AUDIT_ROLES = ("DeviceManagementApps.Read.All", "DeviceManagementApps.ReadWrite.All")
DEVICE_ROLES = ("DeviceManagementManagedDevices.Read.All",
                "DeviceManagementManagedDevices.ReadWrite.All")
INTUNE_ROLES = {AUDIT_ROLES[0], DEVICE_ROLES[0]}

INTUNE_COLLECTIONS = {
    AUDIT_PATH: Collection(AUDIT_PATH, "microsoft.graph.auditEvent", "activityDateTime",
                           ("activityDateTime",), AUDIT_ROLES, 1000, False, 1000),
    # Devices have no changed-at: they page in enrollment order.
    DEVICES_PATH: Collection(DEVICES_PATH, "microsoft.graph.managedDevice", "enrolledDateTime",
                             ("lastSyncDateTime", "enrolledDateTime"), DEVICE_ROLES, 1000, False,
                             1000),
}


class IntuneFake(GraphFake):
    """One tenant's Intune: `audit_events` and `devices` (wire objects; tests may edit them,
    the bench sets `audit_events` to a Generated sequence sorted by activityDateTime)."""

    collections: ClassVar[dict[str, Collection]] = {**COLLECTIONS, **INTUNE_COLLECTIONS}

    def __init__(self, tls: Any, tenant_id: str = TENANT_ID) -> None:
        super().__init__(tls, tenant_id)
        self.audit_events: Items = []
        self.devices: list[dict[str, Any]] = []

    def _items(self, collection: Collection) -> Items:
        if collection.path == AUDIT_PATH:
            return self.audit_events
        if collection.path == DEVICES_PATH:
            return self.devices
        return super()._items(collection)

    def _list(self, request: Request, collection: Collection) -> Response:
        if collection.path == DEVICES_PATH:
            _selected(request)  # a bad $select is refused before anything else
        return super()._list(request, collection)

    def _filtered(self, collection: Collection, text: str | None) -> Items:
        if collection.path == DEVICES_PATH and text and "lastSyncDateTime" in text:
            return []
        return super()._filtered(collection, text)

    def _present(self, item: dict[str, Any], request: Request,
                 collection: Collection) -> dict[str, Any]:
        fields = _selected(request) if collection.path == DEVICES_PATH else None
        if fields is None:
            return super()._present(item, request, collection)
        return {"id": item["id"], **{name: item.get(name) for name in fields}}


def _selected(request: Request) -> list[str] | None:
    """The $select list, each name checked against managedDevice's properties."""
    if "$select" not in request.query:
        return None
    names = [name.strip() for name in request.query["$select"][-1].split(",")]
    for name in names:
        if name not in DEVICE_PROPERTIES:
            raise Rejected(graph_error_response(
                400, "BadRequest", f"Could not find a property named '{name}' on type "
                "'microsoft.graph.managedDevice'."))
    return names


# -- the demo replay -------------------------------------------------------------------------

DEMO_CLIENT_ID = "3c9b2e7d-6a1f-4d8e-b5c0-9e8f7a6b5c4d"
DEMO_SECRET = "demo-intune-secret-not-real"


def demo_replay() -> tuple[IntuneFake, Callable[[str], dict[str, str]], dict[str, Any]]:
    """An unstarted fake tenant: 80 audit events over the last 12 hours and 42 devices, 12 of
    them in a bad posture (noncompliant, jailbroken, a reported threat).

    Returns (fake, env, source): `env(fake.url)` once the fake is started gives the
    variables the CLI needs (REQUESTS_CA_BUNDLE holds the throwaway CA of every Microsoft
    replay, plus the public roots, so it breaks no other HTTPS), and `source` is the YAML
    source block.
    """
    ca, bundle = demo_tls()  # the Entra replay's CA: the demo runs both under one bundle
    fake = IntuneFake(ca.server_context())
    fake.add_app(DEMO_CLIENT_ID, secret=DEMO_SECRET, roles=set(INTUNE_ROLES))
    now = utcnow()
    span = timedelta(hours=12) - timedelta(minutes=5)
    fake.audit_events = make_audit_events(80, base_time=now - timedelta(hours=12), step=span / 80)
    fake.devices = make_devices(42, synced=now - timedelta(minutes=30))

    def env(url: str) -> dict[str, str]:
        return {"REQUESTS_CA_BUNDLE": str(bundle), "DEMO_INTUNE_URL": url,
                "DEMO_INTUNE_SECRET": DEMO_SECRET}

    source = {
        "type": "intune",
        "tenant_id": TENANT_ID,
        "client_id": DEMO_CLIENT_ID,
        "client_secret": "${DEMO_INTUNE_SECRET}",
        "authority_host": "${DEMO_INTUNE_URL}",
        "graph_endpoint": "${DEMO_INTUNE_URL}",
    }
    return fake, env, source
