"""A Google Cloud Storage JSON API fake with generation preconditions.

gcp-storage-emulator (PyPI) ignores ifGenerationMatch, which the GCS state and sink rest
on, so this fake serves the part of the JSON API that google-cloud-storage uses against
them: objects insert (uploadType=media, multipart and resumable, the last for parts over 8 MiB),
get (metadata and alt=media),
list (prefix, delimiter, pageToken), delete, each honouring ifGenerationMatch (0 = must
not exist) with 412 conditionNotMet as GCS answers. Tests point the real client at it
(client_options api_endpoint / STORAGE_EMULATOR_HOST, anonymous credentials). Bucket GET
is served too: the client reads its bucket's location in the background. `require_key()`
makes it demand a service-account key's bearer token instead.

Run `python -m tests.fakes.gcs BUCKET...` to serve it by hand.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import itertools
import json
import sys
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import google_crc32c

from tests.fakes.google_sa import ServiceAccountKey, TokenEndpoint
from tests.fakes.http_fake import FakeServer, Request, Response


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    generation: int
    content_type: str


def _error(status: int, message: str, reason: str) -> Response:
    return Response.json({"error": {"code": status, "message": message,
                                    "errors": [{"message": message, "reason": reason}]}},
                         status)


class GcsFake(FakeServer):
    def __init__(self, *buckets: str) -> None:
        super().__init__()
        self.buckets: dict[str, dict[str, StoredObject]] = {name: {} for name in buckets}
        self.page_size = 1000  # a test lowers it to make the client follow pageTokens
        self._generations = itertools.count(1_700_000_000_000_000)
        self._data_lock = threading.Lock()  # a conditional write is checked and done at once
        self.token_endpoint: TokenEndpoint | None = None  # None: anonymous, as an emulator
        # Resumable uploads in progress: upload_id -> (bucket, name, content type,
        # ifGenerationMatch, bytes so far). The object exists only once the last byte is in.
        self._sessions: dict[str, tuple[str, str, str, str | None, bytearray]] = {}

    # -- what tests use ------------------------------------------------------------------

    def require_key(self, key: ServiceAccountKey) -> str:
        """From now on every call needs a bearer token issued (at POST /token) for `key`;
        the token_uri to write into the key file."""
        self.token_endpoint = TokenEndpoint(key)
        return f"{self.url}/token"

    def create_bucket(self, name: str) -> None:
        self.buckets.setdefault(name, {})

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        with self._data_lock:
            return sorted(k for k in self.buckets[bucket] if k.startswith(prefix))

    def read(self, bucket: str, key: str) -> bytes:
        with self._data_lock:
            return self.buckets[bucket][key].body

    def put(self, bucket: str, key: str, body: bytes) -> int:
        """Write an object as another client would, unconditionally; its generation."""
        with self._data_lock:
            stored = StoredObject(body, next(self._generations), "application/octet-stream")
            self.buckets[bucket][key] = stored
            return stored.generation

    # -- the JSON API --------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if self.token_endpoint is not None:
            if request.path == "/token":
                return self.token_endpoint.handle(request)
            if self.token_endpoint.grant_for(request) is None:
                return _error(401, "Anonymous caller does not have storage.objects.get access",
                              "required")
        parts = request.path.split("/")
        # /upload/storage/v1/b/B/o, /download/storage/v1/b/B/o/NAME, /storage/v1/b/B/o[/NAME]
        if parts[1] in ("upload", "download"):
            parts = parts[1:]
        if parts[1:4] != ["storage", "v1", "b"] or len(parts) < 5:
            return _error(404, f"no such API path {request.path}", "notFound")
        bucket = unquote(parts[4])
        if bucket not in self.buckets:
            return _error(404, "The specified bucket does not exist.", "notFound")
        if len(parts) == 5 and request.method == "GET":
            # The client fetches its bucket's location in the background (for metrics).
            return Response.json({"kind": "storage#bucket", "name": bucket,
                                  "projectNumber": "0", "location": "US"})
        if len(parts) < 6 or parts[5] != "o":
            return _error(404, f"no such API path {request.path}", "notFound")
        name = unquote("/".join(parts[6:])) if len(parts) > 6 else None
        if request.path.startswith("/upload/") and request.method == "POST":
            return self._insert(bucket, request)
        if request.path.startswith("/upload/") and request.method == "PUT":
            return self._resumable_chunk(request)
        if name is None and request.method == "GET":
            return self._list(bucket, request)
        if name is not None and request.method == "GET":
            return self._get(bucket, name, request)
        if name is not None and request.method == "DELETE":
            return self._delete(bucket, name, request)
        return _error(405, f"{request.method} {request.path} is not served", "notSupported")

    @staticmethod
    def _arg(request: Request, name: str) -> str | None:
        values = request.query.get(name)
        return values[-1] if values else None

    def _precondition(self, request: Request, current: StoredObject | None) -> Response | None:
        wanted = self._arg(request, "ifGenerationMatch")
        if wanted is None:
            return None
        have = current.generation if current is not None else 0
        if int(wanted) != have:
            return _error(412, "At least one of the pre-conditions you specified did not hold.",
                          "conditionNotMet")
        return None

    def _resource(self, bucket: str, name: str, stored: StoredObject) -> dict[str, Any]:
        return {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/{stored.generation}",
            "bucket": bucket,
            "name": name,
            "generation": str(stored.generation),
            "metageneration": "1",
            "contentType": stored.content_type,
            "size": str(len(stored.body)),
            "md5Hash": base64.b64encode(hashlib.md5(stored.body).digest()).decode(),
            # What the client checks a resumable upload against (google-crc32c, its dependency).
            "crc32c": base64.b64encode(
                google_crc32c.value(stored.body).to_bytes(4, "big")).decode(),
        }

    def _insert(self, bucket: str, request: Request) -> Response:
        kind = self._arg(request, "uploadType")
        if kind == "media":
            name = self._arg(request, "name") or ""
            content_type = request.headers.get("content-type", "application/octet-stream")
            body = request.body
        elif kind == "multipart":
            metadata, content_type, body = self._multipart(request)
            name = metadata.get("name") or self._arg(request, "name") or ""
        elif kind == "resumable":
            return self._start_session(bucket, request)
        else:
            return _error(400, f"uploadType {kind} is not served by this fake", "invalid")
        if not name:
            return _error(400, "Required object name", "required")
        with self._data_lock:
            objects = self.buckets[bucket]
            refused = self._precondition(request, objects.get(name))
            if refused is not None:
                return refused
            stored = StoredObject(body, next(self._generations), content_type)
            objects[name] = stored
        return Response.json(self._resource(bucket, name, stored))

    def _start_session(self, bucket: str, request: Request) -> Response:
        metadata = request.json()
        upload_id = f"session-{next(self._generations)}"
        content_type = request.headers.get("x-upload-content-type", "application/octet-stream")
        with self._data_lock:
            self._sessions[upload_id] = (bucket, metadata["name"], content_type,
                                         self._arg(request, "ifGenerationMatch"), bytearray())
        location = (f"{self.url}/upload/storage/v1/b/{bucket}/o"
                    f"?uploadType=resumable&upload_id={upload_id}")
        return Response(200, b"", {"Location": location})

    def _resumable_chunk(self, request: Request) -> Response:
        """One PUT of a resumable session: `Content-Range: bytes A-B/TOTAL` (TOTAL may be
        `*` until the last chunk). 308 until every byte is in; then the object is created,
        its precondition checked then, as GCS does."""
        upload_id = self._arg(request, "upload_id") or ""
        with self._data_lock:
            session = self._sessions.get(upload_id)
            if session is None:
                return _error(404, "No such upload session", "notFound")
            bucket, name, content_type, condition, received = session
            received.extend(request.body)
            total = request.headers.get("content-range", "").rpartition("/")[2]
            if total == "*" or len(received) < int(total):
                return Response(308, b"", {"Range": f"bytes=0-{len(received) - 1}"})
            del self._sessions[upload_id]
            objects = self.buckets[bucket]
            if condition is not None and int(condition) != getattr(objects.get(name),
                                                                   "generation", 0):
                return _error(412, "At least one of the pre-conditions you specified did "
                              "not hold.", "conditionNotMet")
            stored = StoredObject(bytes(received), next(self._generations), content_type)
            objects[name] = stored
        return Response.json(self._resource(bucket, name, stored))

    @staticmethod
    def _multipart(request: Request) -> tuple[dict[str, Any], str, bytes]:
        """(metadata, media content type, media bytes) of a multipart/related upload."""
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            head + request.body)
        meta_part, media_part = list(message.iter_parts())
        metadata = json.loads(meta_part.get_payload(decode=True))
        media = media_part.get_payload(decode=True)
        return metadata, media_part.get_content_type(), media

    def _get(self, bucket: str, name: str, request: Request) -> Response:
        with self._data_lock:
            stored = self.buckets[bucket].get(name)
        if stored is None:
            return _error(404, f"No such object: {bucket}/{name}", "notFound")
        refused = self._precondition(request, stored)
        if refused is not None:
            return refused
        if self._arg(request, "alt") != "media":
            return Response.json(self._resource(bucket, name, stored))
        digest = base64.b64encode(hashlib.md5(stored.body).digest()).decode()
        return Response(200, stored.body, {
            "Content-Type": stored.content_type,
            "X-Goog-Generation": str(stored.generation),
            "X-Goog-Metageneration": "1",
            "X-Goog-Hash": f"md5={digest}",
            "X-Goog-Stored-Content-Length": str(len(stored.body)),
        })

    def _delete(self, bucket: str, name: str, request: Request) -> Response:
        with self._data_lock:
            objects = self.buckets[bucket]
            if name not in objects:
                return _error(404, f"No such object: {bucket}/{name}", "notFound")
            refused = self._precondition(request, objects[name])
            if refused is not None:
                return refused
            del objects[name]
        return Response(204)

    def _list(self, bucket: str, request: Request) -> Response:
        prefix = self._arg(request, "prefix") or ""
        delimiter = self._arg(request, "delimiter")
        size = min(int(self._arg(request, "maxResults") or self.page_size), self.page_size)
        start = self._arg(request, "pageToken") or ""
        # Objects and folders in one name order, as GCS pages them.
        entries: dict[str, str | None] = {}  # name -> None for a folder prefix
        with self._data_lock:
            snapshot = {k: v for k, v in self.buckets[bucket].items() if k.startswith(prefix)}
        for key in snapshot:
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                entries[prefix + rest.split(delimiter, 1)[0] + delimiter] = None
            else:
                entries[key] = key
        names = sorted(n for n in entries if n > start)
        page, more = names[:size], names[size:]
        payload: dict[str, Any] = {
            "kind": "storage#objects",
            "items": [self._resource(bucket, n, snapshot[n]) for n in page
                      if entries[n] is not None],
        }
        folders = [n for n in page if entries[n] is None]
        if folders:
            payload["prefixes"] = folders
        if more:
            payload["nextPageToken"] = page[-1]
        return Response.json(payload)


if __name__ == "__main__":
    with GcsFake(*sys.argv[1:]) as fake:
        print(fake.url, flush=True)
        fake.serve_until_interrupted()
