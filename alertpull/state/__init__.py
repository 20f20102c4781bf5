"""State stores: where cursors, pending deliveries and run history live."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alertpull.state.base import StateStore


def open_state(settings: Mapping[str, Any]) -> StateStore:
    """Build the configured state store; imports boto3 / google-cloud-storage only for
    the S3 / GCS backend."""
    if settings["backend"] == "s3":
        from alertpull.state.s3 import S3StateStore

        return S3StateStore(settings)
    if settings["backend"] == "gcs":
        from alertpull.state.gcs import GcsStateStore

        return GcsStateStore(settings)
    from alertpull.state.local import LocalStateStore

    return LocalStateStore(settings)
