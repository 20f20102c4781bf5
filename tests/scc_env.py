"""An SCC world for connector and CLI tests: the Google wire fake, a throwaway
service-account key whose token_uri is the fake, and a cron-like environment."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alertpull.connectors.scc import SccConnector
from tests.conftest import clean_env
from tests.fakes.scc import SccFake
from tests.fakes.scc_data import ORG, Result, make_results
from tests.world import CliWorld, engine_settings

PARENT = f"organizations/{ORG}"
SOURCE = "gcp"


@dataclass
class SccWorld(CliWorld):
    fake: SccFake
    key_file: Path
    email: str

    # -- the data ------------------------------------------------------------------------

    def add(self, count: int, *, first: int, base_time: datetime,
            step: timedelta = timedelta(minutes=1), **kw: Any) -> list[Result]:
        """Findings first..first+count-1, the first with event_time base_time, then every step."""
        new = make_results(count, first=first, base_time=base_time - first * step, step=step,
                           **kw)
        self.fake.results.extend(new)
        return new

    # -- the connector, in process -------------------------------------------------------

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """What the engine would pass: every option, defaults applied."""
        return engine_settings(SccConnector, **{
            "parent": PARENT, "credentials_file": str(self.key_file),
            "api_endpoint": self.fake.url, **overrides})

    def connector(self, **overrides: Any) -> SccConnector:
        return SccConnector(SOURCE, self.settings(**overrides), logging.getLogger("test.scc"))

    # -- the CLI, as cron runs it --------------------------------------------------------

    def write_config(self, **source: Any) -> None:
        # The key's path relative to the config file, as the `path` option kind allows.
        key = str(self.key_file.relative_to(self.root))
        block = {"type": "scc", "parent": PARENT, "credentials_file": key,
                 "api_endpoint": self.fake.url, **source}
        self.write_yaml({SOURCE: block})


@pytest.fixture(name="scc")
def scc_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SccWorld]:
    # No host Google config may leak into the in-process connector.
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_QUOTA_PROJECT",
                 "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    with SccFake() as fake:
        key_file = fake.write_key_file(tmp_path)
        [email] = fake.token_endpoints
        world = SccWorld(tmp_path, clean_env(), fake, key_file, email)
        world.write_config()
        yield world

