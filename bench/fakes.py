"""The bench's vendor fakes: tests/fakes' wire fakes, slowed to a network's pace, alerts prebuilt.

Each fake runs in its own process (its CPU is not the client's) and:

- answers every call `latency` after the request arrived, its own work done inside that
  time, so what the client waits for is the latency, not the fake; a call the fake could
  not answer in time counts as an overrun, printed with the figures;
- serves alerts prebuilt before it says it is ready (each alert kept as its JSON bytes and
  decoded when a page reads it, up to CACHE_LIMIT alerts; beyond that made on read);
- counts the calls it answers, in all and by method and path;
- takes commands on stdin, one line each, and answers one line on stdout:
  `stats` (calls, by path, and overruns since the last `stats`, as JSON) and
  `tick FROM TO` (add TICK alerts changed between the two RFC 3339 times: an
  incremental tick's 1,000 changes on top of the history).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson

from alertpull.timeutil import parse_time
from tests.fakes.generated import Generated
from tests.fakes.http_fake import FakeServer, Request, Response

CACHE_LIMIT = 200_000  # alerts prebuilt as bytes (~2 KB each) before the fake is ready
TICK = 1_000  # changes an incremental tick reads

# make(n, base_time, step): n alerts, alert i changed at base_time + i * step.
MakeAlerts = Callable[[int, datetime, timedelta], Sequence[Any]]


class Paced:
    """Wraps a fake's handle(): answer `latency` seconds after arrival, count the calls (in
    all, and by method and path)."""

    def __init__(self, fake: FakeServer, latency: float) -> None:
        self.latency = latency
        self.calls = self.overruns = 0
        self.by_path: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._inner = fake.handle
        fake.handle = self.handle  # type: ignore[method-assign]

    def handle(self, request: Request) -> Response:
        arrived = time.monotonic()
        response = self._inner(request)
        wait = self.latency - (time.monotonic() - arrived)
        with self._lock:
            self.calls += 1
            self.overruns += wait < 0
            self.by_path[f"{request.method} {request.path}"] += 1
        if wait > 0:
            time.sleep(wait)
        return response

    def stats(self) -> dict[str, Any]:
        with self._lock:
            figures = {"calls": self.calls, "overruns": self.overruns, "by": dict(self.by_path)}
            self.calls = self.overruns = 0
            self.by_path.clear()
        return figures


def prebuilt(alerts: Sequence[Any]) -> Sequence[Any]:
    """A Generated dataset with every alert made once, now, and kept as its JSON bytes."""
    if not isinstance(alerts, Generated) or len(alerts) > CACHE_LIMIT or not len(alerts):
        return alerts
    if orjson.loads(orjson.dumps(alerts[0])) != alerts[0]:
        return alerts  # not plain JSON: made on read
    blobs = [orjson.dumps(alert) for alert in alerts]
    return Generated(lambda index: orjson.loads(blobs[index]), len(blobs), alerts.sorted_by,
                     index_of=alerts.index_of)


def with_tick(history: Sequence[Any], make: MakeAlerts, start: datetime,
              end: datetime) -> Sequence[Any]:
    """The history plus TICK alerts changed in [start, end), after every one of it."""
    count = len(history)
    step = (end - start) / TICK
    later = make(count + TICK, start - count * step, step)  # alert `count` lands at start
    if isinstance(history, Generated) and isinstance(later, Generated):
        old, new = history.make, later.make
        return Generated(lambda index: old(index) if index < count else new(index),
                         count + TICK, history.sorted_by, index_of=later.index_of)
    return [*history, *later[count:]]


def control(fake: FakeServer, paced: Paced, install: Callable[[Sequence[Any]], None],
            history: Sequence[Any], make: MakeAlerts) -> None:
    """Serve the bench's commands on stdin until it closes it."""
    for line in sys.stdin:
        command, *args = line.split()
        if command == "stats":
            answer: Any = paced.stats()
        elif command == "tick":
            install(with_tick(history, make, parse_time(args[0]), parse_time(args[1])))
            answer = "ok"
        else:
            answer = f"unknown command {command}"
        print(json.dumps(answer), flush=True)
    fake.stop()


def fast_json() -> None:
    """Every fake's JSON answers encoded by orjson: a 1,000-alert page in ~1 ms, not ~10."""

    def encoded(cls: type[Response], payload: Any, status: int = 200,
                headers: Mapping[str, str] | None = None) -> Response:
        merged = {"Content-Type": "application/json", **(headers or {})}
        return cls(status, orjson.dumps(payload), merged)

    Response.json = classmethod(encoded)  # type: ignore[method-assign, assignment]
