"""The sentinelone recipe (alertpull/rest/recipes/sentinelone.yaml) against a SentinelOne
Management API fake, through the installed CLI as cron runs it."""

from __future__ import annotations

import json

from alertpull.timeutil import format_time
from tests.fakes.http_fake import Fault, Response, on
from tests.fakes.sentinelone import THREATS_PATH, demo_replay, make_threat
from tests.rest_env import RecipeWorld, s1_fixture  # noqa: F401  (the `s1` fixture)
from tests.world import hours_ago

THREATS = on("GET", THREATS_PATH)


def populate(s1: RecipeWorld, count: int = 1200) -> list[dict]:
    threats = [make_threat(n, hours_ago(20 - 19 * n / count),
                           confidence=("malicious", "suspicious")[n % 2],
                           account=("111", "222")[n % 2]) for n in range(count)]
    s1.fake.threats.extend(threats)
    return threats


def test_full_pull_then_nothing_then_one_line_per_change(s1: RecipeWorld) -> None:
    threats = populate(s1)

    first = s1.fetch()

    assert first.returncode == 0, first.stderr
    records = s1.records()
    assert len(records) == 1200 and "2 pages" in first.stderr
    assert {r["tenant"] for r in records} == {"111", "222"}
    assert {(r["severity"], r["severity_raw"]) for r in records} == {
        ("high", "malicious"), ("medium", "suspicious")}
    one = next(r for r in records if r["native_id"] == threats[7]["id"])
    assert one["link"] == f"{s1.fake.url}/incidents/threats/{threats[7]['id']}/overview"
    assert one["devices"] == [{"type": "device", "id": "1600000000000000007",
                               "name": "laptop-7", "os": "windows"}]

    again = s1.fetch()
    assert again.returncode == 0 and "0 written" in again.stderr, again.stderr

    info = threats[3]["threatInfo"]
    info["analystVerdict"], info["incidentStatus"] = "false_positive", "resolved"
    info["updatedAt"] = format_time(hours_ago(0.2))
    threats[5]["threatInfo"]["incidentStatus"] = "in_progress"
    threats[5]["threatInfo"]["updatedAt"] = format_time(hours_ago(0.1))
    assert s1.fetch().returncode == 0
    records = s1.records()
    assert len(records) == 1202
    by_id = {r["native_id"]: r for r in sorted(records, key=lambda r: r["pulled_at"])}
    assert (by_id[threats[3]["id"]]["status"], by_id[threats[5]["id"]]["status"]) == (
        "suppressed", "in_progress")


def test_the_query_is_the_pinned_window_sorted_ascending(s1: RecipeWorld) -> None:
    populate(s1)
    assert s1.fetch().returncode == 0
    calls = s1.fake.calls()
    assert len(calls) == 2
    first = calls[0]
    assert (first["sortBy"], first["sortOrder"], first["limit"]) == ("updatedAt", "asc", "1000")
    assert {k: v for k, v in calls[1].items() if k != "cursor"} == first
    assert "accountIds" not in first and "siteIds" not in first


def test_account_and_site_filters_are_sent_comma_separated(s1: RecipeWorld) -> None:
    populate(s1, 10)
    s1.write_config(account_ids=["111"], site_ids=["9876543210987654321", "5"])
    assert s1.fetch().returncode == 0
    assert s1.fake.calls()[0]["accountIds"] == "111"
    assert s1.fake.calls()[0]["siteIds"] == "9876543210987654321,5"
    assert {r["tenant"] for r in s1.records()} == {"111"}


def test_an_invalid_token_is_exit_1_with_the_fix_and_no_secret(s1: RecipeWorld) -> None:
    populate(s1, 3)
    s1.fake.token = "rotated"
    result = s1.fetch()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("SentinelOne answered HTTP 401 to GET /web/api/v2.1/threats (Authentication "
            "Failed): the API token is invalid or expired") in result.stderr
    s1.assert_no_secret(result.stdout, result.stderr)


def test_throttling_and_outages_are_retried(s1: RecipeWorld) -> None:
    populate(s1, 10)
    s1.fake.inject(THREATS, Fault(response=Response.json(
        {"errors": [{"code": 4290010, "title": "Too many requests"}]}, 429,
        {"Retry-After": "0"})))
    s1.fake.inject(THREATS, Fault(response=Response(502, b"<html>bad gateway</html>")))
    result = s1.fetch()
    assert result.returncode == 0, result.stderr
    assert len(s1.records()) == 10 and s1.fake.pending_faults == 0


def test_a_malformed_threat_is_written_degraded(s1: RecipeWorld) -> None:
    threats = populate(s1, 4)
    threats[2]["threatInfo"]["updatedAt"] = "yesterday"
    result = s1.fetch()
    assert result.returncode == 0, result.stderr
    [degraded] = [r for r in s1.records() if "normalize_error" in r]
    assert degraded["native_id"] == threats[2]["id"]
    assert "threatInfo.updatedAt 'yesterday' is not a time" in degraded["normalize_error"]
    assert len(s1.records()) == 4


def test_no_secret_in_output_state_or_logs(s1: RecipeWorld) -> None:
    populate(s1, 20)
    result = s1.cli("-v", "--log-format", "json", "fetch", "--all")
    assert result.returncode == 0, result.stderr
    s1.assert_no_secret(result.stdout, result.stderr, s1.cli("status", "--json").stdout)


def test_check_makes_one_authenticated_call(s1: RecipeWorld) -> None:
    result = s1.cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "src: ok (SentinelOne 127.0.0.1:" in result.stdout
    assert len(s1.fake.requests) == 1


def test_demo_replay_serves_what_its_source_block_pulls(s1: RecipeWorld) -> None:
    fake, env_for, source = demo_replay()
    with fake:
        s1.config_path.write_text(json.dumps({
            "state": {"backend": "local", "path": "state"},
            "sink": {"type": "jsonl", "path": "alerts"}, "sources": {"s1-demo": source}}))
        first = s1.fetch(**env_for(fake.url))
        second = s1.fetch(**env_for(fake.url))
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0 and "0 written" in second.stderr
    assert len(s1.records()) == len(fake.threats)
