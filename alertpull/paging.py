"""The one page loop of plain-HTTP connectors, its paginator kinds, and the one loop guard.

A connector builds the window's first request once; a paginator only carries paging state
from one answer to the next request (dlt's paginator protocol, STYLE.md): it never renders
the window again. `pages()` runs the loop; `PageGuard` is the loop guard it uses, which
SDK-driven connectors (botocore paginators, api-core iterators, googleapiclient) also feed
their tokens to:

- a position (token, next URL, offset, page number) seen before in this window, not only
  the last one, would read the same pages forever: the window stops (WindowIncomplete);
- where we count the position (offset, page number), a page identical to the one before
  means the vendor ignored it: the window stops, the repeat is not yielded;
- more than `max_pages` requests in one window is a runaway: the window stops.

Paths into a JSON answer are JMESPath expressions ("pagination.nextCursor"; quote a key
that is not an identifier: '"@odata.nextLink"').
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from alertpull.connector import Option
from alertpull.errors import SourceError, WindowIncomplete

if TYPE_CHECKING:  # imported where used: the SDK connectors (AWS, Google) import this
    # module for PageGuard alone and never page over requests
    import jmespath.parser
    import requests

DEFAULT_MAX_PAGES = 100_000

MAX_PAGES_OPTION = Option(
    "int", default=DEFAULT_MAX_PAGES,
    help="requests of one window's listing after which the window stops as a runaway (the "
    "mark reached is kept where the stream is ordered)",
)


@dataclass(frozen=True)
class Request:
    """One HTTP request of a listing. `params` go in the query string, `json` in the body."""

    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def call(self) -> str:
        """How an error line names the call: "GET /v1.0/security/alerts_v2"."""
        return f"{self.method} {urlsplit(self.url).path}"


class Paginator(Protocol):
    """Paging state carried from one answer to the next request: one paginator per
    window's listing, as it keeps the state of that listing."""

    noun: str  # what a repeat names: "nextLink", "cursor", "page token", "offset", "page"
    # True where we count the position (offset, page number) instead of the vendor naming
    # it: a vendor ignoring it answers the page before again, which the loop then stops.
    counted: bool

    def update(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        """Read the paging state from an answer (and the records it held)."""

    def has_next(self) -> bool:
        """Whether another page follows the one just read."""

    def next_request(self, request: Request) -> Request:
        """The request for the next page: `request` with only its paging state changed."""

    def position(self) -> Hashable:
        """Where the next request reads from (a token, URL, offset, page number), as the
        line of a stop names it."""


def _path(expression: str) -> jmespath.parser.ParsedResult:
    import jmespath

    return jmespath.compile(expression)


class NextTokenInBody:
    """A token in the answer (`token_path`) sent back as `param`, in the query or, with
    `in_json`, in the JSON body; no token (or an empty one) ends the listing. `read` turns
    the value found into the token (e.g. the cursor inside a next URL) or None."""

    noun = "page token"
    counted = False

    def __init__(self, token_path: str, param: str, in_json: bool = False,
                 read: Callable[[Any], Any] | None = None) -> None:
        self._path = _path(token_path)
        self.param = param
        self.in_json = in_json
        self._read = read
        self._token: Any = None

    def update(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        value = self._path.search(body)
        self._token = self._read(value) if self._read is not None else value

    def has_next(self) -> bool:
        return self._token not in (None, "")

    def next_request(self, request: Request) -> Request:
        if self.in_json:
            return replace(request, json={**(request.json or {}), self.param: self._token})
        return replace(request, params={**request.params, self.param: self._token})

    def position(self) -> Hashable:
        return self._token


class CursorParam(NextTokenInBody):
    """An opaque cursor (SentinelOne's pagination.nextCursor) sent back as a query parameter."""

    noun = "cursor"

    def __init__(self, cursor_path: str, param: str,
                 read: Callable[[Any], Any] | None = None) -> None:
        super().__init__(cursor_path, param, read=read)


class _NextUrl:
    """Follow a next URL as it is (its query carries the window and the paging state).

    The URL must stay on the first request's scheme and host, so credentials go nowhere
    else (`same_origin=False`: the caller's `send` checks it instead, in its own words).
    """

    noun = "next URL"
    counted = False

    def __init__(self, same_origin: bool = True) -> None:
        self.same_origin = same_origin
        self._url: str | None = None

    def _found(self, value: Any) -> None:
        self._url = str(value) if value else None

    def has_next(self) -> bool:
        return self._url is not None

    def next_request(self, request: Request) -> Request:
        assert self._url is not None
        own, link = urlsplit(request.url), urlsplit(self._url)
        if self.same_origin and (link.scheme, link.netloc) != (own.scheme, own.netloc):
            raise SourceError(
                f"the {self.noun} for {request.call} points to {link.scheme}://{link.netloc}, "
                f"not {own.scheme}://{own.netloc}; refusing to send the credentials there"
            )
        return replace(request, url=self._url, params={})

    def position(self) -> Hashable:
        return self._url


class NextUrlInBody(_NextUrl):
    """A next-page URL in the answer (`url_path`, e.g. Graph's '"@odata.nextLink"')."""

    def __init__(self, url_path: str, noun: str = "next URL", same_origin: bool = True) -> None:
        super().__init__(same_origin)
        self._path = _path(url_path)
        self.noun = noun

    def update(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        self._found(self._path.search(body))


class LinkHeader(_NextUrl):
    """The `Link: <URL>; rel="next"` header (RFC 8288), as requests parses it."""

    noun = "Link header"

    def __init__(self, rel: str = "next", same_origin: bool = True) -> None:
        super().__init__(same_origin)
        self.rel = rel

    def update(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        self._found(response.links.get(self.rel, {}).get("url"))


class OffsetLimit:
    """`offset_param`/`limit_param` paging, `limit` records a page. The listing ends on an
    empty page, on a short page unless `more_path` says more follow, or when the offset
    reaches the total at `total_path`."""

    noun = "offset"
    counted = True

    def __init__(self, offset_param: str, limit_param: str, limit: int,
                 total_path: str | None = None, more_path: str | None = None) -> None:
        self.offset_param = offset_param
        self.limit_param = limit_param
        self.limit = limit
        self._total = _path(total_path) if total_path else None
        self._more = _path(more_path) if more_path else None
        self.offset = 0
        self._next = True

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        """The paging parameters of the first request, beside `params`."""
        return {**params, self.limit_param: self.limit, self.offset_param: 0}

    def update(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        self.offset += len(records)
        more = bool(self._more.search(body)) if self._more else False
        total = self._total.search(body) if self._total else None
        self._next = bool(records) and (more or len(records) >= self.limit)
        if isinstance(total, int) and self.offset >= total:
            self._next = False

    def has_next(self) -> bool:
        return self._next

    def next_request(self, request: Request) -> Request:
        return replace(request, params={**request.params, self.limit_param: self.limit,
                                        self.offset_param: self.offset})

    def position(self) -> Hashable:
        return self.offset


class PageNumber:
    """`param`=1, 2, …; the listing ends on an empty page or at the page count found at
    `total_pages_path`."""

    noun = "page"
    counted = True

    def __init__(self, param: str, start: int = 1, total_pages_path: str | None = None) -> None:
        self.param = param
        self.page = start
        self._total = _path(total_pages_path) if total_pages_path else None
        self._next = True

    def update(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        total = self._total.search(body) if self._total else None
        self._next = bool(records) and not (isinstance(total, int) and self.page >= total)
        self.page += 1

    def has_next(self) -> bool:
        return self._next

    def next_request(self, request: Request) -> Request:
        return replace(request, params={**request.params, self.param: self.page})

    def position(self) -> Hashable:
        return self.page


class PageGuard:
    """The loop guard of one window's listing: see the module docstring.

    `vendor` and `where` name the listing in the line a stop gives, e.g. "Graph" and "of
    GET /v1.0/security/alerts_v2", or "GuardDuty" and "in us-east-1 (detector d1)";
    `then` is appended to it ("; stopped at the findings read so far").
    """

    def __init__(self, vendor: str, where: str, max_pages: int = DEFAULT_MAX_PAGES, *,
                 noun: str = "page token", then: str = "") -> None:
        self.vendor = vendor
        self.where = f" {where}" if where else ""
        self.max_pages = max_pages
        self.noun = noun
        self.then = then
        self.requests = 0
        self._seen: set[Hashable] = set()
        self._last_page: str | None = None

    def check(self, position: Hashable) -> None:
        """Before a request for `position` (the first one included): stop a repeat or a
        runaway."""
        if position is not None and position in self._seen:
            raise self.repeated()
        if self.requests >= self.max_pages:
            raise WindowIncomplete(
                f"{self.vendor} listed more than max_pages ({self.max_pages}) pages"
                f"{self.where} in one window; stopped there{self.then}"
            )
        self._seen.add(position)
        self.requests += 1

    def repeated(self) -> WindowIncomplete:
        """The stop for a repeated position (for an SDK that detects one itself)."""
        return WindowIncomplete(f"{self.vendor} repeated a {self.noun}{self.where}{self.then}")

    def check_page(self, records: list[Any], label: str) -> None:
        """After a page: stop if it is the page before it again (`label` names where it was
        asked for, e.g. "offset 3")."""
        if not records:
            return
        fingerprint = json.dumps(records, sort_keys=True, default=str)
        if fingerprint == self._last_page:
            raise WindowIncomplete(f"{self.vendor} answered{self.where.removeprefix(' of')} "
                                   f"{label} with the page before it{self.then}")
        self._last_page = fingerprint


def pages(send: Callable[[Request], tuple[requests.Response, Any]], first: Request,
          paginator: Paginator, records: Callable[[Any], list[Any]], *, vendor: str,
          max_pages: int = DEFAULT_MAX_PAGES) -> Iterator[list[Any]]:
    """Yield the records of every page of one window's listing, from `first` on.

    `send` makes one call (auth, pacing, retries, the error line) and returns the answer
    and its JSON; `records` finds the page's records in it. An empty page is not yielded.
    """
    guard = PageGuard(vendor, f"of {first.call}", max_pages, noun=paginator.noun)
    request = first
    guard.check(_sent(request))
    while True:
        label = f"{paginator.noun} {paginator.position()}"
        response, body = send(request)
        page = records(body)
        if paginator.counted:
            guard.check_page(page, label)
        if page:
            yield page  # before its paging state is read: a bad one fails after the page
        paginator.update(response, body, page)
        if not paginator.has_next():
            return
        request = paginator.next_request(request)
        guard.check(_sent(request))


def _sent(request: Request) -> Hashable:
    """What the guard remembers of a request: all of it, so that one position (a token, a
    URL, an offset) asked for twice in a window is a repeat whatever the kind."""
    return json.dumps([request.method, request.url, request.params, request.json],
                      sort_keys=True, default=str)

