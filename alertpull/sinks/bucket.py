"""The bucket sink (S3, GCS): parts are staged in a local spool, then published as one
object each.

Keys are the local sink's Hive-style paths under a prefix, so Athena, BigQuery and Spark
read the bucket as they are. A staged part lives only in the spool, never in the bucket,
so readers cannot see it; publishing is one upload, which the store makes visible only
once complete. The store-specific calls are the adapter's (alertpull/objectstore.py).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from alertpull.errors import ConfigError
from alertpull.fileutil import remove_quietly
from alertpull.objectstore import ObjectStore, object_key
from alertpull.sinks.base import Part, PartWriter, Sink, part_name


def private_spool(path: str) -> str:
    """Create the spool owner-only and refuse one we do not own or others can write to.

    Staged parts hold alert data; the default spool sits in the shared temp directory,
    where another local user could pre-create it to read our files or plant symlinks.
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise ConfigError(
            f"sink spool_dir {path} must be a directory owned by this user and writable "
            "only by it; fix its owner/mode or set sink.spool_dir to another directory"
        )
    return path


class BucketSink(Sink):
    def __init__(self, settings: Mapping[str, Any], objects: ObjectStore) -> None:
        self.objects = objects
        self.bucket = objects.bucket
        self.prefix: str = settings.get("prefix", "")
        # config.py has already checked the choice of compression.
        self.compress = settings.get("compression", "gzip") == "gzip"
        self.spool = private_spool(
            settings.get("spool_dir") or os.path.join(tempfile.gettempdir(), "alertpull-spool")
        )

    def open_part(self, source: str, started: datetime, run_id: str, part: str) -> PartWriter:
        key = object_key(
            self.prefix, part_name(source, started, run_id, part, ".gz" if self.compress else "")
        )
        return PartWriter(self._staged(key), key, self.compress)

    def _staged(self, key: str) -> str:
        """The spool file for an object: scheme, bucket and key percent-encoded into one
        name, so sinks sharing a spool never collide and there is no tree to prune."""
        return os.path.join(self.spool, quote(self.objects.url(key), safe="="))

    def publish(self, part: Part) -> None:
        if not self.is_published(part):
            self.objects.upload_file(part.staged, part.final)
        remove_quietly(part.staged)

    def is_published(self, part: Part) -> bool:
        return self.objects.exists(part.final)

    def discard_orphans(self, source: str) -> None:
        stem = os.path.basename(self._staged(object_key(self.prefix, f"source={source}") + "/"))
        for name in os.listdir(self.spool):
            if name.startswith(stem):
                remove_quietly(os.path.join(self.spool, name))

    def location(self) -> str:
        return self.objects.url(object_key(self.prefix))
