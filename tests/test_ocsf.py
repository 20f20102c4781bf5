"""`--format ocsf`: every record of every connector maps to a valid OCSF 1.8.0 Detection
Finding, checked offline against the official schema (PyPI `ocsf-json-schema`)."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alertpull.config import validate_block
from alertpull.connector import Connector, Scope
from alertpull.connectors import REGISTRY, connector_class
from alertpull.connectors.guardduty import GuardDutyConnector
from alertpull.ocsf import to_ocsf
from alertpull.record import build_record, raw_sha256, record_id
from alertpull.timeutil import format_time
from tests.aws_env import AwsWorld
from tests.conftest import check_records
from tests.world import hours_ago

PULLED_AT = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
Alerts = Iterator[tuple[Scope, Any]]


@functools.cache
def ocsf_validator(profiles: tuple[str, ...]) -> Any:
    """The Detection Finding schema with exactly the profiles an event declares."""
    import jsonschema
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema("1.8.0")).get_class_schema(
        "detection_finding", list(profiles))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def check_ocsf(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for event in events:
        profiles = tuple(event["metadata"].get("profiles", []))
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in ocsf_validator(profiles).iter_errors(event)]
        assert not errors, errors[:5]
    return events


# -- every connector's fixtures ----------------------------------------------------------
# One entry per source type: its config block and its fixture alerts with their scopes.
# A connector added later is one entry; an entry whose connector is not there yet skips.


def _stream(conn: Connector, name: str) -> Scope:
    [scope] = [s for s in conn.scopes() if s.params["stream"] == name]
    return scope


def guardduty_alerts(conn: Connector) -> Alerts:
    from tests.fakes import guardduty_data as data

    scope = Scope(key=f"{data.ACCOUNT}/{data.REGION}/{data.DETECTOR}",
                  params={"account": data.ACCOUNT, "region": data.REGION,
                          "detector_id": data.DETECTOR})
    findings = [*data.make_findings(2 * len(data.KINDS)), data.make_finding(99, archived=True)]
    yield from ((scope, raw) for raw in findings)


def securityhub_alerts(conn: Connector) -> Alerts:
    from tests.fakes import securityhub_data as data

    scope = Scope(key=f"{data.ACCOUNT}/{data.REGION}",
                  params={"account": data.ACCOUNT, "region": data.REGION})
    yield from ((scope, raw) for raw in data.make_asff_findings(10))


def scc_alerts(conn: Connector) -> Alerts:
    from tests.fakes import scc_data as data

    [scope] = conn.scopes()
    results = [*data.make_results(2 * len(data.KINDS)),
               data.make_result(98, state="INACTIVE"), data.make_result(99, mute="MUTED")]
    yield from ((scope, raw) for raw in results)


def workspace_alerts(conn: Connector) -> Alerts:
    from tests.fakes import alertcenter_data as data

    [scope] = conn.scopes()
    later = data.BASE_TIME + timedelta(days=1)
    alerts = [*data.make_alerts(2 * len(data.KINDS)), data.unknown_alert(50),
              data.touch(data.make_alert(51), later, status="CLOSED"),
              data.touch(data.make_alert(52), later, deleted=True)]
    yield from ((scope, raw) for raw in alerts)


def entra_alerts(conn: Connector) -> Alerts:
    from tests.fakes import graph_data as data

    yield from ((_stream(conn, "alerts"), raw)
                for raw in data.make_alerts(3 * len(data.ALERT_KINDS)))
    yield from ((_stream(conn, "risk_detections"), raw)
                for raw in data.make_risk_detections(2 * len(data.RISK_EVENT_TYPES)))


def kandji_alerts(conn: Connector) -> Alerts:
    from tests.fakes import kandji_data as data

    yield from ((_stream(conn, "audit_events"), raw) for raw in data.make_audit_events(12))
    yield from ((_stream(conn, "behavioral_detections"), raw)
                for raw in data.make_behavioral_detections(6))
    yield from ((_stream(conn, "threat_details"), raw) for raw in data.make_threat_details(6))


def intune_alerts(conn: Connector) -> Alerts:
    from alertpull.connectors.intune import PostureSnapshot
    from tests.fakes import intune_data as data

    yield from ((_stream(conn, "audit_events"), raw)
                for raw in data.make_audit_events(2 * len(data.AUDIT_KINDS)))
    snapshot = PostureSnapshot(None, PULLED_AT)
    yield from ((_stream(conn, "device_posture"), change)
                for device in data.make_devices(len(data.FLEET))
                for change in snapshot.see(device))


GRAPH_APP = {"tenant_id": "4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "client_id": "app",
             "client_secret": "not-a-secret"}
FIXTURES: dict[str, tuple[dict[str, Any], Callable[[Connector], Alerts]]] = {
    "guardduty": ({"regions": ["us-east-1"]}, guardduty_alerts),
    "scc": ({"parent": "organizations/386193000800"}, scc_alerts),
    # The CSPM API's ASFF findings are mapped; GetFindingsV2's OCSF ones are passed through
    # by the engine (tests/test_securityhub.py), and their record mapped here all the same.
    "securityhub": ({"regions": ["us-east-1"], "api": "cspm"}, securityhub_alerts),
    "workspace_alertcenter": ({"credentials_file": "sa.json", "subject": "admin@example.com"},
                              workspace_alerts),
    "entra_id": (GRAPH_APP, entra_alerts),
    "kandji": ({"base_url": "https://acme.api.kandji.io", "api_token": "not-a-token",
                "streams": ["audit_events", "behavioral_detections", "threat_details"]},
               kandji_alerts),
    "intune": (GRAPH_APP, intune_alerts),
}


@functools.cache
def fixture_records(source_type: str) -> list[dict[str, Any]]:
    """The native records of a connector's fixtures, as the engine builds them."""
    if source_type not in REGISTRY or importlib.util.find_spec(
            REGISTRY[source_type].partition(":")[0]) is None:
        pytest.skip(f"no {source_type} connector yet")
    settings, alerts = FIXTURES[source_type]
    cls = connector_class(source_type)
    conn = cls(f"my-{source_type}", validate_block(settings, cls.options, "test", "/tmp"),
               logging.getLogger("test"))
    records = [build_record(conn.source_name, source_type, conn.normalize(scope, raw), raw,
                            raw_sha256(raw), format_time(PULLED_AT)) for scope, raw in alerts(conn)]
    assert records
    return check_records(records)


@pytest.mark.parametrize("source_type", sorted(FIXTURES))
@pytest.mark.parametrize("seen_before", [False, True])
def test_every_fixture_of_every_connector_is_a_valid_detection_finding(
        source_type: str, seen_before: bool) -> None:
    records = fixture_records(source_type)
    vendor = connector_class(source_type).vendor
    events = check_ocsf([to_ocsf(r, seen_before=seen_before, vendor=vendor) for r in records])
    for record, event in zip(records, events, strict=True):
        assert (event["class_uid"], event["category_uid"]) == (2004, 2)
        assert event["type_uid"] == 200400 + event["activity_id"]
        assert event["finding_info"]["uid"] == record["id"]
        assert event["severity_id"] == record["severity_id"]
        assert event["metadata"]["version"] == "1.8.0"
        assert event["metadata"]["tenant_uid"] == record["tenant"]
        assert event["metadata"]["product"]["vendor_name"]
        assert ("cloud" in event) == ("cloud" in event["metadata"]["profiles"])


@pytest.mark.parametrize("source_type", sorted(FIXTURES))
def test_no_record_value_is_lost_in_the_mapping(source_type: str) -> None:
    """Every string and number of a record (but its enums, shown as OCSF captions) is in
    the event: mapped to an attribute, kept in an entity's data, or under unmapped."""
    for record in fixture_records(source_type):
        event = json.dumps(to_ocsf(record, seen_before=True))
        derived = {"schema_version", "severity", "status", "raw"}
        for value in leaves({k: v for k, v in record.items() if k not in derived}):
            assert json.dumps(value) in event, (value, record["native_id"])


def leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    elif value is not None:
        yield value


# -- the mapping, field by field ---------------------------------------------------------


def record(**changes: Any) -> dict[str, Any]:
    """A GuardDuty fixture record with some fields changed."""
    base = fixture_records("guardduty")[1]
    return {**base, **changes}


@pytest.mark.parametrize(("status", "created", "updated", "seen_before", "activity"), [
    ("new", "2026-03-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z", True, 1),
    ("new", "2026-03-01T00:00:00.000Z", "2026-03-01T05:00:00.000Z", False, 1),
    ("new", "2026-03-01T00:00:00.000Z", "2026-03-01T05:00:00.000Z", True, 2),
    ("in_progress", None, None, True, 2),
    ("in_progress", None, None, False, 1),
    ("resolved", "2026-03-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z", False, 3),
    ("resolved", "2026-03-01T00:00:00.000Z", "2026-03-01T05:00:00.000Z", True, 3),
    ("archived", "2026-03-01T00:00:00.000Z", "2026-03-01T05:00:00.000Z", True, 2),
])
def test_activity_is_close_when_resolved_create_when_first_seen_else_update(
        status: str, created: str | None, updated: str | None, seen_before: bool,
        activity: int) -> None:
    event = to_ocsf(record(status=status, created_at=created, updated_at=updated),
                    seen_before=seen_before)
    check_ocsf([event])
    assert event["activity_id"] == activity
    assert event["activity_name"] == {1: "Create", 2: "Update", 3: "Close"}[activity]


@pytest.mark.parametrize(("status", "status_id"), [
    ("unknown", 0), ("new", 1), ("in_progress", 2), ("suppressed", 3), ("resolved", 4),
    ("archived", 5), ("deleted", 6)])
def test_status_maps_one_for_one(status: str, status_id: int) -> None:
    event = check_ocsf([to_ocsf(record(status=status, status_raw="X"), seen_before=True)])[0]
    assert (event["status_id"], event["status_detail"]) == (status_id, "X")


def test_times_are_epoch_milliseconds_with_their_rfc3339_twins() -> None:
    event = to_ocsf(record(), seen_before=False)
    r = record()
    assert event["time"] == ms(r["updated_at"]) and event["time_dt"] == r["updated_at"]
    info = event["finding_info"]
    assert info["created_time"] == ms(r["created_at"])
    assert info["modified_time"] == ms(r["updated_at"])
    assert info["first_seen_time"] == ms(r["first_seen_at"])
    assert info["last_seen_time_dt"] == r["last_seen_at"]
    assert event["metadata"]["logged_time"] == ms(r["pulled_at"])
    assert event["metadata"]["original_time"] == r["updated_at"]
    assert "datetime" in event["metadata"]["profiles"]


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_guardduty_finding_in_detail() -> None:
    r = record()
    event = to_ocsf(r, seen_before=False, vendor=GuardDutyConnector.vendor)
    assert event["metadata"]["product"] == {"name": "GuardDuty",
                                            "vendor_name": "Amazon Web Services"}
    assert event["cloud"] == {"provider": "AWS", "region": "us-east-1",
                              "account": {"uid": "123456789012", "type_id": 10}}
    assert event["finding_info"]["uid_alt"] == r["native_id"]
    assert event["finding_info"]["types"] == [r["type"], r["category"]]
    assert event["finding_info"]["src_url"] == r["link"]
    assert event["message"] == r["title"] and event["count"] == r["count"]
    assert [res["uid"] for res in event["resources"]] == [res["id"] for res in r["resources"]]
    assert [e["user"]["name"] for e in event["evidences"]] == [u["name"] for u in r["users"]]
    assert event["unmapped"]["severity_raw"] == r["severity_raw"]
    assert event["unmapped"]["dedup_key"] == r["dedup_key"]


def test_observables_come_from_related() -> None:
    related = {"ips": ["192.0.2.1"], "domains": ["c2.example.net"], "urls": ["https://x.test/a"],
               "hashes": ["ab" * 32], "emails": ["a@example.com"]}
    event = check_ocsf([to_ocsf(record(related=related), seen_before=True)])[0]
    assert sorted((o["type_id"], o["value"]) for o in event["observables"]) == [
        (1, "c2.example.net"), (2, "192.0.2.1"), (5, "a@example.com"), (6, "https://x.test/a"),
        (8, "ab" * 32)]


def test_mitre_tactics_and_techniques_become_attacks() -> None:
    mitre = {"tactics": ["TA0005", "InitialAccess"], "techniques": ["T1566", "T1564.001",
                                                                    "VALID_ACCOUNTS"]}
    event = check_ocsf([to_ocsf(record(mitre=mitre), seen_before=True)])[0]
    assert event["finding_info"]["attacks"] == [
        {"tactic": {"uid": "TA0005"}}, {"tactic": {"name": "InitialAccess"}},
        {"technique": {"uid": "T1566"}},
        {"technique": {"uid": "T1564"}, "sub_technique": {"uid": "T1564.001"}},
        {"technique": {"name": "VALID_ACCOUNTS"}},
    ]


def test_each_version_has_its_own_event_uid_and_raw_data_matches_its_hash() -> None:
    first = to_ocsf(record(), seen_before=False)
    raw = {**record()["raw"], "updatedAt": "2026-03-02T00:00:00.000Z"}
    second = to_ocsf(record(raw=raw, raw_sha256=raw_sha256(raw)), seen_before=True)
    assert first["finding_info"]["uid"] == second["finding_info"]["uid"]
    assert first["metadata"]["uid"] != second["metadata"]["uid"]
    for event in (first, second):
        digest = hashlib.sha256(event["raw_data"].encode()).hexdigest()
        assert event["raw_data_hash"] == {"algorithm_id": 3, "algorithm": "SHA-256",
                                          "value": digest}
        assert json.loads(event["raw_data"])["id"] == record()["raw"]["id"]
    lean = check_ocsf([to_ocsf(record(), seen_before=True, raw_data=False)])[0]
    assert "raw_data" not in lean and lean["unmapped"]["raw_sha256"] == record()["raw_sha256"]


def test_a_bare_record_without_a_known_vendor_is_valid() -> None:
    bare = {"schema_version": "1.0", "id": record_id("x|t|n"), "dedup_key": "x|t|n",
            "source": "x", "source_type": "future_vendor", "tenant": "t", "native_id": "n",
            "title": "Something", "severity": "unknown", "severity_id": 0, "severity_raw": None,
            "status": "unknown", "status_raw": None, "created_at": None, "updated_at": None,
            "pulled_at": "2026-03-03T12:00:00.000Z", "link": None, "raw": {},
            "raw_sha256": raw_sha256({}), "region": "moon-1",
            "resources": [{"type": "nameless"}], "users": [{"type": "ghost"}]}
    event = check_ocsf([to_ocsf(check_records([bare])[0], seen_before=False)])[0]
    assert event["metadata"]["product"] == {"name": "future_vendor"}
    assert event["time"] == ms(bare["pulled_at"]) and "cloud" not in event
    assert event["metadata"]["profiles"] == ["datetime"]
    # What OCSF cannot name is kept whole, not dropped.
    assert event["unmapped"]["region"] == "moon-1"
    assert event["unmapped"]["resources"] == [{"type": "nameless"}]
    assert event["evidences"] == [{"data": {"type": "ghost"}}]


# -- the CLI, as cron runs it ------------------------------------------------------------


def read_ocsf(root: Path) -> list[dict[str, Any]]:
    events = [json.loads(line)
              for path in sorted(root.rglob("*.jsonl*")) if not path.name.startswith(".")
              for line in path.read_text().splitlines()]
    return check_ocsf(events)


def test_fetch_format_ocsf_writes_valid_detection_findings(aws: AwsWorld) -> None:
    aws.add(12, first=0, base_time=hours_ago(2))
    result = aws.fetch("--format", "ocsf")
    assert result.returncode == 0, result.stderr
    events = read_ocsf(aws.alerts)
    assert len(events) == 12
    assert {e["finding_info"]["uid_alt"] for e in events} == {f["arn"] for f in aws.findings()}
    assert {e["finding_info"]["uid"] for e in events} == {
        record_id(f"aws|{f['accountId']}|{f['arn']}") for f in aws.findings()}
    assert {e["activity_id"] for e in events} == {1}
    assert {e["metadata"]["source"] for e in events} == {"aws"}


def test_sink_format_in_the_config_and_the_flag_overriding_it(aws: AwsWorld) -> None:
    aws.add(3, first=0, base_time=hours_ago(2))
    aws.write_config(sink={"type": "stdout", "format": "ocsf"})
    result = aws.fetch()
    assert result.returncode == 0, result.stderr
    events = check_ocsf([json.loads(line) for line in result.stdout.splitlines()])
    assert len(events) == 3
    aws.add(2, first=3, base_time=hours_ago(1))
    native = aws.fetch("--format", "native")
    assert native.returncode == 0, native.stderr
    assert len(check_records([json.loads(line) for line in native.stdout.splitlines()])) == 2


def test_a_rerun_writes_an_updated_finding_as_activity_update(aws: AwsWorld) -> None:
    aws.add(5, first=0, base_time=hours_ago(0.9))  # inside the 1h overlap the cursor keeps
    aws.write_config(sink={"type": "jsonl", "path": "alerts", "format": "ocsf"})
    assert aws.fetch().returncode == 0
    updated = aws.findings()[2]
    updated["service"]["count"] += 1
    updated["updatedAt"] = hours_ago(0.2).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert aws.fetch().returncode == 0
    events = read_ocsf(aws.alerts)
    versions = [e for e in events if e["finding_info"]["uid_alt"] == updated["arn"]]
    assert [e["activity_id"] for e in sorted(versions, key=lambda e: e["time"])] == [1, 2]
    assert [e["type_uid"] for e in events if e["activity_id"] == 2] == [200402]
    assert len({e["metadata"]["uid"] for e in versions}) == 2


def test_an_unknown_sink_format_is_a_config_error(aws: AwsWorld) -> None:
    aws.write_config(sink={"type": "jsonl", "path": "alerts", "format": "cef"})
    result = aws.fetch()
    assert result.returncode == 2
    assert "sink.format" in result.stderr and "native, ocsf" in result.stderr
    assert aws.fake.requests == []



def test_values_that_break_an_ocsf_format_stay_out_of_the_typed_fields() -> None:
    [record, *_] = fixture_records("workspace_alertcenter")
    garbage = {**record, "users": [{"id": "u1", "email": "not an email"}],
               "related": {"ips": ["10.0.0.1", "999.1.1.1"], "urls": ["nowhere"],
                           "emails": ["a@example.com", "@@"]}}
    [event] = check_ocsf([to_ocsf(garbage, seen_before=False)])
    values = {o["value"] for o in event["observables"]}
    assert values == {"10.0.0.1", "a@example.com"}
    [user] = [e for e in event["evidences"] if "user" in e]
    assert "email_addr" not in user["user"] and user["data"] == {"email": "not an email"}
    assert json.loads(event["raw_data"]) == record["raw"]
