"""The Entra ID connector through the real MSAL and requests code paths, against a TLS fake of
Microsoft's sign-in service and Graph on 127.0.0.1; then the installed CLI as cron runs it."""

# ruff: noqa: F811  (pytest fixtures imported from tests.graph_env are test parameters)

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from alertpull.connector import Memory, Scope, Secret, Window
from alertpull.connectors.entra_id import (
    ALERTS,
    RISK_DETECTIONS,
    EntraIdConnector,
    additional_info,
    risk_event_title,
)
from alertpull.connectors.msgraph import throttle_wait
from alertpull.errors import ConfigError, MalformedAlert, SourceError, WindowIncomplete
from alertpull.record import build_record, raw_sha256
from alertpull.timeutil import format_time, parse_time, utcnow
from tests.conftest import check_records
from tests.fakes.graph import (
    ALERTS_PATH,
    JWT_BEARER,
    RISK_PATH,
    GraphFake,
    graph_error_response,
    throttled,
)
from tests.fakes.graph_data import (
    ALERT_KINDS,
    BASE_TIME,
    TENANT_ID,
    graph_time,
    make_alert,
    make_alerts,
    make_risk_detection,
    make_risk_detections,
)
from tests.fakes.http_fake import Fault, Response, on
from tests.fakes.tls import AppCertificate
from tests.graph_env import (  # noqa: F401  (the fixtures are used as test parameters)
    CLIENT_ID,
    SECRET,
    GraphWorld,
    app_certificate,
    connector_settings,
    graph_fake,
    graph_world,
    throwaway_ca,
)
from tests.world import hours_ago

WINDOW = Window(BASE_TIME, BASE_TIME + timedelta(hours=1))
ALERTS_BUDGET_GAP = 60 / 150  # seconds between alerts_v2 calls at the default budget
JITTER = 0.05  # arrival times at the fake wobble by a TLS handshake or a thread switch


def connector(fake: GraphFake | None, **overrides: Any) -> EntraIdConnector:
    return EntraIdConnector("entra-test", connector_settings(fake, **overrides),
                            logging.getLogger("test"))


def scope_of(conn: EntraIdConnector, stream: str) -> Scope:
    [scope] = [s for s in conn.scopes() if s.params["stream"] == stream]
    return scope


def pull(conn: EntraIdConnector, stream: str, window: Window = WINDOW) -> list[list[Any]]:
    return list(conn.fetch(scope_of(conn, stream), window, Memory()))


def flat(pages: list[list[Any]]) -> list[Any]:
    return [item for page in pages for item in page]


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


def gaps(fake: GraphFake, path: str) -> list[float]:
    """Seconds between successive arrivals of calls to `path`."""
    times = [at for at, called in fake.arrivals if called == path]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def source_error(call: Callable[[], Any]) -> str:
    """The message of the SourceError `call` raises, checked to be one secret-free line."""
    with pytest.raises(SourceError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert SECRET not in message
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    return message


def record_of(conn: EntraIdConnector, stream: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The record the engine would write for `raw`, validated against the shipped schema."""
    alert = conn.normalize(scope_of(conn, stream), raw)
    record = build_record("entra", "entra_id", alert, raw, raw_sha256(raw), format_time(utcnow()))
    return check_records([record])[0]


# -- config and scopes ---------------------------------------------------------------------


def test_one_scope_per_stream_keyed_by_tenant_and_stream(graph_fake: GraphFake) -> None:
    tenant = graph_fake.tenant_id
    assert connector(graph_fake).scopes() == [
        Scope(f"{tenant}/alerts", {"tenant_id": tenant, "stream": "alerts"}, tenant=tenant),
        Scope(f"{tenant}/risk_detections", {"tenant_id": tenant, "stream": "risk_detections"},
              overlap=timedelta(hours=48), tenant=tenant, retention=timedelta(days=30)),
    ]
    assert EntraIdConnector.default_overlap == timedelta(hours=1)
    only = connector(graph_fake, streams=["risk_detections"]).scopes()
    assert [s.key for s in only] == [f"{tenant}/risk_detections"]
    assert graph_fake.requests == []  # scopes come from the config alone


@pytest.mark.parametrize(("overrides", "needle"), [
    ({"client_secret": None}, "set exactly one of client_secret and certificate_file"),
    ({"certificate_file": "/etc/hostname"}, "set exactly one of client_secret and"),
    ({"client_secret": None, "certificate_file": "CERT"}, "certificate_thumbprint: required"),
    ({"client_secret": None, "certificate_file": "CERT", "certificate_thumbprint": "abc"},
     "40 hex digits"),
    ({"client_secret": None, "certificate_file": "/nonexistent.pem",
      "certificate_thumbprint": "A" * 40}, "cannot read /nonexistent.pem"),
    ({"client_secret": None, "certificate_file": "ENCRYPTED", "certificate_thumbprint": "A" * 40},
     "holds an encrypted key"),
    ({"client_secret": None, "certificate_file": "GARBLED", "certificate_thumbprint": "A" * 40},
     "holds no PEM RSA private key"),
    ({"client_secret": None, "certificate_file": "EC", "certificate_thumbprint": "A" * 40},
     "holds no PEM RSA private key"),
    ({"authority_host": "http://login.example"}, "authority_host: 'http://login.example' is "
     "not an https:// host URL"),
    ({"graph_endpoint": "https://graph.example/v1.0"}, "graph_endpoint"),
    ({"service_sources": ["x') or (1 eq 1"]}, "service_sources: \"x') or (1 eq 1\" is not"),
])
def test_config_mistakes_are_one_line_naming_the_key(
    graph_fake: GraphFake, app_certificate: AppCertificate, tmp_path: Any,
    overrides: dict[str, Any], needle: str,
) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    files = {
        "ENCRYPTED": b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n",
        "GARBLED": b"-----BEGIN PRIVATE KEY-----\nZ2FyYmxlZA==\n-----END PRIVATE KEY-----\n",
        "EC": ec_key,
    }
    paths = {"CERT": str(app_certificate.pem_file)}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        paths[name] = str(tmp_path / name)
    if "certificate_file" in overrides:
        overrides["certificate_file"] = paths.get(overrides["certificate_file"],
                                                  overrides["certificate_file"])
    with pytest.raises(ConfigError) as caught:
        connector(graph_fake, **overrides)
    assert str(caught.value).startswith("sources.entra-test")
    assert needle in str(caught.value)


def test_budgets_are_shared_per_tenant_and_app_for_alerts_and_per_tenant_for_risk(
    graph_fake: GraphFake,
) -> None:
    first, same = connector(graph_fake), connector(graph_fake)
    other_app = connector(graph_fake, client_id="another-app")
    assert first.endpoints[ALERTS].budget is same.endpoints[ALERTS].budget
    assert first.endpoints[ALERTS].budget is not other_app.endpoints[ALERTS].budget
    assert first.endpoints[RISK_DETECTIONS].budget is other_app.endpoints[RISK_DETECTIONS].budget
    assert first.endpoints[ALERTS].budget.interval == pytest.approx(ALERTS_BUDGET_GAP)


# -- fetch ---------------------------------------------------------------------------------


def test_alerts_follow_next_link_under_one_pinned_query_within_the_budget(
    graph_fake: GraphFake,
) -> None:
    alerts = make_alerts(30)  # one a minute from BASE_TIME
    graph_fake.alerts = alerts[::-1]  # stored order must not matter
    graph_fake.max_page = 8
    window = Window(BASE_TIME + timedelta(minutes=5), BASE_TIME + timedelta(minutes=25))

    pages = pull(connector(graph_fake), ALERTS, window)

    assert [len(page) for page in pages] == [8, 8, 4]
    assert flat(pages) == alerts[5:25]  # [start, end), ascending, verbatim
    sources = {alert["serviceSource"] for alert in flat(pages)}
    assert "microsoftSentinel" in sources and "unknownFutureValue" not in sources
    calls = graph_fake.calls(ALERTS_PATH)
    for call in calls:  # the same pinned query on every page; never $skip
        assert call.query["$filter"] == [
            "lastUpdateDateTime ge 2026-03-02T08:05:00.000Z and "
            "lastUpdateDateTime lt 2026-03-02T08:25:00.000Z"
        ]
        assert call.query["$orderby"] == ["lastUpdateDateTime asc"]
        assert call.query["$top"] == ["1000"]
        assert "$skip" not in call.query
        assert call.headers["prefer"] == "include-unknown-enum-members"
    assert "$skiptoken" not in calls[0].query and all("$skiptoken" in c.query for c in calls[1:])
    assert min(gaps(graph_fake, ALERTS_PATH)) >= ALERTS_BUDGET_GAP - JITTER


def test_service_sources_narrow_the_alerts_filter(graph_fake: GraphFake) -> None:
    graph_fake.alerts = make_alerts(20)
    conn = connector(graph_fake, service_sources=["azureAdIdentityProtection",
                                                  "microsoftDefenderForOffice365"])

    got = flat(pull(conn, ALERTS))

    assert len(got) == 8
    assert {a["serviceSource"] for a in got} == {"azureAdIdentityProtection",
                                                 "microsoftDefenderForOffice365"}
    [call] = graph_fake.calls(ALERTS_PATH)
    assert call.query["$filter"][0].endswith(
        " and (serviceSource eq 'azureAdIdentityProtection' or "
        "serviceSource eq 'microsoftDefenderForOffice365')"
    )


def test_risk_detections_stay_within_one_call_per_second_per_tenant(
    graph_fake: GraphFake,
) -> None:
    detections = make_risk_detections(12)
    graph_fake.risk_detections = detections
    graph_fake.max_page = 5

    pages = pull(connector(graph_fake), RISK_DETECTIONS)

    assert [len(page) for page in pages] == [5, 5, 2]
    assert sorted(ids(flat(pages))) == sorted(ids(detections))
    calls = graph_fake.calls(RISK_PATH)
    assert min(gaps(graph_fake, RISK_PATH)) >= 1.0 and graph_fake.risk_throttled == 0
    for call in calls:
        assert call.query["$filter"] == [
            "lastUpdatedDateTime ge 2026-03-02T08:00:00.000Z and "
            "lastUpdatedDateTime lt 2026-03-02T09:00:00.000Z"
        ]
        assert call.query["$top"] == ["500"]
        assert "$orderby" not in call.query and "$skip" not in call.query
        assert "prefer" not in call.headers


def test_identity_protection_429_without_retry_after_is_retried_after_a_backoff(
    graph_fake: GraphFake,
) -> None:
    graph_fake.risk_detections = make_risk_detections(3)
    graph_fake.inject(on("GET", RISK_PATH), Fault(response=throttled()))

    got = flat(pull(connector(graph_fake), RISK_DETECTIONS))

    assert sorted(ids(got)) == sorted(ids(graph_fake.risk_detections))
    assert graph_fake.pending_faults == 0 and graph_fake.risk_throttled == 0
    [wait] = gaps(graph_fake, RISK_PATH)
    assert 1.0 <= wait < 2.0


def test_backoff_doubles_without_retry_after_and_follows_it_when_given() -> None:
    bare = requests.Response()
    bare.status_code = 429
    waits = [throttle_wait(bare, attempt) for attempt in range(8)]
    floors = [1, 2, 4, 8, 16, 32, 60, 60]
    assert all(floor <= wait <= floor + 0.5 for wait, floor in zip(waits, floors, strict=True))
    told = requests.Response()
    told.status_code = 429
    told.headers["Retry-After"] = "7"
    assert throttle_wait(told, 3) == 7.0
    told.headers["Retry-After"] = "86400"
    assert throttle_wait(told, 0) == 120.0  # a server cannot stall the run for a day


def test_429_retry_after_is_honoured(graph_fake: GraphFake) -> None:
    graph_fake.alerts = make_alerts(5)
    graph_fake.inject(on("GET", ALERTS_PATH), Fault(response=throttled("2")))

    got = flat(pull(connector(graph_fake), ALERTS))

    assert got == graph_fake.alerts
    assert graph_fake.pending_faults == 0
    [wait] = gaps(graph_fake, ALERTS_PATH)
    assert 2.0 <= wait < 2.5


@pytest.mark.parametrize(("answer", "message"), [
    (throttled("0"), "Graph kept throttling GET /v1.0/security/alerts_v2 after 1 retry; the "
     "next run resumes"),
    (graph_error_response(503, "ServiceUnavailable", "Try again later."),
     "Graph failed GET /v1.0/security/alerts_v2 with HTTP 503 after 1 retry "
     "(ServiceUnavailable: Try again later.); the next run reads the window again"),
    (Response(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
              {"Content-Type": "text/html"}),
     "Graph failed GET /v1.0/security/alerts_v2 with HTTP 502 after 1 retry (Bad Gateway); "
     "the next run reads the window again"),
], ids=["429-own-loop", "503-urllib3", "502-html-page"])
def test_max_retries_bounds_both_retry_loops_then_explains(
    graph_fake: GraphFake, answer: Response, message: str,
) -> None:
    graph_fake.alerts = make_alerts(5)
    graph_fake.inject(on("GET", ALERTS_PATH), Fault(response=answer), times=100)

    assert source_error(lambda: pull(connector(graph_fake, max_retries=1), ALERTS)) == message
    assert len([at for at, path in graph_fake.arrivals if path == ALERTS_PATH]) == 1 + 1


def test_one_token_serves_every_page_of_both_streams(graph_fake: GraphFake) -> None:
    graph_fake.alerts = make_alerts(20)
    graph_fake.risk_detections = make_risk_detections(4)
    graph_fake.max_page = 8
    conn = connector(graph_fake)

    with ThreadPoolExecutor(max_workers=2) as pool:
        pages = list(pool.map(lambda stream: pull(conn, stream), [ALERTS, RISK_DETECTIONS]))

    assert [len(flat(p)) for p in pages] == [20, 4]
    [token_request] = graph_fake.token_requests
    form = token_request.form()
    assert form["client_id"] == CLIENT_ID and form["client_secret"] == SECRET
    assert form["scope"] == f"{graph_fake.url}/.default"


def test_a_refused_token_is_renewed_once_and_the_pull_goes_on(graph_fake: GraphFake) -> None:
    graph_fake.alerts = make_alerts(20)
    graph_fake.max_page = 8
    second_page = on("GET", ALERTS_PATH)
    graph_fake.inject(lambda r: second_page(r) and "$skiptoken" in r.query,
                      Fault(before=graph_fake.revoke_tokens))

    got = flat(pull(connector(graph_fake), ALERTS))

    assert got == graph_fake.alerts
    assert len(graph_fake.token_requests) == 2
    assert len(graph_fake.calls(ALERTS_PATH)) == 3 + 1


def test_a_token_refused_twice_fails_after_one_renewal(graph_fake: GraphFake) -> None:
    graph_fake.alerts = make_alerts(3)
    graph_fake.inject(on("GET", ALERTS_PATH), Fault(before=graph_fake.revoke_tokens), times=2)

    message = source_error(lambda: pull(connector(graph_fake), ALERTS))

    assert message == (
        "Graph rejected a fresh access token for GET /v1.0/security/alerts_v2 "
        "(InvalidAuthenticationToken: Lifetime validation failed, the token is expired.); check "
        "that authority_host and graph_endpoint are the same cloud and tenant_id is the right one"
    )
    assert len(graph_fake.token_requests) == 2


@pytest.mark.parametrize(("stream", "granted", "permission", "path"), [
    (ALERTS, {"IdentityRiskEvent.Read.All"}, "SecurityAlert.Read.All", ALERTS_PATH),
    (RISK_DETECTIONS, {"SecurityAlert.Read.All"}, "IdentityRiskEvent.Read.All", RISK_PATH),
])
def test_missing_application_role_names_the_permission_and_admin_consent(
    graph_fake: GraphFake, stream: str, granted: set[str], permission: str, path: str
) -> None:
    graph_fake.apps[CLIENT_ID].roles = granted

    message = source_error(lambda: pull(connector(graph_fake), stream))

    assert message == (
        f"Graph denied GET {path}: the app {CLIENT_ID} lacks the application permission "
        f"{permission}; add it (API permissions > Microsoft Graph > Application permissions) "
        "and grant admin consent"
    )
    assert len(graph_fake.calls(path)) == 1  # a 403 is never retried


def test_other_denials_name_graphs_words_and_the_permission(graph_fake: GraphFake) -> None:
    denied = graph_error_response(403, "Authorization_RequestDenied",
                                  "Insufficient privileges to complete the operation.")
    graph_fake.inject(on("GET", ALERTS_PATH), Fault(response=denied))

    message = source_error(lambda: pull(connector(graph_fake), ALERTS))

    assert message == (
        "Graph denied GET /v1.0/security/alerts_v2 (Authorization_RequestDenied: Insufficient "
        f"privileges to complete the operation.); check that the app {CLIENT_ID} has the "
        "application permission SecurityAlert.Read.All with admin consent"
    )


def test_a_rejected_client_secret_is_named_without_the_secret(graph_fake: GraphFake) -> None:
    wrong = "Qq9~this-is-the-wrong-secret"

    message = source_error(
        lambda: pull(connector(graph_fake, client_secret=Secret(wrong)), ALERTS)
    )

    assert message == (
        f"the client secret for {CLIENT_ID} was rejected; check client_secret (use the "
        "secret's Value, not its Secret ID)"
    )
    assert wrong not in message
    assert len(graph_fake.token_requests) == 1 and graph_fake.calls(ALERTS_PATH) == []


def test_certificate_credentials_sign_a_client_assertion(
    graph_fake: GraphFake, app_certificate: AppCertificate
) -> None:
    graph_fake.add_app("cert-app", certificate=app_certificate.certificate)
    graph_fake.alerts = make_alerts(3)
    thumbprint = ":".join(app_certificate.thumbprint[i:i + 2].lower() for i in range(0, 40, 2))
    conn = connector(graph_fake, client_id="cert-app", client_secret=None,
                     certificate_file=str(app_certificate.pem_file),
                     certificate_thumbprint=thumbprint)  # as some tools print it

    assert flat(pull(conn, ALERTS)) == graph_fake.alerts
    [token_request] = graph_fake.token_requests
    form = token_request.form()
    assert form["client_assertion_type"] == JWT_BEARER and "client_secret" not in form


def test_a_certificate_the_app_does_not_hold_is_named(
    graph_fake: GraphFake, app_certificate: AppCertificate
) -> None:
    graph_fake.add_app("cert-app", certificate=app_certificate.certificate)
    conn = connector(graph_fake, client_id="cert-app", client_secret=None,
                     certificate_file=str(app_certificate.pem_file),
                     certificate_thumbprint="0" * 40)

    message = source_error(lambda: pull(conn, ALERTS))

    assert message == (
        "the certificate for cert-app was rejected; check that certificate_file and "
        "certificate_thumbprint match a certificate uploaded to the app"
    )


def test_an_unknown_tenant_is_named(graph_fake: GraphFake) -> None:
    message = source_error(
        lambda: pull(connector(graph_fake, tenant_id="nosuch.onmicrosoft.com"), ALERTS)
    )

    assert message == (
        "cannot read the sign-in metadata of tenant nosuch.onmicrosoft.com at "
        f"{graph_fake.url}/nosuch.onmicrosoft.com/v2.0/.well-known/openid-configuration; check "
        "tenant_id and authority_host"
    )


def test_authority_host_and_graph_endpoint_are_separate_settings(graph_fake: GraphFake) -> None:
    # The certificate covers both names: sign in via "localhost", read Graph via 127.0.0.1.
    authority = graph_fake.url.replace("127.0.0.1", "localhost")
    graph_fake.alerts = make_alerts(2)

    assert flat(pull(connector(graph_fake, authority_host=authority), ALERTS)) == \
        graph_fake.alerts

    port = graph_fake.url.rsplit(":", 1)[1]
    hosts = {r.path: r.headers["host"] for r in graph_fake.requests}
    assert hosts[f"/{graph_fake.tenant_id}/oauth2/v2.0/token"] == f"localhost:{port}"
    assert hosts[ALERTS_PATH] == f"127.0.0.1:{port}"
    assert graph_fake.token_requests[0].form()["scope"] == f"{graph_fake.url}/.default"


def test_an_untrusted_certificate_names_the_ca_bundle_setting(
    graph_fake: GraphFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")

    message = source_error(lambda: pull(connector(graph_fake), ALERTS))

    assert message == (
        f"sign-in: TLS verification of {graph_fake.url} failed; if a proxy or private CA signs "
        "its certificate, point REQUESTS_CA_BUNDLE at that CA"
    )


def test_a_response_cut_mid_body_is_retried_once_then_fails_instead_of_reading_short(
        graph_fake: GraphFake) -> None:
    graph_fake.alerts = make_alerts(5)
    graph_fake.inject(on("GET", ALERTS_PATH), Fault(cut_body=True))
    assert len(flat(pull(connector(graph_fake), ALERTS))) == 5  # one cut: read again

    graph_fake.inject(on("GET", ALERTS_PATH), Fault(cut_body=True), times=100)
    message = source_error(lambda: pull(connector(graph_fake), ALERTS))

    assert message == (f"GET /v1.0/security/alerts_v2: {graph_fake.url} cut its response "
                       "short; the next run reads the window again")


def test_a_repeated_next_link_stops_alerts_after_each_alert_once(graph_fake: GraphFake) -> None:
    graph_fake.alerts = make_alerts(30)
    graph_fake.max_page = 8
    graph_fake.repeat_link_from_page = 2
    pages: list[list[Any]] = []

    with pytest.raises(WindowIncomplete, match=r"repeated a nextLink of GET /v1\.0/security/"):
        for page in connector(graph_fake).fetch(scope_of(connector(graph_fake), ALERTS),
                                                WINDOW, Memory()):
            pages.append(page)

    assert flat(pages) == graph_fake.alerts[:16]  # ascending: the runner resumes at the 16th


def test_a_repeated_next_link_fails_a_stream_that_is_not_in_order(graph_fake: GraphFake) -> None:
    graph_fake.risk_detections = make_risk_detections(12)
    graph_fake.max_page = 5
    graph_fake.repeat_link_from_page = 2

    message = source_error(lambda: pull(connector(graph_fake), RISK_DETECTIONS))
    assert message == ("Graph repeated a nextLink of GET /v1.0/identityProtection/riskDetections;"
                       " the window is read again next run")

    # alerts that Graph returned out of order (e.g. $orderby ignored) are not resumed either
    alerts = make_alerts(3)
    link = f"{graph_fake.url}{ALERTS_PATH}?$skiptoken=same"
    page = Response.json({"value": [alerts[2], alerts[0]], "@odata.nextLink": link})
    graph_fake.inject(on("GET", ALERTS_PATH), Fault(response=page), times=2)
    assert source_error(lambda: pull(connector(graph_fake), ALERTS)).endswith(
        "; the window is read again next run")


def test_a_next_link_to_another_host_never_gets_the_token(graph_fake: GraphFake) -> None:
    page = Response.json({"value": make_alerts(1),
                          "@odata.nextLink": f"https://attacker.example{ALERTS_PATH}?x=1"})
    graph_fake.inject(on("GET", ALERTS_PATH), Fault(response=page))

    message = source_error(lambda: pull(connector(graph_fake), ALERTS))

    assert message == (
        "Graph's nextLink for GET /v1.0/security/alerts_v2 points to https://attacker.example, "
        "not graph_endpoint; refusing to send the token there"
    )


def test_check_signs_in_and_reads_one_item_of_each_stream(graph_fake: GraphFake) -> None:
    graph_fake.alerts = make_alerts(5)

    assert connector(graph_fake).check() == (
        f"tenant {graph_fake.tenant_id}: app {CLIENT_ID} signed in and read "
        "/v1.0/security/alerts_v2, /v1.0/identityProtection/riskDetections"
    )
    assert [r.query["$top"] for r in graph_fake.calls(ALERTS_PATH)] == [["1"]]
    assert len(graph_fake.calls(RISK_PATH)) == 1


# -- normalize: alerts ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALERT_KINDS)
def test_normalize_maps_each_alert_shape(kind: str) -> None:
    raw = make_alert(2, kind=kind)
    before = repr(raw)

    record = record_of(connector(None), ALERTS, raw)

    assert repr(raw) == before and record["raw"] == raw
    assert record["native_id"] == raw["id"] and record["tenant"] == TENANT_ID
    assert record["updated_at"] == format_time(parse_time(raw["lastUpdateDateTime"]))
    assert record["created_at"] == format_time(parse_time(raw["createdDateTime"]))
    assert record["title"] == raw["title"]
    assert record["product"] == raw["serviceSource"]
    assert record["type"] == raw["detectionSource"] and record["category"] == raw["category"]
    expected = EXPECTED_ENTITIES[kind](raw)
    assert {key: record.get(key) for key in expected} == expected


def _endpoint_entities(raw: dict[str, Any]) -> dict[str, Any]:
    device, file, process, _ = raw["evidence"]
    account = process["userAccount"]
    hashes = [file["fileDetails"]["sha1"], file["fileDetails"]["sha256"]]
    return {
        "devices": [{"type": "device", "id": device["mdeDeviceId"],
                     "name": device["deviceDnsName"], "os": "Windows10"}],
        "users": [{"type": "user", "id": account["azureAdUserId"],
                   "name": account["userPrincipalName"], "account_name": account["accountName"],
                   "upn": account["userPrincipalName"], "domain": "CONTOSO",
                   "display_name": account["displayName"]}],
        "related": {"hashes": hashes},  # the image file is the same file: listed once
        "mitre": {"tactics": ["DefenseEvasion"], "techniques": ["T1564.001"]},
        "link": raw["alertWebUrl"],
        "description": raw["description"],
        "first_seen_at": format_time(parse_time(raw["firstActivityDateTime"])),
        "last_seen_at": format_time(parse_time(raw["lastActivityDateTime"])),
    }


def _identity_entities(raw: dict[str, Any]) -> dict[str, Any]:
    user, ip = raw["evidence"]
    return {"related": {"ips": [ip["ipAddress"]]}, "devices": None,
            "users": [{"type": "user", "id": user["userAccount"]["azureAdUserId"],
                       "name": user["userAccount"]["userPrincipalName"],
                       "account_name": "user2", "upn": "user2@contoso.example",
                       "domain": "CONTOSO", "display_name": "User 2"}],
            "mitre": {"tactics": ["InitialAccess"]}}


def _email_entities(raw: dict[str, Any]) -> dict[str, Any]:
    _, message, url = raw["evidence"]
    return {"related": {"ips": [message["senderIp"]], "urls": [url["url"]],
                        "emails": ["user2@contoso.example", "billing2@invoices.example"]},
            "mitre": {"tactics": ["InitialAccess"], "techniques": ["T1566.002"]}}


EXPECTED_ENTITIES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "endpoint": _endpoint_entities,
    "identity": _identity_entities,
    "email": _email_entities,
    "sentinel": lambda raw: {"severity": "unknown", "severity_raw": "unknownFutureValue",
                             "status": "unknown", "status_raw": "unknownFutureValue",
                             "mitre": None, "users": None},
    "minimal": lambda raw: {"link": None, "users": None, "devices": None, "related": None,
                            "mitre": None},
}


@pytest.mark.parametrize(("severity", "expected"), [
    ("informational", "informational"), ("low", "low"), ("medium", "medium"), ("high", "high"),
    ("unknown", "unknown"), ("unknownFutureValue", "unknown"), (None, "unknown"),
])
def test_normalize_maps_alert_severities(severity: str | None,
                                         expected: str) -> None:
    record = record_of(connector(None), ALERTS, {**make_alert(0), "severity": severity})
    assert (record["severity"], record["severity_raw"]) == (expected, severity)


@pytest.mark.parametrize(("status", "expected"), [
    ("new", "new"), ("inProgress", "in_progress"), ("resolved", "resolved"),
    ("unknown", "unknown"), ("unknownFutureValue", "unknown"),
])
def test_normalize_maps_alert_statuses(status: str, expected: str) -> None:
    record = record_of(connector(None), ALERTS, {**make_alert(0), "status": status})
    assert (record["status"], record["status_raw"]) == (expected, status)


def test_normalize_keeps_the_verdict_and_assignee_of_a_resolved_alert(
    ) -> None:
    raw = make_alert(2)  # the third of STATUSES: resolved, classified, assigned

    record = record_of(connector(None), ALERTS, raw)

    assert record["status"] == "resolved"
    assert record["resolved_at"] == format_time(parse_time(raw["resolvedDateTime"]))
    assert record["assignee"] == raw["assignedTo"]
    assert (record["raw"]["classification"], record["raw"]["determination"]) == (
        "truePositive", "malware")


def test_normalize_titles_an_alert_without_one_by_its_category() -> None:
    record = record_of(connector(None), ALERTS, {**make_alert(4), "title": None})
    assert record["title"] == "Malware"


@pytest.mark.parametrize(("change", "problem"), [
    ({"id": None}, "Graph alert has no id"),
    ({"lastUpdateDateTime": None}, "Graph alert has no lastUpdateDateTime"),
    ({"lastUpdateDateTime": "yesterday"}, "lastUpdateDateTime 'yesterday' is not a time"),
])
def test_normalize_rejects_an_alert_missing_what_the_mapping_needs(
    change: dict[str, Any], problem: str
) -> None:
    conn = connector(None)
    with pytest.raises(MalformedAlert, match=problem):
        conn.normalize(scope_of(conn, ALERTS), {**make_alert(0), **change})
    with pytest.raises(MalformedAlert, match="not a JSON object"):
        conn.normalize(scope_of(conn, ALERTS), ["not", "an", "alert"])


# -- normalize: risk detections ------------------------------------------------------------


@pytest.mark.parametrize("n", range(12))
def test_normalize_maps_each_risk_detection_shape(n: int) -> None:
    raw = make_risk_detection(n)

    record = record_of(connector(None), RISK_DETECTIONS, raw)

    assert record["raw"] == raw and isinstance(record["raw"]["additionalInfo"], str)
    assert record["title"] == risk_event_title(raw["riskEventType"])
    assert record["type"] == raw["riskEventType"] and record["category"] == raw["activity"]
    assert record["product"] == "azureAdIdentityProtection"
    assert record["updated_at"] == format_time(parse_time(raw["lastUpdatedDateTime"]))
    assert record["created_at"] == format_time(parse_time(raw["detectedDateTime"]))
    assert record["first_seen_at"] == format_time(parse_time(raw["activityDateTime"]))
    [user] = record["users"]
    assert user["id"] == raw["userId"] and user["name"] == raw["userPrincipalName"]
    assert user["display_name"] == raw["userDisplayName"]
    assert user["user_agent"] == f"Mozilla/5.0 (agent {n})"  # from additionalInfo
    if raw["location"]:
        assert user["location"] == "Seattle, Washington, US"
    valid_ip = raw["ipAddress"] and raw["ipAddress"] != "123.456.7.89"
    assert record.get("related") == ({"ips": [raw["ipAddress"]]} if valid_ip else None)
    if raw["riskEventType"] == "anonymizedIPAddress":
        assert record["mitre"] == {"techniques": ["T1090.003"]}


@pytest.mark.parametrize(("event_type", "title"), [
    ("unfamiliarFeatures", "Unfamiliar sign-in properties"),
    ("anonymizedIPAddress", "Anonymous IP address"),
    ("mcasImpossibleTravel", "Impossible travel"),
    ("suspiciousAPITraffic", "Suspicious API traffic"),
    ("newCountry", "New country"),
    ("nationStateIP", "Nation state IP"),
])
def test_risk_event_types_get_a_readable_title(event_type: str, title: str) -> None:
    assert risk_event_title(event_type) == title


@pytest.mark.parametrize(("level", "expected"), [
    ("low", "low"), ("medium", "medium"), ("high", "high"), ("none", "informational"),
    ("hidden", "unknown"), ("unknownFutureValue", "unknown"),
])
def test_normalize_maps_risk_levels(level: str, expected: str) -> None:
    raw = {**make_risk_detection(0), "riskLevel": level}
    record = record_of(connector(None), RISK_DETECTIONS, raw)
    assert (record["severity"], record["severity_raw"]) == (expected, level)


@pytest.mark.parametrize(("state", "expected"), [
    ("atRisk", "new"), ("confirmedCompromised", "new"), ("remediated", "resolved"),
    ("dismissed", "resolved"), ("confirmedSafe", "resolved"), ("none", "unknown"),
    ("unknownFutureValue", "unknown"),
])
def test_normalize_maps_risk_states(state: str, expected: str) -> None:
    raw = {**make_risk_detection(0), "riskState": state}
    record = record_of(connector(None), RISK_DETECTIONS, raw)
    assert (record["status"], record["status_raw"]) == (expected, state)


def test_additional_info_is_parsed_and_a_cloud_apps_alert_url_becomes_the_link(
    ) -> None:
    info = ('[{"Key":"alertUrl","Value":"https://contoso.portal.cloudappsecurity.com/#/alerts/1"},'
            '{"Key":"mitreTechniques","Value":"T1078,T1114.003"}]')
    raw = {**make_risk_detection(3, ), "additionalInfo": info}

    record = record_of(connector(None), RISK_DETECTIONS, raw)

    assert record["link"] == "https://contoso.portal.cloudappsecurity.com/#/alerts/1"
    assert record["mitre"] == {"techniques": ["T1078", "T1114.003"]}
    assert record["raw"]["additionalInfo"] == info
    assert additional_info("not json") == {} and additional_info('{"Key": 1}') == {}
    garbled = record_of(connector(None), RISK_DETECTIONS,
                        {**make_risk_detection(3), "additionalInfo": "[{"})
    assert garbled["link"] is None and "user_agent" not in garbled["users"][0]


def test_a_risk_detection_without_risk_event_type_is_titled_by_its_risk_type() -> None:
    conn = connector(None)
    scope = scope_of(conn, RISK_DETECTIONS)
    older = {**make_risk_detection(0), "riskType": "unlikelyTravel"}  # beta and older objects
    del older["riskEventType"]
    neither = {key: value for key, value in older.items() if key != "riskType"}

    assert conn.normalize(scope, older).title == "Atypical travel"
    assert conn.normalize(scope, neither).title == "Risk detection"


@pytest.mark.parametrize(("change", "problem"), [
    ({"lastUpdatedDateTime": None}, "Graph risk detection has no lastUpdatedDateTime"),
    ({"id": ""}, "Graph risk detection has no id"),
])
def test_normalize_rejects_a_risk_detection_missing_what_the_mapping_needs(
    change: dict[str, Any], problem: str
) -> None:
    conn = connector(None)
    with pytest.raises(MalformedAlert, match=problem):
        conn.normalize(scope_of(conn, RISK_DETECTIONS), {**make_risk_detection(0), **change})


def test_importing_the_connectors_does_not_import_msal() -> None:
    code = (
        "import sys, alertpull.connectors.entra_id, alertpull.connectors.msgraph; "
        "sys.exit(any(m.split('.')[0] in ('msal', 'jwt') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- the installed CLI, as cron runs it ----------------------------------------------------


def add_alerts(world: GraphWorld, count: int, *, first: int, at: datetime,
               step: timedelta = timedelta(minutes=1)) -> list[dict[str, Any]]:
    new = make_alerts(count, first=first, base_time=at - first * step, step=step,
                      tenant_id=world.fake.tenant_id)
    world.fake.alerts.extend(new)
    return new


def add_risks(world: GraphWorld, count: int, *, first: int, at: datetime,
              step: timedelta = timedelta(minutes=1)) -> list[dict[str, Any]]:
    new = make_risk_detections(count, first=first, base_time=at - first * step, step=step)
    world.fake.risk_detections.extend(new)
    return new


def native_ids(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["native_id"] for r in records)


def test_cli_writes_both_streams_once_and_an_update_as_one_new_line(
    graph_world: GraphWorld,
) -> None:
    # All inside each stream's overlap, so the rerun reads every one again.
    add_alerts(graph_world, 12, first=0, at=hours_ago(0.9), step=timedelta(minutes=4))
    add_risks(graph_world, 6, first=0, at=hours_ago(20), step=timedelta(hours=3))

    first = graph_world.fetch()

    assert first.returncode == 0, first.stderr
    records = graph_world.records()
    assert len(records) == 18 and set(native_ids(records).values()) == {1}
    assert {r["source_type"] for r in records} == {"entra_id"}
    assert "18 written" in first.stderr and "2 scope(s)" in first.stderr
    again = graph_world.fetch()
    assert again.returncode == 0 and "0 written, 18 duplicate" in again.stderr

    alert = graph_world.fake.alerts[0]  # a new one
    alert.update(status="resolved", lastUpdateDateTime=graph_time(hours_ago(0.2)))
    assert graph_world.fetch().returncode == 0
    versions = [r for r in graph_world.records() if r["native_id"] == alert["id"]]
    assert len(graph_world.records()) == 19 and len({r["id"] for r in versions}) == 1
    assert sorted(r["status"] for r in versions) == ["new", "resolved"]


def test_cli_late_arrivals_inside_each_streams_overlap_are_pulled(graph_world: GraphWorld) -> None:
    add_alerts(graph_world, 3, first=0, at=hours_ago(1))
    add_risks(graph_world, 3, first=0, at=hours_ago(1))
    assert graph_world.fetch().returncode == 0
    # Offline detections surface up to 48 h late, with an older lastUpdatedDateTime; alerts
    # show up in alerts_v2 minutes late.
    late_risk = add_risks(graph_world, 1, first=3, at=hours_ago(30))
    late_alert = add_alerts(graph_world, 1, first=3, at=hours_ago(0.5))
    too_late_alert = add_alerts(graph_world, 1, first=4, at=hours_ago(3))

    second = graph_world.fetch()

    assert second.returncode == 0 and "2 written" in second.stderr
    written = set(native_ids(graph_world.records()))
    assert {late_risk[0]["id"], late_alert[0]["id"]} <= written
    assert too_late_alert[0]["id"] not in written  # older than the alerts' 1 h overlap
    for path, overlap in ((RISK_PATH, 48), (ALERTS_PATH, 1)):
        start = graph_world.fake.calls(path)[-1].query["$filter"][0].split(" ")[2]
        assert abs(parse_time(start) - hours_ago(overlap)) < timedelta(minutes=5)


def test_cli_a_rejected_secret_exits_1_with_one_line_and_the_secret_nowhere(
    graph_world: GraphWorld,
) -> None:
    add_alerts(graph_world, 3, first=0, at=hours_ago(1))
    wrong = "Wr0ng~secret-value-that-must-not-leak"

    result = graph_world.cli("-v", "fetch", "--all", ENTRA_SECRET=wrong)

    assert result.returncode == 1
    assert f"the client secret for {CLIENT_ID} was rejected; check client_secret" in result.stderr
    assert "Traceback" not in result.stderr
    everything = result.stdout + result.stderr + graph_world.written_text()
    assert wrong not in everything and SECRET not in everything
    assert graph_world.records() == []


def test_cli_a_missing_permission_fails_that_stream_with_the_fix_and_keeps_the_other(
    graph_world: GraphWorld,
) -> None:
    graph_world.fake.apps[CLIENT_ID].roles = {"SecurityAlert.Read.All"}
    add_alerts(graph_world, 4, first=0, at=hours_ago(1))
    add_risks(graph_world, 2, first=0, at=hours_ago(1))

    result = graph_world.fetch()

    assert result.returncode == 1
    assert (f"the app {CLIENT_ID} lacks the application permission IdentityRiskEvent.Read.All; "
            "add it (API permissions > Microsoft Graph > Application permissions) and grant "
            "admin consent") in result.stderr
    assert SECRET not in result.stdout + result.stderr + graph_world.written_text()
    assert len(graph_world.records()) == 4  # the alerts stream still delivered


def test_cli_transient_throttling_and_server_errors_still_succeed(
    graph_world: GraphWorld,
) -> None:
    add_alerts(graph_world, 4, first=0, at=hours_ago(1))
    add_risks(graph_world, 2, first=0, at=hours_ago(1))
    graph_world.fake.inject(on("GET", ALERTS_PATH), Fault(response=throttled("1")))
    graph_world.fake.inject(on("GET", RISK_PATH), Fault(response=Response(503, b"")))

    result = graph_world.fetch()

    assert result.returncode == 0, result.stderr
    assert len(graph_world.records()) == 6 and graph_world.fake.pending_faults == 0


def test_cli_certificate_auth_and_check(graph_world: GraphWorld,
                                        app_certificate: AppCertificate) -> None:
    graph_world.fake.add_app("cert-app", certificate=app_certificate.certificate)
    add_alerts(graph_world, 2, first=0, at=hours_ago(1))
    graph_world.write_config(client_id="cert-app", client_secret=None,
                             certificate_file=str(app_certificate.pem_file),
                             certificate_thumbprint=app_certificate.thumbprint)

    check = graph_world.cli("check")
    fetched = graph_world.fetch()

    assert check.returncode == 0 and "entra: ok" in check.stdout, check.stdout + check.stderr
    assert "app cert-app signed in and read" in check.stdout
    assert fetched.returncode == 0 and len(graph_world.records()) == 2
    key_text = app_certificate.pem_file.read_text()
    key_body = key_text.split("-----")[2].strip().splitlines()[1]
    assert key_body not in check.stdout + fetched.stderr + graph_world.written_text()
