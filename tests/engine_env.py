"""A Ledger world for the engine's own CLI tests: the Ledger fake (tests/fakes/ledger.py),
the test-only `ledger` source type (tests/ledger_connector.py) and a cron-like
environment that runs the CLI through tests/ledger_cli.py."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import REPO, clean_env
from tests.fakes.ledger import Alert, LedgerFake
from tests.world import CliWorld

LEDGER_CLI = (sys.executable, "-m", "tests.ledger_cli")
TOKEN_VAR = "LEDGER_TOKEN"
PAGE = 20  # alerts per page the fake answers at most: a few dozen span several pages


def ledger_env(fake: LedgerFake) -> dict[str, str]:
    """What a ledger source needs from its environment: the token, and the repository on
    the path so that the launcher finds the test-only source type."""
    return clean_env(PYTHONPATH=str(REPO), **{TOKEN_VAR: fake.token})


def ledger_block(fake: LedgerFake, *streams: str, **settings: Any) -> dict[str, Any]:
    return {"type": "ledger", "base_url": fake.url, "api_token": f"${{{TOKEN_VAR}}}",
            "streams": list(streams or ["changes"]), **settings}


@dataclass
class LedgerWorld(CliWorld):
    fake: LedgerFake
    command: ClassVar[tuple[str, ...]] = LEDGER_CLI

    def write_config(self, *streams: str, top: dict[str, Any] | None = None,
                     **settings: Any) -> None:
        self.write_yaml({"ledger": ledger_block(self.fake, *streams, **settings)},
                        **(top or {}))

    def add(self, count: int, *, first: int, base_time: datetime,
            step: timedelta = timedelta(minutes=1)) -> list[Alert]:
        """Alerts first..first+count-1, the first changed at base_time, then every step."""
        new = self.fake.make(count, first, base_time, step)
        self.fake.alerts.extend(new)
        return new

    def cursors(self) -> dict[str, Any]:
        """The committed cursor of each scope ({} before any run committed)."""
        path = self.state / "ledger.json"
        if not path.exists():
            return {}
        return {key: entry["cursor"] for key, entry in
                json.loads(path.read_text())["scopes"].items()}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[LedgerWorld]:
    fake = LedgerFake()
    fake.max_limit = PAGE
    with fake:
        world = LedgerWorld(tmp_path, ledger_env(fake), fake)
        world.write_config()
        yield world
