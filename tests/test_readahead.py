"""One page of read-ahead (alertpull.readahead), seen at the wire of the Alert Center fake.

The order of the requests the fake receives is the proof: the request for page k+1
arrives while the consumer still holds page k, and never the one for page k+2. Nothing
here asserts on a duration; a wait is bounded only so a regression fails instead of hanging.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from alertpull.connector import Memory
from alertpull.errors import SourceError
from alertpull.readahead import ReadAhead
from tests.alertcenter_env import AlertCenterWorld, workspace_fixture  # noqa: F401
from tests.fakes.google_sa import google_api_error
from tests.fakes.http_fake import Fault
from tests.test_workspace_alertcenter import connector, minutes, queries, scope
from tests.test_workspace_alertcenter import world as world  # the fixture, proxy env cleared
from tests.world import hours_ago

BOUND = 30.0  # seconds a wait may take before the test fails: never reached when it works
CREATED = "create_time asc"


def arrivals(world: AlertCenterWorld) -> threading.Semaphore:
    """Released once for every alerts.list request the fake receives."""
    arrived = threading.Semaphore(0)
    world.fake.inject(lambda r: r.path.endswith("/alerts"),
                      Fault(before=arrived.release), times=1000)
    return arrived


def page_requests(world: AlertCenterWorld) -> list[dict[str, str]]:
    return queries(world.fake, CREATED)


def test_the_next_page_is_requested_while_the_consumer_holds_the_current_one(
    world: AlertCenterWorld,
) -> None:
    world.add(150, first=0, base_time=minutes(0, 1).start)  # 3 pages of 50 (the fake's max)
    arrived = arrivals(world)

    with ReadAhead(connector(world).fetch(scope(), minutes(0, 150), Memory())) as pages:
        first = next(pages)
        # Page 1 is in hand and the consumer has not asked again: page 2 is asked for anyway.
        assert arrived.acquire(timeout=BOUND) and arrived.acquire(timeout=BOUND)
        assert len(first) == 50 and len(page_requests(world)) == 2
        assert "pageToken" in page_requests(world)[1]

        second = next(pages)
        assert arrived.acquire(timeout=BOUND)
        # Bounded: holding page 2 lets exactly one more request out, never two.
        assert len(page_requests(world)) == 3
        assert len({a["alertId"] for a in first + second}) == 100
        rest = list(pages)

    assert sum(map(len, [first, second, *rest])) == 150
    assert not [t for t in threading.enumerate() if t.name.startswith("readahead")]


def test_an_error_on_the_read_ahead_page_is_raised_after_the_pages_before_it(
    world: AlertCenterWorld,
) -> None:
    world.add(120, first=0, base_time=minutes(0, 1).start)

    def failing_stream() -> Iterator[list[Any]]:
        world.fake.inject(lambda r: r.path.endswith("/alerts") and "pageToken" in r.query,
                          Fault(response=google_api_error(400, "Bad request")))
        return connector(world, max_retries=0).fetch(scope(), minutes(0, 120), Memory())

    plain = consume(failing_stream())
    with ReadAhead(failing_stream()) as pages:
        ahead = consume(pages)

    # Exactly what the consumer sees without read-ahead: page 1, then the same error.
    assert [len(page) for page in ahead[0]] == [len(page) for page in plain[0]] == [50]
    assert type(ahead[1]) is type(plain[1]) is SourceError
    assert str(ahead[1]) == str(plain[1])
    assert not [t for t in threading.enumerate() if t.name.startswith("readahead")]


def consume(pages: Iterator[list[Any]]) -> tuple[list[list[Any]], Exception | None]:
    got: list[list[Any]] = []
    try:
        for page in pages:
            got.append(page)
    except Exception as exc:
        return got, exc
    return got, None


def test_leaving_early_closes_the_stream_and_its_thread(world: AlertCenterWorld) -> None:
    world.add(200, first=0, base_time=minutes(0, 1).start)
    closed = threading.Event()
    fetched = connector(world).fetch(scope(), minutes(0, 200), Memory())

    def pages() -> Iterator[list[Any]]:
        try:
            yield from fetched
        finally:
            closed.set()

    with ReadAhead(pages()) as ahead:
        next(ahead)

    assert closed.is_set()
    assert len(page_requests(world)) == 2  # the one in hand and the one read ahead
    assert not [t for t in threading.enumerate() if t.name.startswith("readahead")]


def test_cli_an_error_on_the_read_ahead_page_fails_the_source_and_keeps_the_cursor(
    world: AlertCenterWorld,
) -> None:
    world.add(40, first=0, base_time=hours_ago(3), step=timedelta(minutes=4))
    assert world.fetch().returncode == 0
    state_before = sorted(p.read_bytes() for p in world.state.rglob("*.json"))
    assert state_before  # the first run committed a cursor
    records_before = world.records()
    world.add(120, first=40, base_time=hours_ago(1), step=timedelta(seconds=20))
    # The tick's first page arrives fine; the one read ahead behind it fails.
    world.fake.inject(lambda r: r.path.endswith("/alerts") and "pageToken" in r.query,
                      Fault(response=google_api_error(403, "Not Authorized")), times=100)

    result = world.fetch()

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert world.records() == records_before  # page 1's lines were staged, never published
    after = sorted(p.read_bytes() for p in world.state.rglob("*.json"))
    cursor = [json.loads(doc)["scopes"] for doc in after]
    assert cursor == [json.loads(doc)["scopes"] for doc in state_before]
