"""GCS sink and state against the JSON API fake, through the real google-cloud-storage
client: invisible staging, create-only publish, generation preconditions, leased locks,
one-line errors."""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alertpull.errors import ConfigError, LockHeld, SourceError, StateError
from alertpull.sinks.base import Part
from alertpull.sinks.gcs import GcsSink
from alertpull.state.bucket import LeaseLost
from alertpull.state.gcs import GcsStateStore
from alertpull.timeutil import format_time, parse_time, utcnow
from tests.fakes.gcs import GcsFake
from tests.fakes.google_sa import make_key
from tests.fakes.http_fake import Fault, Response

BUCKET = "alertpull-data"
STARTED = datetime(2026, 1, 31, 12, 34, 56, tzinfo=UTC)
LINES = ['{"id": "a", "n": 1}', '{"id": "b", "n": 2}', '{"id": "c", "text": "caf\\u00e9"}']
KEY = "alerts/source=scc/dt=2026-01-31/123456-run1-org.jsonl.gz"
DOC = {"schema_version": 1, "scopes": {"org": {"watermark": "2026-01-31T00:00:00.000Z"}}}
DOC_KEY = "alertpull/state/scc.json"
LOCK_KEY = "alertpull/state/scc.lock"


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[GcsFake]:
    with GcsFake(BUCKET) as fake:
        # The client's emulator switch: anonymous credentials, no ADC lookup.
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.url)
        yield fake


def make_sink(gcs: GcsFake, tmp_path: Path, **settings: Any) -> GcsSink:
    base = {"bucket": BUCKET, "prefix": "alerts", "endpoint": gcs.url,
            "spool_dir": str(tmp_path / "spool")}
    return GcsSink({**base, **settings})


def make_store(gcs: GcsFake, **settings: Any) -> GcsStateStore:
    return GcsStateStore({"bucket": BUCKET, "endpoint": gcs.url, **settings})


def stage(sink: GcsSink, lines: list[str] = LINES) -> Part:
    writer = sink.open_part("scc", STARTED, "run1", "org")
    for line in lines:
        writer.write(line.encode())
    return writer.close()


def put_lease(gcs: GcsFake, owner: str, expires_in: float) -> int:
    expires = format_time(utcnow() + timedelta(seconds=expires_in))
    body = json.dumps({"owner": owner, "acquired_at": "", "expires_at": expires})
    return gcs.put(BUCKET, LOCK_KEY, body.encode())


# --- sink --------------------------------------------------------------------------


def test_part_is_staged_locally_then_published_as_one_gzip_object(
        gcs: GcsFake, tmp_path: Path) -> None:
    sink = make_sink(gcs, tmp_path)
    part = stage(sink)

    assert part.final == KEY
    assert os.path.dirname(part.staged) == str(tmp_path / "spool")
    assert gcs.keys(BUCKET) == [], "a staged part must not be visible in the bucket"
    assert not sink.is_published(part)

    sink.publish(part)

    assert gcs.keys(BUCKET) == [KEY]
    stored = gcs.buckets[BUCKET][KEY]
    assert stored.content_type == "application/x-ndjson"
    assert gzip.decompress(stored.body).decode().splitlines() == LINES
    assert sink.is_published(part)
    assert not os.path.exists(part.staged), "publish removes the staged file"
    [upload] = [r for r in gcs.requests if r.path.startswith("/upload/")]
    assert upload.query["ifGenerationMatch"] == ["0"], "publish is create-only"
    assert sink.location() == f"gs://{BUCKET}/alerts"


def test_publish_is_idempotent_and_never_overwrites(gcs: GcsFake, tmp_path: Path) -> None:
    sink = make_sink(gcs, tmp_path, compression="none")
    part = stage(sink)
    sink.publish(part)
    generation = gcs.buckets[BUCKET][part.final].generation

    sink.publish(part)  # crash recovery after the staged file was already removed
    Path(part.staged).write_bytes(b"different bytes")  # killed after the upload
    sink.publish(part)

    assert gcs.keys(BUCKET) == [part.final]
    assert gcs.buckets[BUCKET][part.final].generation == generation
    assert gcs.read(BUCKET, part.final).decode().splitlines() == LINES
    assert not os.path.exists(part.staged)


def test_discard_orphans_removes_only_this_sources_staged_parts(
        gcs: GcsFake, tmp_path: Path) -> None:
    sink = make_sink(gcs, tmp_path)
    orphan = stage(sink)  # a run died before recording it
    others = [
        sink.open_part("scc-eu", STARTED, "run1", "p").close(),  # a prefix-alike source
        make_sink(gcs, tmp_path, prefix="other").open_part("scc", STARTED, "r", "p").close(),
    ]

    sink.discard_orphans("scc")

    assert not os.path.exists(orphan.staged)
    assert all(os.path.exists(part.staged) for part in others)
    assert gcs.keys(BUCKET) == []


def test_missing_bucket_is_one_line_error(gcs: GcsFake, tmp_path: Path) -> None:
    sink = make_sink(gcs, tmp_path, bucket="no-such-bucket")
    with pytest.raises(SourceError, match="GCS bucket 'no-such-bucket' does not exist") as caught:
        sink.publish(stage(sink))
    assert "\n" not in str(caught.value) and caught.value.__suppress_context__


def test_access_denied_names_the_roles(gcs: GcsFake, tmp_path: Path) -> None:
    sink = make_sink(gcs, tmp_path)
    part = stage(sink)
    denied = Response.json({"error": {"code": 403, "message": "alertpull@x does not have "
                                      "storage.objects.create access", "errors": []}}, 403)
    gcs.inject(lambda r: r.path.startswith("/upload/"), Fault(response=denied))
    with pytest.raises(SourceError, match="access denied to GCS bucket") as caught:
        sink.publish(part)
    assert "roles/storage.objectCreator" in str(caught.value)
    assert os.path.exists(part.staged), "the part waits in the spool for the next run"


def test_unusable_credentials_file_is_a_config_error(
        gcs: GcsFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    key = tmp_path / "key.json"
    key.write_text('{"type": "nonsense"}')
    for path in (key, tmp_path / "missing.json"):
        with pytest.raises(ConfigError, match=r"is not a usable service-account key") as caught:
            make_sink(gcs, tmp_path, credentials_file=str(path))
        assert "\n" not in str(caught.value)


def test_service_account_key_authenticates_every_call(
        gcs: GcsFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    key = make_key()
    path = key.write(tmp_path / "key.json", gcs.require_key(key))
    store = make_store(gcs, credentials_file=str(path))
    store.save("scc", DOC, None)
    assert store.load("scc")[0] == DOC
    assert gcs.token_endpoint is not None and gcs.token_endpoint.issued

    assert all(r.headers.get("authorization", "").startswith("Bearer ya29.fake-")
               for r in gcs.requests if r.path != "/token")


def test_no_credentials_at_all_is_a_config_error_naming_adc(
        gcs: GcsFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud ADC file
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # not on Google Cloud: skip the metadata probe
    with pytest.raises(ConfigError, match=r"no usable Google credentials.*credentials_file"):
        make_store(gcs)


def test_importing_the_gcs_modules_does_not_import_the_client() -> None:
    code = (
        "import sys, alertpull.sinks.gcs, alertpull.state.gcs; "
        "sys.exit(any(m.startswith('google') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- state documents ---------------------------------------------------------------


def test_save_and_load_round_trip_with_generation_preconditions(gcs: GcsFake) -> None:
    store = make_store(gcs)
    assert store.load("scc") == (None, None)

    first = store.save("scc", DOC, None)
    assert first == str(gcs.buckets[BUCKET][DOC_KEY].generation)
    doc, token = store.load("scc")
    assert (doc, token) == (DOC, first)

    updated = {**DOC, "last_run": {"ok": True}}
    second = store.save("scc", updated, token)
    assert second != first
    assert store.load("scc") == (updated, second)
    conditions = [r.query["ifGenerationMatch"] for r in gcs.requests
                  if r.path.startswith("/upload/")]
    assert conditions == [["0"], [first]], "create with 0, update with the generation"


def test_stale_generation_is_refused_and_nothing_is_overwritten(gcs: GcsFake) -> None:
    store, other_host = make_store(gcs), make_store(gcs)
    token = store.save("scc", DOC, None)
    other_host.save("scc", {**DOC, "by": "other"}, token)

    with pytest.raises(StateError, match="changed by another run"):
        store.save("scc", {**DOC, "by": "me"}, token)
    with pytest.raises(StateError, match="changed by another run"):
        store.save("scc", {**DOC, "by": "me"}, None)  # created meanwhile
    assert store.load("scc")[0] == {**DOC, "by": "other"}

    gcs.buckets[BUCKET].pop(DOC_KEY)  # deleted meanwhile
    with pytest.raises(StateError, match="changed by another run"):
        store.save("scc", DOC, token)


def test_corrupt_document_is_refused_with_the_fix(gcs: GcsFake) -> None:
    gcs.put(BUCKET, DOC_KEY, b"{not json")
    with pytest.raises(StateError, match="cursor reset --source scc") as caught:
        make_store(gcs).load("scc")
    assert f"gs://{BUCKET}/{DOC_KEY}" in str(caught.value)


def test_sources_lists_documents_under_the_prefix_across_pages(gcs: GcsFake) -> None:
    gcs.page_size = 2
    store = make_store(gcs, prefix="team/state/")
    for name in ("c", "b", "a"):
        store.save(name, DOC, None)
    for key in ("team/state/a.lock", "team/state/old/d.json", "team/other.json"):
        gcs.put(BUCKET, key, b"{}")

    assert store.sources() == ["a", "b", "c"]
    assert make_store(gcs, prefix="empty").sources() == []
    store.discard("a")
    assert store.sources() == ["b", "c"]


# --- leased locks ------------------------------------------------------------------


def test_live_lease_of_another_run_is_lock_held(gcs: GcsFake) -> None:
    generation = put_lease(gcs, "other-host:42:beef", expires_in=600)
    with (pytest.raises(LockHeld, match="locked by other-host:42:beef until") as caught,
          make_store(gcs).lock("scc")):
        pytest.fail("must not enter the block")
    assert caught.value.exit_code == 75
    assert gcs.buckets[BUCKET][LOCK_KEY].generation == generation, "lease left alone"


def test_expired_lease_is_taken_over_then_released(gcs: GcsFake) -> None:
    put_lease(gcs, "crashed-host:7:dead", expires_in=-1)
    with make_store(gcs, lease_seconds=60).lock("scc"):
        lease = json.loads(gcs.read(BUCKET, LOCK_KEY))
        assert lease["owner"] != "crashed-host:7:dead"
        assert parse_time(lease["expires_at"]) > utcnow() + timedelta(seconds=50)
        with pytest.raises(LockHeld), make_store(gcs).lock("scc"):
            pass
    assert LOCK_KEY not in gcs.keys(BUCKET)


def test_lost_lease_stops_the_run_and_theirs_survives(
        gcs: GcsFake, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="alertpull.state.bucket")
    store = make_store(gcs)
    with store.lock("scc"):
        store.assert_held("scc")  # still ours
        # Another run took the lease over (ours had expired while we stalled).
        generation = put_lease(gcs, "other-host:42:beef", expires_in=600)
        with pytest.raises(LeaseLost, match="lost the lock for source 'scc'") as caught:
            store.assert_held("scc")
        assert caught.value.exit_code == 1
    assert gcs.buckets[BUCKET][LOCK_KEY].generation == generation, "theirs survives"
    assert "could not release" not in caplog.text


def test_a_renewal_retried_after_its_reply_was_lost_keeps_the_lease(gcs: GcsFake) -> None:
    """The renewal lands, its reply is cut, the client retries and gets 412 (the first try
    changed the generation): the lease is still ours, and the run goes on."""
    store = make_store(gcs)
    with store.lock("scc"):
        gcs.inject(lambda r: r.path.startswith("/upload/") and b"scc.lock" in r.body,
                   Fault(cut_body=True))
        store.assert_held("scc")
        assert gcs.pending_faults == 0
        landed = gcs.buckets[BUCKET][LOCK_KEY].generation
        store.assert_held("scc")
        renewal = [r for r in gcs.requests if b"scc.lock" in r.body][-1]
        assert renewal.query["ifGenerationMatch"] == [str(landed)], "the landed one adopted"
    assert LOCK_KEY not in gcs.keys(BUCKET), "released: the adopted version was ours"


def test_without_google_cloud_storage_installed_the_fix_is_named(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['google.cloud.storage'] = None  # not installed\n"
        "from alertpull.errors import ConfigError\n"
        "from alertpull.sinks.gcs import GcsSink\n"
        "try:\n"
        f"    GcsSink({{'bucket': 'b', 'spool_dir': {str(tmp_path / 'spool')!r}}})\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert "pip install 'alertpull[gcs]'" in result.stdout, result.stderr


def test_a_part_over_8_mib_goes_up_as_a_resumable_upload_visible_only_when_complete(
        gcs: GcsFake, tmp_path: Path) -> None:
    sink = make_sink(gcs, tmp_path, compression="none")
    line = json.dumps({"id": "x", "pad": "p" * 1000})
    lines = [line] * 9000  # ~9 MiB: over the client's single-request limit
    part = stage(sink, lines)
    seen_mid_upload: list[list[str]] = []
    gcs.inject(lambda r: r.method == "PUT" and r.path.startswith("/upload/"),
               Fault(before=lambda: seen_mid_upload.append(gcs.keys(BUCKET))))

    sink.publish(part)

    assert seen_mid_upload == [[]], "nothing is visible while the upload is in progress"
    [start] = [r for r in gcs.requests
               if r.method == "POST" and r.query.get("uploadType") == ["resumable"]]
    assert start.query["ifGenerationMatch"] == ["0"]
    assert gcs.read(BUCKET, part.final).decode().splitlines() == lines
