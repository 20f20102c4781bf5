"""The SCC connector through google-auth's AuthorizedSession and google-api-core's pager and
retry, against a local fake of the Google APIs; then the installed CLI as cron runs it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alertpull.connector import Memory, Scope, Window
from alertpull.connectors.scc import (
    SccConnector,
    console_link,
    endpoint_for,
    humanize_category,
    status_of,
)
from alertpull.errors import ConfigError, MalformedAlert, SourceError, WindowIncomplete
from alertpull.record import build_record, raw_sha256
from alertpull.timeutil import format_time, parse_time
from tests.fakes.google_sa import google_api_error
from tests.fakes.http_fake import Fault, Response, on
from tests.fakes.scc import SccFake, invalid_argument, quota_exceeded, wire
from tests.fakes.scc_data import BASE_TIME, FOLDER, KINDS, ORG, make_result, make_results
from tests.scc_env import PARENT, SccWorld, scc_world  # noqa: F401  (fixture `scc`)
from tests.world import hours_ago

LIST_PATH = f"/v2/{PARENT}/sources/-/findings"
# 2060 findings one minute apart; this window holds numbers 10..2059: pages 1000, 1000, 50.
WINDOW = Window(BASE_TIME + timedelta(minutes=10), BASE_TIME + timedelta(minutes=2060))
SMALL_WINDOW = Window(BASE_TIME, BASE_TIME + timedelta(hours=2))
FAST = 60_000  # reads/min for in-process tests: pacing itself has its own test


def scope(location: str | None = None) -> Scope:
    path = f"{PARENT}/sources/-" + (f"/locations/{location}" if location else "")
    key = f"{PARENT}/locations/{location}" if location else PARENT
    return Scope(key=key, params={"parent": PARENT, "location": location, "path": path},
                 tenant=PARENT)


def pull(conn: SccConnector, window: Window = SMALL_WINDOW,
         location: str | None = None) -> list[list[Any]]:
    return list(conn.fetch(scope(location), window, Memory()))


def flat(pages: list[list[Any]]) -> list[Any]:
    return [result for page in pages for result in page]


def list_queries(fake: SccFake, path: str = LIST_PATH) -> list[dict[str, str]]:
    return [{k: v[-1] for k, v in r.query.items()} for r in fake.requests if r.path == path]


def source_error(call: Callable[[], Any]) -> str:
    """The message of the SourceError `call` raises, checked to be one secret-free line."""
    with pytest.raises(SourceError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message and "PRIVATE KEY" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    return message


def connector(world: SccWorld, **settings: Any) -> SccConnector:
    return world.connector(**{"reads_per_minute": FAST, **settings})


# -- scopes --------------------------------------------------------------------------------


def test_one_scope_per_location_over_all_sources(scc: SccWorld) -> None:
    assert connector(scc).scopes() == [scope()]
    assert connector(scc, locations=["eu", "us"]).scopes() == [scope("eu"), scope("us")]
    [folder] = connector(scc, parent="folders/456/sources/-").scopes()
    assert folder.params["path"] == "folders/456/sources/-"


@pytest.mark.parametrize("parent", ["org/123", "organizations/", "projects/a/b", "123"])
def test_a_parent_that_is_not_a_crm_node_is_refused(scc: SccWorld, parent: str) -> None:
    with pytest.raises(ConfigError, match=f"parent '{parent}' is not organizations/ID"):
        connector(scc, parent=parent).scopes()


def test_each_location_uses_its_regional_endpoint_unless_overridden() -> None:
    assert endpoint_for(None, None) is None  # the client's default, global endpoint
    assert endpoint_for("global", None) is None
    assert endpoint_for("eu", None) == "securitycenter.eu.rep.googleapis.com"
    assert endpoint_for("eu", "http://127.0.0.1:9") == "http://127.0.0.1:9"


# -- fetch ---------------------------------------------------------------------------------


def test_fetch_pages_through_the_sdk_pager_with_one_pinned_query(scc: SccWorld) -> None:
    results = make_results(2060)
    scc.fake.results = results[::-1]  # stored order must not matter

    pages = pull(connector(scc), WINDOW)

    assert [len(page) for page in pages] == [1000, 1000, 50]
    assert flat(pages) == wire(results[10:2060])  # [start, end): minute 10 in, 2060 out
    queries = list_queries(scc.fake)
    assert len(queries) == 3
    for query in queries:  # the same window on every page: tokens are bound to the query
        assert query["filter"] == (
            'event_time >= "2026-03-01T00:10:00.000Z" AND event_time < "2026-03-02T10:20:00.000Z"'
        )
        assert (query["orderBy"], query["pageSize"]) == ("event_time", "1000")
    assert "pageToken" not in queries[0] and all(q["pageToken"] for q in queries[1:])


def test_fetch_of_a_location_lists_that_location_only(scc: SccWorld) -> None:
    scc.fake.results = make_results(4, location="eu") + make_results(3, first=4)

    got = flat(pull(connector(scc, locations=["eu"]), location="eu"))

    assert got == wire(make_results(4, location="eu"))
    assert {r.path for r in scc.fake.requests if r.method == "GET"} == {
        f"/v2/{PARENT}/sources/-/locations/eu/findings"
    }


def test_raw_is_stable_across_pulls_and_changes_with_state_mute_or_severity(
    scc: SccWorld,
) -> None:
    scc.fake.results = make_results(3)
    conn = connector(scc)
    first = flat(pull(conn))
    assert [raw_sha256(r) for r in flat(pull(conn))] == [raw_sha256(r) for r in first]

    finding = scc.fake.results[1]["finding"]
    shas = {raw_sha256(first[1])}
    for field, value in (("mute", "MUTED"), ("state", "INACTIVE"), ("severity", "LOW")):
        finding[field] = value
        shas.add(raw_sha256(flat(pull(conn))[1]))
    assert len(shas) == 4
    assert [raw_sha256(r) for r in flat(pull(conn))][::2] == [raw_sha256(r) for r in first][::2]


def test_quota_errors_are_retried_with_backoff(scc: SccWorld) -> None:
    scc.fake.results = make_results(30)
    scc.fake.page_limit = 10
    scc.fake.inject(on("GET", LIST_PATH), Fault(response=quota_exceeded()), times=2)

    assert flat(pull(connector(scc))) == wire(scc.fake.results)
    assert scc.fake.pending_faults == 0
    assert len(list_queries(scc.fake)) == 3 + 2


def test_server_errors_and_bodies_cut_short_are_retried(scc: SccWorld) -> None:
    scc.fake.results = make_results(30)
    scc.fake.page_limit = 10
    unavailable = google_api_error(503, "The service is currently unavailable.")
    scc.fake.inject(on("GET", LIST_PATH), Fault(response=unavailable))
    scc.fake.inject(on("GET", LIST_PATH), Fault(cut_body=True))

    assert flat(pull(connector(scc))) == wire(scc.fake.results)
    assert scc.fake.pending_faults == 0


def test_a_repeated_page_token_stops_the_window_after_the_pages_read(scc: SccWorld) -> None:
    scc.fake.results = make_results(50)
    scc.fake.page_limit = 10
    scc.fake.repeat_token_from_page = 3  # page 3 answers with the token it was asked with
    pages = []

    with pytest.raises(WindowIncomplete, match=f"repeated a page token for {PARENT}/sources/-"):
        for page in connector(scc).fetch(scope(), SMALL_WINDOW, Memory()):
            pages.append(page)

    assert flat(pages) == wire(scc.fake.results[:30])
    assert len(list_queries(scc.fake)) == 3


def test_a_malformed_finding_is_left_for_normalize_to_reject_by_name(scc: SccWorld) -> None:
    scc.fake.results = make_results(5)
    scc.fake.verbatim = True
    scc.fake.results[2]["finding"]["indicator"] = ["203.0.113.9"]  # a list, not an object
    conn = connector(scc)

    got = flat(pull(conn))

    assert len(got) == 5
    with pytest.raises(AttributeError):
        conn.normalize(scope(), got[2])
    assert conn.describe(got[2]) == scc.fake.results[2]["finding"]["name"]
    assert [conn.normalize(scope(), r).title for r in got[3:]] == [
        "OS vulnerability", "Admin service account"]


STALL = 5.0  # seconds


def test_a_stalled_call_times_out_and_is_retried(scc: SccWorld) -> None:
    scc.fake.results = make_results(3)
    scc.fake.inject(on("GET", LIST_PATH), Fault(delay=STALL))  # far longer than the timeout

    started = time.monotonic()
    assert flat(pull(connector(scc, timeout_seconds=0.5))) == wire(scc.fake.results)

    assert time.monotonic() - started < STALL  # abandoned at the timeout, not waited out
    assert len(list_queries(scc.fake)) == 2


def test_calls_go_through_the_proxy_from_the_environment(
    scc: SccWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    scc.fake.results = make_results(2)
    # The fake answers as the proxy; the endpoint's name is never resolved.
    monkeypatch.setenv("HTTP_PROXY", scc.fake.url)
    monkeypatch.setenv("NO_PROXY", "")

    got = flat(pull(connector(scc, api_endpoint="http://scc.proxy-test.invalid")))

    assert len(got) == 2
    [listed] = [r for r in scc.fake.requests if r.path == LIST_PATH]
    assert listed.headers["host"] == "scc.proxy-test.invalid"


# -- credentials ---------------------------------------------------------------------------


def test_a_service_account_key_signs_its_own_jwt_for_the_api(scc: SccWorld) -> None:
    scc.fake.results = make_results(2)
    assert len(flat(pull(connector(scc)))) == 2
    [listed] = [r for r in scc.fake.requests if r.path == LIST_PATH]
    claims = scc.fake.self_signed_claims(listed.headers["authorization"].split()[1])
    assert claims is not None and claims["iss"] == scc.email  # checked against the key
    assert not any(r.path == "/token" for r in scc.fake.requests)


def test_application_default_credentials_come_from_the_environment(
    scc: SccWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    scc.fake.results = make_results(2)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(scc.key_file))

    assert len(flat(pull(connector(scc, credentials_file=None)))) == 2


def test_impersonation_runs_the_jwt_bearer_grant_then_generate_access_token(
    scc: SccWorld,
) -> None:
    target = "scc-reader@security-tools.iam.gserviceaccount.com"
    scc.fake.token_creators[target] = {scc.email}
    scc.fake.results = make_results(2)
    conn = connector(scc, impersonate_service_account=target, iam_endpoint=scc.fake.url)

    assert len(flat(pull(conn))) == 2

    grant, impersonate, listed = scc.fake.requests
    assert (grant.path, grant.form()["grant_type"]) == (
        "/token", "urn:ietf:params:oauth:grant-type:jwt-bearer")
    assert impersonate.path == f"/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
    grant = scc.fake.token_endpoints[scc.email].grant_for(impersonate)
    assert grant is not None and grant.client_email == scc.email
    token = listed.headers["authorization"].split()[1]
    assert scc.fake.impersonation_tokens[token] == target

    scc.fake.token_creators.clear()
    message = source_error(lambda: pull(connector(
        scc, impersonate_service_account=target, iam_endpoint=scc.fake.url)))
    assert message.startswith(f"cannot impersonate {target}: ")
    assert message.endswith("grant the caller roles/iam.serviceAccountTokenCreator on it and "
                            "enable the IAM Credentials API")


def test_quota_project_is_sent_and_keys_the_pace_of_reads(scc: SccWorld) -> None:
    scc.fake.results = make_results(40)
    scc.fake.page_limit = 10
    conn = scc.connector(quota_project="pacing-test", reads_per_minute=300)  # one per 0.2 s

    started = time.monotonic()
    assert len(flat(pull(conn))) == 40
    elapsed = time.monotonic() - started

    assert elapsed >= 3 * 0.2 - 0.05  # four calls, evenly spaced
    assert {r.headers.get("x-goog-user-project") for r in scc.fake.requests} == {"pacing-test"}


# -- errors --------------------------------------------------------------------------------


def test_permission_denied_names_the_role_to_grant(scc: SccWorld) -> None:
    scc.fake.denied.add(scc.email)

    message = source_error(lambda: pull(connector(scc)))

    assert message == (
        f"permission denied listing findings of {PARENT}/sources/- as {scc.email} "
        f"(403 PERMISSION_DENIED): grant roles/securitycenter.findingsViewer on {PARENT}"
    )


def test_a_disabled_api_says_to_enable_it(scc: SccWorld) -> None:
    disabled = google_api_error(403, "Security Command Center API has not been used in "
                                     "project 12 before or it is disabled.")
    scc.fake.inject(on("GET", LIST_PATH), Fault(response=disabled))

    assert source_error(lambda: pull(connector(scc))).startswith(
        "the Security Command Center API is disabled in the calling project: enable "
        "securitycenter.googleapis.com there")


def test_a_key_google_does_not_know_is_unauthenticated(scc: SccWorld) -> None:
    scc.fake.token_endpoints.clear()  # e.g. the key was deleted

    message = source_error(lambda: pull(connector(scc)))

    assert message.startswith(f"Google rejected the credentials of {scc.email} "
                              "(401 UNAUTHENTICATED)")


def test_a_rejected_request_names_the_status_and_message(scc: SccWorld) -> None:
    scc.fake.inject(on("GET", LIST_PATH), Fault(response=invalid_argument("Invalid filter.")))

    assert source_error(lambda: pull(connector(scc))) == (
        f"SCC list_findings of {PARENT}/sources/- failed: 400 INVALID_ARGUMENT: "
        "Invalid filter.; check parent and locations")


GARBLED = Response(200, b"<html>proxy error</html>", {"Content-Type": "text/html"})


def test_a_page_that_is_not_a_list_findings_response_is_asked_for_again(scc: SccWorld) -> None:
    scc.fake.results = make_results(30)
    scc.fake.page_limit = 10
    scc.fake.inject(on("GET", LIST_PATH), Fault(response=GARBLED))

    assert flat(pull(connector(scc))) == wire(scc.fake.results)
    assert scc.fake.pending_faults == 0
    assert len(list_queries(scc.fake)) == 3 + 1


def test_a_page_that_is_never_a_list_findings_response_fails_the_scope(scc: SccWorld) -> None:
    scc.fake.inject(on("GET", LIST_PATH), Fault(response=GARBLED), times=1000)

    assert source_error(lambda: pull(connector(scc, retry_deadline_seconds=2))) == (
        f"SCC answered {PARENT}/sources/- with malformed JSON at character 0 instead of a "
        "ListFindingsResponse (still failing after retries)")


def test_an_unusable_key_file_is_named(scc: SccWorld, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    not_a_key = tmp_path / "wif.json"
    not_a_key.write_text('{"type": "external_account", "audience": "//iam.googleapis.com/x"}')

    def message(path: Path) -> str:
        return source_error(lambda: pull(connector(scc, credentials_file=str(path))))

    assert message(missing) == (
        f"credentials_file {missing} is not a usable service-account key: "
        "No such file or directory")
    assert message(not_a_key).startswith(
        f"credentials_file {not_a_key} is not a usable service-account key: ")
    assert scc.fake.requests == []


def test_an_unreachable_endpoint_is_named_after_retries(scc: SccWorld) -> None:
    unreachable = connector(scc, api_endpoint="http://127.0.0.1:9", retry_deadline_seconds=2)

    message = source_error(lambda: pull(unreachable))

    assert message == (
        "cannot reach the SCC API at http://127.0.0.1:9 (ConnectionError): check api_endpoint, "
        "the network and HTTPS_PROXY (still failing after retries)")


def test_check_names_the_parent_and_the_principal(scc: SccWorld) -> None:
    scc.fake.results = make_results(7)

    assert connector(scc, locations=["global"]).check() == (
        f"{PARENT}/sources/-/locations/global: 7 finding(s) readable as {scc.email}; "
        "pulling 1 scope(s)")
    assert list_queries(scc.fake, f"/v2/{PARENT}/sources/-/locations/global/findings") == [
        {"pageSize": "1"}]


# -- normalize -----------------------------------------------------------------------------


def expected(kind: str, index: int) -> dict[str, Any]:
    """What each generated shape maps to, besides the fields every finding has."""
    project_number, project_id = {0: ("1089695574439", "payments-prod"),
                                  1: ("2207351118024", "data-lake"),
                                  2: ("3316080452961", "ci-runners")}[index % 3]
    principal = f"deployer-{index % 5}@{project_id}.iam.gserviceaccount.com"
    return {
        "iam_grant": {
            "title": "Persistence: IAM Anomalous Grant", "type": "THREAT",
            "product": "Event Threat Detection", "tenant": f"projects/{project_number}",
            "mitre": {"tactics": ["PERSISTENCE", "PRIVILEGE_ESCALATION"],
                      "techniques": ["ACCOUNT_MANIPULATION", "VALID_ACCOUNTS"]},
            "users": [{"type": "ServiceAccount", "id": f"serviceAccount:{principal}",
                       "name": principal, "user_agent": "google-cloud-sdk gcloud/512.0.0"}],
            "related": {"ips": [f"198.51.100.{index + 1}"], "emails": [principal]},
            "resource_type": "google.cloud.resourcemanager.Project",
        },
        "cryptomining": {
            "title": "Execution: Cryptocurrency Mining Combined Detection", "type": "THREAT",
            "product": "Event Threat Detection", "tenant": f"projects/{project_number}",
            "mitre": {"tactics": ["IMPACT"], "techniques": ["RESOURCE_HIJACKING"]},
            "users": [],
            "related": {"ips": [f"203.0.113.{index + 1}"], "domains": [f"pool-{index}.example.net"],
                        "hashes": [_sha(index)]},
            "resource_type": "google.compute.Instance",
        },
        "public_bucket": {
            "title": "Public bucket ACL", "type": "MISCONFIGURATION",
            "product": "Security Health Analytics", "tenant": f"projects/{project_number}",
            "mitre": {}, "users": [],
            "related": {"urls": [f"https://console.cloud.google.com/storage/browser/"
                                 f"{project_id}-exports-{index}"]},
            "resource_type": "google.cloud.storage.Bucket",
        },
        "os_vulnerability": {
            "title": "OS vulnerability", "type": "VULNERABILITY", "product": "VM Manager",
            "tenant": f"projects/{project_number}", "mitre": {}, "users": [],
            "related": {"hashes": [_sha(index)]},
            "resource_type": "google.compute.Instance",
        },
        "admin_service_account": {
            "title": "Admin service account", "type": "MISCONFIGURATION",
            "product": "Security Health Analytics", "tenant": f"folders/{FOLDER}",
            "mitre": {}, "users": [], "related": {},
            "resource_type": "google.cloud.resourcemanager.Folder",
        },
    }[kind]


def _sha(index: int) -> str:
    return hashlib.sha256(f"binary/{index}".encode()).hexdigest()


@pytest.mark.parametrize("index", range(len(KINDS)), ids=KINDS)
def test_normalize_maps_each_finding_shape(scc: SccWorld, index: int,
                                           validate_records: Any) -> None:
    [raw] = wire([make_result(index)])
    finding, resource = raw["finding"], raw["resource"]
    want = expected(KINDS[index], index)

    alert = connector(scc).normalize(scope(), raw)

    assert alert.native_id == finding["canonicalName"] != finding["name"]
    assert alert.tenant == want["tenant"]
    assert alert.changed_at == alert.updated_at == parse_time(finding["eventTime"])
    assert alert.created_at == parse_time(finding["createTime"])
    assert alert.title == want["title"]
    assert (alert.status, alert.status_raw) == ("new", "ACTIVE/UNMUTED")
    assert alert.severity_raw == finding["severity"]
    assert alert.link == (
        "https://console.cloud.google.com/security/command-center/findingsv2;name="
        + finding["name"].replace("/", "%2F") + f"?organizationId={ORG}")
    extra = alert.extra
    assert (extra["type"], extra["category"]) == (want["type"], finding["category"])
    assert extra["product"] == want["product"]
    assert extra["description"] == finding["description"]
    assert extra["region"] == resource["location"]
    assert extra["mitre"] == want["mitre"]
    assert extra["users"] == want["users"]
    assert extra["related"] == want["related"]
    [entity] = extra["resources"]
    assert (entity["type"], entity["id"], entity["name"]) == (
        want["resource_type"], resource["name"], resource["displayName"])
    record = build_record("gcp", "scc", alert, raw, raw_sha256(raw), format_time(BASE_TIME))
    validate_records([record])


@pytest.mark.parametrize(("severity", "band"), [
    ("CRITICAL", "critical"), ("HIGH", "high"), ("MEDIUM", "medium"), ("LOW", "low"),
    (None, "unknown"),  # SEVERITY_UNSPECIFIED is left out of the JSON as the default
])
def test_normalize_maps_severity(scc: SccWorld, severity: str | None, band: str) -> None:
    raw = make_result(0)
    if severity is None:
        del raw["finding"]["severity"]
    else:
        raw["finding"]["severity"] = severity

    alert = connector(scc).normalize(scope(), raw)

    assert (alert.severity, alert.severity_raw) == (band, severity or "SEVERITY_UNSPECIFIED")


@pytest.mark.parametrize(("state", "mute", "status", "status_raw"), [
    ("ACTIVE", "UNMUTED", "new", "ACTIVE/UNMUTED"),
    ("ACTIVE", "MUTED", "suppressed", "ACTIVE/MUTED"),
    ("ACTIVE", None, "new", "ACTIVE"),
    ("INACTIVE", "UNDEFINED", "resolved", "INACTIVE/UNDEFINED"),
    ("INACTIVE", "MUTED", "resolved", "INACTIVE/MUTED"),
    (None, None, "unknown", "STATE_UNSPECIFIED"),
])
def test_normalize_maps_state_and_mute(scc: SccWorld, state: str | None, mute: str | None,
                                       status: str, status_raw: str) -> None:
    raw = make_result(0)
    for field, value in (("state", state), ("mute", mute)):
        if value is None:
            del raw["finding"][field]
        else:
            raw["finding"][field] = value

    alert = connector(scc).normalize(scope(), raw)

    assert (alert.status, alert.status_raw) == (status, status_raw)
    resolved = alert.extra["resolved_at"]
    assert resolved == (alert.changed_at if state == "INACTIVE" else None)
    assert status_of(state or "STATE_UNSPECIFIED", mute) == status


@pytest.mark.parametrize(("category", "title"), [
    ("PUBLIC_BUCKET_ACL", "Public bucket ACL"),
    ("MFA_NOT_ENFORCED", "MFA not enforced"),
    ("OPEN_FIREWALL", "Open firewall"),
    ("SQL_NO_ROOT_PASSWORD", "SQL no root password"),
    ("Malware: Bad Domain", "Malware: Bad Domain"),
])
def test_titles_humanize_enum_like_categories_only(category: str, title: str) -> None:
    assert humanize_category(category) == title


def test_identity_falls_back_to_the_name_and_the_scope_parent(scc: SccWorld) -> None:
    raw = make_result(0)
    del raw["finding"]["canonicalName"]
    conn = connector(scc)

    alert = conn.normalize(scope(), raw)
    assert (alert.native_id, alert.tenant) == (raw["finding"]["name"], PARENT)

    raw["finding"]["name"] = "sources/1/findings/2"  # not under a CRM node: the scope's
    assert conn.normalize(scope(), raw).tenant == PARENT


def test_links_open_the_console_in_the_finding_s_organization_or_project() -> None:
    assert console_link("projects/p-1/sources/1/findings/f", {}) == (
        "https://console.cloud.google.com/security/command-center/findingsv2;"
        "name=projects%2Fp-1%2Fsources%2F1%2Ffindings%2Ff?project=p-1")
    in_org = {"gcpMetadata": {"organization": "organizations/42"}}
    assert console_link("folders/7/sources/1/findings/f", in_org).endswith("?organizationId=42")
    assert console_link("folders/7/sources/1/findings/f", {}) is None  # never a guessed link


def test_a_finding_without_a_category_is_a_normal_record(scc: SccWorld) -> None:
    raw = make_result(0)
    del raw["finding"]["category"]

    alert = connector(scc).normalize(scope(), raw)

    assert alert.title == "Security Command Center finding" and alert.severity != "unknown"


@pytest.mark.parametrize("field", ["name", "eventTime"])
def test_normalize_rejects_a_finding_missing_what_the_mapping_needs(scc: SccWorld,
                                                                      field: str) -> None:
    raw = make_result(0)
    del raw["finding"][field]

    with pytest.raises(MalformedAlert, match=rf"^SCC finding has no {field}$"):
        connector(scc).normalize(scope(), raw)


def test_normalize_rejects_an_unreadable_event_time(scc: SccWorld) -> None:
    raw = make_result(0)
    raw["finding"]["eventTime"] = "yesterday"

    with pytest.raises(MalformedAlert, match="eventTime 'yesterday' is not a time"):
        connector(scc).normalize(scope(), raw)


@pytest.mark.parametrize("raw", [{}, {"finding": "x"}, [], None])
def test_normalize_rejects_a_result_without_a_finding(scc: SccWorld, raw: Any) -> None:
    conn = connector(scc)
    with pytest.raises(MalformedAlert, match="no finding object"):
        conn.normalize(scope(), raw)
    assert conn.describe(raw) == "<unnamed SCC finding>"


def test_importing_the_connector_does_not_import_google() -> None:
    code = (
        "import sys, alertpull.connectors.scc; "
        "sys.exit(any(m == 'google' or m.startswith(('google.', 'grpc', 'proto')) "
        "for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- the installed CLI, as cron runs it ----------------------------------------------------


def native_ids(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["native_id"] for r in records)


def sent_windows(scc: SccWorld) -> list[str]:
    return [q["filter"] for q in list_queries(scc.fake)]


def test_cli_first_run_rerun_update_and_mute(scc: SccWorld) -> None:
    added = scc.add(40, first=0, base_time=hours_ago(6), step=timedelta(minutes=5))
    first = scc.fetch()
    assert first.returncode == 0, first.stderr
    records = scc.records()
    assert len(records) == 40 and "40 written" in first.stderr
    assert set(native_ids(records)) == {r["finding"]["canonicalName"] for r in added}
    [path] = list(scc.alerts.rglob("*.jsonl"))
    assert path.relative_to(scc.alerts).parts[0] == "source=gcp"

    again = scc.fetch()
    assert again.returncode == 0 and "0 written, 40 duplicate" in again.stderr
    assert len(scc.records()) == 40

    resolved = added[7]["finding"]
    resolved.update(state="INACTIVE", eventTime=format_time(hours_ago(0.2)))
    muted = added[9]["finding"]  # muting moves mute_update_time, not event_time
    muted.update(mute="MUTED", muteUpdateTime=format_time(hours_ago(0.1)))
    assert scc.fetch().returncode == 0
    records = scc.records()
    assert len(records) == 42
    for finding, status in ((resolved, "resolved"), (muted, "suppressed")):
        versions = [r for r in records if r["native_id"] == finding["canonicalName"]]
        assert len(versions) == 2 and len({r["id"] for r in versions}) == 1
        assert [r["status"] for r in sorted(versions, key=lambda r: r["pulled_at"])] == [
            "new", status]


def test_cli_late_finding_inside_the_overlap_is_picked_up(scc: SccWorld) -> None:
    scc.add(5, first=0, base_time=hours_ago(2))
    assert scc.fetch().returncode == 0
    [scope_cursor] = json.loads(scc.cli("cursor", "show", "--source", "gcp").stdout).values()
    watermark = parse_time(scope_cursor["watermark"])
    # Recorded by SCC now, but its event happened 10 hours before the last run's end.
    scc.add(1, first=5, base_time=watermark - timedelta(hours=10), create_time=hours_ago(0))

    second = scc.fetch()

    assert second.returncode == 0 and "1 written, 5 duplicate" in second.stderr
    assert len(native_ids(scc.records())) == 6
    assert sent_windows(scc)[-1].startswith(
        f'event_time >= "{format_time(watermark - timedelta(hours=24))}" AND ')


def test_cli_mute_outside_the_overlap_needs_a_refetch_sweep(scc: SccWorld) -> None:
    old = scc.add(3, first=0, base_time=hours_ago(72))
    scc.add(3, first=3, base_time=hours_ago(3))
    assert "6 written" in scc.fetch("--since", "7d").stderr
    old[1]["finding"].update(mute="MUTED", muteUpdateTime=format_time(hours_ago(0.1)))

    # event_time did not move and lies before the 24h overlap: neither a run nor a
    # backfill of ranges already covered reads it again.
    assert "0 written" in scc.fetch().stderr
    assert "0 written" in scc.fetch("--since", "7d").stderr
    sweep = scc.fetch("--since", "7d", "--refetch")

    assert sweep.returncode == 0 and "6 written" in sweep.stderr  # every finding again
    versions = [r for r in scc.records() if r["native_id"] == old[1]["finding"]["canonicalName"]]
    latest = max(versions, key=lambda r: (r["updated_at"], r["pulled_at"]))
    assert len(versions) == 2 and latest["status"] == "suppressed"


def test_cli_permission_error_is_one_line_naming_the_role_and_no_secret(
    scc: SccWorld,
) -> None:
    scc.add(3, first=0, base_time=hours_ago(1))
    scc.fake.denied.add(scc.email)

    result = scc.cli("-v", "fetch", "--all")

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "grant roles/securitycenter.findingsViewer on organizations/386193000800" in errors[0]
    key = json.loads(scc.key_file.read_text())
    secrets = [line for line in key["private_key"].splitlines() if "PRIVATE KEY" not in line]
    written = "".join(p.read_text() for p in scc.root.rglob("*")
                      if p.is_file() and p != scc.key_file)
    for secret in [*secrets, key["private_key_id"]]:
        assert secret not in result.stdout + result.stderr + written
    assert scc.records() == []
    status = json.loads(scc.cli("status", "--json").stdout)
    assert status[0]["state"] == "failing" and status[0]["watermark"] is None


def test_cli_quota_error_then_success_and_malformed_finding_degraded(scc: SccWorld) -> None:
    added = scc.add(12, first=0, base_time=hours_ago(3))
    scc.fake.verbatim = True
    bad = added[5]["finding"]
    bad["indicator"] = ["203.0.113.9"]  # a list where the mapping reads an object
    scc.fake.inject(on("GET", LIST_PATH), Fault(response=quota_exceeded()))

    result = scc.fetch()

    assert result.returncode == 0, result.stderr
    assert scc.fake.pending_faults == 0
    assert f"wrote alert {bad['name']} degraded: AttributeError: " in result.stderr
    records = scc.records()
    [degraded] = [r for r in records if "normalize_error" in r]
    assert len(records) == 12 and degraded["native_id"] == bad["canonicalName"]
    assert (degraded["severity"], degraded["status"]) == ("unknown", "unknown")
    assert degraded["title"] == bad["category"] and degraded["tenant"] == PARENT


def test_cli_persistent_503_fails_the_source_within_its_retry_deadline(scc: SccWorld) -> None:
    scc.add(5, first=0, base_time=hours_ago(2))
    assert scc.fetch().returncode == 0
    cursor = scc.cli("cursor", "show", "--source", "gcp").stdout
    scc.add(5, first=5, base_time=hours_ago(1))
    unavailable = google_api_error(503, "The service is currently unavailable.")
    scc.fake.inject(on("GET", LIST_PATH), Fault(response=unavailable), times=1000)
    scc.write_config(retry_deadline_seconds=2)

    failed = scc.fetch()

    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    [line] = [line for line in failed.stderr.splitlines() if "ERROR" in line]
    assert line.endswith(
        f"SCC list_findings of {PARENT}/sources/- failed: 503 UNAVAILABLE: The service is "
        "currently unavailable. (still failing after retries)")
    assert scc.cli("cursor", "show", "--source", "gcp").stdout == cursor
    assert len(scc.records()) == 5


def test_cli_refuses_a_retry_deadline_that_is_not_positive(scc: SccWorld) -> None:
    scc.write_config(retry_deadline_seconds=0)

    result = scc.fetch()

    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("sources.gcp.retry_deadline_seconds: expected a positive number of seconds, e.g. 30 "
            "or 0.5, got 0") in result.stderr
    assert scc.fake.requests == []


def test_cli_since_is_clamped_to_the_13_month_retention(scc: SccWorld) -> None:
    result = scc.fetch("--since", "500d")

    assert result.returncode == 0, result.stderr
    assert "older than this source's 395d retention" in result.stderr
    start = sent_windows(scc)[0].split('"')[1]
    assert abs(parse_time(start) - hours_ago(395 * 24)) < timedelta(minutes=5)


def test_cli_check_reports_the_parent_and_principal(scc: SccWorld) -> None:
    scc.add(3, first=0, base_time=hours_ago(1))

    result = scc.cli("check")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"gcp: ok ({PARENT}/sources/-: 3 finding(s) readable as {scc.email}; "
        "pulling 1 scope(s))")


def test_fake_rejects_what_scc_rejects(scc: SccWorld) -> None:
    from google.api_core.exceptions import BadRequest
    from google.cloud import securitycenter_v2
    from google.oauth2 import service_account

    scc.fake.results = make_results(30)
    credentials = service_account.Credentials.from_service_account_file(
        str(scc.key_file), scopes=["https://www.googleapis.com/auth/cloud-platform"])
    client = securitycenter_v2.SecurityCenterClient(
        credentials=credentials, transport="rest", client_options={"api_endpoint": scc.fake.url})

    def error_of(**request: Any) -> str:
        with pytest.raises(BadRequest) as caught:
            list(client.list_findings(request={"parent": f"{PARENT}/sources/-", **request}))
        return str(caught.value)

    assert "page_size must be in [1, 1000]" in error_of(page_size=1001)
    assert "Invalid filter" in error_of(filter='create_time > "2026-01-01T00:00:00Z"')
    assert "Invalid order_by" in error_of(order_by="create_time")
    pager = client.list_findings(request=securitycenter_v2.ListFindingsRequest(
        parent=f"{PARENT}/sources/-", page_size=10))
    assert "Invalid page token" in error_of(page_size=10, page_token=pager.next_page_token,
                                            filter='event_time > 0')
