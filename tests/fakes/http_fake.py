"""A small vendor-neutral HTTP fake: a threaded server on 127.0.0.1, a request log, scripted faults.

A vendor fake subclasses `FakeServer` and implements `handle(request) -> Response`. Tests
read `requests` to prove what the client sent, and `inject()` faults to script what the
next matching calls see: an error status, a stall, a connection cut mid-body, or a
callback that changes the fake's data just before the call is served.
"""

from __future__ import annotations

import functools
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    """One request as the fake received it. Header names are lower-cased."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def form(self) -> dict[str, str]:
        """The url-encoded body as a flat dict (last value wins)."""
        return {key: values[-1] for key, values in parse_qs(self.body.decode()).items()}


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Self:
        merged = {"Content-Type": "application/json", **(headers or {})}
        return cls(status, json.dumps(payload).encode(), merged)


@dataclass(frozen=True)
class Fault:
    """What to do differently for one matching request.

    response: answer this instead of the fake's own answer (None: the fake answers).
    respond: answer what it returns for the request instead (e.g. the fake's answer to an
        earlier request, replayed).
    delay: seconds to stall before answering (longer than a client's read timeout = a hang).
    cut_body: send the headers and half the body, then close the connection.
    before: called before the request is served, e.g. to change data between two calls.
    """

    response: Response | None = None
    respond: Callable[[Request], Response] | None = None
    delay: float = 0.0
    cut_body: bool = False
    before: Callable[[], None] | None = None


Matcher = Callable[[Request], bool]


@dataclass
class _Scripted:
    matcher: Matcher
    fault: Fault
    remaining: int


def on(method: str | None = None, path: str | None = None) -> Matcher:
    """A matcher on the method and/or the exact path."""
    return lambda r: (method is None or r.method == method) and (path is None or r.path == path)


class FakeServer:
    """Base of every vendor fake. Subclasses implement `handle`.

    tls: serve HTTPS with this server context (for clients that refuse plain HTTP, e.g. MSAL).
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._faults: list[_Scripted] = []
        self._server: ThreadingHTTPServer | None = None

    # -- what a vendor fake implements -------------------------------------------------

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, port: int = 0) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        if self._tls is not None:
            # The handshake runs as a connection is accepted; a failed one is dropped.
            self._server.socket = self._tls.wrap_socket(self._server.socket, server_side=True)
        # A short poll interval keeps stop() (shutdown waits for one poll) fast.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)
        threading.Thread(target=serve, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def serve_until_interrupted(self) -> None:
        """For `python -m tests.fakes.X`: serve until interrupted (Ctrl-C)."""
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    # -- what tests use ------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def inject(self, matcher: Matcher, fault: Fault, times: int = 1) -> None:
        """The next `times` requests that match get `fault` (faults apply in FIFO order)."""
        with self._lock:
            self._faults.append(_Scripted(matcher, fault, times))

    @property
    def pending_faults(self) -> int:
        """Scripted fault uses not consumed yet: a test can assert its script ran fully."""
        with self._lock:
            return sum(entry.remaining for entry in self._faults)

    # -- internals -----------------------------------------------------------------------

    def _record(self, request: Request) -> Fault | None:
        """Log the request and take the first fault that matches it."""
        with self._lock:
            self._requests.append(request)
            for entry in self._faults:
                if entry.matcher(request):
                    entry.remaining -= 1
                    if entry.remaining == 0:
                        self._faults.remove(entry)
                    return entry.fault
        return None


def _handler_for(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints and SDK pools expect
        # TCP_NODELAY: headers and body go out as two writes, and Nagle would hold a small
        # body until the client's delayed ACK (~40 ms a call on a kept-alive connection).
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length),
            )
            fault = fake._record(request) or Fault()
            if fault.before:
                fault.before()
            if fault.delay:
                time.sleep(fault.delay)
            answer = fault.respond(request) if fault.respond else None
            self._send(fault.response or answer or self._answer(request), fault.cut_body)

        def _answer(self, request: Request) -> Response:
            try:
                return fake.handle(request)
            except Exception as exc:  # a bug in the fake: make it visible to the client
                return Response(500, f"fake failed: {exc!r}".encode())

        def _send(self, response: Response, cut_body: bool) -> None:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command == "HEAD":  # headers only, as HTTP requires
                return
            if not cut_body:
                self.wfile.write(response.body)
                return
            self.wfile.write(response.body[: len(response.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request log is the record; keep test output clean

    return Handler
