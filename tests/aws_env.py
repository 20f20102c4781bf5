"""A GuardDuty world for CLI tests: the AWS wire fake plus a cron-like environment."""

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
from tests.fakes.aws import AwsFake
from tests.fakes.guardduty_data import DETECTOR, Finding, make_findings

REGION = "us-east-1"


@dataclass
class AwsWorld:
    fake: AwsFake
    root: Path
    env: dict[str, str]

    @property
    def config_path(self) -> Path:
        return self.root / "alertpull.yaml"

    @property
    def alerts(self) -> Path:
        return self.root / "alerts"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def write_config(self, sources: dict[str, Any] | None = None, **top: Any) -> None:
        config = {
            "state": {"backend": "local", "path": "state"},
            "sink": {"type": "jsonl", "path": "alerts"},
            "sources": sources or {"aws": {"type": "guardduty", "regions": [REGION]}},
            **top,
        }
        self.config_path.write_text(yaml.safe_dump(config))

    def findings(self, region: str = REGION) -> list[Finding]:
        return self.fake.findings[(region, DETECTOR)]

    def add(self, count: int, *, first: int, base_time: datetime,
            step: timedelta = timedelta(minutes=1), **kw: Any) -> list[Finding]:
        """Findings first..first+count-1, the first updated at base_time, then every step."""
        new = make_findings(count, first=first, region=REGION, base_time=base_time - first * step,
                            step=step, **kw)
        self.findings().extend(new)
        return new

    def cli(self, *args: str, **env: str) -> Any:
        return run_cli("-c", str(self.config_path), *args, env={**self.env, **env})

    def fetch(self, *args: str, **env: str) -> Any:
        return self.cli("fetch", "--all", *args, **env)

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.alerts)


def aws_client_env(url: str) -> dict[str, str]:
    """Dummy credentials and every AWS endpoint pointed at the fake; no host config leaks in."""
    return clean_env(
        AWS_ACCESS_KEY_ID="AKIDALERTPULLTEST",
        AWS_SECRET_ACCESS_KEY="not-a-real-secret-key",
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL_STS=url,
        AWS_ENDPOINT_URL_EC2=url,
        AWS_ENDPOINT_URL_GUARDDUTY=url,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
    )


@pytest.fixture
def aws(tmp_path: Path) -> Iterator[AwsWorld]:
    fake = AwsFake()
    fake.add_detector(REGION, DETECTOR, [])
    with fake:
        world = AwsWorld(fake, tmp_path, aws_client_env(fake.url))
        world.write_config()
        yield world


def hours_ago(hours: float) -> datetime:
    return utcnow() - timedelta(hours=hours)
