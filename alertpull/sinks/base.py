"""The sink contract: stage a part invisibly, then publish it atomically.

A run writes each scope's records into one *part*. A part is first staged where no
reader sees it, then published in one atomic step (a rename, a single PUT). The
runner records the staged parts in state before publishing them, so a crash between
any two steps is rolled forward or back on the next start (see delivery.py).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, Any, Protocol

from alertpull.fileutil import remove_quietly

_BUFFER = 1 << 20  # bytes


@dataclass(frozen=True)
class Part:
    """A staged output file and where it goes. Stored in state as a pending entry."""

    staged: str  # local path of the staged file
    final: str  # final path or object key
    records: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Part:
        return cls(staged=data["staged"], final=data["final"], records=int(data["records"]))


def part_name(source: str, started: datetime, run_id: str, part: str, suffix: str) -> str:
    """Hive-style relative path: source=<name>/dt=YYYY-MM-DD/<HHMMSS>-<run id>-<part>.jsonl."""
    return (
        f"source={source}/dt={started:%Y-%m-%d}/"
        f"{started:%H%M%S}-{run_id}-{part}.jsonl{suffix}"
    )


class Writer(Protocol):
    """What the runner writes one part's lines through."""

    records: int

    def write(self, line: bytes) -> None: ...
    def close(self) -> Part: ...
    def discard(self) -> None: ...


class PartWriter:
    """Writes JSON lines to a local staging file, optionally gzip-compressed."""

    def __init__(self, staged: str, final: str, compress: bool) -> None:
        self.staged = staged
        self.final = final
        self.records = 0
        os.makedirs(os.path.dirname(staged), exist_ok=True)
        # Large buffers: a run writes millions of ~2 KB lines, and a write(2) or a zlib
        # call per line would cost more than the rest of the line's handling.
        self._raw: IO[bytes] = open(staged, "wb", buffering=_BUFFER)  # noqa: SIM115 (closed in close/discard)
        self._out: IO[bytes] = self._raw
        if compress:
            zipped = gzip.GzipFile(fileobj=self._raw, mode="wb")
            self._out = io.BufferedWriter(zipped, _BUFFER)  # type: ignore[arg-type]

    def write(self, line: bytes) -> None:
        self._out.write(line + b"\n")
        self.records += 1

    def close(self) -> Part:
        """Flush and fsync: after this the staged bytes survive a crash."""
        if self._out is not self._raw:
            self._out.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        return Part(staged=self.staged, final=self.final, records=self.records)

    def discard(self) -> None:
        for handle in (self._out, self._raw):
            with contextlib.suppress(OSError):
                handle.close()
        remove_quietly(self.staged)


class Sink(ABC):
    """Where records go. `durable` sinks support staging, publish and recovery."""

    durable: bool = True

    @abstractmethod
    def open_part(self, source: str, started: datetime, run_id: str, part: str) -> Writer:
        """Start a new staged part for one scope of one run."""

    @abstractmethod
    def publish(self, part: Part) -> None:
        """Make a staged part visible to readers in one atomic step; idempotent."""

    @abstractmethod
    def is_published(self, part: Part) -> bool:
        """True when the part's final file/object exists (used by crash recovery)."""

    @abstractmethod
    def discard_orphans(self, source: str) -> None:
        """Remove staged parts of `source` left by a run that died before recording them.

        Called with the source's lock held and after pending recovery, so every staged
        part still present belongs to no run that could publish it.
        """

    def location(self) -> str:
        """Where output goes, for messages."""
        return ""
