"""Google service-account plumbing for the Google fakes: a throwaway key and a token endpoint.

- `make_key()` generates an RSA key with `cryptography` and `ServiceAccountKey.write()`
  stores it as the JSON key file Google hands out, with `token_uri` pointing at a fake.
- `TokenEndpoint` is the OAuth 2.0 JWT-bearer grant of https://oauth2.googleapis.com/token:
  it verifies the assertion google-auth signs (RS256 signature with the key's public half,
  `iss`, `aud`, lifetime, `scope`, and `sub` for domain-wide delegation), answers errors
  in Google's OAuth shape ({"error", "error_description"}), and remembers which access token
  it issued to whom, so an API fake can authorize `Authorization: Bearer` headers.
- `google_api_error()` is the error body every Google JSON API answers with:
  {"error": {"code", "message", "status"}}.

Shared by the Alert Center and SCC fakes; nothing here is specific to one API.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .http_fake import Request, Response

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The audiences Google accepts in an assertion; google-auth always signs for the first,
# whatever token_uri the key names.
AUDIENCES = frozenset(
    {
        "https://oauth2.googleapis.com/token",
        "https://www.googleapis.com/oauth2/v4/token",
        "https://accounts.google.com/o/oauth2/token",
    }
)
MAX_ASSERTION_LIFETIME = 3600  # Google refuses assertions valid for longer than an hour
CLOCK_SKEW = 300
UNAUTHORIZED_CLIENT = (
    "Client is unauthorized to retrieve access tokens using this method, or client not "
    "authorized for any of the scopes requested."
)
# Google's canonical status names for the HTTP codes the fakes answer with.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def google_api_error(code: int, message: str, status: str | None = None) -> Response:
    """An error as Google's JSON APIs send it."""
    body = {"error": {"code": code, "message": message, "status": status or STATUS_NAMES[code]}}
    return Response.json(body, code)


def oauth_error(code: int, error: str, description: str) -> Response:
    """An error as Google's OAuth 2.0 token endpoint sends it."""
    return Response.json({"error": error, "error_description": description}, code)


@functools.cache
def _shared_private_key() -> rsa.RSAPrivateKey:
    # Generating an RSA key costs tens of milliseconds: tests share one unless they ask
    # for a fresh one (e.g. to sign with a key the endpoint does not know).
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class ServiceAccountKey:
    """A service account and its key, as the JSON key file describes them."""

    client_email: str
    client_id: str
    private_key_id: str
    private_key: rsa.RSAPrivateKey
    project_id: str

    def info(self, token_uri: str) -> dict[str, Any]:
        """The key file's content, with `token_uri` pointing where the test wants."""
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.private_key_id,
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
            + self.client_email.replace("@", "%40"),
            "universe_domain": "googleapis.com",
        }

    def write(self, path: Path, token_uri: str) -> Path:
        path.write_text(json.dumps(self.info(token_uri), indent=2))
        path.chmod(0o600)
        return path

    @property
    def private_pem(self) -> str:
        """The PEM text, for tests that prove it never leaks."""
        return str(self.info("")["private_key"])


def make_key(
    client_email: str = "alertpull@alertpull-test.iam.gserviceaccount.com",
    project_id: str = "alertpull-test",
    *,
    fresh: bool = False,
) -> ServiceAccountKey:
    private_key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if fresh
        else _shared_private_key()
    )
    return ServiceAccountKey(
        client_email=client_email,
        client_id=str(100000000000000000000 + int.from_bytes(secrets.token_bytes(6))),
        private_key_id=secrets.token_hex(20),
        private_key=private_key,
        project_id=project_id,
    )


@dataclass(frozen=True)
class Grant:
    """What one issued access token stands for."""

    client_email: str
    subject: str | None  # the impersonated user (domain-wide delegation), or None
    scopes: frozenset[str]


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _invalid_grant(description: str) -> _Refused:
    return _Refused(oauth_error(400, "invalid_grant", description))


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class TokenEndpoint:
    """The JWT-bearer grant for one service-account key.

    subject: the user domain-wide delegation lets the key impersonate (None: the service
        account acts as itself and any `sub` is refused, as for a user outside the domain).
    delegated_scopes: the scopes granted to the client ID in the Admin console; a `sub`
        assertion asking for another scope gets `unauthorized_client` (401).
    """

    def __init__(
        self,
        key: ServiceAccountKey,
        *,
        subject: str | None = None,
        delegated_scopes: frozenset[str] = frozenset(),
        token_lifetime: int = 3600,
    ) -> None:
        self.key = key
        self.subject = subject
        self.delegated_scopes = delegated_scopes
        self.token_lifetime = token_lifetime
        self.issued: dict[str, Grant] = {}
        self.assertions: list[dict[str, Any]] = []  # the verified claims, in order
        self._lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        """Answer one POST to the token endpoint."""
        try:
            form = request.form()
            if form.get("grant_type") != JWT_BEARER:
                raise _Refused(
                    oauth_error(400, "unsupported_grant_type", "Invalid grant_type: ")
                )
            claims = self._verified_claims(form.get("assertion", ""))
            grant = self._grant(claims)
        except _Refused as refused:
            return refused.response
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        with self._lock:
            self.assertions.append(claims)
            self.issued[token] = grant
        return Response.json(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def grant_for(self, request: Request) -> Grant | None:
        """The grant behind the request's bearer token; None when absent or unknown."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._lock:
            return self.issued.get(token)

    # -- assertion checks ----------------------------------------------------------------

    def _verified_claims(self, assertion: str) -> dict[str, Any]:
        try:
            header_b64, payload_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64decode(header_b64))
            claims = json.loads(_b64decode(payload_b64))
            signature = _b64decode(signature_b64)
        except (ValueError, binascii.Error):
            raise _invalid_grant("Invalid JWT: malformed assertion") from None
        if header.get("alg") != "RS256" or header.get("kid") != self.key.private_key_id:
            raise _invalid_grant("Invalid JWT Signature.")
        try:
            self.key.private_key.public_key().verify(
                signature,
                f"{header_b64}.{payload_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise _invalid_grant("Invalid JWT Signature.") from None
        if claims.get("iss") != self.key.client_email:
            raise _invalid_grant("Invalid JWT: iss is not the key's service account")
        if claims.get("aud") not in AUDIENCES:
            raise _invalid_grant("Invalid JWT: audience is not Google's token endpoint")
        now = time.time()
        issued, expires = claims.get("iat", 0), claims.get("exp", 0)
        if not (
            issued - CLOCK_SKEW <= now < expires + CLOCK_SKEW
            and expires - issued <= MAX_ASSERTION_LIFETIME
        ):
            raise _invalid_grant(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim."
            )
        return claims

    def _grant(self, claims: dict[str, Any]) -> Grant:
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes:
            raise _Refused(oauth_error(400, "invalid_scope", "Empty or missing scope not allowed."))
        subject = claims.get("sub")
        if subject is not None:
            if subject != self.subject:
                raise _invalid_grant("Invalid email or User ID")
            if not scopes <= self.delegated_scopes:
                raise _Refused(oauth_error(401, "unauthorized_client", UNAUTHORIZED_CLIENT))
        return Grant(self.key.client_email, subject, scopes)
