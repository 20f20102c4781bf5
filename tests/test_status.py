"""`alertpull status [--json]`: per source, what the state says (watermark, lag, last
success, last failure and why, last run's counts), without calling any vendor."""

from __future__ import annotations

import json
from typing import Any

from alertpull.timeutil import parse_time
from tests.aws_env import AwsWorld
from tests.world import hours_ago

SOURCES = {
    "aws": {"type": "guardduty", "regions": ["us-east-1"]},
    "broken": {"type": "guardduty", "regions": ["us-east-1"],
               "endpoint_url": "http://127.0.0.1:9", "max_retries": 0},  # nothing listens there
}


def rows(aws: AwsWorld) -> dict[str, dict[str, Any]]:
    result = aws.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    return {row["source"]: row for row in json.loads(result.stdout)}


def test_status_shows_each_source_with_its_failure_reason_on_one_line(aws: AwsWorld) -> None:
    aws.add(3, first=0, base_time=hours_ago(2))
    aws.write_config(sources=SOURCES)
    assert aws.fetch().returncode == 1
    by_name = rows(aws)
    ok, broken = by_name["aws"], by_name["broken"]
    assert ok["state"] == "ok" and ok["last_failure"] is None
    assert ok["last_run"]["counts"]["written"] == 3 and ok["last_success"]
    assert parse_time(ok["watermark"]) <= parse_time(ok["last_success"])
    assert 0 <= ok["lag_seconds"] < 600 and ok["lag"]
    assert broken["state"] == "failing" and broken["last_success"] is None
    assert "127.0.0.1:9" in broken["last_failure"]["error"]
    assert "\n" not in broken["last_failure"]["error"]

    text = aws.cli("status").stdout.splitlines()
    assert len(text) == 2
    [aws_line] = [line for line in text if line.startswith("aws (guardduty): ok")]
    assert f"watermark {ok['watermark']}" in aws_line
    assert "last run wrote 3 of 3 (0 duplicate, 0 degraded)" in aws_line
    [broken_line] = [line for line in text if line.startswith("broken (guardduty): failing")]
    assert "last success never" in broken_line
    assert f"last failure {broken['last_failure']['at']}: " in broken_line
    assert "127.0.0.1:9" in broken_line


def test_status_reads_state_only_and_never_calls_the_vendor(aws: AwsWorld) -> None:
    aws.add(3, first=0, base_time=hours_ago(2))
    assert aws.fetch().returncode == 0
    calls = len(aws.fake.requests)
    assert rows(aws)["aws"]["state"] == "ok"
    assert aws.cli("status").returncode == 0
    assert len(aws.fake.requests) == calls


def test_a_recovered_source_is_ok_and_still_shows_its_last_failure(aws: AwsWorld) -> None:
    aws.write_config(sources={"aws": SOURCES["broken"]})
    assert aws.fetch().returncode == 1
    failure = rows(aws)["aws"]["last_failure"]
    aws.write_config()
    aws.add(2, first=0, base_time=hours_ago(1))
    assert aws.fetch().returncode == 0
    row = rows(aws)["aws"]
    assert row["state"] == "ok" and row["last_failure"] == failure
    assert parse_time(row["last_success"]) > parse_time(failure["at"])


def test_an_unreadable_state_document_does_not_hide_the_other_sources(aws: AwsWorld) -> None:
    aws.write_config(sources={"aws": SOURCES["aws"], "other": SOURCES["aws"]})
    aws.add(2, first=0, base_time=hours_ago(1))
    assert aws.fetch().returncode == 0
    (aws.state / "other.json").write_text("{not json")
    by_name = rows(aws)
    assert by_name["aws"]["state"] == "ok"
    assert by_name["other"]["state"] == "unreadable state"
    assert by_name["other"]["last_failure"]["error"]
