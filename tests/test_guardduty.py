"""The GuardDuty connector against a local AWS fake, through the real boto3 code path."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.exceptions
import pytest

from alertpull.connector import Memory, Scope, Secret, Window
from alertpull.connectors.guardduty import GuardDutyConnector, describe_error
from alertpull.errors import MalformedAlert, SourceError, WindowIncomplete
from alertpull.record import build_record, raw_sha256
from alertpull.timeutil import format_time, parse_time
from tests.fakes.aws import (
    NOT_OWNED,
    AwsFake,
    bad_request,
    credential_scope,
    rest_json_error,
    throttled,
)
from tests.fakes.guardduty_data import BASE_TIME, DETECTOR, KINDS, make_finding, make_findings
from tests.fakes.http_fake import Fault, Response, on
from tests.s3_fixtures import FAKE_SECRET, fake_aws_env
from tests.world import engine_settings

REGION = "us-east-1"
OTHER_REGION = "eu-west-1"
ENV_KEY = "AKIAFAKEFAKEFAKE"  # what fake_aws_env puts in AWS_ACCESS_KEY_ID
LIST_PATH = f"/detector/{DETECTOR}/findings"
GET_PATH = f"/detector/{DETECTOR}/findings/get"
ASC = {"attributeName": "updatedAt", "orderBy": "ASC"}
# 130 findings one minute apart; this window holds numbers 10..119: pages of 50, 50, 10.
WINDOW = Window(BASE_TIME + timedelta(minutes=10), BASE_TIME + timedelta(minutes=120))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsFake]:
    fake_aws_env(monkeypatch)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    with AwsFake() as server:
        for service in ("STS", "EC2", "GUARDDUTY"):
            monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", server.url)
        yield server


def connector(**settings: Any) -> GuardDutyConnector:
    """A connector with the settings the engine would pass: every option, defaults applied."""
    merged = engine_settings(GuardDutyConnector, **{"regions": [REGION], **settings})
    return GuardDutyConnector("aws-test", merged, logging.getLogger("test"))


def scope(region: str = REGION, detector_id: str = DETECTOR) -> Scope:
    params = {"account": "123456789012", "region": region, "detector_id": detector_id}
    return Scope(key=f"123456789012/{region}/{detector_id}", params=params,
                 tenant="123456789012")


def pull(conn: GuardDutyConnector, window: Window = WINDOW, **kwargs: Any) -> list[list[Any]]:
    return list(conn.fetch(scope(**kwargs), window, Memory()))


def flat(pages: list[list[Any]]) -> list[Any]:
    return [finding for page in pages for finding in page]


def ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def sent(fake: AwsFake, path: str) -> list[dict[str, Any]]:
    return [r.json() for r in fake.requests if r.path == path]


def source_error(call: Callable[[], Any]) -> str:
    """The message of the SourceError `call` raises, checked to be one secret-free line."""
    with pytest.raises(SourceError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert FAKE_SECRET not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    return message


# -- scopes --------------------------------------------------------------------------------


def test_scopes_one_per_detector_skipping_disabled_and_empty_regions(
    fake: AwsFake, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_detector(REGION, DETECTOR)
    fake.add_detector(OTHER_REGION, "det-eu")
    fake.disable_region("ap-east-1")
    fake.enable_region("us-west-2")

    regions = [REGION, OTHER_REGION, "ap-east-1", "us-west-2"]
    with caplog.at_level(logging.WARNING):
        scopes = connector(regions=regions).scopes()

    assert scopes == [
        Scope(
            f"123456789012/{REGION}/{DETECTOR}",
            {"account": "123456789012", "region": REGION, "detector_id": DETECTOR},
            tenant="123456789012",
        ),
        Scope(
            f"123456789012/{OTHER_REGION}/det-eu",
            {"account": "123456789012", "region": OTHER_REGION, "detector_id": "det-eu"},
            tenant="123456789012",
        ),
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "skipping ap-east-1: the region is not enabled for this account",
        "GuardDuty is not enabled in us-west-2",
    ]
    # ListDetectors asked for at most 50 per page, in each region's own SigV4 scope.
    detector_calls = [r for r in fake.requests if r.path == "/detector"]
    assert all(r.query["maxResults"] == ["50"] for r in detector_calls)
    assert [credential_scope(r).region for r in detector_calls] == regions


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_detectors_of_the_regions_are_asked_for_at_once_up_to_concurrency(
    fake: AwsFake, concurrency: int
) -> None:
    regions = [REGION, OTHER_REGION, "us-west-2", "ap-northeast-1"]
    for region in regions:
        fake.add_detector(region, f"det-{region}")
    # Each ListDetectors is answered once `concurrency` of them have arrived, or after a
    # bounded wait: asked one after another, the first would wait in vain.
    lock, in_flight, peak = threading.Lock(), [0], [0]
    all_in = threading.Barrier(concurrency)
    waited: list[bool] = []

    def arrive() -> None:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            all_in.wait(timeout=10)
            waited.append(True)
        except threading.BrokenBarrierError:
            waited.append(False)
        with lock:
            in_flight[0] -= 1

    fake.inject(on("GET", "/detector"), Fault(before=arrive), times=len(regions))
    conn = connector(regions=regions)
    conn.concurrency = concurrency

    scopes = conn.scopes()

    assert [s.params["detector_id"] for s in scopes] == [f"det-{r}" for r in regions]
    assert waited == [True] * len(regions)
    assert peak[0] == concurrency


def test_the_account_is_asked_for_while_the_detectors_are(fake: AwsFake) -> None:
    fake.add_detector(REGION, DETECTOR)
    listed = threading.Event()
    fake.inject(on("GET", "/detector"), Fault(before=listed.set))
    # GetCallerIdentity is answered once ListDetectors has arrived: in that order the two
    # are on the wire together (bounded so a regression fails, not hangs).
    overlapped: list[bool] = []
    fake.inject(lambda r: r.path == "/" and r.form().get("Action") == "GetCallerIdentity",
                Fault(before=lambda: overlapped.append(listed.wait(timeout=10))))

    (found,) = connector().scopes()

    assert overlapped == [True]
    assert found.key == f"123456789012/{REGION}/{DETECTOR}"


def test_with_role_arn_the_account_is_the_roles_and_no_identity_call_is_made(
    fake: AwsFake,
) -> None:
    fake.add_detector(REGION, DETECTOR, make_findings(3))
    conn = connector(role_arn="arn:aws:iam::210987654321:role/path/AlertpullReader")

    (found,) = conn.scopes()

    assert found.key == f"210987654321/{REGION}/{DETECTOR}"
    actions = [r.form().get("Action") for r in fake.requests if r.path == "/"]
    assert actions == ["AssumeRole"]


def test_scopes_default_to_the_regions_enabled_for_the_account(fake: AwsFake) -> None:
    fake.add_detector(REGION, DETECTOR)
    fake.add_detector(OTHER_REGION, "det-eu")
    fake.disable_region("ap-east-1")  # DescribeRegions does not list it, so it is never called

    scopes = connector(regions=None).scopes()

    assert [s.params["region"] for s in scopes] == [OTHER_REGION, REGION]
    assert any(r.form().get("Action") == "DescribeRegions" for r in fake.requests)
    called = {credential_scope(r).region for r in fake.requests if r.path == "/detector"}
    assert called == {OTHER_REGION, REGION}


# -- fetch ---------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint_via", ["env", "option"])
def test_fetch_returns_the_window_in_ascending_order_with_raw_verbatim(
    fake: AwsFake, monkeypatch: pytest.MonkeyPatch, endpoint_via: str
) -> None:
    findings = make_findings(130)
    findings[50]["futureField"] = {"notInBotocoresModel": True}  # verbatim, not boto3's parse
    fake.add_detector(REGION, DETECTOR, reversed(findings))  # stored order must not matter
    settings = {}
    if endpoint_via == "option":
        monkeypatch.delenv("AWS_ENDPOINT_URL_GUARDDUTY")
        settings["endpoint_url"] = fake.url

    pages = pull(connector(**settings))

    assert [len(page) for page in pages] == [50, 50, 10]
    assert flat(pages) == findings[10:120]  # [start, end): minute 10 in, minute 120 out
    assert "futureField" in flat(pages)[40] and "updatedAt" in flat(pages)[0]
    lists = sent(fake, LIST_PATH)
    window = {"greaterThanOrEqual": ms(WINDOW.start), "lessThan": ms(WINDOW.end)}
    for body in lists:  # the same pinned query on every page
        assert body["findingCriteria"] == {"criterion": {"updatedAt": window}}
        assert body["sortCriteria"] == ASC
        assert body["maxResults"] <= 50
    assert "nextToken" not in lists[0] and all(body["nextToken"] for body in lists[1:])
    gets = sent(fake, GET_PATH)
    assert [len(body["findingIds"]) for body in gets] == [50, 50, 10]
    assert all(body["sortCriteria"] == ASC for body in gets)


def test_fetch_orders_a_page_that_get_findings_returned_unsorted(fake: AwsFake) -> None:
    findings = make_findings(5)
    fake.add_detector(REGION, DETECTOR, findings)
    fake.inject(on("POST", GET_PATH), Fault(response=Response.json({"findings": findings[::-1]})))

    assert pull(connector(), Window(BASE_TIME, BASE_TIME + timedelta(hours=1))) == [findings]


def test_finding_updated_during_the_run_is_left_for_the_next_run(fake: AwsFake) -> None:
    findings = make_findings(60)
    fake.add_detector(REGION, DETECTOR, findings)
    window = Window(BASE_TIME, BASE_TIME + timedelta(hours=2))
    moved = findings[55]

    def update_moved() -> None:
        moved["updatedAt"] = format_time(window.end + timedelta(minutes=3))

    # Updated after ListFindings listed it, before GetFindings read it.
    listed = on("POST", GET_PATH)
    fake.inject(
        lambda r: listed(r) and moved["id"] in r.json()["findingIds"], Fault(before=update_moved)
    )

    got = flat(pull(connector(), window))

    assert got == findings[:55] + findings[56:]
    assert fake.pending_faults == 0


@pytest.mark.parametrize("include_archived", [False, True])
def test_archived_findings_filtered_or_flagged(fake: AwsFake, include_archived: bool) -> None:
    findings = [make_finding(i, archived=i % 3 == 0) for i in range(12)]
    fake.add_detector(REGION, DETECTOR, findings)
    conn = connector(include_archived=include_archived)

    got = flat(pull(conn, Window(BASE_TIME, BASE_TIME + timedelta(hours=1))))

    criterion = sent(fake, LIST_PATH)[0]["findingCriteria"]["criterion"]
    if include_archived:
        assert "service.archived" not in criterion
        assert got == findings
    else:
        assert criterion["service.archived"] == {"equals": ["false"]}
        assert got == [f for f in findings if not f["service"]["archived"]]
    statuses = {conn.normalize(scope(), f).status_raw for f in got}
    assert statuses == ({"archived", "active"} if include_archived else {"active"})


def test_list_findings_of_the_next_page_goes_out_while_get_findings_of_this_one_does(
    fake: AwsFake,
) -> None:
    fake.add_detector(REGION, DETECTOR, make_findings(130))
    next_list = threading.Event()
    fake.inject(lambda r: r.path == LIST_PATH and "nextToken" in r.json(),
                Fault(before=next_list.set))
    # The first GetFindings is answered only once the second ListFindings has arrived: in
    # that order the two are on the wire together (bounded so a regression fails, not hangs).
    overlapped: list[bool] = []
    fake.inject(on("POST", GET_PATH), Fault(before=lambda: overlapped.append(
        next_list.wait(timeout=30))))

    pages = pull(connector())

    assert overlapped == [True]
    assert flat(pages) == make_findings(130)[10:120]
    assert len(sent(fake, LIST_PATH)) == len(sent(fake, GET_PATH)) == 3


def test_repeated_page_token_stops_the_window_after_yielding_each_finding_once(
    fake: AwsFake,
) -> None:
    findings = make_findings(130)
    fake.add_detector(REGION, DETECTOR, findings)
    fake.repeat_token_from_page = 2  # page 2 answers with the token it was asked with
    pages = []

    with pytest.raises(WindowIncomplete, match="repeated a page token in us-east-1"):
        for page in connector().fetch(scope(), WINDOW, Memory()):
            pages.append(page)

    assert flat(pages) == findings[10:110]  # pages 1 and 2, each finding once, in order
    assert len(sent(fake, LIST_PATH)) == 2


def test_max_pages_stops_a_runaway_window_before_the_next_page_is_asked_for(
    fake: AwsFake,
) -> None:
    findings = make_findings(130)
    fake.add_detector(REGION, DETECTOR, findings)
    pages = []

    with pytest.raises(WindowIncomplete,
                       match=r"more than max_pages \(1\) pages in us-east-1 \(detector "):
        for page in connector(max_pages=1).fetch(scope(), WINDOW, Memory()):
            pages.append(page)

    assert flat(pages) == findings[10:60]  # the first page, in order
    assert len(sent(fake, LIST_PATH)) == 1


def test_throttling_is_retried_by_botocore(fake: AwsFake) -> None:
    findings = make_findings(130)
    fake.add_detector(REGION, DETECTOR, findings)
    fake.inject(on("POST", LIST_PATH), Fault(response=throttled()), times=2)

    assert flat(pull(connector())) == findings[10:120]
    assert fake.pending_faults == 0
    assert len(sent(fake, LIST_PATH)) == 3 + 2


def test_throttling_that_never_ends_fails_after_max_retries(fake: AwsFake) -> None:
    fake.add_detector(REGION, DETECTOR, make_findings(130))
    fake.inject(on("POST", LIST_PATH), Fault(response=throttled()), times=100)

    message = source_error(lambda: pull(connector(max_retries=1)))

    assert message == ("GuardDuty ListFindings in us-east-1 still failed with HTTP 429 after 1 "
                       "retry (TooManyRequestsException: Rate exceeded); the next run reads "
                       "the window again")
    assert len(sent(fake, LIST_PATH)) == 1 + 1
    assert GuardDutyConnector.options["max_retries"].default == 8  # botocore's max_attempts


# botocore does not enforce Content-Length on these bodies, and parses a 200 that is not
# JSON as a successful reply: either would read as a page without findings or next token.
SPOILED = {"cut-body": Fault(cut_body=True),
           "not-json": Fault(response=Response(200, b'{"findingIds": [',
                                               {"Content-Type": "application/json"}))}
STILL_SPOILED = {
    "cut-body": "AWS closed the connection mid-response in us-east-1, still after retries; "
                "the next run reads the window again",
    "not-json": "GuardDuty answered POST {path} in us-east-1 with a body that is not JSON, "
                "still after retries; the next run reads the window again",
}


@pytest.mark.parametrize("path", [LIST_PATH, GET_PATH])
@pytest.mark.parametrize("spoiled", SPOILED)
def test_a_spoiled_answer_is_asked_for_again(fake: AwsFake, path: str, spoiled: str) -> None:
    findings = make_findings(130)
    fake.add_detector(REGION, DETECTOR, findings)
    fake.inject(on("POST", path), SPOILED[spoiled])

    assert flat(pull(connector())) == findings[10:120]
    assert fake.pending_faults == 0
    assert len(sent(fake, path)) == 3 + 1


@pytest.mark.parametrize("path", [LIST_PATH, GET_PATH])
@pytest.mark.parametrize("spoiled", SPOILED)
def test_an_answer_always_spoiled_fails_instead_of_reading_as_an_empty_page(
    fake: AwsFake, path: str, spoiled: str
) -> None:
    fake.add_detector(REGION, DETECTOR, make_findings(130))
    fake.inject(on("POST", path), SPOILED[spoiled], times=100)

    message = source_error(lambda: pull(connector(max_retries=1)))  # don't wait minutes

    assert message == STILL_SPOILED[spoiled].format(path=path)
    assert len(sent(fake, path)) == 1 + 1


def test_fetch_from_worker_threads_shares_the_clients_made_by_scopes(fake: AwsFake) -> None:
    data = {region: make_findings(70, region=region) for region in (REGION, OTHER_REGION)}
    for region, findings in data.items():
        fake.add_detector(region, DETECTOR, findings)
    conn = connector(regions=[REGION, OTHER_REGION])
    scopes = conn.scopes()
    window = Window(BASE_TIME, BASE_TIME + timedelta(hours=2))

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda s: flat(list(conn.fetch(s, window, Memory()))), scopes))

    assert results == [data[REGION], data[OTHER_REGION]]


# -- errors --------------------------------------------------------------------------------


def test_invalid_detector_is_one_clear_line(fake: AwsFake) -> None:
    fake.add_detector(REGION, DETECTOR)

    message = source_error(lambda: pull(connector(), detector_id="0badc0de"))

    assert message == (
        "GuardDuty detector 0badc0de in us-east-1 is invalid; detector ids belong to one "
        "account and region"
    )


def test_detector_of_another_account_is_one_clear_line(fake: AwsFake) -> None:
    fake.add_detector(REGION, DETECTOR)
    fake.inject(on("POST", LIST_PATH), Fault(response=bad_request(NOT_OWNED)))

    message = source_error(lambda: pull(connector()))

    assert message == (
        f"GuardDuty detector {DETECTOR} in us-east-1 is not owned by the current account; "
        "detector ids belong to one account and region"
    )


@pytest.mark.parametrize(
    ("path", "operation"),
    [("/detector", "ListDetectors"), (LIST_PATH, "ListFindings"), (GET_PATH, "GetFindings")],
)
def test_access_denied_names_the_missing_permission(
    fake: AwsFake, path: str, operation: str
) -> None:
    fake.add_detector(REGION, DETECTOR, make_findings(20))
    denial = rest_json_error(
        403,
        "AccessDeniedException",
        f"User: arn:aws:iam::123456789012:user/alertpull is not authorized to perform: "
        f"guardduty:{operation}",
    )
    fake.inject(on(path=path), Fault(response=denial))
    conn = connector()

    if operation == "ListDetectors":  # the region fails alone, as a scope in error
        (failed,) = conn.scopes()
        message = failed.error or ""
    else:
        message = source_error(lambda: (conn.scopes(), pull(conn)))

    assert message == (
        f"access denied in us-east-1: allow guardduty:{operation} "
        "(or attach AmazonGuardDutyReadOnlyAccess) for alertpull"
    )


def test_other_client_errors_name_the_call_code_and_message(fake: AwsFake) -> None:
    fake.add_detector(REGION, DETECTOR, make_findings(5))
    broken = rest_json_error(400, "ValidationException", "something\n  unexpected")
    fake.inject(on("POST", LIST_PATH), Fault(response=broken))

    message = source_error(lambda: pull(connector()))

    assert (
        message
        == "GuardDuty ListFindings in us-east-1 failed: ValidationException: something unexpected"
    )


def test_missing_credentials_say_where_credentials_come_from(
    fake: AwsFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    message = source_error(lambda: connector().scopes())

    assert message.startswith("no AWS credentials found: ")
    assert "(env vars, ~/.aws, instance role) or set role_arn" in message
    assert fake.requests == []


@pytest.mark.parametrize(
    "error", ["EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"]
)
def test_unreachable_endpoint_is_named(error: str) -> None:
    # botocore raises these after its retries, whose backoff makes a live test take seconds.
    url = "https://guardduty.us-east-1.amazonaws.com/detector/abc/findings"
    err = getattr(botocore.exceptions, error)(endpoint_url=url, error="connection refused")

    message = describe_error(err, REGION, DETECTOR)

    assert message == (
        f"cannot reach {url} after retries ({error}); check endpoint_url / "
        "AWS_ENDPOINT_URL_*, the network and HTTPS_PROXY"
    )


# -- assume role ---------------------------------------------------------------------------


def test_role_is_assumed_with_external_id_and_signs_the_guardduty_calls(fake: AwsFake) -> None:
    fake.trusted_external_id = "ext-7f3a91"
    fake.add_detector(REGION, DETECTOR, make_findings(130))
    conn = connector(
        role_arn="arn:aws:iam::210987654321:role/AlertpullReader",
        external_id=Secret("ext-7f3a91"),
    )

    scopes = conn.scopes()
    got = flat(list(conn.fetch(scopes[0], WINDOW, Memory())))

    assert [s.key for s in scopes] == [f"210987654321/{REGION}/{DETECTOR}"]
    assert len(got) == 110
    assume = [r for r in fake.requests if r.form().get("Action") == "AssumeRole"]
    assert len(assume) == 1
    assert assume[0].form()["RoleArn"] == "arn:aws:iam::210987654321:role/AlertpullReader"
    assert assume[0].form()["ExternalId"] == "ext-7f3a91"
    assert assume[0].form()["RoleSessionName"] == "alertpull"
    assert credential_scope(assume[0]).access_key == ENV_KEY
    (assumed_key,) = fake.issued
    guardduty = [r for r in fake.requests if r.path.startswith("/detector")]
    assert {credential_scope(r).access_key for r in guardduty} == {assumed_key}
    assert {r.headers["x-amz-security-token"] for r in guardduty} == {
        fake.issued[assumed_key].session_token
    }


def test_assumed_role_credentials_are_renewed_before_they_expire(fake: AwsFake) -> None:
    fake.role_session_lifetime = timedelta(minutes=5)  # inside botocore's refresh margin
    fake.add_detector(REGION, DETECTOR, make_findings(130))
    conn = connector(role_arn="arn:aws:iam::210987654321:role/AlertpullReader")

    got = flat(list(conn.fetch(conn.scopes()[0], WINDOW, Memory())))

    assert len(got) == 110
    assume = [r for r in fake.requests if r.form().get("Action") == "AssumeRole"]
    assert "ExternalId" not in assume[0].form()
    guardduty = [r for r in fake.requests if r.path.startswith("/detector")]
    signing_keys = {credential_scope(r).access_key for r in guardduty}
    assert len(assume) > 1 and len(signing_keys) > 1
    assert signing_keys <= set(fake.issued)


def test_role_refused_names_the_trust_policy_without_the_external_id(fake: AwsFake) -> None:
    fake.trusted_external_id = "the-right-one"
    fake.add_detector(REGION, DETECTOR)
    conn = connector(role_arn="arn:aws:iam::210987654321:role/R", external_id=Secret("wrong-9c1e"))

    message = source_error(conn.scopes)

    assert message.startswith("cannot assume role_arn: access denied to sts:AssumeRole")
    assert "wrong-9c1e" not in message


# -- check ---------------------------------------------------------------------------------


def test_check_names_the_account_and_the_detector(fake: AwsFake) -> None:
    fake.add_detector(REGION, DETECTOR)

    assert connector(regions=[REGION, OTHER_REGION]).check() == (
        f"AWS account 123456789012: GuardDuty detector {DETECTOR} in us-east-1; "
        "pulling 2 configured region(s)"
    )


# -- normalize -----------------------------------------------------------------------------


def expected_entities(index: int) -> dict[str, Any]:
    """What the generator's finding number `index` (< 250) carries, by kind."""
    ip, domain = f"198.51.100.{index + 1}", f"c2-{index}.example.net"
    instance = {
        "type": "AwsEc2Instance",
        "id": f"i-{index:017x}",
        "region": REGION,
        "details": {
            "instanceType": "m5.large",
            "imageId": "ami-0abcdef1234567890",
            "instanceState": "running",
            "availabilityZone": "us-east-1a",
        },
    }
    key = {"type": "AwsIamAccessKey", "id": f"ASIAEXAMPLE{index:09d}", "region": REGION}
    user = {"name": f"svc-deploy-{index % 7}", "id": f"AIDAEXAMPLE{index:09d}"}
    sha = hashlib.sha256(f"process-{index}".encode()).hexdigest()
    return {
        "ec2_network": ([instance], [], {"ips": [ip]}),
        "s3_api": (
            [
                {
                    "type": "AwsS3Bucket",
                    "id": f"arn:aws:s3:::acme-data-{index % 11}",
                    "name": f"acme-data-{index % 11}",
                    "region": REGION,
                    "details": {"type": "Destination"},
                },
                {**key, "details": {"userType": "IAMUser"}},
            ],
            [{**user, "type": "IAMUser"}],
            {"ips": [ip], "domains": [domain]},
        ),
        "iam_access_key": (
            [{**key, "details": {"userType": "AssumedRole"}}],
            [{**user, "type": "AssumedRole"}],
            {"ips": [ip]},
        ),
        "eks_api": (
            [
                {
                    "type": "AwsEksCluster",
                    "id": f"arn:aws:eks:us-east-1:123456789012:cluster/prod-cluster-{index % 3}",
                    "name": f"prod-cluster-{index % 3}",
                    "region": REGION,
                    "details": {"vpcId": "vpc-0a1b2c3d4e5f60718", "status": "ACTIVE"},
                }
            ],
            [
                {
                    "name": f"dev-{index % 5}@example.com",
                    "id": f"uid-{index:06d}",
                    "type": "KubernetesUser",
                }
            ],
            {"ips": [ip]},
        ),
        "dns": ([instance], [], {"domains": [domain]}),
        "runtime": (
            [
                instance,
                {
                    "type": "Container",
                    "id": f"{index:012x}",
                    "name": f"worker-{index % 4}",
                    "region": REGION,
                    "details": {
                        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/worker:1.8.2",
                        "containerRuntime": "docker",
                    },
                },
            ],
            [],
            {"hashes": [sha]},
        ),
    }[KINDS[index % len(KINDS)]]


@pytest.mark.parametrize("index", range(len(KINDS)), ids=KINDS)
def test_normalize_maps_each_finding_kind(index: int, validate_records: Any) -> None:
    raw = make_finding(index)
    conn = connector()

    alert = conn.normalize(scope(), raw)

    resources, users, related = expected_entities(index)
    assert alert.native_id == raw["arn"]
    assert alert.tenant == "123456789012"
    assert alert.changed_at == alert.updated_at == parse_time(raw["updatedAt"])
    assert alert.created_at == parse_time(raw["createdAt"])
    assert alert.title == raw["title"]
    assert (alert.status, alert.status_raw) == ("new", "active")
    assert alert.link == (
        "https://us-east-1.console.aws.amazon.com/guardduty/home?region=us-east-1"
        f"#/findings?macros=current&fId={raw['id']}"
    )
    assert alert.extra["type"] == raw["type"]
    assert alert.extra["category"] == raw["type"].split(":")[0]
    assert alert.extra["description"] == raw["description"]
    assert (alert.extra["region"], alert.extra["product"]) == (REGION, "GuardDuty")
    assert alert.extra["count"] == raw["service"]["count"] == 1 + index % 5
    assert alert.extra["first_seen_at"] == parse_time(raw["service"]["eventFirstSeen"])
    assert alert.extra["last_seen_at"] == parse_time(raw["service"]["eventLastSeen"])
    assert alert.extra["resources"] == resources
    assert alert.extra["users"] == users
    assert alert.extra["related"] == related
    record = build_record("aws-test", "guardduty", alert, raw, raw_sha256(raw),
                          format_time(BASE_TIME))
    validate_records([record])


def test_normalize_collects_rds_lambda_ecs_port_probe_and_malware_entities() -> None:
    raw = make_finding(0, kind="ec2_network")
    raw["type"] = "CredentialAccess:RDS/AnomalousBehavior.SuccessfulLogin"
    raw["resource"] = {
        "resourceType": "RDSDBInstance",
        "rdsDbInstanceDetails": {
            "dbInstanceIdentifier": "orders",
            "dbInstanceArn": "arn:rds:orders",
            "engine": "aurora-postgresql",
        },
        "rdsDbUserDetails": {"user": "app_rw", "database": "orders", "application": "psql"},
        "lambdaDetails": {"functionArn": "arn:lambda:fn", "functionName": "fn"},
        "ecsClusterDetails": {"arn": "arn:ecs:cluster/c", "name": "c", "status": "ACTIVE"},
        "eksClusterDetails": {"status": "ACTIVE"},  # no identifier: left out, not invented
    }
    probe = {"ipAddressV4": "203.0.113.9"}
    raw["service"]["action"] = {
        "rdsLoginAttemptAction": {"remoteIpDetails": {"ipAddressV4": "203.0.113.7"}},
        "portProbeAction": {
            "portProbeDetails": [{"remoteIpDetails": probe}, {"remoteIpDetails": probe}]
        },
    }
    raw["service"]["malwareScanDetails"] = {
        "threats": [{"name": "EICAR", "hash": "h1", "itemPaths": [{"hash": "h2"}, {"hash": "h1"}]}]
    }
    raw["service"]["ebsVolumeScanDetails"] = {
        "scanDetections": {
            "threatDetectedByName": {"threatNames": [{"filePaths": [{"hash": "h3"}]}]}
        }
    }

    extra = connector().normalize(scope(), raw).extra

    assert [(r["type"], r["id"], r.get("name")) for r in extra["resources"]] == [
        ("AwsEcsCluster", "arn:ecs:cluster/c", "c"),
        ("AwsRdsDbInstance", "arn:rds:orders", "orders"),
        ("AwsLambdaFunction", "arn:lambda:fn", "fn"),
    ]
    assert extra["users"] == [{"name": "app_rw", "type": "DatabaseUser"}]
    assert extra["related"] == {"ips": ["203.0.113.7", "203.0.113.9"], "hashes": ["h3", "h1", "h2"]}
    assert extra["category"] == "CredentialAccess"


@pytest.mark.parametrize(
    ("number", "band"),
    [
        (0.5, "informational"),
        (1, "low"),
        (3.9, "low"),
        (4, "medium"),
        (6.9, "medium"),
        (7, "high"),
        (8.9, "high"),
        (9, "critical"),
        (10, "critical"),
        ("5.0", "medium"),
    ],
)
def test_normalize_maps_severity_bands(number: float | str, band: str) -> None:
    alert = connector().normalize(scope(), make_finding(0, severity=number))

    assert (alert.severity, alert.severity_raw) == (band, str(number))


def test_normalize_flags_archived_findings() -> None:
    alert = connector().normalize(scope(), make_finding(0, archived=True))

    assert (alert.status, alert.status_raw) == ("archived", "archived")


def test_a_finding_without_title_or_type_is_a_normal_record_titled_as_a_finding() -> None:
    raw = make_finding(0)
    del raw["title"], raw["type"]

    alert = connector().normalize(scope(), raw)

    assert alert.title == "GuardDuty finding" and alert.extra["type"] is None


@pytest.mark.parametrize("field", ["id", "arn", "accountId", "updatedAt", "severity"])
def test_normalize_rejects_a_finding_missing_a_required_field(field: str) -> None:
    raw = make_finding(0)
    del raw[field]

    with pytest.raises(MalformedAlert, match=f"has no {field}$"):
        connector().normalize(scope(), raw)


@pytest.mark.parametrize(("field", "value"), [("severity", "high"), ("updatedAt", "yesterday")])
def test_normalize_rejects_unreadable_values(field: str, value: str) -> None:
    raw = make_finding(0)
    raw[field] = value

    with pytest.raises(MalformedAlert, match=f"{field} '{value}' is not"):
        connector().normalize(scope(), raw)


# -- the fake is as strict as AWS where a client could slip ---------------------------------


def test_fake_rejects_what_aws_rejects(fake: AwsFake) -> None:
    import boto3

    fake.add_detector(REGION, DETECTOR, make_findings(60))
    client = boto3.session.Session().client("guardduty", region_name=REGION)
    criterion = {"updatedAt": {"GreaterThanOrEqual": ms(BASE_TIME)}}
    page = client.list_findings(DetectorId=DETECTOR, FindingCriteria={"Criterion": criterion})

    def error_of(**kwargs: Any) -> str:
        with pytest.raises(client.exceptions.BadRequestException) as caught:
            client.list_findings(DetectorId=DETECTOR, **kwargs)
        return caught.value.response["Error"]["Message"]

    later = {"updatedAt": {"GreaterThanOrEqual": ms(BASE_TIME) + 1}}
    assert error_of(FindingCriteria={"Criterion": later}, NextToken=page["NextToken"]) == (
        "Input Query has changed"
    )
    assert "out of range for an Integer" in error_of(
        FindingCriteria={"Criterion": {"updatedAt": {"Gte": ms(BASE_TIME)}}}
    )
    assert "maxResults 51" in error_of(MaxResults=51)


def test_importing_the_connector_does_not_import_boto3() -> None:
    code = (
        "import sys, alertpull.connectors.guardduty; "
        "sys.exit(any(m.startswith(('boto3', 'botocore')) for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
