"""Read the published log from the configured sink: list its parts, stream their lines.

Only published parts are read: staged files start with '.' or '_' (locally) or live in
the spool (S3, GCS), as Hive and Spark expect. Listing walks the `source=` and `dt=` levels,
so a `since` date and a source filter skip whole partitions unread.
"""

from __future__ import annotations

import gzip
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from alertpull.errors import ConfigError, SourceError
from alertpull.objectstore import ObjectStore, object_key

_CHUNK = 1 << 20  # bytes decompressed per read: lines are split in bulk, not one by one


def published(name: str) -> bool:
    return not name.startswith((".", "_")) and name.endswith((".jsonl", ".jsonl.gz"))


def split_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The non-empty lines of a stream, read in large chunks (readline per line would
    cost more than the lines' JSON)."""
    rest = b""
    while chunk := stream.read(_CHUNK):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from (line for line in lines if line)
    if rest:
        yield rest


class Log(ABC):
    @abstractmethod
    def partitions(self, sources: Iterable[str] | None) -> Iterator[tuple[str, str, str]]:
        """(source, dt, location) of every partition of the given sources (all if None)."""

    @abstractmethod
    def parts(self, partition: str) -> list[str]:
        """The published parts of one partition, in name (= time) order."""

    @abstractmethod
    def open(self, part: str) -> IO[bytes]:
        """A part's raw bytes; SourceError when it cannot be read."""

    def select(self, sources: Iterable[str] | None = None,
               since_day: str | None = None) -> Iterator[tuple[str, str]]:
        """(source, part) of every published part of these sources in partitions
        dt >= since_day."""
        for source, day, where in self.partitions(sources):
            if since_day is None or day >= since_day:
                for part in self.parts(where):
                    yield source, part

    def lines(self, part: str) -> Iterator[bytes]:
        with self.open(part) as raw:
            stream: IO[bytes] = raw
            if part.endswith(".gz"):
                stream = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
            try:
                yield from split_lines(stream)
            except (OSError, EOFError) as exc:
                raise SourceError(f"cannot read {part}: {exc}") from None


def _split_partition(name: str, key: str) -> str | None:
    return name[len(key) + 1:] if name.startswith(f"{key}=") else None


class LocalLog(Log):
    def __init__(self, root: str) -> None:
        self.root = root

    def partitions(self, sources: Iterable[str] | None) -> Iterator[tuple[str, str, str]]:
        wanted = set(sources) if sources is not None else None
        for source_dir in sorted(_listdir(self.root)):
            source = _split_partition(source_dir, "source")
            if source is None or (wanted is not None and source not in wanted):
                continue
            for day_dir in sorted(_listdir(os.path.join(self.root, source_dir))):
                day = _split_partition(day_dir, "dt")
                if day is not None:
                    yield source, day, os.path.join(self.root, source_dir, day_dir)

    def parts(self, partition: str) -> list[str]:
        return [os.path.join(partition, n) for n in sorted(_listdir(partition)) if published(n)]

    def open(self, part: str) -> IO[bytes]:
        try:
            return open(part, "rb")
        except OSError as exc:
            raise SourceError(f"cannot read published part {part}: {exc.strerror}") from None


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


class BucketLog(Log):
    """The log in an S3 or GCS bucket, through its object-store adapter."""

    def __init__(self, objects: ObjectStore, prefix: str) -> None:
        self.objects = objects
        self.prefix = object_key(prefix)

    def _folders(self, prefix: str) -> list[str]:
        return self.objects.listing(prefix)[1]

    def partitions(self, sources: Iterable[str] | None) -> Iterator[tuple[str, str, str]]:
        top = f"{self.prefix}/" if self.prefix else ""
        wanted = set(sources) if sources is not None else None
        for folder in sorted(self._folders(top)):
            source = _split_partition(folder[len(top):].rstrip("/"), "source")
            if source is None or (wanted is not None and source not in wanted):
                continue
            for day_folder in sorted(self._folders(folder)):
                day = _split_partition(day_folder[len(folder):].rstrip("/"), "dt")
                if day is not None:
                    yield source, day, day_folder

    def parts(self, partition: str) -> list[str]:
        keys = self.objects.listing(partition)[0]
        return sorted(k for k in keys if published(k.rsplit("/", 1)[-1]))

    def open(self, part: str) -> IO[bytes]:
        return self.objects.open(part)


def open_log(sink: Mapping[str, Any]) -> Log:
    """The log the configured sink writes, for reading back."""
    if sink["type"] == "jsonl":
        return LocalLog(sink["path"])
    if sink["type"] == "s3":
        from alertpull.sinks.s3 import S3Objects

        return BucketLog(S3Objects(sink, SourceError), sink.get("prefix", ""))
    if sink["type"] == "gcs":
        from alertpull.sinks.gcs import GcsObjects

        return BucketLog(GcsObjects(sink, SourceError), sink.get("prefix", ""))
    raise ConfigError("the stdout sink keeps no log to read back; configure a jsonl, s3 or "
                      "gcs sink (see docs/working-with-the-log.md)")
