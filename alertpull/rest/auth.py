"""How a declared source signs its calls: one Authenticator per connector.

Static kinds (bearer, header, query, basic) are rendered once from the options. The two
token kinds (OAuth2 client credentials, a token-login POST) fetch a token on first use,
fetch it again shortly before it expires and once after a 401 (a token revoked early),
and hand every token they hold to the redactor, so that none reaches a log line.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from alertpull.errors import SourceError
from alertpull.record import parse_json
from alertpull.rest.render import Missing, render, render_all
from alertpull.rest.spec import Auth

EARLY = 60.0  # seconds before its expiry a token is fetched again
DEFAULT_LIFETIME = 1800.0  # a token whose answer gives no expires_in


class Authenticator:
    def __init__(self, auth: Auth, values: Mapping[str, Any], session: requests.Session,
                 base_url: str, vendor: str, on_secret: Callable[[str], None]) -> None:
        self.auth = auth
        self.values = values  # option values, secrets revealed: used only to sign
        self.session = session
        self.base_url = base_url
        self.vendor = vendor
        self.on_secret = on_secret
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    @property
    def refreshable(self) -> bool:
        return self.auth.kind in ("oauth2_client_credentials", "token_login")

    def sign(self, headers: dict[str, str], query: dict[str, Any]) -> None:
        """Add the credentials to one request's headers or query."""
        try:
            self._sign(headers, query)
        except Missing as unset:
            raise SourceError(f"{self.vendor}: the spec's auth needs the option {unset}; set "
                              "it in the source's config") from None

    def _sign(self, headers: dict[str, str], query: dict[str, Any]) -> None:
        kind, spec = self.auth.kind, self.auth.values
        if kind == "bearer":
            headers["Authorization"] = f"Bearer {render(spec['token'], self.values)}"
        elif kind == "header":
            headers[spec["name"]] = str(render(spec["value"], self.values))
        elif kind == "query":
            query[spec["param"]] = render(spec["value"], self.values)
        elif kind == "basic":
            user, password = (render(spec[k], self.values) for k in ("username", "password"))
            pair = f"{user}:{password}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            token = self._current_token()
            template = spec.get("header", "Bearer {token}")
            headers["Authorization"] = str(render(template, {"token": token}))

    def invalidate(self) -> None:
        """After a 401: the next signed call fetches a new token."""
        with self._lock:
            self._token = None

    def _current_token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                self._token, lifetime = self._fetch()
                self.on_secret(self._token)
                self._expires = time.monotonic() + max(lifetime - EARLY, lifetime / 2)
            return self._token

    def _fetch(self) -> tuple[str, float]:
        spec = self.auth.values
        if self.auth.kind == "oauth2_client_credentials":
            url = str(render(spec["token_url"], self.values))
            form = {"client_id": render(spec["client_id"], self.values),
                    "client_secret": render(spec["client_secret"], self.values),
                    **render_all(spec.get("form", {}), self.values)}
            answer = self._post(url, data=form)
            token, lifetime = answer.get("access_token"), answer.get("expires_in")
        else:
            url = str(render(spec["url"], self.values))
            answer = self._post(url, json=render_all(spec.get("json"), self.values),
                                data=render_all(spec.get("form"), self.values))
            token = spec["token"].search(answer)
            lifetime = spec["expires_in"].search(answer) if "expires_in" in spec else None
        if not isinstance(token, str) or not token:
            raise SourceError(f"{self.vendor} answered the token request to {url} without a "
                              "token; check the spec's auth")
        seconds = float(lifetime) if isinstance(lifetime, (int, float)) else DEFAULT_LIFETIME
        return token, seconds

    def _post(self, url: str, **body: Any) -> dict[str, Any]:
        target = url if url.startswith(("http://", "https://")) else self.base_url + url
        call = f"POST {url}"
        try:
            response = self.session.post(target, headers={"Accept": "application/json"},
                                         **{k: v for k, v in body.items() if v})
        except requests.exceptions.RequestException as exc:
            raise SourceError(f"{call}: cannot reach {self.base_url} ({type(exc).__name__}); "
                              "check base_url, the network and HTTPS_PROXY/NO_PROXY") from None
        if response.status_code in (400, 401, 403):
            raise SourceError(f"{self.vendor} refused the credentials at {call} "
                              f"(HTTP {response.status_code}): check the client id and secret "
                              "(or login) in the source's config")
        if response.status_code not in (200, 201):
            raise SourceError(f"{self.vendor} failed {call} with HTTP {response.status_code}; "
                              "the next run tries again")
        try:
            answer = parse_json(response.content)
        except ValueError:
            raise SourceError(f"{self.vendor} answered {call} with a body that is not JSON"
                              ) from None
        if not isinstance(answer, dict):
            raise SourceError(f"{self.vendor} answered {call} without a JSON object")
        return answer
