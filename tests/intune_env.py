"""An Intune world for tests: the TLS Graph fake with Intune's collections, connector settings,
and the cron-like CLI environment. The TLS material and the app credential are the Graph
world's (tests/graph_env.py); each test gets its own tenant, so per-tenant budgets never
slow the next test down."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env
from tests.fakes.intune import INTUNE_ROLES, IntuneFake
from tests.fakes.tls import ThrowawayCA
from tests.graph_env import CLIENT_ID, SECRET, graph_settings, throwaway_ca, trust_throwaway_ca
from tests.world import CliWorld, source_block

__all__ = ["CLIENT_ID", "SECRET", "IntuneWorld", "connector_settings", "intune_fake",
           "intune_world", "throwaway_ca"]

SOURCE = "intune"
FAST_BUDGET = 60_000  # calls a minute: keeps paging tests fast; pacing has its own test


def new_fake(ca: ThrowawayCA) -> IntuneFake:
    """A fake tenant of its own, with one app registration holding both Intune permissions."""
    fake = IntuneFake(ca.server_context(), tenant_id=str(uuid.uuid4()))
    fake.add_app(CLIENT_ID, secret=SECRET, roles=set(INTUNE_ROLES))
    return fake


@pytest.fixture
def intune_fake(throwaway_ca: ThrowawayCA,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[IntuneFake]:
    """A started fake, trusted by this process (for connector-level tests)."""
    trust_throwaway_ca(throwaway_ca, monkeypatch)
    with new_fake(throwaway_ca) as fake:
        yield fake


def connector_settings(fake: IntuneFake | None, **overrides: Any) -> dict[str, Any]:
    """The settings the engine would hand the connector: every option, defaults applied.

    Without a fake: Microsoft's public cloud and the data generator's tenant (for tests
    that never call out, such as normalize()).
    """
    from alertpull.connectors.intune import IntuneConnector

    return graph_settings(IntuneConnector, fake, **{"requests_per_minute": FAST_BUDGET,
                                                     **overrides})


@dataclass
class IntuneWorld(CliWorld):
    """The fake, a working directory and the cron-like environment the CLI runs in."""

    fake: IntuneFake

    def source(self, **overrides: Any) -> dict[str, Any]:
        """The YAML block of the source; an override of None drops that key."""
        return source_block({
            "type": "intune",
            "tenant_id": self.fake.tenant_id,
            "client_id": CLIENT_ID,
            "client_secret": "${INTUNE_SECRET}",
            "authority_host": self.fake.url,
            "graph_endpoint": self.fake.url,
            "requests_per_minute": FAST_BUDGET,
        }, overrides)

    def write_config(self, **overrides: Any) -> None:
        self.write_yaml({SOURCE: self.source(**overrides)})



@pytest.fixture
def intune_world(tmp_path: Path, throwaway_ca: ThrowawayCA) -> Iterator[IntuneWorld]:
    with new_fake(throwaway_ca) as fake:
        env = clean_env(REQUESTS_CA_BUNDLE=str(throwaway_ca.ca_file), INTUNE_SECRET=SECRET)
        world = IntuneWorld(tmp_path, env, fake)
        world.write_config()
        yield world
