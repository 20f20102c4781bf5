"""GCS state: the bucket state store (state/bucket.py) over GCS generation preconditions
(`ifGenerationMatch=0` to create, `ifGenerationMatch=<generation>` to update; 412 =
someone else moved it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alertpull.errors import ConfigError, StateError
from alertpull.sinks.gcs import GcsObjects
from alertpull.state.bucket import BucketStateStore


class GcsStateStore(BucketStateStore):
    def __init__(self, settings: Mapping[str, Any]) -> None:
        try:
            objects = GcsObjects(settings, StateError, content_type="application/json")
        except StateError as exc:  # credentials are settled before anything is pulled
            raise ConfigError(f"state: {exc}") from None
        super().__init__(settings, objects)
