"""Slack incoming-webhook messages: one readable message per alert, or one summary.

The payload is Slack's documented shape, `{"text": fallback, "blocks": [...]}` (as
slack_sdk's WebhookClient.send(text=, blocks=) posts it). Text from alerts is escaped as
Slack's mrkdwn requires (&, <, >), so a title cannot forge a link or a mention.

Slack rejects a section whose text passes 3,000 characters (`invalid_blocks`, a 400 that
would hold the target at that alert), so what comes from alerts is clipped first: a
title to 250 characters and each fact to 80, at most 2,600 once escaped (an escaped
character takes up to 5); the link is left out of the rare message it would push over.
Checked with slack_sdk's own Block Kit models (validate_json) while this was built.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from alertpull.record import SEVERITY_IDS

_MARKS = {"critical": ":red_circle:", "high": ":large_orange_circle:",
          "medium": ":large_yellow_circle:", "low": ":large_blue_circle:",
          "informational": ":white_circle:", "unknown": ":white_circle:"}


SECTION_LIMIT = 3000  # characters of a section's text, Slack's limit
TITLE_CHARS = 250
FACT_CHARS = 80


def clip(text: Any, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: Any, limit: int = SECTION_LIMIT) -> str:
    return clip(text, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert_message(record: Mapping[str, Any]) -> dict[str, Any]:
    severity = str(record.get("severity") or "unknown")
    raw_title = record.get("title") or record.get("native_id") or "untitled alert"
    title = escape(raw_title, TITLE_CHARS)
    link = record.get("link")
    facts = " · ".join(f"*{name}:* {escape(record.get(key) or '-', FACT_CHARS)}"
                       for name, key in (("Source", "source"), ("Tenant", "tenant"),
                                         ("Status", "status")))
    heading = f"{_MARKS.get(severity, '')} *{severity.upper()}* "
    # In <url|text> a '|' or '>' in the URL would end it early: such a link is left out.
    text = f"{heading}{title}\n{facts}"
    if link and not set("|<> ") & set(str(link)):
        linked = f"{heading}<{link}|{title}>\n{facts}"
        text = linked if len(linked) <= SECTION_LIMIT else text
    return {
        "text": f"[{severity.upper()}] {clip(raw_title, TITLE_CHARS)} "
                f"({clip(record.get('source'), FACT_CHARS)})",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


def summary_message(severities: Counter[str], sources: Counter[str]) -> dict[str, Any]:
    total = sum(severities.values())
    by_severity = ", ".join(f"{n} {s}" for s, n in sorted(
        severities.items(), key=lambda item: -SEVERITY_IDS.get(item[0], 0)))
    by_source = _listed(f"{escape(s, FACT_CHARS)} {n}" for s, n in sources.most_common())
    text = (f"*{total} alerts* to notify in this run, too many for one message each: "
            f"{by_severity}.\n*Sources:* {by_source}.\nSee them with `alertpull alerts "
            "--status open`.")
    return {"text": f"alertpull: {total} alerts ({by_severity})",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


SOURCES_CHARS = 2000  # of the summary's source list: the rest is counted, not named


def _listed(items: Iterable[str]) -> str:
    shown: list[str] = []
    length = left = 0
    for item in items:
        if left or length + len(item) > SOURCES_CHARS:
            left += 1
        else:
            shown.append(item)
            length += len(item) + 2
    return ", ".join(shown) + (f" and {left} more" if left else "")
