"""`alertpull fetch` end to end: the installed CLI as cron runs it, against the AWS fake."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from collections import Counter
from datetime import timedelta
from typing import Any

from alertpull.timeutil import parse_time, to_epoch_ms
from tests.aws_env import AwsWorld
from tests.conftest import ALERTPULL, check_records
from tests.fakes.guardduty_data import DETECTOR
from tests.world import hours_ago


def native_ids(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["native_id"] for r in records)


def test_first_run_writes_every_finding_once_as_valid_records(aws: AwsWorld) -> None:
    aws.add(120, first=0, base_time=hours_ago(3))
    result = aws.fetch()
    assert result.returncode == 0, result.stderr
    records = aws.records()
    assert len(records) == 120
    assert not any("severity_derived" in r for r in records)  # GuardDuty rates its own
    assert set(native_ids(records)) == {f["arn"] for f in aws.findings()}
    [path] = [p for p in aws.alerts.rglob("*.jsonl")]
    relative = path.relative_to(aws.alerts).parts
    assert relative[0] == "source=aws" and relative[1].startswith("dt=")
    assert "120 written" in result.stderr


def test_rerun_skips_unchanged_versions_and_writes_an_updated_one(aws: AwsWorld) -> None:
    aws.add(30, first=0, base_time=hours_ago(0.9))  # all inside the 1h overlap
    assert aws.fetch().returncode == 0
    again = aws.fetch()
    assert again.returncode == 0
    assert len(aws.records()) == 30
    assert "0 written, 30 duplicate" in again.stderr
    updated = aws.findings()[7]
    updated["service"]["count"] += 1
    updated["updatedAt"] = hours_ago(0.2).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert aws.fetch().returncode == 0
    records = aws.records()
    assert len(records) == 31
    versions = sorted((r for r in records if r["native_id"] == updated["arn"]),
                      key=lambda r: r["pulled_at"])
    assert len({r["id"] for r in versions}) == 1
    assert [r["count"] for r in versions] == [updated["service"]["count"] - 1,
                                              updated["service"]["count"]]


def test_backfill_adds_older_alerts_only_and_keeps_the_watermark(aws: AwsWorld) -> None:
    aws.add(50, first=0, base_time=hours_ago(10), step=timedelta(minutes=10))  # 10h .. 1.8h ago
    aws.write_config(defaults={"first_run_since": "4h"})
    assert aws.fetch().returncode == 0
    first = len(aws.records())
    assert 0 < first < 50
    watermark = json.loads(aws.cli("cursor", "show", "--source", "aws").stdout)
    backfill = aws.fetch("--since", "12h")
    assert backfill.returncode == 0, backfill.stderr
    counts = native_ids(aws.records())
    assert len(counts) == 50 and set(counts.values()) == {1}
    after = json.loads(aws.cli("cursor", "show", "--source", "aws").stdout)
    [before_scope] = watermark.values()
    [after_scope] = after.values()
    assert parse_time(after_scope["watermark"]) >= parse_time(before_scope["watermark"])


def test_refetch_pulls_the_range_again_on_purpose(aws: AwsWorld) -> None:
    aws.add(10, first=0, base_time=hours_ago(5))
    assert aws.fetch().returncode == 0
    assert aws.fetch("--since", "6h", "--refetch").returncode == 0
    assert set(native_ids(aws.records()).values()) == {2}


def test_dry_run_writes_neither_output_nor_state(aws: AwsWorld) -> None:
    aws.add(10, first=0, base_time=hours_ago(2))
    result = aws.fetch("--dry-run")
    assert result.returncode == 0
    assert "dry run: 10 fetched, 10 to write" in result.stderr
    assert "(not saved)" in result.stderr and "written" not in result.stderr
    assert aws.records() == []
    assert not (aws.state / "aws.json").exists()


def test_gzip_output_is_readable_and_complete(aws: AwsWorld) -> None:
    aws.add(10, first=0, base_time=hours_ago(2))
    aws.write_config(sink={"type": "jsonl", "path": "alerts", "compression": "gzip"})
    assert aws.fetch().returncode == 0
    assert [p.suffix for p in aws.alerts.rglob("*.jsonl*")] == [".gz"]
    assert len(aws.records()) == 10


def test_stdout_sink_prints_records_and_keeps_logs_on_stderr(aws: AwsWorld) -> None:
    aws.add(5, first=0, base_time=hours_ago(2))
    aws.write_config(sink={"type": "stdout"})
    result = aws.fetch()
    assert result.returncode == 0
    lines = check_records([json.loads(line) for line in result.stdout.splitlines()])
    assert len(lines) == 5 and all(r["source"] == "aws" for r in lines)
    assert aws.fetch().stdout == ""  # the cursor moved: nothing printed twice


def test_one_failing_source_does_not_stop_the_others(aws: AwsWorld) -> None:
    aws.add(5, first=0, base_time=hours_ago(2))
    aws.fake.disable_region("eu-west-3")
    aws.write_config(sources={
        "aws": {"type": "guardduty", "regions": ["us-east-1"]},
        "broken": {"type": "guardduty", "regions": ["us-east-1"],
                   "endpoint_url": "http://127.0.0.1:9", "max_retries": 0},  # nothing listens there
    })
    result = aws.cli("--log-format", "json", "fetch", "--all")
    assert result.returncode == 1
    assert {r["source"] for r in aws.records()} == {"aws"}
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    failed = [e for e in events if e.get("source") == "broken" and e["level"] == "error"]
    assert failed and "127.0.0.1:9" in failed[0]["msg"]
    assert "Traceback" not in result.stderr
    status = json.loads(aws.cli("status", "--json").stdout)
    by_name = {row["source"]: row for row in status}
    assert by_name["aws"]["state"] == "ok"
    assert by_name["broken"]["state"] == "failing" and by_name["broken"]["watermark"] is None


def test_an_unwritable_sink_fails_that_source_only(aws: AwsWorld) -> None:
    aws.add(3, first=0, base_time=hours_ago(2))
    aws.write_config(sources={"aws": {"type": "guardduty", "regions": ["us-east-1"]},
                              "other": {"type": "guardduty", "regions": ["us-east-1"]}})
    aws.alerts.mkdir()
    (aws.alerts / "source=aws").write_text("a file where a directory must go")
    result = aws.fetch()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot write output under {aws.alerts}" in result.stderr
    assert {r["source"] for r in aws.records()} == {"other"}
    [row] = [r for r in json.loads(aws.cli("status", "--json").stdout) if r["source"] == "aws"]
    assert row["state"] == "failing" and row["watermark"] is None


def test_json_logs_are_one_object_per_line_with_the_summary_fields(aws: AwsWorld) -> None:
    aws.add(3, first=0, base_time=hours_ago(2))
    result = aws.cli("--log-format", "json", "fetch", "--all")
    events = [json.loads(line) for line in result.stderr.splitlines()]
    summary = [e for e in events if e.get("status") == "ok"]
    assert summary[0]["written"] == 3 and summary[0]["source"] == "aws"
    assert summary[0]["watermark"]


def test_no_secret_reaches_output_logs_or_state(aws: AwsWorld) -> None:
    aws.add(3, first=0, base_time=hours_ago(2))
    secret = aws.env["AWS_SECRET_ACCESS_KEY"]
    result = aws.cli("-v", "fetch", "--all")
    written = "".join(p.read_text() for p in aws.root.rglob("*") if p.is_file()
                      and p.suffix in (".json", ".jsonl"))
    assert secret not in result.stdout + result.stderr + written
    assert os.listdir(aws.state)


def test_a_terminal_gets_a_live_progress_line_and_cron_does_not(aws: AwsWorld) -> None:
    aws.add(150, first=0, base_time=hours_ago(3))
    controller, terminal = pty.openpty()
    process = subprocess.Popen([ALERTPULL, "-c", str(aws.config_path), "fetch", "--all"],
                               env=aws.env, stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the process is gone
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert process.wait() == 0
    assert b"\r\x1b[Kaws: " in shown and b" alerts" in shown
    assert "\x1b[K" not in aws.fetch().stderr  # not a TTY: plain log lines only


def test_since_beyond_retention_is_clamped_with_a_warning(aws: AwsWorld) -> None:
    result = aws.fetch("--since", "200d")
    assert result.returncode == 0
    assert "older than this source's 90d retention" in result.stderr
    [listed] = [r.json() for r in aws.fake.requests if r.path.endswith("/findings")]
    start = listed["findingCriteria"]["criterion"]["updatedAt"]["greaterThanOrEqual"]
    assert abs(start - to_epoch_ms(hours_ago(90 * 24))) < 60_000


def test_a_delegated_admin_pulls_its_members_findings_under_their_accounts(aws: AwsWorld) -> None:
    aws.add(3, first=0, base_time=hours_ago(2))  # the administrator's own findings
    aws.add(4, first=3, base_time=hours_ago(1.5), account="222233334444")  # a member's
    assert aws.fetch().returncode == 0
    records = aws.records()
    assert Counter(r["tenant"] for r in records) == {"123456789012": 3, "222233334444": 4}
    assert all(r["dedup_key"] == f"aws|{r['tenant']}|{r['native_id']}" for r in records)
    # One cursor for the administrator's detector covers every member.
    assert list(json.loads(aws.cli("cursor", "show", "--source", "aws").stdout)) == [
        f"123456789012/us-east-1/{DETECTOR}"]
