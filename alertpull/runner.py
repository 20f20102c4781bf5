"""One run of one source: lock, recover, plan, pull every scope, deliver, commit.

The runner owns the cursor, the dedup and the delivery; the connector only pulls
and normalizes. Sources are independent: one failing never stops another.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import secrets
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from alertpull.config import SourceConfig
from alertpull.connector import Connector, Scope
from alertpull.connectors import connector_class
from alertpull.cursor import Cursor, WindowPolicy, plan_windows
from alertpull.delivery import (
    ScopeCommit,
    apply_cursors,
    new_document,
    publish,
    recover_pending,
    stage_pending,
)
from alertpull.errors import AlertpullError, LockHeld
from alertpull.failpoints import failpoint
from alertpull.log import Progress, source_logger
from alertpull.pull import Counts, ScopePull
from alertpull.shutdown import Stopped, deferred, map_concurrently
from alertpull.sinks.base import Sink, Writer
from alertpull.state.base import StateStore
from alertpull.timeutil import format_duration, format_time, utcnow

if TYPE_CHECKING:
    from alertpull.notify.deliver import Notifier


@dataclass(frozen=True)
class FetchFlags:
    since: datetime | None = None
    until: datetime | None = None
    refetch: bool = False
    dry_run: bool = False
    output_format: str = "native"  # native | ocsf: `--format`, else the sink's `format`


@dataclass
class ScopeOutcome:
    scope: Scope
    counts: Counts
    commit: ScopeCommit | None = None  # None when the scope failed
    error: str | None = None
    gap: dict[str, str] | None = None  # a retention gap: committed, yet the source fails


@dataclass
class SourceResult:
    name: str
    status: str  # ok | failed | locked
    counts: Counts = field(default_factory=Counts)
    scopes: int = 0
    seconds: float = 0.0
    watermark: str | None = None
    error: str | None = None
    notify_errors: list[str] = field(default_factory=list)  # one line per failing target


class SourceRun:
    def __init__(self, config: SourceConfig, store: StateStore, sink: Sink, flags: FetchFlags,
                 progress: Progress, notifier: Notifier | None = None) -> None:
        self.config = config
        self.notifier = notifier
        self.store = store
        self.sink = sink
        self.flags = flags
        self.progress = progress
        self.log = source_logger(config.name)
        self.started = utcnow()
        self.run_id = secrets.token_hex(4)
        self.recorded = False  # this run's pending delivery is in state
        self.committed = False  # this run's output and cursors are committed

    def run(self) -> SourceResult:
        """The source's result; a shutdown signal raises Stopped once the lock is released
        and what this run staged is discarded."""
        clock = time.monotonic()
        try:
            with ExitStack() as held:
                with deferred():  # a stop halfway through taking an S3 lease would leak it
                    held.enter_context(self.store.lock(self.config.name))
                try:
                    result = self._run_locked()
                except Stopped:
                    self._discard_staged()
                    raise
        except LockHeld as exc:
            result = SourceResult(self.config.name, "locked", error=str(exc))
        except AlertpullError as exc:
            result = SourceResult(self.config.name, "failed", error=str(exc))
        except Exception as exc:  # one source's bug or broken disk never stops the others
            result = SourceResult(self.config.name, "failed", error=unexpected(exc, self.log))
        result.seconds = round(time.monotonic() - clock, 3)
        return result

    def stopped_line(self) -> str:
        """What a stop during this run leaves, for the one line the stopped process prints."""
        name = self.config.name
        if self.committed:
            return f"{name}: finished before the stop, its output and cursor committed"
        if self.recorded:
            return f"{name}: stopped while publishing; the next run completes it"
        if not self.sink.durable and not self.flags.dry_run:
            return (f"{name}: the cursor did not move, the next run resumes from it (lines "
                    f"already on {self.sink.location()} may be written again)")
        return f"{name}: nothing published this run, the next run resumes from the cursor"

    def _discard_staged(self) -> None:
        """Stopped before its delivery was recorded: nothing staged will be published.
        (Scopes still pulling may write on into their unlinked files, seen by no one.)"""
        if self.recorded or self.committed or self.flags.dry_run:
            return
        try:
            self.sink.discard_orphans(self.config.name)
        except OSError:  # the next run's start discards them again
            self.log.debug("could not discard staged output", exc_info=True)

    def _run_locked(self) -> SourceResult:
        name = self.config.name
        doc, token = self.store.load(name)
        doc = doc or new_document(name, self.config.type)
        if not self.flags.dry_run:
            with deferred():  # finishing an earlier run's delivery is publish-and-commit too
                if recover_pending(doc, self.sink, self.log):
                    token = self.store.save(name, doc, token)
                self.sink.discard_orphans(name)
        connector = connector_class(self.config.type)(name, self.config.settings, self.log)
        connector.concurrency = self.config.timing["concurrency"]
        try:
            scopes = connector.scopes()
        except AlertpullError as exc:
            return self._finish(doc, token, [], error=str(exc))
        except Exception as exc:
            return self._finish(doc, token, [], error=unexpected(exc, self.log))
        _mark_retired(doc, scopes)
        # What exists now (the modules, the vendor SDK's client and its service model) lives
        # as long as the pull: frozen, the collector's full passes skip it (with an SDK
        # loaded they were ~4% of a pull's CPU); collectable again afterwards.
        gc.freeze()
        try:
            outcomes = self._pull_all(connector, scopes, doc)
        finally:
            gc.unfreeze()
        errors = [f"{o.scope.key}: {o.error}" for o in outcomes if o.error]
        return self._finish(doc, token, outcomes, error="; ".join(errors) or None)

    def _policy(self, connector: Connector, scope: Scope) -> WindowPolicy:
        timing = self.config.timing
        return WindowPolicy(
            overlap=next(o for o in (timing.get("overlap"), scope.overlap,
                                     connector.default_overlap) if o is not None),
            settle=timing["settle"],
            first_run_since=timing["first_run_since"],
            retention=(scope.retention or (scope.stream.retention if scope.stream else None)
                       or connector.retention),
            since=self.flags.since,
            until=self.flags.until,
            refetch=self.flags.refetch,
        )

    def _pull_all(self, connector: Connector, scopes: list[Scope],
                  doc: dict[str, Any]) -> list[ScopeOutcome]:
        def pull(scope: Scope) -> ScopeOutcome:
            if scope.error:
                return ScopeOutcome(scope, Counts(), error=scope.error)
            cursor = Cursor.from_json(doc["scopes"].get(scope.key, {}).get("cursor"))
            return self._pull_scope(connector, scope, cursor, self._policy(connector, scope))

        return map_concurrently(pull, scopes, self.config.timing["concurrency"], "scope")

    def _pull_scope(self, connector: Connector, scope: Scope, cursor: Cursor,
                    policy: WindowPolicy) -> ScopeOutcome:
        plan = plan_windows(cursor, policy, self.started)
        for warning in plan.warnings:
            self.log.warning("%s: %s", scope.key, warning)
        writer: Writer | None = None
        pull: ScopePull | None = None
        try:
            if not self.flags.dry_run:
                part_id = hashlib.sha256(scope.key.encode()).hexdigest()[:8]
                writer = self.sink.open_part(self.config.name, self.started, self.run_id, part_id)
            pull = ScopePull(self.config.name, self.config.type, connector, scope, cursor, plan,
                             policy, writer, self.progress, self.log,
                             output_format=self.flags.output_format)
            new_cursor = pull.run()
            part = writer.close() if writer is not None and writer.records else None
            if writer is not None and part is None:
                writer.discard()
            outcome = ScopeOutcome(scope, pull.counts, ScopeCommit(part, new_cursor.to_json(),
                                                     pull.firsts.ranges if part else []))
            if plan.lost and policy.retention:
                # What remains is pulled and committed; the loss is still a failure.
                start, end = (format_time(t) for t in plan.lost)
                retention = format_duration(policy.retention)
                outcome.gap = {"from": start, "to": end, "retention": retention}
                outcome.error = (f"alerts changed from {start} to {end} may be lost: the last "
                                 f"run was longer ago than the {retention} the vendor keeps them")
            return outcome
        except AlertpullError as exc:
            error = str(exc)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            error = f"cannot write output under {self.sink.location()}: {exc.strerror}{where}"
        except Exception as exc:  # a connector bug must not take the other sources down
            error = unexpected(exc, self.log)
        if writer is not None:
            writer.discard()
        counts = pull.counts if pull else Counts()
        counts.written = 0  # its staged lines were discarded, never published
        return ScopeOutcome(scope, counts, error=error)

    def _finish(self, doc: dict[str, Any], token: Any, outcomes: list[ScopeOutcome],
                error: str | None) -> SourceResult:
        name = self.config.name
        counts = Counts()
        for outcome in outcomes:
            counts.add(outcome.counts)
        commits = {o.scope.key: o.commit for o in outcomes if o.commit is not None}
        if not self.flags.dry_run:
            # Once begun, publish-and-commit completes (it takes well under a second): a
            # stop then leaves the source fully delivered rather than to be recovered.
            with deferred():
                if self.sink.durable and any(c.part for c in commits.values()):
                    stage_pending(doc, self.run_id, commits, self._owed_to())
                    failpoint("before_pending")
                    token = self.store.save(name, doc, token)
                    self.recorded = True
                    failpoint("after_pending")
                    self.store.assert_held(name)  # a run that lost its lease publishes nothing
                    publish(self.sink, commits)
                    failpoint("after_publish")
                apply_cursors(doc, commits)
                self._record_run(doc, counts, error)
                _record_gaps(doc, outcomes, ok=error is None)
                self.store.assert_held(name)  # ... and commits nothing
                token = self.store.save(name, doc, token)
                self.committed = True
                failpoint("after_commit")
        notify_errors = self._notify(doc, token) if not self.flags.dry_run else []
        watermarks = [c.cursor["watermark"] for c in commits.values() if c.cursor["watermark"]]
        return SourceResult(
            name=name,
            status="failed" if error else "ok",
            counts=counts,
            scopes=len(outcomes),
            watermark=min(watermarks) if watermarks else None,
            error=error,
            notify_errors=notify_errors,
        )

    def _owed_to(self) -> list[str]:
        """Keys of the targets this run's published parts are owed to (see notify.ledger)."""
        if self.notifier is None:
            return []
        return self.notifier.keys_for(self.config.name, self.flags.output_format)

    def _notify(self, doc: dict[str, Any], token: Any) -> list[str]:
        """After the commit: deliver what the published parts owe the targets, each
        target's position saved once it accepted."""
        if self.notifier is None or not doc.get("notify"):
            return []

        def save(updated: dict[str, Any]) -> None:
            nonlocal token
            token = self.store.save(self.config.name, updated, token)

        errors = self.notifier.deliver(doc, save, self.log)
        for line in errors:
            self.log.error("notify: %s", line)
        return errors

    def _record_run(self, doc: dict[str, Any], counts: Counts, error: str | None) -> None:
        finished = format_time(utcnow())
        doc["last_run"] = {
            "run_id": self.run_id,
            "started_at": format_time(self.started),
            "finished_at": finished,
            "ok": error is None,
            "error": error,
            "counts": asdict(counts),
        }
        if error:
            doc["last_failure"] = {"at": finished, "error": error}
        else:
            doc["last_success"] = finished


def _mark_retired(doc: dict[str, Any], scopes: list[Scope]) -> None:
    """A scope the connector no longer lists (a region removed, a changed base_url) keeps
    its cursor, marked retired, so `status` does not report its lag as growing forever."""
    current = {scope.key for scope in scopes if not scope.error}
    unknown = tuple(f"{scope.key}/" for scope in scopes if scope.error)  # not listed: kept
    for key, entry in doc["scopes"].items():
        if key in current or key.startswith(unknown):
            entry.pop("retired", None)
        else:
            entry["retired"] = True


def _record_gaps(doc: dict[str, Any], outcomes: list[ScopeOutcome], ok: bool) -> None:
    """Keep each scope's retention gap in state for `status`, until a run succeeds."""
    for outcome in outcomes:
        entry = doc["scopes"].get(outcome.scope.key)
        if entry is None:
            continue
        if outcome.gap:
            entry["retention_gap"] = outcome.gap
        elif ok:
            entry.pop("retention_gap", None)


def unexpected(exc: Exception, log: logging.LoggerAdapter[Any]) -> str:
    """A one-line report of a bug: the type only, since its text may quote a response."""
    log.debug("unexpected error", exc_info=True)
    return f"unexpected {type(exc).__name__} (run with -v for the traceback)"


def log_summary(result: SourceResult, log: logging.LoggerAdapter[Any], *,
                dry_run: bool = False) -> None:
    """One line per source per run, with the figures as structured fields for JSON logs."""
    c = result.counts
    fields = {**asdict(c), "status": result.status, "scopes": result.scopes,
              "seconds": result.seconds, "watermark": result.watermark, "dry_run": dry_run}
    if result.status == "ok":
        # A dry run writes nothing and keeps the cursor: say what a real run would do.
        # Unparsed input is rare and only file and object readers have it: named when met.
        unparsed = f", {c.unparsed} unparsed" if c.unparsed else ""
        log.info("%s: %d fetched, %d %s, %d duplicate, %d degraded%s, %d pages, "
                 "%d scope(s), %.1fs, watermark %s", "dry run" if dry_run else "ok",
                 c.fetched, c.written, "to write" if dry_run else "written", c.duplicates,
                 c.degraded, unparsed, c.pages, result.scopes, result.seconds,
                 f"{result.watermark} (not saved)" if dry_run else result.watermark,
                 extra=fields)
    else:
        log.error("%s: %s", result.status, result.error, extra=fields)
