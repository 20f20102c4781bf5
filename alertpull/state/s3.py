"""S3 state: one JSON document per source, updated by conditional writes; leased locks.

Saves are compare-and-swap on the object's ETag (`IfNoneMatch="*"` to create,
`IfMatch=<etag>` to update), so hosts sharing a bucket can never silently overwrite
each other. S3 has no lock that dies with the process, so a lock is a lease object
with an expiry: the holder renews it in the background, releases it on exit, and a
run that finds it expired (its holder crashed) takes it over, again by CAS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from alertpull.errors import ConfigError, LockHeld, StateError
from alertpull.sinks.s3 import describe_s3_error, error_code, s3_client, s3_errors, s3_key
from alertpull.state.base import StateStore, parse_document, render_document
from alertpull.timeutil import format_time, parse_time, utcnow

log = logging.getLogger(__name__)

# Someone else wrote or deleted the object since we read it (412), or is writing it
# right now (409). NoSuchKey answers IfMatch on an object that was deleted meanwhile.
CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey")


class S3StateStore(StateStore):
    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.bucket: str = settings["bucket"]
        self.prefix: str = settings.get("prefix", "alertpull/state")
        self.lease_seconds = float(settings.get("lease_seconds", 900))
        if not self.lease_seconds > 0:
            raise ConfigError("state.lease_seconds must be a positive number of seconds")
        self.client = s3_client(settings)

    def _key(self, source: str, suffix: str) -> str:
        return s3_key(self.prefix, f"{source}{suffix}")

    def load(self, source: str) -> tuple[dict[str, Any] | None, Any]:
        got = self._get(self._key(source, ".json"))
        if got is None:
            return None, None
        body, etag = got
        return parse_document(source, body, self.location(source)), etag

    def save(self, source: str, doc: dict[str, Any], token: Any) -> Any:
        condition = {"IfNoneMatch": "*"} if token is None else {"IfMatch": token}
        etag = self._put(self._key(source, ".json"), render_document(doc), condition)
        if etag is None:
            raise StateError(
                f"state for source {source!r} was changed by another run during this one "
                f"({self.location(source)}); nothing was overwritten, the next run retries"
            )
        return etag

    def discard(self, source: str) -> None:
        with s3_errors(self.bucket, StateError):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(source, ".json"))

    @contextlib.contextmanager
    def lock(self, source: str) -> Iterator[None]:
        lease = Lease(self, source)
        lease.acquire()
        try:
            lease.start_renewing()
            yield
        finally:
            lease.release()

    def sources(self) -> list[str]:
        folder = s3_key(self.prefix)  # '' when the prefix is empty
        folder += "/" if folder else ""
        names: list[str] = []
        with s3_errors(self.bucket, StateError):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=folder, Delimiter="/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(folder) :]
                    if name.endswith(".json"):
                        names.append(name.removesuffix(".json"))
        return sorted(names)

    def location(self, source: str) -> str:
        return f"s3://{self.bucket}/{self._key(source, '.json')}"

    def _get(self, key: str) -> tuple[bytes, str] | None:
        """(body, ETag) of an object, or None when it does not exist."""
        from botocore.exceptions import ClientError

        with s3_errors(self.bucket, StateError):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) == "NoSuchKey":
                    return None
                raise
            return response["Body"].read(), response["ETag"]

    def _put(self, key: str, body: bytes, condition: dict[str, str]) -> str | None:
        """Conditional PUT; the new ETag, or None when the condition did not hold."""
        from botocore.exceptions import ClientError

        with s3_errors(self.bucket, StateError):
            try:
                response = self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType="application/json",
                    **condition,
                )
            except ClientError as exc:
                if error_code(exc) in CONFLICTS:
                    return None
                raise
            return response["ETag"]


class Lease:
    """One run's hold on a source's lock object: acquire, renew in the background, release."""

    def __init__(self, store: S3StateStore, source: str) -> None:
        self.store = store
        self.source = source
        self.key = store._key(source, ".lock")
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.acquired_at = ""
        self.etag = ""
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _write(self, condition: dict[str, str]) -> bool:
        """Write our lease with a fresh expiry if `condition` holds; remember its ETag."""
        expires = utcnow() + timedelta(seconds=self.store.lease_seconds)
        body = {
            "owner": self.owner,
            "acquired_at": self.acquired_at,
            "expires_at": format_time(expires),
        }
        etag = self.store._put(self.key, json.dumps(body).encode(), condition)
        if etag is not None:
            self.etag = etag
        return etag is not None

    def acquire(self) -> None:
        self.acquired_at = format_time(utcnow())
        if self._write({"IfNoneMatch": "*"}):
            return
        got = self.store._get(self.key)
        if got is None:  # released since our first try
            condition = {"IfNoneMatch": "*"}
        else:
            held, etag = got
            expires_at = self._expiry(held)
            if expires_at is not None and expires_at > utcnow():
                raise LockHeld(
                    f"source {self.source!r} is locked by {self._owner(held)} until "
                    f"{format_time(expires_at)} (s3://{self.store.bucket}/{self.key})"
                )
            # Its holder died without releasing it: take it over.
            log.warning(
                "lock for source %r held by %s has expired; taking it over",
                self.source,
                self._owner(held),
            )
            condition = {"IfMatch": etag}
        # Conditional, so of several runs arriving at once exactly one gets the lease.
        if not self._write(condition):
            raise LockHeld(f"source {self.source!r} was just locked by another run")

    @staticmethod
    def _expiry(body: bytes) -> datetime | None:
        """The lease's expiry, or None when unreadable (treated as expired: a garbage
        lease would otherwise block the source forever)."""
        try:
            return parse_time(json.loads(body)["expires_at"])
        except (ValueError, TypeError, KeyError):
            return None

    @staticmethod
    def _owner(body: bytes) -> str:
        try:
            return str(json.loads(body)["owner"])
        except (ValueError, TypeError, KeyError):
            return "an unknown owner"

    def start_renewing(self) -> None:
        self._renewer = threading.Thread(
            target=self._renew_until_stopped, name=f"lease-{self.source}", daemon=True
        )
        self._renewer.start()

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.store.lease_seconds / 3):
            try:
                renewed = self._write({"IfMatch": self.etag})
            except StateError as exc:  # transient: the lease still has time left
                log.warning("could not renew the lock for source %r: %s", self.source, exc)
                continue
            if not renewed:
                # Saves stay compare-and-swap, so neither run can overwrite the other's
                # state: whichever saves second fails. Say why it will.
                log.warning(
                    "lost the lock for source %r to another run (the lease expired before "
                    "it was renewed); one of the two runs will fail to save its state",
                    self.source,
                )
                return

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours; never raises."""
        from botocore.exceptions import BotoCoreError, ClientError

        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            self.store.client.delete_object(
                Bucket=self.store.bucket, Key=self.key, IfMatch=self.etag
            )
        except (BotoCoreError, ClientError) as exc:
            # 412/404: someone took over or removed the lease, so it is not ours to delete.
            # Anything else: raising here would hide the run's own outcome, and the
            # lease expires by itself.
            if error_code(exc) not in (*CONFLICTS, "404"):
                log.warning(
                    "could not release the lock for source %r: %s",
                    self.source,
                    describe_s3_error(exc, self.store.bucket),
                )
