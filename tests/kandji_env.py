"""A Kandji world for tests: the wire fake, a config writer, the CLI's cron-like env."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env
from tests.fakes.kandji import KandjiFake
from tests.world import CliWorld, source_block

SOURCE = "kandji"
ALL_STREAMS = ["audit_events", "behavioral_detections", "threat_details"]
# Keeps CLI runs fast; the pacing itself is proven at connector level.
FAST_BUDGET = 360_000


@dataclass
class KandjiWorld(CliWorld):
    fake: KandjiFake

    def source(self, **overrides: Any) -> dict[str, Any]:
        """The source block, pointed at the fake (None drops a key); the token comes from env."""
        return source_block({
            "type": "kandji",
            "base_url": self.fake.url,
            "api_token": "${KANDJI_TOKEN}",
            "streams": ALL_STREAMS,
            "requests_per_hour": FAST_BUDGET,
        }, overrides)

    def write_config(self, **source_overrides: Any) -> None:
        self.write_yaml({SOURCE: self.source(**source_overrides)})



@pytest.fixture(name="kandji")
def kandji_fixture(tmp_path: Path) -> Iterator[KandjiWorld]:
    with KandjiFake() as fake:
        world = KandjiWorld(tmp_path, clean_env(KANDJI_TOKEN=fake.token), fake)
        world.write_config()
        yield world

