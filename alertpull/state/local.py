"""Local state: a directory of JSON documents, atomic replace, fcntl lock per source."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Mapping
from typing import Any

from alertpull.errors import LockHeld, StateError
from alertpull.fileutil import write_atomic
from alertpull.state.base import StateStore, parse_document, render_document


class LocalStateStore(StateStore):
    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.root = os.path.abspath(settings["path"])

    def _path(self, source: str) -> str:
        return os.path.join(self.root, f"{source}.json")

    def load(self, source: str) -> tuple[dict[str, Any] | None, Any]:
        path = self._path(source)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise StateError(f"cannot read state {path}: {exc.strerror}") from None
        return parse_document(source, data, path), os.stat(path).st_mtime_ns

    def save(self, source: str, doc: dict[str, Any], token: Any) -> Any:
        path = self._path(source)
        os.makedirs(self.root, exist_ok=True)
        current = os.stat(path).st_mtime_ns if os.path.exists(path) else None
        if current != token:
            raise StateError(f"state {path} was changed by another process during this run")
        write_atomic(path, render_document(doc))
        return os.stat(path).st_mtime_ns

    def discard(self, source: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._path(source))

    @contextlib.contextmanager
    def lock(self, source: str) -> Iterator[None]:
        os.makedirs(self.root, exist_ok=True)
        path = os.path.join(self.root, f"{source}.lock")
        # flock is released by the kernel when the process dies, so a crash never
        # leaves a stale lock behind.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockHeld(f"source {source!r} is locked by another run ({path})") from None
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def sources(self) -> list[str]:
        if not os.path.isdir(self.root):
            return []
        return sorted(n[:-5] for n in os.listdir(self.root) if n.endswith(".json"))

    def location(self, source: str) -> str:
        return self._path(source)
