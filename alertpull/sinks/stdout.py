"""stdout sink: JSON lines for pipes. Cannot be un-written, so delivery is at-least-once."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from alertpull.sinks.base import Part, Sink


class StdoutWriter:
    """Writes straight to stdout; there is nothing to stage or publish."""

    def __init__(self) -> None:
        self.records = 0

    def write(self, line: bytes) -> None:
        sys.stdout.buffer.write(line + b"\n")
        self.records += 1

    def close(self) -> Part:
        sys.stdout.buffer.flush()
        return Part(staged="", final="-", records=self.records)

    def discard(self) -> None:
        sys.stdout.flush()


class StdoutSink(Sink):
    durable = False

    def __init__(self, settings: Mapping[str, Any]) -> None:
        del settings  # no options

    def open_part(self, source: str, started: datetime, run_id: str, part: str) -> StdoutWriter:
        return StdoutWriter()

    def publish(self, part: Part) -> None:
        return None

    def is_published(self, part: Part) -> bool:
        return True

    def discard_orphans(self, source: str) -> None:
        return None  # nothing is ever staged

    def location(self) -> str:
        return "stdout"
