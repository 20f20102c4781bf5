"""alertpull: pull security alerts from many products into one append-only JSONL log."""

__version__ = "0.2.0"
