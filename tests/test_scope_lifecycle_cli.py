# ruff: noqa: F811  (pytest fixtures imported from tests.graph_env are test parameters)
"""What an operator sees when time or the config moves under a source, through the CLI as cron
runs it (YAML + env only): a retention gap after a long outage, a scope retired by a config
edit, one failing region of several."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from alertpull.timeutil import parse_time, utcnow
from tests.aws_env import REGION, AwsWorld
from tests.fakes.aws import credential_scope, rest_json_error
from tests.fakes.graph_data import make_risk_detections
from tests.fakes.guardduty_data import DETECTOR, make_findings
from tests.fakes.http_fake import Fault, Request
from tests.graph_env import (  # noqa: F401  (the fixtures are used as test parameters)
    GraphWorld,
    graph_world,
    throwaway_ca,
)
from tests.world import hours_ago

RISK_OVERLAP = timedelta(hours=48)  # the risk_detections scope re-reads this much


def status_of(world: Any, source: str) -> dict[str, Any]:
    result = world.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    [row] = [row for row in json.loads(result.stdout) if row["source"] == source]
    return row


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line]


# -- retention gap: Entra risk detections ------------------------------------------------------


def off_for_days(world: GraphWorld, days: int) -> None:
    """What 'days without a run' leaves in state: every watermark that long ago."""
    result = world.cli("cursor", "set", "--source", "entra", "--watermark", f"{days}d")
    assert result.returncode == 0, result.stderr


def test_risk_detections_older_than_their_retention_fail_the_run_naming_the_lost_span(
        graph_world: GraphWorld) -> None:
    graph_world.write_config(streams=["risk_detections"])  # the default retention: 30d
    graph_world.fake.risk_detections.extend(
        make_risk_detections(3, first=0, base_time=hours_ago(24 * 10), step=timedelta(days=3)))
    assert graph_world.fetch("--since", "20d").returncode == 0  # the job ran 40 days ago …
    off_for_days(graph_world, 40)  # … and was off since

    before = utcnow()
    gap_run = graph_world.fetch()

    assert gap_run.returncode == 1, gap_run.stderr
    scope = f"{graph_world.fake.tenant_id}/risk_detections"
    [line] = error_lines(gap_run.stderr)  # one line says it all
    assert "[entra] failed: " in line and scope in line and "the 30d the vendor keeps them" in line
    row = status_of(graph_world, "entra")
    gap = row["retention_gaps"][scope]
    assert gap["retention"] == "30d"
    # Lost: from the watermark minus the scope's overlap up to 30 days before the run.
    lost_from, lost_to = parse_time(gap["from"]), parse_time(gap["to"])
    assert abs(lost_from - (before - timedelta(days=40) - RISK_OVERLAP)) < timedelta(minutes=5)
    assert abs(lost_to - (before - timedelta(days=30))) < timedelta(minutes=5)
    assert f"alerts changed from {gap['from']} to {gap['to']}" in line
    # What remains was pulled and committed: the watermark is current again.
    assert parse_time(row["scopes"][scope]) > before - timedelta(hours=1)
    assert "RETENTION GAP" in graph_world.cli("status").stdout

    # The gap shows until a run succeeds; then it is gone.
    later = graph_world.fetch()
    assert later.returncode == 0, later.stderr
    assert status_of(graph_world, "entra")["retention_gaps"] == {}
    assert "RETENTION GAP" not in graph_world.cli("status").stdout


def test_a_p2_tenant_keeps_risk_detections_90_days_so_40_days_off_lose_nothing(
        graph_world: GraphWorld) -> None:
    graph_world.write_config(streams=["risk_detections"], risk_detections_retention="90d")
    assert graph_world.fetch().returncode == 0
    off_for_days(graph_world, 40)
    detection = make_risk_detections(1, first=0, base_time=hours_ago(24 * 39))[0]
    graph_world.fake.risk_detections.append(detection)

    result = graph_world.fetch()

    assert result.returncode == 0, result.stderr
    assert status_of(graph_world, "entra")["retention_gaps"] == {}
    assert [r["native_id"] for r in graph_world.records()] == [detection["id"]]


def test_a_since_beyond_risk_detections_retention_is_the_users_choice_a_warning(
        graph_world: GraphWorld) -> None:
    graph_world.write_config(streams=["risk_detections"], risk_detections_retention="7d")
    result = graph_world.fetch("--since", "20d")
    assert result.returncode == 0, result.stderr
    assert "older than this source's 7d retention; clamped to" in result.stderr
    assert status_of(graph_world, "entra")["retention_gaps"] == {}


def test_alerts_keep_their_own_180_day_retention_beside_risk_detections(
        graph_world: GraphWorld) -> None:
    assert graph_world.fetch().returncode == 0  # both streams
    off_for_days(graph_world, 40)

    result = graph_world.fetch()

    assert result.returncode == 1
    gaps = status_of(graph_world, "entra")["retention_gaps"]
    assert list(gaps) == [f"{graph_world.fake.tenant_id}/risk_detections"]  # alerts: no gap


# -- retired scope: a region removed from `regions` -----------------------------------------

OTHER = "eu-west-1"


def two_regions(aws: AwsWorld) -> None:
    aws.fake.add_detector(OTHER, DETECTOR, [])
    aws.write_config({"aws": {"type": "guardduty", "regions": [REGION, OTHER]}})


def test_a_region_removed_from_regions_shows_as_retired_and_stays_in_cursor_show(
        aws: AwsWorld) -> None:
    two_regions(aws)
    aws.add(3, first=0, base_time=hours_ago(2))
    assert aws.fetch().returncode == 0
    account = "123456789012"
    removed = f"{account}/{OTHER}/{DETECTOR}"
    assert status_of(aws, "aws")["retired_scopes"] == []

    aws.write_config({"aws": {"type": "guardduty", "regions": [REGION]}})
    assert aws.fetch().returncode == 0

    row = status_of(aws, "aws")
    assert row["retired_scopes"] == [removed]
    assert f"retired (no longer configured): {removed}" in aws.cli("status").stdout
    # Its frozen watermark is not the source's lag: the lag follows the live region.
    kept = f"{account}/{REGION}/{DETECTOR}"
    assert row["watermark"] == row["scopes"][kept]
    shown = json.loads(aws.cli("cursor", "show", "--source", "aws").stdout)
    assert set(shown) == {kept, removed}

    # Configured again, it is live again, and resumes from its own cursor.
    two_regions(aws)
    assert aws.fetch().returncode == 0
    assert status_of(aws, "aws")["retired_scopes"] == []


# -- one failing region ------------------------------------------------------------------------


@pytest.mark.parametrize(("denied_call", "said"), [
    ("/detector", "access denied in eu-west-1: allow guardduty:ListDetectors"),
    (f"/detector/{DETECTOR}/findings", "guardduty:ListFindings"),
], ids=["listing-detectors", "listing-findings"])
def test_one_failing_region_does_not_fail_the_others(aws: AwsWorld, denied_call: str,
                                                     said: str) -> None:
    two_regions(aws)
    aws.add(4, first=0, base_time=hours_ago(2))
    assert aws.fetch().returncode == 0
    account = "123456789012"
    good, bad = f"{account}/{REGION}/{DETECTOR}", f"{account}/{OTHER}/{DETECTOR}"
    marks = status_of(aws, "aws")["scopes"]

    aws.add(5, first=4, base_time=hours_ago(0.5))  # new in the healthy region
    held_back = make_findings(2, first=0, region=OTHER, base_time=hours_ago(0.5))
    aws.fake.findings[(OTHER, DETECTOR)].extend(held_back)
    held_ids = {f["arn"] for f in held_back}
    # An organization policy denies one call in the region: it answers 403 there.
    deny = {OTHER}

    def denied(request: Request) -> bool:
        scope = credential_scope(request)
        return (scope is not None and scope.region in deny and scope.service == "guardduty"
                and request.path == denied_call)

    refusal = rest_json_error(403, "AccessDeniedException", "explicit deny in a service "
                              "control policy")
    aws.fake.inject(denied, Fault(response=refusal), times=1000)

    result = aws.fetch()

    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert f"[aws] failed: {account}/{OTHER}" in line and said in line
    records = aws.records()
    assert {r["native_id"] for r in records} == {f["arn"] for f in aws.findings()}
    assert not held_ids & {r["native_id"] for r in records}
    row = status_of(aws, "aws")
    assert parse_time(row["scopes"][good]) > parse_time(marks[good])  # committed
    assert row["scopes"][bad] == marks[bad]  # left where it was: read again next run
    assert row["retired_scopes"] == []  # failing is not gone

    deny.clear()  # the policy is fixed: the region's findings come in, none lost
    fixed = aws.fetch()
    assert fixed.returncode == 0, fixed.stderr
    assert sorted(r["native_id"] for r in aws.records() if r["native_id"] in held_ids) == sorted(
        held_ids)
    assert parse_time(status_of(aws, "aws")["scopes"][bad]) > parse_time(marks[bad])
