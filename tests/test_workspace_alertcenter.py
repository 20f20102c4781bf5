"""The Workspace Alert Center connector against a local Alert Center + token endpoint fake.

The real google-api-python-client (bundled discovery document), google-auth (a service-account
key made at test time, domain-wide delegation) and httplib2 run against the fake; the CLI
tests run the installed `alertpull` as cron would.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alertpull.connector import Memory, Scope, Window
from alertpull.connectors.workspace_alertcenter import (
    DELEGATION_PATH,
    MAX_RETRIES,
    RETRY_BASE_SECONDS,
    SCOPE,
    AlertCenterConnector,
)
from alertpull.errors import MalformedAlert, SourceError, WindowIncomplete
from alertpull.record import build_record, raw_sha256
from alertpull.timeutil import format_time, parse_time
from tests.alertcenter_env import (
    SOURCE,
    AlertCenterWorld,
    ConnectProxy,
    workspace_fixture,  # noqa: F401  (the `workspace` fixture)
)
from tests.conftest import check_records
from tests.fakes.alertcenter import (
    ADMIN,
    ALERTS_PATH,
    TOKEN_PATH,
    AlertCenterFake,
    demo_replay,
    permission_denied,
    quota_exceeded,
)
from tests.fakes.alertcenter_data import (
    BASE_TIME,
    CUSTOMER_ID,
    KINDS,
    Alert,
    make_alert,
    make_alerts,
    touch,
    unknown_alert,
    wire_time,
)
from tests.fakes.google_sa import google_api_error, make_key
from tests.fakes.http_fake import Fault, Response, on
from tests.fakes.tls import make_throwaway_ca
from tests.world import engine_settings, hours_ago

FAST_RETRY = 0.02  # seconds; the default is RETRY_BASE_SECONDS
MINUTE = timedelta(minutes=1)
LIST = on("GET", ALERTS_PATH)
TOKEN = on("POST", TOKEN_PATH)


@pytest.fixture
def world(workspace: AlertCenterWorld, monkeypatch: pytest.MonkeyPatch) -> AlertCenterWorld:
    """The world for connector-level tests: no proxy or CA settings leak in from the host."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY",
                 "no_proxy", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return workspace


def connector(world: AlertCenterWorld, **overrides: Any) -> AlertCenterConnector:
    """A connector with the settings the engine would pass: every option, defaults applied."""
    block = world.source(**{"retry_base_seconds": FAST_RETRY, **overrides})
    del block["type"]
    return AlertCenterConnector(SOURCE, engine_settings(AlertCenterConnector, **block),
                                logging.getLogger("test"))


def scope() -> Scope:
    return Scope(key=CUSTOMER_ID, params={"customer_id": CUSTOMER_ID}, tenant=CUSTOMER_ID)


def pull(conn: AlertCenterConnector, window: Window) -> list[list[Any]]:
    return list(conn.fetch(scope(), window, Memory()))


def flat(pages: list[list[Any]]) -> list[Any]:
    return [alert for page in pages for alert in page]


def ids(alerts: list[Alert]) -> list[str]:
    return [a["alertId"] for a in alerts]


def minutes(first: int, last: int) -> Window:
    return Window(BASE_TIME + first * MINUTE, BASE_TIME + last * MINUTE)


def queries(fake: AlertCenterFake, order: str) -> list[dict[str, str]]:
    sent = [{k: v[-1] for k, v in r.query.items()} for r in fake.list_requests()]
    return [q for q in sent if q.get("orderBy") == order]


def source_error(call: Any, world: AlertCenterWorld) -> str:
    """The message of the SourceError `call` raises, checked to be one secret-free line."""
    with pytest.raises(SourceError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert_no_secret(message, world)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    return message


def assert_no_secret(text: str, world: AlertCenterWorld) -> None:
    pem_body = "".join(world.fake.key.private_pem.splitlines()[1:-1])
    for offset in range(0, len(pem_body) - 40, 200):  # any stretch of the key
        assert pem_body[offset : offset + 40] not in text
    for token in world.fake.tokens.issued:
        assert token not in text


def jwt_claims(request: Any) -> dict[str, Any]:
    payload = request.form()["assertion"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# -- scopes ------------------------------------------------------------------------------


def test_one_scope_per_customer_without_calling_google(world: AlertCenterWorld) -> None:
    assert connector(world).scopes() == [scope()]
    assert connector(world, customer_id=None).scopes() == [
        Scope(key="my_customer", params={"customer_id": None}, tenant="my_customer")
    ]
    assert world.fake.requests == []


# -- fetch: the two passes -----------------------------------------------------------------


def test_new_alerts_are_paged_in_creation_order_inside_the_window(
    world: AlertCenterWorld,
) -> None:
    alerts = make_alerts(300)  # created (and last updated) one minute apart
    world.fake.alerts.extend(reversed(alerts))  # stored order must not matter

    pages = pull(connector(world), minutes(200, 250))

    assert ids(flat(pages)) == ids(alerts[200:250])  # [start, end): minute 250 is out
    assert [len(page) for page in pages] == [50]  # max 50 per page, whatever pageSize asks
    new = queries(world.fake, "create_time asc")
    assert new[0] == {
        "customerId": CUSTOMER_ID,
        "pageSize": "1000",
        "alt": "json",
        "orderBy": "create_time asc",
        "filter": 'createTime >= "2026-03-01T03:20:00.000Z" AND '
        'createTime < "2026-03-01T04:10:00.000Z"',
    }
    # Pass 2 reads the alerts created before the window (updateTime cannot be filtered
    # on), newest first, and stops after the page that reaches below the window: alerts
    # 199..150 only, not the three older pages.
    updates = queries(world.fake, "update_time desc")
    assert [q["filter"] for q in updates] == ['createTime < "2026-03-01T03:20:00.000Z"']


def test_a_first_run_reads_each_alert_once(world: AlertCenterWorld) -> None:
    # A first run or backfill: every alert was created inside the window, so the changes
    # pass has nothing to download that the created pass did not already read.
    alerts = make_alerts(120)
    world.fake.alerts.extend(alerts)

    got = flat(pull(connector(world), minutes(0, 120)))

    assert ids(got) == ids(alerts)
    assert len(queries(world.fake, "create_time asc")) == 3  # 50 a page (the fake's max)
    # One call that lists nothing, where an unfiltered changes pass would page all 120 again.
    assert len(queries(world.fake, "update_time desc")) == 1


def test_next_page_tokens_are_followed_with_the_same_query(world: AlertCenterWorld) -> None:
    alerts = make_alerts(130)
    world.fake.alerts.extend(alerts)

    got = flat(pull(connector(world, page_size=20), minutes(5, 125)))

    assert ids(got) == ids(alerts[5:125])
    new = queries(world.fake, "create_time asc")
    assert len(new) == 6
    assert len({q["filter"] for q in new}) == 1 and all(q["pageSize"] == "20" for q in new)
    assert "pageToken" not in new[0] and len({q["pageToken"] for q in new[1:]}) == 5


def test_an_old_alert_updated_inside_the_window_is_picked_up(world: AlertCenterWorld) -> None:
    window = minutes(60, 120)
    recent = make_alerts(5, first=70)
    old = make_alert(1, created_at=BASE_TIME - timedelta(days=20))
    touch(old, BASE_TIME + 90 * MINUTE, status="CLOSED", assignee=ADMIN)
    untouched = make_alert(2, created_at=BASE_TIME - timedelta(days=20))
    world.fake.alerts.extend([old, untouched, *recent])
    conn = connector(world)

    got = flat(pull(conn, window))

    assert ids(got) == [*ids(recent), old["alertId"]]  # pass 1, then pass 2
    alert = conn.normalize(scope(), got[-1])
    assert (alert.status, alert.status_raw, alert.extra["assignee"]) == (
        "resolved", "CLOSED", ADMIN
    )
    assert alert.changed_at == alert.updated_at == BASE_TIME + 90 * MINUTE
    assert alert.created_at == BASE_TIME - timedelta(days=20)


def test_versions_changed_at_or_after_the_window_end_are_left_for_the_next_run(
    world: AlertCenterWorld,
) -> None:
    window = minutes(60, 120)
    created_inside = make_alert(3, created_at=BASE_TIME + 100 * MINUTE)
    old = make_alert(4, created_at=BASE_TIME - timedelta(days=2))
    for alert in (created_inside, old):
        touch(alert, window.end, status="IN_PROGRESS")
    kept = make_alert(5, created_at=BASE_TIME + 119 * MINUTE)
    world.fake.alerts.extend([created_inside, old, kept])

    assert ids(flat(pull(connector(world), window))) == [kept["alertId"]]
    # The next run's window starts at this end: both are read there.
    got = ids(flat(pull(connector(world), Window(window.end, window.end + MINUTE))))
    assert sorted(got) == sorted([created_inside["alertId"], old["alertId"]])


def test_an_alert_both_passes_meet_is_yielded_once_and_a_late_change_by_the_next_run(
    world: AlertCenterWorld,
) -> None:
    alerts = make_alerts(10, first=20)
    old = make_alert(3, created_at=BASE_TIME - timedelta(days=2))
    touch(old, BASE_TIME + 30 * MINUTE, status="IN_PROGRESS")
    world.fake.alerts.extend([*alerts, old])
    changed = alerts[4]

    def reassign() -> None:  # a change pass 1 could not see, stamped inside the window
        touch(changed, BASE_TIME + 45 * MINUTE, assignee="tier2@example.com")

    def first_update_page(request: Any) -> bool:
        return LIST(request) and request.query.get("orderBy") == ["update_time desc"]

    world.fake.inject(first_update_page, Fault(before=reassign))

    got = flat(pull(connector(world), minutes(0, 60)))

    assert Counter(ids(got)) == Counter(ids([*alerts, old]))  # each once: no pass repeats
    assert world.fake.pending_faults == 0
    # The next run re-reads its overlap (here the whole hour) and gets the late change.
    again = flat(pull(connector(world), minutes(0, 120)))
    assert raw_sha256(changed) in {raw_sha256(a) for a in again}
    assert raw_sha256(changed) not in {raw_sha256(a) for a in got}


def test_a_deleted_alert_comes_back_with_status_deleted(world: AlertCenterWorld) -> None:
    # Whether alerts.list returns alerts marked for deletion is undocumented (vendor-apis
    # §9.5); when it does, they carry deleted=true and the change moves updateTime.
    alert = make_alert(6, created_at=BASE_TIME - timedelta(days=3))
    touch(alert, BASE_TIME + 30 * MINUTE, deleted=True)
    world.fake.alerts.append(alert)
    conn = connector(world)

    [got] = flat(pull(conn, minutes(0, 60)))

    normalized = conn.normalize(scope(), got)
    assert got["deleted"] is True
    assert (normalized.status, normalized.status_raw) == ("deleted", "deleted")
    assert normalized.updated_at == BASE_TIME + 30 * MINUTE


def test_if_google_hides_deleted_alerts_the_last_version_stays(world: AlertCenterWorld) -> None:
    # The other reading of §9.5 (the documented limit): nothing to pull, nothing invented.
    alert = make_alert(7, created_at=BASE_TIME - timedelta(days=3))
    touch(alert, BASE_TIME + 30 * MINUTE, deleted=True)
    world.fake.alerts.append(alert)
    world.fake.list_deleted = False

    assert pull(connector(world), minutes(0, 60)) == []


def test_a_repeated_page_token_stops_the_window(world: AlertCenterWorld) -> None:
    alerts = make_alerts(3)
    world.fake.alerts.extend(alerts)
    looping = Response.json({"alerts": alerts[:1], "nextPageToken": "same-token"})
    world.fake.inject(LIST, Fault(response=looping), times=2)

    with pytest.raises(WindowIncomplete, match="repeated a page token"):
        pull(connector(world), minutes(0, 60))


def test_a_page_token_repeated_two_pages_back_stops_the_window(
        world: AlertCenterWorld) -> None:
    alerts = make_alerts(3)
    for alert, token in zip(alerts, ("one", "two", "one"), strict=True):
        page = Response.json({"alerts": [alert], "nextPageToken": token})
        world.fake.inject(LIST, Fault(response=page))
    read: list[list[Any]] = []

    with pytest.raises(WindowIncomplete, match=r"^Alert Center repeated a page token; stopped"):
        for page in connector(world).fetch(scope(), minutes(0, 60), Memory()):
            read.append(page)

    assert [alert["alertId"] for page in read for alert in page] == [
        alert["alertId"] for alert in alerts]


# -- retries and timeouts ----------------------------------------------------------------------


def test_quota_503_then_429_are_retried_with_growing_backoff(world: AlertCenterWorld) -> None:
    alerts = make_alerts(30)
    world.fake.alerts.extend(alerts)
    world.fake.inject(LIST, Fault(response=quota_exceeded()))
    world.fake.inject(LIST, Fault(response=google_api_error(429, "Quota exceeded")))
    base = 0.2
    started = time.monotonic()

    got = flat(pull(connector(world, retry_base_seconds=base), minutes(0, 60)))

    assert ids(got) == ids(alerts)
    assert world.fake.pending_faults == 0
    assert time.monotonic() - started >= base + 2 * base  # 1st wait = base, 2nd = 2 * base
    assert RETRY_BASE_SECONDS == AlertCenterConnector.options["retry_base_seconds"].default == 5


@pytest.mark.parametrize(("max_retries", "attempts"),
                         [(None, "all 5 attempts"), (1, "all 2 attempts"),
                          (0, "its one attempt (max_retries: 0)")])
def test_a_persistent_quota_error_fails_after_max_retries(
    world: AlertCenterWorld, max_retries: int | None, attempts: str
) -> None:
    world.fake.alerts.extend(make_alerts(3))
    calls = (MAX_RETRIES if max_retries is None else max_retries) + 1
    world.fake.inject(LIST, Fault(response=quota_exceeded()), times=calls)
    overrides = {} if max_retries is None else {"max_retries": max_retries}

    message = source_error(lambda: pull(connector(world, **overrides), minutes(0, 60)), world)

    assert message == (
        "Alert Center answered 503 UNAVAILABLE 'The service is currently unavailable.' to "
        f"{attempts} (quota exceeded or outage); the next run reads the same window again"
    )
    assert len(world.fake.list_requests()) == calls
    assert MAX_RETRIES == AlertCenterConnector.options["max_retries"].default == 4


STALL = 5.0  # seconds


@pytest.mark.parametrize(("matcher", "calls"), [(LIST, 2 + 1), (TOKEN, 1 + 1)],
                         ids=["alerts", "token"])
def test_a_stalled_call_times_out_and_is_retried(world: AlertCenterWorld, matcher: Any,
                                                 calls: int) -> None:
    world.fake.alerts.extend(make_alerts(3))
    world.fake.inject(matcher, Fault(delay=STALL))

    started = time.monotonic()

    got = flat(pull(connector(world, timeout_seconds=0.3), minutes(0, 60)))

    assert len(got) == 3 and world.fake.pending_faults == 0
    # The stalled call was abandoned after the timeout and made again, not waited out.
    assert len([r for r in world.fake.requests if matcher(r)]) == calls
    assert time.monotonic() - started < STALL


def test_a_server_that_never_answers_fails_naming_the_token_endpoint(
    world: AlertCenterWorld,
) -> None:
    world.fake.inject(TOKEN, Fault(delay=1), times=MAX_RETRIES + 1)

    message = source_error(
        lambda: pull(connector(world, timeout_seconds=0.2), minutes(0, 60)), world
    )

    assert message.startswith(f"cannot reach {world.fake.url}/token after all 5 attempts (")
    assert "HTTPS_PROXY/NO_PROXY" in message


def test_an_unreachable_endpoint_is_named(world: AlertCenterWorld) -> None:
    message = source_error(
        lambda: pull(connector(world, api_endpoint="http://127.0.0.1:9"), minutes(0, 60)), world
    )

    assert message.startswith("cannot reach http://127.0.0.1:9 after all 5 attempts (")


def test_a_body_cut_short_is_retried(world: AlertCenterWorld) -> None:
    alerts = make_alerts(12)
    world.fake.alerts.extend(alerts)
    world.fake.inject(LIST, Fault(cut_body=True))

    assert ids(flat(pull(connector(world), minutes(0, 60)))) == ids(alerts)


# -- proxy and TLS -----------------------------------------------------------------------------


def test_http_proxy_and_no_proxy_are_honoured(
    world: AlertCenterWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.fake.alerts.extend(make_alerts(5))
    target = world.fake.url.removeprefix("http://")
    with ConnectProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert len(flat(pull(connector(world), minutes(0, 60)))) == 5
        assert proxy.tunnels and set(proxy.tunnels) == {target}  # token and API calls
        tunnelled = len(proxy.tunnels)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert len(flat(pull(connector(world), minutes(0, 60)))) == 5
        assert len(proxy.tunnels) == tunnelled


def test_https_through_https_proxy_trusts_requests_ca_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy",
                 "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    ca = make_throwaway_ca(tmp_path / "tls")
    with AlertCenterFake(make_key(), tls=ca.server_context()) as fake, ConnectProxy() as proxy:
        fake.alerts.extend(make_alerts(5))
        world = AlertCenterWorld(tmp_path, {}, fake, fake.write_key(tmp_path / "key.json"))
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        url = fake.url

        untrusted = source_error(lambda: pull(connector(world), minutes(0, 60)), world)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_file))
        got = flat(pull(connector(world), minutes(0, 60)))

    assert untrusted == (
        f"the TLS certificate of {url}/token is not trusted (unable to get local issuer "
        "certificate); set REQUESTS_CA_BUNDLE to the CA bundle that signs it"
    )
    assert len(got) == 5
    assert set(proxy.tunnels) == {url.removeprefix("https://")}


# -- auth and errors ---------------------------------------------------------------------------


def test_the_token_is_asked_for_the_subject_and_the_alerts_scope(world: AlertCenterWorld) -> None:
    world.fake.alerts.extend(make_alerts(40))

    pull(connector(world, page_size=10), minutes(0, 60))

    [token_call] = world.fake.token_requests()  # one token for every page of the run
    claims = jwt_claims(token_call)
    assert (claims["sub"], claims["scope"]) == (ADMIN, SCOPE)
    assert claims["iss"] == world.fake.key.client_email
    [issued] = world.fake.tokens.issued
    assert all(r.headers["authorization"] == f"Bearer {issued}"
               for r in world.fake.list_requests())


def delegation_line(world: AlertCenterWorld) -> str:
    return (
        f"grant domain-wide delegation in the {DELEGATION_PATH}: add client ID "
        f"{world.fake.key.client_id} with scope {SCOPE}, and make {ADMIN} an admin allowed to "
        "view Alert Center (changes can take up to 24 h to apply)"
    )


def test_delegation_not_granted_at_the_token_endpoint(world: AlertCenterWorld) -> None:
    world.fake.tokens.delegated_scopes = frozenset()

    message = source_error(lambda: pull(connector(world), minutes(0, 60)), world)

    assert message == (
        "the token endpoint refused the service account (unauthorized_client: Client is "
        "unauthorized to retrieve access tokens using this method, or client not authorized "
        "for any of the scopes requested.): " + delegation_line(world)
    )
    assert "Admin console > Security > API controls > Domain-wide delegation" in message


@pytest.mark.parametrize("code", [401, 403])
def test_permission_errors_name_the_scope_and_the_admin_console_path(
    world: AlertCenterWorld, code: int
) -> None:
    refusal = google_api_error(code, "Not Authorized to access this resource/api")
    world.fake.inject(LIST, Fault(response=refusal), times=3)  # 401 makes google-auth retry

    message = source_error(lambda: pull(connector(world), minutes(0, 60)), world)

    status = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}[code]
    assert message == (
        f"Alert Center refused the call ({code} {status} 'Not Authorized to access this "
        f"resource/api'): " + delegation_line(world)
    )


def test_a_disabled_api_says_to_enable_it(world: AlertCenterWorld) -> None:
    disabled = google_api_error(
        403,
        "Google Workspace Alert Center API has not been used in project 123 before or it is "
        "disabled. Enable it by visiting https://console.developers.google.com/apis/api/"
        "alertcenter.googleapis.com/overview?project=123 then retry.",
    )
    world.fake.inject(LIST, Fault(response=disabled))

    message = source_error(lambda: pull(connector(world), minutes(0, 60)), world)

    assert message.endswith(
        ": enable the Alert Center API (alertcenter.googleapis.com) in the service account's "
        "Google Cloud project"
    )


def test_an_unknown_subject_names_the_subject(world: AlertCenterWorld) -> None:
    conn = connector(world, subject="nobody@example.com")

    message = source_error(lambda: pull(conn, minutes(0, 60)), world)

    assert message.startswith(
        "the token endpoint refused the key or subject (invalid_grant: Invalid email or User "
        "ID): check that nobody@example.com is an existing user of the domain"
    )


def test_a_customer_id_with_its_leading_c_is_explained(world: AlertCenterWorld) -> None:
    message = source_error(
        lambda: pull(connector(world, customer_id="C" + CUSTOMER_ID), minutes(0, 60)), world
    )

    assert message == (
        "Alert Center rejected the request (400 INVALID_ARGUMENT 'Request contains an invalid "
        "argument.'): check subject (an existing admin user) and customer_id (the customer ID "
        "without its leading C)"
    )


def test_another_customer_is_permission_denied(world: AlertCenterWorld) -> None:
    world.fake.inject(LIST, Fault(response=permission_denied()))

    message = source_error(lambda: connector(world).check(), world)

    assert message.startswith("Alert Center refused the call (403 PERMISSION_DENIED 'The caller")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "credentials_file: {path} does not exist; point it at the JSON key of a "
               "service account with domain-wide delegation"),
        ("{not json", "credentials_file: {path} is not JSON; point it at the JSON key"),
        (
            '{"type": "authorized_user", "client_id": "x", "refresh_token": "y"}',
            "credentials_file: {path} is not a service_account key (its type is "
            "'authorized_user'); point it at the JSON key of a service account with "
            "domain-wide delegation (Alert Center accepts no other credentials: user OAuth "
            "cannot be granted https://www.googleapis.com/auth/apps.alerts)",
        ),
        (
            '{"type": "service_account", "token_uri": "https://oauth2.googleapis.com/token"}',
            "credentials_file {path} is not a usable service-account key (Service account "
            "info was not in the expected format, missing fields",
        ),
    ],
    ids=["missing", "not-json", "user-oauth", "incomplete"],
)
def test_an_unusable_key_file_is_one_line(
    world: AlertCenterWorld, tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "broken-key.json"
    if content is not None:
        path.write_text(content)

    message = source_error(
        lambda: pull(connector(world, credentials_file=str(path)), minutes(0, 60)), world
    )

    assert message.startswith(expected.format(path=path))
    assert world.fake.requests == []


def test_check_names_the_customer_and_the_newest_alert(world: AlertCenterWorld) -> None:
    world.fake.alerts.extend(make_alerts(3))

    assert connector(world).check() == (
        f"Alert Center of {CUSTOMER_ID} as {ADMIN}: newest alert created "
        f"{wire_time(BASE_TIME + 2 * MINUTE)}"
    )
    [query] = queries(world.fake, "create_time desc")
    assert query["pageSize"] == "1"


# -- normalize ---------------------------------------------------------------------------------


def expected_entities(index: int) -> dict[str, Any]:
    """What the generator's alert number `index` (< 11) carries, by kind."""
    user = f"user{index % 17}@example.com"
    sender = f"billing-{index % 9}@invoices-{index % 5}.example.net"
    phishing = {
        "users": [user, f"user{(index + 5) % 17}@example.com"],
        "related": {
            "emails": [sender],
            "domains": [sender.split("@")[1]],
            "hashes": [sha256(f"invoice.pdf.html-{index}")],
        },
    }
    device = {
        "id": f"d{index:07d}-8c1f-4e8a",
        "type": "ANDROID",
        "model": "Pixel 8",
        "serial_number": f"R58N{index:06d}X",
        "resource_id": f"AFiQxQ{index:08x}",
        "user": user,
    }
    by_kind: dict[str, dict[str, Any]] = {
        "suspicious_login": {"title": "Suspicious login", "category": "AccountWarning",
                             "users": [user], "related": {"ips": [f"203.0.113.{index + 1}"]}},
        "leaked_password": {"title": "Leaked password", "category": "AccountWarning",
                            "users": [user], "related": {"ips": [f"203.0.113.{index + 1}"]}},
        "user_reported_phishing": {"title": "User reported phishing",
                                   "category": "MailPhishing", **phishing},
        "phishing_reclassification": {"title": "Phishing reclassification",
                                      "category": "MailPhishing", **phishing},
        "malware_reclassification": {
            "title": "Malware reclassification", "category": "MailPhishing", **phishing,
            "related": {**phishing["related"], "hashes": [
                sha256(f"invoice.pdf.html-{index}"), sha256(f"payload.docm-{index}")]},
        },
        "device_compromised": {"title": "Device compromised", "category": "DeviceCompromised",
                               "users": [user], "devices": [device]},
        "suspicious_activity": {"title": "Suspicious activity",
                                "category": "SuspiciousActivity", "users": [user],
                                "devices": [device]},  # two events, one device
        "device_management_rule": {"title": "Device management rule",
                                   "category": "DeviceManagementRule", "users": [user],
                                   "devices": [device]},
        "account_suspension_warning": {"title": "Account suspension warning",
                                       "category": "AccountSuspensionWarning",
                                       "description": "state WARNING; Gmail: SPAM"},
        "activity_rule": {
            "title": "Activity Rule: Mass download of Drive files", "category": "ActivityRule",
            "description": "More than 200 Drive files downloaded by one user within an hour",
        },
        "reporting_rule": {"title": "Reporting Rule: Drive visibility changed to public",
                           "category": "ReportingRule"},
    }
    return by_kind[KINDS[index]]


def sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("index", range(len(KINDS)), ids=KINDS)
def test_normalize_maps_each_alert_kind(world: AlertCenterWorld, index: int) -> None:
    raw = make_alert(index)
    expected = expected_entities(index)

    alert = connector(world).normalize(scope(), raw)

    created = BASE_TIME + index * MINUTE
    assert (alert.native_id, alert.tenant) == (raw["alertId"], CUSTOMER_ID)
    assert alert.title == expected["title"]
    assert alert.created_at == alert.updated_at == alert.changed_at == created
    assert alert.link == f"https://admin.google.com/ac/ac/investigate?alert={raw['alertId']}"
    extra = alert.extra
    assert (extra["type"], extra["product"]) == (raw["type"], raw["source"])
    assert extra["category"] == expected["category"]
    assert extra["description"] == expected.get("description")
    assert extra["users"] == [{"name": u, "email": u} for u in expected.get("users", [])]
    assert extra["devices"] == expected.get("devices", [])
    assert extra["related"] == expected.get("related", {})
    assert extra["first_seen_at"] == created - timedelta(minutes=30)
    assert extra["last_seen_at"] == (None if index % 4 == 3 else created - timedelta(minutes=5))
    assert extra["assignee"] == raw["metadata"].get("assignee")
    record = build_record(SOURCE, "workspace_alertcenter", alert, raw, raw_sha256(raw),
                          format_time(BASE_TIME))
    check_records([record])
    assert record["raw"] is raw


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("HIGH", "high"), ("MEDIUM", "medium"), ("LOW", "low"), (None, "unknown"),
     ("", "unknown"), ("CRITICAL", "unknown")],
)
def test_normalize_maps_severity(world: AlertCenterWorld, severity: str | None,
                                 expected: str) -> None:
    raw = make_alert(0)
    raw["metadata"].pop("severity", None)
    if severity is not None:
        raw["metadata"]["severity"] = severity

    alert = connector(world).normalize(scope(), raw)

    assert (alert.severity, alert.severity_raw) == (expected, severity or None)


@pytest.mark.parametrize(
    ("status", "deleted", "expected"),
    [("NOT_STARTED", False, ("new", "NOT_STARTED")),
     ("IN_PROGRESS", None, ("in_progress", "IN_PROGRESS")),
     ("CLOSED", False, ("resolved", "CLOSED")),
     ("CLOSED", True, ("deleted", "deleted")),
     (None, None, ("unknown", None)),
     ("SNOOZED", None, ("unknown", "SNOOZED"))],
)
def test_normalize_maps_status(world: AlertCenterWorld, status: str | None,
                               deleted: bool | None, expected: tuple[str, str | None]) -> None:
    raw = make_alert(0)
    raw["metadata"].pop("status")
    if status is not None:
        raw["metadata"]["status"] = status
    if deleted is not None:
        raw["deleted"] = deleted

    alert = connector(world).normalize(scope(), raw)

    assert (alert.status, alert.status_raw) == expected


def test_an_unknown_alert_type_is_kept_with_the_generic_mapping(world: AlertCenterWorld) -> None:
    raw = unknown_alert(12)

    alert = connector(world).normalize(scope(), raw)

    assert alert.title == "Quantum entanglement anomaly"
    assert alert.extra["category"] == "QuantumAnomaly"
    assert alert.extra["product"] == "Future product"
    assert alert.extra["users"] == [{"name": "user12@example.com", "email": "user12@example.com"}]
    assert (alert.extra["devices"], alert.extra["related"]) == ([], {})
    record = build_record(SOURCE, "workspace_alertcenter", alert, raw, raw_sha256(raw),
                          format_time(BASE_TIME))
    assert check_records([record])[0]["raw"]["data"]["qubits"] == [{"id": "q1", "fidelity": 0.42}]


def test_normalize_without_metadata_data_or_customer(world: AlertCenterWorld) -> None:
    raw = {"alertId": "a-1", "type": "DeviceCompromised", "createTime": "2026-03-01T00:00:00Z",
           "securityInvestigationToolLink": "string"}

    alert = connector(world, customer_id=None).normalize(scope(), raw)

    assert alert.tenant == "my_customer"
    assert alert.title == "Device compromised"  # an identifier-like type is humanized
    assert (alert.severity, alert.status) == ("unknown", "unknown")
    assert alert.updated_at is None and alert.changed_at == parse_time(raw["createTime"])
    assert alert.link is None  # a placeholder is not a link
    assert connector(world).normalize(scope(), raw).tenant == CUSTOMER_ID


def test_an_alert_without_a_type_is_a_normal_record(world: AlertCenterWorld) -> None:
    raw = {**make_alert(0), "type": ""}

    alert = connector(world).normalize(scope(), raw)

    assert alert.title.startswith("Alert Center alert") and alert.native_id == raw["alertId"]


@pytest.mark.parametrize(
    ("change", "message"),
    [({"alertId": None}, "has no alertId$"),
     ({"createTime": None}, "has no createTime$"),
     ({"createTime": "yesterday"}, "createTime 'yesterday' is not a time$"),
     ({"updateTime": "soon"}, "updateTime 'soon' is not a time$")],
)
def test_normalize_rejects_an_alert_without_what_it_needs(
    world: AlertCenterWorld, change: dict[str, Any], message: str
) -> None:
    raw = {**make_alert(0), **change}
    raw = {key: value for key, value in raw.items() if value is not None}

    with pytest.raises(MalformedAlert, match=message):
        connector(world).normalize(scope(), raw)


def test_normalize_rejects_what_is_not_an_object(world: AlertCenterWorld) -> None:
    with pytest.raises(MalformedAlert, match="not a JSON object"):
        connector(world).normalize(scope(), ["alertId"])


def test_importing_the_connector_does_not_import_google() -> None:
    code = (
        "import sys, alertpull.connectors.workspace_alertcenter; "
        "sys.exit(any(m.split('.')[0] in ('google', 'googleapiclient', 'httplib2', "
        "'google_auth_httplib2') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- the installed CLI, as cron runs it ----------------------------------------------------------


def test_cli_first_run_writes_every_alert_then_nothing_then_one_update(
    workspace: AlertCenterWorld,
) -> None:
    recent = workspace.add(40, first=0, base_time=hours_ago(3), step=timedelta(minutes=4))
    old = make_alert(100, created_at=hours_ago(24 * 10))
    touch(old, hours_ago(1), status="IN_PROGRESS", assignee=ADMIN)
    deleted = make_alert(101, created_at=hours_ago(24 * 5))
    touch(deleted, hours_ago(0.5), deleted=True)
    stale = make_alert(102, created_at=hours_ago(24 * 10))  # untouched since: not pulled
    future = unknown_alert(103, created_at=hours_ago(2))
    workspace.fake.alerts.extend([old, deleted, stale, future])

    first = workspace.fetch()

    assert first.returncode == 0, first.stderr
    records = workspace.records()
    assert len(records) == 43 and "43 written" in first.stderr
    by_id = {r["native_id"]: r for r in records}
    assert set(by_id) == {a["alertId"] for a in [*recent, old, deleted, future]}
    assert by_id[old["alertId"]]["status"] == "in_progress"
    assert by_id[deleted["alertId"]]["status"] == "deleted"
    assert by_id[future["alertId"]]["raw"] == future
    assert {r["tenant"] for r in records} == {CUSTOMER_ID}

    again = workspace.fetch()
    assert again.returncode == 0 and "0 written" in again.stderr
    assert len(workspace.records()) == 43

    updated = recent[7]
    touch(updated, hours_ago(0.1), status="CLOSED")
    assert workspace.fetch().returncode == 0
    versions = [r for r in workspace.records() if r["native_id"] == updated["alertId"]]
    assert len(workspace.records()) == 44
    assert len({r["id"] for r in versions}) == 1
    assert sorted(r["status"] for r in versions) == ["new", "resolved"]
    assert max(versions, key=lambda r: r["updated_at"])["updated_at"] == format_time(
        parse_time(updated["updateTime"])
    )


def test_cli_missing_subject_is_exit_2_with_one_line(workspace: AlertCenterWorld) -> None:
    workspace.write_config(subject=None)

    result = workspace.fetch()

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "alertpull: error: sources.workspace.subject: required key is missing; add it"
    ]
    assert workspace.fake.requests == []


def test_cli_permission_error_is_exit_1_with_the_fix_and_no_secret(
    workspace: AlertCenterWorld,
) -> None:
    workspace.add(5, first=0, base_time=hours_ago(2))
    refusal = google_api_error(403, "Not Authorized to access this resource/api")
    workspace.fake.inject(LIST, Fault(response=refusal), times=100)

    result = workspace.fetch()

    assert result.returncode == 1
    [line] = [line for line in result.stderr.splitlines() if "failed" in line]
    assert SCOPE in line and DELEGATION_PATH in line
    assert "Traceback" not in result.stderr
    assert workspace.records() == []
    written = "".join(p.read_text() for p in workspace.root.rglob("*")
                      if p.is_file() and p.name != "key.json")
    assert_no_secret(result.stdout + result.stderr + written, workspace)
    status = json.loads(workspace.cli("status", "--json").stdout)
    assert status[0]["state"] == "failing" and status[0]["watermark"] is None


def test_cli_transient_quota_error_is_retried_to_success(workspace: AlertCenterWorld) -> None:
    workspace.add(5, first=0, base_time=hours_ago(2))
    workspace.fake.inject(LIST, Fault(response=quota_exceeded()))

    result = workspace.fetch()

    assert result.returncode == 0, result.stderr
    assert "503 UNAVAILABLE; retrying in 0.1" in result.stderr  # retry_base_seconds
    assert len(workspace.records()) == 5
    assert workspace.fake.pending_faults == 0


def test_cli_check_reports_the_customer(workspace: AlertCenterWorld) -> None:
    workspace.add(2, first=0, base_time=hours_ago(1))

    result = workspace.cli("check")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{SOURCE}: ok (Alert Center of {CUSTOMER_ID} as {ADMIN}: newest alert" in result.stdout


def test_demo_replay_serves_what_its_source_block_pulls(workspace: AlertCenterWorld) -> None:
    fake, env_for, source = demo_replay()
    with fake:
        env = env_for(fake.url)
        workspace.config_path.write_text(json.dumps({
            "state": {"backend": "local", "path": "state"},
            "sink": {"type": "jsonl", "path": "alerts"},
            "sources": {"workspace-demo": source},
        }))
        result = workspace.fetch(**env)
    shutil.rmtree(Path(env["ALERTCENTER_DEMO_KEY"]).parent)  # the demo's throwaway key
    assert result.returncode == 0, result.stderr
    records = workspace.records()
    assert len(records) == len(fake.alerts)
    assert {r["status"] for r in records} >= {"new", "in_progress", "resolved", "deleted"}
