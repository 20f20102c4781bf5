"""`pip install .` must ship every engine package and the schema (an editable install
hides a package missing from pyproject's list)."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def test_every_package_directory_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(path.parent.relative_to(REPO).parts)
        for path in (REPO / "alertpull").rglob("__init__.py")
    } | {"alertpull.connectors"}
    assert on_disk | {"alertpull.schema"} == listed
    assert config["package-dir"] == {"alertpull.connectors": "connectors"}
    assert config["package-data"]["alertpull.schema"] == ["*.json"]
