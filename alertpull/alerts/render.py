"""Plain renderings of the current alerts: a fitted, coloured table for people on a
terminal; JSON, JSON lines and CSV for scripts; the summary; one alert's history."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from alertpull.alerts.view import SEVERITY_ORDER, SourceSummary, changes
from alertpull.timeutil import format_duration

COLUMNS = ("updated_at", "severity", "status", "source", "tenant", "title", "id")
CSV_COLUMNS = ("id", "updated_at", "severity", "status", "source", "tenant", "title",
               "link", "native_id", "created_at", "assignee", "count")
COLOURS: dict[str, dict[str, Any]] = {
    "critical": {"fg": "red", "bold": True}, "high": {"fg": "red"}, "medium": {"fg": "yellow"},
    "low": {"fg": "blue"}, "informational": {"dim": True}, "unknown": {"dim": True}}


def cell(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def table(rows: Sequence[Sequence[str]], header: Sequence[str], *, colour: bool,
          width: int | None = None, shrink: int | None = None,
          severity_column: int | None = None) -> str:
    """Columns as wide as their widest cell; when the lines would pass `width`, column
    `shrink` is cut to fit (with an ellipsis)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    if width and shrink is not None:
        over = sum(widths) + 2 * (len(widths) - 1) - width
        if over > 0:
            widths[shrink] = max(len(header[shrink]), widths[shrink] - over)
    lines = []
    for index, row in enumerate([header, *rows]):
        cells = []
        for col, text in enumerate(row):
            if len(text) > widths[col]:
                text = text[: widths[col] - 1] + "…"
            padded = text.ljust(widths[col]) if col < len(widths) - 1 else text
            if colour and index == 0:
                padded = click.style(padded, bold=True)
            elif colour and col == severity_column:
                padded = click.style(padded, **COLOURS.get(text, {}))
            cells.append(padded)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


MIN_TITLE = 20  # a narrower terminal drops the id, then the tenant, to keep titles readable


def alerts_table(alerts: Sequence[dict[str, Any]], *, colour: bool) -> str:
    width = shutil.get_terminal_size((160, 24)).columns if colour else None
    columns = list(COLUMNS)
    while width and len(columns) > 5:
        others = sum(max(len(c), *(len(cell(a.get(c))) for a in alerts))
                     for c in columns if c != "title")
        if others + 2 * (len(columns) - 1) + MIN_TITLE <= width:
            break
        columns.remove("id" if "id" in columns else "tenant")
    rows = [[cell(a.get(c)) for c in columns] for a in alerts]
    return table(rows, [c.upper() for c in columns], colour=colour, width=width,
                 shrink=columns.index("title"), severity_column=1)


def alerts_csv(alerts: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(alerts)
    return out.getvalue().rstrip("\n")


def alerts_json(alerts: Sequence[dict[str, Any]], lines: bool) -> str:
    if lines:
        return "\n".join(json.dumps(a, ensure_ascii=False) for a in alerts)
    return json.dumps(list(alerts), indent=2, ensure_ascii=False)


def summary_rows(summary: Sequence[SourceSummary], now: datetime) -> list[dict[str, Any]]:
    return [{"source": s.source, **{sev: s.open_by_severity.get(sev, 0) for sev in
                                    SEVERITY_ORDER},
             "open": s.total,
             "oldest_open_age": format_duration(now - s.oldest_open) if s.oldest_open else None}
            for s in summary]


def summary_table(summary: Sequence[SourceSummary], now: datetime, *, colour: bool) -> str:
    if not summary:
        return "no open alerts"
    rows = summary_rows(summary, now)
    header = ["SOURCE", *(s.upper() for s in SEVERITY_ORDER), "OPEN", "OLDEST OPEN"]
    cells = [[str(r["source"]), *(str(r[s]) for s in SEVERITY_ORDER), str(r["open"]),
              r["oldest_open_age"] or "-"] for r in rows]
    return table(cells, header, colour=colour)


def history(versions: Sequence[dict[str, Any]]) -> str:
    """One alert's versions in order, each with what changed since the one before."""
    first = versions[0]
    lines = [f"{first['title']}", f"id {first['id']}  source {first['source']}  tenant "
             f"{first['tenant']}  native id {first['native_id']}",
             f"link {first.get('link') or '-'}", ""]
    for number, version in enumerate(versions, 1):
        facts = ", ".join(f"{name} {cell(version.get(name)) or '-'}"
                          for name in ("status", "severity", "assignee", "count"))
        lines.append(f"v{number}  updated {version['updated_at']}  pulled "
                     f"{version['pulled_at']}  {facts}")
        if number > 1:
            moved = changes(versions[number - 2], version)
            lines.append("    changed: " + ("; ".join(
                f"{name} {cell(a) or '-'} -> {cell(b) or '-'}" for name, a, b in moved)
                if moved else "content only (raw payload)"))
    return "\n".join(lines)
