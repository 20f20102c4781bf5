"""The one page loop (alertpull.paging) against a small paging vendor on 127.0.0.1: every
paginator kind reads each record once, and the loop guard stops a listing that repeats a
position two pages back, ignores its paging parameter, or runs past max_pages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from alertpull.errors import SourceError, WindowIncomplete
from alertpull.paging import (
    CursorParam,
    LinkHeader,
    NextTokenInBody,
    NextUrlInBody,
    OffsetLimit,
    PageGuard,
    PageNumber,
    Paginator,
    Request,
    pages,
)
from tests.fakes.http_fake import FakeServer, Response
from tests.fakes.http_fake import Request as Seen

ITEMS = [{"id": n} for n in range(10)]
SIZE = 3  # records a page


class PagingVendor(FakeServer):
    """One list of ITEMS, paged every way the paginator kinds read. `detour` maps a start
    to the start the vendor names as next instead of the true one (a looping vendor);
    `ignore_offset` serves the first page whatever offset is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.detour: dict[int, int] = {}
        self.ignore_offset = False

    def handle(self, request: Seen) -> Response:
        query = {key: values[-1] for key, values in request.query.items()}
        if request.path == "/token-json":
            start = int(request.json().get("token") or 0)
        elif request.path == "/offset":
            start = 0 if self.ignore_offset else int(query["offset"])
            size = int(query["limit"])
            return Response.json({"items": ITEMS[start:start + size], "total": len(ITEMS)})
        elif request.path == "/page":
            page = int(query.get("page", 1))
            return Response.json({"items": ITEMS[(page - 1) * SIZE:page * SIZE],
                                  "pages": -(-len(ITEMS) // SIZE)})
        else:
            start = int(query.get("token") or query.get("cursor") or query.get("start") or 0)
        items = ITEMS[start:start + SIZE]
        after = self.detour.get(start, start + SIZE)
        more = after < len(ITEMS)
        if request.path == "/token" or request.path == "/token-json":
            return Response.json({"items": items, "meta": {"next": str(after) if more else ""}})
        if request.path == "/cursor":
            return Response.json({"data": items,
                                  "pagination": {"nextCursor": str(after) if more else None}})
        link = f"{self.url}{request.path}?{urlencode({'start': after, 'q': query['q']})}"
        if request.path == "/link":
            return Response.json({"items": items},
                                 headers={"Link": f'<{link}>; rel="next"'} if more else {})
        return Response.json({"items": items, "@odata.nextLink": link if more else None})


@pytest.fixture
def vendor() -> Iterator[PagingVendor]:
    with PagingVendor() as server:
        yield server


def send(request: Request) -> tuple[requests.Response, Any]:
    answer = requests.request(request.method, request.url, params=request.params,
                              json=request.json, headers=request.headers, timeout=5)
    return answer, answer.json()


def listing(vendor: PagingVendor, first: Request, paginator: Paginator,
            records: str = "items", max_pages: int = 100) -> list[list[Any]]:
    return list(pages(send, first, paginator, lambda body: body[records], vendor="Vendor",
                      max_pages=max_pages))


def ids(read: list[list[Any]]) -> list[int]:
    return [item["id"] for page in read for item in page]


def kinds(vendor: PagingVendor) -> dict[str, tuple[Request, Paginator, str]]:
    url = vendor.url
    offset = OffsetLimit("offset", "limit", SIZE, total_path="total")
    return {
        "token": (Request("GET", f"{url}/token", {"q": "w"}),
                  NextTokenInBody("meta.next", "token"), "items"),
        "token_in_json": (Request("POST", f"{url}/token-json", json={"q": "w"}),
                          NextTokenInBody("meta.next", "token", in_json=True), "items"),
        "next_url": (Request("GET", f"{url}/url", {"q": "w"}),
                     NextUrlInBody('"@odata.nextLink"'), "items"),
        "link_header": (Request("GET", f"{url}/link", {"q": "w"}), LinkHeader(), "items"),
        "offset": (Request("GET", f"{url}/offset", offset.first({"q": "w"})), offset, "items"),
        "page_number": (Request("GET", f"{url}/page", {"q": "w"}),
                        PageNumber("page", total_pages_path="pages"), "items"),
        "cursor": (Request("GET", f"{url}/cursor", {"q": "w"}),
                   CursorParam("pagination.nextCursor", "cursor"), "data"),
    }


@pytest.mark.parametrize("kind", ["token", "token_in_json", "next_url", "link_header",
                                  "offset", "page_number", "cursor"])
def test_each_kind_reads_every_record_once_and_keeps_the_window(
        vendor: PagingVendor, kind: str) -> None:
    first, paginator, records = kinds(vendor)[kind]
    read = listing(vendor, first, paginator, records)
    assert ids(read) == list(range(10))
    assert [len(page) for page in read] == [3, 3, 3, 1]
    # The window's query went out with every page, never re-rendered or dropped.
    assert len(vendor.requests) == 4
    for seen in vendor.requests:
        assert seen.query.get("q") == ["w"] or seen.json().get("q") == "w"


def test_the_page_number_listing_stops_at_the_page_count_without_an_empty_call(
        vendor: PagingVendor) -> None:
    first, paginator, _ = kinds(vendor)["page_number"]
    listing(vendor, first, paginator)
    assert [seen.query.get("page") for seen in vendor.requests] == [None, ["2"], ["3"], ["4"]]


def test_an_offset_listing_without_a_total_ends_on_a_short_page(vendor: PagingVendor) -> None:
    offset = OffsetLimit("offset", "limit", 5)
    first = Request("GET", f"{vendor.url}/offset", offset.first({}))
    # 10 records, 5 a page: the second page is full, so one more call proves the end.
    assert [len(page) for page in listing(vendor, first, offset)] == [5, 5]
    assert [seen.query["offset"] for seen in vendor.requests] == [["0"], ["5"], ["10"]]


@pytest.mark.parametrize("kind", ["token", "next_url", "link_header", "cursor"])
def test_a_position_repeated_two_pages_back_stops_the_window_after_each_record_once(
        vendor: PagingVendor, kind: str) -> None:
    vendor.detour = {6: 3}  # 0 -> 3 -> 6 -> 3 -> 6 -> ... : never the same as the last one
    first, paginator, records = kinds(vendor)[kind]
    read: list[list[Any]] = []
    with pytest.raises(WindowIncomplete, match=rf"^Vendor repeated a {paginator.noun} of "):
        for page in pages(send, first, paginator, lambda body: body[records],
                          vendor="Vendor"):
            read.append(page)
    assert ids(read) == list(range(9))
    assert len(vendor.requests) == 3  # the repeated position is never asked for


def test_a_vendor_ignoring_the_offset_stops_the_window_without_the_repeat(
        vendor: PagingVendor) -> None:
    vendor.ignore_offset = True
    first, paginator, _ = kinds(vendor)["offset"]
    read: list[list[Any]] = []
    with pytest.raises(WindowIncomplete,
                       match=r"^Vendor answered GET /offset offset 3 with the page before it"):
        for page in pages(send, first, paginator, lambda body: body["items"], vendor="Vendor"):
            read.append(page)
    assert ids(read) == [0, 1, 2]


def test_max_pages_stops_a_runaway_after_the_pages_read(vendor: PagingVendor) -> None:
    first, paginator, _ = kinds(vendor)["token"]
    read: list[list[Any]] = []
    with pytest.raises(WindowIncomplete, match=r"more than max_pages \(2\) pages of GET /token"):
        for page in pages(send, first, paginator, lambda body: body["items"], vendor="Vendor",
                          max_pages=2):
            read.append(page)
    assert ids(read) == list(range(6)) and len(vendor.requests) == 2


def test_a_listing_of_exactly_max_pages_pages_completes(vendor: PagingVendor) -> None:
    first, paginator, _ = kinds(vendor)["token"]
    assert ids(listing(vendor, first, paginator, max_pages=4)) == list(range(10))


def test_a_next_url_to_another_host_is_refused_before_anything_is_sent_there(
        vendor: PagingVendor) -> None:
    # Asked as localhost, the vendor links to 127.0.0.1: another origin for the credentials.
    first = Request("GET", vendor.url.replace("127.0.0.1", "localhost") + "/url", {"q": "w"})
    read = pages(send, first, NextUrlInBody('"@odata.nextLink"'), lambda body: body["items"],
                 vendor="Vendor")
    assert ids([next(read)]) == [0, 1, 2]
    with pytest.raises(SourceError, match=r"points to http://127\.0\.0\.1:\d+, not "
                                          r"http://localhost:\d+; refusing to send"):
        next(read)
    assert len(vendor.requests) == 1


def test_the_sdk_guard_stops_a_token_seen_two_pages_back_and_a_runaway() -> None:
    guard = PageGuard("SDK", "in us-east-1", max_pages=10, then="; stopped there")
    for token in (None, "a", "b"):
        guard.check(token)
    with pytest.raises(WindowIncomplete, match=r"^SDK repeated a page token in us-east-1; "):
        guard.check("a")
    capped = PageGuard("SDK", "in us-east-1", max_pages=2)
    capped.check(None)
    capped.check("a")
    with pytest.raises(WindowIncomplete, match=r"more than max_pages \(2\) pages in us-east-1"):
        capped.check("b")
