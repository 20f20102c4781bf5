"""Command line: `alertpull [-c CONFIG] [--log-format text|json] [-v|-q] COMMAND`.

Heavy modules (the runner, state and sink backends, connectors and their SDKs) are
imported inside the commands, so `alertpull --help` stays fast and SDK-free.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import click

from alertpull import __version__
from alertpull.errors import (
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_SOURCE_FAILED,
    EXIT_USAGE,
    AlertpullError,
    ConfigError,
)

if TYPE_CHECKING:
    from alertpull.config import Config, SourceConfig
    from alertpull.runner import SourceResult
    from alertpull.state.base import StateStore

DEFAULT_CONFIG = "alertpull.yaml"


class Context:
    def __init__(self, config_path: str, log_format: str | None, verbosity: int) -> None:
        self.config_path = config_path
        self.log_format = log_format
        self.verbosity = verbosity
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from alertpull.config import load_config

            self._config = load_config(self.config_path)
        return self._config

    def select(self, names: Iterable[str], all_sources: bool) -> list[SourceConfig]:
        sources = self.config.sources
        names = list(names)
        if all_sources == bool(names):
            raise ConfigError("name sources with --source NAME (repeatable) or pass --all")
        for name in names:
            if name not in sources:
                raise ConfigError(f"--source {name}: no such source in {self.config_path}; "
                                  f"configured: {', '.join(sources)}")
        return [sources[n] for n in dict.fromkeys(names or sources)]  # each once, in order


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"alertpull: error: {message}", err=True)
    sys.exit(code)


def _time_option(value: str | None, flag: str, now: datetime) -> datetime | None:
    from alertpull.timeutil import parse_time_arg

    if value is None:
        return None
    try:
        return parse_time_arg(value, now)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


pass_ctx = click.make_pass_decorator(Context)
source_option = click.option("--source", "sources", multiple=True, metavar="NAME",
                             help="A configured source (repeatable).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="alertpull")
@click.option("-c", "--config", "config_path", metavar="PATH",
              default=lambda: os.environ.get("ALERTPULL_CONFIG", DEFAULT_CONFIG),
              help=f"Config file [env ALERTPULL_CONFIG; default ./{DEFAULT_CONFIG}].")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="Log lines as text (default) or one JSON object per line.")
@click.option("-v", "--verbose", count=True, help="More logging.")
@click.option("-q", "--quiet", count=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: str, log_format: str | None, verbose: int,
        quiet: int) -> None:
    """Pull the alerts your security products raised into one append-only JSONL log.

    Exit codes: 0 all ok; 1 a source failed; 2 usage or config error; 75 lock held.
    """
    ctx.obj = Context(config_path, log_format, verbose - quiet)


@cli.command()
@source_option
@click.option("--all", "all_sources", is_flag=True, help="Every configured source.")
@click.option("--since", metavar="T", help="Backfill from T: RFC 3339, a date, or 90m/36h/30d.")
@click.option("--until", metavar="T", help="Stop at T instead of now minus settle.")
@click.option("--refetch", is_flag=True,
              help="With --since: pull the whole range again, even what is already written.")
@click.option("--dry-run", is_flag=True, help="Pull and count, but write no output or state.")
@click.option("--format", "output_format", type=click.Choice(["native", "ocsf"]), default=None,
              help="Write native records or OCSF 1.8.0 Detection Findings [default: the "
                   "sink's format, else native].")
@click.option("--metrics-file", metavar="PATH",
              help="At the end, write Prometheus metrics here (node_exporter textfile).")
@pass_ctx
def fetch(ctx: Context, sources: tuple[str, ...], all_sources: bool, since: str | None,
          until: str | None, refetch: bool, dry_run: bool, output_format: str | None,
          metrics_file: str | None) -> None:
    """Pull what changed since each source's cursor and write it."""
    from alertpull.log import LOGGER, setup_logging, source_logger
    from alertpull.runner import FetchFlags, SourceRun, log_summary
    from alertpull.sinks import open_sink
    from alertpull.state import open_state
    from alertpull.timeutil import utcnow

    selected = ctx.select(sources, all_sources)
    now = utcnow()
    flags = FetchFlags(since=_time_option(since, "--since", now),
                       until=_time_option(until, "--until", now), refetch=refetch,
                       dry_run=dry_run, output_format=output_format or ctx.config.sink["format"])
    if refetch and flags.since is None:
        raise ConfigError("--refetch needs --since T: say how far back to pull again")
    if flags.since and flags.until and flags.since >= flags.until:
        raise ConfigError("--since must be earlier than --until")
    if metrics_file:
        _check_metrics_dir(metrics_file)
    progress = setup_logging(ctx.log_format, ctx.verbosity)
    store = open_state(ctx.config.state)
    sink = open_sink(ctx.config.sink)
    notifier = _notifier(ctx.config)
    results = []
    for source in selected:
        result = SourceRun(source, store, sink, flags, progress, notifier).run()
        progress.clear()
        log_summary(result, source_logger(source.name), dry_run=dry_run)
        results.append(result)
    if sink.durable and not dry_run and any(r.counts.written for r in results):
        logging.getLogger(LOGGER).info("alerts written under %s", sink.location())
    statuses = {r.status for r in results}
    if any(r.notify_errors for r in results):
        statuses.add("failed")  # ingestion went on; a target failing still fails the run
    if metrics_file and not _write_metrics(metrics_file, selected, results, store):
        statuses.add("failed")
    sys.exit(EXIT_SOURCE_FAILED if "failed" in statuses else
             EXIT_LOCKED if "locked" in statuses else EXIT_OK)


def _notifier(config: Config) -> Any:
    """The `notify:` targets with the log they read back, or None when there are none."""
    if not config.notify:
        return None
    from alertpull.alerts.reader import open_log
    from alertpull.notify.deliver import Notifier

    return Notifier(config.notify, open_log(config.sink))


def _check_metrics_dir(path: str) -> None:
    """Fail before pulling anything, rather than lose the metrics of a whole run."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(f"--metrics-file: directory {directory} does not exist; create it "
                          "(node_exporter reads --collector.textfile.directory)")


def _write_metrics(path: str, sources: list[SourceConfig], results: list[SourceResult],
                   store: StateStore) -> bool:
    """Write the run's metrics; a failure is logged and makes the run exit 1."""
    from alertpull.log import LOGGER
    from alertpull.metrics import run_metrics, write_metrics

    try:
        write_metrics(path, run_metrics(sources, results, store))
    except OSError as exc:
        logging.getLogger(LOGGER).error("cannot write metrics file %s: %s", path, exc.strerror)
        return False
    return True


@cli.command("sources")
@pass_ctx
def list_sources(ctx: Context) -> None:
    """List the configured sources and their types."""
    for source in ctx.config.sources.values():
        click.echo(f"{source.name}\t{source.type}")


@cli.command()
@source_option
@pass_ctx
def check(ctx: Context, sources: tuple[str, ...]) -> None:
    """Validate the config, then make one cheap authenticated call per source."""
    from alertpull.connectors import connector_class
    from alertpull.log import setup_logging, source_logger

    setup_logging(ctx.log_format, ctx.verbosity)
    failed = False
    for source in ctx.select(sources, all_sources=not sources):
        log = source_logger(source.name)
        try:
            detail = connector_class(source.type)(source.name, source.settings, log).check()
            click.echo(f"{source.name}: ok ({detail})")
        except AlertpullError as exc:
            failed = True
            click.echo(f"{source.name}: FAILED: {exc}")
        except Exception as exc:  # one source's bug must not hide the others' answers
            failed = True
            log.debug("check failed", exc_info=True)
            click.echo(f"{source.name}: FAILED: unexpected {type(exc).__name__} (-v for details)")
    sys.exit(EXIT_SOURCE_FAILED if failed else EXIT_OK)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def status(ctx: Context, as_json: bool) -> None:
    """Per source: cursor, last success, last failure, lag, last counts (reads state only)."""
    from alertpull.state import open_state
    from alertpull.status import source_status

    store = open_state(ctx.config.state)
    rows = []
    for source in ctx.config.sources.values():
        try:
            doc, error = store.load(source.name)[0], None
        except AlertpullError as exc:  # one unreadable document must not hide the others
            doc, error = None, str(exc)
        rows.append(source_status(source, doc, error))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(_status_line(row))


def _status_line(row: dict[str, Any]) -> str:
    last = row["last_run"] or {}
    counts = last.get("counts") or {}
    parts = [f"{row['source']} ({row['type']}): {row['state']}",
             f"watermark {row['watermark'] or '-'}",
             f"lag {row['lag'] or '-'}",
             f"last success {row['last_success'] or 'never'}"]
    if counts:
        parts.append(f"last run wrote {counts.get('written', 0)} of {counts.get('fetched', 0)} "
                     f"({counts.get('duplicates', 0)} duplicate, "
                     f"{counts.get('degraded', 0)} degraded"
                     + (f", {counts['unparsed']} unparsed" if counts.get("unparsed") else "")
                     + ")")
    for key, gap in row["retention_gaps"].items():
        parts.append(f"RETENTION GAP {key}: alerts changed from {gap['from']} to {gap['to']} "
                     f"may be lost ({gap['retention']} retention)")
    if row["retired_scopes"]:
        parts.append(f"retired (no longer configured): {', '.join(row['retired_scopes'])}")
    if row["last_failure"]:
        parts.append(f"last failure {row['last_failure']['at']}: {row['last_failure']['error']}")
    return "; ".join(parts)


@cli.group()
def cursor() -> None:
    """Show, reset or set a source's cursor."""


@cursor.command("show")
@click.option("--source", "name", required=True, metavar="NAME")
@pass_ctx
def cursor_show(ctx: Context, name: str) -> None:
    """Print every scope's cursor as JSON."""
    from alertpull.state import open_state

    ctx.select([name], False)
    doc, _ = open_state(ctx.config.state).load(name)
    scopes = (doc or {}).get("scopes", {})
    click.echo(json.dumps({k: v.get("cursor") for k, v in scopes.items()}, indent=2))


def _edit_cursors(ctx: Context, name: str, scope: str | None,
                  edit: Callable[[dict[str, Any], str], None]) -> None:
    from alertpull.delivery import new_document, recover_pending
    from alertpull.log import setup_logging, source_logger
    from alertpull.sinks import open_sink
    from alertpull.state import open_state

    source = ctx.select([name], False)[0]
    setup_logging(ctx.log_format, ctx.verbosity)
    store = open_state(ctx.config.state)
    with store.lock(name):
        try:
            doc, token = store.load(name)
        except AlertpullError:
            if scope is not None or edit is not _reset:
                raise
            # Resetting every scope is the documented way out of a corrupt document.
            store.discard(name)
            click.echo(f"{name}: unreadable state discarded; the next fetch starts afresh")
            return
        doc = doc or new_document(name, source.type)
        # A run that died after publishing is finished first, or its cursor (and the
        # versions it remembers) would be lost and its alerts written again.
        recover_pending(doc, open_sink(ctx.config.sink), source_logger(name))
        known = list(doc["scopes"])
        if not known:
            raise ConfigError(f"source {name} has no cursor yet; run fetch first")
        if scope is not None and scope not in known:
            raise ConfigError(f"--scope {scope}: no such scope of {name}; known: "
                              f"{', '.join(known)}")
        for key in [scope] if scope else known:
            edit(doc["scopes"][key], key)
        store.save(name, doc, token)


@cursor.command("reset")
@click.option("--source", "name", required=True, metavar="NAME")
@click.option("--scope", default=None, metavar="KEY", help="Only this scope (see cursor show).")
@pass_ctx
def cursor_reset(ctx: Context, name: str, scope: str | None) -> None:
    """Forget the cursor: the next fetch starts at first_run_since again."""

    _edit_cursors(ctx, name, scope, _reset)


def _reset(entry: dict[str, Any], key: str) -> None:
    entry.pop("cursor", None)
    click.echo(f"{key}: cursor reset")


@cursor.command("set")
@click.option("--source", "name", required=True, metavar="NAME")
@click.option("--scope", default=None, metavar="KEY", help="Only this scope (see cursor show).")
@click.option("--watermark", required=True, metavar="T", help="RFC 3339, a date, or 90m/36h/30d.")
@pass_ctx
def cursor_set(ctx: Context, name: str, scope: str | None, watermark: str) -> None:
    """Move the watermark back: the next fetch re-reads from T (and may write again what
    it no longer remembers). Never forward: that would skip alerts never pulled."""
    from alertpull.cursor import Cursor, set_watermark
    from alertpull.timeutil import format_time, utcnow

    now = utcnow()
    mark = _time_option(watermark, "--watermark", now)
    assert mark is not None
    if mark > now:
        raise ConfigError("--watermark is in the future; alerts changed until then would be "
                          "skipped")

    def move(entry: dict[str, Any], key: str) -> None:
        try:
            moved = set_watermark(Cursor.from_json(entry.get("cursor")), mark)
        except ValueError as exc:
            raise ConfigError(f"--watermark: {key}: {exc}; to pull less per run, use "
                              "fetch --until") from None
        entry["cursor"] = moved.to_json()
        click.echo(f"{key}: watermark set to {format_time(mark)}")

    _edit_cursors(ctx, name, scope, move)


@cli.command()
@click.argument("type_name", metavar="TYPE")
@click.option("--name", "source_name", metavar="NAME", help="The source's name in the block.")
def example(type_name: str, source_name: str | None) -> None:
    """Print a commented config block for a source type."""
    from alertpull.example import example_block

    click.echo(example_block(type_name, source_name), nl=False)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the output record."""
    from importlib.resources import files

    click.echo(files("alertpull").joinpath("schema/record.schema.json").read_text())


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        _fail("aborted", 130)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(f"{exc.format_message()}{hint}", EXIT_USAGE)
    except AlertpullError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # never a traceback under cron unless asked for
        if os.environ.get("ALERTPULL_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set ALERTPULL_DEBUG=1 for details)",
              EXIT_SOURCE_FAILED)


def _register_views() -> None:
    """`alertpull alerts` lives in its own package (alertpull.alerts.command)."""
    from alertpull.alerts.command import alerts

    cli.add_command(alerts)


_register_views()
