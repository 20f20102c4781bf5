"""Bucket state (S3, GCS): one JSON document per source, updated by conditional writes;
leased locks.

Saves are compare-and-swap on the object's version (S3 ETag, GCS generation), so hosts
sharing a bucket can never silently overwrite each other. A bucket has no lock that dies
with the process, so a lock is a lease object with an expiry: the holder renews it in
the background, releases it on exit, and a run that finds it expired (its holder
crashed) takes it over, again by CAS. The store-specific calls are the adapter's
(alertpull/objectstore.py).
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
from alertpull.objectstore import ABSENT, ObjectStore, object_key
from alertpull.state.base import StateStore, parse_document, render_document
from alertpull.timeutil import format_time, parse_time, utcnow

log = logging.getLogger(__name__)


class LeaseLost(StateError):
    """This run's lease expired and another run took the source: it must stop writing."""


class BucketStateStore(StateStore):
    def __init__(self, settings: Mapping[str, Any], objects: ObjectStore) -> None:
        self.objects = objects
        self.prefix: str = settings.get("prefix", "alertpull/state")
        self.lease_seconds = float(settings.get("lease_seconds", 900))
        if not self.lease_seconds > 0:
            raise ConfigError("state.lease_seconds must be a positive number of seconds")
        self._leases: dict[str, Lease] = {}  # the sources this process holds

    def _key(self, source: str, suffix: str) -> str:
        return object_key(self.prefix, f"{source}{suffix}")

    def load(self, source: str) -> tuple[dict[str, Any] | None, Any]:
        got = self.objects.get(self._key(source, ".json"))
        if got is None:
            return None, None
        body, version = got
        return parse_document(source, body, self.location(source)), version

    def save(self, source: str, doc: dict[str, Any], token: Any) -> Any:
        version = self.objects.put(self._key(source, ".json"), render_document(doc),
                                   "application/json", ABSENT if token is None else token)
        if version is None:
            raise StateError(
                f"state for source {source!r} was changed by another run during this one "
                f"({self.location(source)}); nothing was overwritten, the next run retries"
            )
        return version

    def discard(self, source: str) -> None:
        self.objects.delete(self._key(source, ".json"))

    @contextlib.contextmanager
    def lock(self, source: str) -> Iterator[None]:
        lease = Lease(self, source)
        lease.acquire()
        self._leases[source] = lease
        try:
            lease.start_renewing()
            yield
        finally:
            del self._leases[source]
            lease.release()

    def assert_held(self, source: str) -> None:
        lease = self._leases.get(source)
        if lease is not None:
            lease.assert_held()

    def sources(self) -> list[str]:
        folder = object_key(self.prefix)  # '' when the prefix is empty
        folder += "/" if folder else ""
        keys, _ = self.objects.listing(folder)
        names = (key[len(folder):] for key in keys)
        return sorted(name.removesuffix(".json") for name in names if name.endswith(".json"))

    def location(self, source: str) -> str:
        return self.objects.url(self._key(source, ".json"))


class Lease:
    """One run's hold on a source's lock object: acquire, renew in the background, release."""

    def __init__(self, store: BucketStateStore, source: str) -> None:
        self.store = store
        self.objects = store.objects
        self.source = source
        self.key = store._key(source, ".lock")
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.acquired_at = ""
        self.version = ""
        self.lost = False  # another run took the lease over: we must write nothing more
        self._write_lock = threading.Lock()  # the renewer and assert_held both renew
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _write(self, if_match: str) -> bool:
        """Write our lease with a fresh expiry if the lease object's version is `if_match`;
        remember the new version."""
        expires = utcnow() + timedelta(seconds=self.store.lease_seconds)
        body = {
            "owner": self.owner,
            "acquired_at": self.acquired_at,
            "expires_at": format_time(expires),
        }
        version = self.objects.put(self.key, json.dumps(body).encode(), "application/json",
                                   if_match)
        if version is not None:
            self.version = version
        return version is not None

    def acquire(self) -> None:
        self.acquired_at = format_time(utcnow())
        if self._write(ABSENT):
            return
        got = self.objects.get(self.key)
        if got is None:  # released since our first try
            condition = ABSENT
        else:
            held, version = got
            expires_at = self._expiry(held)
            if expires_at is not None and expires_at > utcnow():
                raise LockHeld(
                    f"source {self.source!r} is locked by {self._owner(held)} until "
                    f"{format_time(expires_at)} ({self.objects.url(self.key)})"
                )
            # Its holder died without releasing it: take it over.
            log.warning(
                "lock for source %r held by %s has expired; taking it over",
                self.source,
                self._owner(held),
            )
            condition = version
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

    def _renew(self) -> bool:
        """Extend the lease if it is still ours; False (and `lost`) once it is not."""
        with self._write_lock:
            if not self.lost and not self._write(self.version) and not self._still_ours():
                self.lost = True
            return not self.lost

    def _still_ours(self) -> bool:
        """After a refused renewal: is the lease object ours all the same? The client
        retries a write whose reply was lost, and the retry is refused because the first
        try landed. Then adopt that version instead of giving up the source."""
        got = self.objects.get(self.key)
        if got is None or self._owner(got[0]) != self.owner:
            return False
        self.version = got[1]
        return True

    def assert_held(self) -> None:
        """Renew now, and raise LeaseLost if another run has taken the lease over.

        Called right before publishing and before committing: a run that stalled past
        its lease (a paused VM, a stopped process) must not write after the run that took
        the source over. Renewing, rather than only reading, also gives the step that
        follows a full lease of time.
        """
        if not self._renew():
            raise LeaseLost(
                f"lost the lock for source {self.source!r}: this run stalled past "
                f"lease_seconds ({self.store.lease_seconds}) and another run took the source "
                "over; nothing more was published or committed, the other run delivers it"
            )

    def start_renewing(self) -> None:
        self._renewer = threading.Thread(
            target=self._renew_until_stopped, name=f"lease-{self.source}", daemon=True
        )
        self._renewer.start()

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.store.lease_seconds / 3):
            try:
                renewed = self._renew()
            except StateError as exc:  # transient: the lease still has time left
                log.warning("could not renew the lock for source %r: %s", self.source, exc)
                continue
            if not renewed:
                # The run checks the lease before it publishes or commits (assert_held),
                # and saves stay compare-and-swap besides: it will stop there.
                log.warning(
                    "lost the lock for source %r to another run (the lease expired before "
                    "it was renewed); this run will publish and commit nothing more",
                    self.source,
                )
                return

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours; never raises."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self.lost:
            return  # someone else's now
        try:
            # False: someone took over or removed the lease, so it was not ours to delete.
            self.objects.delete(self.key, if_match=self.version)
        except StateError as exc:
            # Raising here would hide the run's own outcome, and the lease expires by itself.
            log.warning("could not release the lock for source %r: %s", self.source, exc)
