"""The base of every vendor "world" used by CLI tests: a temp directory holding a config,
run through the installed `alertpull` with a cron-like environment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import yaml

from alertpull.connector import Connector
from alertpull.timeutil import utcnow
from tests.conftest import ALERTPULL, read_records, run_cli


def engine_settings(connector: type[Connector], **values: Any) -> dict[str, Any]:
    """A connector's settings as the engine hands them over: every option, defaults applied,
    overridden by `values`."""
    return {**{name: option.default for name, option in connector.options.items()}, **values}


@dataclass
class CliWorld:
    root: Path
    env: dict[str, str]
    # How the CLI is started: the installed one, or a launcher that registers a test-only
    # source type first (tests/ledger_cli.py).
    command: ClassVar[tuple[str, ...]] = (ALERTPULL,)

    @property
    def config_path(self) -> Path:
        return self.root / "alertpull.yaml"

    @property
    def alerts(self) -> Path:
        return self.root / "alerts"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def write_yaml(self, sources: dict[str, Any], **top: Any) -> None:
        """A config with local state and a JSONL sink under root, plus any top-level keys."""
        config = {
            "state": {"backend": "local", "path": "state"},
            "sink": {"type": "jsonl", "path": "alerts"},
            "sources": sources,
            **top,
        }
        self.config_path.write_text(yaml.safe_dump(config))

    def cli(self, *args: str, **env: str) -> Any:
        return run_cli("-c", str(self.config_path), *args, env={**self.env, **env},
                       command=self.command)

    def fetch(self, *args: str, **env: str) -> Any:
        return self.cli("fetch", "--all", *args, **env)

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.alerts)

    def written_text(self) -> str:
        """Everything alertpull wrote (output and state), for secret sweeps."""
        return "".join(p.read_text(errors="replace") for p in self.root.rglob("*")
                       if p.is_file() and p.name != self.config_path.name)


def hours_ago(hours: float) -> datetime:
    return utcnow() - timedelta(hours=hours)


def source_block(fields: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A source's YAML block: `fields` with `overrides` applied, an override of None
    dropping that key (to test a config without it)."""
    merged = {**fields, **overrides}
    return {key: value for key, value in merged.items() if value is not None}
