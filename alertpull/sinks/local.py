"""Local JSONL sink: Hive-style partitions under a directory, atomic rename to publish."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from alertpull.fileutil import fsync_dir, remove_quietly
from alertpull.sinks.base import Part, PartWriter, Sink, part_name


class LocalSink(Sink):
    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.root = os.path.abspath(settings["path"])
        self.compress = settings.get("compression", "none") == "gzip"

    def open_part(self, source: str, started: datetime, run_id: str, part: str) -> PartWriter:
        relative = part_name(source, started, run_id, part, ".gz" if self.compress else "")
        final = os.path.join(self.root, relative)
        # Staged beside the final file (same filesystem, so the rename is atomic) under a
        # leading dot, which Hive, Spark and Athena skip (DuckDB needs a [!.]* glob; see
        # the README).
        staged = os.path.join(os.path.dirname(final), "." + os.path.basename(final) + ".tmp")
        return PartWriter(staged, final, self.compress)

    def publish(self, part: Part) -> None:
        if self.is_published(part):
            return
        os.replace(part.staged, part.final)
        fsync_dir(os.path.dirname(part.final))

    def is_published(self, part: Part) -> bool:
        return os.path.exists(part.final)

    def discard_orphans(self, source: str) -> None:
        for staged in glob.glob(os.path.join(self.root, f"source={source}", "dt=*", ".*.tmp")):
            remove_quietly(staged)

    def location(self) -> str:
        return self.root
