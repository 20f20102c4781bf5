"""A Workspace Alert Center world for tests: the wire fake, a throwaway key, the CLI's env.

Also a small CONNECT proxy that records where it tunnelled to, for the proxy tests (the
fake serves HTTPS with tests.fakes.tls's throwaway CA).
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env
from tests.fakes.alertcenter import ADMIN, AlertCenterFake
from tests.fakes.alertcenter_data import CUSTOMER_ID, Alert, make_alerts
from tests.fakes.google_sa import make_key
from tests.world import CliWorld, source_block

SOURCE = "workspace"


@dataclass
class AlertCenterWorld(CliWorld):
    fake: AlertCenterFake
    key_path: Path

    def source(self, **overrides: Any) -> dict[str, Any]:
        """The source block, every endpoint pointed at the fake (None drops a key)."""
        return source_block({
            "type": "workspace_alertcenter",
            "credentials_file": str(self.key_path),
            "subject": ADMIN,
            "customer_id": CUSTOMER_ID,
            "api_endpoint": self.fake.url,
            "retry_base_seconds": 0.1,  # 5 s by default
        }, overrides)

    def write_config(self, **source_overrides: Any) -> None:
        self.write_yaml({SOURCE: self.source(**source_overrides)})

    def add(self, count: int, *, first: int, base_time: datetime,
            step: timedelta = timedelta(minutes=1)) -> list[Alert]:
        """Alerts first..first+count-1, the first created at base_time, then every step."""
        new = make_alerts(count, first=first, base_time=base_time - first * step, step=step)
        self.fake.alerts.extend(new)
        return new



@pytest.fixture(name="workspace")
def workspace_fixture(tmp_path: Path) -> Iterator[AlertCenterWorld]:
    with AlertCenterFake(make_key()) as fake:
        world = AlertCenterWorld(tmp_path, clean_env(), fake,
                                 fake.write_key(tmp_path / "key.json"))
        world.write_config()
        yield world



# -- a CONNECT proxy -------------------------------------------------------------------------------


class ConnectProxy:
    """An HTTP proxy that only tunnels (CONNECT), as httplib2 + PySocks use proxies.

    `tunnels` lists the host:port targets it connected to, in order.
    """

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._tunnel(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ConnectProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.tunnels.append(target)
        host, port = target.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _relay(client, upstream)


def _relay(a: socket.socket, b: socket.socket) -> None:
    peers = {a: b, b: a}
    while True:
        readable, _, _ = select.select(list(peers), [], [], 5)
        if not readable:
            return
        for sock in readable:
            try:
                data = sock.recv(65536)
                if data:
                    peers[sock].sendall(data)
            except OSError:  # one side gave up (e.g. a client refusing the certificate)
                data = b""
            if not data:
                return
