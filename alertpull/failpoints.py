"""Crash points for the crash-safety tests.

ALERTPULL_FAILPOINT=NAME[:N[:stop]] makes the process SIGKILL itself the Nth time
(default 1st) it passes the point NAME; with `stop` it SIGSTOPs itself instead, a stall
that the test ends with SIGCONT (a paused VM, a process starved past its lease). Unset
(always, outside tests) it costs one dict lookup. Read when a point is passed, not at
import, so a process forked after importing alertpull obeys its own environment.
"""

from __future__ import annotations

import os
import signal
import threading

_hits = 0
_lock = threading.Lock()


def failpoint(name: str) -> None:
    global _hits
    spec = os.environ.get("ALERTPULL_FAILPOINT")
    if not spec or name != spec.partition(":")[0]:
        return
    nth, _, action = spec.partition(":")[2].partition(":")
    with _lock:
        _hits += 1
        if _hits == int(nth or 1):
            os.kill(os.getpid(), signal.SIGSTOP if action == "stop" else signal.SIGKILL)
