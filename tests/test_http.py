"""The shared HTTP policy: timeouts, bounded retries, Retry-After, no retry on 4xx."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from alertpull.http import CappedRetry, make_session
from alertpull.ratebudget import RateBudget
from tests.fakes.http_fake import FakeServer, Fault, Request, Response, on


class OkFake(FakeServer):
    def handle(self, request: Request) -> Response:
        return Response.json({"ok": True})


@pytest.fixture
def fake() -> Iterator[OkFake]:
    with OkFake() as server:
        yield server


def status(code: int, **headers: str) -> Fault:
    return Fault(response=Response.json({"error": code}, status=code, headers=headers))


def test_429_with_retry_after_is_honoured_then_succeeds(fake: OkFake) -> None:
    fake.inject(on("GET"), status(429, **{"Retry-After": "1"}))
    started = time.monotonic()
    response = make_session(backoff=0.01).get(fake.url + "/alerts")
    assert response.json() == {"ok": True}
    assert time.monotonic() - started >= 0.9  # waited as the server asked
    assert len(fake.requests) == 2


def test_5xx_bursts_are_retried_with_backoff(fake: OkFake) -> None:
    for code in (500, 502, 503, 504):
        fake.inject(on("GET"), status(code))
    response = make_session(backoff=0.01).get(fake.url + "/alerts")
    assert response.status_code == 200 and len(fake.requests) == 5
    assert fake.pending_faults == 0


@pytest.mark.parametrize("code", [400, 401, 403, 404])
def test_client_errors_are_never_retried(fake: OkFake, code: int) -> None:
    fake.inject(on("GET"), status(code), times=5)
    response = make_session(backoff=0.01).get(fake.url + "/alerts")
    assert response.status_code == code and len(fake.requests) == 1


def test_persistent_failure_gives_up_after_a_bounded_number_of_tries(fake: OkFake) -> None:
    fake.inject(on("GET"), status(503), times=100)
    response = make_session(retries=3, backoff=0.01).get(fake.url + "/alerts")
    assert response.status_code == 503 and len(fake.requests) == 4


def test_a_stalled_server_hits_the_read_timeout_and_the_retries_are_bounded(fake: OkFake) -> None:
    fake.inject(on("GET"), Fault(delay=2.0), times=10)
    session = make_session(retries=1, backoff=0.01, timeout=(1.0, 0.3))
    with pytest.raises(requests.ConnectionError):
        session.get(fake.url + "/alerts")
    assert len(fake.requests) == 2


def test_a_huge_retry_after_is_capped() -> None:
    assert CappedRetry().parse_retry_after("86400") == CappedRetry.max_retry_after


def test_a_retry_after_that_is_a_unix_time_waits_until_then() -> None:
    in_30s = str(int(time.time()) + 30)
    assert 28 <= CappedRetry().parse_retry_after(in_30s) <= 30
    assert CappedRetry().parse_retry_after(str(int(time.time()) - 5)) == 0  # already past


def test_a_vendors_own_retry_after_header_is_honoured(fake: OkFake) -> None:
    # CrowdStrike answers a 429 with X-RateLimit-RetryAfter: the Unix time to retry at.
    retry_at = int(time.time()) + 2
    fake.inject(on("GET"), status(429, **{"X-RateLimit-RetryAfter": str(retry_at)}), times=2)
    session = make_session(backoff=0.01, retry_after_headers=("X-RateLimit-RetryAfter",))
    response = session.get(fake.url + "/alerts")
    assert response.json() == {"ok": True} and len(fake.requests) == 3
    assert time.time() >= retry_at  # both retries waited for the time the vendor named


def test_rate_budget_spaces_calls_evenly() -> None:
    budget = RateBudget(calls=10, period=1.0)
    started = time.monotonic()
    for _ in range(6):
        budget.acquire()
    assert time.monotonic() - started >= 0.45  # 5 intervals of 0.1 s after the first call


def test_shared_budget_is_one_per_key_at_the_strictest_rate() -> None:
    loose = RateBudget.shared("tenant-a", 5, 1.0)
    assert RateBudget.shared("tenant-a", 1, 1.0) is loose
    assert loose.interval == 1.0  # the stricter of 5/s and 1/s
    assert RateBudget.shared("tenant-a", 1, 1.0) is not RateBudget.shared("tenant-b", 1, 1.0)


def test_a_body_cut_mid_way_is_retried(fake: OkFake) -> None:
    fake.inject(on("GET"), Fault(cut_body=True))
    response = make_session(backoff=0.01).get(fake.url + "/alerts")
    assert response.json() == {"ok": True} and len(fake.requests) == 2


def test_a_status_left_out_is_not_retried_even_with_retry_after(fake: OkFake) -> None:
    fake.inject(on("GET"), status(429, **{"Retry-After": "0"}), times=5)
    response = make_session(backoff=0.01, statuses=(500, 502, 503, 504)).get(fake.url + "/a")
    assert response.status_code == 429 and len(fake.requests) == 1  # the caller paces 429s
