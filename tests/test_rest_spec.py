"""The declarative REST engine (alertpull/rest): spec errors, auth kinds, window rendering,
paging, redaction and version_ignores, against a vendor-neutral wire fake."""

from __future__ import annotations

import base64
import copy
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alertpull.config import parse_config
from alertpull.connector import Memory, Scope, Window
from alertpull.connectors import connector_class
from alertpull.errors import ConfigError, SourceError, WindowIncomplete
from alertpull.rest.mapping import version_view
from alertpull.rest.render import format_bound, render, render_all
from alertpull.timeutil import format_time
from tests.conftest import REPO, clean_env, run_cli
from tests.fakes.generic_rest import GenericRestFake
from tests.fakes.http_fake import Fault, Response, on

START = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(hours=1))

BASE_SPEC: dict[str, Any] = {
    "vendor": "Acme EDR",
    "options": {
        "base_url": {"required": True},
        "token": {"required": True, "secret": True},
        "region": {"default": "eu"},
        "team": {},
    },
    "base_url": "{base_url}",
    "auth": {"kind": "bearer", "token": "{token}"},
    "request": {"path": "/v1/alerts",
                "query": {"since": "{start}", "until": "{end}", "region": "{region}",
                          "team": "{team}"}},
    "paging": {"kind": "cursor", "token": "next", "param": "page"},
    "records": "items",
    "fields": {
        "id": "id", "changed_at": "updated", "title": "name",
        "severity": {"path": "score", "ranges": [[0, 49, "low"], [50, 100, "high"]]},
        "status": {"path": "state", "map": {"open": "new", "done": "resolved"}},
        "link_template": "{base_url}/alerts/{id}",
    },
}


def spec(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_SPEC)
    data.update(changes)
    return data


def config(tmp_path: Path, spec_data: Any, **settings: Any) -> dict[str, Any]:
    spec_file = tmp_path / "acme.yaml"
    spec_file.write_text(yaml.safe_dump(spec_data))
    block = {"type": "rest", "spec": "acme.yaml", "base_url": "http://127.0.0.1:1",
             "token": "tok-secret-123", **settings}
    return {"sources": {"acme": block}}


def load(tmp_path: Path, spec_data: Any, **settings: Any) -> Any:
    raw = config(tmp_path, spec_data, **settings)
    return parse_config(raw, str(tmp_path / "alertpull.yaml")).sources["acme"]


def spec_error(tmp_path: Path, spec_data: Any, **settings: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, spec_data, **settings)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture
def fake() -> Iterator[GenericRestFake]:
    with GenericRestFake() as server:
        server.items = [{"id": f"a{n}", "updated": format_time(START + timedelta(minutes=n)),
                         "name": f"Alert {n}", "score": 10 * n, "state": "open"}
                        for n in range(5)]
        yield server


def connector(tmp_path: Path, fake: GenericRestFake, spec_data: Any, **settings: Any) -> Any:
    source = load(tmp_path, spec_data, base_url=fake.url, **settings)
    return connector_class("rest")(source.name, source.settings, logging.getLogger("test"))


def pull(conn: Any, window: Window = WINDOW, memory: Memory | None = None) -> list[Any]:
    return [item for page in conn.fetch(conn.scopes()[0], window, memory or Memory())
            for item in page]


# -- spec errors: exit 2, naming the spec file, the key and the fix --------------------------


def test_an_unknown_key_names_the_file_the_key_and_the_valid_keys(tmp_path: Path) -> None:
    message = spec_error(tmp_path, spec(pagination={"kind": "cursor"}))
    assert message.startswith(f"{tmp_path / 'acme.yaml'}: pagination: unknown key; valid keys")
    assert "paging" in message


def test_a_field_path_that_does_not_parse_is_named(tmp_path: Path) -> None:
    data = spec()
    data["fields"]["changed_at"] = "threatInfo.[updatedAt"
    message = spec_error(tmp_path, data)
    assert "fields.changed_at: 'threatInfo.[updatedAt' is not a JMESPath expression" in message


def test_an_auth_kind_without_its_fields_says_what_it_takes(tmp_path: Path) -> None:
    message = spec_error(tmp_path, spec(auth={"kind": "oauth2_client_credentials",
                                              "token_url": "/token"}))
    assert "auth.client_id: auth kind oauth2_client_credentials needs client_id; add it" in message
    assert "is not an auth kind; use one of bearer, header, query" in spec_error(
        tmp_path, spec(auth={"kind": "magic"}))


def test_a_secret_may_not_appear_outside_auth(tmp_path: Path) -> None:
    data = spec()
    data["request"]["query"]["t"] = "{token}"
    assert "request.query: {token} is a secret; secrets may appear only under auth" in \
        spec_error(tmp_path, data)
    data = spec()
    data["fields"]["link_template"] = "{base_url}/a/{id}?k={token}"
    assert "a link must never carry one" in spec_error(tmp_path, data)


def test_a_template_may_name_only_options_and_the_window(tmp_path: Path) -> None:
    data = spec()
    data["request"]["query"]["page_no"] = "{page}"  # a per-page value: not expressible
    message = spec_error(tmp_path, data)
    assert "{page} is not an option of this spec, start, end or position" in message


def test_bad_values_in_the_spec_are_named(tmp_path: Path) -> None:
    assert "time_format: 'iso' is not a time format" in spec_error(tmp_path,
                                                                  spec(time_format="iso"))
    data = spec()
    data["fields"]["severity"]["map"] = {"x": "severe"}
    assert "'severe' is not a severity" in spec_error(tmp_path, data)
    assert "paging.kind: 'links' is not a paging kind" in spec_error(
        tmp_path, spec(paging={"kind": "links"}))
    assert "fields.title: required key is missing" in spec_error(
        tmp_path, spec(fields={"id": "id", "changed_at": "u"}))


def test_the_options_a_spec_declares_are_validated_like_any_connector_s(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sources.acme.colour: unknown key for type rest; "
                                          r"valid keys are .*region"):
        load(tmp_path, spec(), colour="blue")
    raw = config(tmp_path, spec())
    del raw["sources"]["acme"]["token"]
    with pytest.raises(ConfigError, match=r"sources\.acme\.token: required key is missing"):
        parse_config(raw, str(tmp_path / "alertpull.yaml"))
    source = load(tmp_path, spec())
    assert source.settings["region"] == "eu" and source.settings["team"] is None
    assert "tok-secret-123" not in repr(source.settings)  # the secret is wrapped


def test_a_missing_spec_file_is_exit_2_through_the_cli(tmp_path: Path) -> None:
    raw = config(tmp_path, spec())
    raw["sources"]["acme"]["spec"] = "missing.yaml"
    (tmp_path / "alertpull.yaml").write_text(yaml.safe_dump(raw))
    result = run_cli("-c", str(tmp_path / "alertpull.yaml"), "fetch", "--all",
                     env=clean_env())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "sources.acme.spec: cannot read spec file" in result.stderr
    assert "missing.yaml" in result.stderr


def test_an_inline_spec_works_like_a_file(tmp_path: Path, fake: GenericRestFake) -> None:
    raw = config(tmp_path, spec(), base_url=fake.url)
    raw["sources"]["acme"]["spec"] = spec()
    source = parse_config(raw, str(tmp_path / "alertpull.yaml")).sources["acme"]
    conn = connector_class("rest")(source.name, source.settings, logging.getLogger("t"))
    assert [a["id"] for a in pull(conn)] == [f"a{n}" for n in range(5)]


# -- rendering: once per window, in the declared format ------------------------------------


def test_time_formats() -> None:
    moment = datetime(2026, 11, 1, 10, 0, 1, 250000, tzinfo=UTC)
    assert format_bound(moment, "rfc3339") == "2026-11-01T10:00:01.250Z"
    assert format_bound(moment, "epoch_s") == 1793527201
    assert format_bound(moment, "epoch_ms") == 1793527201250
    assert format_bound(moment, "%Y-%m-%d %H:%M") == "2026-11-01 10:00"


def test_templates_substitute_names_only() -> None:
    values = {"start": "S", "ids": ["1", "2"], "n": 5, "unset": None}
    assert render("updated:>='{start}'+x:{{literal}}", values) == "updated:>='S'+x:{literal}"
    assert render("{n}", values) == 5 and render("{ids}", values) == ["1", "2"]
    assert render("in({ids})", values) == "in(1,2)"
    assert render_all({"a": "{unset}", "b": "{n}"}, values) == {"b": 5}  # unset: not sent


def test_the_window_is_rendered_once_and_pages_add_only_their_token(
        tmp_path: Path, fake: GenericRestFake) -> None:
    conn = connector(tmp_path, fake, spec(time_format="epoch_ms"))
    pull(conn)
    calls = [r.query for r in fake.requests]
    assert len(calls) == 3  # 5 items, 2 a page
    first = {k: v for k, v in calls[0].items()}
    assert first["since"] == [str(format_bound(START, "epoch_ms"))]
    assert "team" not in first  # an unset optional option is not sent
    for later in calls[1:]:
        assert {k: v for k, v in later.items() if k != "page"} == first
        assert later["page"]


@pytest.mark.parametrize("paging", [
    {"kind": "cursor", "token": "next", "param": "page"},
    {"kind": "next_url", "token": "next_url"},
    {"kind": "link_header"},
    {"kind": "offset", "param": "offset", "limit_param": "limit", "limit": 2, "total": "total"},
    {"kind": "page_number", "param": "p"},
], ids=lambda paging: paging["kind"])
def test_every_paging_kind_of_the_engine_reads_every_page_once(
        tmp_path: Path, fake: GenericRestFake, paging: dict[str, Any]) -> None:
    conn = connector(tmp_path, fake, spec(paging=paging))
    assert [a["id"] for a in pull(conn)] == [f"a{n}" for n in range(5)]
    assert 3 <= len(fake.requests) <= 4  # 2 a page (one empty last page for page numbers)


def test_a_bad_base_url_is_a_config_error(tmp_path: Path) -> None:
    assert "plain http would send the credentials unencrypted" in spec_error(
        tmp_path, spec(), base_url="http://api.example.com")


def test_a_repeated_page_token_stops_the_window(tmp_path: Path, fake: GenericRestFake) -> None:
    conn = connector(tmp_path, fake, spec())
    for item in fake.items[:2]:  # two different pages that both point to one next token
        fake.inject(on("GET", "/v1/alerts"),
                    Fault(response=Response.json({"items": [item], "next": "same"})))
    with pytest.raises(WindowIncomplete, match="repeated a page token"):
        pull(conn)


# -- auth kinds ---------------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(("auth", "extra", "accepts"), [
    ({"kind": "bearer", "token": "{token}"}, {},
     lambda r: r.headers.get("authorization") == "Bearer tok-secret-123"),
    ({"kind": "header", "name": "Authorization", "value": "ApiToken {token}"}, {},
     lambda r: r.headers.get("authorization") == "ApiToken tok-secret-123"),
    ({"kind": "query", "param": "key", "value": "{token}"}, {},
     lambda r: r.query.get("key") == ["tok-secret-123"]),
    ({"kind": "basic", "username": "{user}", "password": "{token}"}, {"user": "ann"},
     lambda r: r.headers.get("authorization") == _basic("ann", "tok-secret-123")),
])
def test_static_auth_kinds(tmp_path: Path, fake: GenericRestFake, auth: dict[str, Any],
                           extra: dict[str, Any], accepts: Any) -> None:
    data = spec(auth=auth)
    data["options"]["user"] = {}
    fake.accept = accepts
    conn = connector(tmp_path, fake, data, **extra)
    assert len(pull(conn)) == 5


def test_oauth2_client_credentials_with_extra_form_fields_and_refresh(
        tmp_path: Path, fake: GenericRestFake) -> None:
    data = spec(auth={"kind": "oauth2_client_credentials", "token_url": "/token",
                      "client_id": "{client_id}", "client_secret": "{token}",
                      "form": {"member_cid": "{team}", "scope": "alerts"}})
    data["options"]["client_id"] = {"required": True}
    fake.accept = lambda r: r.headers.get("authorization") == f"Bearer {fake.issued[-1]}"
    conn = connector(tmp_path, fake, data, client_id="cid-1", team="child-7")
    assert len(pull(conn)) == 5
    assert fake.login_forms == [{"client_id": "cid-1", "client_secret": "tok-secret-123",
                                 "member_cid": "child-7", "scope": "alerts"}]
    fake.issue()  # the vendor revokes the token: the next call gets 401, then a new token
    assert len(pull(conn)) == 5
    assert len(fake.login_forms) == 2


def test_a_token_is_fetched_again_before_it_expires(tmp_path: Path,
                                                    fake: GenericRestFake) -> None:
    data = spec(auth={"kind": "oauth2_client_credentials", "token_url": "/token",
                      "client_id": "{region}", "client_secret": "{token}"})
    fake.lifetime = 1  # kept for half its life when that is shorter than a minute
    conn = connector(tmp_path, fake, data)
    pull(conn)
    assert len(fake.issued) == 1  # one token for every page of the window
    time.sleep(0.6)
    pull(conn)
    assert len(fake.issued) == 2  # fetched before use, not after a 401: every call passes


def test_token_login_reads_the_token_from_the_answer(tmp_path: Path,
                                                     fake: GenericRestFake) -> None:
    data = spec(auth={"kind": "token_login", "url": "/login",
                      "json": {"user": "{user}", "password": "{token}"},
                      "token": "session.jwt", "header": "JWT {token}"})
    data["options"]["user"] = {"required": True}
    fake.accept = lambda r: r.headers.get("authorization") == f"JWT {fake.issued[-1]}"
    conn = connector(tmp_path, fake, data, user="ann")
    assert len(pull(conn)) == 5
    assert fake.requests[0].json() == {"user": "ann", "password": "tok-secret-123"}


def test_check_makes_one_authenticated_call(tmp_path: Path, fake: GenericRestFake) -> None:
    fake.accept = lambda r: r.headers.get("authorization") == "Bearer tok-secret-123"
    conn = connector(tmp_path, fake, spec())
    assert conn.check().startswith("Acme EDR 127.0.0.1:")
    assert len(fake.requests) == 1


# -- secrets and errors -------------------------------------------------------------------


def test_a_query_secret_is_redacted_from_errors_and_links(tmp_path: Path,
                                                          fake: GenericRestFake) -> None:
    data = spec(auth={"kind": "query", "param": "key", "value": "{token}"},
                errors={"message": "error.message"})
    data["fields"]["link_template"] = "{base_url}/alerts/{id}"
    conn = connector(tmp_path, fake, data)
    echo = Response.json({"error": {"message": "key tok-secret-123 is revoked"}}, 403)
    fake.inject(on("GET", "/v1/alerts"), Fault(response=echo))
    with pytest.raises(SourceError) as caught:
        pull(conn)
    message = str(caught.value)
    assert "HTTP 403 to GET /v1/alerts (key *** is revoked)" in message
    assert "tok-secret-123" not in message
    record = conn.normalize(Scope("x"), {**fake.items[0], "id": "tok-secret-123"})
    assert record.link and "tok-secret-123" not in record.link


def test_a_401_names_the_secret_options_to_check(tmp_path: Path, fake: GenericRestFake) -> None:
    fake.accept = lambda r: False
    with pytest.raises(SourceError, match=r"HTTP 401 to GET /v1/alerts \(.*\): the credentials "
                                          r"are invalid or expired; check token"):
        pull(connector(tmp_path, fake, spec(errors={"message": "error.message"})))


# -- mapping ---------------------------------------------------------------------------------


def test_mapping_ranges_maps_and_link(tmp_path: Path, fake: GenericRestFake) -> None:
    conn = connector(tmp_path, fake, spec())
    alert = conn.normalize(Scope("x"), fake.items[4])
    assert (alert.severity, alert.severity_raw, alert.status) == ("low", "40", "new")
    assert alert.link == f"{fake.url}/alerts/a4"
    assert alert.changed_at == START + timedelta(minutes=4)
    odd = conn.normalize(Scope("x"), {**fake.items[0], "score": 500, "state": "??"})
    assert (odd.severity, odd.status, odd.status_raw) == ("unknown", "unknown", "??")


def test_version_view_drops_ignored_fields_and_keeps_raw() -> None:
    raw = {"a": 1, "updated_timestamp": "t1", "meta": {"touched": "x", "keep": 2}}
    view = version_view(raw, ("updated_timestamp", "meta.touched"))
    assert view == {"a": 1, "meta": {"keep": 2}}
    assert raw == {"a": 1, "updated_timestamp": "t1", "meta": {"touched": "x", "keep": 2}}
    assert version_view(raw, ()) is raw


def test_the_generic_fake_refuses_a_page_token_of_another_query(fake: GenericRestFake) -> None:
    import requests

    first = requests.get(f"{fake.url}/v1/alerts", params={"since": "a"}, timeout=5).json()
    other = requests.get(f"{fake.url}/v1/alerts", params={"since": "b", "page": first["next"]},
                         timeout=5)
    assert other.status_code == 400


def test_the_worked_example_of_the_docs_is_the_shipped_example_spec(tmp_path: Path) -> None:
    page = (REPO / "docs" / "declarative.md").read_text()
    example = (REPO / "docs" / "specs" / "acme-edr.yaml").read_text()
    shown = page.split("# specs/acme-edr.yaml (this file is docs/specs/acme-edr.yaml)\n")[1]
    assert example.split("\n", 1)[1] == shown.split("```", 1)[0]
    source = load(tmp_path, yaml.safe_load(example), base_url="https://api.acme.example")
    assert source.settings["org"] is None and source.type == "rest"


# -- entities written as field paths ---------------------------------------------------------

ENTITIES_AS_JMESPATH = {
    "devices": "[host.{type: 'device', id: id, name: name, os: os}][?id]",
    "users": "[{type: 'user', id: actor_id, name: actor}][?name]",
    "related": "{ips: [host.ip, remote_ip, host.ip], hashes: [file.sha256]}",
}
ENTITIES_AS_PATHS = {
    "devices": [{"type": "device", "id": "host.id", "name": "host.name", "os": "host.os"}],
    "users": [{"type": "user", "id": "actor_id", "name": "actor", "require": "name"}],
    "related": {"ips": ["host.ip", "remote_ip", "host.ip"], "hashes": ["file.sha256"]},
}
ODD_VALUES = (None, "", 0, False, "text", [], {}, ["x"], {"k": 1})


def _entity_alerts() -> Iterator[dict[str, Any]]:
    """An alert with every entity field, then each value the entities read (and each
    parent of one) replaced by an odd value in turn."""
    read = {"actor_id": "u1", "actor": "ann@example.com", "remote_ip": "198.51.100.7",
            "file": {"sha256": "ab" * 32},
            "host": {"id": "h1", "name": "web-1", "os": "linux", "ip": "10.0.0.5"}}
    alert = {"id": "a1", "updated": format_time(START), "name": "Alert", "score": 50,
             "state": "open", **read}
    yield alert
    for key, value in read.items():
        for odd in ODD_VALUES:
            yield {**alert, key: odd}
        if isinstance(value, dict):
            for inner in value:
                for odd in ODD_VALUES:
                    yield {**alert, key: {**value, inner: odd}}


def test_entities_as_field_paths_read_what_the_jmespath_form_reads(
        tmp_path: Path, fake: GenericRestFake) -> None:
    as_jmespath, as_paths = spec(), spec()
    as_jmespath["fields"].update(ENTITIES_AS_JMESPATH)
    as_paths["fields"].update(ENTITIES_AS_PATHS)
    (tmp_path / "j").mkdir()
    (tmp_path / "p").mkdir()
    one = connector(tmp_path / "j", fake, as_jmespath)
    other = connector(tmp_path / "p", fake, as_paths)
    alerts = list(_entity_alerts())
    read = [(one.normalize(Scope("x"), raw).extra, other.normalize(Scope("x"), raw).extra)
            for raw in alerts]
    assert len(alerts) == 1 + 5 * 9 + 5 * 9  # the alert; 5 keys, then 5 nested ones, x 9
    assert all(a == b for a, b in read), next((a, b) for a, b in read if a != b)
    first = read[0][1]
    assert first["devices"] == [{"type": "device", "id": "h1", "name": "web-1", "os": "linux"}]
    assert first["users"] == [{"type": "user", "id": "u1", "name": "ann@example.com"}]
    assert first["related"] == {"ips": ["10.0.0.5", "198.51.100.7"], "hashes": ["ab" * 32]}
    # An entity without what it requires is left out, as JMESPath's filter leaves it.
    assert "devices" not in other.normalize(Scope("x"), {**alerts[0], "host": {"name": "x"}}).extra


def test_entities_as_field_paths_are_checked_when_the_spec_loads(tmp_path: Path) -> None:
    def error(**fields: Any) -> str:
        data = spec()
        data["fields"].update(fields)
        return spec_error(tmp_path, data)

    assert "fields.devices[0].type: required key is missing" in error(
        devices=[{"id": "host.id"}])
    assert "fields.devices[0]: no field paths" in error(devices=[{"type": "device"}])
    assert "fields.users[0].require: 'id' is not one of its keys (email)" in error(
        users=[{"type": "user", "email": "actor", "require": "id"}])
    assert "fields.devices[0].name: 'host[' is not a JMESPath expression" in error(
        devices=[{"type": "device", "id": "host.id", "name": "host["}])
    assert "fields.related.addresses: not a kind of related; use ips, domains" in error(
        related={"addresses": ["host.ip"]})
    assert "fields.related.ips: expected a list of field paths" in error(related={"ips": "x"})
    assert "fields.category: expected a JMESPath expression, got list" in error(
        category=["summary"])
    assert "fields.devices: expected a JMESPath expression or a list of entities" in error(
        devices={"type": "device"})
