"""Shared test helpers: run the installed CLI as cron would, validate records."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ALERTPULL = str(Path(sys.executable).parent / "alertpull")


def clean_env(**extra: str) -> dict[str, str]:
    """A cron-like environment: PATH and HOME only, plus what the test sets."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ALERTPULL, *args], env=env or clean_env(), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def read_records(root: Path) -> list[dict[str, Any]]:
    """Every record published under a local sink root (hidden staged files excluded)."""
    records = []
    for path in sorted(root.rglob("*.jsonl*")):
        if path.name.startswith((".", "_")):
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle)
    return records


@pytest.fixture(scope="session")
def record_validator() -> Any:
    import jsonschema

    schema = json.loads((REPO / "alertpull/schema/record.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.fixture
def validate_records(record_validator: Any) -> Iterator[Any]:
    def check(records: list[dict[str, Any]]) -> None:
        for record in records:
            record_validator.validate(record)

    yield check


pytest_plugins = ["tests.aws_env"]
