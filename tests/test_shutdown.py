"""SIGTERM and SIGINT stop a real `alertpull fetch` within seconds, even in a stalled
vendor call: exit 143/130 with one line, nothing half-written visible, the cursor where it
was, the lock or S3 lease released, so a rerun right after writes every alert once."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.aws_env import REGION, AwsWorld
from tests.conftest import ALERTPULL
from tests.fakes.aws import credential_scope
from tests.fakes.http_fake import Fault, Request
from tests.s3_fixtures import fake_aws_env, moto_server, unique_bucket
from tests.world import hours_ago

SIGNALS = [(signal.SIGTERM, 143), (signal.SIGINT, 130)]
STALL = 120.0  # seconds: far past any "within seconds", so only a real stop ends the run
STOP_LIMIT = 20.0  # a generous bound for "within a few seconds", not a timing claim
NOTHING_PUBLISHED = "nothing published this run, the next run resumes from the cursor"


def stall_on(aws: AwsWorld, path_end: str, region: str = REGION, nth: int = 1) -> threading.Event:
    """The `nth` matching call stalls for STALL seconds; the event is set as it arrives."""
    arrived = threading.Event()
    seen = 0

    def matches(request: Request) -> bool:
        nonlocal seen
        scope = credential_scope(request)
        if not (request.path.endswith(path_end) and scope and scope.region == region):
            return False
        seen += 1
        return seen == nth

    aws.fake.inject(matches, Fault(delay=STALL, before=arrived.set))
    return arrived


def stop_mid_call(aws: AwsWorld, arrived: threading.Event, signum: int,
                  *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Start `fetch --all`, wait for the stalled call to arrive, send `signum`."""
    process = subprocess.Popen([ALERTPULL, "-q", "-c", str(aws.config_path), "fetch", "--all",
                                *args], env={**aws.env, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert arrived.wait(STOP_LIMIT), "the run never reached the stalled call"
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=STOP_LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def stop_line(result: subprocess.CompletedProcess[str], code: int, signum: int) -> str:
    assert result.returncode == code, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"alertpull: stopped by {signal.Signals(signum).name}; "), line
    assert "Traceback" not in result.stderr
    return line


def assert_exactly_once(aws: AwsWorld, expected: int) -> None:
    counts = Counter((r["native_id"], r["raw_sha256"]) for r in aws.records())
    assert len(counts) == expected
    assert set(counts.values()) == {1}


def staged(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.startswith((".", "_"))]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.glob("*.json")}


@pytest.mark.parametrize(("signum", "code"), SIGNALS)
@pytest.mark.parametrize("where", ["findings/get", "/detector", "/"])
def test_a_stop_in_a_stalled_call_publishes_nothing_and_a_rerun_writes_all_once(
        aws: AwsWorld, signum: int, code: int, where: str) -> None:
    """Stalled in the second page's GetFindings (a scope worker thread, page one already
    staged), in ListDetectors or in STS's GetCallerIdentity (threads of their own while
    the main thread lists scopes)."""
    aws.add(20, first=0, base_time=hours_ago(3))
    assert aws.fetch("--until", "2h").returncode == 0  # a cursor to keep, 2 h ago
    before, cursor = aws.records(), snapshot(aws.state)
    aws.add(100, first=20, base_time=hours_ago(1.5), step=timedelta(seconds=30))
    arrived = stall_on(aws, where, nth=2 if where == "findings/get" else 1)

    result = stop_mid_call(aws, arrived, signum)

    assert stop_line(result, code, signum).endswith(f"; aws: {NOTHING_PUBLISHED}")
    assert aws.records() == before
    assert staged(aws.alerts) == []
    assert snapshot(aws.state) == cursor
    rerun = aws.fetch()
    assert rerun.returncode == 0, rerun.stderr
    assert "recovered interrupted run" not in rerun.stderr
    assert_exactly_once(aws, 120)


def test_a_stop_keeps_what_earlier_sources_published_and_names_those_not_run(
        aws: AwsWorld) -> None:
    aws.fake.add_detector("eu-west-1", "ffffeeee", [])
    aws.add(30, first=0, base_time=hours_ago(2))
    aws.write_config(sources={
        "a-done": {"type": "guardduty", "regions": [REGION]},
        "b-stalls": {"type": "guardduty", "regions": ["eu-west-1"]},
        "c-waits": {"type": "guardduty", "regions": [REGION]},
    })
    arrived = stall_on(aws, "/findings", region="eu-west-1")

    result = stop_mid_call(aws, arrived, signal.SIGTERM)

    line = stop_line(result, 143, signal.SIGTERM)
    assert line.endswith(f"; b-stalls: {NOTHING_PUBLISHED}; not run: c-waits"), line
    assert {r["source"] for r in aws.records()} == {"a-done"}
    assert_exactly_once(aws, 30)
    assert sorted(p.name for p in aws.state.glob("*.json")) == ["a-done.json"]
    rerun = aws.fetch()
    assert rerun.returncode == 0, rerun.stderr
    assert Counter(r["source"] for r in aws.records()) == {"a-done": 30, "c-waits": 30}


def test_sigterm_releases_the_s3_lease_at_once(aws: AwsWorld,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With the default 900 s lease, a lease left behind would lock the rerun out (75)."""
    fake_aws_env(monkeypatch)
    aws.add(120, first=0, base_time=hours_ago(2), step=timedelta(seconds=30))
    bucket = unique_bucket()
    with moto_server() as endpoint:
        client: Any = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=bucket)
        aws.write_config(state={"backend": "s3", "bucket": bucket})
        arrived = stall_on(aws, "findings/get", nth=2)

        result = stop_mid_call(aws, arrived, signal.SIGTERM, AWS_ENDPOINT_URL_S3=endpoint)

        assert stop_line(result, 143, signal.SIGTERM).endswith(f"; aws: {NOTHING_PUBLISHED}")
        keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
        assert keys == set(), "neither a lease nor a state document may be left"
        assert aws.records() == [] and staged(aws.alerts) == []
        rerun = aws.fetch(AWS_ENDPOINT_URL_S3=endpoint)
        assert rerun.returncode == 0, rerun.stderr
        assert_exactly_once(aws, 120)
        keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
        assert keys == {"alertpull/state/aws.json"}
