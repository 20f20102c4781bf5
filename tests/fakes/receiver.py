"""A notification receiver on 127.0.0.1: records every POST and, given a secret, verifies
the HMAC-SHA256 signature over the body as a receiver would (a bad one answers 401)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from tests.fakes.http_fake import FakeServer, Request, Response


class Receiver(FakeServer):
    def __init__(self, signature_secret: str | None = None) -> None:
        super().__init__()
        self.signature_secret = signature_secret
        self.accepted: list[Request] = []
        self.port = 0

    def start(self, port: int = 0) -> Receiver:
        super().start(port or self.port)
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def handle(self, request: Request) -> Response:
        if self.signature_secret is not None:
            expected = "sha256=" + hmac.new(self.signature_secret.encode(), request.body,
                                            hashlib.sha256).hexdigest()
            if not hmac.compare_digest(request.headers.get("x-alertpull-signature", ""),
                                       expected):
                return Response(401, b"bad signature")
        self.accepted.append(request)
        return Response(200, b"ok")

    def bodies(self) -> list[Any]:
        return [json.loads(r.body) for r in self.accepted]
