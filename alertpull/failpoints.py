"""Crash points for the crash-safety tests.

ALERTPULL_FAILPOINT=NAME[:N[:stop]] makes the process SIGKILL itself the Nth time
(default 1st) it passes the point NAME; with `stop` it SIGSTOPs itself instead, a stall
that the test ends with SIGCONT (a paused VM, a process starved past its lease). Unset
(always, outside tests) it costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
import threading

_SPEC = os.environ.get("ALERTPULL_FAILPOINT", "")
_NAME, _, _REST = _SPEC.partition(":")
_NTH, _, _ACTION = _REST.partition(":")
_hits = 0
_lock = threading.Lock()


def failpoint(name: str) -> None:
    global _hits
    if not _NAME or name != _NAME:
        return
    with _lock:
        _hits += 1
        if _hits == int(_NTH or 1):
            os.kill(os.getpid(), signal.SIGSTOP if _ACTION == "stop" else signal.SIGKILL)
