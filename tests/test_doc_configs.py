"""Every config a user may copy — config.example.yaml, contrib/alertpull.yaml and each YAML
block of README.md and docs/ that is a config (it has `sources:`) — loads through the real
config loader: a doc that drifts from the option declarations fails here, not in a user's
cron job."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from alertpull.config import parse_config
from tests.conftest import REPO

DOC_PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
WHOLE_FILES = [REPO / "config.example.yaml", REPO / "contrib" / "alertpull.yaml"]
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)


def config_blocks() -> list[tuple[str, str]]:
    found = [(str(path.relative_to(REPO)), path.read_text()) for path in WHOLE_FILES]
    for page in DOC_PAGES:
        for number, match in enumerate(BLOCK.finditer(page.read_text()), 1):
            text = match.group(1)
            loaded = yaml.safe_load(text)
            if isinstance(loaded, dict) and "sources" in loaded:
                found.append((f"{page.relative_to(REPO)} block {number}", text))
    return found


BLOCKS = config_blocks()


def test_the_docs_hold_config_blocks_to_check() -> None:
    # A regex that stopped matching would make every test below vacuous.
    pages = {where.split(" block ")[0] for where, _ in BLOCKS}
    assert {"README.md", "docs/sources/guardduty.md", "docs/sources/kandji.md"} <= pages


def with_files_in_place(raw: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A secret read from `{file: …}` must exist at load time: give each one a file; a
    declarative source's spec file is the docs' example of that name (docs/specs/); a
    service-account key file (the loader reads its `type`) is a key of that shape."""
    for settings in raw["sources"].values():
        if isinstance(settings.get("credentials_file"), str):
            key = tmp_path / Path(settings["credentials_file"]).name
            key.write_text('{"type": "service_account", "client_email": "a@b.example"}')
            settings["credentials_file"] = str(key)
        if isinstance(settings.get("spec"), str):
            spec = tmp_path / settings["spec"]
            spec.parent.mkdir(parents=True, exist_ok=True)
            spec.write_text((REPO / "docs" / "specs" / Path(settings["spec"]).name).read_text())
        for key, value in settings.items():
            if isinstance(value, dict) and set(value) == {"file"}:
                secret = tmp_path / f"{key}.secret"
                secret.write_text("not-a-real-secret\n")
                settings[key] = {"file": str(secret)}
    return raw


@pytest.mark.parametrize(("where", "text"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_config_block_loads(where: str, text: str, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name in set(re.findall(r"\$\{(\w+)\}", text)):
        monkeypatch.setenv(name, str(tmp_path) if name.endswith("_DIRECTORY") else
                           "https://hooks.example.com/x" if name.endswith("_WEBHOOK") else
                           "x-value")
    raw = with_files_in_place(yaml.safe_load(text), tmp_path)
    config = parse_config(raw, str(tmp_path / "alertpull.yaml"))
    assert set(config.sources) == set(raw["sources"])
