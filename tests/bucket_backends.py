"""S3 (moto's server) and GCS (tests/fakes/gcs.py) as one interface, for the CLI tests
that hold for every bucket sink and state (a plain module, not a conftest)."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from alertpull.timeutil import parse_time, utcnow
from tests.fakes.gcs import GcsFake
from tests.s3_fixtures import moto_server, unique_bucket


@dataclass
class Backend:
    """One bucket holding both the sink (under `alerts/`) and the state."""

    kind: str  # s3 | gcs
    bucket: str
    env: dict[str, str]  # what the CLI needs to reach it
    client: Any  # boto3 S3 client, or the GcsFake

    def sink(self, **extra: Any) -> dict[str, Any]:
        return {"type": self.kind, "bucket": self.bucket, "prefix": "alerts", **extra,
                **self._endpoint()}

    def state(self, **extra: Any) -> dict[str, Any]:
        return {"backend": self.kind, "bucket": self.bucket, **extra, **self._endpoint()}

    def _endpoint(self) -> dict[str, str]:
        # S3 is found through AWS_ENDPOINT_URL_S3; GCS through the `endpoint` key.
        return {"endpoint": self.client.url} if self.kind == "gcs" else {}

    def object_keys(self, prefix: str = "") -> list[str]:
        if self.kind == "gcs":
            return list(self.client.keys(self.bucket, prefix))
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for o in listed.get("Contents", [])]

    def read(self, key: str) -> bytes:
        if self.kind == "gcs":
            return bytes(self.client.read(self.bucket, key))
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def records(self, prefix: str = "alerts/") -> list[dict[str, Any]]:
        """Every record in the published gzip parts."""
        return [json.loads(line) for key in self.object_keys(prefix)
                for line in gzip.decompress(self.read(key)).splitlines()]

    def wait_for_lease_to_expire(self, source: str) -> None:
        """Sleep until the source's lease (left by a killed or stalled run) has expired."""
        lease = json.loads(self.read(f"alertpull/state/{source}.lock"))
        expires = parse_time(lease["expires_at"])
        time.sleep(max(0.0, (expires - utcnow()).total_seconds()) + 0.05)


@contextmanager
def bucket_backend(kind: str, aws_env: dict[str, str]) -> Iterator[Backend]:
    """A fresh bucket on a fresh server; `aws_env` supplies the fake AWS credentials."""
    bucket = unique_bucket()
    if kind == "gcs":
        # The emulator variable makes the real client send no credentials.
        with GcsFake(bucket) as fake:
            yield Backend(kind, bucket, {"STORAGE_EMULATOR_HOST": fake.url}, fake)
        return
    import boto3

    with moto_server() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint,
                              aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
                              region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        yield Backend(kind, bucket, {"AWS_ENDPOINT_URL_S3": endpoint}, client)
