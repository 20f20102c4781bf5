"""The thinkst_canary recipe (alertpull/rest/recipes/thinkst_canary.yaml) against a Canary
console fake: a position cursor on updated_id, and an auth_token in every URL that must
appear nowhere alertpull writes."""

from __future__ import annotations

import json

from tests.fakes.canary import INCIDENTS_PATH, demo_replay
from tests.fakes.http_fake import Fault, Response, on
from tests.fakes.tokens import bind
from tests.rest_env import RecipeWorld, canary_fixture  # noqa: F401  (the `canary` fixture)
from tests.world import hours_ago

INCIDENTS = on("GET", INCIDENTS_PATH)


def populate(canary: RecipeWorld, count: int = 1100) -> None:
    for n in range(count):
        canary.fake.add(n, hours_ago(30 - 29 * n / count), kind=n)


def state(canary: RecipeWorld) -> dict:
    return json.loads((canary.state / "src.json").read_text())


def test_full_pull_then_nothing_then_acknowledgements_as_new_versions(
        canary: RecipeWorld) -> None:
    populate(canary)

    first = canary.fetch()

    assert first.returncode == 0, first.stderr
    records = canary.records()
    # Incidents older than first_run_since are still read: the position starts at 0.
    assert len(records) == 1100 and "3 pages" in first.stderr
    assert {r["severity"] for r in records} == {"high", "medium", "critical", "low"}
    assert all(r["severity_derived"] for r in records)
    assert {r["status"] for r in records} == {"new"}
    assert '"position": 1100' in json.dumps(state(canary))

    again = canary.fetch()
    assert again.returncode == 0 and "0 fetched" in again.stderr, again.stderr
    assert canary.fake.requests[-1].query["incidents_since"] == ["1100"]

    acked = canary.fake.incidents[10]
    canary.fake.acknowledge(acked, hours_ago(0.1))
    assert canary.fetch().returncode == 0
    versions = sorted((r for r in canary.records() if r["native_id"] == acked["id"]),
                      key=lambda r: r["pulled_at"])  # two runs in one second: any file order
    assert [r["status"] for r in versions] == ["new", "resolved"]
    assert len(canary.records()) == 1101


def test_later_pages_send_the_cursor_alone(canary: RecipeWorld) -> None:
    populate(canary, 1100)
    assert canary.fetch().returncode == 0
    queries = [r.query for r in canary.fake.requests]
    assert set(queries[0]) == {"incidents_since", "limit", "auth_token"}
    assert all(set(q) == {"cursor", "auth_token"} for q in queries[1:])


def test_a_failed_run_keeps_the_position(canary: RecipeWorld) -> None:
    populate(canary, 600)
    canary.write_config(max_retries=0)
    second_page = on("GET", INCIDENTS_PATH)
    canary.fake.inject(second_page, Fault(before=lambda: None))  # page 1 served as it is
    canary.fake.inject(second_page, Fault(response=Response(500, b"")))  # page 2 fails
    failed = canary.fetch()
    assert failed.returncode == 1 and "HTTP 500" in failed.stderr
    assert canary.records() == [] and '"position"' not in json.dumps(state(canary))
    result = canary.fetch()
    assert result.returncode == 0, result.stderr
    assert len(canary.records()) == 600


def test_the_auth_token_is_nowhere_alertpull_writes(canary: RecipeWorld) -> None:
    populate(canary, 30)
    # A stall: urllib3's retry warning prints the URL, query string and token included.
    canary.write_config(timeout_seconds=1)
    canary.fake.inject(INCIDENTS, Fault(delay=1.5))
    canary.fake.inject(INCIDENTS, Fault(cut_body=True))
    result = canary.cli("-v", "--log-format", "json", "fetch", "--all")
    assert result.returncode == 0, result.stderr
    assert "Retrying" in result.stderr and "auth_token=***" in result.stderr
    status = canary.cli("status", "--json")
    canary.assert_no_secret(result.stdout, result.stderr, status.stdout)


def test_an_error_echoing_the_url_is_redacted(canary: RecipeWorld) -> None:
    token = canary.fake.auth_token
    canary.fake.inject(INCIDENTS, Fault(response=Response.json(
        {"result": "error", "message": f"bad request /api/v1/incidents/all?auth_token={token}"},
        400)))
    result = canary.fetch()
    assert result.returncode == 1
    assert "auth_token=***" in result.stderr
    canary.assert_no_secret(result.stdout, result.stderr)


def test_a_wrong_token_is_exit_1_with_the_fix(canary: RecipeWorld) -> None:
    canary.fake.auth_token = "reset-by-admin"
    result = canary.fetch()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the auth token is wrong or was reset" in result.stderr


def test_check_makes_one_authenticated_call(canary: RecipeWorld) -> None:
    result = canary.cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "src: ok (Thinkst Canary 127.0.0.1:" in result.stdout
    assert len(canary.fake.requests) == 1


def test_demo_replay_serves_what_its_source_block_pulls(canary: RecipeWorld) -> None:
    fake, env_for, source = demo_replay()
    with fake:
        canary.config_path.write_text(json.dumps({
            "state": {"backend": "local", "path": "state"},
            "sink": {"type": "jsonl", "path": "alerts"}, "sources": {"canary-demo": source}}))
        first = canary.fetch(**env_for(fake.url))
        second = canary.fetch(**env_for(fake.url))
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0 and "0 written" in second.stderr
    assert len(canary.records()) == len(fake.incidents)
    assert {r["status"] for r in canary.records()} == {"new", "resolved"}


def test_a_listing_cut_short_commits_the_position_past_what_was_written(
        canary: RecipeWorld) -> None:
    populate(canary, 1100)
    query = {"incidents_since": "0", "limit": "500"}  # page 1 is served as it is; page 2
    second = canary.fake._page(query, 500)
    second["cursor"]["next"] = bind(500, query)  # points back to itself
    canary.fake.inject(INCIDENTS, Fault(before=lambda: None))
    canary.fake.inject(INCIDENTS, Fault(response=Response.json(second)))

    cut = canary.fetch()

    assert cut.returncode == 0, cut.stderr
    assert "repeated a cursor" in cut.stderr and len(canary.records()) == 1000
    assert state(canary)["scopes"][canary.fake.url.removeprefix("http://")]["cursor"][
        "position"] == 1000
    assert canary.fetch().returncode == 0
    assert sorted(r["raw"]["updated_id"] for r in canary.records()) == list(range(1, 1101))
