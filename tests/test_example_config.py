"""config.example.yaml documents every key of every source type, and is valid YAML."""

from __future__ import annotations

import re

import pytest
import yaml

from alertpull.config import SINK_OPTIONS, STATE_OPTIONS, TIMING_OPTIONS
from alertpull.connectors import REGISTRY, connector_class
from tests.conftest import REPO, run_cli

EXAMPLE = (REPO / "config.example.yaml").read_text()


def documented_keys(block: str) -> set[str]:
    """Keys written as `key:` or `# key:` at the start of a line."""
    return set(re.findall(r"^\s*(?:#\s*)?([a-z0-9_]+):", block, re.M))


def test_every_source_type_has_a_block_documenting_all_its_options() -> None:
    blocks = re.split(r"\n(?=  \S)", EXAMPLE.split("\nsources:", 1)[1])
    by_type = {re.search(r"type: (\w+)", b).group(1): b for b in blocks if "type:" in b}
    assert set(by_type) == set(REGISTRY)
    for type_name, block in by_type.items():
        missing = set(connector_class(type_name).options) - documented_keys(block)
        assert not missing, f"{type_name}: {sorted(missing)} undocumented"


def test_engine_keys_are_documented_and_the_file_parses() -> None:
    engine = {key for variant in (*STATE_OPTIONS.values(), *SINK_OPTIONS.values())
              for key in variant} | set(TIMING_OPTIONS)
    assert engine <= documented_keys(EXAMPLE)
    assert set(yaml.safe_load(EXAMPLE)["sources"]) == {
        "aws-prod", "aws-hub", "gcp-org", "workspace", "entra", "intune", "kandji", "sensors",
        "s1", "canary", "falcon", "my-vendor"}


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_example_command_prints_a_block_with_every_option(type_name: str) -> None:
    shown = run_cli("example", type_name, "--name", "mine")
    assert shown.returncode == 0, shown.stderr
    block = yaml.safe_load(shown.stdout)["sources"]["mine"]
    options = connector_class(type_name).options
    required = {key for key, option in options.items() if option.required}
    # Required keys are written out, optional ones commented with their default.
    assert set(block) == {"type"} | required and block["type"] == type_name
    assert documented_keys(shown.stdout) == {"sources", "mine", "type", *options}
    for key, option in options.items():
        if option.secret:
            assert f"${{MINE_{key.upper()}}}" in shown.stdout


def test_example_of_an_unknown_type_names_the_known_ones() -> None:
    shown = run_cli("example", "nope")
    assert shown.returncode == 2 and "Traceback" not in shown.stderr
    assert shown.stderr.count("\n") == 1 and "guardduty" in shown.stderr
