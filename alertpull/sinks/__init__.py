"""Sinks: where alert records are written. Built from the `sink:` config block."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alertpull.sinks.base import Sink


def open_sink(settings: Mapping[str, Any]) -> Sink:
    """Build the configured sink; imports boto3 / google-cloud-storage only for the S3 /
    GCS sink."""
    kind = settings["type"]
    if kind == "jsonl":
        from alertpull.sinks.local import LocalSink

        return LocalSink(settings)
    if kind == "s3":
        from alertpull.sinks.s3 import S3Sink

        return S3Sink(settings)
    if kind == "gcs":
        from alertpull.sinks.gcs import GcsSink

        return GcsSink(settings)
    from alertpull.sinks.stdout import StdoutSink

    return StdoutSink(settings)
