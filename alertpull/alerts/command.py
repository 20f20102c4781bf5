"""`alertpull alerts`: the current state of every alert across all sources, read from the
configured sink. Registered on the main group by alertpull.cli; the reading and
rendering live in this package's other modules and are imported when a command runs."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from alertpull.errors import ConfigError

if TYPE_CHECKING:
    from alertpull.cli import Context

SEVERITIES = ("informational", "low", "medium", "high", "critical")
STATUS_CHOICES = ("open", "new", "in_progress", "suppressed", "resolved", "archived",
                  "deleted", "unknown")
FORMATS = ("table", "json", "jsonl", "csv", "html")


def _emit(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text)
        return
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise ConfigError(f"-o {output}: cannot write: {exc.strerror}") from None


def _colour(output: str | None) -> bool:
    return output is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ


@click.group("alerts", invoke_without_command=True)
@click.option("--since", metavar="T",
              help="Alerts updated since T (RFC 3339, a date, or 90m/36h/30d); reads only "
                   "the dt= partitions from that day on.")
@click.option("--source", "sources", multiple=True, metavar="NAME",
              help="Only this source (repeatable).")
@click.option("--severity", type=click.Choice(SEVERITIES), default=None,
              help="At least this severe.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUS_CHOICES),
              help="Only this status (repeatable); open = new or in_progress.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N alerts.")
@click.option("--summary", is_flag=True,
              help="Open alerts by source and severity, with the oldest open one's age.")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table",
              help="table (default), json, jsonl, csv, or html (a self-contained page).")
@click.option("-o", "--output", metavar="PATH", help="Write here instead of stdout.")
@click.pass_context
def alerts(click_ctx: click.Context, since: str | None, sources: tuple[str, ...],
           severity: str | None, statuses: tuple[str, ...], limit: int | None,
           summary: bool, output_format: str, output: str | None) -> None:
    """The current state of every alert (its latest version), newest first."""
    if click_ctx.invoked_subcommand is not None:
        return
    from alertpull.alerts import render
    from alertpull.alerts.reader import open_log
    from alertpull.alerts.view import OPEN, Query, current, open_alerts, summarize
    from alertpull.timeutil import parse_time_arg, utcnow

    ctx: Context = click_ctx.obj
    now = utcnow()
    try:
        start = parse_time_arg(since, now) if since else None
    except ValueError as exc:
        raise ConfigError(f"--since: {exc}") from None
    if sources:
        ctx.select(sources, False)  # each must be configured
    wanted = tuple(dict.fromkeys(s for status in statuses
                                 for s in (OPEN if status == "open" else (status,))))
    log = open_log(ctx.config.sink)
    if output_format == "html":
        from alertpull.alerts.html import FIELDS, report

        everything = current(log, Query(sources, start, severity, wanted), FIELDS)
        _emit(report(everything, now, "alertpull: open alerts"), output)
        return
    if summary:
        table = summarize(open_alerts(log, Query(sources, start, severity, wanted)))
        if output_format == "table":
            _emit(render.summary_table(table, now, colour=_colour(output)), output)
        else:
            _emit(_data(render.summary_rows(table, now), output_format), output)
        return
    # A table or CSV needs only its columns: the raw payloads are never held.
    fields = {"table": render.COLUMNS, "csv": render.CSV_COLUMNS}.get(output_format)
    chosen = current(log, Query(sources, start, severity, wanted, limit), fields)
    if output_format == "table":
        text = render.alerts_table(chosen, colour=_colour(output)) if chosen else "no alerts"
        _emit(text, output)
    else:
        _emit(_data(chosen, output_format), output)


def _data(rows: list[dict[str, Any]], output_format: str) -> str:
    from alertpull.alerts import render

    if output_format == "csv":
        return render.alerts_csv(rows)
    return render.alerts_json(rows, lines=output_format == "jsonl")


@alerts.command("show")
@click.argument("alert")
@click.option("--source", "sources", multiple=True, metavar="NAME",
              help="Look only in this source (repeatable).")
@click.option("--format", "output_format", type=click.Choice(("text", "json")),
              default="text")
@click.pass_obj
def show(ctx: Context, alert: str, sources: tuple[str, ...], output_format: str) -> None:
    """One alert's versions in order (ALERT: its id, dedup_key or native id), with what
    changed between them."""
    from alertpull.alerts import render
    from alertpull.alerts.reader import open_log
    from alertpull.alerts.view import versions

    if sources:
        ctx.select(sources, False)
    found = versions(open_log(ctx.config.sink), alert, sources or None)
    if not found:
        raise ConfigError(f"no alert {alert} in the log at {_where(ctx.config.sink)}; list "
                          "them with 'alertpull alerts'")
    if output_format == "json":
        click.echo(render.alerts_json(found, lines=False))
    else:
        click.echo(render.history(found))


def _where(sink: Any) -> str:
    scheme = "gs" if sink["type"] == "gcs" else "s3"
    return str(sink.get("path") or f"{scheme}://{sink.get('bucket')}/{sink.get('prefix', '')}")
