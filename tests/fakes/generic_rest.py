"""A vendor-neutral REST fake for the spec engine's own tests: GET or POST /v1/alerts
answers {"items": [...], "next": token} two items a page; every request is logged, and a
token login (POST /login) or an OAuth2 token call (POST /token) hands out bearer tokens.

`accept` decides which credentials pass: a callable given the request."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from .http_fake import FakeServer, Request, Response
from .tokens import BadToken, bind, unbind

PAGE = 2


class GenericRestFake(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.items: list[dict[str, Any]] = []
        self.accept: Callable[[Request], bool] = lambda request: True
        self.issued: list[str] = []  # bearer tokens handed out by /login and /token
        self.login_forms: list[dict[str, str]] = []
        self.lifetime = 3600  # expires_in of the tokens /token hands out

    def issue(self) -> str:
        token = secrets.token_hex(12)
        self.issued.append(token)
        return token

    def handle(self, request: Request) -> Response:
        if request.path == "/token" and request.method == "POST":
            self.login_forms.append(request.form())
            return Response.json({"access_token": self.issue(), "expires_in": self.lifetime})
        if request.path == "/login" and request.method == "POST":
            return Response.json({"session": {"jwt": self.issue()}})
        if request.path != "/v1/alerts":
            return Response.json({"error": {"message": "no such path"}}, 404)
        if not self.accept(request):
            return Response.json({"error": {"message": "bad credentials"}}, 401)
        params = {k: v[-1] for k, v in request.query.items()}
        query = {k: v for k, v in params.items() if k not in ("page", "key", "offset", "p")}
        try:
            offset = unbind(params["page"], query) if params.get("page") else 0
        except BadToken:
            return Response.json({"error": {"message": "page token of another query"}}, 400)
        size = PAGE
        if "offset" in params:  # offset/limit paging
            offset, size = int(params["offset"]), int(params.get("limit", PAGE))
        if "p" in params:  # page-number paging, from 1
            offset = (int(params["p"]) - 1) * PAGE
        page = self.items[offset:offset + size]
        more = offset + size < len(self.items)
        token = bind(offset + size, query) if more else None
        url = f"{self.url}/v1/alerts?{urlencode({**query, 'page': token})}" if more else None
        headers = {"Link": f'<{url}>; rel="next"'} if url else {}
        return Response.json({"items": page, "next": token, "next_url": url,
                              "total": len(self.items)}, headers=headers)
