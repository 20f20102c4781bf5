"""The one HTTP policy for connectors that speak plain HTTP (requests).

- every call has a connect and a read timeout;
- 429/500/502/503/504 and connection/read failures are retried with bounded
  exponential backoff and jitter, honouring (a capped) Retry-After — urllib3's Retry
  does this, we only configure it;
- 400/401/403/404 are never retried: they are reported at once;
- an optional request budget paces calls proactively (e.g. 150/min per tenant)
  instead of only reacting to 429s;
- a success answer whose body is not JSON is asked for again (asked_again_if_unreadable):
  urllib3's retries end with the headers, before anyone reads the body;
- a 429 that must wait its turn in a budget is retried by retried_in_budget instead;
- one error voice: transport_errors (TLS, a cut body, an unreachable host) and
  answer_error (a vendor's error answer, from the ErrorVoice a connector declares: where
  its error body keeps code and message, and what to do about a 401/403).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jmespath
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from alertpull import __version__
from alertpull.errors import SourceError, one_line, retries_phrase
from alertpull.ratebudget import RateBudget

DEFAULT_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds
DEFAULT_RETRIES = 6  # per call, after its first attempt
RETRY_STATUSES = (429, 500, 502, 503, 504)
BACKOFF_MAX = 30.0  # seconds between two calls made again by called_again_on
RETRY_BASE_SECONDS = 1.0  # the first backed-off wait of a retried call, doubled after each
THROTTLE_BACKOFF = RETRY_BASE_SECONDS  # before the first retry of a 429 without Retry-After
THROTTLE_BACKOFF_MAX = 60.0
UNIX_TIME_FLOOR = 1_000_000_000  # a "retry after" this large is a Unix time (2001-09-09 on)
_Answer = TypeVar("_Answer")


class CappedRetry(Retry):
    """urllib3 Retry whose Retry-After wait is capped, so a server cannot stall a run, and
    which retries only the statuses it was given (urllib3 also retries any 413/429/503
    carrying Retry-After, which would bypass a caller that paces its own 429 retries).

    `retry_after_headers` are a vendor's own names for Retry-After (CrowdStrike's
    X-RateLimit-RetryAfter), read when Retry-After is absent. A value is seconds to wait, an
    HTTP date, or — when it is a number too large to be a wait — the Unix time to retry at.
    """

    max_retry_after: float = 120.0
    retry_after_headers: tuple[str, ...] = ()

    def new(self, **kw: Any) -> CappedRetry:
        # urllib3 rebuilds the Retry after every attempt from its own parameters only.
        retry = super().new(**kw)
        retry.retry_after_headers = self.retry_after_headers
        return retry

    def get_retry_after(self, response: Any) -> float | None:
        for name in ("Retry-After", *self.retry_after_headers):
            value = response.headers.get(name)
            if value is not None:
                return self.parse_retry_after(value)
        return None

    def parse_retry_after(self, retry_after: str) -> float:
        text = retry_after.strip()
        if text.isdigit() and int(text) > UNIX_TIME_FLOOR:
            wait = max(0.0, int(text) - time.time())
        else:
            wait = super().parse_retry_after(text)
        return min(wait, self.max_retry_after)

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
    backoff: float = RETRY_BASE_SECONDS,
    backoff_max: float = 60.0,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    statuses: tuple[int, ...] = RETRY_STATUSES,
    retry_after_headers: tuple[str, ...] = (),
) -> requests.Session:
    """A requests Session with alertpull's timeout and retry policy mounted.

    Proxies (HTTPS_PROXY/NO_PROXY) and CA bundles (REQUESTS_CA_BUNDLE) come from the
    environment, as requests always does. `retry_after_headers`: see CappedRetry.
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
    retry.retry_after_headers = retry_after_headers
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
                              backoff: float = RETRY_BASE_SECONDS) -> _Answer:
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


# -- 429s paced by a budget --------------------------------------------------------------------


def throttle_wait(response: requests.Response, attempt: int,
                  base: float = THROTTLE_BACKOFF) -> float:
    """Retry-After when the vendor sends it (capped), else exponential backoff with jitter."""
    retry_after = response.headers.get("Retry-After", "").strip()
    if retry_after.isdigit():
        return min(float(retry_after), CappedRetry.max_retry_after)
    backoff = min(base * 2**attempt, THROTTLE_BACKOFF_MAX)
    return backoff + random.uniform(0, base / 2)


def retried_in_budget(send: Callable[[], requests.Response], budget: RateBudget, retries: int,
                      on_throttle: Callable[[float], None],
                      backoff: float = THROTTLE_BACKOFF) -> requests.Response:
    """send() within `budget`, retrying its 429s here rather than in urllib3 (whose session
    must then leave 429 out of its statuses): a retry waits its turn in the budget like any
    call, and a vendor whose 429 carries no Retry-After (Graph's Identity Protection) would
    otherwise get the first retry at once. `on_throttle(wait)` says so before each wait."""
    attempt = 0
    while True:
        budget.acquire()
        response = send()
        if response.status_code != 429 or attempt == retries:
            return response
        wait = throttle_wait(response, attempt, backoff)
        on_throttle(wait)
        time.sleep(wait)
        attempt += 1


# -- the error voice ----------------------------------------------------------------------------


@contextlib.contextmanager
def transport_errors(call: str, base: str, retries: int | None, fix: str) -> Iterator[None]:
    """Transport failures (after the session's retries) as one line naming the host; `fix`
    says where the host comes from ("check base_url")."""
    try:
        yield
    except requests.exceptions.SSLError:
        raise SourceError(f"{call}: TLS verification of {base} failed; if a proxy or private CA "
                          "signs its certificate, point REQUESTS_CA_BUNDLE at that CA") from None
    except requests.exceptions.ChunkedEncodingError:
        raise SourceError(f"{call}: {base} cut its response short; the next run reads the "
                          "window again") from None
    except requests.exceptions.RequestException as exc:
        after = retries_phrase(retries) if retries is not None else "retries"
        raise SourceError(f"{call}: cannot reach {base} after {after} ({type(exc).__name__}); "
                          f"{fix}, the network and HTTPS_PROXY/NO_PROXY") from None


@dataclass(frozen=True)
class ErrorVoice:
    """How a vendor's error answers read, for answer_error.

    `code_path`/`message_path` are JMESPath expressions into its error body (a vendor with no
    code of its own is named by the status). `lines` holds the line for a status ("401",
    "403", "404", "429") or a class ("5xx", "other") where the vendor has something to say
    beyond DEFAULT_LINES; a line is a str.format template of {vendor} {call} {status} {said}
    {retries} {base} and any `extra` a connector passes to answer_error.
    """

    vendor: str
    message_path: str
    code_path: str | None = None
    lines: Mapping[str, str] = field(default_factory=dict)


DEFAULT_LINES = {
    "429": "{vendor} kept throttling {call} after {retries}; the next run resumes",
    "5xx": "{vendor} failed {call} with HTTP {status} after {retries} ({said}); the next run "
           "reads the window again",
    "other": "{vendor} refused {call} with HTTP {status} ({said})",
}


def answer_error(voice: ErrorVoice, response: requests.Response, call: str, retries: int,
                 base: str = "", **extra: str) -> SourceError:
    """The one line for a vendor's error answer (after `retries`)."""
    status = response.status_code
    code, message = error_body(voice, response)
    said = f"{code}: {message}" if code else message or f"HTTP {status}"
    kind = "5xx" if status >= 500 else str(status)
    line = voice.lines.get(kind) or DEFAULT_LINES.get(kind) or voice.lines.get("other") \
        or DEFAULT_LINES["other"]
    return SourceError(line.format(vendor=voice.vendor, call=call, status=status, said=said,
                                   retries=retries_phrase(retries), base=base, message=message,
                                   **extra))


def error_body(voice: ErrorVoice, response: requests.Response) -> tuple[str, str]:
    """(code, message) of an error answer. A body that is not the vendor's JSON object is
    its text (a proxy page's status reason); a vendor without codes has its status as code."""
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_fields(voice, body, response.status_code, error_text(response))


def error_fields(voice: ErrorVoice, body: Any, status: int, otherwise: str) -> tuple[str, str]:
    """(code, message) of a decoded error body, for an answer an SDK has already read
    (googleapiclient's HttpError); `otherwise` is the message when the body is not the
    vendor's JSON object."""
    if not isinstance(body, dict):
        return "", one_line(otherwise)
    message = str(jmespath.search(voice.message_path, body) or "")
    if voice.code_path is None:
        code = str(status) if message else ""
    else:
        code = str(jmespath.search(voice.code_path, body) or "")
    return code, one_line(message)
