"""The Intune connector through the real MSAL and requests code paths (the shared Graph client),
against the TLS Graph fake with Intune's collections on 127.0.0.1; then the installed CLI as
cron runs it."""

# ruff: noqa: F811  (pytest fixtures imported from tests.intune_env are test parameters)

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from alertpull.connector import Memory, Scope, Window
from alertpull.connectors.intune import (
    AUDIT_EVENTS,
    DEVICE_FIELDS,
    DEVICE_POSTURE,
    FORGET_MISSING_AFTER,
    IntuneConnector,
)
from alertpull.errors import ConfigError, MalformedAlert, SourceError
from alertpull.record import build_record, raw_sha256
from alertpull.timeutil import format_time, parse_time, utcnow
from tests.conftest import check_records, clean_env
from tests.fakes.graph import throttled
from tests.fakes.graph_data import BASE_TIME, TENANT_ID, graph_time
from tests.fakes.http_fake import Fault, Response, on
from tests.fakes.intune import AUDIT_PATH, AUDIT_ROLES, DEVICE_ROLES, DEVICES_PATH, IntuneFake
from tests.fakes.intune_data import (
    AUDIT_KINDS,
    NEVER_SYNCED,
    make_audit_event,
    make_audit_events,
    make_device,
    make_devices,
    set_posture,
)
from tests.intune_env import (  # noqa: F401  (the fixtures are used as test parameters)
    CLIENT_ID,
    SECRET,
    IntuneWorld,
    connector_settings,
    intune_fake,
    intune_world,
    throwaway_ca,
)
from tests.world import hours_ago

WINDOW = Window(BASE_TIME, BASE_TIME + timedelta(hours=1))
JITTER = 0.05  # arrival times at the fake wobble by a TLS handshake or a thread switch


def connector(fake: IntuneFake | None, **overrides: Any) -> IntuneConnector:
    return IntuneConnector("intune-test", connector_settings(fake, **overrides),
                           logging.getLogger("test"))


def scope_of(conn: IntuneConnector, stream: str) -> Scope:
    [scope] = [s for s in conn.scopes() if s.params["stream"] == stream]
    return scope


def flat(pages: list[list[Any]]) -> list[Any]:
    return [item for page in pages for item in page]


def audit(conn: IntuneConnector, window: Window = WINDOW) -> list[list[Any]]:
    return list(conn.fetch(scope_of(conn, AUDIT_EVENTS), window, Memory()))


def posture(conn: IntuneConnector, previous: dict[str, Any] | None = None,
            window: Window = WINDOW) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One run of the posture stream: the changes it yields and the snapshot it leaves."""
    memory = Memory(previous=previous)
    changes = flat(list(conn.fetch(scope_of(conn, DEVICE_POSTURE), window, memory)))
    assert memory.current is not None
    return changes, memory.current


def moves(changes: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[Any, Any]]:
    """{(deviceName, condition): (from, to)} of posture changes."""
    return {(c["device"]["deviceName"], c["transition"]["condition"]):
            (c["transition"]["from"], c["transition"]["to"]) for c in changes}


def record_of(conn: IntuneConnector, stream: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The record the engine would write for `raw`, validated against the shipped schema."""
    alert = conn.normalize(scope_of(conn, stream), raw)
    record = build_record("intune", "intune", alert, raw, raw_sha256(raw), format_time(utcnow()))
    return check_records([record])[0]


def source_error(call: Callable[[], Any]) -> str:
    """The message of the SourceError `call` raises, checked to be one secret-free line."""
    with pytest.raises(SourceError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message and SECRET not in message
    return message


def gaps(fake: IntuneFake, path: str) -> list[float]:
    times = [at for at, called in fake.arrivals if called == path]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# -- config and scopes ---------------------------------------------------------------------


def test_one_scope_per_stream_and_device_posture_is_a_snapshot_scope(
    intune_fake: IntuneFake,
) -> None:
    tenant = intune_fake.tenant_id
    assert connector(intune_fake).scopes() == [
        Scope(f"{tenant}/audit_events", {"tenant_id": tenant, "stream": "audit_events"},
              tenant=tenant),
        Scope(f"{tenant}/device_posture", {"tenant_id": tenant, "stream": "device_posture"},
              snapshot=True, tenant=tenant),
    ]
    only = connector(intune_fake, streams=["device_posture"]).scopes()
    assert [s.key for s in only] == [f"{tenant}/device_posture"]
    assert intune_fake.requests == []  # scopes come from the config alone


@pytest.mark.parametrize(("overrides", "needle"), [
    ({"requests_per_minute": 0}, "requests_per_minute: must be at least 1"),
    ({"client_secret": None}, "set exactly one of client_secret and certificate_file"),
    ({"graph_endpoint": "http://graph.example"}, "graph_endpoint"),
])
def test_config_mistakes_are_one_line_naming_the_key(overrides: dict[str, Any],
                                                     needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        connector(None, **overrides)
    assert str(caught.value).startswith("sources.intune-test") and needle in str(caught.value)


def test_both_streams_spend_one_budget_per_tenant(intune_fake: IntuneFake) -> None:
    first = connector(intune_fake, requests_per_minute=100)
    other_app = connector(intune_fake, client_id="another-app")
    budgets = {id(c.endpoints[s].budget) for c in (first, other_app)
               for s in (AUDIT_EVENTS, DEVICE_POSTURE)}
    assert len(budgets) == 1
    assert first.endpoints[AUDIT_EVENTS].budget.interval == pytest.approx(0.6)
    assert IntuneConnector.options["requests_per_minute"].default == 100


# -- audit events --------------------------------------------------------------------------


def test_audit_events_follow_next_link_under_one_pinned_filter(intune_fake: IntuneFake) -> None:
    events = make_audit_events(30)  # one a minute from BASE_TIME
    intune_fake.audit_events = events[::-1]
    intune_fake.max_page = 8
    window = Window(BASE_TIME + timedelta(minutes=5), BASE_TIME + timedelta(minutes=25))

    pages = audit(connector(intune_fake), window)

    assert [len(page) for page in pages] == [8, 8, 4]
    got = flat(pages)
    assert sorted(got, key=lambda e: e["id"]) == sorted(events[5:25], key=lambda e: e["id"])
    calls = intune_fake.calls(AUDIT_PATH)
    for call in calls:  # the same pinned query on every page
        assert call.query["$filter"] == [
            "activityDateTime ge 2026-03-02T08:05:00.000Z and "
            "activityDateTime lt 2026-03-02T08:25:00.000Z"
        ]
        assert not {"$top", "$skip", "$orderby", "$select"} & set(call.query)
    assert "$skiptoken" not in calls[0].query and all("$skiptoken" in c.query for c in calls[1:])


def test_calls_are_paced_to_requests_per_minute(intune_fake: IntuneFake) -> None:
    intune_fake.audit_events = make_audit_events(6)
    intune_fake.max_page = 2

    pages = audit(connector(intune_fake, requests_per_minute=100))

    assert len(pages) == 3
    assert min(gaps(intune_fake, AUDIT_PATH)) >= 0.6 - JITTER


def test_429_retry_after_and_5xx_are_retried(intune_fake: IntuneFake) -> None:
    intune_fake.audit_events = make_audit_events(3)
    intune_fake.inject(on("GET", AUDIT_PATH), Fault(response=throttled("1")))
    intune_fake.inject(on("GET", AUDIT_PATH), Fault(response=Response(503, b"")))

    got = flat(audit(connector(intune_fake)))

    assert len(got) == 3 and intune_fake.pending_faults == 0
    assert gaps(intune_fake, AUDIT_PATH)[0] >= 1.0  # Retry-After: 1


@pytest.mark.parametrize(("stream", "granted", "permission", "path"), [
    (AUDIT_EVENTS, {DEVICE_ROLES[0]}, "DeviceManagementApps.Read.All", AUDIT_PATH),
    (DEVICE_POSTURE, {AUDIT_ROLES[0]}, "DeviceManagementManagedDevices.Read.All", DEVICES_PATH),
])
def test_missing_application_role_names_the_permission_and_admin_consent(
    intune_fake: IntuneFake, stream: str, granted: set[str], permission: str, path: str,
) -> None:
    intune_fake.apps[CLIENT_ID].roles = granted
    conn = connector(intune_fake)

    message = source_error(lambda: list(conn.fetch(scope_of(conn, stream), WINDOW, Memory())))

    assert message == (
        f"Graph denied GET {path}: the app {CLIENT_ID} lacks the application permission "
        f"{permission}; add it (API permissions > Microsoft Graph > Application permissions) "
        "and grant admin consent"
    )


# -- device posture: the listing -------------------------------------------------------------


def test_devices_are_listed_to_the_last_page_with_select_and_never_a_filter(
    intune_fake: IntuneFake,
) -> None:
    intune_fake.devices = make_devices(25)
    intune_fake.max_page = 10

    changes, snapshot = posture(connector(intune_fake))

    calls = intune_fake.calls(DEVICES_PATH)
    assert len(calls) == 3  # 10 + 10 + 5: pitfall 21, the first page is not everything
    for call in calls:
        assert call.query["$select"] == [",".join(DEVICE_FIELDS)]
        assert not {"$filter", "$top", "$skip", "$orderby"} & set(call.query)
    assert set(snapshot["devices"]) == {device["id"] for device in intune_fake.devices}
    assert changes and all(set(c["device"]) == set(DEVICE_FIELDS) for c in changes)
    assert "BYPASS" not in json.dumps(changes)  # activationLockBypassCode is never read


def test_first_run_alerts_devices_already_in_a_bad_state_and_no_healthy_one(
    intune_fake: IntuneFake,
) -> None:
    postures = ["healthy", "noncompliant", "jailbroken", "threat_low", "threat_medium",
                "threat_high", "compromised", "unknown"]
    intune_fake.devices = [make_device(n, p) for n, p in enumerate(postures)]
    names = {p: d["deviceName"] for p, d in zip(postures, intune_fake.devices, strict=True)}

    changes, snapshot = posture(connector(intune_fake))

    assert moves(changes) == {
        (names["noncompliant"], "noncompliant"): (None, "noncompliant"),
        (names["jailbroken"], "jailbroken"): (None, "True"),
        (names["threat_low"], "threat"): (None, "lowSeverity"),
        (names["threat_medium"], "threat"): (None, "mediumSeverity"),
        (names["threat_high"], "threat"): (None, "highSeverity"),
        (names["compromised"], "noncompliant"): (None, "noncompliant"),
        (names["compromised"], "threat"): (None, "compromised"),
    }
    healthy = intune_fake.devices[0]
    assert snapshot["devices"][healthy["id"]] == {
        "complianceState": "compliant", "jailBroken": "False", "threatState": "secured"}


def test_snapshot_diff_alerts_on_going_bad_not_on_staying_bad_and_again_on_recovery(
    intune_fake: IntuneFake,
) -> None:
    conn = connector(intune_fake)
    device, bystander = make_device(1), make_device(2)
    intune_fake.devices = [device, bystander]
    changes, snapshot = posture(conn)
    assert changes == []  # both healthy

    set_posture(device, "noncompliant", synced=BASE_TIME + timedelta(minutes=10))
    changes, snapshot = posture(conn, snapshot)
    assert moves(changes) == {(device["deviceName"], "noncompliant"): ("compliant",
                                                                       "noncompliant")}
    opened = record_of(conn, DEVICE_POSTURE, changes[0])

    device["lastSyncDateTime"] = graph_time(BASE_TIME + timedelta(minutes=40))  # still bad
    changes, snapshot = posture(conn, snapshot)
    assert changes == []

    set_posture(device, "healthy", synced=BASE_TIME + timedelta(minutes=50))
    changes, snapshot = posture(conn, snapshot)
    assert moves(changes) == {(device["deviceName"], "noncompliant"): ("noncompliant",
                                                                       "compliant")}
    resolved = record_of(conn, DEVICE_POSTURE, changes[0])

    assert opened["native_id"] == resolved["native_id"] == f"{device['id']}:noncompliant"
    assert opened["id"] == resolved["id"]  # one alert, two versions
    assert (opened["status"], resolved["status"]) == ("new", "resolved")
    assert opened["severity"] == resolved["severity"] == "medium"
    assert opened["updated_at"] == "2026-03-02T08:10:00.000Z"
    assert resolved["resolved_at"] == resolved["updated_at"] == "2026-03-02T08:50:00.000Z"
    assert resolved["raw"]["device"]["complianceState"] == "compliant"  # the device as listed


def test_a_worsening_and_an_easing_threat_are_new_versions_and_recovery_resolves(
    intune_fake: IntuneFake,
) -> None:
    conn = connector(intune_fake)
    device = make_device(3, "threat_low")
    intune_fake.devices = [device]
    changes, snapshot = posture(conn)
    steps = [("threat_high", ("lowSeverity", "highSeverity"), "high", "new"),
             ("threat_medium", ("highSeverity", "mediumSeverity"), "medium", "new"),
             ("healthy", ("mediumSeverity", "secured"), "medium", "resolved")]
    for new_posture, move, severity, status in steps:
        set_posture(device, new_posture)
        changes, snapshot = posture(conn, snapshot)
        assert moves(changes) == {(device["deviceName"], "threat"): move}
        record = record_of(conn, DEVICE_POSTURE, changes[0])
        assert (record["severity"], record["status"]) == (severity, status)
        assert record["native_id"] == f"{device['id']}:threat"


def test_a_value_that_says_nothing_keeps_the_last_known_state(intune_fake: IntuneFake) -> None:
    conn = connector(intune_fake)
    device = make_device(4, "noncompliant")
    device["jailBroken"] = "True"
    intune_fake.devices = [device]
    changes, snapshot = posture(conn)
    assert len(changes) == 2

    # Unknown compliance, an unknown jailbreak state, an MTD partner that went silent.
    device.update(complianceState="unknown", jailBroken="Unknown",
                  partnerReportedThreatState="unresponsive")
    changes, snapshot = posture(conn, snapshot)
    assert changes == []
    assert snapshot["devices"][device["id"]] == {
        "complianceState": "noncompliant", "jailBroken": "True", "threatState": "secured"}

    set_posture(device, "healthy")
    changes, snapshot = posture(conn, snapshot)
    assert moves(changes) == {
        (device["deviceName"], "noncompliant"): ("noncompliant", "compliant"),
        (device["deviceName"], "jailbroken"): ("True", "False"),
    }


def test_a_device_missing_from_the_listing_is_kept_without_an_alert_then_forgotten(
    intune_fake: IntuneFake,
) -> None:
    conn = connector(intune_fake)
    device, other = make_device(5, "jailbroken"), make_device(6)
    intune_fake.devices = [device, other]
    changes, snapshot = posture(conn)
    assert len(changes) == 1

    intune_fake.devices = [other]
    changes, snapshot = posture(conn, snapshot)
    assert changes == []
    assert snapshot["devices"][device["id"]] == {
        "complianceState": "compliant", "jailBroken": "True", "threatState": "secured",
        "missingSince": format_time(WINDOW.end)}

    set_posture(device, "healthy")
    intune_fake.devices = [device, other]  # back, and recovered while away
    back, later = posture(conn, snapshot)
    assert moves(back) == {(device["deviceName"], "jailbroken"): ("True", "False")}
    assert "missingSince" not in later["devices"][device["id"]]

    intune_fake.devices = [other]
    kept_until = Window(WINDOW.start, WINDOW.end + FORGET_MISSING_AFTER - timedelta(seconds=1))
    _, still = posture(conn, snapshot, kept_until)
    assert device["id"] in still["devices"]
    _, forgotten = posture(conn, snapshot, Window(WINDOW.start, WINDOW.end + FORGET_MISSING_AFTER))
    assert set(forgotten["devices"]) == {other["id"]}


def test_one_snapshot_per_run_later_windows_of_the_run_yield_nothing(
    intune_fake: IntuneFake,
) -> None:
    conn = connector(intune_fake)
    intune_fake.devices = [make_device(7, "noncompliant")]
    scope = scope_of(conn, DEVICE_POSTURE)
    memory = Memory(previous=None)
    backfill = Window(BASE_TIME - timedelta(days=3), BASE_TIME - timedelta(days=1))

    first = flat(list(conn.fetch(scope, backfill, memory)))
    taken = memory.current
    second = flat(list(conn.fetch(scope, WINDOW, memory)))

    assert len(first) == 1 and second == []
    assert memory.current is taken
    assert len(intune_fake.calls(DEVICES_PATH)) == 1


def test_a_repeated_next_link_fails_the_listing_and_keeps_no_snapshot(
    intune_fake: IntuneFake,
) -> None:
    conn = connector(intune_fake)
    intune_fake.devices = make_devices(6)
    intune_fake.max_page = 2
    intune_fake.repeat_link_from_page = 2
    memory = Memory(previous={"devices": {}})

    message = source_error(
        lambda: list(conn.fetch(scope_of(conn, DEVICE_POSTURE), WINDOW, memory)))

    assert message == (f"Graph repeated a nextLink of GET {DEVICES_PATH}; the devices are "
                       "listed again next run")
    assert memory.current is None


@pytest.mark.parametrize("synced", [None, NEVER_SYNCED, "not a time"])
def test_a_device_without_a_real_last_sync_changes_at_the_window_end(
    intune_fake: IntuneFake, synced: str | None,
) -> None:
    conn = connector(intune_fake)
    device = make_device(8, "jailbroken")
    device["lastSyncDateTime"] = synced
    intune_fake.devices = [device]

    [change], _ = posture(conn)

    record = record_of(conn, DEVICE_POSTURE, change)
    assert record["updated_at"] == format_time(WINDOW.end) == change["transition"]["observedAt"]


# -- normalize -------------------------------------------------------------------------------


@pytest.mark.parametrize(("posture_name", "condition", "severity", "rule"), [
    ("noncompliant", "noncompliant", "medium", "noncompliant"),
    ("jailbroken", "jailbroken", "high", "jailbroken"),
    ("threat_low", "threat", "low", "threat:lowSeverity"),
    ("threat_medium", "threat", "medium", "threat:mediumSeverity"),
    ("threat_high", "threat", "high", "threat:highSeverity"),
    ("compromised", "threat", "high", "threat:compromised"),
])
def test_posture_severity_comes_from_the_policy_table(
    intune_fake: IntuneFake, posture_name: str, condition: str, severity: str, rule: str,
) -> None:
    conn = connector(intune_fake)
    intune_fake.devices = [make_device(9, posture_name)]
    changes, snapshot = posture(conn)
    [opened] = [c for c in changes if c["transition"]["condition"] == condition]
    set_posture(intune_fake.devices[0], "healthy")
    [recovered] = [c for c in posture(conn, snapshot)[0]
                   if c["transition"]["condition"] == condition]

    for raw, status in ((opened, "new"), (recovered, "resolved")):
        record = record_of(conn, DEVICE_POSTURE, raw)
        assert (record["severity"], record["severity_raw"], record["status"]) == (
            severity, f"policy:{rule}", status)
        assert record["status_raw"] == raw["transition"]["to"]


def test_a_posture_record_names_the_device_and_its_user(intune_fake: IntuneFake) -> None:
    conn = connector(intune_fake)
    intune_fake.devices = [make_device(10, "jailbroken")]
    [change], _ = posture(conn)

    record = record_of(conn, DEVICE_POSTURE, change)

    device = change["device"]
    assert record["raw"] == change and record["raw"]["device"]["id"] == device["id"]
    assert record["title"] == f"Device jailbroken or rooted: {device['deviceName']}"
    assert record["devices"] == [{
        "type": "device", "id": device["id"], "name": device["deviceName"],
        "serial_number": "SN00000010", "os": "Android", "os_version": "14",
        "model": "Pixel 8", "manufacturer": "Google", "user": "user10@contoso.example",
        "azure_ad_device_id": device["azureADDeviceId"],
    }]
    assert record["users"] == [{"type": "user", "id": device["userId"],
                                "name": "user10@contoso.example", "display_name": "User 10"}]
    assert (record["type"], record["category"], record["product"]) == (
        "jailbroken", "device_posture", "Microsoft Intune")
    assert record["description"] == "jailBroken changed from not known before to True"
    assert record["created_at"] == record["updated_at"] == "2026-03-02T08:00:00.000Z"
    assert record["link"] is None and "resolved_at" not in record


@pytest.mark.parametrize("kind", AUDIT_KINDS)
def test_normalize_maps_each_audit_event_shape(kind: str) -> None:
    raw = make_audit_event(3, kind=kind)

    record = record_of(connector(None), AUDIT_EVENTS, raw)

    assert record["raw"] == raw and record["native_id"] == raw["id"]
    assert record["tenant"] == TENANT_ID
    assert (record["severity"], record["severity_raw"]) == ("informational",
                                                            "policy:audit_event")
    assert (record["status"], record["status_raw"]) == ("new", None)
    assert record["created_at"] == record["updated_at"] == format_time(
        parse_time(raw["activityDateTime"]))
    assert record["title"] == (raw["displayName"] or "Intune audit event")
    assert record.get("category") == raw["category"]
    assert record.get("type") == raw["activityType"]
    assert record["product"] == "Microsoft Intune"
    expected = EXPECTED_AUDIT[kind](raw)
    for field, value in expected.items():
        assert record.get(field) == value, field


EXPECTED_AUDIT: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "policy_change": lambda raw: {
        "users": [{"type": "user", "id": raw["actor"]["userId"],
                   "name": "admin0@contoso.example"}],
        "resources": [{"type": "DeviceConfiguration",
                       "id": raw["resources"][0]["resourceId"], "name": "Windows baseline 3",
                       "modified_properties": ["PasswordRequired"]}],
        "related": {"ips": ["198.51.100.3"]},
        "description": "Patch by admin0@contoso.example on Windows baseline 3: Success",
    },
    "compliance_policy": lambda raw: {
        "description": "Create by admin0@contoso.example on iOS compliance 3: Success"},
    "device_wipe": lambda raw: {
        "resources": [{"type": "ManagedDevice", "id": raw["resources"][0]["resourceId"],
                       "name": "DESKTOP-0003"}],
        "description": "Action by admin0@contoso.example on DESKTOP-0003: Failure"},
    "app_actor": lambda raw: {
        "users": [{"type": "application", "id": raw["actor"]["applicationId"],
                   "name": "Fleet automation"}],
        "related": None,  # 123.456.7.89 is not an address; raw keeps it
    },
    "minimal": lambda raw: {"users": None, "resources": None, "related": None,
                            "description": None},
}


@pytest.mark.parametrize(("change", "problem"), [
    ({"id": None}, "Intune audit event has no id"),
    ({"activityDateTime": None}, "Intune audit event has no activityDateTime"),
    ({"activityDateTime": "yesterday"}, "activityDateTime 'yesterday' is not a time"),
])
def test_normalize_rejects_an_audit_event_missing_what_the_mapping_needs(
    change: dict[str, Any], problem: str,
) -> None:
    conn = connector(None)
    with pytest.raises(MalformedAlert, match=problem):
        conn.normalize(scope_of(conn, AUDIT_EVENTS), {**make_audit_event(0), **change})
    with pytest.raises(MalformedAlert, match="not a JSON object"):
        conn.normalize(scope_of(conn, AUDIT_EVENTS), ["not", "an", "event"])


def test_a_listed_device_without_an_id_is_reported_as_malformed(intune_fake: IntuneFake) -> None:
    conn = connector(intune_fake)
    broken = {**make_device(11, "jailbroken"), "id": None}
    intune_fake.devices = [broken, make_device(12, "noncompliant")]

    changes, snapshot = posture(conn)

    assert len(changes) == 2 and len(snapshot["devices"]) == 1
    [bad] = [c for c in changes if c["transition"] is None]
    with pytest.raises(MalformedAlert, match="Intune managedDevice has no id"):
        conn.normalize(scope_of(conn, DEVICE_POSTURE), bad)
    assert conn.describe(bad) == f"device {broken['deviceName']}"


def test_importing_the_connector_does_not_import_msal() -> None:
    code = ("import sys, alertpull.connectors.intune; "
            "sys.exit(any(m.split('.')[0] in ('msal', 'jwt') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- the installed CLI, as cron runs it ----------------------------------------------------


def add_events(world: IntuneWorld, count: int, *, first: int, hours: float,
               step: timedelta = timedelta(minutes=2)) -> list[dict[str, Any]]:
    new = make_audit_events(count, first=first, base_time=hours_ago(hours) - first * step,
                            step=step)
    world.fake.audit_events.extend(new)
    return new


def state_memory(world: IntuneWorld) -> dict[str, Any]:
    doc = json.loads((world.state / "intune.json").read_text())
    return doc["scopes"][f"{world.fake.tenant_id}/device_posture"]["cursor"]["memory"]


def by_native_id(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["native_id"] for r in records)


def test_cli_first_run_rerun_and_a_recovery_as_one_new_version(intune_world: IntuneWorld) -> None:
    add_events(intune_world, 6, first=0, hours=0.5)
    intune_world.fake.devices = make_devices(14, synced=hours_ago(0.2))  # 4 in a bad state

    first = intune_world.fetch()

    assert first.returncode == 0, first.stderr
    records = intune_world.records()
    assert len(records) == 6 + 4 and set(by_native_id(records).values()) == {1}
    assert {r["source_type"] for r in records} == {"intune"}
    assert all(r["severity_derived"] is True for r in records)  # from the policy table
    assert "10 written" in first.stderr and "2 scope(s)" in first.stderr
    assert len(state_memory(intune_world)["devices"]) == 14
    again = intune_world.fetch()
    assert again.returncode == 0 and "0 written, 6 duplicate" in again.stderr

    [bad] = [d for d in intune_world.fake.devices if d["complianceState"] == "noncompliant"]
    set_posture(bad, "healthy", synced=hours_ago(0.05))
    add_events(intune_world, 1, first=6, hours=0.1)
    third = intune_world.fetch()

    assert third.returncode == 0 and "2 written" in third.stderr
    versions = [r for r in intune_world.records() if r["native_id"] == f"{bad['id']}:noncompliant"]
    assert len({r["id"] for r in versions}) == 1
    assert sorted(r["status"] for r in versions) == ["new", "resolved"]


def test_cli_a_backfill_of_several_windows_writes_each_posture_change_once(
    intune_world: IntuneWorld,
) -> None:
    add_events(intune_world, 3, first=0, hours=1)
    intune_world.fake.devices = [make_device(0)]
    assert intune_world.fetch().returncode == 0
    older = add_events(intune_world, 2, first=3, hours=60)  # before the first run's range
    set_posture(intune_world.fake.devices[0], "jailbroken", synced=hours_ago(0.1))

    backfill = intune_world.fetch("--since", "3d")

    assert backfill.returncode == 0, backfill.stderr
    device_calls = intune_world.fake.calls(DEVICES_PATH)
    assert len(device_calls) == 2  # one listing per run, however many windows
    audit_filters = [c.query["$filter"][0] for c in intune_world.fake.calls(AUDIT_PATH)[1:]]
    assert len(audit_filters) == 2  # the gap before the first run, then the incremental range
    written = by_native_id(intune_world.records())
    assert written[f"{intune_world.fake.devices[0]['id']}:jailbroken"] == 1
    assert {e["id"] for e in older} <= set(written) and set(written.values()) == {1}


def test_cli_malformed_objects_are_written_degraded(intune_world: IntuneWorld) -> None:
    good = add_events(intune_world, 2, first=0, hours=0.5)
    anonymous = {**make_audit_event(9, base_time=hours_ago(0.4), step=timedelta(0)), "id": ""}
    intune_world.fake.audit_events.append(anonymous)
    nameless = {**make_device(1, "noncompliant"), "id": None}
    intune_world.fake.devices = [nameless, make_device(2, "jailbroken")]

    result = intune_world.fetch()

    assert result.returncode == 0, result.stderr
    assert (f"wrote alert audit event at {anonymous['activityDateTime']} degraded: Intune "
            "audit event has no id") in result.stderr
    assert (f"wrote alert device {nameless['deviceName']} degraded: Intune managedDevice "
            "has no id") in result.stderr
    assert "2 degraded" in result.stderr
    records = intune_world.records()
    assert len(records) == len(good) + 3
    degraded = [r for r in records if "normalize_error" in r]
    assert len(degraded) == 2 and nameless["deviceName"] in {r["title"] for r in degraded}
    assert all(r["native_id"] == f"sha256:{r['raw_sha256']}" for r in degraded)


def test_cli_a_missing_permission_fails_that_stream_with_the_fix_and_keeps_the_other(
    intune_world: IntuneWorld,
) -> None:
    intune_world.fake.apps[CLIENT_ID].roles = {AUDIT_ROLES[0]}
    add_events(intune_world, 3, first=0, hours=0.5)
    intune_world.fake.devices = make_devices(3, postures=("noncompliant",))

    result = intune_world.fetch()

    assert result.returncode == 1
    assert (f"the app {CLIENT_ID} lacks the application permission "
            "DeviceManagementManagedDevices.Read.All; add it (API permissions > Microsoft Graph "
            "> Application permissions) and grant admin consent") in result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr + intune_world.written_text()
    assert len(intune_world.records()) == 3  # the audit events still delivered


def test_cli_a_rejected_secret_exits_1_with_one_line_and_the_secret_nowhere(
    intune_world: IntuneWorld,
) -> None:
    add_events(intune_world, 2, first=0, hours=0.5)
    wrong = "Wr0ng~intune-secret-that-must-not-leak"

    result = intune_world.cli("-v", "fetch", "--all", INTUNE_SECRET=wrong)

    assert result.returncode == 1
    assert f"the client secret for {CLIENT_ID} was rejected; check client_secret" in result.stderr
    assert "Traceback" not in result.stderr
    everything = result.stdout + result.stderr + intune_world.written_text()
    assert wrong not in everything and SECRET not in everything
    assert intune_world.records() == []


def test_cli_transient_throttling_and_server_errors_still_succeed(
    intune_world: IntuneWorld,
) -> None:
    add_events(intune_world, 3, first=0, hours=0.5)
    intune_world.fake.devices = make_devices(2, postures=("threat_high",))
    intune_world.fake.inject(on("GET", DEVICES_PATH), Fault(response=throttled("1")))
    intune_world.fake.inject(on("GET", AUDIT_PATH), Fault(response=Response(502, b"")))

    result = intune_world.fetch()

    assert result.returncode == 0, result.stderr
    assert len(intune_world.records()) == 5 and intune_world.fake.pending_faults == 0


def test_cli_check_reads_both_collections(intune_world: IntuneWorld) -> None:
    result = intune_world.cli("check")

    assert result.returncode == 0, result.stdout + result.stderr
    assert (f"intune: ok (tenant {intune_world.fake.tenant_id}: app {CLIENT_ID} signed in and "
            f"read {AUDIT_PATH}, {DEVICES_PATH})") in result.stdout
    [devices_call] = intune_world.fake.calls(DEVICES_PATH)
    assert devices_call.query == {"$top": ["1"], "$select": ["id"]}


def test_demo_replay_runs_through_the_cli_beside_the_entra_replay(tmp_path: Any) -> None:
    """As `make demo` runs them: every replay's env merged into one, one config."""
    from tests.fakes import graph, intune
    from tests.world import CliWorld

    replays = {"intune-demo": intune.demo_replay(), "entra-demo": graph.demo_replay()}
    with replays["intune-demo"][0], replays["entra-demo"][0]:
        env: dict[str, str] = {}
        for fake, env_for, _ in replays.values():
            env.update(env_for(fake.url))
        world = CliWorld(tmp_path, clean_env(**env))
        world.write_yaml({name: source for name, (_, _, source) in replays.items()})
        result = world.fetch()
        records = [r for r in world.records() if r["source"] == "intune-demo"]

    assert result.returncode == 0, result.stderr
    posture_alerts = [r for r in records if r.get("category") == "device_posture"]
    assert len(records) - len(posture_alerts) == 80 and len(posture_alerts) == 12
