"""S3 state store against moto: CAS saves on ETags, refused documents, leased locks."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.s3.responses import S3Response

from alertpull.errors import LockHeld, StateError
from alertpull.sinks.s3 import S3Objects
from alertpull.state.s3 import S3StateStore
from alertpull.timeutil import format_time, parse_time, utcnow
from tests.s3_fixtures import fake_aws_env, moto_server, unique_bucket

BUCKET = "alertpull-state"
DOC = {"schema_version": 1, "scopes": {"us-east-1": {"watermark": "2026-01-31T00:00:00.000Z"}}}
DOC_KEY = "alertpull/state/gd.json"
LOCK_KEY = "alertpull/state/gd.lock"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """In-process moto with one bucket; yields a plain client to inspect it."""
    fake_aws_env(monkeypatch)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def make_store(**settings: Any) -> S3StateStore:
    return S3StateStore({"bucket": BUCKET, **settings})


def put_lease(client: Any, owner: str, expires_in: float) -> str:
    expires = format_time(utcnow() + timedelta(seconds=expires_in))
    body = json.dumps({"owner": owner, "acquired_at": "", "expires_at": expires})
    return client.put_object(Bucket=BUCKET, Key=LOCK_KEY, Body=body)["ETag"]


def read_lease(client: Any) -> dict[str, Any]:
    return json.loads(client.get_object(Bucket=BUCKET, Key=LOCK_KEY)["Body"].read())


def lease_exists(client: Any) -> bool:
    return client.list_objects_v2(Bucket=BUCKET, Prefix=LOCK_KEY)["KeyCount"] == 1


# --- documents ---------------------------------------------------------------------


def test_save_and_load_round_trip_with_etags(s3: Any) -> None:
    store = make_store()
    assert store.load("gd") == (None, None)

    first = store.save("gd", DOC, None)
    doc, token = store.load("gd")
    assert doc == DOC
    assert token == first == s3.head_object(Bucket=BUCKET, Key=DOC_KEY)["ETag"]

    updated = {**DOC, "last_run": {"ok": True}}
    second = store.save("gd", updated, token)
    assert second != first
    assert store.load("gd") == (updated, second)


def test_stale_token_is_refused_and_nothing_is_overwritten(s3: Any) -> None:
    store, other_host = make_store(), make_store()
    token = store.save("gd", DOC, None)
    other_host.save("gd", {**DOC, "by": "other"}, token)

    with pytest.raises(StateError, match="changed by another run"):
        store.save("gd", {**DOC, "by": "me"}, token)
    assert store.load("gd")[0] == {**DOC, "by": "other"}


def test_create_if_absent_conflict_is_refused(s3: Any) -> None:
    store, other_host = make_store(), make_store()
    assert store.load("gd") == (None, None)
    assert other_host.load("gd") == (None, None)
    other_host.save("gd", {**DOC, "by": "other"}, None)

    with pytest.raises(StateError, match="changed by another run"):
        store.save("gd", {**DOC, "by": "me"}, None)
    assert store.load("gd")[0] == {**DOC, "by": "other"}


def test_document_deleted_meanwhile_is_refused(s3: Any) -> None:
    store = make_store()
    token = store.save("gd", DOC, None)
    s3.delete_object(Bucket=BUCKET, Key=DOC_KEY)
    with pytest.raises(StateError, match="changed by another run"):
        store.save("gd", DOC, token)


@pytest.mark.parametrize(
    ("body", "fix"),
    [
        (b"{not json", "cursor reset --source gd"),
        (b'["a list"]', "cursor reset --source gd"),
        (json.dumps({"schema_version": 99}).encode(), "upgrade alertpull"),
    ],
)
def test_unusable_document_is_refused_with_the_fix(s3: Any, body: bytes, fix: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=DOC_KEY, Body=body)
    with pytest.raises(StateError, match=fix) as caught:
        make_store().load("gd")
    assert f"s3://{BUCKET}/{DOC_KEY}" in str(caught.value)


def test_sources_lists_documents_under_the_prefix_only(s3: Any) -> None:
    store = make_store(prefix="team/state/")
    for name in ("b", "a"):
        store.save(name, DOC, None)
    for key in ("team/state/a.lock", "team/state/old/c.json", "team/other.json"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")

    assert store.sources() == ["a", "b"]
    assert store.location("a") == f"s3://{BUCKET}/team/state/a.json"
    assert make_store(prefix="empty").sources() == []


def test_missing_bucket_is_one_line_state_error(s3: Any) -> None:
    with pytest.raises(StateError, match="'no-such-bucket' does not exist"):
        S3StateStore({"bucket": "no-such-bucket"}).load("gd")


def test_discard_deletes_the_document(s3: Any) -> None:
    store = make_store()
    store.save("gd", DOC, None)
    store.discard("gd")
    assert store.load("gd") == (None, None)
    store.discard("gd")  # already gone: still fine


# --- locks -------------------------------------------------------------------------


def test_live_lease_of_another_run_is_lock_held(s3: Any) -> None:
    etag = put_lease(s3, "other-host:42:beef", expires_in=600)

    with (
        pytest.raises(LockHeld, match="locked by other-host:42:beef until") as caught,
        make_store().lock("gd"),
    ):
        pytest.fail("must not enter the block")
    assert caught.value.exit_code == 75
    assert s3.head_object(Bucket=BUCKET, Key=LOCK_KEY)["ETag"] == etag, "lease left alone"


@pytest.mark.parametrize("stale", ["expired", "garbage"])
def test_expired_or_unreadable_lease_is_taken_over(s3: Any, stale: str) -> None:
    if stale == "expired":
        put_lease(s3, "crashed-host:7:dead", expires_in=-1)
    else:
        s3.put_object(Bucket=BUCKET, Key=LOCK_KEY, Body=b"\x00garbage")

    with make_store(lease_seconds=60).lock("gd"):
        lease = read_lease(s3)
        assert lease["owner"] != "crashed-host:7:dead"
        assert parse_time(lease["expires_at"]) > utcnow() + timedelta(seconds=50)
    assert not lease_exists(s3)


def test_takeover_of_an_expired_lease_loses_to_a_faster_run(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_lease(s3, "crashed-host:7:dead", expires_in=-1)
    read = S3Objects.get

    def read_then_lose_the_race(self: S3Objects, key: str) -> Any:
        got = read(self, key)
        put_lease(s3, "faster-host:9:f00d", expires_in=600)  # takes it over before us
        return got

    monkeypatch.setattr(S3Objects, "get", read_then_lose_the_race)
    with pytest.raises(LockHeld, match="just locked by another run"), make_store().lock("gd"):
        pytest.fail("must not enter the block")
    assert read_lease(s3)["owner"] == "faster-host:9:f00d"


def test_racing_runs_exactly_one_wins(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Real S3 evaluates a conditional PUT atomically; moto checks then writes. Serialize
    # moto's handler so the race is decided the way S3 decides it.
    atomic = threading.Lock()
    put_object = S3Response.put_object

    def atomic_put(self: S3Response) -> Any:
        with atomic:
            return put_object(self)

    monkeypatch.setattr(S3Response, "put_object", atomic_put)

    runners = 4
    # Timeouts, so a broken lock fails the test instead of hanging it.
    start, tried = threading.Barrier(runners, timeout=5), threading.Barrier(runners, timeout=5)
    outcomes: list[str] = []

    def run() -> None:
        store = make_store()  # one client per "host"
        start.wait()
        try:
            with store.lock("gd"):
                outcomes.append("won")
                tried.wait()  # hold the lock until every runner has tried
        except LockHeld:
            outcomes.append("held")
            tried.wait()

    threads = [threading.Thread(target=run) for _ in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(outcomes) == ["held"] * (runners - 1) + ["won"]
    assert not lease_exists(s3)


def test_lease_is_deleted_on_exit_even_when_the_block_raises(s3: Any) -> None:
    store = make_store()
    with store.lock("gd"):
        assert read_lease(s3)["owner"]
    assert not lease_exists(s3)

    with pytest.raises(RuntimeError, match="boom"), store.lock("gd"):
        assert lease_exists(s3)
        raise RuntimeError("boom")
    assert not lease_exists(s3)

    with store.lock("gd"):  # and the source can be locked again at once
        pass


def test_renewal_keeps_the_lease_alive_past_its_first_expiry(s3: Any) -> None:
    store = make_store(lease_seconds=0.5)
    with store.lock("gd"):
        first = read_lease(s3)
        time.sleep(0.65)  # longer than the lease itself; renewals run every ~0.17 s
        renewed = read_lease(s3)
        assert renewed["owner"] == first["owner"]
        assert renewed["acquired_at"] == first["acquired_at"]
        assert parse_time(renewed["expires_at"]) > parse_time(first["expires_at"])
        with pytest.raises(LockHeld), make_store().lock("gd"):
            pass
    assert not lease_exists(s3)


def test_lost_lease_is_reported_and_not_deleted(s3: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="alertpull.state.bucket")
    with make_store(lease_seconds=0.5).lock("gd"):
        # Another run took the lease over (ours had expired while we stalled).
        etag = put_lease(s3, "other-host:42:beef", expires_in=600)
        deadline = time.monotonic() + 2  # the next renewal (~0.17 s) must notice
        while "lost the lock for source 'gd'" not in caplog.text:
            assert time.monotonic() < deadline, "the renewer did not notice the lost lease"
            time.sleep(0.05)
    assert s3.head_object(Bucket=BUCKET, Key=LOCK_KEY)["ETag"] == etag, "theirs survives"


def test_real_http_through_aws_endpoint_url_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    """Conditional writes and the lease over real HTTP; endpoint only from the env var."""
    fake_aws_env(monkeypatch)
    bucket = unique_bucket()
    with moto_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        store = S3StateStore({"bucket": bucket})
        assert store.objects.client.meta.endpoint_url == endpoint

        with store.lock("gd"):
            with pytest.raises(LockHeld), S3StateStore({"bucket": bucket}).lock("gd"):
                pass
            token = store.save("gd", DOC, None)
            with pytest.raises(StateError):
                store.save("gd", DOC, None)
            assert store.load("gd") == (DOC, token)
        assert store.sources() == ["gd"]
        with store.lock("gd"):  # released over HTTP too
            pass
