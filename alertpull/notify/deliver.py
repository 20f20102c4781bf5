"""Deliver a source's notification outbox to its targets, after the run's commit.

Each target reads the published parts it is owed back from the sink (never the run's
in-memory records: only what is in the log is notified), sends what its filters admit,
and its position is saved after the target accepted. A target that fails keeps its
position (the next run starts there again) and never holds up another target.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from alertpull.alerts.reader import Log
from alertpull.errors import SourceError
from alertpull.notify.config import Target
from alertpull.notify.ledger import forget_targets, is_first, outbox, prune
from alertpull.notify.slack import alert_message, summary_message
from alertpull.notify.targets import Sender, TargetDown, idempotency_key
from alertpull.record import SEVERITY_IDS, dump_json


def wants(target: Target, record: dict[str, Any], first: bool) -> bool:
    """Whether the target's filters admit this published version."""
    if target.changes == "new" and not first:
        return False
    if target.min_severity and (SEVERITY_IDS.get(str(record.get("severity")), 0)
                                < SEVERITY_IDS[target.min_severity]):
        return False
    if target.statuses and record.get("status") not in target.statuses:
        return False
    return not target.sources or record.get("source") in target.sources


def matching(target: Target, entry: dict[str, Any],
             log: Log) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """(line number, line, record) of the part's lines from the target's position on that
    its filters admit."""
    start = entry["waiting"][target.key]
    for index, line in enumerate(log.lines(entry["part"])):
        if index < start:
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise SourceError(f"published part {entry['part']} line {index + 1} is not JSON; "
                              "it cannot be notified") from None
        if wants(target, record, is_first(entry["firsts"], index)):
            yield index, line, record


@dataclass(frozen=True)
class Notifier:
    """The configured targets and the log they read published parts back from."""

    targets: tuple[Target, ...]
    log: Log

    def keys_for(self, source: str, output_format: str) -> list[str]:
        """The targets a part of this source is owed to. None for OCSF output: targets
        read native records back (see docs/notify.md)."""
        if output_format != "native":
            return []
        return [t.key for t in self.targets if not t.sources or source in t.sources]

    def deliver(self, doc: dict[str, Any], save: Callable[[dict[str, Any]], None],
                logger: logging.LoggerAdapter[Any]) -> list[str]:
        return deliver_outbox(doc, save, self.targets, self.log, logger)


def deliver_outbox(doc: dict[str, Any], save: Callable[[dict[str, Any]], None],
                   targets: tuple[Target, ...], log: Log,
                   logger: logging.LoggerAdapter[Any]) -> list[str]:
    """Deliver every target's share of the outbox; return one error line per failed target."""
    if not doc.get("notify"):
        return []
    for key, parts in forget_targets(doc, {t.key for t in targets}).items():
        logger.warning("notify target %s is no longer configured: forgot the %d published "
                       "part(s) it had not been told about", key, parts)
    errors = []
    for target in targets:
        entries = [e for e in outbox(doc) if target.key in e["waiting"]]
        if not entries:
            continue
        sent = 0
        try:
            sent = _deliver(target, entries, log)
        except (TargetDown, SourceError) as exc:
            errors.append(str(exc))
        finally:
            prune(doc)
            save(doc)  # the position reached, accepted or not beyond it
        if sent:
            logger.info("%s: %d message(s) delivered", target.label, sent)
    return errors


def _deliver(target: Target, entries: list[dict[str, Any]], log: Log) -> int:
    sender = Sender(target)
    if target.type == "slack":
        severities: Counter[str] = Counter()
        sources: Counter[str] = Counter()
        for entry in entries:
            for _, _, record in matching(target, entry, log):
                severities[str(record.get("severity"))] += 1
                sources[str(record.get("source"))] += 1
        total = sum(severities.values())
        if total > target.max_messages:
            where = f"{entries[0]['part']}:{entries[0]['waiting'][target.key]}:{total}"
            key = f"summary:{hashlib.sha256(where.encode()).hexdigest()[:32]}"
            sender.post(dump_json(summary_message(severities, sources)), key)
            for entry in entries:
                del entry["waiting"][target.key]
            return 1
    sent = 0
    for entry in entries:
        for index, line, record in matching(target, entry, log):
            body = dump_json(alert_message(record)) if target.type == "slack" else line
            sender.post(body, idempotency_key(record))
            entry["waiting"][target.key] = index + 1
            sent += 1
        del entry["waiting"][target.key]
    return sent
