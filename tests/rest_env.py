"""Worlds for the declarative recipes (CrowdStrike, SentinelOne, Thinkst Canary): each wire
fake with a config writer, run through the installed CLI with a cron-like env."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env
from tests.fakes.canary import CanaryFake
from tests.fakes.crowdstrike import CrowdStrikeFake
from tests.fakes.http_fake import FakeServer
from tests.fakes.sentinelone import SentinelOneFake
from tests.world import CliWorld, source_block


@dataclass
class RecipeWorld(CliWorld):
    fake: Any
    block: dict[str, Any]
    secrets: tuple[str, ...]

    name = "src"

    def source(self, **overrides: Any) -> dict[str, Any]:
        return source_block({**self.block, "base_url": self.fake.url}, overrides)

    def write_config(self, **overrides: Any) -> None:
        self.write_yaml({self.name: self.source(**overrides)})

    def assert_no_secret(self, *outputs: str) -> None:
        everything = "".join(outputs) + self.written_text()
        for secret in self.secrets:
            assert secret not in everything


def _world(tmp_path: Path, fake: FakeServer, block: dict[str, Any], env: dict[str, str],
           secrets: tuple[str, ...]) -> RecipeWorld:
    world = RecipeWorld(tmp_path, clean_env(**env), fake, block, secrets)
    world.write_config()
    return world


@pytest.fixture(name="falcon")
def falcon_fixture(tmp_path: Path) -> Iterator[RecipeWorld]:
    with CrowdStrikeFake() as fake:
        yield _world(tmp_path, fake, {"type": "crowdstrike", "client_id": "${CS_ID}",
                                      "client_secret": "${CS_SECRET}"},
                     {"CS_ID": fake.client_id, "CS_SECRET": fake.client_secret},
                     (fake.client_secret,))


@pytest.fixture(name="s1")
def s1_fixture(tmp_path: Path) -> Iterator[RecipeWorld]:
    with SentinelOneFake() as fake:
        yield _world(tmp_path, fake, {"type": "sentinelone", "api_token": "${S1_TOKEN}"},
                     {"S1_TOKEN": fake.token}, (fake.token,))


@pytest.fixture(name="canary")
def canary_fixture(tmp_path: Path) -> Iterator[RecipeWorld]:
    with CanaryFake() as fake:
        yield _world(tmp_path, fake, {"type": "thinkst_canary", "auth_token": "${CANARY_TOKEN}"},
                     {"CANARY_TOKEN": fake.auth_token}, (fake.auth_token,))
