"""Position cursors (connector.Position), proven with the test-only `ledger` source type's
`feed` stream: a monotonic update id read forward, committed with the output.

- every alert is read once from where the last run stopped; an update is news at a new
  position, whatever its changed-at (no window filter applies);
- the position is committed only after the output is published: SIGKILL at every delivery
  failpoint, then a rerun, writes every version exactly once;
- a failed run or a dry run leaves the position where it was; a feed that stops moving
  commits the position reached.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from alertpull.connector import Position
from tests.engine_env import PAGE, LedgerWorld
from tests.fakes.http_fake import Fault, Response, on
from tests.fakes.ledger import FEED_PATH, ledger_error, touch
from tests.standard_suite import Breaker
from tests.world import hours_ago

FEED_SCOPE_SUFFIX = "/feed"
COUNT = 3 * PAGE + 5  # four pages

# Every point where the delivery can die (alertpull/failpoints.py), from mid-pull to after
# the commit.
POINTS = ["after_page:2", "before_pending", "after_pending", "after_publish", "after_commit"]


def feed_cursor(world: LedgerWorld) -> dict[str, object] | None:
    cursors = world.cursors()
    return next((c for key, c in cursors.items() if key.endswith(FEED_SCOPE_SUFFIX)), None)


def assert_exactly_once(world: LedgerWorld, expected: int) -> None:
    versions = Counter((r["native_id"], r["raw_sha256"]) for r in world.records())
    assert len(versions) == expected
    assert set(versions.values()) == {1}, [v for v, n in versions.items() if n > 1][:3]
    assert not [p for p in world.alerts.rglob(".*")], "staged files left behind"


def max_seq(world: LedgerWorld) -> int:
    return max(a["seq"] for a in world.fake.alerts)


@pytest.fixture
def feed(ledger: LedgerWorld) -> LedgerWorld:
    ledger.write_config("feed")
    return ledger


def test_the_feed_is_read_once_from_the_committed_position(feed: LedgerWorld) -> None:
    feed.add(COUNT, first=0, base_time=hours_ago(3))
    first = feed.fetch()
    assert first.returncode == 0, first.stderr
    assert len(feed.records()) == COUNT
    assert feed_cursor(feed)["position"] == max_seq(feed)  # type: ignore[index]
    feed.add(4, first=COUNT, base_time=hours_ago(2))
    second = feed.fetch()
    assert second.returncode == 0, second.stderr
    assert " 4 fetched, 4 written" in second.stderr  # read from the position, not again
    afters = [int(r.query["after"][0]) for r in feed.fake.requests if r.path == FEED_PATH]
    assert afters[-2] == max_seq(feed) - 4  # the second run started at the committed position
    assert_exactly_once(feed, COUNT + 4)


def test_an_update_is_news_at_a_new_position_whatever_its_changed_at(
        feed: LedgerWorld) -> None:
    alerts = feed.add(10, first=0, base_time=hours_ago(3))
    assert feed.fetch().returncode == 0
    # Changed long before any window of this run: a time cursor would never read it again.
    touch(alerts[2], hours_ago(30 * 24), feed.fake)
    result = feed.fetch()
    assert result.returncode == 0, result.stderr
    assert " 1 fetched, 1 written" in result.stderr
    versions = sorted((r for r in feed.records() if r["native_id"] == alerts[2]["id"]),
                      key=lambda r: r["pulled_at"])
    assert [r["status"] for r in versions] == ["new", "in_progress"]


def test_an_old_alert_is_read_on_the_first_run_too(feed: LedgerWorld) -> None:
    feed.add(5, first=0, base_time=hours_ago(90 * 24))  # older than first_run_since
    assert feed.fetch().returncode == 0
    assert len(feed.records()) == 5


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_delivery_step_then_a_rerun_writes_every_version_once(
        feed: LedgerWorld, point: str) -> None:
    feed.add(COUNT, first=0, base_time=hours_ago(3))
    before = feed_cursor(feed)
    crashed = feed.fetch(ALERTPULL_FAILPOINT=point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    if point != "after_commit":  # the position moves only with the commit
        assert feed_cursor(feed) == before
    feed.add(6, first=COUNT, base_time=hours_ago(1))  # news between the crash and the rerun
    rerun = feed.fetch()
    assert rerun.returncode == 0, rerun.stderr
    assert ("recovered interrupted run" in rerun.stderr) == (
        point in ("after_pending", "after_publish"))
    assert_exactly_once(feed, COUNT + 6)
    assert feed_cursor(feed)["position"] == max_seq(feed)  # type: ignore[index]
    assert feed.fetch().returncode == 0
    assert_exactly_once(feed, COUNT + 6)


def test_a_failed_run_leaves_the_position_and_the_rerun_reads_on_from_it(
        feed: LedgerWorld) -> None:
    feed.add(10, first=0, base_time=hours_ago(3))
    assert feed.fetch().returncode == 0
    committed = feed_cursor(feed)
    feed.add(COUNT, first=10, base_time=hours_ago(2))
    # The run's second page call is refused: its first page is staged by then.
    feed.fake.inject(Breaker(on("GET", FEED_PATH)),
                     Fault(response=ledger_error(400, "BadRequest", "no")))
    failed = feed.fetch()
    assert failed.returncode == 1, failed.stderr
    assert "Ledger answered GET /v1/feed with HTTP 400: no" in failed.stderr
    assert feed_cursor(feed) == committed
    assert len(feed.records()) == 10  # the failed run's first page was never published
    assert feed.fetch().returncode == 0
    assert_exactly_once(feed, 10 + COUNT)


def test_a_dry_run_reads_from_the_position_and_moves_nothing(feed: LedgerWorld) -> None:
    feed.add(10, first=0, base_time=hours_ago(3))
    assert feed.fetch().returncode == 0
    committed = feed_cursor(feed)
    feed.add(3, first=10, base_time=hours_ago(2))
    dry = feed.fetch("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 3 fetched, 3 to write" in dry.stderr
    assert feed_cursor(feed) == committed


def test_a_feed_that_stops_moving_commits_the_position_reached(feed: LedgerWorld) -> None:
    feed.add(COUNT, first=0, base_time=hours_ago(3))
    second_page = sorted(feed.fake.alerts, key=lambda a: a["seq"])[PAGE:2 * PAGE]
    reached = second_page[-1]["seq"]
    # The third call is answered the second page again, its position with it.
    feed.fake.inject(Breaker(on("GET", FEED_PATH), spare=2),
                     Fault(response=Response.json({"alerts": second_page, "max_seq": reached})))
    result = feed.fetch()
    assert result.returncode == 0, result.stderr
    assert "repeated the feed position" in result.stderr
    assert feed_cursor(feed)["position"] == reached  # type: ignore[index]
    assert len(feed.records()) == 2 * PAGE
    assert feed.fetch().returncode == 0
    assert_exactly_once(feed, COUNT)


def test_a_backfill_reads_the_feed_once_and_keeps_the_position_moving_forward(
        feed: LedgerWorld) -> None:
    feed.add(10, first=0, base_time=hours_ago(3))
    assert feed.fetch().returncode == 0
    feed.add(2, first=10, base_time=hours_ago(1))
    backfill = feed.fetch("--since", "10d")  # two planned ranges, one read of the feed
    assert backfill.returncode == 0, backfill.stderr
    assert " 2 fetched, 2 written" in backfill.stderr
    assert feed_cursor(feed)["position"] == max_seq(feed)  # type: ignore[index]
    assert_exactly_once(feed, 12)


def test_a_feed_stuck_before_any_progress_fails_the_scope_and_commits_nothing(
        feed: LedgerWorld) -> None:
    [alert] = feed.add(1, first=0, base_time=hours_ago(1))
    feed.fake.inject(on("GET", FEED_PATH),
                     Fault(response=Response.json({"alerts": [alert], "max_seq": 0})))
    stuck = feed.fetch()
    assert stuck.returncode == 1, stuck.stderr
    assert "pull stopped early and made no progress" in stuck.stderr
    assert feed.records() == [] and feed_cursor(feed) is None
    assert feed.fetch().returncode == 0
    assert_exactly_once(feed, 1)


def test_a_position_moves_only_by_advance_and_never_to_none() -> None:
    position = Position(previous={"offset": 10})
    assert (position.advanced, position.reached) == (False, {"offset": 10})
    position.advance({"offset": 42})
    assert (position.advanced, position.reached) == (True, {"offset": 42})
    with pytest.raises(ValueError, match="cannot advance to None"):
        position.advance(None)
    assert position.previous == {"offset": 10}  # what the last run committed, for reading
