"""SIGTERM and SIGINT (systemd stop, a CronJob deadline, Ctrl-C) stop a run cleanly.

The first signal becomes a `Stopped` exception in the main thread, wherever it is:
waiting for the scopes' worker threads or blocked in a vendor call of its own. It
unwinds through the context managers that release locks and leases, and the runner
discards what it had staged. Steps that must not be cut halfway (taking a lease,
publish-and-commit) run `deferred()`: a signal during one stops the run right after it.
Worker threads are not waited for: one may sit in a stalled vendor call for minutes,
and what it holds (a staged part nobody publishes) dies with the process.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
Item = TypeVar("Item")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How often a main thread waiting on workers looks for a signal: a signal the kernel
# delivered to a worker thread only runs its handler once the main thread wakes.
_WAKE_SECONDS = 0.2

_stopping = False  # a signal arrived: later ones change nothing, the cleanup runs
_pending: int | None = None  # a signal that arrived during a deferred step
_depth = 0  # nesting of deferred steps (main thread only: handlers run there)


class Stopped(BaseException):
    """A shutdown signal arrived. A BaseException, as KeyboardInterrupt is, so the
    `except Exception` that keeps one source's fault from the others lets it through."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.detail = ""  # what the stop left, for the one line (set by the command)
        super().__init__(self.name)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # as a shell reports a process killed by the signal


def install_handlers() -> None:
    for signum in SIGNALS:
        signal.signal(signum, _handle)


def ignore_signals() -> None:
    """The command is done and exiting: a signal now has nothing left to stop."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _handle(signum: int, frame: Any) -> None:
    global _stopping, _pending
    del frame
    if _stopping:
        return  # already stopping: let the release of locks and leases finish
    _stopping = True
    if _depth:
        _pending = signum
        return
    raise Stopped(signum)


@contextmanager
def deferred() -> Iterator[None]:
    """Run a step that must complete once begun; a signal during it stops the run after it
    (also when the step itself failed: the stop wins over its error)."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _pending is not None and not _depth:
            signum, _pending = _pending, None
            raise Stopped(signum)


def results(futures: Sequence[Future[T]]) -> list[T]:
    """Every future's result, in order. Waits in short naps rather than one blocking wait,
    so a signal always reaches the main thread within a fraction of a second."""
    remaining = set(futures)
    while remaining:
        _, not_done = wait(remaining, timeout=_WAKE_SECONDS)
        remaining = set(not_done)
    return [future.result() for future in futures]


def map_concurrently(work: Callable[[Item], T], items: Sequence[Item], workers: int,
                     name: str) -> list[T]:
    """work(item) for every item, at most `workers` at once, the results in order; a stop
    is not held up by a worker still waiting on a vendor (see Stopped)."""
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(items))),
                              thread_name_prefix=name)
    futures = [pool.submit(work, item) for item in items]
    try:
        done = results(futures)
    except Stopped:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return done


def in_background(work: Callable[[], T], name: str) -> Callable[[], T]:
    """Start work() in a thread of its own; the call returned waits for its result (or
    raises its error) in the same short naps as results(), so a stop is not held up."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    future = pool.submit(work)
    pool.shutdown(wait=False)  # the thread ends with work(); nothing else runs in it
    return lambda: results([future])[0]
