"""`python -m tests.ledger_cli ARGS`: the alertpull CLI with the test-only `ledger` source
type registered, as cron would run the installed one (the registry knows only shipped
types, so a test's source type is added in the process that reads the config)."""

from __future__ import annotations

from alertpull.cli import main
from alertpull.connectors import REGISTRY
from tests.ledger_connector import REGISTRY_ENTRY, TYPE_NAME

if __name__ == "__main__":
    REGISTRY[TYPE_NAME] = REGISTRY_ENTRY
    main()
