"""The Security Hub connector against a local AWS fake, through the real boto3 code path:
GetFindingsV2 (OCSF) and GetFindings (ASFF, Security Hub CSPM)."""

from __future__ import annotations

import functools
import json
import logging
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alertpull.connector import Memory, Scope, Secret, Window
from alertpull.connectors.securityhub import SecurityHubConnector
from alertpull.errors import ConfigError, MalformedAlert, SourceError, WindowIncomplete
from alertpull.record import build_record, raw_sha256
from alertpull.timeutil import format_time, parse_time, to_epoch_ms
from tests.aws_env import aws_client_env
from tests.fakes.aws import credential_scope, rest_json_error
from tests.fakes.guardduty_data import DETECTOR, make_findings
from tests.fakes.http_fake import Fault, on
from tests.fakes.securityhub import SecurityHubFake
from tests.fakes.securityhub_data import (
    ACCOUNT,
    BASE_TIME,
    make_asff_finding,
    make_asff_findings,
    make_ocsf_finding,
    make_ocsf_findings,
    touch_asff,
    touch_ocsf,
)
from tests.s3_fixtures import FAKE_SECRET, fake_aws_env
from tests.world import CliWorld, engine_settings, hours_ago

REGION = "us-east-1"
OTHER_REGION = "eu-west-1"
V2_PATH, V1_PATH = "/findingsv2", "/findings"
# 250 findings one minute apart; this window holds numbers 10..219: pages of 100, 100, 10.
WINDOW = Window(BASE_TIME + timedelta(minutes=10), BASE_TIME + timedelta(minutes=220))
MEMBER = "222233334444"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[SecurityHubFake]:
    fake_aws_env(monkeypatch)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    with SecurityHubFake() as server:
        for service in ("STS", "EC2", "SECURITYHUB"):
            monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", server.url)
        yield server


def connector(**settings: Any) -> SecurityHubConnector:
    merged = engine_settings(SecurityHubConnector, **{"regions": [REGION], **settings})
    return SecurityHubConnector("hub-test", merged, logging.getLogger("test"))


def scope(region: str = REGION) -> Scope:
    return Scope(key=f"{ACCOUNT}/{region}", params={"account": ACCOUNT, "region": region})


def pull(conn: SecurityHubConnector, window: Window = WINDOW) -> list[list[Any]]:
    return list(conn.fetch(scope(), window, Memory()))


def flat(pages: list[list[Any]]) -> list[Any]:
    return [finding for page in pages for finding in page]


def sent(fake: SecurityHubFake, path: str) -> list[dict[str, Any]]:
    return [r.json() for r in fake.requests if r.path == path]


def source_error(call: Any) -> str:
    with pytest.raises(SourceError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and FAKE_SECRET not in message
    return message


def product(finding: dict[str, Any]) -> str:
    return finding["metadata"]["product"]["name"] if "metadata" in finding \
        else finding["ProductName"]


# -- GetFindingsV2 -------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint_via", ["env", "option"])
def test_v2_reads_the_window_ascending_at_the_page_maximum_with_raw_verbatim(
        fake: SecurityHubFake, monkeypatch: pytest.MonkeyPatch, endpoint_via: str) -> None:
    findings = make_ocsf_findings(250)
    findings[50]["futureField"] = {"notInTheModel": True}
    fake.enable_hub(REGION, ocsf=findings[::-1])  # stored order must not matter
    settings = {}
    if endpoint_via == "option":
        monkeypatch.delenv("AWS_ENDPOINT_URL_SECURITYHUB")
        settings["endpoint_url"] = fake.url

    pages = pull(connector(**settings))

    assert [len(page) for page in pages] == [100, 100, 10]
    assert flat(pages) == findings[10:220]  # [start, end): minute 10 in, minute 220 out
    assert flat(pages)[40]["futureField"] == {"notInTheModel": True}
    calls = sent(fake, V2_PATH)
    end = format_time(WINDOW.end - timedelta(milliseconds=1))  # End is inclusive
    for body in calls:  # the same pinned query on every page
        assert body["Filters"] == {"CompositeOperator": "AND", "CompositeFilters": [{
            "Operator": "AND",
            "DateFilters": [{"FieldName": "finding_info.modified_time_dt",
                             "Filter": {"Start": format_time(WINDOW.start), "End": end}}]}]}
        assert body["SortCriteria"] == [{"Field": "finding_info.modified_time_dt",
                                         "SortOrder": "asc"}]
        assert body["MaxResults"] == 100
        assert "Scopes" not in body
    assert "NextToken" not in calls[0] and all(body["NextToken"] for body in calls[1:])


def test_a_finding_at_the_windows_end_is_left_for_the_next_window(fake: SecurityHubFake) -> None:
    findings = make_ocsf_findings(3)
    fake.enable_hub(REGION, ocsf=findings)

    got = flat(pull(connector(), Window(BASE_TIME, BASE_TIME + timedelta(minutes=2))))

    assert got == findings[:2]


@pytest.mark.parametrize("api", ["v2", "cspm"])
def test_exclude_products_is_the_vendors_filter_not_a_skip(fake: SecurityHubFake,
                                                            api: str) -> None:
    fake.enable_hub(REGION, ocsf=make_ocsf_findings(40), asff=make_asff_findings(40))
    window = Window(BASE_TIME, BASE_TIME + timedelta(hours=1))

    got = flat(pull(connector(api=api, exclude_products=["GuardDuty"]), window))

    assert len(got) == 20 and "GuardDuty" not in {product(f) for f in got}
    if api == "v2":
        [composite] = sent(fake, V2_PATH)[0]["Filters"]["CompositeFilters"]
        assert composite["StringFilters"] == [{"FieldName": "metadata.product.name", "Filter": {
            "Value": "GuardDuty", "Comparison": "NOT_EQUALS"}}]
    else:
        filters = sent(fake, V1_PATH)[0]["Filters"]
        assert filters["ProductName"] == [{"Value": "GuardDuty", "Comparison": "NOT_EQUALS"}]


def test_repeated_page_token_stops_the_window_after_yielding_each_finding_once(
        fake: SecurityHubFake) -> None:
    findings = make_ocsf_findings(250)
    fake.enable_hub(REGION, ocsf=findings)
    fake.repeat_token_from_page = 2  # page 2 answers with the token it was asked with
    pages = []

    with pytest.raises(WindowIncomplete, match="repeated a page token in us-east-1"):
        for page in connector().fetch(scope(), WINDOW, Memory()):
            pages.append(page)

    assert flat(pages) == findings[10:210]  # pages 1 and 2, each finding once, in order
    assert len(sent(fake, V2_PATH)) == 2


def test_organization_units_scope_a_delegated_administrators_pull(fake: SecurityHubFake) -> None:
    mine = make_ocsf_findings(4)
    theirs = make_ocsf_findings(4, first=4, account=MEMBER)
    fake.enable_hub(REGION, ocsf=mine + theirs)
    fake.delegated_admin = True
    fake.organization = {"ou-ab12-cd345678": {MEMBER}}
    conn = connector(organization_units=["ou-ab12-cd345678"])
    window = Window(BASE_TIME, BASE_TIME + timedelta(hours=1))

    got = flat(pull(conn, window))

    assert got == theirs
    assert sent(fake, V2_PATH)[0]["Scopes"] == {
        "AwsOrganizations": [{"OrganizationalUnitId": "ou-ab12-cd345678"}]}
    assert {conn.normalize(scope(), f).tenant for f in got} == {MEMBER}


def test_scopes_from_an_account_that_is_not_the_delegated_administrator_fail_clearly(
        fake: SecurityHubFake) -> None:
    fake.enable_hub(REGION, ocsf=make_ocsf_findings(4))

    message = source_error(lambda: pull(connector(organization_units=["o-abcd1234567890"])))

    assert message == ("access denied in us-east-1: allow securityhub:GetFindings (or attach "
                       "AWSSecurityHubReadOnlyAccess) for alertpull")


# -- GetFindings (CSPM) --------------------------------------------------------------------


def test_cspm_reads_updated_at_ascending_paced_under_its_rate_limit(
        fake: SecurityHubFake) -> None:
    findings = make_asff_findings(250)
    fake.enable_hub(REGION, asff=findings[::-1])
    fake.page_limit = 20  # 11 pages: more than the burst of 6 allows at once

    pages = pull(connector(api="cspm"))

    assert flat(pages) == findings[10:220]
    assert len(pages) == 11
    assert fake.throttled == 0  # never over 3 calls a second, so never refused
    calls = sent(fake, V1_PATH)
    end = format_time(WINDOW.end - timedelta(milliseconds=1))
    for body in calls:
        assert body["Filters"] == {"UpdatedAt": [{"Start": format_time(WINDOW.start),
                                                  "End": end}]}
        assert body["SortCriteria"] == [{"Field": "UpdatedAt", "SortOrder": "asc"}]
        assert body["MaxResults"] == 100


def test_cspm_throttling_is_retried_by_botocore(fake: SecurityHubFake) -> None:
    findings = make_asff_findings(30)
    fake.enable_hub(REGION, asff=findings)
    throttled = rest_json_error(429, "LimitExceededException", "Rate exceeded")
    fake.inject(on("POST", V1_PATH), Fault(response=throttled), times=2)

    got = flat(pull(connector(api="cspm"), Window(BASE_TIME, BASE_TIME + timedelta(hours=1))))

    assert got == findings and fake.pending_faults == 0


def test_throttling_that_never_ends_fails_after_max_retries(fake: SecurityHubFake) -> None:
    fake.enable_hub(REGION, ocsf=make_ocsf_findings(30))
    throttled = rest_json_error(429, "ThrottlingException", "Rate exceeded")
    fake.inject(on("POST", V2_PATH), Fault(response=throttled), times=100)

    message = source_error(lambda: pull(connector(max_retries=1)))

    assert message == ("Security Hub GetFindingsV2 in us-east-1 still failed with HTTP 429 "
                       "after 1 retry (ThrottlingException: Rate exceeded); the next run reads "
                       "the window again")


# -- scopes and regions --------------------------------------------------------------------


@pytest.mark.parametrize("api", ["v2", "cspm"])
def test_regions_default_to_the_aggregation_region(fake: SecurityHubFake, api: str) -> None:
    fake.enable_hub(REGION)
    fake.enable_hub(OTHER_REGION)
    fake.aggregation_region = OTHER_REGION

    scopes = connector(api=api, regions=None).scopes()

    assert scopes == [Scope(f"{ACCOUNT}/{OTHER_REGION}",
                            {"account": ACCOUNT, "region": OTHER_REGION}, tenant=ACCOUNT)]
    assert not any(r.form().get("Action") == "DescribeRegions" for r in fake.requests)


def test_the_account_is_asked_for_while_the_aggregation_region_is(
        fake: SecurityHubFake) -> None:
    fake.enable_hub(REGION)
    fake.aggregation_region = REGION
    aggregators = threading.Event()
    fake.inject(lambda r: r.path != "/", Fault(before=aggregators.set))
    # GetCallerIdentity is answered once the aggregators' lookup has arrived: in that order
    # the two are on the wire together (bounded so a regression fails, not hangs).
    overlapped: list[bool] = []
    fake.inject(lambda r: r.path == "/" and r.form().get("Action") == "GetCallerIdentity",
                Fault(before=lambda: overlapped.append(aggregators.wait(timeout=10))))

    (found,) = connector(regions=None).scopes()

    assert overlapped == [True]
    assert found.key == f"{ACCOUNT}/{REGION}"


def test_without_an_aggregator_regions_default_to_every_enabled_region(
        fake: SecurityHubFake) -> None:
    fake.enable_hub(REGION)
    fake.enable_hub(OTHER_REGION)
    fake.disable_region("ap-east-1")

    scopes = connector(regions=None).scopes()

    assert [s.params["region"] for s in scopes] == [OTHER_REGION, REGION]


def test_a_region_without_security_hub_is_skipped_with_a_warning(
        fake: SecurityHubFake, caplog: pytest.LogCaptureFixture) -> None:
    fake.enable_region("us-west-2")  # enabled for the account, Security Hub off there

    with caplog.at_level(logging.WARNING):
        pages = list(connector().fetch(scope("us-west-2"), WINDOW, Memory()))

    assert pages == []
    assert "Security Hub is not enabled in us-west-2" in caplog.text


def test_role_is_assumed_with_external_id_and_signs_the_security_hub_calls(
        fake: SecurityHubFake) -> None:
    fake.trusted_external_id = "ext-7f3a91"
    fake.enable_hub(REGION, ocsf=make_ocsf_findings(30))
    conn = connector(role_arn="arn:aws:iam::210987654321:role/AlertpullReader",
                     external_id=Secret("ext-7f3a91"))

    [only] = conn.scopes()
    got = flat(list(conn.fetch(only, Window(BASE_TIME, BASE_TIME + timedelta(hours=1)),
                               Memory())))

    assert only.key == f"210987654321/{REGION}" and len(got) == 30
    [assume] = [r for r in fake.requests if r.form().get("Action") == "AssumeRole"]
    assert assume.form()["ExternalId"] == "ext-7f3a91"
    (assumed_key,) = fake.issued
    hub = [r for r in fake.requests if r.path == V2_PATH]
    assert {credential_scope(r).access_key for r in hub} == {assumed_key}
    assert {credential_scope(r).service for r in hub} == {"securityhub"}


def test_check_names_the_account_api_and_regions(fake: SecurityHubFake) -> None:
    fake.enable_hub(REGION)

    assert connector(api="cspm").check() == (
        "AWS account 123456789012: Security Hub GetFindings (CSPM) answered in us-east-1; "
        "pulling us-east-1")


# -- normalize -----------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1])
def test_normalize_maps_an_ocsf_finding(index: int, validate_records: Any) -> None:
    raw = make_ocsf_finding(index)
    info = raw["finding_info"]

    alert = connector().normalize(scope(), raw)

    assert alert.native_id == info["uid"]
    assert alert.tenant == ACCOUNT
    assert alert.changed_at == alert.updated_at == parse_time(info["modified_time_dt"])
    assert alert.created_at == parse_time(info["created_time_dt"])
    assert alert.title == info["title"]
    assert (alert.status, alert.status_raw) == ("new", "New")
    assert alert.extra["product"] == raw["metadata"]["product"]["name"]
    assert alert.extra["category"] == raw["class_name"]
    assert alert.extra["region"] == REGION
    [resource] = alert.extra["resources"]
    assert resource["id"] == raw["resources"][0]["uid"]
    assert resource["type"] == raw["resources"][0]["type"]
    record = build_record("hub", "securityhub", alert, raw, raw_sha256(raw),
                          format_time(BASE_TIME))
    validate_records([record])


@pytest.mark.parametrize(("severity_id", "severity"), [
    (1, "informational"), (2, "low"), (3, "medium"), (4, "high"), (5, "critical"),
    (6, "critical"), (99, "unknown"), (0, "unknown")])
def test_normalize_maps_ocsf_severity_ids(severity_id: int, severity: str) -> None:
    raw = make_ocsf_finding(0)
    raw["severity_id"] = severity_id

    assert connector().normalize(scope(), raw).severity == severity


@pytest.mark.parametrize(("status_id", "status"), [
    (1, "new"), (2, "in_progress"), (3, "suppressed"), (4, "resolved"), (5, "archived"),
    (6, "deleted"), (99, "unknown")])
def test_normalize_maps_ocsf_status_ids(status_id: int, status: str) -> None:
    raw = make_ocsf_finding(0)
    raw["status_id"] = status_id

    assert connector().normalize(scope(), raw).status == status


def test_a_partners_id_is_made_unique_by_its_product() -> None:
    raw = make_ocsf_finding(0)
    raw["finding_info"]["uid"] = "finding-42"

    alert = connector().normalize(scope(), raw)

    assert alert.native_id == f"{raw['metadata']['product']['uid']}|finding-42"


@pytest.mark.parametrize(("workflow", "record_state", "status"), [
    ("NEW", "ACTIVE", "new"), ("NOTIFIED", "ACTIVE", "in_progress"),
    ("SUPPRESSED", "ACTIVE", "suppressed"), ("RESOLVED", "ACTIVE", "resolved"),
    ("NEW", "ARCHIVED", "archived"), ("RESOLVED", "ARCHIVED", "archived")])
def test_normalize_maps_asff_workflow_and_record_state(workflow: str, record_state: str,
                                                       status: str) -> None:
    raw = make_asff_finding(0)
    touch_asff(raw, BASE_TIME, workflow=workflow, record_state=record_state)

    alert = connector(api="cspm").normalize(scope(), raw)

    assert (alert.status, alert.status_raw) == (status, f"{workflow}/{record_state}")


@pytest.mark.parametrize("index", [0, 1])
def test_normalize_maps_an_asff_finding(index: int, validate_records: Any) -> None:
    raw = make_asff_finding(index)

    alert = connector(api="cspm").normalize(scope(), raw)

    assert alert.native_id == raw["Id"] and alert.tenant == ACCOUNT
    assert alert.changed_at == parse_time(raw["UpdatedAt"])
    assert (alert.severity, alert.severity_raw) == (raw["Severity"]["Label"].lower(),
                                                    raw["Severity"]["Label"])
    assert alert.extra["product"] == raw["ProductName"]
    assert alert.extra["type"] == raw["Types"][0]
    assert alert.extra["resources"][0]["id"] == raw["Resources"][0]["Id"]
    validate_records([build_record("hub", "securityhub", alert, raw, raw_sha256(raw),
                                   format_time(BASE_TIME))])


@pytest.mark.parametrize(("api", "path"), [
    ("v2", ("finding_info", "uid")), ("v2", ("cloud", "account")),
    ("v2", ("finding_info", "modified_time_dt")), ("cspm", ("Id",)),
    ("cspm", ("AwsAccountId",)), ("cspm", ("UpdatedAt",))])
def test_normalize_raises_malformed_alert_without_what_the_mapping_needs(
        api: str, path: tuple[str, ...]) -> None:
    raw = make_ocsf_finding(0) if api == "v2" else make_asff_finding(0)
    parent = functools.reduce(lambda obj, key: obj[key], path[:-1], raw)
    del parent[path[-1]]
    if path[-1] == "modified_time_dt":
        del parent["modified_time"]

    with pytest.raises(MalformedAlert):
        connector(api=api).normalize(scope(), raw)


# -- through the installed CLI, as cron runs it ---------------------------------------------


@dataclass
class HubWorld(CliWorld):
    fake: SecurityHubFake

    def configure(self, **block: Any) -> None:
        self.write_yaml({"hub": {"type": "securityhub", "regions": [REGION], **block}})


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubWorld]:
    fake = SecurityHubFake()
    fake.enable_hub(REGION)
    with fake:
        world = HubWorld(tmp_path, aws_client_env(fake.url), fake)
        world.configure()
        yield world


def recent(count: int, maker: Any) -> list[dict[str, Any]]:
    """Findings changed a minute apart, the newest 10 minutes ago."""
    return maker(count, base_time=hours_ago(0) - timedelta(minutes=10 + count))


def later(minutes_ago: float) -> datetime:
    return hours_ago(minutes_ago / 60)


def test_v2_updates_each_write_one_new_version(hub: HubWorld) -> None:
    findings = recent(6, make_ocsf_findings)
    hub.fake.ocsf[REGION].extend(findings)
    first = hub.fetch()
    assert first.returncode == 0, first.stderr
    assert len(hub.records()) == 6
    touch_ocsf(findings[1], later(5), status_id=2)  # a workflow change: in progress
    touch_ocsf(findings[2], later(5), status_id=3)  # suppressed
    touch_ocsf(findings[3], later(5), status_id=5)  # archived

    second = hub.fetch()
    third = hub.fetch()

    assert second.returncode == third.returncode == 0, second.stderr + third.stderr
    records = hub.records()
    assert len(records) == 9  # one new line for each update; the rerun writes nothing
    latest = {r["native_id"]: r for r in sorted(records, key=lambda r: r["pulled_at"])}
    statuses = [latest[f["finding_info"]["uid"]]["status"] for f in findings[1:4]]
    assert statuses == ["in_progress", "suppressed", "archived"]
    assert Counter(r["native_id"] for r in records)[findings[2]["finding_info"]["uid"]] == 2
    assert "0 written" in third.stderr


def test_cspm_updates_each_write_one_new_version(hub: HubWorld) -> None:
    hub.configure(api="cspm")
    findings = recent(6, make_asff_findings)
    hub.fake.asff[REGION].extend(findings)
    assert hub.fetch().returncode == 0
    touch_asff(findings[1], later(5), workflow="NOTIFIED")
    touch_asff(findings[2], later(5), workflow="SUPPRESSED")
    touch_asff(findings[3], later(5), record_state="ARCHIVED")

    assert hub.fetch().returncode == 0
    assert hub.fetch().returncode == 0

    records = hub.records()
    assert len(records) == 9
    latest = {r["native_id"]: r for r in sorted(records, key=lambda r: r["pulled_at"])}
    assert [latest[f["Id"]]["status"] for f in findings[1:4]] == [
        "in_progress", "suppressed", "archived"]


def ocsf_class_validator(class_uid: int, profiles: tuple[str, ...]) -> Any:
    return _validator({2003: "compliance_finding", 2004: "detection_finding"}[class_uid],
                      profiles)


@functools.cache
def _validator(class_name: str, profiles: tuple[str, ...]) -> Any:
    import jsonschema
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema("1.8.0")).get_class_schema(
        class_name, list(profiles))
    return jsonschema.Draft202012Validator(schema)


def test_format_ocsf_passes_the_vendors_ocsf_finding_through(hub: HubWorld) -> None:
    findings = recent(12, make_ocsf_findings)  # both classes, every severity
    hub.fake.ocsf[REGION].extend(findings)

    result = hub.fetch("--format", "ocsf")

    assert result.returncode == 0, result.stderr
    events = sorted((json.loads(line) for path in hub.alerts.rglob("*.jsonl")
                     for line in path.read_text().splitlines()), key=lambda e: e["time"])
    assert len(events) == 12
    for event, finding in zip(events, findings, strict=True):
        # The vendor's finding as it sent it: alertpull adds metadata, maps nothing again.
        assert {k: v for k, v in event.items() if k not in ("metadata", "unmapped")} == {
            k: v for k, v in finding.items() if k not in ("metadata", "unmapped")}
        assert event["metadata"] == {**finding["metadata"], "tenant_uid": ACCOUNT,
                                     "logged_time": event["metadata"]["logged_time"]}
        uid = finding["finding_info"]["uid"]
        provenance = event["unmapped"]["alertpull"]
        assert provenance["dedup_key"] == f"hub|{ACCOUNT}|{uid}"
        assert provenance["native_id"] == uid and provenance["source_type"] == "securityhub"
        assert provenance["raw_sha256"] == raw_sha256(finding)
        validator = ocsf_class_validator(event["class_uid"], tuple(event["metadata"]["profiles"]))
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in validator.iter_errors(event)]
        assert not errors, errors[:3]


def test_since_beyond_retention_is_clamped_with_a_warning(hub: HubWorld) -> None:
    result = hub.fetch("--since", "200d")

    assert result.returncode == 0, result.stderr
    assert "older than this source's 90d retention" in result.stderr
    [body] = sent(hub.fake, V2_PATH)
    start = body["Filters"]["CompositeFilters"][0]["DateFilters"][0]["Filter"]["Start"]
    assert abs(to_epoch_ms(parse_time(start)) - to_epoch_ms(hours_ago(90 * 24))) < 60_000


@pytest.mark.parametrize("exclude", [True, False])
def test_guardduty_pulled_both_ways_is_logged_once_only_with_exclude_products(
        hub: HubWorld, exclude: bool) -> None:
    hub.fake.add_detector(REGION, DETECTOR, make_findings(
        5, region=REGION, base_time=hours_ago(0.5), step=timedelta(minutes=1)))
    hub.fake.ocsf[REGION].extend(recent(10, make_ocsf_findings))  # 5 GuardDuty, 5 controls
    block = {"type": "securityhub", "regions": [REGION]}
    if exclude:
        block["exclude_products"] = ["GuardDuty"]
    hub.write_yaml({"gd": {"type": "guardduty", "regions": [REGION]}, "hub": block})

    result = hub.fetch()

    assert result.returncode == 0, result.stderr
    products = Counter((r["source"], r["product"]) for r in hub.records())
    expected = {("gd", "GuardDuty"): 5, ("hub", "Security Hub CSPM"): 5}
    if not exclude:  # pulled both ways, kept under two dedup_keys (the source is in them)
        expected[("hub", "GuardDuty")] = 5
    assert products == expected


@pytest.mark.parametrize("point", ["after_page:1", "after_pending", "after_publish"])
def test_cspm_sigkill_then_a_rerun_holds_every_version_once(hub: HubWorld, point: str) -> None:
    hub.configure(api="cspm")
    hub.fake.page_limit = 20
    findings = recent(60, make_asff_findings)
    hub.fake.asff[REGION].extend(findings)

    crashed = hub.fetch(ALERTPULL_FAILPOINT=point)
    touch_asff(findings[3], later(5), workflow="RESOLVED")  # news before the rerun
    rerun = hub.fetch()

    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert rerun.returncode == 0, rerun.stderr
    versions = Counter((r["native_id"], r["raw_sha256"]) for r in hub.records())
    # Killed before publishing, the first run left nothing: the rerun reads the update only.
    published_before = point != "after_page:1"
    assert len(versions) == 60 + published_before and set(versions.values()) == {1}


def test_no_secret_of_an_assumed_role_reaches_output_logs_or_state(hub: HubWorld) -> None:
    hub.fake.trusted_external_id = "ext-5e2b77c1"
    hub.fake.ocsf[REGION].extend(recent(10, make_ocsf_findings))
    hub.configure(role_arn="arn:aws:iam::210987654321:role/AlertpullReader",
                  external_id="${HUB_EXTERNAL_ID}")
    secret_env = {"HUB_EXTERNAL_ID": "ext-5e2b77c1"}

    runs = [hub.cli("-v", "check", **secret_env), hub.cli("-v", "fetch", "--all", **secret_env),
            hub.cli("-v", "--log-format", "json", "fetch", "--all", **secret_env),
            hub.cli("status", "--json", **secret_env)]

    assert [r.returncode for r in runs] == [0, 0, 0, 0], [r.stderr for r in runs]
    assert {r["tenant"] for r in hub.records()} == {ACCOUNT}
    issued = [value for grant in hub.fake.issued.values()
              for value in (grant.secret_key, grant.session_token)]
    secrets = ["ext-5e2b77c1", hub.env["AWS_SECRET_ACCESS_KEY"], *issued]
    seen = [r.stdout + r.stderr for r in runs] + [hub.written_text()]
    assert issued and not [s for s in secrets if any(s in text for text in seen)]


def test_a_bad_api_is_one_config_error_line(hub: HubWorld) -> None:
    hub.configure(api="v3")

    result = hub.fetch()

    assert result.returncode == 2, result.stderr
    assert "sources.hub.api" in result.stderr and "Traceback" not in result.stderr
    assert hub.fake.requests == []


@pytest.mark.parametrize(("settings", "message"), [
    ({"api": "cspm", "organization_units": ["ou-ab12-cd345678"]}, "only api v2 scopes"),
    ({"organization_units": ["123456789012"]}, "'123456789012' is neither an organization id"),
])
def test_organization_units_that_cannot_work_are_config_errors(settings: dict[str, Any],
                                                               message: str) -> None:
    with pytest.raises(ConfigError, match=r"^sources\.hub-test\.organization_units: ") as caught:
        connector(**settings)

    assert message in str(caught.value)


# -- the fake is as strict as AWS where a client could slip ---------------------------------


def test_fake_rejects_what_security_hub_rejects(fake: SecurityHubFake) -> None:
    import boto3

    fake.enable_hub(REGION, ocsf=make_ocsf_findings(150))
    client = boto3.session.Session().client("securityhub", region_name=REGION)
    page = client.get_findings_v2(MaxResults=100)

    def error_of(**kwargs: Any) -> str:
        with pytest.raises(client.exceptions.ValidationException) as caught:
            client.get_findings_v2(**kwargs)
        return caught.value.response["Error"]["Message"]

    assert len(page["Findings"]) == 100 and page["NextToken"]
    assert "does not match" in error_of(NextToken=page["NextToken"], MaxResults=100,
                                        SortCriteria=[{"Field": "finding_info.modified_time_dt",
                                                       "SortOrder": "asc"}])
    assert "out of range" in error_of(MaxResults=101)  # botocore checks no maximum
    unserved = {"CompositeFilters": [{"StringFilters": [{"FieldName": "severity", "Filter": {
        "Value": "High", "Comparison": "EQUALS"}}]}]}
    assert "not served" in error_of(Filters=unserved)


def test_importing_the_connector_does_not_import_boto3() -> None:
    code = (
        "import sys, alertpull.connectors.securityhub; "
        "sys.exit(any(m.startswith(('boto3', 'botocore')) for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
