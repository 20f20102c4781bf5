"""The standard suite: every source type against its wire fake, through the CLI as cron
runs it. A source type gets every check by providing its world (tests/standard_worlds.py,
protocol in tests/standard_suite.py); its own test file keeps only what is special about
its vendor.

For each world:
- a full pull writes every alert once, as records valid against the schema; an immediate
  rerun writes nothing; a late arrival inside the overlap is written once; `--format ocsf`
  writes valid OCSF Detection Findings (or the vendor's own OCSF class, passed through);
- an update becomes exactly one new line; same-timestamp siblings across a page boundary
  and across runs are all written once;
- a page token the vendor repeats stops the window without writing anything twice, and the
  next run reads what it left;
- SIGKILL at several points of a pull, then a rerun: every alert version exactly once;
- transient faults on a page call (429 with and without Retry-After, a 500/502/503 burst, a
  connection cut mid-body, a stalled answer, a 200 whose JSON is cut short): retried, the
  run completes, each alert once;
- persistent faults (429s and 5xx that never end, a body always cut or never JSON): that
  source alone fails once its retries are spent, with one clear line and no traceback,
  its cursor unmoved and nothing half-written visible; a healthy source beside it is written;
- a malformed alert is written degraded with one warning (and once only), a huge one whole;
- no configured or issued secret reaches stdout, stderr, output or state.

A fault hits the page calls after the first of a run, so a page is already staged when it
strikes.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alertpull.timeutil import parse_time, utcnow
from tests.conftest import clean_env
from tests.fakes.http_fake import Fault, Request, Response
from tests.graph_env import throwaway_ca
from tests.standard_suite import (
    LATEST_AGE,
    Breaker,
    RunWorld,
    Subject,
    assert_exactly_once,
    error_lines,
    hidden_files,
    source_records,
    state_scopes,
    visible_files,
    with_retry_after,
)
from tests.standard_worlds import WORLDS, kandji
from tests.test_securityhub import ocsf_class_validator

__all__ = ["throwaway_ca"]  # the session fixture the Microsoft worlds' TLS fakes need

TYPES = list(WORLDS)
COUNT = 60  # three pages of PAGE (two GetFindings calls for GuardDuty)
STALL = 10.0  # seconds a stalled answer waits: far longer than every source's read timeout
TRUNCATED_JSON = Response(200, b'{"value": [', {"Content-Type": "application/json"})


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> RunWorld:
    """The run directory: config, state and output (the credential files live elsewhere)."""
    root = tmp_path / "run"
    root.mkdir()
    return RunWorld(root, clean_env())


@pytest.fixture
def subject(type_name: str, tmp_path: Path, throwaway_ca: Any) -> Iterator[Subject]:
    with WORLDS[type_name](type_name, tmp_path, throwaway_ca) as started:
        yield started


@pytest.fixture
def healthy(tmp_path: Path, throwaway_ca: Any) -> Iterator[Subject]:
    """A second source, on a fake of its own, that nothing goes wrong for."""
    with kandji("healthy", tmp_path, throwaway_ca) as started:
        yield started


def fetched(world: RunWorld, *args: str) -> Any:
    result = world.fetch(*args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


# -- a pull, a rerun, an update ------------------------------------------------------------------


@pytest.mark.parametrize("type_name", TYPES)
def test_a_full_pull_writes_every_alert_once_a_rerun_nothing_and_a_late_arrival_once(
        world: RunWorld, subject: Subject) -> None:
    world.configure(subject)
    subject.add(COUNT, 0)
    first = fetched(world)
    assert f" {COUNT} written, " in first.stderr
    assert_exactly_once(world, subject, COUNT)  # each record checked against the schema
    records = source_records(world, subject)
    assert {(r["source"], r["source_type"]) for r in records} == {
        (subject.source, subject.type_name)}
    published = visible_files(world, subject)
    again = fetched(world)
    assert " 0 written, " in again.stderr
    assert visible_files(world, subject) == published
    marks = [parse_time(entry["cursor"]["watermark"])
             for entry in state_scopes(world, subject.source).values()]
    # Listed by the vendor only now, changed before the last run's end: inside the overlap.
    [late] = subject.add(1, COUNT, newest=min(marks) - timedelta(minutes=10))
    later = fetched(world)
    assert " 1 written, " in later.stderr
    assert_exactly_once(world, subject, COUNT + 1)
    assert late in [r["raw"] for r in source_records(world, subject)]


@pytest.mark.parametrize("type_name", TYPES)
def test_format_ocsf_writes_every_alert_as_a_valid_detection_finding(
        world: RunWorld, subject: Subject) -> None:
    world.configure(subject)
    subject.add(COUNT, 0)
    fetched(world, "--format", "ocsf")
    events = [json.loads(line) for path in world.alerts.rglob("*.jsonl")
              for line in path.read_text().splitlines()]
    assert len(events) == COUNT
    assert len({e["finding_info"]["uid"] for e in events}) == COUNT
    for event in events:  # a Detection Finding, or the vendor's own class passed through
        validator = ocsf_class_validator(event["class_uid"], tuple(event["metadata"]["profiles"]))
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in validator.iter_errors(event)]
        assert not errors, errors[:3]


@pytest.mark.parametrize("type_name", TYPES)
def test_an_update_becomes_exactly_one_new_line(world: RunWorld, subject: Subject) -> None:
    if subject.update is None:
        pytest.skip(f"{subject.type_name}'s stream holds events that never change")
    world.configure(subject)
    alerts = subject.add(10, 0)
    fetched(world)
    before = {r["native_id"] for r in source_records(world, subject)}
    # Later than every alert, and before the run's end (now less settle).
    subject.update(alerts[3], utcnow() - LATEST_AGE + timedelta(minutes=2))
    updated = fetched(world)
    assert " 1 written, " in updated.stderr
    records = source_records(world, subject)
    assert len(records) == 11 and {r["native_id"] for r in records} == before
    [native_id] = [k for k, n in Counter(r["native_id"] for r in records).items() if n == 2]
    versions = sorted((r for r in records if r["native_id"] == native_id),
                      key=lambda r: r["pulled_at"])
    assert len({r["id"] for r in versions}) == 1
    assert versions[0]["raw_sha256"] != versions[1]["raw_sha256"]
    assert versions[1]["raw"] == alerts[3]
    assert " 0 written, " in fetched(world).stderr
    assert_exactly_once(world, subject, 11)


# -- the edges of a window -----------------------------------------------------------------------


@pytest.mark.parametrize("type_name", TYPES)
def test_same_timestamp_siblings_across_pages_and_runs_are_each_written_once(
        world: RunWorld, subject: Subject) -> None:
    world.configure(subject)
    tick = (utcnow() - LATEST_AGE).replace(microsecond=0)
    subject.add(COUNT, 0, step=timedelta(0), newest=tick)  # one changed-at, several pages
    fetched(world)
    subject.add(5, COUNT, step=timedelta(0), newest=tick)  # late siblings, same instant
    later = fetched(world)
    assert " 5 written, " in later.stderr
    assert_exactly_once(world, subject, COUNT + 5)


class Replayer:
    """Matches the token calls, and answers every one the first one's answer (made once by
    the fake): a vendor handing back the same page token (or position) forever."""

    def __init__(self, subject: Subject) -> None:
        self.subject = subject
        self.call = subject.token_call or subject.page_call
        self.answer: Response | None = None
        self.on = True

    def __call__(self, request: Request) -> bool:
        return self.on and self.call(request)

    def respond(self, request: Request) -> Response:
        if self.answer is None:
            self.answer = self.subject.fake.handle(request)
        return self.answer


@pytest.mark.parametrize("type_name", TYPES)
def test_a_repeated_page_token_stops_the_window_and_the_next_run_reads_the_rest(
        world: RunWorld, subject: Subject) -> None:
    world.configure(subject)
    subject.add(COUNT, 0)
    replayer = Replayer(subject)
    subject.fake.inject(replayer, Fault(respond=replayer.respond), times=1000)
    looped = world.fetch()  # an ordered stream commits the mark reached, others fail
    assert looped.returncode in (0, 1), looped.stderr
    assert "repeated" in looped.stderr and "Traceback" not in looped.stderr
    versions = Counter((r["native_id"], r["raw_sha256"]) for r in source_records(world, subject))
    assert set(versions.values()) <= {1} and len(versions) < COUNT, looped.stderr
    replayer.on = False  # the vendor recovers
    fetched(world)
    assert_exactly_once(world, subject, COUNT)


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
    ("kandji", "502"), ("scc", "502"), ("ledger", "502"),
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

    failed = world.run("fetch", "--all", timeout=FAIL_DEADLINE)

    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    [line] = error_lines(failed.stderr, subject)
    assert "unexpected" not in line, line  # an error the connector should have explained
    assert state_scopes(world, subject.source) == cursor
    assert visible_files(world, subject) == published and not hidden_files(world)
    assert len(source_records(world, healthy)) == 10
    if subject.retries_by_deadline:  # retried until its deadline ran out
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
    # Some sign each call (SigV4) or send their configured token; the others present access
    # tokens (or self-signed JWTs) that must not leak either.
    assert bool(subject.tokens()) == subject.issues_tokens
    secrets = [*subject.secrets(), *healthy.secrets()]
    seen = [r.stdout + r.stderr for r in runs] + [
        p.read_text(errors="replace") for p in world.root.rglob("*") if p.is_file()]
    leaked = [secret for secret in secrets if any(secret in text for text in seen)]
    assert not leaked
