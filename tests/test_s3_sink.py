"""S3 sink against moto: invisible staging, one atomic object per part, SSE, errors."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import boto3
import botocore.endpoint
import pytest
from moto import mock_aws

from alertpull.errors import ConfigError, SourceError
from alertpull.sinks.base import Part
from alertpull.sinks.s3 import S3Sink
from alertpull.timeutil import parse_time, utcnow
from tests.aws_env import AwsWorld
from tests.conftest import ALERTPULL
from tests.fakes.http_fake import FakeServer, Fault, Request, Response
from tests.s3_fixtures import FAKE_SECRET, fake_aws_env, moto_server, unique_bucket
from tests.world import hours_ago

BUCKET = "alertpull-alerts"
STARTED = datetime(2026, 1, 31, 12, 34, 56, tzinfo=UTC)
LINES = ['{"id": "a", "n": 1}', '{"id": "b", "n": 2}', '{"id": "c", "text": "caf\\u00e9"}']
KEY = "alerts/source=aws-prod/dt=2026-01-31/123456-run1-us-east-1.jsonl.gz"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """In-process moto with one bucket; yields a plain client to inspect it."""
    fake_aws_env(monkeypatch)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def make_sink(tmp_path: Path, **settings: Any) -> S3Sink:
    base = {"bucket": BUCKET, "prefix": "alerts", "spool_dir": str(tmp_path / "spool")}
    return S3Sink({**base, **settings})


def stage(sink: S3Sink, lines: list[str] = LINES) -> Part:
    writer = sink.open_part("aws-prod", STARTED, "run1", "us-east-1")
    for line in lines:
        writer.write(line.encode())
    return writer.close()


def keys(client: Any) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_part_is_staged_locally_then_published_as_one_gzip_object(s3: Any, tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    part = stage(sink)

    assert part.final == KEY
    assert part.records == len(LINES)
    assert os.path.dirname(part.staged) == str(tmp_path / "spool")
    assert keys(s3) == [], "a staged part must not be visible in the bucket"
    assert not sink.is_published(part)

    sink.publish(part)

    assert keys(s3) == [KEY]
    obj = s3.get_object(Bucket=BUCKET, Key=KEY)
    assert obj["ContentType"] == "application/x-ndjson"
    assert "ContentEncoding" not in obj, "a .gz object must stay a gzip file for Athena"
    assert gzip.decompress(obj["Body"].read()).decode().splitlines() == LINES
    assert sink.is_published(part)
    assert not os.path.exists(part.staged), "publish removes the staged file"


def test_uncompressed_part_is_plain_jsonl(s3: Any, tmp_path: Path) -> None:
    sink = make_sink(tmp_path, compression="none", prefix="")
    part = stage(sink)
    sink.publish(part)

    key = "source=aws-prod/dt=2026-01-31/123456-run1-us-east-1.jsonl"
    assert keys(s3) == [key]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines() == LINES


def test_publish_is_idempotent(s3: Any, tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    part = stage(sink)
    sink.publish(part)
    etag = s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"]

    sink.publish(part)  # crash recovery after the staged file was already removed

    # A crash after the upload but before the staged file was removed: publishing again
    # must leave the published object alone and only clean up.
    Path(part.staged).write_bytes(b"different bytes")
    sink.publish(part)

    assert keys(s3) == [KEY]
    assert s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"] == etag
    assert not os.path.exists(part.staged)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"sse": "aws:kms", "sse_kms_key_id": "alias/alertpull"},
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/alertpull"},
        ),
        ({"sse": "AES256"}, {"ServerSideEncryption": "AES256"}),
    ],
)
def test_server_side_encryption_is_requested(
    s3: Any, tmp_path: Path, settings: dict[str, str], expected: dict[str, str]
) -> None:
    sink = make_sink(tmp_path, **settings)
    sink.publish(stage(sink))

    head = s3.head_object(Bucket=BUCKET, Key=KEY)
    assert {name: head.get(name) for name in expected} == expected


@pytest.mark.parametrize("sse", [None, "AES256"])
def test_kms_key_without_kms_encryption_is_a_config_error(
    s3: Any, tmp_path: Path, sse: str | None
) -> None:
    with pytest.raises(ConfigError, match=r"needs sink\.sse: aws:kms"):
        make_sink(tmp_path, sse=sse, sse_kms_key_id="alias/alertpull")


def test_spool_is_private(s3: Any, tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    assert stat.S_IMODE(os.stat(sink.spool).st_mode) == 0o700

    shared = tmp_path / "shared-spool"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ConfigError, match="spool_dir"):
        make_sink(tmp_path, spool_dir=str(shared))


def test_discard_orphans_removes_only_this_sources_staged_parts(s3: Any, tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    orphan = stage(sink)  # a run died before recording it
    others = [
        sink.open_part("aws-prod-eu", STARTED, "run1", "p").close(),  # a prefix-alike source
        make_sink(tmp_path, prefix="other").open_part("aws-prod", STARTED, "run1", "p").close(),
        make_sink(tmp_path, bucket="another-bucket")
        .open_part("aws-prod", STARTED, "r", "p")
        .close(),
    ]

    sink.discard_orphans("aws-prod")

    assert not os.path.exists(orphan.staged)
    assert all(os.path.exists(part.staged) for part in others)
    assert keys(s3) == []


def test_location(s3: Any, tmp_path: Path) -> None:
    assert make_sink(tmp_path).location() == f"s3://{BUCKET}/alerts"
    assert make_sink(tmp_path, prefix="").location() == f"s3://{BUCKET}"


def test_missing_bucket_is_one_line_source_error(s3: Any, tmp_path: Path) -> None:
    sink = make_sink(tmp_path, bucket="no-such-bucket")
    with pytest.raises(SourceError) as caught:
        sink.publish(stage(sink))
    message = str(caught.value)
    assert "'no-such-bucket' does not exist" in message
    assert "\n" not in message and FAKE_SECRET not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_unreachable_endpoint_is_one_line_source_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_aws_env(monkeypatch)
    # Keep botocore's five attempts but skip its backoff sleeps, to stay fast.
    monkeypatch.setattr(botocore.endpoint.time, "sleep", lambda seconds: None)
    sink = make_sink(tmp_path, endpoint_url="http://127.0.0.1:9")
    with pytest.raises(SourceError) as caught:
        sink.is_published(stage(sink))
    message = str(caught.value)
    assert f"cannot reach S3 bucket {BUCKET!r}" in message
    assert "endpoint_url" in message
    assert "\n" not in message and FAKE_SECRET not in message


def test_real_http_through_aws_endpoint_url_s3(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The real HTTP path; the endpoint comes only from the standard env var."""
    fake_aws_env(monkeypatch)
    bucket = unique_bucket()
    with moto_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=bucket)
        sink = make_sink(tmp_path, bucket=bucket)
        assert sink.objects.client.meta.endpoint_url == endpoint

        part = stage(sink)
        assert not sink.is_published(part)
        sink.publish(part)

        body = client.get_object(Bucket=bucket, Key=KEY)["Body"].read()
        assert gzip.decompress(body).decode().splitlines() == LINES
        assert sink.is_published(part)


def test_importing_the_s3_modules_does_not_import_boto3() -> None:
    code = (
        "import sys, alertpull.sinks.s3, alertpull.state.s3; "
        "sys.exit('boto3' in sys.modules or 'botocore' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_cli_fetch_to_s3_is_effectively_once_across_a_crash(
    aws: AwsWorld, monkeypatch: pytest.MonkeyPatch, validate_records: Any
) -> None:
    """As cron runs it (YAML and env only): killed after publishing, before committing."""
    fake_aws_env(monkeypatch)
    aws.add(25, first=0, base_time=hours_ago(2))
    bucket = unique_bucket()
    spool = aws.root / "spool"
    with moto_server() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=bucket)
        aws.write_config(
            state={"backend": "s3", "bucket": bucket, "lease_seconds": 0.5},
            sink={"type": "s3", "bucket": bucket, "prefix": "alerts", "spool_dir": str(spool)},
        )

        crashed = aws.fetch(ALERTPULL_FAILPOINT="after_publish", AWS_ENDPOINT_URL_S3=endpoint)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        # The killed run's lease outlives it; the next run may take over once it expires.
        lock = client.get_object(Bucket=bucket, Key="alertpull/state/aws.lock")
        expires = parse_time(json.loads(lock["Body"].read())["expires_at"])
        time.sleep(max(0.0, (expires - utcnow()).total_seconds()) + 0.05)

        rerun = aws.fetch(AWS_ENDPOINT_URL_S3=endpoint)
        assert rerun.returncode == 0, rerun.stderr
        objects = client.list_objects_v2(Bucket=bucket)["Contents"]
        parts = [o["Key"] for o in objects if o["Key"].startswith("alerts/")]
        records = [
            json.loads(line)
            for key in parts
            for line in gzip.decompress(
                client.get_object(Bucket=bucket, Key=key)["Body"].read()
            ).splitlines()
        ]
        assert sorted(r["native_id"] for r in records) == sorted(f["arn"] for f in aws.findings())
        validate_records(records)
        assert "alertpull/state/aws.lock" not in {o["Key"] for o in objects}
        assert list(spool.iterdir()) == []


def test_cli_reports_a_missing_bucket_in_one_line(aws: AwsWorld) -> None:
    aws.add(3, first=0, base_time=hours_ago(2))
    spool = str(aws.root / "spool")
    aws.write_config(sink={"type": "s3", "bucket": "no-such-bucket", "spool_dir": spool})
    with moto_server() as endpoint:
        result = aws.fetch(AWS_ENDPOINT_URL_S3=endpoint)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "S3 bucket 'no-such-bucket' does not exist" in line
    assert aws.env["AWS_SECRET_ACCESS_KEY"] not in result.stderr


def test_two_hosts_sharing_s3_state_pull_a_source_once(
    aws: AwsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two concurrent runs of one config (two hosts, or two CronJob pods): exactly one
    pulls, the other exits 75 and writes nothing."""
    fake_aws_env(monkeypatch)
    aws.add(40, first=0, base_time=hours_ago(2))
    aws.fake.latency = 0.2  # keep the winner busy for a second while the other one starts
    bucket = unique_bucket()
    with moto_server() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=bucket)
        hosts = []
        for host in ("host-a", "host-b"):
            (aws.root / host).mkdir()
            hosts.append(aws.root / host)
        aws.write_config(state={"backend": "s3", "bucket": bucket},
                         sink={"type": "s3", "bucket": bucket, "prefix": "alerts"})
        env = {**aws.env, "AWS_ENDPOINT_URL_S3": endpoint}
        runs = [subprocess.Popen([ALERTPULL, "-c", str(aws.config_path), "fetch", "--all"],
                                 env=env, cwd=host, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
                for host in hosts]
        results = [(run.wait(timeout=60), run.communicate()[1]) for run in runs]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 75], results
        loser = next(stderr for code, stderr in results if code == 75)
        assert "locked" in loser
        parts = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]
                 if o["Key"].startswith("alerts/")]
        records = [json.loads(line) for key in parts for line in gzip.decompress(
            client.get_object(Bucket=bucket, Key=key)["Body"].read()).splitlines()]
        assert len(records) == 40 == len({r["native_id"] for r in records})


# Headers that belong to one hop: the proxy's own server and client set their own.
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "expect", "content-length",
               "date", "server"}
S3_INTERNAL_ERROR = Response(
    500,
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError</Code>"
    b"<Message>We encountered an internal error. Please try again.</Message></Error>",
    {"Content-Type": "application/xml"},
)


class S3Proxy(FakeServer):
    """Forwards every request to a working S3 endpoint (moto's server) as it came, so a
    test can script wire faults between alertpull and S3 with `inject`.

    The query is rebuilt from the parsed one, which drops blank values (`?uploads`): fine
    for single PUTs, not for multipart uploads.
    """

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = urlsplit(upstream).netloc

    def handle(self, request: Request) -> Response:
        query = urlencode(request.query, doseq=True)
        headers = {k: v for k, v in request.headers.items() if k not in HOP_HEADERS}
        connection = http.client.HTTPConnection(self.upstream, timeout=10)
        try:
            connection.request(request.method, f"{request.path}?{query}" if query else
                               request.path, body=request.body or None, headers=headers)
            reply = connection.getresponse()
            body = reply.read()
        finally:
            connection.close()
        return Response(reply.status, body, {k: v for k, v in reply.getheaders()
                                             if k.lower() not in HOP_HEADERS})


def object_keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    objects = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return [o["Key"] for o in objects]


def published_records(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every record in the gzip parts under `prefix`."""
    return [json.loads(line) for key in object_keys(client, bucket, prefix)
            for line in gzip.decompress(
                client.get_object(Bucket=bucket, Key=key)["Body"].read()).splitlines()]


def committed_cursors(client: Any, bucket: str, source: str) -> dict[str, Any]:
    """The source's committed scopes (cursors) in its S3 state document."""
    body = client.get_object(Bucket=bucket, Key=f"alertpull/state/{source}.json")["Body"]
    return dict(json.loads(body.read())["scopes"])


@pytest.mark.parametrize(
    "fault",
    [Fault(response=S3_INTERNAL_ERROR), Fault(response=S3_INTERNAL_ERROR, cut_body=True)],
    ids=["500", "reply-cut-mid-body"],
)
def test_cli_s3_put_failing_mid_publish_fails_only_that_source_and_rerun_is_exactly_once(
    aws: AwsWorld, monkeypatch: pytest.MonkeyPatch, validate_records: Any, fault: Fault
) -> None:
    """S3 keeps failing the PUT of one source's part, past botocore's own retries (as many
    as AWS_MAX_ATTEMPTS allows): that source fails in one line with its cursor and its
    bucket prefix untouched, the other source is delivered, and once S3 recovers the rerun
    writes every version once."""
    fake_aws_env(monkeypatch)
    aws.add(10, first=0, base_time=hours_ago(2))
    bucket = unique_bucket()
    spool = aws.root / "spool"
    broken, healthy = "aws", "aws-other"  # two sources pulling the same detector
    broken_prefix = f"alerts/source={broken}/"
    outage = threading.Event()

    def put_of_broken_part(request: Request) -> bool:
        return (outage.is_set() and request.method == "PUT"
                and unquote(request.path).startswith(f"/{bucket}/{broken_prefix}"))

    with moto_server() as endpoint, S3Proxy(endpoint) as proxy:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=bucket)
        detector = {"type": "guardduty", "regions": ["us-east-1"]}
        aws.write_config(
            sources={broken: detector, healthy: detector},
            state={"backend": "s3", "bucket": bucket},
            sink={"type": "s3", "bucket": bucket, "prefix": "alerts", "spool_dir": str(spool)},
        )
        via_proxy = {"AWS_ENDPOINT_URL_S3": proxy.url}
        assert aws.fetch(**via_proxy).returncode == 0
        cursors = {name: committed_cursors(client, bucket, name) for name in (broken, healthy)}
        parts = object_keys(client, bucket, broken_prefix)

        aws.add(15, first=100, base_time=hours_ago(0.5))
        proxy.inject(put_of_broken_part, fault, times=sys.maxsize)
        outage.set()
        before = len(proxy.requests)
        failed = aws.fetch(**via_proxy, AWS_MAX_ATTEMPTS="3")

        assert failed.returncode == 1, failed.stderr
        assert "Traceback" not in failed.stderr
        assert aws.env["AWS_SECRET_ACCESS_KEY"] not in failed.stderr
        [error] = [line for line in failed.stderr.splitlines() if " ERROR " in line]
        assert f"[{broken}] failed: " in error and f"S3 bucket {bucket!r}" in error
        tries = sum(map(put_of_broken_part, proxy.requests[before:]))
        assert tries == 3, "AWS_MAX_ATTEMPTS bounds botocore's tries of the PUT"
        assert committed_cursors(client, bucket, broken) == cursors[broken]
        assert object_keys(client, bucket, broken_prefix) == parts
        assert len(list(spool.iterdir())) == 1, "the unpublished part waits in the spool"
        assert committed_cursors(client, bucket, healthy) != cursors[healthy]
        assert not [key for key in object_keys(client, bucket) if key.endswith(".lock")]

        outage.clear()
        rerun = aws.fetch(**via_proxy)
        assert rerun.returncode == 0, rerun.stderr
        arns = sorted(f["arn"] for f in aws.findings())
        for source in (broken, healthy):
            records = published_records(client, bucket, f"alerts/source={source}/")
            assert sorted(r["native_id"] for r in records) == arns, source
            validate_records(records)
        assert list(spool.iterdir()) == []
