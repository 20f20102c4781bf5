"""The crowdstrike recipe (alertpull/rest/recipes/crowdstrike.yaml) against a Falcon fake,
through the installed CLI as cron runs it."""

from __future__ import annotations

import json
import time

from alertpull.timeutil import parse_time
from tests.fakes.crowdstrike import ALERTS_PATH, TOKEN_PATH, demo_replay, make_alert, touch
from tests.fakes.http_fake import Fault, Response, on
from tests.rest_env import RecipeWorld, falcon_fixture  # noqa: F401  (the `falcon` fixture)
from tests.world import hours_ago

ALERTS = on("POST", ALERTS_PATH)


def populate(falcon: RecipeWorld, count: int = 1500) -> list[dict]:
    """More alerts than one page (1000) holds, changed over the last 20 hours."""
    alerts = [make_alert(n, hours_ago(20 - 19 * n / count), severity=1 + n % 100)
              for n in range(count)]
    falcon.fake.alerts.extend(alerts)
    return alerts


def test_full_pull_then_nothing_then_one_line_per_real_change(falcon: RecipeWorld) -> None:
    alerts = populate(falcon)

    first = falcon.fetch()

    assert first.returncode == 0, first.stderr
    records = falcon.records()
    assert len(records) == 1500 and "2 pages" in first.stderr
    assert len({r["native_id"] for r in records}) == 1500
    assert {r["severity"] for r in records} == {"informational", "low", "medium", "high",
                                                "critical"}
    sample = next(r for r in records if r["native_id"] == alerts[84]["composite_id"])
    assert (sample["severity"], sample["severity_raw"]) == ("critical", "85")
    assert sample["tenant"] == alerts[84]["cid"] and sample["link"].startswith("https://falcon")
    assert sample["devices"][0]["name"] == "host-84"

    again = falcon.fetch()
    assert again.returncode == 0 and "0 written" in again.stderr, again.stderr

    alerts[-1]["status"] = "closed"
    alerts[-1]["updated_timestamp"] = hours_ago(0.3).isoformat()
    assert falcon.fetch().returncode == 0
    versions = sorted((r for r in falcon.records()
                       if r["native_id"] == alerts[-1]["composite_id"]),
                      key=lambda r: r["pulled_at"])  # two runs in one second: any file order
    assert [r["status"] for r in versions] == ["new", "resolved"]


def test_a_touch_only_update_is_not_a_new_version(falcon: RecipeWorld) -> None:
    alerts = populate(falcon, 5)
    assert falcon.fetch().returncode == 0
    touch(alerts[4], parse_time(alerts[4]["updated_timestamp"]).replace(microsecond=0))
    touch(alerts[3], hours_ago(0.2))  # moved into the next run's window, nothing else

    result = falcon.fetch()

    assert result.returncode == 0 and "0 written" in result.stderr, result.stderr
    assert len(falcon.records()) == 5
    # Read again and left out as a version already written: counted, not unseen.
    assert "1 fetched, 0 written, 1 duplicate" in result.stderr, result.stderr


def test_the_window_is_one_fql_filter_pinned_for_every_page(falcon: RecipeWorld) -> None:
    populate(falcon)
    assert falcon.fetch().returncode == 0
    bodies = [r.json() for r in falcon.fake.requests if r.path == ALERTS_PATH]
    assert len(bodies) == 2
    assert {b["filter"] for b in bodies} == {bodies[0]["filter"]}
    assert bodies[0]["filter"].startswith("updated_timestamp:>='")
    assert {b["sort"] for b in bodies} == {"updated_timestamp|asc"}
    assert "after" not in bodies[0] and bodies[1]["after"]


def test_an_expired_token_is_fetched_again(falcon: RecipeWorld) -> None:
    populate(falcon)
    falcon.fake.inject(ALERTS, Fault(before=falcon.fake.expire_tokens))
    result = falcon.fetch()
    assert result.returncode == 0, result.stderr
    assert len([r for r in falcon.fake.requests if r.path == TOKEN_PATH]) == 2


def test_member_cid_is_sent_with_the_token_request(falcon: RecipeWorld) -> None:
    falcon.write_config(member_cid="0123456789abcdef0123456789abcdef")
    assert falcon.cli("check").returncode == 0
    assert falcon.fake.member_cids == ["0123456789abcdef0123456789abcdef"]


def test_wrong_credentials_are_exit_1_with_the_fix_and_no_secret(falcon: RecipeWorld) -> None:
    populate(falcon, 3)
    falcon.fake.client_secret = "rotated"

    result = falcon.fetch()

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "CrowdStrike Falcon refused the credentials at POST /oauth2/token" in result.stderr
    assert falcon.records() == []
    falcon.assert_no_secret(result.stdout, result.stderr)


def test_a_missing_scope_names_it(falcon: RecipeWorld) -> None:
    denied = Response.json({"errors": [{"code": 403, "message": "access denied, authorization "
                                        "failed"}], "resources": []}, 403)
    falcon.fake.inject(ALERTS, Fault(response=denied))
    result = falcon.fetch()
    assert result.returncode == 1
    assert ("HTTP 403 to POST /alerts/combined/alerts/v1 (access denied, authorization failed):"
            " the API client lacks the scope Alerts: READ") in result.stderr


def test_rate_limits_and_server_errors_are_retried(falcon: RecipeWorld) -> None:
    populate(falcon, 10)
    # Falcon's 429 names the Unix time to retry at in its own header, with no Retry-After.
    retry_at = int(time.time()) + 3
    falcon.fake.inject(ALERTS, Fault(response=Response.json(
        {"errors": [{"code": 429, "message": "API rate limit exceeded."}]}, 429,
        {"X-RateLimit-RetryAfter": str(retry_at)})))
    falcon.fake.inject(ALERTS, Fault(response=Response(503, b"")))
    result = falcon.fetch()
    assert result.returncode == 0, result.stderr
    assert len(falcon.records()) == 10 and falcon.fake.pending_faults == 0
    assert time.time() >= retry_at  # the retry waited for the time Falcon named


def test_no_secret_in_output_state_or_logs(falcon: RecipeWorld) -> None:
    populate(falcon, 20)
    result = falcon.cli("-v", "--log-format", "json", "fetch", "--all")
    assert result.returncode == 0, result.stderr
    status = falcon.cli("status", "--json")
    falcon.assert_no_secret(result.stdout, result.stderr, status.stdout)
    tokens = falcon.fake.tokens
    assert tokens and not any(t in falcon.written_text() + result.stderr for t in tokens)


def test_check_makes_one_authenticated_call(falcon: RecipeWorld) -> None:
    result = falcon.cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "src: ok (CrowdStrike Falcon 127.0.0.1:" in result.stdout
    assert [r.path for r in falcon.fake.requests] == [TOKEN_PATH, ALERTS_PATH]


def test_demo_replay_serves_what_its_source_block_pulls(falcon: RecipeWorld) -> None:
    fake, env_for, source = demo_replay()
    with fake:
        falcon.config_path.write_text(json.dumps({
            "state": {"backend": "local", "path": "state"},
            "sink": {"type": "jsonl", "path": "alerts"}, "sources": {"falcon-demo": source}}))
        first = falcon.fetch(**env_for(fake.url))
        second = falcon.fetch(**env_for(fake.url))
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0 and "0 written" in second.stderr
    assert len(falcon.records()) == len(fake.alerts)
