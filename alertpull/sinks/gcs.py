"""Google Cloud Storage: the client, its errors, the object-store adapter, and the GCS sink.

The sink is the bucket sink (sinks/bucket.py) over GCS: a single-request upload (or a
resumable one, for parts over 8 MiB) creates the object only once it completes, so
publishing is atomic.

google-cloud-storage rather than google-auth's session against the JSON API: it speaks
the preconditions (`if_generation_match`, 0 = must not exist), resolves Application
Default Credentials (Workload Identity, a WIF config, GOOGLE_APPLICATION_CREDENTIALS)
and retries transient failures itself; every write here is conditional, so a retry never
overwrites another run's object. It is imported inside the functions: the
other sinks must not pay for it or need it installed (`pip install 'alertpull[gcs]'`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from typing import IO, Any

from alertpull.errors import AlertpullError, ConfigError, SourceError
from alertpull.objectstore import ObjectStore
from alertpull.sinks.bucket import BucketSink

SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
_SPOOLED = 16 << 20  # bytes of a downloaded part kept in memory before spilling to disk


def gcs_client(settings: Mapping[str, Any], error: type[AlertpullError]) -> Any:
    """A storage client: ADC unless `credentials_file` names a service-account key.

    `endpoint` (tests, Private Service Connect) goes to client_options; the client's
    own STORAGE_EMULATOR_HOST is honoured too (and then sends no credentials).
    """
    try:
        import google.auth.exceptions
        from google.cloud import storage
    except ImportError:
        raise ConfigError(
            "a gcs sink or state needs google-cloud-storage: pip install 'alertpull[gcs]'"
        ) from None

    credentials = None
    project = settings.get("project")
    path = settings.get("credentials_file")
    if path:
        credentials = _service_account_key(path, settings["bucket"], error)
        project = project or credentials.project_id
    endpoint = settings.get("endpoint")
    try:
        # Without credentials the client resolves ADC: Workload Identity, a WIF config or
        # a key named by GOOGLE_APPLICATION_CREDENTIALS, gcloud's login.
        return storage.Client(
            project=project,
            credentials=credentials,
            client_options={"api_endpoint": endpoint} if endpoint else None,
        )
    except google.auth.exceptions.GoogleAuthError as exc:
        raise error(describe_gcs_error(exc, settings["bucket"])) from None


def _service_account_key(path: str, bucket: str, error: type[AlertpullError]) -> Any:
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_file(path, scopes=[SCOPE])
    except (OSError, ValueError) as exc:  # unreadable, not JSON, or not a service-account key
        reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc).splitlines()[0]
        raise error(f"credentials_file {path} for GCS bucket {bucket!r} is not a usable "
                    f"service-account key: {reason}; fix it, or drop it to use Application "
                    "Default Credentials") from None


def describe_gcs_error(exc: Exception, bucket: str) -> str:
    """One line naming the bucket and the likely fix: no traceback, never credentials."""
    import google.auth.exceptions
    import requests
    from google.api_core import exceptions as api

    where = f"GCS bucket {bucket!r}"
    if isinstance(exc, google.auth.exceptions.DefaultCredentialsError):
        return (
            f"no usable Google credentials for {where}; set credentials_file or "
            "GOOGLE_APPLICATION_CREDENTIALS, or run with Workload Identity / "
            "'gcloud auth application-default login'"
        )
    if isinstance(exc, google.auth.exceptions.GoogleAuthError):
        reason = " ".join(str(exc).split())  # one line
        return f"Google rejected the credentials for {where} ({reason}); refresh or fix them"
    if isinstance(exc, requests.exceptions.RequestException):  # incl. timeouts, TLS, proxy
        return (
            f"cannot reach {where} ({type(exc).__name__}); check sink/state endpoint, "
            "the network and HTTPS_PROXY"
        )
    if isinstance(exc, api.NotFound):
        return f"{where} does not exist; check the bucket name (and endpoint)"
    if isinstance(exc, (api.Forbidden, api.Unauthorized)):
        return (
            f"access denied to {where}; grant the account alertpull runs as "
            "roles/storage.objectCreator and roles/storage.objectViewer for a sink, "
            "roles/storage.objectUser for state (see docs/gcs.md)"
        )
    if isinstance(exc, api.GoogleAPICallError):
        return f"request to {where} failed: {exc.code}: {exc.message}"
    return f"request to {where} failed: {exc}"


@contextlib.contextmanager
def gcs_errors(bucket: str, error: type[AlertpullError]) -> Iterator[None]:
    """Turn client errors escaping the block into `error` with a one-line message."""
    import google.auth.exceptions
    import requests
    from google.api_core import exceptions as api

    try:
        yield
    except (api.GoogleAPIError, google.auth.exceptions.GoogleAuthError,
            requests.exceptions.RequestException) as exc:
        raise error(describe_gcs_error(exc, bucket)) from None


class GcsObjects(ObjectStore):
    """One GCS bucket through google-cloud-storage: versions are generations."""

    scheme = "gs"

    def __init__(self, settings: Mapping[str, Any], error: type[AlertpullError],
                 content_type: str = "application/x-ndjson") -> None:
        super().__init__(settings["bucket"], error)
        self.client = gcs_client(settings, error)
        # `project` is billed for a requester-pays bucket (sent as userProject).
        self.handle = self.client.bucket(self.bucket, user_project=settings.get("project"))
        self.content_type = content_type

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return gcs_errors(self.bucket, self.error)

    def get(self, key: str) -> tuple[bytes, str] | None:
        from google.api_core.exceptions import NotFound

        blob = self.handle.blob(key)
        with self._errors():
            try:
                body = blob.download_as_bytes()
            except NotFound:
                return None
        return body, str(blob.generation)  # from the download's x-goog-generation

    def put(self, key: str, body: bytes, content_type: str, if_match: str) -> str | None:
        from google.api_core.exceptions import PreconditionFailed

        blob = self.handle.blob(key)
        with self._errors():
            try:
                # 412 also when the object to update was deleted meanwhile.
                blob.upload_from_string(body, content_type=content_type,
                                        if_generation_match=int(if_match or 0))
            except PreconditionFailed:
                return None
        return str(blob.generation)

    def delete(self, key: str, if_match: str | None = None) -> bool:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        with self._errors():
            try:
                self.handle.blob(key).delete(
                    if_generation_match=int(if_match) if if_match else None
                )
            except (NotFound, PreconditionFailed):
                return False
        return True

    def upload_file(self, path: str, key: str) -> None:
        from google.api_core.exceptions import PreconditionFailed

        # Create-only: a retried upload whose first try landed, or a part published
        # already, answers 412 and is left as it is.
        with self._errors(), contextlib.suppress(PreconditionFailed):
            self.handle.blob(key).upload_from_filename(
                path, content_type=self.content_type, if_generation_match=0
            )

    def exists(self, key: str) -> bool:
        with self._errors():
            return bool(self.handle.blob(key).exists())

    def listing(self, prefix: str) -> tuple[list[str], list[str]]:
        with self._errors():
            pages = self.client.list_blobs(self.handle, prefix=prefix, delimiter="/")
            keys = [blob.name for blob in pages]  # consuming the pages fills the prefixes
            return keys, sorted(pages.prefixes)

    def open(self, key: str) -> IO[bytes]:
        spooled = tempfile.SpooledTemporaryFile(max_size=_SPOOLED)  # noqa: SIM115 (the caller closes it)
        with self._errors():
            self.handle.blob(key).download_to_file(spooled)
        spooled.seek(0)
        return spooled  # type: ignore[return-value]


class GcsSink(BucketSink):
    def __init__(self, settings: Mapping[str, Any]) -> None:
        try:
            objects = GcsObjects(settings, SourceError)
        except SourceError as exc:  # credentials are settled before anything is pulled
            raise ConfigError(f"sink: {exc}") from None
        super().__init__(settings, objects)
