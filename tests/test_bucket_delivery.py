"""The installed CLI against bucket sinks and state, as cron runs it (YAML and env only):
GCS effectively-once under SIGKILL, GCS shared by two hosts, `alertpull alerts` over GCS,
and a run that lost its lease (S3 and GCS) publishing and committing nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.aws_env import AwsWorld
from tests.bucket_backends import Backend, bucket_backend
from tests.conftest import ALERTPULL, run_cli
from tests.test_crash import POINTS
from tests.world import hours_ago


@pytest.fixture
def gcs(aws: AwsWorld) -> Any:
    with bucket_backend("gcs", aws.env) as backend:
        yield backend


def assert_exactly_once(backend: Backend, aws: AwsWorld, validate: Any) -> None:
    records = validate(backend.records())
    counts = Counter((r["native_id"], r["raw_sha256"]) for r in records)
    assert sorted(native for native, _ in counts) == sorted(f["arn"] for f in aws.findings())
    assert set(counts.values()) == {1}, "a version was published twice"


@pytest.mark.parametrize("point", POINTS)
def test_gcs_sigkill_at_each_delivery_step_then_rerun_is_exactly_once(
        aws: AwsWorld, gcs: Backend, point: str, validate_records: Any) -> None:
    aws.add(120, first=0, base_time=hours_ago(3))  # several pages: after_page:2 is mid-pull
    spool = aws.root / "spool"
    aws.write_config(state=gcs.state(lease_seconds=1), sink=gcs.sink(spool_dir=str(spool)))

    crashed = aws.fetch(ALERTPULL_FAILPOINT=point, **gcs.env)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    aws.add(5, first=500, base_time=hours_ago(0.5))  # news between the crash and the rerun
    # The killed run's lease outlives it: the rerun takes it over once it has expired.
    gcs.wait_for_lease_to_expire("aws")

    rerun = aws.fetch(**gcs.env)
    assert rerun.returncode == 0, rerun.stderr
    assert "has expired; taking it over" in rerun.stderr
    recovers = point in ("after_pending", "after_publish")
    assert ("recovered interrupted run" in rerun.stderr) == recovers
    assert_exactly_once(gcs, aws, validate_records)
    assert list(spool.iterdir()) == [], "staged parts left in the spool"
    assert "alertpull/state/aws.lock" not in gcs.object_keys(), "the rerun released its lease"

    assert aws.fetch(**gcs.env).returncode == 0
    assert_exactly_once(gcs, aws, validate_records)


def test_two_hosts_sharing_gcs_state_pull_a_source_once(aws: AwsWorld, gcs: Backend) -> None:
    """Two concurrent runs of one config (two CronJob pods on GKE): exactly one pulls, the
    other exits 75 and writes nothing."""
    aws.add(40, first=0, base_time=hours_ago(2))
    aws.fake.latency = 0.2  # keep the winner busy for a second while the other one starts
    aws.write_config(state=gcs.state(), sink=gcs.sink())
    hosts = []
    for host in ("host-a", "host-b"):
        (aws.root / host).mkdir()
        hosts.append(aws.root / host)
    env = {**aws.env, **gcs.env}
    runs = [subprocess.Popen([ALERTPULL, "-c", str(aws.config_path), "fetch", "--all"],
                             env=env, cwd=host, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
            for host in hosts]
    results = [(run.wait(timeout=60), run.communicate()[1]) for run in runs]
    assert sorted(code for code, _ in results) == [0, 75], results
    loser = next(stderr for code, stderr in results if code == 75)
    assert "locked by" in loser and "gs://" in loser
    records = gcs.records()
    assert len(records) == 40 == len({r["native_id"] for r in records})


def test_alerts_and_status_read_a_gcs_log_and_state(aws: AwsWorld, gcs: Backend) -> None:
    aws.add(6, first=0, base_time=hours_ago(0.8))
    gcs.client.page_size = 2  # the reader must follow the listing's pageTokens
    aws.write_config(state=gcs.state(), sink=gcs.sink(spool_dir=str(aws.root / "spool")))
    assert aws.fetch(**gcs.env).returncode == 0
    aws.write_config(sources={"aws": {"type": "guardduty", "regions": ["us-east-1"]},
                              "aws-2": {"type": "guardduty", "regions": ["us-east-1"]}},
                     state=gcs.state(), sink=gcs.sink(spool_dir=str(aws.root / "spool")))
    assert aws.fetch(**gcs.env).returncode == 0  # a second source: a second partition

    shown = aws.cli("alerts", "--format", "json", "--since", "1d", **gcs.env)
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)
    arns = sorted(f["arn"] for f in aws.findings())
    assert sorted(a["native_id"] for a in listed if a["source"] == "aws") == arns
    assert sorted(a["native_id"] for a in listed if a["source"] == "aws-2") == arns

    status = aws.cli("status", "--json", **gcs.env)  # read from the GCS state documents
    assert status.returncode == 0, status.stderr
    assert {row["source"]: row["state"] for row in json.loads(status.stdout)} == {
        "aws": "ok", "aws-2": "ok"}


def test_an_unusable_gcs_key_file_exits_2_in_one_line(aws: AwsWorld, gcs: Backend) -> None:
    aws.add(3, first=0, base_time=hours_ago(1))
    (aws.root / "key.json").write_text("{not a key")
    aws.write_config(state=gcs.state(credentials_file="key.json"), sink=gcs.sink())
    result = aws.fetch()  # no emulator variable: the key file is what authenticates
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert "key.json for GCS bucket" in line and "not a usable service-account key" in line
    assert gcs.object_keys() == []


def host_config(aws: AwsWorld, backend: Backend, host: str) -> Path:
    """This host's copy of the shared config: the same bucket, its own local spool."""
    aws.write_config(state=backend.state(lease_seconds=1),
                     sink=backend.sink(spool_dir=str(aws.root / f"spool-{host}")))
    return Path(shutil.copy(aws.config_path, aws.root / f"{host}.yaml"))


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_a_run_that_lost_its_lease_publishes_and_commits_nothing(
        aws: AwsWorld, kind: str, validate_records: Any) -> None:
    """Host A stalls (SIGSTOP) after recording what it will publish, past its lease;
    host B takes the source over and pulls; A resumes and stops with one line, exit 1:
    no version is published twice, none is lost."""
    aws.add(30, first=0, base_time=hours_ago(2))
    with bucket_backend(kind, aws.env) as backend:
        config_a, config_b = (host_config(aws, backend, host) for host in ("a", "b"))
        env = {**aws.env, **backend.env}
        host_a = subprocess.Popen(
            [ALERTPULL, "-c", str(config_a), "fetch", "--all"],
            env={**env, "ALERTPULL_FAILPOINT": "after_pending:1:stop"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _, status = os.waitpid(host_a.pid, os.WUNTRACED)  # until A has stopped itself
            assert os.WIFSTOPPED(status), "host A exited instead of stalling"
            backend.wait_for_lease_to_expire("aws")
            # B is another machine: A's spool (its staged part) is not there.
            spool_a = aws.root / "spool-a"
            spool_a.rename(aws.root / "elsewhere")
            try:
                host_b = run_cli("-c", str(config_b), "fetch", "--all", env=env)
            finally:
                (aws.root / "elsewhere").rename(spool_a)
            assert host_b.returncode == 0, host_b.stderr
            assert "has expired; taking it over" in host_b.stderr
            assert "lost its staged output" in host_b.stderr  # so B pulls it again
        finally:
            os.kill(host_a.pid, signal.SIGCONT)
        _, stderr_a = host_a.communicate(timeout=60)

        assert host_a.returncode == 1, stderr_a
        assert "Traceback" not in stderr_a
        [error] = [line for line in stderr_a.splitlines() if " ERROR " in line]
        assert "lost the lock for source 'aws'" in error
        assert "nothing more was published or committed" in error
        assert_exactly_once(backend, aws, validate_records)
        assert json.loads(backend.read("alertpull/state/aws.json"))["pending"] is None

        # A's staged part is an orphan now: A's next run removes it and adds nothing.
        aws.add(3, first=100, base_time=hours_ago(0.5))
        again = run_cli("-c", str(config_a), "fetch", "--all", env=env)
        assert again.returncode == 0, again.stderr
        assert_exactly_once(backend, aws, validate_records)
        assert list((aws.root / "spool-a").iterdir()) == []
