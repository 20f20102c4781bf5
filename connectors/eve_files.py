"""EVE files on this host, read incrementally across logrotate's ways of rotating them.

The position (the scope's position cursor, connector.Position), one entry per *file
content*:

    {"files": {<fingerprint>: {"offset": N, "path": P, "gzip_read": ["dev:ino:size", ...]}}}

The fingerprint is the SHA-256 of the file's first line (decompressed for gzip). It, not
the path or the inode alone, names the stream of lines the sensor wrote into one file,
because every copy logrotate makes of that file keeps it:

- rename (eve.json -> eve.json.1): same inode, same first line -> read on from `offset`
  (Suricata keeps writing the renamed file until it reopens its log);
- compress (eve.json.1 -> eve.json.1.gz): a new inode, same first line -> its first
  `offset` bytes (decompressed) were read already; what follows is read once, and the
  copy's device:inode:size is noted so it is not decompressed again next run;
- copytruncate: the copy (new inode) keeps the first line and is read on from `offset`;
  the truncated original starts with a new first line, so it is a new stream read from 0;
- a file truncated and rewritten, or a reused inode: a new first line, read from 0 (and
  a file shorter than its offset, whatever its first line, is read again from 0).

`offset` always ends at a newline: a line still being written is left for the next run.
Entries of contents no longer on disk are dropped, so the position holds one entry per file
the glob matches.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from alertpull.connector import Log
from alertpull.connectors.eve import GZIP_ERRORS, BadLines, EventFilter, lines, open_maybe_gzip
from alertpull.errors import SourceError


@dataclass
class _File:
    path: str
    identity: str  # device:inode:size, how a finished gzip copy is recognized
    fingerprint: str
    gzip: bool
    mtime: float


class EveFiles:
    """Reads what is new in the files a path or glob matches; `position()` is the position
    to commit once every object they yielded is published."""

    def __init__(self, pattern: str, previous: Mapping[str, Any] | None, events: EventFilter,
                 log: Log) -> None:
        self.pattern = pattern
        self.events = events
        self.log = log
        self._previous: Mapping[str, Any] = (previous or {}).get("files", {})
        self._current: dict[str, dict[str, Any]] = {}

    def read(self) -> Iterator[dict[str, Any]]:
        """The wanted events of every matching file, oldest file first."""
        found = [f for f in (self._identify(p) for p in self.paths()) if f is not None]
        plain = {f.fingerprint for f in found if not f.gzip}
        for file in sorted(found, key=lambda f: (f.mtime, f.path)):
            entry = self._entry(file)
            if file.gzip and file.fingerprint in plain:
                continue  # being compressed from a plain copy, which is read instead
            if file.gzip and file.identity in entry["gzip_read"]:
                continue
            yield from self._read_from(file, entry)

    def position(self) -> dict[str, Any]:
        return {"files": self._current}

    # -- finding the files -------------------------------------------------------------------

    def paths(self) -> list[str]:
        paths = sorted(p for p in glob.glob(self.pattern) if os.path.isfile(p))
        if paths:
            return paths
        directory = os.path.dirname(self.pattern) or "."
        if glob.has_magic(directory):
            raise SourceError(f"path {self.pattern}: no file matches; check the path")
        if not os.path.isdir(directory):
            raise SourceError(f"path {self.pattern}: directory {directory} does not exist; "
                              "check the path (where Suricata's eve-log writes)")
        try:
            os.listdir(directory)
        except PermissionError:
            raise SourceError(f"path {self.pattern}: cannot read directory {directory} "
                              "(permission denied); run alertpull as a user that can read "
                              "it, e.g. in Suricata's group") from None
        raise SourceError(f"path {self.pattern}: no file matches; check the path")

    def _identify(self, path: str) -> _File | None:
        """The file's identity and fingerprint; None while it has no complete first line
        (empty, just truncated, or the sensor is writing its first line)."""
        try:
            with open(path, "rb") as handle:
                status = os.fstat(handle.fileno())
                stream, is_gzip = open_maybe_gzip(handle)
                try:
                    first = stream.readline()
                except EOFError:  # a gzip file whose compression has just begun
                    return None
        except FileNotFoundError:
            return None  # rotated away between the listing and the open
        except PermissionError:
            raise SourceError(f"cannot read {path} (permission denied); run alertpull as a "
                              "user that can read Suricata's logs") from None
        except GZIP_ERRORS as exc:
            self.log.warning("%s is not a readable gzip file (%s); skipped", path, exc)
            return None
        if not first.endswith(b"\n") and not is_gzip:
            return None
        if not first:
            return None
        return _File(path=path, identity=f"{status.st_dev}:{status.st_ino}:{status.st_size}",
                     fingerprint=hashlib.sha256(first).hexdigest(), gzip=is_gzip,
                     mtime=status.st_mtime)

    def _entry(self, file: _File) -> dict[str, Any]:
        entry = self._current.get(file.fingerprint)
        if entry is None:
            known = self._previous.get(file.fingerprint) or {}
            entry = self._current[file.fingerprint] = {
                "offset": int(known.get("offset", 0)),
                "path": file.path,
                "gzip_read": list(known.get("gzip_read", [])),
            }
        if not file.gzip:
            entry["path"] = file.path
        return entry

    # -- reading one file --------------------------------------------------------------------

    def _read_from(self, file: _File, entry: dict[str, Any]) -> Iterator[dict[str, Any]]:
        start = entry["offset"]
        bad = BadLines(file.path)
        try:
            with open(file.path, "rb") as handle:
                stream, _ = open_maybe_gzip(handle)
                if file.gzip:
                    skipped = _skip(stream, start)
                else:
                    size = os.fstat(handle.fileno()).st_size
                    if size < start:
                        self.log.warning("%s is shorter than the %d bytes read before: it "
                                         "was truncated; reading it again from the start",
                                         file.path, start)
                        start = 0
                    stream.seek(start)
                    skipped = start
                if skipped < start:
                    return  # a shorter copy of what was read (a gzip still being written)
                try:
                    for line_start, offset, line in lines(stream, start, final=False):
                        event = self.events.wanted(line, line_start, bad)
                        entry["offset"] = offset
                        if event is not None:
                            yield event
                    complete = file.gzip and _at_end(stream)
                except EOFError:  # still being compressed: the rest is read next run
                    complete = False
        except FileNotFoundError:
            return  # rotated away meanwhile: its content is met again under its new name
        except GZIP_ERRORS as exc:
            self.log.warning("%s: gzip data is corrupt after byte %d (%s); the rest of it "
                             "is skipped", file.path, entry["offset"], exc)
            complete = True
        finally:
            bad.report(self.log)
        if complete:
            entry["gzip_read"].append(file.identity)


def _skip(stream: Any, count: int) -> int:
    """Read and drop `count` bytes of a stream that cannot seek cheaply; how many it had."""
    done = 0
    while done < count:
        try:
            chunk = stream.read(min(count - done, 1 << 20))
        except EOFError:
            break
        if not chunk:
            break
        done += len(chunk)
    return done


def _at_end(stream: Any) -> bool:
    """Whether a gzip stream was read to its end marker (not cut short mid-compression)."""
    try:
        return stream.read(1) == b""
    except EOFError:
        return False
