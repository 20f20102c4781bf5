"""The Kandji connector against a local Kandji API fake (plain HTTP on 127.0.0.1).

Connector-level tests drive the real requests session (alertpull.http policy) against the
fake; the CLI tests run the installed `alertpull` as cron would, configured by YAML + env.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest

from alertpull.config import validate_block
from alertpull.connector import Memory, Scope, Secret, Window
from alertpull.connectors.kandji import KandjiConnector
from alertpull.errors import ConfigError, MalformedAlert, SourceError, WindowIncomplete
from alertpull.record import build_record, raw_sha256
from alertpull.timeutil import format_time, parse_time, utcnow
from tests.conftest import check_records
from tests.fakes.http_fake import Fault, Response, on
from tests.fakes.kandji import (
    AUDIT_PATH,
    DETECTIONS_PATH,
    THREATS_PATH,
    demo_replay,
)
from tests.fakes.kandji_data import (
    ADMIN_ID,
    BASE_TIME,
    Device,
    make_audit_event,
    make_audit_events,
    make_behavioral_detection,
    make_behavioral_detections,
    make_threat_detail,
    make_threat_details,
    release,
    sha256,
)
from tests.kandji_env import (
    ALL_STREAMS,
    SOURCE,
    KandjiWorld,
    kandji_fixture,  # noqa: F401  (the `kandji` fixture)
)
from tests.world import engine_settings, hours_ago

MINUTE = timedelta(minutes=1)
AUDIT, DETECTIONS = on("GET", AUDIT_PATH), on("GET", DETECTIONS_PATH)
THREATS = on("GET", THREATS_PATH)
PATH_OF = {"audit_events": AUDIT_PATH, "behavioral_detections": DETECTIONS_PATH,
           "threat_details": THREATS_PATH}


@pytest.fixture
def world(kandji: KandjiWorld, monkeypatch: pytest.MonkeyPatch) -> KandjiWorld:
    """The world for connector-level tests: no proxy settings leak in from the host."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return kandji


def connector(world: KandjiWorld, **overrides: Any) -> KandjiConnector:
    """A connector with the settings the engine would pass: every option, defaults applied."""
    block = world.source(**overrides)
    del block["type"]
    block["api_token"] = Secret(world.fake.token)
    return KandjiConnector(SOURCE, engine_settings(KandjiConnector, **block),
                           logging.getLogger("test"))


def host(world: KandjiWorld) -> str:
    return world.fake.url.removeprefix("http://")


def scope(world: KandjiWorld, stream: str) -> Scope:
    return Scope(key=f"{host(world)}/{stream}", params={"host": host(world), "stream": stream},
                 snapshot=stream == "threat_details", tenant=host(world))


def pull(conn: KandjiConnector, world: KandjiWorld, stream: str, window: Window | None = None,
         memory: Memory | None = None) -> list[list[Any]]:
    window = window or Window(BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=30))
    return list(conn.fetch(scope(world, stream), window, memory or Memory()))


def flat(pages: list[list[Any]]) -> list[Any]:
    return [item for page in pages for item in page]


def minutes(first: float, last: float) -> Window:
    return Window(BASE_TIME + first * MINUTE, BASE_TIME + last * MINUTE)


def source_error(call: Any, world: KandjiWorld) -> str:
    """The message of the SourceError `call` raises, checked to be one secret-free line."""
    with pytest.raises(SourceError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert world.fake.token not in message
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    return message


# -- scopes and config -----------------------------------------------------------------------


def test_one_scope_per_stream_keyed_by_host_without_calling_kandji(world: KandjiWorld) -> None:
    default = connector(world, streams=None)
    assert default.scopes() == [scope(world, "audit_events"),
                                scope(world, "behavioral_detections")]
    chosen = connector(world).scopes()
    assert [s.key for s in chosen] == [f"{host(world)}/{name}" for name in ALL_STREAMS]
    assert [s.snapshot for s in chosen] == [False, False, True]  # threat details: opt-in
    assert world.fake.requests == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"base_url": "https://acme.api.kandji.io/api/v1"}, "is not a Kandji API URL (it "
         "has a path); use https://SUBDOMAIN.api.kandji.io (EU: https://SUBDOMAIN.api.eu.kandji.io)"),
        ({"base_url": "acme.api.kandji.io"}, "is not a Kandji API URL"),
        ({"base_url": "http://acme.api.kandji.io"}, "plain http would send the API token "
         "unencrypted; use https://"),
    ],
    ids=["path", "no-scheme", "plain-http"],
)
def test_bad_settings_are_config_errors(world: KandjiWorld, overrides: dict[str, Any],
                                        message: str) -> None:
    with pytest.raises(ConfigError, match=r"^sources\.kandji\.") as caught:
        connector(world, **overrides)
    assert message in str(caught.value)


def test_max_retries_may_be_zero_but_not_negative() -> None:
    block = {"base_url": "https://acme.api.kandji.io", "api_token": "t"}
    where = "sources.kandji"

    assert validate_block({**block, "max_retries": 0}, KandjiConnector.options, where,
                          ".")["max_retries"] == 0
    with pytest.raises(ConfigError) as caught:
        validate_block({**block, "max_retries": -1}, KandjiConnector.options, where, ".")
    assert str(caught.value) == ("sources.kandji.max_retries: expected a whole number, 0 or "
                                 "more, got -1")


def test_an_https_base_url_keeps_only_scheme_and_host(world: KandjiWorld) -> None:
    conn = connector(world, base_url="https://acme.api.eu.kandji.io/")
    assert conn.scopes()[0].key == "acme.api.eu.kandji.io/audit_events"


# -- audit events: cursor paging ---------------------------------------------------------------


def test_audit_events_follow_the_cursor_with_the_window_pinned(world: KandjiWorld) -> None:
    events = make_audit_events(1300)
    world.fake.audit_events.extend(reversed(events))  # stored order must not matter
    # Kandji writes its public host into `next`; the token must never go there.
    world.fake.next_base = "http://127.0.0.1:9"

    pages = pull(connector(world), world, "audit_events", minutes(99.5, 1199.5))

    assert [e["id"] for e in flat(pages)] == [e["id"] for e in events[100:1200]]
    assert [len(page) for page in pages] == [500, 500, 100]
    calls = world.fake.calls(AUDIT_PATH)
    pinned = {"limit": "500", "sort_by": "occurred_at",
              "start_date": "2026-03-01T01:39:30.000000Z",
              "end_date": "2026-03-01T19:59:30.000000Z"}
    assert calls[0] == pinned
    assert [{k: v for k, v in c.items() if k != "cursor"} for c in calls[1:]] == [pinned] * 2
    assert len({c["cursor"] for c in calls[1:]}) == 2
    assert {r.headers["authorization"] for r in world.fake.requests} == {
        f"Bearer {world.fake.token}"}


def test_a_repeated_audit_cursor_stops_the_window(world: KandjiWorld) -> None:
    looping = Response.json({"results": make_audit_events(2), "previous": None,
                             "next": f"{world.fake.url}{AUDIT_PATH}?limit=500&cursor=c2FtZQ"})
    world.fake.inject(AUDIT, Fault(response=looping), times=3)

    with pytest.raises(WindowIncomplete, match="repeated a cursor"):
        pull(connector(world), world, "audit_events")


def test_a_cursor_repeated_two_pages_back_stops_the_window(world: KandjiWorld) -> None:
    events = make_audit_events(6)
    link = f"{world.fake.url}{AUDIT_PATH}?limit=500&cursor="
    pages = [Response.json({"results": events[n:n + 2], "next": link + cursor})
             for n, cursor in ((0, "b25l"), (2, "dHdv"), (4, "b25l"))]  # one, two, one
    for page in pages:
        world.fake.inject(AUDIT, Fault(response=page))
    read: list[list[Any]] = []

    with pytest.raises(WindowIncomplete, match="Kandji repeated a cursor of GET /api/v1/audit"):
        for page in connector(world).fetch(scope(world, "audit_events"), minutes(0, 9999),
                                           Memory()):
            read.append(page)

    assert flat(read) == events and len(world.fake.requests) == 3


def test_max_pages_stops_a_runaway_window_after_the_pages_read(world: KandjiWorld) -> None:
    events = make_audit_events(1300)
    world.fake.audit_events.extend(events)
    read: list[list[Any]] = []

    with pytest.raises(WindowIncomplete, match=r"more than max_pages \(2\) pages of GET "):
        for page in connector(world, max_pages=2).fetch(scope(world, "audit_events"),
                                                        minutes(0, 9999), Memory()):
            read.append(page)

    assert flat(read) == events[:1000] and len(world.fake.requests) == 2


def test_a_next_link_without_cursor_is_an_error(world: KandjiWorld) -> None:
    odd = Response.json({"results": [], "next": f"{world.fake.url}{AUDIT_PATH}?page=2"})
    world.fake.inject(AUDIT, Fault(response=odd))

    message = source_error(lambda: pull(connector(world), world, "audit_events"), world)

    assert message == "Kandji's next link for GET /api/v1/audit/events carries no cursor"


# -- behavioral detections: offset paging ------------------------------------------------------


def test_behavioral_detections_are_paged_by_offset_inside_the_window(world: KandjiWorld) -> None:
    detections = make_behavioral_detections(2100)
    world.fake.behavioral_detections.extend(reversed(detections))

    pages = pull(connector(world), world, "behavioral_detections", minutes(49.5, 2049.5))

    assert [d["id"] for d in flat(pages)] == [d["id"] for d in detections[50:2050]]
    calls = world.fake.calls(DETECTIONS_PATH)
    # 2000 found: two full pages, then one more call proves nothing follows.
    assert [c["offset"] for c in calls] == ["0", "1000", "2000"]
    assert all(c == {"sort_by": "detection_date", "limit": "1000", "offset": c["offset"],
                     "detection_date_from": "2026-03-01T00:49:30.000000Z",
                     "detection_date_to": "2026-03-02T10:09:30.000000Z"} for c in calls)
    assert [len(page) for page in pages] == [1000, 1000]


def test_a_repeated_offset_page_stops_the_window(world: KandjiWorld) -> None:
    same = Response.json({"results": make_behavioral_detections(3), "next": "more"})
    world.fake.inject(DETECTIONS, Fault(response=same), times=2)

    with pytest.raises(WindowIncomplete, match="offset 3 with the page before it"):
        pull(connector(world), world, "behavioral_detections")


# -- threat details: a snapshot diffed against memory ----------------------------------------


def recent_threats(count: int, *, first: int = 0) -> list[dict[str, Any]]:
    return make_threat_details(count, first=first, base_time=utcnow() - timedelta(days=5),
                               step=timedelta(minutes=30))


def test_threat_details_first_poll_yields_all_and_remembers_each_version(
    world: KandjiWorld,
) -> None:
    threats = recent_threats(1500)
    stale = make_threat_detail(9999, utcnow() - timedelta(days=8))  # outside 7 days
    world.fake.threat_details.extend([stale, *threats])
    memory = Memory()
    conn = connector(world)

    pages = pull(conn, world, "threat_details", memory=memory)

    assert flat(pages) == threats
    assert [len(page) for page in pages] == [1000, 500]
    calls = world.fake.calls(THREATS_PATH)
    assert [c["offset"] for c in calls] == ["0", "1000"]
    assert all(c["date_range"] == "7" and c["sort_by"] == "detection_date" for c in calls)
    assert memory.current is not None
    versions = memory.current["versions"]
    key = "|".join(threats[0][f] for f in ("device_id", "file_hash", "file_path",
                                           "detection_date"))
    assert len(versions) == 1500 and versions[key] == raw_sha256(threats[0])

    # A backfill calls fetch again for its other windows, with the same Memory: no more.
    assert pull(conn, world, "threat_details", memory=memory) == []
    assert len(world.fake.calls(THREATS_PATH)) == 2


def test_threat_details_next_polls_yield_only_new_and_changed(world: KandjiWorld) -> None:
    threats = recent_threats(6)
    world.fake.threat_details.extend(threats)
    conn = connector(world)
    first = Memory()
    pull(conn, world, "threat_details", memory=first)

    unchanged = Memory(previous=first.current)
    assert pull(conn, world, "threat_details", memory=unchanged) == []
    assert unchanged.current == first.current

    new = recent_threats(1, first=6)[0]
    world.fake.threat_details.append(new)
    release(threats[2], utcnow() - timedelta(hours=1))
    del world.fake.threat_details[0]  # aged out of the range
    later = Memory(previous=unchanged.current)

    changed = flat(pull(conn, world, "threat_details", memory=later))

    assert changed == [threats[2], new]
    released = conn.normalize(scope(world, "threat_details"), threats[2])
    assert released.native_id in first.current["versions"]  # same alert, a new version
    assert (released.status, released.status_raw) == ("suppressed", "RELEASED")
    assert later.current is not None and len(later.current["versions"]) == 6


def test_threat_details_days_sets_the_date_range(world: KandjiWorld) -> None:
    old = make_threat_detail(1, utcnow() - timedelta(days=20))
    world.fake.threat_details.append(old)

    assert flat(pull(connector(world, threat_details_days=30), world, "threat_details")) == [old]
    assert world.fake.calls(THREATS_PATH)[0]["date_range"] == "30"


def test_a_cut_short_threat_listing_fails_and_commits_no_snapshot(world: KandjiWorld) -> None:
    same = Response.json({"results": recent_threats(2), "next": "more"})
    world.fake.inject(THREATS, Fault(response=same), times=2)
    memory = Memory(previous={"versions": {"a": "b"}})

    message = source_error(lambda: pull(connector(world), world, "threat_details",
                                        memory=memory), world)

    assert message.endswith("; the threat details are listed again next run")
    assert memory.current is None


# -- HTTP: retries, pacing, errors -------------------------------------------------------------


@pytest.mark.parametrize("stream", ALL_STREAMS)
@pytest.mark.parametrize("status", [429, 503])
def test_a_throttle_or_outage_is_retried_to_success(world: KandjiWorld, stream: str,
                                                    status: int) -> None:
    world.fake.audit_events.extend(make_audit_events(3))
    world.fake.behavioral_detections.extend(make_behavioral_detections(3))
    world.fake.threat_details.extend(recent_threats(3))
    world.fake.inject(on("GET", PATH_OF[stream]),
                      Fault(response=Response.json({"detail": "Slow down"}, status)))

    assert len(flat(pull(connector(world), world, stream))) == 3
    assert world.fake.pending_faults == 0
    assert len(world.fake.calls(PATH_OF[stream])) == 2


def test_calls_are_paced_by_one_budget_per_base_url(world: KandjiWorld) -> None:
    world.fake.audit_events.extend(make_audit_events(6))
    # localhost: a base_url (so a budget) no other test uses; 36,000/h = one call per 0.1 s.
    base = world.fake.url.replace("127.0.0.1", "localhost")
    one = connector(world, base_url=base, requests_per_hour=36_000, streams=["audit_events"])
    two = connector(world, base_url=base, requests_per_hour=36_000, streams=["audit_events"])
    started = time.monotonic()

    for conn in (one, two, one, two, one):
        conn.check()

    assert time.monotonic() - started >= 0.4  # 5 calls, 4 intervals, whichever source called
    assert len(world.fake.requests) == 5


@pytest.mark.parametrize("stream", ALL_STREAMS)
def test_an_invalid_or_revoked_token_is_one_line_with_the_fix(world: KandjiWorld,
                                                              stream: str) -> None:
    conn = connector(world)
    world.fake.token = "rotated-" + world.fake.token

    message = source_error(lambda: pull(conn, world, stream), world)

    assert message == (
        f"Kandji rejected the API token for GET {PATH_OF[stream]} (401: Invalid token.): the "
        "token is invalid, expired or revoked; create a new API token in Kandji Settings > "
        "Access and update api_token"
    )
    assert len(world.fake.requests) == 1  # 401 is never retried


@pytest.mark.parametrize(
    ("stream", "permission"),
    [("audit_events", "Audit Log > List audit events"),
     ("behavioral_detections", "Threats > Get Behavioral Detections"),
     ("threat_details", "Threats > Get Threat Details")],
)
def test_a_missing_permission_names_it(world: KandjiWorld, stream: str, permission: str) -> None:
    world.fake.permissions.discard(stream)

    message = source_error(lambda: pull(connector(world), world, stream), world)

    assert message == (
        f"Kandji denied GET {PATH_OF[stream]} (403: You do not have permission to perform this "
        f"action.): the API token lacks the permission '{permission}'; tick it in Kandji "
        "Settings > Access > the token > Permissions"
    )
    assert len(world.fake.requests) == 1


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits of the session's retries, recorded instead of slept (a minute otherwise)."""
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    return waits


def test_persistent_throttling_honours_retry_after_then_explains(
    world: KandjiWorld, slept: list[float]
) -> None:
    throttled = Response.json({"detail": "Request was throttled."}, 429, {"Retry-After": "3"})
    world.fake.inject(AUDIT, Fault(response=throttled), times=7)

    message = source_error(lambda: pull(connector(world), world, "audit_events"), world)

    assert message == (
        "Kandji kept rate-limiting GET /api/v1/audit/events (429) after 6 retries: the tenant's "
        "10,000 requests/hour are used up; lower requests_per_hour or share the limit with "
        "fewer API clients; the next run resumes"
    )
    assert len(world.fake.requests) == 7 and slept.count(3.0) == 6


def test_a_persistent_outage_is_explained(world: KandjiWorld, slept: list[float]) -> None:
    world.fake.inject(DETECTIONS, Fault(response=Response(502, b"<html>Bad gateway</html>")),
                      times=7)

    message = source_error(lambda: pull(connector(world), world, "behavioral_detections"), world)

    assert message == ("Kandji failed GET /api/v1/behavioral-detections with HTTP 502 after "
                       "6 retries: <html>Bad gateway</html>; the next run reads the window again")
    assert len(world.fake.requests) == 7


@pytest.mark.parametrize("base", [1.0, 0.25])
def test_retry_base_seconds_sets_the_backoff_of_every_retry(
    world: KandjiWorld, slept: list[float], base: float
) -> None:
    world.fake.inject(AUDIT, Fault(response=Response.json({"detail": "Later."}, 503)), times=4)
    conn = connector(world, max_retries=3, retry_base_seconds=base)

    source_error(lambda: pull(conn, world, "audit_events"), world)

    # urllib3 retries the first at once, then waits base x 2, x 4, each plus jitter < base/2
    assert len(slept) == 2
    for wait, doubling in zip(slept, (2, 4), strict=True):
        assert base * doubling <= wait < base * doubling + base / 2


@pytest.mark.parametrize("max_retries", [0, 2])
def test_max_retries_bounds_the_calls_of_a_persistent_outage(
    world: KandjiWorld, slept: list[float], max_retries: int
) -> None:
    unavailable = Response.json({"detail": "Try again later."}, 503)
    world.fake.inject(AUDIT, Fault(response=unavailable), times=max_retries + 1)
    conn = connector(world, max_retries=max_retries)

    message = source_error(lambda: pull(conn, world, "audit_events"), world)

    assert message.startswith("Kandji failed GET /api/v1/audit/events with HTTP 503 after ")
    assert len(world.fake.requests) == max_retries + 1


def test_a_wrong_host_path_or_body_is_explained(world: KandjiWorld) -> None:
    world.fake.inject(AUDIT, Fault(response=Response.json({"detail": "Not found."}, 404)))
    world.fake.inject(AUDIT, Fault(response=Response(200, b"<html>login</html>")))
    world.fake.inject(AUDIT, Fault(response=Response.json({"count": 0})))
    conn = connector(world, max_retries=0)  # a body that is not JSON is asked for once

    messages = [source_error(lambda: pull(conn, world, "audit_events"), world) for _ in range(3)]

    assert messages == [
        f"Kandji answered 404 to GET /api/v1/audit/events at {world.fake.url}: check base_url, "
        "https://SUBDOMAIN.api.kandji.io (EU: https://SUBDOMAIN.api.eu.kandji.io)",
        "Kandji answered GET /api/v1/audit/events with a body that is not JSON; the next run "
        "reads the window again",
        "Kandji answered GET /api/v1/audit/events without a results list",
    ]


def test_an_unreachable_base_url_is_named(world: KandjiWorld, slept: list[float]) -> None:
    conn = connector(world, base_url="http://127.0.0.1:9")

    message = source_error(lambda: pull(conn, world, "audit_events"), world)

    assert message == ("GET /api/v1/audit/events: cannot reach http://127.0.0.1:9 after 6 "
                       "retries (ConnectionError); check base_url, the network and "
                       "HTTPS_PROXY/NO_PROXY")
    assert len(slept) == 5  # six retries, the first one at once


def test_check_reads_each_stream_once(world: KandjiWorld) -> None:
    assert connector(world).check() == (
        f"Kandji {host(world)}: the API token reads /api/v1/audit/events, "
        "/api/v1/behavioral-detections, /api/v1/threat-details"
    )
    assert [r.query["limit"] for r in world.fake.requests] == [["1"]] * 3
    world.fake.permissions.discard("threat_details")
    message = source_error(lambda: connector(world).check(), world)
    assert "'Threats > Get Threat Details'" in message


# -- normalize -----------------------------------------------------------------------------------


def normalized(world: KandjiWorld, stream: str, raw: dict[str, Any]) -> Any:
    alert = connector(world).normalize(scope(world, stream), raw)
    record = build_record(SOURCE, "kandji", alert, raw, raw_sha256(raw), format_time(BASE_TIME))
    check_records([record])
    assert record["raw"] is raw and alert.tenant == host(world)
    return alert


@pytest.mark.parametrize(
    ("index", "title", "severity", "rule", "category"),
    [
        (0, "Blueprint update: Engineering 0", "informational", "other", "blueprint"),
        (1, "Library item create: Okta Verify", "informational", "other", "library_item"),
        (2, "Device enroll: mac-02", "informational", "other", "device"),
        (3, "Device view", "informational", "other", "device"),
        (4, "EDR threat detected: malware_4", "medium", "edr_detection", "EDR"),
        (5, "EDR behavioral detection detected: KTI_BD_0005", "medium", "edr_detection", "EDR"),
        (6, "EDR threat quarantined: malware_6", "informational", "edr_other", "EDR"),
    ],
    ids=["blueprint", "library-item", "enrollment", "filevault-key", "edr-threat",
         "edr-behavior", "edr-remediation"],
)
def test_normalize_audit_events(world: KandjiWorld, index: int, title: str, severity: str,
                                rule: str, category: str) -> None:
    raw = make_audit_event(index)

    alert = normalized(world, "audit_events", raw)

    assert (alert.native_id, alert.title) == (raw["id"], title)
    assert (alert.severity, alert.severity_raw) == (severity, f"policy:{rule}")
    assert (alert.status, alert.status_raw) == ("new", None)
    assert alert.changed_at == alert.created_at == BASE_TIME + index * MINUTE
    assert (alert.extra["category"], alert.extra["type"]) == (category, raw["action"])
    assert alert.extra["resources"][0]["id"] == raw["target_id"]
    users = [{"type": "user", "id": ADMIN_ID}] if index in (0, 1, 3) else []
    assert alert.extra["users"] == users


@pytest.mark.parametrize(
    ("classification", "threat_status", "severity", "status"),
    [("malicious", "detected", "high", "new"), ("suspicious", "blocked", "medium", "resolved"),
     ("Malicious", "Blocked", "high", "resolved"), ("benign", "dismissed", "unknown", "unknown")],
)
def test_normalize_behavioral_detections(world: KandjiWorld, classification: str,
                                         threat_status: str, severity: str, status: str) -> None:
    raw = make_behavioral_detection(8)
    raw.update(classification=classification, threat_status=threat_status)

    alert = normalized(world, "behavioral_detections", raw)

    detected = BASE_TIME + 8 * MINUTE
    assert alert.native_id == raw["id"]
    assert alert.title == (f"{classification.capitalize()} behavior detected (KTI_BD_0008) "
                           "in osascript")
    assert (alert.severity, alert.severity_raw) == (
        severity, f"policy:classification={classification.lower()}")
    assert (alert.status, alert.status_raw) == (status, threat_status)
    assert alert.changed_at == alert.created_at == alert.updated_at == detected
    assert alert.extra["resolved_at"] == (detected if status == "resolved" else None)
    device = Device(8)
    assert alert.extra["devices"] == [{"type": "device", "id": device.id, "name": device.name,
                                       "serial_number": device.serial}]
    assert alert.extra["users"] == [{"type": "local_account", "name": "root"}]
    assert [(r["role"], r["id"], r["name"]) for r in alert.extra["resources"]] == [
        ("target", "/usr/bin/osascript", "osascript"), ("parent", "/bin/zsh", "zsh")]
    assert alert.extra["related"] == {"hashes": [raw["target_process"]["sha256"],
                                                 raw["parent_process"]["sha256"]]}
    assert alert.extra["description"] == raw["description"]


@pytest.mark.parametrize(
    ("classification", "wire_status", "severity", "status"),
    [("MALWARE", "QUARANTINED", "high", "resolved"), ("PUP", "NOT_QUARANTINED", "low", "new"),
     ("MALWARE", "RELEASED", "high", "suppressed"), ("ADWARE", "DELETED", "unknown", "unknown")],
)
def test_normalize_threat_details(world: KandjiWorld, classification: str, wire_status: str,
                                  severity: str, status: str) -> None:
    raw = make_threat_detail(4)  # detected at BASE_TIME + 4 min, naive (UTC)
    raw.update(classification=classification, status=wire_status)

    alert = normalized(world, "threat_details", raw)

    detected = BASE_TIME + 4 * MINUTE
    assert alert.native_id == "|".join([raw["device_id"], raw["file_hash"], raw["file_path"],
                                        raw["detection_date"]])
    assert (alert.severity, alert.severity_raw) == (
        severity, f"policy:classification={classification.lower()}")
    assert (alert.status, alert.status_raw) == (status, wire_status)
    assert alert.created_at == detected
    quarantined = parse_time(raw["date_of_quarantine"])
    assert alert.changed_at == alert.updated_at == quarantined  # the latest of its dates
    assert alert.extra["resolved_at"] == (quarantined if status == "resolved" else None)
    assert alert.extra["resources"] == [{"type": "file", "id": raw["file_path"],
                                         "name": "malware_4", "sha256": raw["file_hash"],
                                         "process": "chmod"}]
    assert alert.extra["related"] == {"hashes": [sha256("file", 4)]}
    assert alert.extra["devices"][0]["serial_number"] == Device(4).serial
    assert alert.extra["users"] == [{"type": "local_account", "name": "user4"}]


def test_a_released_threat_changes_at_its_release(world: KandjiWorld) -> None:
    raw = release(make_threat_detail(5), BASE_TIME + timedelta(days=2))  # a PUP, not quarantined

    alert = normalized(world, "threat_details", raw)

    assert alert.title == "PUP detected: pup_5"
    assert alert.changed_at == alert.updated_at == BASE_TIME + timedelta(days=2)
    assert alert.extra["description"] == (
        "Released by secops@example.com: Internal build tool, allowed")


@pytest.mark.parametrize(
    ("stream", "raw", "message"),
    [
        ("audit_events", {**make_audit_event(1), "id": ""}, "audit event has no id$"),
        ("audit_events", {**make_audit_event(1), "occurred_at": "soon"},
         "audit event occurred_at 'soon' is not a time$"),
        ("behavioral_detections", {**make_behavioral_detection(1), "detection_date": None},
         "behavioral detection has no detection_date$"),
        ("threat_details", {**make_threat_detail(1), "file_hash": ""},
         "threat detail has no file_hash$"),
        ("threat_details", {**make_threat_detail(1), "detection_date": "yesterday"},
         "threat detail detection_date 'yesterday' is not a time$"),
        ("audit_events", ["not", "an", "object"], "not a JSON object$"),
    ],
    ids=["no-id", "bad-occurred-at", "no-detection-date", "no-file-hash", "bad-date",
         "not-object"],
)
def test_normalize_rejects_what_lacks_what_it_needs(world: KandjiWorld, stream: str, raw: Any,
                                                    message: str) -> None:
    with pytest.raises(MalformedAlert, match=message):
        connector(world).normalize(scope(world, stream), raw)


def test_importing_the_connector_imports_no_vendor_sdk() -> None:
    code = ("import sys, alertpull.connectors.kandji; sys.exit(any(m.split('.')[0] in "
            "('boto3', 'botocore', 'google', 'googleapiclient', 'msal') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- the installed CLI, as cron runs it ---------------------------------------------------------


def populate(world: KandjiWorld) -> dict[str, list[dict[str, Any]]]:
    """12 audit events and 6 behavioral detections in the last 3 hours, 5 threat details."""
    data = {
        "audit_events": make_audit_events(12, base_time=hours_ago(3), step=timedelta(minutes=9)),
        "behavioral_detections": make_behavioral_detections(6, base_time=hours_ago(3),
                                                            step=timedelta(minutes=20)),
        "threat_details": recent_threats(5),
    }
    world.fake.audit_events.extend(data["audit_events"])
    world.fake.behavioral_detections.extend(data["behavioral_detections"])
    world.fake.threat_details.extend(data["threat_details"])
    return data


def test_cli_first_run_writes_all_then_nothing_then_one_line_per_change(
    kandji: KandjiWorld,
) -> None:
    data = populate(kandji)

    first = kandji.fetch()

    assert first.returncode == 0, first.stderr
    records = kandji.records()
    assert len(records) == 23 and "23 written" in first.stderr
    assert {r["tenant"] for r in records} == {host(kandji)}
    assert {r["severity"] for r in records} == {"informational", "medium", "high", "low"}
    assert all(r["severity_derived"] is True for r in records)  # Kandji rates nothing

    again = kandji.fetch()
    assert again.returncode == 0 and "0 written" in again.stderr, again.stderr
    assert len(kandji.records()) == 23

    released = release(data["threat_details"][0], hours_ago(0.2))
    kandji.fake.audit_events.append(make_audit_event(50, hours_ago(0.1)))
    assert kandji.fetch().returncode == 0
    records = kandji.records()
    assert len(records) == 25
    key = "|".join(released[f] for f in ("device_id", "file_hash", "file_path", "detection_date"))
    versions = sorted((r for r in records if r["native_id"] == key), key=lambda r: r["pulled_at"])
    assert len({r["id"] for r in versions}) == 1
    assert [r["status"] for r in versions] == ["resolved", "suppressed"]


def test_cli_backfill_windows_list_threat_details_once(kandji: KandjiWorld) -> None:
    populate(kandji)
    older = [make_audit_event(100 + n, hours_ago(60 - 6 * n)) for n in range(4)]  # 60h..42h ago
    kandji.fake.audit_events.extend(older)
    assert kandji.fetch().returncode == 0  # the last 24 h
    threat_calls = len(kandji.fake.calls(THREATS_PATH))

    backfill = kandji.fetch("--since", "3d")  # a gap window and the incremental one

    assert backfill.returncode == 0, backfill.stderr
    counts: dict[str, int] = {}
    for record in kandji.records():
        counts[record["native_id"]] = counts.get(record["native_id"], 0) + 1
    assert len(counts) == 23 + 4 and set(counts.values()) == {1}
    assert len(kandji.fake.calls(THREATS_PATH)) == threat_calls + 1


def test_cli_invalid_token_is_exit_1_with_the_fix_and_no_secret(kandji: KandjiWorld) -> None:
    populate(kandji)
    old_token = kandji.fake.token
    kandji.fake.token = "revoked-and-replaced"

    result = kandji.fetch()

    assert result.returncode == 1
    [line] = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert "create a new API token in Kandji Settings > Access" in line
    assert "Traceback" not in result.stderr
    assert kandji.records() == []
    written = "".join(p.read_text() for p in kandji.root.rglob("*") if p.is_file())
    assert old_token not in result.stdout + result.stderr + written
    status = json.loads(kandji.cli("status", "--json").stdout)
    assert status[0]["state"] == "failing" and status[0]["watermark"] is None


def test_cli_a_missing_permission_fails_that_stream_only(kandji: KandjiWorld) -> None:
    populate(kandji)
    kandji.fake.permissions.discard("behavioral_detections")

    result = kandji.fetch()

    assert result.returncode == 1
    assert "lacks the permission 'Threats > Get Behavioral Detections'" in result.stderr
    written = {r["raw"].get("id") or "threat" for r in kandji.records()}
    assert len(kandji.records()) == 17 and len(written) == 13  # audit + threat details


def test_cli_throttling_is_retried_to_success(kandji: KandjiWorld) -> None:
    populate(kandji)
    kandji.fake.inject(AUDIT, Fault(response=Response.json({"detail": "Throttled"}, 429)))
    kandji.fake.inject(THREATS, Fault(response=Response(503, b"")))

    result = kandji.fetch()

    assert result.returncode == 0, result.stderr
    assert len(kandji.records()) == 23 and kandji.fake.pending_faults == 0


def test_cli_writes_a_malformed_object_degraded_with_a_warning(kandji: KandjiWorld) -> None:
    data = populate(kandji)
    data["audit_events"][4]["occurred_at"] = None
    data["behavioral_detections"][2]["detection_date"] = "not-a-date"
    del data["threat_details"][1]["file_hash"]

    result = kandji.fetch()

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if " degraded: " in line]
    assert len(warnings) == 3
    assert any(f"alert {data['audit_events'][4]['id']} degraded: Kandji audit event has no "
               "occurred_at"
               in w for w in warnings)
    assert any("detection_date 'not-a-date' is not a time" in w for w in warnings)
    assert any("threat detail 'malware_1'" in w and "has no file_hash" in w for w in warnings)
    records = kandji.records()
    assert len(records) == 23 and "3 degraded" in result.stderr
    degraded = {r["native_id"]: r for r in records if "normalize_error" in r}
    assert data["audit_events"][4]["id"] in degraded
    assert data["behavioral_detections"][2]["id"] in degraded
    [unnamed] = [r for r in degraded.values() if r["native_id"].startswith("sha256:")]
    assert unnamed["native_id"] == f"sha256:{unnamed['raw_sha256']}"
    assert unnamed["title"] == data["threat_details"][1]["threat_name"]
    assert unnamed["raw"] == data["threat_details"][1]
    assert {r["severity"] for r in degraded.values()} == {"unknown"}


def test_cli_missing_token_is_exit_2(kandji: KandjiWorld) -> None:
    kandji.write_config(api_token=None)

    result = kandji.fetch()

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "alertpull: error: sources.kandji.api_token: required key is missing; add it"]
    assert kandji.fake.requests == []


def test_cli_check_reports_the_tenant(kandji: KandjiWorld) -> None:
    result = kandji.cli("check")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{SOURCE}: ok (Kandji {host(kandji)}: the API token reads" in result.stdout


def test_demo_replay_serves_what_its_source_block_pulls(kandji: KandjiWorld) -> None:
    fake, env_for, source = demo_replay()
    with fake:
        kandji.config_path.write_text(json.dumps({
            "state": {"backend": "local", "path": "state"},
            "sink": {"type": "jsonl", "path": "alerts"},
            "sources": {"kandji-demo": source},
        }))
        first = kandji.fetch(**env_for(fake.url))
        second = kandji.fetch(**env_for(fake.url))
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0 and "0 written" in second.stderr
    records = kandji.records()
    total = len(fake.audit_events) + len(fake.behavioral_detections) + len(fake.threat_details)
    assert len(records) == total
    assert {r["status"] for r in records} == {"new", "resolved", "suppressed"}
