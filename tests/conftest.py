"""Shared test helpers: run the installed CLI as cron would, validate records."""

from __future__ import annotations

import atexit
import functools
import gzip
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.cli_forks import ForkServer, forkable

REPO = Path(__file__).resolve().parent.parent
ALERTPULL = str(Path(sys.executable).parent / "alertpull")


def clean_env(**extra: str) -> dict[str, str]:
    """A cron-like environment: PATH and HOME only, plus what the test sets."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 60,
            command: Sequence[str] = (ALERTPULL,)) -> subprocess.CompletedProcess[str]:
    """`command` (the installed CLI, or a launcher of it such as tests/ledger_cli.py) with
    `args`, in a process of its own: forked from the worker's CLI fork server where a forked
    child runs as a fresh interpreter would (tests/cli_forks.py), else started afresh."""
    env = env or clean_env()
    entry = _fork_server().entry(command) if _forks_allowed and forkable(env) else None
    if entry is None:
        return subprocess.run([*command, *args], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, check=False)
    return _fork_server().run(entry, command, args, env, cwd, timeout)


_forks_allowed = os.environ.get("ALERTPULL_TESTS_FRESH") != "1"


@functools.cache
def _fork_server() -> ForkServer:
    server = ForkServer(ALERTPULL)
    atexit.register(server.close)
    return server


@pytest.fixture(autouse=True)
def _fresh_process_when_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests marked `fresh_process` start every CLI run as cron does: a new interpreter
    running the installed script."""
    global _forks_allowed
    if request.node.get_closest_marker("fresh_process") is None:
        yield
        return
    allowed, _forks_allowed = _forks_allowed, False
    try:
        yield
    finally:
        _forks_allowed = allowed


@functools.cache
def record_validator() -> Any:
    import jsonschema

    schema = json.loads((REPO / "alertpull/schema/record.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def check_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every record a test reads back is checked against the shipped JSON Schema."""
    for record in records:
        record_validator().validate(record)
    return records


@pytest.fixture
def validate_records() -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    return check_records


def read_records(root: Path) -> list[dict[str, Any]]:
    """Every record published under a local sink root (hidden staged files excluded), each
    checked against the schema and check_raw_text (a line read back again, as tests do
    after every run, was checked the first time: validation is most of a test's own CPU)."""
    records = []
    for path in sorted(root.rglob("*.jsonl*")):
        if path.name.startswith((".", "_")):
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            for line in handle:
                record = json.loads(line)
                digest = hashlib.blake2b(line, digest_size=16).digest()
                if digest not in _valid_lines:
                    record_validator().validate(record)
                    check_raw_text(line.rstrip(b"\n"), record)
                    _valid_lines.add(digest)
                records.append(record)
    return records


def check_raw_text(line: bytes, record: dict[str, Any]) -> None:
    """A line closes with its raw as canonical JSON, then raw_sha256: the digest of that text."""
    from alertpull.record import canonical_json

    raw_text = canonical_json(record["raw"])
    assert line.endswith(b',"raw":' + raw_text + b',"raw_sha256":"'
                         + record["raw_sha256"].encode() + b'"}'), line[-200:]
    assert hashlib.sha256(raw_text).hexdigest() == record["raw_sha256"]


_valid_lines: set[bytes] = set()  # digests of the lines this worker checked


pytest_plugins = ["tests.aws_env", "tests.engine_env"]
