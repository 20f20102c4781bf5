"""S3 sink: parts are staged in a local spool, then published as one object each.

Keys are the local sink's Hive-style paths under a prefix, so Athena and Spark read the
bucket as they are. A managed upload becomes visible only when it completes (multipart
objects appear on CompleteMultipartUpload), so publishing is atomic.

boto3 is imported inside the functions: `alertpull --help` and the local sinks must not
pay for it or need it installed. The client and error helpers here are shared with the
S3 state store.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from alertpull.errors import AlertpullError, ConfigError, SourceError
from alertpull.fileutil import remove_quietly
from alertpull.sinks.base import Part, PartWriter, Sink, part_name

S3_ATTEMPTS = 6  # per S3 call unless AWS_MAX_ATTEMPTS / max_attempts says otherwise


def s3_client(settings: Mapping[str, Any]) -> Any:
    """An S3 client with timeouts and bounded retries (a stalled endpoint must not hang cron).

    endpoint_url None lets botocore apply AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL itself. The
    retry mode and attempts are botocore's standard ones with S3_ATTEMPTS, unless the AWS
    config or environment sets them (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS): a Config value would
    override those, so it is given only for what they leave unset.
    """
    import boto3
    import botocore.session
    from botocore.config import Config

    # A session of our own: boto3's default session is not safe to share across threads.
    core = botocore.session.get_session()
    retries: dict[str, Any] = {}
    if core.get_config_variable("retry_mode") is None:
        retries["mode"] = "standard"
    if core.get_config_variable("max_attempts") is None:
        retries["total_max_attempts"] = S3_ATTEMPTS
    config = Config(connect_timeout=10, read_timeout=60, retries=retries or None)
    return boto3.session.Session(botocore_session=core).client(
        "s3",
        endpoint_url=settings.get("endpoint_url"),
        region_name=settings.get("region"),
        config=config,
    )


def s3_key(*parts: str) -> str:
    """Join key parts with '/', ignoring an empty prefix and stray slashes."""
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def error_code(exc: Exception) -> str:
    """The S3 error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def describe_s3_error(exc: Exception, bucket: str) -> str:
    """One line naming the bucket and the likely fix: no traceback, never credentials."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    where = f"S3 bucket {bucket!r}"
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return (
            f"no usable AWS credentials for {where}; set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with an instance/task role"
        )
    if isinstance(exc, (ConnectionError, HTTPClientError)):  # incl. timeouts, TLS, proxy
        return (
            f"cannot reach {where} ({exc}); check endpoint_url / AWS_ENDPOINT_URL_S3, "
            "the network and HTTPS_PROXY"
        )
    if not isinstance(exc, ClientError):
        return f"request to {where} failed: {exc}"
    code = error_code(exc)
    if code == "NoSuchBucket":
        return f"{where} does not exist; check the bucket name (and region / endpoint_url)"
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return (
            f"access denied to {where}; allow s3:GetObject, s3:PutObject, s3:DeleteObject "
            "and s3:ListBucket (and kms:GenerateDataKey/kms:Decrypt for SSE-KMS) for the "
            "credentials alertpull runs with"
        )
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
        return f"S3 rejected the AWS credentials for {where} ({code}); refresh or fix them"
    message = exc.response.get("Error", {}).get("Message", "")
    return f"request to {where} failed: {code}: {message}".rstrip(": ")


@contextlib.contextmanager
def s3_errors(bucket: str, error: type[AlertpullError]) -> Iterator[None]:
    """Turn boto errors escaping the block into `error` with a one-line message."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except S3UploadFailedError as exc:
        # boto3 wraps the ClientError of a managed upload; the original is its context.
        raise error(describe_s3_error(exc.__context__ or exc, bucket)) from None
    except (BotoCoreError, ClientError) as exc:
        raise error(describe_s3_error(exc, bucket)) from None


def private_spool(path: str) -> str:
    """Create the spool owner-only and refuse one we do not own or others can write to.

    Staged parts hold alert data; the default spool sits in the shared temp directory,
    where another local user could pre-create it to read our files or plant symlinks.
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise ConfigError(
            f"sink spool_dir {path} must be a directory owned by this user and writable "
            "only by it; fix its owner/mode or set sink.spool_dir to another directory"
        )
    return path


class S3Sink(Sink):
    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.bucket: str = settings["bucket"]
        self.prefix: str = settings.get("prefix", "")
        # config.py has already checked the choices of compression and sse.
        self.compress = settings.get("compression", "gzip") == "gzip"
        sse = settings.get("sse")
        kms_key = settings.get("sse_kms_key_id")
        if kms_key and sse != "aws:kms":
            raise ConfigError("sink.sse_kms_key_id needs sink.sse: aws:kms")
        # No ContentEncoding: the object stays a .gz file, which Athena and Spark expect
        # (with Content-Encoding: gzip some HTTP clients would transparently inflate it).
        self.upload_args: dict[str, str] = {"ContentType": "application/x-ndjson"}
        if sse:
            self.upload_args["ServerSideEncryption"] = sse
        if kms_key:
            self.upload_args["SSEKMSKeyId"] = kms_key
        self.spool = private_spool(
            settings.get("spool_dir") or os.path.join(tempfile.gettempdir(), "alertpull-spool")
        )
        self.client = s3_client(settings)

    def open_part(self, source: str, started: datetime, run_id: str, part: str) -> PartWriter:
        key = s3_key(
            self.prefix, part_name(source, started, run_id, part, ".gz" if self.compress else "")
        )
        return PartWriter(self._staged(key), key, self.compress)

    def _staged(self, key: str) -> str:
        """The spool file for an object: bucket and key percent-encoded into one name, so
        sinks sharing a spool never collide and there is no directory tree to prune."""
        return os.path.join(self.spool, quote(f"{self.bucket}/{key}", safe="="))

    def publish(self, part: Part) -> None:
        if not self.is_published(part):
            with s3_errors(self.bucket, SourceError):
                self.client.upload_file(
                    part.staged, self.bucket, part.final, ExtraArgs=self.upload_args
                )
        remove_quietly(part.staged)

    def is_published(self, part: Part) -> bool:
        from botocore.exceptions import ClientError

        with s3_errors(self.bucket, SourceError):
            try:
                self.client.head_object(Bucket=self.bucket, Key=part.final)
            except ClientError as exc:
                if error_code(exc) in ("404", "NoSuchKey"):
                    return False
                raise
        return True

    def discard_orphans(self, source: str) -> None:
        stem = os.path.basename(self._staged(s3_key(self.prefix, f"source={source}") + "/"))
        for name in os.listdir(self.spool):
            if name.startswith(stem):
                remove_quietly(os.path.join(self.spool, name))

    def location(self) -> str:
        return f"s3://{s3_key(self.bucket, self.prefix)}"
