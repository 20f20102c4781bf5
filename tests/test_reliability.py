"""Reliability matrix: every source type against its wire fake, through the installed CLI.

For each source type (adapters in tests/reliability_worlds.py):
- SIGKILL at several points of a pull, then a rerun: every alert version exactly once;
- transient faults on a page call (429 with and without Retry-After, a 500/502/503 burst, a
  connection cut mid-body, a stalled answer, a 200 whose JSON is cut short): retried, the
  run completes, each alert once;
- persistent faults (429s and 5xx that never end, a body always cut or never JSON): that
  source alone fails once its max_retries are spent, with one clear line and no traceback,
  its cursor unmoved and nothing half-written visible; a healthy source beside it is written;
- a malformed alert is written degraded with one warning (and once only), a huge one whole;
- no configured or issued secret reaches stdout, stderr, output or state.

A fault hits the page calls after the first of a run, so a page is already staged when it
strikes.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env, run_cli
from tests.fakes.http_fake import Fault, Response
from tests.graph_env import throwaway_ca
from tests.reliability_worlds import (
    ADAPTERS,
    Breaker,
    RunWorld,
    Subject,
    kandji,
    state_scopes,
)

__all__ = ["throwaway_ca"]  # the session fixture the Microsoft adapters' TLS fakes need

TYPES = list(ADAPTERS)
COUNT = 60  # three pages of PAGE (two GetFindings calls for GuardDuty)
STALL = 10.0  # seconds a stalled answer waits: far longer than every source's read timeout
TRUNCATED_JSON = Response(200, b'{"value": [', {"Content-Type": "application/json"})


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> RunWorld:
    """The run directory: config, state and output (the credential files live elsewhere)."""
    root = tmp_path / "run"
    root.mkdir()
    return RunWorld(root, clean_env())


@pytest.fixture
def subject(type_name: str, tmp_path: Path, throwaway_ca: Any) -> Iterator[Subject]:
    with ADAPTERS[type_name](type_name, tmp_path, throwaway_ca) as started:
        yield started


@pytest.fixture
def healthy(tmp_path: Path, throwaway_ca: Any) -> Iterator[Subject]:
    """A second source, on a fake of its own, that nothing goes wrong for."""
    with kandji("healthy", tmp_path, throwaway_ca) as started:
        yield started


def source_records(world: RunWorld, subject: Subject) -> list[dict[str, Any]]:
    return [r for r in world.records() if r["source"] == subject.source]


def hidden_files(world: RunWorld) -> list[Path]:
    return [p for p in world.alerts.rglob("*") if p.is_file() and p.name.startswith((".", "_"))]


def visible_files(world: RunWorld, subject: Subject) -> list[Path]:
    return sorted(p for p in (world.alerts / f"source={subject.source}").rglob("*")
                  if p.is_file() and not p.name.startswith((".", "_")))


def assert_exactly_once(world: RunWorld, subject: Subject, expected: int) -> None:
    versions = Counter((r["native_id"], r["raw_sha256"]) for r in source_records(world, subject))
    assert len(versions) == expected
    assert set(versions.values()) == {1}, [v for v, n in versions.items() if n > 1][:3]
    assert not hidden_files(world), "staged files left behind"


def error_lines(stderr: str, subject: Subject) -> list[str]:
    tag = f"[{subject.source}]"
    return [line for line in stderr.splitlines() if "ERROR" in line and tag in line]


def with_retry_after(response: Response, seconds: str) -> Response:
    return dataclasses.replace(response, headers={**response.headers, "Retry-After": seconds})


# -- SIGKILL, then a rerun ---------------------------------------------------------------------


@pytest.mark.parametrize("point", ["after_page:1", "after_pending", "after_publish"])
@pytest.mark.parametrize("type_name", TYPES)
def test_sigkill_during_a_pull_then_a_rerun_holds_every_version_once(
        world: RunWorld, subject: Subject, point: str) -> None:
    world.configure(subject)
    subject.add(COUNT, 0)
    crashed = world.fetch(ALERTPULL_FAILPOINT=point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    subject.add(5, COUNT)  # news between the crash and the rerun
    rerun = world.fetch()
    assert rerun.returncode == 0, rerun.stderr
    assert ("recovered interrupted run" in rerun.stderr) == (point != "after_page:1")
    assert_exactly_once(world, subject, COUNT + 5)


# -- transient faults: retried, the run completes ---------------------------------------------

TRANSIENT: dict[str, Callable[[Subject], list[Fault]]] = {
    "429": lambda s: [Fault(response=s.error(429))],
    "429-retry-after": lambda s: [Fault(response=with_retry_after(s.error(429), "1"))],
    # The 503 asks for 1 s: urllib3's third backoff alone would be 4 s.
    "5xx-burst": lambda s: [Fault(response=s.error(500)), Fault(response=s.error(502)),
                            Fault(response=with_retry_after(s.error(503), "1"))],
    "cut-body": lambda s: [Fault(cut_body=True)],
    "stall": lambda s: [Fault(delay=STALL)],
    "truncated-json": lambda s: [Fault(response=TRUNCATED_JSON)],
}
@pytest.mark.parametrize(("type_name", "fault"),
                         [(type_name, fault) for type_name in TYPES for fault in TRANSIENT])
def test_a_transient_fault_is_retried_and_every_alert_written_once(
        world: RunWorld, subject: Subject, fault: str) -> None:
    world.configure(subject)
    subject.add(COUNT, 0)
    for each in TRANSIENT[fault](subject):  # in this order, one call each
        subject.fake.inject(Breaker(subject.page_call), each)
    started = time.monotonic()
    result = world.fetch()
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert subject.fake.pending_faults == 0, "the fault never struck"
    assert "Traceback" not in result.stderr
    assert_exactly_once(world, subject, COUNT)
    assert took < STALL  # a stalled call is abandoned at the read timeout, not waited out


# -- persistent faults: that source fails cleanly, the others go on --------------------------

PERSISTENT: dict[str, Callable[[Subject], Fault]] = {
    "truncated-json": lambda s: Fault(response=TRUNCATED_JSON),
    "cut-body": lambda s: Fault(cut_body=True),
    "503": lambda s: Fault(response=s.error(503)),
    "503-retry-after": lambda s: Fault(response=with_retry_after(s.error(503), "1")),
    "500": lambda s: Fault(response=s.error(500)),
    "502": lambda s: Fault(response=s.error(502)),  # a load balancer's page, not the vendor's
    "429": lambda s: Fault(response=s.error(429)),
    "429-retry-after": lambda s: Fault(response=with_retry_after(s.error(429), "1")),
    "stall": lambda s: Fault(delay=STALL),
}
# Seconds within which a persistent fault must be given up on: room for a loaded machine's
# start-up and SCC's 4 s retry deadline, yet short of two stalls waited out in full.
FAIL_DEADLINE = 1.5 * STALL
FAIL_RETRIES = 1  # max_retries where a fault never ends: every retry loop gives up in seconds
# The never-ending 503 and 429 (Retry-After absent, as Identity Protection and quota errors
# send them) on every source, bounded low (Subject.retrying). 500 takes the same path as 503
# everywhere (the same retried status set, a vendor-shaped body): once. 502 is an HTML page,
# which each error describer must still turn into one clear line: once per describer (Intune
# shares Entra ID's). Retry-After only where a retry loop honours it: urllib3 (Kandji; Graph's
# 5xx) and Graph's own 429 loop; botocore and the Workspace loop keep their own backoff.
# A body cut on every try and an answer that never comes (each try ends at the read
# timeout): on every source, each through its own retry mechanism.
PERSISTENT_CASES = [
    *[(type_name, "truncated-json") for type_name in TYPES],
    *[(type_name, fault) for type_name in TYPES for fault in ("503", "429")],
    ("guardduty", "500"),
    ("guardduty", "502"), ("workspace_alertcenter", "502"), ("entra_id", "502"),
    ("kandji", "502"), ("scc", "502"),
    ("entra_id", "503-retry-after"), ("kandji", "503-retry-after"),
    ("entra_id", "429-retry-after"), ("kandji", "429-retry-after"),
    *[(type_name, fault) for type_name in TYPES for fault in ("cut-body", "stall")],
]


@pytest.mark.parametrize(("type_name", "fault"), PERSISTENT_CASES)
def test_a_persistent_fault_fails_that_source_alone_and_cleanly(
        world: RunWorld, subject: Subject, healthy: Subject, fault: str) -> None:
    world.configure(subject.retrying(FAIL_RETRIES), healthy)
    subject.add(10, 0)
    healthy.add(5, 0)
    assert world.fetch().returncode == 0
    cursor = state_scopes(world, subject.source)
    published = visible_files(world, subject)
    assert cursor and published
    subject.add(COUNT, 10)
    healthy.add(5, 5)
    breaker = Breaker(subject.page_call)
    subject.fake.inject(breaker, PERSISTENT[fault](subject), times=1000)

    failed = run_cli("-c", str(world.config_path), "fetch", "--all", env=world.env,
                     timeout=FAIL_DEADLINE)

    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    [line] = error_lines(failed.stderr, subject)
    assert "unexpected" not in line, line  # an error the connector should have explained
    assert state_scopes(world, subject.source) == cursor
    assert visible_files(world, subject) == published and not hidden_files(world)
    assert len(source_records(world, healthy)) == 10
    if subject.type_name == "scc":  # retried until retry_deadline_seconds ran out
        assert breaker.struck >= 2
    else:
        assert breaker.struck == FAIL_RETRIES + 1, "max_retries did not bound the retries"
    breaker.on = False  # the vendor recovers: the next run reads what the failed one did not
    assert world.fetch().returncode == 0
    assert_exactly_once(world, subject, 10 + COUNT)


# -- odd alerts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", TYPES)
def test_a_malformed_alert_is_written_degraded_once_and_the_rest_normally(
        world: RunWorld, subject: Subject) -> None:
    world.configure(subject)
    alerts = subject.add(30, 0)
    subject.malform(alerts[7])
    result = world.fetch()
    assert result.returncode == 0, result.stderr
    [warning] = [line for line in result.stderr.splitlines() if " degraded: " in line]
    assert "WARNING" in warning
    assert ", 1 degraded," in result.stderr
    assert_exactly_once(world, subject, 30)
    [degraded] = [r for r in source_records(world, subject) if "normalize_error" in r]
    assert degraded["raw"] == alerts[7]
    assert (degraded["severity"], degraded["status"]) == ("unknown", "unknown")
    assert degraded["normalize_error"] in warning
    rerun = world.fetch()  # the overlap reads it again: version dedup keeps it once
    assert rerun.returncode == 0, rerun.stderr
    assert " 0 written, " in rerun.stderr
    assert_exactly_once(world, subject, 30)


@pytest.mark.parametrize("type_name", TYPES)
def test_a_huge_alert_is_written_whole(world: RunWorld, subject: Subject) -> None:
    world.configure(subject)
    alerts = subject.add(30, 0)
    description = "A" * 1_000_000
    subject.bloat(alerts[7], description)
    result = world.fetch()
    assert result.returncode == 0, result.stderr
    assert_exactly_once(world, subject, 30)
    huge = [r for r in source_records(world, subject) if description in json.dumps(r["raw"])]
    assert len(huge) == 1


# -- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", TYPES)
def test_no_secret_reaches_stdout_stderr_output_or_state(
        world: RunWorld, subject: Subject, healthy: Subject) -> None:
    world.configure(subject.retrying(FAIL_RETRIES), healthy)
    subject.add(10, 0)
    healthy.add(3, 0)
    runs = [world.cli("-v", "check"), world.cli("-v", "fetch", "--all")]
    subject.add(COUNT, 10)
    subject.fake.inject(Breaker(subject.page_call), Fault(response=TRUNCATED_JSON), times=1000)
    runs.append(world.cli("-v", "--log-format", "json", "fetch", "--all"))
    runs.append(world.cli("status", "--json"))
    assert [r.returncode for r in runs] == [0, 0, 1, 0], [r.stderr for r in runs]
    # GuardDuty and Security Hub sign each call (SigV4) and Kandji sends its configured
    # token; the others present access tokens (or self-signed JWTs) that must not leak either.
    assert bool(subject.tokens()) == (
        subject.type_name not in ("guardduty", "securityhub", "kandji"))
    secrets = [*subject.secrets(), *healthy.secrets()]
    seen = [r.stdout + r.stderr for r in runs] + [
        p.read_text(errors="replace") for p in world.root.rglob("*") if p.is_file()]
    leaked = [secret for secret in secrets if any(secret in text for text in seen)]
    assert not leaked
