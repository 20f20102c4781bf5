"""The recipes shipped with alertpull: ordinary source types, each one spec file here.

`alertpull.rest.recipes:SentinelOne` (the registry's entry) is made from sentinelone.yaml
when first asked for, so a config that uses none of them reads none.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alertpull.rest.connector import RestConnector, connector_for
from alertpull.rest.spec import read_spec_file

RECIPES = {"SentinelOne": "sentinelone", "ThinkstCanary": "thinkst_canary",
           "CrowdStrike": "crowdstrike"}


def spec_path(type_name: str) -> Path:
    return Path(__file__).with_name(f"{type_name}.yaml")


@functools.cache
def recipe(type_name: str) -> type[RestConnector]:
    return connector_for(read_spec_file(str(spec_path(type_name)), type_name), type_name)


def __getattr__(name: str) -> type[RestConnector]:
    if name in RECIPES:
        return recipe(RECIPES[name])
    raise AttributeError(name)
