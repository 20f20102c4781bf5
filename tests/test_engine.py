"""The engine's own behaviour, proven against the test-only `ledger` source type on its
local fake (tests/engine_env.py), through the CLI as cron runs it: the window plan, the
version dedup and its pruned overlap memory, backfills, delivery across crashes, locks,
failures of one source or of the sink. No vendor's quirks take part; each vendor's own
tests and the standard suite (tests/test_standard_suite.py) prove the same for its
connector.
"""

from __future__ import annotations

import fcntl
import json
import signal
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from alertpull.timeutil import parse_time, utcnow
from tests.engine_env import PAGE, LedgerWorld, ledger_block
from tests.fakes.http_fake import Fault, Request, Response, on
from tests.fakes.ledger import ALERTS_PATH, make_alert, touch
from tests.world import hours_ago

SCOPE = "changes"
MINUTE = timedelta(minutes=1)


def windows(world: LedgerWorld) -> list[tuple[str, str]]:
    """The [changed_since, changed_before) of every page call, in order."""
    return [(r.query["changed_since"][0], r.query["changed_before"][0])
            for r in world.fake.requests if r.path == ALERTS_PATH]


def first_pages(world: LedgerWorld) -> list[tuple[str, str]]:
    """The window of each listing's first page (each planned range of a run starts one)."""
    return [(r.query["changed_since"][0], r.query["changed_before"][0])
            for r in world.fake.requests if r.path == ALERTS_PATH and "page_token" not in r.query]


def cursor(world: LedgerWorld, stream: str = SCOPE) -> dict[str, Any]:
    [found] = [c for key, c in world.cursors().items() if key.endswith(f"/{stream}")]
    return found


def versions(world: LedgerWorld) -> Counter[tuple[str, str]]:
    return Counter((r["native_id"], r["raw_sha256"]) for r in world.records())


def assert_exactly_once(world: LedgerWorld, expected: int, per_version: int = 1) -> None:
    counted = versions(world)
    assert len(counted) == expected
    assert set(counted.values()) == {per_version}
    assert not [p for p in world.alerts.rglob(".*")], "staged files left behind"


def ok(world: LedgerWorld, *args: str) -> Any:
    result = world.fetch(*args)
    assert result.returncode == 0, result.stderr
    return result


# -- the window plan -----------------------------------------------------------------------------


def test_a_first_run_reads_from_first_run_since_to_now_less_settle(ledger: LedgerWorld) -> None:
    ledger.add(5, first=0, base_time=hours_ago(30))  # before first_run_since: not read
    ledger.add(5, first=5, base_time=hours_ago(3))
    before = utcnow()
    ok(ledger)
    [(since, until)] = windows(ledger)
    assert abs(parse_time(since) - (before - timedelta(hours=24))) < MINUTE
    assert abs(parse_time(until) - (before - timedelta(minutes=2))) < MINUTE
    assert {r["native_id"] for r in ledger.records()} == {f"al-{i:05d}" for i in range(5, 10)}
    assert cursor(ledger)["watermark"] == until  # the window's end, as it was sent


def test_the_next_run_rereads_the_overlap_before_the_watermark(ledger: LedgerWorld) -> None:
    ledger.write_config(top={"defaults": {"overlap": "30m"}})
    ledger.add(5, first=0, base_time=hours_ago(3))
    ok(ledger)
    watermark = parse_time(cursor(ledger)["watermark"])
    again = ok(ledger)
    assert " 0 written, " in again.stderr
    since, _ = windows(ledger)[-1]
    assert parse_time(since) == watermark - timedelta(minutes=30)


def test_an_alert_changed_inside_settle_waits_for_a_run_after_it(ledger: LedgerWorld) -> None:
    [recent] = ledger.add(1, first=0, base_time=utcnow() - timedelta(seconds=20))
    first = ok(ledger)  # settle is 2m by default: the vendor may not list all of it yet
    assert " 0 written, " in first.stderr
    ledger.write_config(settle="0.5s")  # fractions of a second are a duration too
    ok(ledger)
    assert [r["native_id"] for r in ledger.records()] == [recent["id"]]


def test_an_alert_the_vendor_lists_outside_the_window_is_not_written(
        ledger: LedgerWorld) -> None:
    ledger.add(5, first=0, base_time=hours_ago(3))
    stale = make_alert(99, hours_ago(24 * 10))  # a vendor filter that lets an old one through

    def with_stale(request: Request) -> Response:
        page = json.loads(ledger.fake.handle(request).body)
        return Response.json({**page, "alerts": [stale, *page["alerts"]]})

    ledger.fake.inject(on("GET", ALERTS_PATH), Fault(respond=with_stale), times=2)
    result = ledger.cli("--log-format", "json", "fetch", "--all")
    assert result.returncode == 0, result.stderr
    [summary] = [e for e in map(json.loads, result.stderr.splitlines()) if e.get("status")]
    assert (summary["fetched"], summary["written"], summary["out_of_window"]) == (6, 5, 1)
    assert stale["id"] not in {r["native_id"] for r in ledger.records()}
    # Handed it again (its changed-at far behind any overlap memory), the next run still
    # writes nothing: written once, it would be written on every run.
    assert ledger.fake.pending_faults == 1
    assert " 0 written, " in ok(ledger).stderr
    assert ledger.fake.pending_faults == 0


# -- the overlap memory --------------------------------------------------------------------------


def test_the_overlap_memory_keeps_only_what_a_later_run_can_read_again(
        ledger: LedgerWorld) -> None:
    alerts = ledger.add(3 * PAGE, first=0, base_time=hours_ago(3), step=3 * MINUTE)
    ok(ledger)
    state = cursor(ledger)
    watermark = parse_time(state["watermark"])
    reread_from = watermark - timedelta(hours=1)  # the default overlap
    assert set(state["seen"]) == {f"{ledger.fake.url.split('//')[1]}|{a['id']}" for a in alerts
                                  if parse_time(a["changed_at"]) >= reread_from}
    assert parse_time(state["seen_from"]) == reread_from
    assert 0 < len(state["seen"]) < len(alerts)
    again = ok(ledger)  # what it forgot lies before the re-read: nothing is written twice
    assert " 0 written, " in again.stderr
    assert_exactly_once(ledger, 3 * PAGE)


def test_an_update_and_same_instant_siblings_are_each_written_once(ledger: LedgerWorld) -> None:
    tick = hours_ago(0.5).replace(microsecond=0)
    alerts = ledger.add(PAGE + 5, first=0, base_time=tick, step=timedelta(0))  # two pages
    ok(ledger)
    touch(alerts[PAGE], hours_ago(0.2), ledger.fake)  # the first of the second page
    ledger.add(3, first=PAGE + 5, base_time=tick, step=timedelta(0))  # late siblings
    second = ok(ledger)
    assert " 4 written, " in second.stderr
    assert_exactly_once(ledger, PAGE + 5 + 3 + 1)


# -- backfills and refetches ---------------------------------------------------------------------


def test_a_backfill_adds_older_alerts_only_and_keeps_the_watermark(ledger: LedgerWorld) -> None:
    ledger.add(50, first=0, base_time=hours_ago(10), step=10 * MINUTE)  # 10 h .. 1.8 h ago
    ledger.write_config(first_run_since="4h")
    ok(ledger)
    first = len(ledger.records())
    assert 0 < first < 50
    watermark, [(pulled_from, _)] = cursor(ledger)["watermark"], cursor(ledger)["covered"]
    asked = utcnow()
    backfill = ok(ledger, "--since", "12h")
    assert f" {50 - first} written, " in backfill.stderr
    assert_exactly_once(ledger, 50)
    assert parse_time(cursor(ledger)["watermark"]) >= parse_time(watermark)
    # It asked for the range never pulled, up to where the first run started, then for the
    # incremental one from the overlap before the watermark.
    older, incremental = first_pages(ledger)[-2:]
    assert abs(parse_time(older[0]) - (asked - timedelta(hours=12))) < MINUTE
    assert older[1] == pulled_from
    assert parse_time(incremental[0]) == parse_time(watermark) - timedelta(hours=1)


def test_a_refetch_writes_the_range_again_on_purpose_and_nothing_twice_after(
        ledger: LedgerWorld) -> None:
    ledger.add(10, first=0, base_time=hours_ago(5))
    ok(ledger)
    ok(ledger, "--since", "6h", "--refetch")
    assert_exactly_once(ledger, 10, per_version=2)
    assert " 0 written, " in ok(ledger).stderr


def test_a_dry_run_writes_neither_output_nor_state(ledger: LedgerWorld) -> None:
    ledger.add(10, first=0, base_time=hours_ago(2))
    dry = ok(ledger, "--dry-run")
    assert "dry run: 10 fetched, 10 to write" in dry.stderr
    assert ledger.records() == [] and not (ledger.state / "ledger.json").exists()


# -- delivery ------------------------------------------------------------------------------------

POINTS = ["after_page:2", "before_pending", "after_pending", "after_publish", "after_commit"]


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_with_a_time_and_a_position_scope_then_a_rerun_is_exactly_once(
        ledger: LedgerWorld, point: str) -> None:
    ledger.write_config("changes", "feed")  # one pending entry holds both kinds of cursor
    ledger.add(3 * PAGE, first=0, base_time=hours_ago(3))
    crashed = ledger.fetch(ALERTPULL_FAILPOINT=point)
    assert crashed.returncode == -signal.SIGKILL
    ledger.add(7, first=3 * PAGE, base_time=hours_ago(0.5))  # news between crash and rerun
    rerun = ok(ledger)
    assert ("recovered interrupted run" in rerun.stderr) == (
        point in ("after_pending", "after_publish"))
    assert_exactly_once(ledger, 3 * PAGE + 7, per_version=2)  # once by each stream
    ok(ledger)
    assert_exactly_once(ledger, 3 * PAGE + 7, per_version=2)


def test_a_crash_after_publishing_an_update_keeps_both_versions_once(
        ledger: LedgerWorld) -> None:
    alerts = ledger.add(20, first=0, base_time=hours_ago(0.8))
    ok(ledger)
    touch(alerts[3], hours_ago(0.1), ledger.fake)
    assert ledger.fetch(ALERTPULL_FAILPOINT="after_publish").returncode == -signal.SIGKILL
    ok(ledger)
    assert_exactly_once(ledger, 21)


def test_a_held_lock_exits_75_and_touches_nothing(ledger: LedgerWorld) -> None:
    ledger.add(5, first=0, base_time=hours_ago(2))
    ledger.state.mkdir()
    with open(ledger.state / "ledger.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = ledger.fetch()
    assert result.returncode == 75
    assert "locked by another run" in result.stderr
    assert ledger.records() == [] and not (ledger.state / "ledger.json").exists()
    assert ledger.fake.requests == []


def test_one_failing_source_does_not_stop_the_others(ledger: LedgerWorld) -> None:
    ledger.add(5, first=0, base_time=hours_ago(2))
    ledger.write_yaml({
        "ledger": ledger_block(ledger.fake),
        "broken": {**ledger_block(ledger.fake), "base_url": "http://127.0.0.1:9",
                   "max_retries": 0},
    })
    result = ledger.fetch()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "[broken]" in result.stderr and "cannot reach http://127.0.0.1:9" in result.stderr
    assert {r["source"] for r in ledger.records()} == {"ledger"}
    status = {row["source"]: row for row in json.loads(ledger.cli("status", "--json").stdout)}
    assert status["ledger"]["state"] == "ok"
    assert status["broken"]["state"] == "failing" and status["broken"]["watermark"] is None


def test_an_unwritable_sink_fails_that_source_only(ledger: LedgerWorld) -> None:
    ledger.add(3, first=0, base_time=hours_ago(2))
    ledger.write_yaml({"ledger": ledger_block(ledger.fake),
                       "other": ledger_block(ledger.fake)})
    ledger.alerts.mkdir()
    (ledger.alerts / "source=ledger").write_text("a file where a directory must go")
    result = ledger.fetch()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot write output under {ledger.alerts}" in result.stderr
    assert {r["source"] for r in ledger.records()} == {"other"}
    rows = json.loads(ledger.cli("status", "--json").stdout)
    [row] = [r for r in rows if r["source"] == "ledger"]
    assert row["state"] == "failing" and row["watermark"] is None


def test_a_stream_no_longer_configured_keeps_its_cursor_marked_retired(
        ledger: LedgerWorld) -> None:
    ledger.write_config("changes", "feed")
    ledger.add(5, first=0, base_time=hours_ago(2))
    ok(ledger)
    kept = cursor(ledger, "feed")
    ledger.write_config("changes")
    ok(ledger)
    doc = json.loads((ledger.state / "ledger.json").read_text())
    [feed] = [entry for key, entry in doc["scopes"].items() if key.endswith("/feed")]
    assert feed["retired"] is True and feed["cursor"] == kept
