"""Small durable-file helpers shared by the local sink and the local state store."""

from __future__ import annotations

import contextlib
import os


def fsync_dir(path: str) -> None:
    """Persist a rename: fsync the directory that holds the entry."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
