"""The fork server's runs are the runs a fresh interpreter makes (tests/cli_forks.py): the
same exit code, stdout and stderr for the same command, environment and directory. (That a
run obeys its own environment's failpoint and dies of its own SIGKILL, the crash tests
show: they run forked.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cli_forks import ForkServer
from tests.conftest import ALERTPULL, clean_env, run_cli


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer]:
    server = ForkServer(ALERTPULL)
    yield server
    server.close()


def _config(root: Path) -> Path:
    config = root / "alertpull.yaml"
    config.write_text(yaml.safe_dump({
        "state": {"backend": "local", "path": "state"}, "sink": {"type": "jsonl", "path": "out"},
        "sources": {"k": {"type": "kandji", "base_url": "https://acme.api.kandji.io",
                          "api_token": "${KANDJI_TOKEN}"}}}))
    return config


@pytest.mark.fresh_process
@pytest.mark.parametrize("args", [
    ("schema",), ("--version",), ("--help",), ("fetch", "--bogus"), ("sources",),
    ("status", "--json"), ("fetch", "--all"),  # the last: KANDJI_TOKEN unset, exit 2
], ids=lambda args: " ".join(args))
def test_a_forked_run_answers_as_a_fresh_one(forks: ForkServer, tmp_path: Path,
                                              args: tuple[str, ...]) -> None:
    config = _config(tmp_path)
    env = clean_env(TZ="Asia/Tokyo")
    fresh = run_cli("-c", str(config), *args, env=env, cwd=tmp_path)
    forked = forks.run("alertpull", (ALERTPULL,), ("-c", str(config), *args), env, tmp_path, 60)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        fresh.returncode, fresh.stdout, fresh.stderr)
