"""Every command as a subprocess, configured only through YAML and env, as cron runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from alertpull.timeutil import parse_time, to_epoch_ms
from tests.aws_env import AwsWorld
from tests.conftest import REPO, clean_env, run_cli
from tests.world import hours_ago

pytestmark = pytest.mark.fresh_process


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int, *needles: str
) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("alertpull: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


BAD_CONFIGS = [
    ("sources: {aws: {type: guardduty\n", "line"),
    ("sourcez: {}\n", "sourcez: unknown top-level key"),
    ("sources: {aws: {type: guardduty, regionz: [us-east-1]}}\n", "sources.aws.regionz"),
    ("sources: {aws: {type: guardduty, regions: us-east-1}}\n", "sources.aws.regions"),
    ("sources: {aws: {type: guardduty, overlap: 5 minutes}}\n", "sources.aws.overlap"),
    ("defaults: {settle: soon}\nsources: {aws: {type: guardduty}}\n", "defaults.settle"),
    ("sources: {aws: {type: carbon_black}}\n", "sources.aws.type"),
    ("sources: {aws: {type: guardduty, role_arn: '${NOT_SET_ANYWHERE}'}}\n", "NOT_SET_ANYWHERE"),
    ("sources: {aws: {type: guardduty, external_id: {file: /nonexistent/secret}}}\n",
     "/nonexistent/secret"),
    ("sink: {type: jsonl, compression: zstd}\nsources: {aws: {type: guardduty}}\n",
     "sink.compression"),
    ("sink: {type: kafka}\nsources: {aws: {type: guardduty}}\n", "sink.type"),
    ("state: {backend: s3}\nsources: {aws: {type: guardduty}}\n", "state.bucket"),
    ("sources: {}\n", "no sources configured"),
    ("sources: {'bad/name': {type: guardduty}}\n", "sources.bad/name"),
    ("sources: {aws: {type: guardduty, include_archived: maybe}}\n",
     "sources.aws.include_archived"),
    ("sources: {aws: {type: [guardduty]}}\n", "sources.aws.type"),
    ("sink: {type: [jsonl]}\nsources: {aws: {type: guardduty}}\n", "sink.type"),
    ("sources: {aws: {type: guardduty, overlap: 99999999999d}}\n", "sources.aws.overlap"),
    ("defaults: {first_run_since: 1m}\nsources: {aws: {type: guardduty}}\n", "first_run_since"),
    ("sources: [aws]\n", "expected a mapping of source name"),
    ("sources: {aws: {type: guardduty, timeout_seconds: -0.5}}\n",
     "sources.aws.timeout_seconds: expected a positive number of seconds, e.g. 30 or 0.5, "
     "got -0.5"),
    ("sources: {aws: {type: guardduty, timeout_seconds: soon}}\n",
     "sources.aws.timeout_seconds: expected a positive number of seconds"),
    ("sources: {aws: {type: guardduty, settle: 1.5.0s}}\n", "sources.aws.settle"),
    ("sources: {k: {type: kandji, base_url: 'https://a.api.kandji.io', api_token: t, "
     "streams: [audit_events, alerts]}}\n",
     "sources.k.streams: alerts is not one of audit_events, behavioral_detections"),
    ("sources: {i: {type: intune, tenant_id: t, client_id: c, client_secret: s, streams: []}}\n",
     "sources.i.streams: [] is not one of audit_events, device_posture"),
]


@pytest.mark.parametrize(("text", "needle"), BAD_CONFIGS)
def test_bad_config_is_exit_2_with_one_line_naming_the_key(tmp_path: Path, text: str,
                                                           needle: str) -> None:
    config = tmp_path / "alertpull.yaml"
    config.write_text(text)
    result = run_cli("-c", str(config), "fetch", "--all")
    assert_one_line_error(result, 2, needle)
    assert not (tmp_path / "alerts").exists() and not (tmp_path / ".alertpull").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["fetch", "--source", "nope"], "--source nope"),
    (["fetch", "--all", "--since", "yesterday-ish"], "--since"),
    (["fetch", "--all", "--until", "2026-13-45"], "--until"),
    (["fetch", "--all", "--refetch"], "--refetch needs --since"),
    (["fetch"], "--source NAME"),
    (["fetch", "--all", "--since", "1h", "--until", "2h"], "earlier than --until"),
    (["fetch", "--all", "--bogus"], "--bogus"),
    (["fetch", "--all", "--since", "9999999999d"], "--since"),
])
def test_bad_flags_are_exit_2(aws: AwsWorld, args: list[str], needle: str) -> None:
    assert_one_line_error(aws.cli(*args), 2, needle)


def test_missing_config_file_names_the_fix(tmp_path: Path) -> None:
    result = run_cli("fetch", "--all", cwd=tmp_path)
    assert_one_line_error(result, 2, "alertpull.yaml not found", "ALERTPULL_CONFIG")


def test_config_path_from_env_and_env_var_expansion(aws: AwsWorld) -> None:
    aws.config_path.write_text(
        "sources: {aws: {type: guardduty, regions: ['${GD_REGION}']}}\n"
        "sink: {type: jsonl, path: alerts}\nstate: {backend: local, path: state}\n")
    aws.add(2, first=0, base_time=hours_ago(1))
    env = {**aws.env, "ALERTPULL_CONFIG": str(aws.config_path), "GD_REGION": "us-east-1"}
    result = run_cli("fetch", "--all", env=env, cwd=Path("/"))
    assert result.returncode == 0, result.stderr
    assert len(aws.records()) == 2  # relative paths resolve against the config's directory


def test_sources_lists_names_and_types(aws: AwsWorld) -> None:
    result = aws.cli("sources")
    assert result.returncode == 0
    assert result.stdout.split() == ["aws", "guardduty"]


def test_schema_prints_the_record_schema(aws: AwsWorld) -> None:
    result = run_cli("schema")
    schema = json.loads(result.stdout)
    assert schema == json.loads((REPO / "alertpull/schema/record.schema.json").read_text())
    assert "raw_sha256" in schema["required"]


def test_status_before_and_after_a_run(aws: AwsWorld) -> None:
    before = json.loads(aws.cli("status", "--json").stdout)
    assert before[0]["state"] == "never run" and before[0]["watermark"] is None
    aws.add(4, first=0, base_time=hours_ago(2))
    assert aws.fetch().returncode == 0
    [row] = json.loads(aws.cli("status", "--json").stdout)
    assert row["state"] == "ok" and row["last_run"]["counts"]["written"] == 4
    assert 0 <= row["lag_seconds"] < 600
    text = aws.cli("status").stdout
    assert "aws (guardduty): ok" in text and "last run wrote 4 of 4" in text


def listed_window_starts(aws: AwsWorld) -> list[int]:
    return [r.json()["findingCriteria"]["criterion"]["updatedAt"]["greaterThanOrEqual"]
            for r in aws.fake.requests if r.path.endswith("/findings")]


def test_cursor_set_moves_the_next_window_and_reset_restarts(aws: AwsWorld) -> None:
    assert aws.fetch().returncode == 0
    key = next(iter(json.loads(aws.cli("cursor", "show", "--source", "aws").stdout)))
    moved = aws.cli("cursor", "set", "--source", "aws", "--watermark", "2026-11-01T00:00:00Z")
    assert moved.returncode == 0 and key in moved.stdout
    shown = json.loads(aws.cli("cursor", "show", "--source", "aws").stdout)
    assert shown[key]["watermark"] == "2026-11-01T00:00:00.000Z"
    before = len(listed_window_starts(aws))
    assert aws.fetch().returncode == 0
    # The next window starts one overlap (1h) before the watermark that was set.
    expected = parse_time("2026-11-01T00:00:00Z") - timedelta(hours=1)
    assert listed_window_starts(aws)[before] == to_epoch_ms(expected)
    reset = aws.cli("cursor", "reset", "--source", "aws")
    assert reset.returncode == 0
    assert json.loads(aws.cli("cursor", "show", "--source", "aws").stdout)[key] is None


def test_cursor_set_refuses_a_future_time_and_an_unknown_scope(aws: AwsWorld) -> None:
    assert aws.fetch().returncode == 0
    future = aws.cli("cursor", "set", "--source", "aws", "--watermark", "2099-01-01")
    assert_one_line_error(future, 2, "in the future")
    typo = aws.cli("cursor", "set", "--source", "aws", "--scope", "nope", "--watermark", "1h")
    assert_one_line_error(typo, 2, "--scope nope", "known: 123456789012/us-east-1/")


def test_cursor_edits_finish_an_interrupted_run_first(aws: AwsWorld) -> None:
    aws.add(10, first=0, base_time=hours_ago(0.5))
    assert aws.fetch(ALERTPULL_FAILPOINT="after_publish").returncode == -9
    moved = aws.cli("cursor", "set", "--source", "aws", "--watermark", "3h")
    assert moved.returncode == 0 and "recovered interrupted run" in moved.stderr
    assert aws.fetch().returncode == 0
    assert len(aws.records()) == 10  # the published part was committed, not rewritten


def test_corrupt_state_fails_loudly_and_reset_recovers(aws: AwsWorld) -> None:
    aws.add(3, first=0, base_time=hours_ago(2))
    assert aws.fetch().returncode == 0
    (aws.state / "aws.json").write_text('{"schema_version": 1, "scopes": ')
    result = aws.fetch()
    assert result.returncode == 1
    assert "corrupt" in result.stderr and "alertpull cursor reset --source aws" in result.stderr
    assert len(aws.records()) == 3  # nothing rewritten from scratch behind the user's back
    assert aws.cli("cursor", "reset", "--source", "aws").returncode == 0
    assert aws.fetch().returncode == 0


def test_state_from_a_newer_alertpull_is_refused(aws: AwsWorld) -> None:
    aws.state.mkdir()
    (aws.state / "aws.json").write_text('{"schema_version": 99}')
    result = aws.fetch()
    assert result.returncode == 1 and "upgrade alertpull" in result.stderr
    assert (aws.state / "aws.json").read_text() == '{"schema_version": 99}'


def test_check_reports_the_account_and_fails_for_a_broken_source(aws: AwsWorld) -> None:
    ok = aws.cli("check")
    assert ok.returncode == 0 and "aws: ok" in ok.stdout and "123456789012" in ok.stdout
    aws.write_config(sources={"aws": {"type": "guardduty", "regions": ["us-east-1"],
                                      "endpoint_url": "http://127.0.0.1:9", "max_retries": 0}})
    broken = aws.cli("check")
    assert broken.returncode == 1 and "aws: FAILED" in broken.stdout
    assert "Traceback" not in broken.stdout + broken.stderr


@pytest.mark.parametrize("args", [["--help"], ["-c", "CONFIG", "sources"]])
def test_help_and_sources_import_no_vendor_sdk(aws: AwsWorld, args: list[str]) -> None:
    """Nor requests: a GuardDuty source talks through botocore (requests and jmespath were
    80 ms of `sources`, and of every GuardDuty run)."""
    args = [str(aws.config_path) if a == "CONFIG" else a for a in args]
    probe = (
        "import sys\nfrom alertpull.cli import main\n"
        f"sys.argv = ['alertpull', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('SDK', sorted({m.split('.')[0] for m in sys.modules} & "
        "{'boto3', 'botocore', 'google', 'msal', 'googleapiclient', 'requests', 'jmespath'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=clean_env(), check=True)
    assert result.stdout.strip().splitlines()[-1] == "SDK []"
