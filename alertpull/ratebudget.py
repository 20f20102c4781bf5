"""A rate budget: calls evenly spaced to stay within a vendor's quota, shared by the
threads (and sources) that call under one key. Over HTTP or through an SDK alike."""

from __future__ import annotations

import threading
import time
from typing import ClassVar


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
