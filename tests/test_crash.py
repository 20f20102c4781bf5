"""Crash safety: SIGKILL a real `alertpull fetch` anywhere, rerun, and every alert
version is in the published output exactly once."""

from __future__ import annotations

import resource
import signal
import subprocess
import time
from collections import Counter
from datetime import timedelta

import pytest

from tests.aws_env import AwsWorld
from tests.conftest import ALERTPULL
from tests.fakes.http_fake import Fault, on
from tests.world import hours_ago

POINTS = [
    "after_page:2",  # mid-pull, part staged but unrecorded
    "before_pending",  # every part staged and fsynced, nothing recorded
    "after_pending",  # pending recorded, nothing published
    "after_publish",  # published, cursor not committed
    "after_commit",  # all done, process dies before exiting
]


def assert_exactly_once(aws: AwsWorld, expected: int) -> None:
    counts = Counter((r["native_id"], r["raw_sha256"]) for r in aws.records())
    assert len(counts) == expected
    assert set(counts.values()) == {1}
    assert not [p for p in aws.alerts.rglob(".*.tmp")], "staged files left behind"


def two_region_world(aws: AwsWorld) -> None:
    aws.fake.add_detector("eu-west-1", "ffffeeee", [])
    aws.add(120, first=0, base_time=hours_ago(3))
    aws.write_config(sources={"aws": {"type": "guardduty", "regions": ["us-east-1",
                                                                       "eu-west-1"]}})


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_delivery_step_then_rerun_is_exactly_once(aws: AwsWorld,
                                                                    point: str) -> None:
    two_region_world(aws)
    crashed = aws.fetch(ALERTPULL_FAILPOINT=point)
    assert crashed.returncode == -signal.SIGKILL
    aws.add(7, first=500, base_time=hours_ago(0.5))  # news between the crash and the rerun
    rerun = aws.fetch()
    assert rerun.returncode == 0, rerun.stderr
    recovers = point in ("after_pending", "after_publish")
    assert ("recovered interrupted run" in rerun.stderr) == recovers
    assert_exactly_once(aws, 127)
    assert aws.fetch().returncode == 0
    assert_exactly_once(aws, 127)


def test_crash_after_an_update_keeps_both_versions_once(aws: AwsWorld) -> None:
    aws.add(20, first=0, base_time=hours_ago(0.8))
    assert aws.fetch().returncode == 0
    finding = aws.findings()[3]
    finding["service"]["count"] += 10
    finding["updatedAt"] = hours_ago(0.1).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert aws.fetch(ALERTPULL_FAILPOINT="after_publish").returncode == -signal.SIGKILL
    assert aws.fetch().returncode == 0
    assert_exactly_once(aws, 21)


@pytest.mark.parametrize("kill_after", [0.3, 0.8, 1.5])
def test_sigkill_at_a_random_moment_of_a_slow_pull(aws: AwsWorld, kill_after: float) -> None:
    aws.add(300, first=0, base_time=hours_ago(5), step=timedelta(seconds=30))
    # Every GetFindings call stalls a little, so the kill lands mid-pull or mid-delivery.
    aws.fake.inject(on("POST"), Fault(delay=0.05), times=1000)
    process = subprocess.Popen([ALERTPULL, "-c", str(aws.config_path), "fetch", "--all"],
                               env=aws.env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(kill_after)
    process.send_signal(signal.SIGKILL)
    process.wait()
    rerun = aws.fetch()
    assert rerun.returncode == 0, rerun.stderr
    assert_exactly_once(aws, 300)


def test_a_full_disk_fails_the_source_cleanly_and_a_rerun_writes_everything_once(
        aws: AwsWorld) -> None:
    aws.add(200, first=0, base_time=hours_ago(3), step=timedelta(seconds=30))

    def small_disk() -> None:  # files may not grow past 64 KiB, as on a full filesystem
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    full = subprocess.run([ALERTPULL, "-c", str(aws.config_path), "fetch", "--all"],
                          env=aws.env, capture_output=True, text=True, preexec_fn=small_disk,
                          check=False)
    assert full.returncode == 1, full.stderr
    assert f"cannot write output under {aws.alerts}: File too large" in full.stderr
    assert "alerts written" not in full.stderr
    assert "Traceback" not in full.stderr
    assert aws.records() == [] and not [p for p in aws.alerts.rglob("*") if p.is_file()]
    assert aws.fetch().returncode == 0
    assert_exactly_once(aws, 200)
