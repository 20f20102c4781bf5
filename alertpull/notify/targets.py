"""The HTTP side of a target: build its request, send it with the engine's retry policy,
and turn every failure into one line that names the target by its label, never its URL.

Webhook: a POST of the published line itself (the record as written), with an
`Idempotency-Key: <id>:<raw_sha256>` so a receiver can drop a repeat, optional secret
headers, and optional `X-Alertpull-Signature: sha256=<hex HMAC-SHA256 of the body>`.
Slack: an incoming-webhook message per alert (or one summary), same key header.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from alertpull.errors import AlertpullError, retries_phrase
from alertpull.http import make_session
from alertpull.notify.config import Target

SIGNATURE_HEADER = "X-Alertpull-Signature"
TIMEOUT = (10.0, 30.0)  # (connect, read) seconds per attempt
_SLACK_ERROR = re.compile(r"^[a-z_]{1,40}$")  # Slack answers errors as bare codes


class TargetDown(AlertpullError):
    """The target did not accept (down, timing out, refusing, or rejecting the request)."""


class _HidePaths(logging.Filter):
    """urllib3 logs each retry with the request's path; for a Slack webhook the path is
    the secret. Blank the paths of every target this process sends to."""

    _lock = threading.Lock()
    paths: set[str] = set()  # noqa: RUF012 (one registry for the process)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for path in self.paths:
            message = message.replace(path, "/***")
        record.msg, record.args = message, ()
        return True


_FILTER = _HidePaths()
logging.getLogger("urllib3.connectionpool").addFilter(_FILTER)


class Sender:
    """One target's HTTP session, used for every message of a run."""

    def __init__(self, target: Target) -> None:
        self.target = target
        url = urlsplit(target.url.reveal())
        with _HidePaths._lock:
            _HidePaths.paths.add(url.path + (f"?{url.query}" if url.query else ""))
        self.session = make_session(retries=target.retries, timeout=TIMEOUT)

    def post(self, body: bytes, idempotency_key: str) -> None:
        """POST body as JSON; return when accepted (2xx), else raise TargetDown."""
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        headers.update({k: v.reveal() for k, v in self.target.headers.items()})
        if self.target.signature_secret is not None:
            digest = hmac.new(self.target.signature_secret.reveal().encode(), body,
                              hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        retried = retries_phrase(self.target.retries)
        try:
            answer = self.session.post(self.target.url.reveal(), data=body, headers=headers)
        except requests.exceptions.RetryError:
            raise TargetDown(f"{self.target.label} kept answering 429/5xx, still after "
                             f"{retried}") from None
        except requests.exceptions.Timeout:
            raise TargetDown(f"{self.target.label} timed out, still after {retried}") from None
        except requests.exceptions.ConnectionError:
            # The exception's text quotes the URL: say what happened without it.
            raise TargetDown(f"{self.target.label} is unreachable (refused, dropped or timed "
                             f"out), still after {retried}") from None
        except requests.exceptions.RequestException as exc:
            raise TargetDown(f"{self.target.label} failed: {type(exc).__name__}") from None
        if 200 <= answer.status_code < 300:
            return
        status = f"{answer.status_code} {answer.reason or ''}".strip()
        code = answer.text.strip()
        detail = f" ({code})" if _SLACK_ERROR.match(code) else ""
        if answer.status_code == 429 or answer.status_code >= 500:
            raise TargetDown(f"{self.target.label} answered {status}{detail}, still after "
                             f"{retried}")
        raise TargetDown(f"{self.target.label} rejected the notification: {status}{detail}; "
                         f"this is a configuration error: check notify[{self.target.index}] "
                         "url and secrets")


def idempotency_key(record: Mapping[str, Any]) -> str:
    return f"{record.get('id')}:{record.get('raw_sha256')}"
