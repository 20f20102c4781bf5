"""The one HTTP policy for connectors that speak plain HTTP (requests).

- every call has a connect and a read timeout;
- 429/500/502/503/504 and connection/read failures are retried with bounded
  exponential backoff and jitter, honouring (a capped) Retry-After — urllib3's Retry
  does this, we only configure it;
- 400/401/403/404 are never retried: they are reported at once;
- an optional request budget paces calls proactively (e.g. 150/min per tenant)
  instead of only reacting to 429s;
- a success answer whose body is not JSON is asked for again (asked_again_if_unreadable):
  urllib3's retries end with the headers, before anyone reads the body.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from alertpull import __version__
from alertpull.errors import SourceError, retries_phrase

DEFAULT_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds
DEFAULT_RETRIES = 6  # per call, after its first attempt
RETRY_STATUSES = (429, 500, 502, 503, 504)
BACKOFF_MAX = 30.0  # seconds between two calls made again by called_again_on
_Answer = TypeVar("_Answer")


class CappedRetry(Retry):
    """urllib3 Retry whose Retry-After wait is capped, so a server cannot stall a run, and
    which retries only the statuses it was given (urllib3 also retries any 413/429/503
    carrying Retry-After, which would bypass a caller that paces its own 429 retries)."""

    max_retry_after: float = 120.0

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), self.max_retry_after)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if self.status_forcelist is not None and status_code not in self.status_forcelist:
            return False
        return super().is_retry(method, status_code, has_retry_after)


class TimeoutSession(requests.Session):
    """A Session that applies a default timeout to every request, and retries a body cut
    mid-way: urllib3's retries end when the headers arrive, and requests reads the body
    after that, so a connection reset there would otherwise fail the call outright."""

    def __init__(self, timeout: tuple[float, float], body_retries: int, backoff: float) -> None:
        super().__init__()
        self.default_timeout = timeout
        self.body_retries = body_retries
        self.backoff = backoff

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        send = super().request
        return called_again_on(requests.exceptions.ChunkedEncodingError,
                               lambda: send(method, url, *args, **kwargs),
                               self.body_retries, self.backoff)


def make_session(
    *,
    retries: int = DEFAULT_RETRIES,
    backoff: float = 1.0,
    backoff_max: float = 60.0,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    statuses: tuple[int, ...] = RETRY_STATUSES,
) -> requests.Session:
    """A requests Session with alertpull's timeout and retry policy mounted.

    Proxies (HTTPS_PROXY/NO_PROXY) and CA bundles (REQUESTS_CA_BUNDLE) come from the
    environment, as requests always does.
    """
    retry = CappedRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        backoff_factor=backoff,
        backoff_max=backoff_max,
        backoff_jitter=backoff / 2,
        status_forcelist=statuses,
        allowed_methods=None,  # also retry POSTs: our POSTs are reads (queries, token calls)
        respect_retry_after_header=True,
        raise_on_status=False,  # hand the last response to the connector to explain
    )
    session = TimeoutSession(timeout, body_retries=min(retries, 2), backoff=backoff)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = f"alertpull/{__version__}"
    return session


class UnreadableAnswer(SourceError):
    """A success answer whose body is not JSON: a reply mangled on its way, a proxy's page, a
    server's glitch. Worth asking again, like a body cut short; when it persists the source
    fails, and as its cursor has not moved the next run reads the window again."""

    def __init__(self, answer: str, retries: int = 0) -> None:
        self.answer = answer  # who answered what, e.g. "Kandji answered GET /api/v1/audit/events"
        after = f", still after {retries_phrase(retries)}" if retries else ""
        super().__init__(f"{answer} with a body that is not JSON{after}; the next run reads the "
                         "window again")


def called_again_on(error: type[Exception], call: Callable[[], _Answer], retries: int,
                    backoff: float) -> _Answer:
    """call() again, up to `retries` times with exponential backoff, while it raises `error`
    (for what happens after urllib3's retries end: reading the body)."""
    for attempt in range(retries + 1):
        try:
            return call()
        except error:
            if attempt == retries:
                raise
            time.sleep(min(backoff * 2**attempt, BACKOFF_MAX))
    raise AssertionError("unreachable")


def asked_again_if_unreadable(ask: Callable[[], _Answer], retries: int,
                              backoff: float = 1.0) -> _Answer:
    """ask() again while its answer is unreadable (see called_again_on); the last
    UnreadableAnswer says how many retries were made."""
    try:
        return called_again_on(UnreadableAnswer, ask, retries, backoff)
    except UnreadableAnswer as err:
        raise UnreadableAnswer(err.answer, retries) from None


def error_text(response: requests.Response) -> str:
    """The text of an error answer that is not the vendor's JSON, for an error line: a proxy's
    or load balancer's HTML page becomes its status reason, as its markup says no more."""
    if "html" in response.headers.get("Content-Type", "").lower():
        return response.reason or ""
    return response.text


class RateBudget:
    """At most `calls` per `period` seconds, shared by every thread that holds it."""

    _registry: ClassVar[dict[str, RateBudget]] = {}
    _registry_lock = threading.Lock()

    def __init__(self, calls: int, period: float) -> None:
        self.interval = period / calls
        self._next = 0.0
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, key: str, calls: int, period: float) -> RateBudget:
        """One budget per key (e.g. per tenant), so every source on it shares the limit;
        when sources ask for different rates, the strictest holds for all."""
        with cls._registry_lock:
            budget = cls._registry.setdefault(key, cls(calls, period))
            budget.interval = max(budget.interval, period / calls)
            return budget

    def acquire(self) -> None:
        """Block until the next call is within budget (calls are evenly spaced)."""
        with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            time.sleep(wait)
