"""A Microsoft Graph world for tests: TLS material, the sign-in + Graph fake, a CLI environment.

MSAL speaks only HTTPS: the fake serves TLS with a certificate from a throwaway CA made
once per test session, and clients trust it through REQUESTS_CA_BUNDLE. Each test gets its
own tenant id, so the per-tenant rate budgets of one test never slow down the next.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env
from tests.fakes.graph import GraphFake
from tests.fakes.graph_data import TENANT_ID
from tests.fakes.tls import AppCertificate, ThrowawayCA, make_app_certificate, make_throwaway_ca
from tests.world import CliWorld, engine_settings, source_block

CLIENT_ID = "0e7d4c1b-2a3f-4b5c-8d9e-6f7a8b9c0d1e"
SECRET = "Zx8Q~fake-client-secret-value-7f3a9c"  # shaped like an Entra secret Value


@pytest.fixture(scope="session")
def throwaway_ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return make_throwaway_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def app_certificate(tmp_path_factory: pytest.TempPathFactory) -> AppCertificate:
    return make_app_certificate(tmp_path_factory.mktemp("app-cert"))


def new_fake(ca: ThrowawayCA) -> GraphFake:
    """A fake tenant of its own, with one app registration holding both read permissions."""
    fake = GraphFake(ca.server_context(), tenant_id=str(uuid.uuid4()))
    fake.add_app(CLIENT_ID, secret=SECRET)
    return fake


def trust_throwaway_ca(ca: ThrowawayCA, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this process reach the TLS fakes directly, trusting their throwaway CA."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_file))


@pytest.fixture
def graph_fake(throwaway_ca: ThrowawayCA, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphFake]:
    """A started fake, trusted by this process (for connector-level tests)."""
    trust_throwaway_ca(throwaway_ca, monkeypatch)
    with new_fake(throwaway_ca) as fake:
        yield fake


def connector_settings(fake: GraphFake | None, **overrides: Any) -> dict[str, Any]:
    """The settings the engine would hand the connector: every option, defaults applied.

    Without a fake: Microsoft's public cloud and the data generator's tenant (for tests
    that never call out, such as normalize()).
    """
    from alertpull.connectors.entra_id import EntraIdConnector

    return graph_settings(EntraIdConnector, fake, **overrides)


def graph_settings(connector: type, fake: Any, **overrides: Any) -> dict[str, Any]:
    """A Graph connector's settings as the engine would hand them over, signed in as the test
    app, at the fake when there is one (else at Microsoft's public cloud)."""
    from alertpull.connector import Secret

    settings = engine_settings(connector, tenant_id=TENANT_ID, client_id=CLIENT_ID,
                               client_secret=Secret(SECRET))
    if fake is not None:
        settings.update(tenant_id=fake.tenant_id, authority_host=fake.url, graph_endpoint=fake.url)
    settings.update(overrides)
    return settings


@dataclass
class GraphWorld(CliWorld):
    """The fake, a working directory and the cron-like environment the CLI runs in."""

    fake: GraphFake

    def source(self, **overrides: Any) -> dict[str, Any]:
        """The YAML block of the source; an override of None drops that key."""
        return source_block({
            "type": "entra_id",
            "tenant_id": self.fake.tenant_id,
            "client_id": CLIENT_ID,
            "client_secret": "${ENTRA_SECRET}",
            "authority_host": self.fake.url,
            "graph_endpoint": self.fake.url,
        }, overrides)

    def write_config(self, **overrides: Any) -> None:
        self.write_yaml({"entra": self.source(**overrides)})



@pytest.fixture
def graph_world(tmp_path: Path, throwaway_ca: ThrowawayCA) -> Iterator[GraphWorld]:
    with new_fake(throwaway_ca) as fake:
        env = clean_env(REQUESTS_CA_BUNDLE=str(throwaway_ca.ca_file), ENTRA_SECRET=SECRET)
        world = GraphWorld(tmp_path, env, fake)
        world.write_config()
        yield world

