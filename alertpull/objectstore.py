"""What alertpull needs of an object store (S3, GCS): the few calls the bucket sink, the
bucket state store, its lease and the log reader are built on.

Each store's adapter (alertpull/sinks/s3.py, alertpull/sinks/gcs.py) maps these onto its
own conditional requests: a *version* is the S3 ETag or the GCS generation, and a put or
delete "if it matches" is S3's IfMatch / IfNoneMatch="*" or GCS's ifGenerationMatch
(0 = must not exist). Everything above the adapters is written once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import IO

from alertpull.errors import AlertpullError

# The condition of a put: the object must not exist yet.
ABSENT = ""


def object_key(*parts: str) -> str:
    """Join key parts with '/', ignoring an empty prefix and stray slashes."""
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


class ObjectStore(ABC):
    """One bucket. Failures become `error` (SourceError for a sink, StateError for state)
    with one line naming the bucket and the likely fix."""

    def __init__(self, bucket: str, error: type[AlertpullError]) -> None:
        self.bucket = bucket
        self.error = error

    scheme: str  # "s3" or "gs", for locations in messages

    @abstractmethod
    def get(self, key: str) -> tuple[bytes, str] | None:
        """(body, version) of an object, or None when it does not exist."""

    @abstractmethod
    def put(self, key: str, body: bytes, content_type: str, if_match: str) -> str | None:
        """Write `body` if the object's version is `if_match` (ABSENT: it must not exist);
        return the new version, or None when the condition did not hold."""

    @abstractmethod
    def delete(self, key: str, if_match: str | None = None) -> bool:
        """Delete the object (if it still has version `if_match`); False when it was gone
        or had changed."""

    @abstractmethod
    def upload_file(self, path: str, key: str) -> None:
        """Upload a local file as one object, visible only once complete."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def listing(self, prefix: str) -> tuple[list[str], list[str]]:
        """(object keys, sub-folder prefixes ending in '/') directly under `prefix`."""

    @abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """A readable stream of the object's bytes."""

    def url(self, key: str = "") -> str:
        """The object's URL (`key` as given: a trailing '/' is kept)."""
        return f"{self.scheme}://{self.bucket}/{key}" if key else f"{self.scheme}://{self.bucket}"
