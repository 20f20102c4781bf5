"""S3: the client, its errors, the object-store adapter, and the S3 sink.

The sink is the bucket sink (sinks/bucket.py) over S3. A managed upload becomes visible
only when it completes (multipart objects appear on CompleteMultipartUpload), so
publishing is atomic.

boto3 is imported inside the functions: `alertpull --help` and the local sinks must not
pay for it or need it installed. The client and error helpers here are shared with the
S3 state store, the log reader and the Suricata S3 source.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import IO, Any

from alertpull.errors import AlertpullError, ConfigError, SourceError
from alertpull.objectstore import ObjectStore
from alertpull.sinks.bucket import BucketSink

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


# Someone else wrote or deleted the object since we read it (412), or is writing it
# right now (409). NoSuchKey answers IfMatch on an object that was deleted meanwhile.
CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404")


class S3Objects(ObjectStore):
    """One S3 bucket through boto3: versions are ETags."""

    scheme = "s3"

    def __init__(self, settings: Mapping[str, Any], error: type[AlertpullError],
                 upload_args: Mapping[str, str] | None = None) -> None:
        super().__init__(settings["bucket"], error)
        self.client = s3_client(settings)
        self.upload_args = dict(upload_args or {})

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return s3_errors(self.bucket, self.error)

    def get(self, key: str) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        with self._errors():
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) == "NoSuchKey":
                    return None
                raise
            return response["Body"].read(), response["ETag"]

    def put(self, key: str, body: bytes, content_type: str, if_match: str) -> str | None:
        from botocore.exceptions import ClientError

        condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
        with self._errors():
            try:
                response = self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, ContentType=content_type,
                    **condition,
                )
            except ClientError as exc:
                if error_code(exc) in CONFLICTS:
                    return None
                raise
            return str(response["ETag"])

    def delete(self, key: str, if_match: str | None = None) -> bool:
        from botocore.exceptions import ClientError

        condition = {"IfMatch": if_match} if if_match else {}
        with self._errors():
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key, **condition)
            except ClientError as exc:
                if error_code(exc) in CONFLICTS:
                    return False
                raise
        return True

    def upload_file(self, path: str, key: str) -> None:
        with self._errors():
            self.client.upload_file(path, self.bucket, key, ExtraArgs=self.upload_args)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._errors():
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) in ("404", "NoSuchKey"):
                    return False
                raise
        return True

    def listing(self, prefix: str) -> tuple[list[str], list[str]]:
        keys: list[str] = []
        folders: list[str] = []
        with self._errors():
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                keys.extend(item["Key"] for item in page.get("Contents", []))
                folders.extend(item["Prefix"] for item in page.get("CommonPrefixes", []))
        return keys, folders

    def open(self, key: str) -> IO[bytes]:
        with self._errors():
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]  # type: ignore[no-any-return]


class S3Sink(BucketSink):
    def __init__(self, settings: Mapping[str, Any]) -> None:
        # config.py has already checked the choices of compression and sse.
        sse = settings.get("sse")
        kms_key = settings.get("sse_kms_key_id")
        if kms_key and sse != "aws:kms":
            raise ConfigError("sink.sse_kms_key_id needs sink.sse: aws:kms")
        # No ContentEncoding: the object stays a .gz file, which Athena and Spark expect
        # (with Content-Encoding: gzip some HTTP clients would transparently inflate it).
        upload_args: dict[str, str] = {"ContentType": "application/x-ndjson"}
        if sse:
            upload_args["ServerSideEncryption"] = sse
        if kms_key:
            upload_args["SSEKMSKeyId"] = kms_key
        super().__init__(settings, S3Objects(settings, SourceError, upload_args))
