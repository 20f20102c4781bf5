"""EVE objects in S3: AWS Network Firewall alert logs, or any sensor's uploads.

Keys sort by time inside a *stream*: the prefix above the first date-like folder
(Network Firewall: `AWSLogs/<account>/network-firewall/alert/<region>/<firewall>/`,
then `YYYY/MM/DD/HH/`), or a folder of objects with no dated folders below it. Several
firewalls under one prefix interleave in key order, so one marker for the whole prefix
would skip a firewall's new hour behind another's old ones (the way Wazuh's reader gets
stuck, wazuh/wazuh#27781): each stream is its own scope with its own position cursor:

    {"after": <key>, "read": {<key>: <LastModified, epoch ms>, ...}}

A run lists the stream's keys after `after` (StartAfter, lexical order) and reads each
key it has not read. `read` holds every key read beyond `after`, and `after` only moves
up to the newest key written more than `late_arrival` before the stream's newest object:
an object that lands late, inside that span of key space, is listed again and read once.
Each object is read whole (gzip or plain, told by its magic bytes) and never again.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from alertpull.connector import Log
from alertpull.connectors.eve import GZIP_ERRORS, BadLines, EventFilter, lines, open_maybe_gzip
from alertpull.errors import ConfigError, SourceError
from alertpull.sinks.s3 import s3_client, s3_errors
from alertpull.timeutil import to_epoch_ms

# A folder named like a year, a date or a timestamp starts the time-ordered part of a key.
_DATED = re.compile(r"^(19|20)\d\d(\b|[-_T]|\d)")
_NETWORK_FIREWALL = re.compile(r"(?:^|/)AWSLogs/(\d{12})/network-firewall/")


def parse_s3_uri(uri: str, where: str) -> tuple[str, str]:
    """(bucket, prefix) of s3://bucket/prefix/."""
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri)
    if not match:
        raise ConfigError(f"{where}: {uri!r} is not an s3:// URI; use s3://BUCKET/PREFIX/")
    prefix = match.group(2)
    return match.group(1), prefix if not prefix or prefix.endswith("/") else prefix + "/"


def network_firewall_account(key: str) -> str | None:
    match = _NETWORK_FIREWALL.search(key)
    return match.group(1) if match else None


class EveBucket:
    """The streams under an s3:// prefix, and what is new in one of them."""

    def __init__(self, settings: Mapping[str, Any], events: EventFilter, log: Log) -> None:
        self.bucket, self.prefix = parse_s3_uri(settings["s3_uri"], "s3_uri")
        self.events = events
        self.log = log
        self.late_arrival: timedelta = settings["late_arrival"]
        self._client = s3_client({"endpoint_url": settings["endpoint_url"],
                                  "region": settings["region"]})

    def streams(self) -> list[tuple[str, bool]]:
        """(prefix, dated) of every stream: a walk down the folders with Delimiter='/',
        stopping at the first dated folder (a handful of calls, never a full listing)."""
        found: list[tuple[str, bool]] = []
        folders = [self.prefix]
        with s3_errors(self.bucket, SourceError):
            while folders:
                folder = folders.pop()
                subfolders, has_objects = self._folder(folder)
                if any(_DATED.match(sub[len(folder):]) for sub in subfolders):
                    found.append((folder, True))
                    continue
                if has_objects:
                    found.append((folder, False))
                folders.extend(subfolders)
        if not found:
            raise SourceError(f"s3://{self.bucket}/{self.prefix} holds no objects; check "
                              "s3_uri (Network Firewall writes under AWSLogs/<account>/...)")
        return sorted(found)

    def read(self, stream: str, dated: bool, previous: Mapping[str, Any] | None,
             first_since: datetime | None) -> tuple[Iterator[dict[str, Any]], dict[str, Any]]:
        """The wanted events of the stream's new objects, and the position to commit once
        they are all read (filled in as the iterator runs). On a stream's first run,
        objects last modified before `first_since` are passed over, not read."""
        after = str((previous or {}).get("after", ""))
        read: dict[str, int] = dict((previous or {}).get("read", {}))
        memory: dict[str, Any] = {"after": after, "read": read}

        def events() -> Iterator[dict[str, Any]]:
            floor_ms = to_epoch_ms(first_since) if previous is None and first_since else None
            passed_over = 0
            with s3_errors(self.bucket, SourceError):
                for key, modified_ms in self._listing(stream, dated, after):
                    if key in read:
                        continue
                    if floor_ms is None or modified_ms >= floor_ms:
                        yield from self._object(key)
                    else:
                        passed_over += 1
                    read[key] = modified_ms
            if passed_over:
                self.log.info("s3://%s/%s: first run: %d object(s) older than the first run's "
                              "window were passed over", self.bucket, stream, passed_over)
            memory.update(self._advance(after, read))

        return events(), memory

    # -- S3 calls -----------------------------------------------------------------------------

    def _folder(self, folder: str) -> tuple[list[str], bool]:
        subfolders: list[str] = []
        has_objects = False
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=folder, Delimiter="/")
        for page in pages:
            subfolders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            has_objects = has_objects or bool(page.get("Contents"))
        return subfolders, has_objects

    def _listing(self, stream: str, dated: bool, after: str) -> Iterator[tuple[str, int]]:
        query: dict[str, Any] = {"Bucket": self.bucket, "Prefix": stream}
        if after:
            query["StartAfter"] = after
        if not dated:
            query["Delimiter"] = "/"  # this folder's objects; deeper folders are streams
        for page in self._client.get_paginator("list_objects_v2").paginate(**query):
            for item in page.get("Contents", []):
                yield item["Key"], to_epoch_ms(item["LastModified"])

    def _object(self, key: str) -> Iterator[dict[str, Any]]:
        body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            data = body.read()  # whole: an object is small, and never read again
        finally:
            body.close()
        bad = BadLines(f"s3://{self.bucket}/{key}")
        try:
            stream, _ = open_maybe_gzip(io.BufferedReader(io.BytesIO(data)))
            for line_start, _end, line in lines(stream, 0, final=True):
                event = self.events.wanted(line, line_start, bad)
                if event is not None:
                    yield event
        except (*GZIP_ERRORS, EOFError) as exc:
            raise SourceError(f"s3://{self.bucket}/{key} is not a readable gzip object "
                              f"({exc or 'cut short'}); replace or remove it") from None
        finally:
            bad.report(self.log)

    def _advance(self, after: str, read: dict[str, int]) -> dict[str, Any]:
        """Move `after` up to the newest key written more than late_arrival before the
        stream's newest object; keep in `read` every key beyond it."""
        if not read:
            return {"after": after, "read": {}}
        late_ms = int(self.late_arrival.total_seconds() * 1000)
        newest = max(read.values())
        recent = [key for key, ms in read.items() if ms >= newest - late_ms]
        lowest_recent = min(recent)
        older = [key for key in read if key < lowest_recent]
        new_after = max(after, max(older)) if older else after
        return {"after": new_after, "read": {k: ms for k, ms in sorted(read.items())
                                             if k > new_after}}
