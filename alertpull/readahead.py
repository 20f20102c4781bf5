"""One page of read-ahead over a connector's page iterator.

What a user waits for is round trips: while the engine normalizes and writes page k, the
request for page k+1 is already on the wire. A single worker thread advances the
connector's generator, one page at a time and only when the consumer has taken the page
before it, so at most two pages are held (the one being written and the one arriving):
memory stays flat however long the stream.

The generator runs in the worker only, never in two threads at once. Whatever it raises
(a SourceError, a WindowIncomplete) is raised to the consumer by the `next()` that would
have run the generator without read-ahead, after the pages before it were handed over:
the engine sees the same sequence of pages and errors either way. `close()` (or leaving
the `with` block) waits for a fetch in flight, which the connector's own timeouts bound,
then closes the generator, so no thread outlives the scope's pull.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, Self, TypeVar

T = TypeVar("T")

_END = object()  # what the worker hands back when the generator is exhausted


class ReadAhead(Generic[T]):
    """Iterate `pages`, fetching the next page while the caller works on the current one."""

    def __init__(self, pages: Iterator[T]) -> None:
        self._pages = pages
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readahead")
        self._ahead: Future[object] | None = None
        self._done = False

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        page = (self._ahead or self._fetch()).result()  # re-raises the fetch's error here
        if page is _END:
            self._ahead, self._done = None, True
            raise StopIteration
        self._ahead = self._fetch()
        return page  # type: ignore[return-value]

    def _fetch(self) -> Future[object]:
        return self._worker.submit(next, self._pages, _END)

    def close(self) -> None:
        """Stop early or at the end: let a fetch in flight finish, close the generator."""
        ahead, self._ahead, self._done = self._ahead, None, True
        if ahead is not None:
            ahead.exception()  # waits; an error of a page nobody asked for is dropped
        close = getattr(self._pages, "close", None)
        if close is not None:
            self._worker.submit(close).result()
        self._worker.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
