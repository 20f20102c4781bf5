"""A GuardDuty world for CLI tests: the AWS wire fake plus a cron-like environment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env
from tests.fakes.aws import AwsFake
from tests.fakes.guardduty_data import DETECTOR, Finding, make_findings
from tests.world import CliWorld

REGION = "us-east-1"


@dataclass
class AwsWorld(CliWorld):
    fake: AwsFake

    def write_config(self, sources: dict[str, Any] | None = None, **top: Any) -> None:
        self.write_yaml(sources or {"aws": {"type": "guardduty", "regions": [REGION]}}, **top)

    def findings(self, region: str = REGION) -> list[Finding]:
        return self.fake.findings[(region, DETECTOR)]

    def add(self, count: int, *, first: int, base_time: datetime,
            step: timedelta = timedelta(minutes=1), **kw: Any) -> list[Finding]:
        """Findings first..first+count-1, the first updated at base_time, then every step."""
        new = make_findings(count, first=first, region=REGION, base_time=base_time - first * step,
                            step=step, **kw)
        self.findings().extend(new)
        return new



def aws_client_env(url: str) -> dict[str, str]:
    """Dummy credentials and every AWS endpoint pointed at the fake; no host config leaks in."""
    return clean_env(
        AWS_ACCESS_KEY_ID="AKIDALERTPULLTEST",
        AWS_SECRET_ACCESS_KEY="not-a-real-secret-key",
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL_STS=url,
        AWS_ENDPOINT_URL_EC2=url,
        AWS_ENDPOINT_URL_GUARDDUTY=url,
        AWS_ENDPOINT_URL_SECURITYHUB=url,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
    )


@pytest.fixture
def aws(tmp_path: Path) -> Iterator[AwsWorld]:
    fake = AwsFake()
    fake.add_detector(REGION, DETECTOR, [])
    with fake:
        world = AwsWorld(tmp_path, aws_client_env(fake.url), fake)
        world.write_config()
        yield world

