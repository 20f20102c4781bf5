"""A Kandji world for tests: the wire fake, a config writer, the CLI's cron-like env."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alertpull.timeutil import utcnow
from tests.conftest import clean_env, read_records, run_cli
from tests.fakes.kandji import KandjiFake

SOURCE = "kandji"
ALL_STREAMS = ["audit_events", "behavioral_detections", "threat_details"]
# Keeps CLI runs fast; the pacing itself is proven at connector level.
FAST_BUDGET = 360_000


@dataclass
class KandjiWorld:
    fake: KandjiFake
    root: Path
    env: dict[str, str]

    @property
    def config_path(self) -> Path:
        return self.root / "alertpull.yaml"

    @property
    def alerts_dir(self) -> Path:
        return self.root / "alerts"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def source(self, **overrides: Any) -> dict[str, Any]:
        """The source block, pointed at the fake (None drops a key); the token comes from env."""
        block = {
            "type": "kandji",
            "base_url": self.fake.url,
            "api_token": "${KANDJI_TOKEN}",
            "streams": ALL_STREAMS,
            "requests_per_hour": FAST_BUDGET,
            **overrides,
        }
        return {key: value for key, value in block.items() if value is not None}

    def write_config(self, **source_overrides: Any) -> None:
        config = {
            "state": {"backend": "local", "path": "state"},
            "sink": {"type": "jsonl", "path": "alerts"},
            "sources": {SOURCE: self.source(**source_overrides)},
        }
        self.config_path.write_text(yaml.safe_dump(config))

    def cli(self, *args: str, **env: str) -> Any:
        return run_cli("-c", str(self.config_path), *args, env={**self.env, **env})

    def fetch(self, *args: str, **env: str) -> Any:
        return self.cli("fetch", "--all", *args, **env)

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.alerts_dir)


@pytest.fixture(name="kandji")
def kandji_fixture(tmp_path: Path) -> Iterator[KandjiWorld]:
    with KandjiFake() as fake:
        world = KandjiWorld(fake, tmp_path, clean_env(KANDJI_TOKEN=fake.token))
        world.write_config()
        yield world


def hours_ago(hours: float) -> datetime:
    return utcnow() - timedelta(hours=hours)
