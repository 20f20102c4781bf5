"""Suricata EVE JSON lines: split a byte stream into lines, keep the wanted event types.

Shared by the file and the S3 readers of the suricata source (connectors/suricata.py).
Pure stdlib + orjson: nothing here knows where the bytes come from.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from alertpull.connector import Log

CHUNK = 1 << 20  # bytes read at once: big enough that the per-read cost vanishes
GZIP_MAGIC = b"\x1f\x8b"
GZIP_ERRORS = (gzip.BadGzipFile, zlib.error)  # corrupt gzip data (a cut one is EOFError)


def lines(stream: IO[bytes], start: int, *, final: bool) -> Iterator[tuple[int, int, bytes]]:
    """(line_start, next_offset, line) for each line from `start` (the stream's current
    position).

    A line is complete when its newline has been written; `next_offset` is where the line
    after it begins, so a reader can resume there. The text after the last newline is a
    line being written (the sensor is mid-write) and is left for the next run, unless
    `final` says the stream will never grow (a gzip file, an S3 object).
    """
    rest = b""
    offset = start
    while True:
        chunk = stream.read(CHUNK)  # EOFError: gzip data cut short, for the caller to judge
        if not chunk:
            break
        pieces = (rest + chunk).split(b"\n")
        rest = pieces.pop()
        for line in pieces:
            yield offset, offset + len(line) + 1, line
            offset += len(line) + 1
    if final and rest:
        yield offset, offset + len(rest), rest


def open_maybe_gzip(buffered: io.BufferedReader) -> tuple[IO[bytes], bool]:
    """The stream to read lines from, and whether it is gzip (told by its magic bytes,
    not its name: logrotate's `compressext` and uploaders name files as they like)."""
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered, mode="rb"), True  # type: ignore[return-value]
    return buffered, False


@dataclass
class BadLines:
    """The lines of one file or object that are not JSON: counted, the first one's offset
    kept, reported in one warning (a corrupt line is not an alert object, and it must not
    stop the position from moving on)."""

    where: str
    count: int = 0
    first_offset: int = 0

    def note(self, offset: int) -> None:
        if not self.count:
            self.first_offset = offset
        self.count += 1

    def report(self, log: Log) -> None:
        if self.count:
            log.warning("%s: %d line(s) are not JSON objects and were skipped (the first at "
                        "byte %d)", self.where, self.count, self.first_offset)


class EventFilter:
    """Parses EVE lines and keeps those whose event_type is wanted."""

    def __init__(self, event_types: list[str]) -> None:
        self.event_types = frozenset(event_types)
        self.unparsed = 0  # lines not JSON objects, over every file and object read

    def wanted(self, line: bytes, line_start: int, bad: BadLines) -> dict[str, Any] | None:
        """The line's object if it is a wanted event; None for other events (flow, dns,
        stats: not alerts), blank lines and lines that are not JSON (noted in `bad`)."""
        if not line.strip():
            return None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            bad.note(line_start)
            self.unparsed += 1
            return None
        return obj if event_type(obj) in self.event_types else None


def eve_event(obj: dict[str, Any]) -> dict[str, Any]:
    """The EVE event of a line: the line itself, or AWS Network Firewall's `event`, which
    it wraps in {"firewall_name", "availability_zone", "event_timestamp", "event"}."""
    inner = obj.get("event")
    return inner if isinstance(inner, dict) and "firewall_name" in obj else obj


def event_type(obj: dict[str, Any]) -> Any:
    return eve_event(obj).get("event_type")
