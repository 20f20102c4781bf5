"""Connector registry: source `type` -> the class that pulls it.

Entries are import paths, resolved only when a source of that type is used, so that
`alertpull --help` and config validation of other sources never import a vendor SDK.
"""

from __future__ import annotations

import importlib

from alertpull.connector import Connector

REGISTRY: dict[str, str] = {
    "guardduty": "alertpull.connectors.guardduty:GuardDutyConnector",
    "securityhub": "alertpull.connectors.securityhub:SecurityHubConnector",
    "scc": "alertpull.connectors.scc:SccConnector",
    "entra_id": "alertpull.connectors.entra_id:EntraIdConnector",
    "workspace_alertcenter": "alertpull.connectors.workspace_alertcenter:AlertCenterConnector",
    "kandji": "alertpull.connectors.kandji:KandjiConnector",
    "intune": "alertpull.connectors.intune:IntuneConnector",
    "suricata": "alertpull.connectors.suricata:SuricataConnector",
    "rest": "alertpull.rest.connector:RestConnector",
    "sentinelone": "alertpull.rest.recipes:SentinelOne",
    "thinkst_canary": "alertpull.rest.recipes:ThinkstCanary",
    "crowdstrike": "alertpull.rest.recipes:CrowdStrike",
}


def connector_class(type_name: str) -> type[Connector]:
    module_name, _, class_name = REGISTRY[type_name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)
