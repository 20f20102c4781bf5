"""Helpers shared by the S3 sink and state tests (a plain module, not a conftest)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

# Distinctive, so a test can prove it never appears in an error message.
FAKE_SECRET = "fake-secret-9f3c1d0e"


def fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, and nothing from the host's AWS config can leak into a test."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@contextmanager
def moto_server() -> Iterator[str]:
    """A real moto S3 server on 127.0.0.1 (an ephemeral port); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def unique_bucket() -> str:
    """The server's backend outlives a test, so each server test uses a bucket of its own."""
    return f"alertpull-{uuid.uuid4().hex[:12]}"
