"""S3 state: the bucket state store (state/bucket.py) over S3's conditional writes
(`IfNoneMatch="*"` to create, `IfMatch=<etag>` to update; 412/409 = someone else moved it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alertpull.errors import StateError
from alertpull.sinks.s3 import S3Objects
from alertpull.state.bucket import BucketStateStore, Lease

__all__ = ["Lease", "S3StateStore"]  # Lease lived here before it was shared with GCS


class S3StateStore(BucketStateStore):
    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings, S3Objects(settings, StateError))
