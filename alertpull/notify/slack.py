"""Slack incoming-webhook messages: one readable message per alert, or one summary.

The payload is Slack's documented shape, `{"text": fallback, "blocks": [...]}` (as
slack_sdk's WebhookClient.send(text=, blocks=) posts it). Text from alerts is escaped as
Slack's mrkdwn requires (&, <, >), so a title cannot forge a link or a mention.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from alertpull.record import SEVERITY_IDS

_MARKS = {"critical": ":red_circle:", "high": ":large_orange_circle:",
          "medium": ":large_yellow_circle:", "low": ":large_blue_circle:",
          "informational": ":white_circle:", "unknown": ":white_circle:"}


def escape(text: Any) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert_message(record: Mapping[str, Any]) -> dict[str, Any]:
    severity = str(record.get("severity") or "unknown")
    title = escape(record.get("title") or record.get("native_id") or "untitled alert")
    link = record.get("link")
    # In <url|text> a '|' or '>' in the URL would end it early: such a link is left out.
    shown = f"<{link}|{title}>" if link and not set("|<> ") & set(str(link)) else title
    facts = " · ".join(f"*{name}:* {escape(record.get(key) or '-')}" for name, key in (
        ("Source", "source"), ("Tenant", "tenant"), ("Status", "status")))
    return {
        "text": f"[{severity.upper()}] {record.get('title') or ''} ({record.get('source')})",
        "blocks": [{"type": "section", "text": {
            "type": "mrkdwn",
            "text": f"{_MARKS.get(severity, '')} *{severity.upper()}* {shown}\n{facts}"}}],
    }


def summary_message(severities: Counter[str], sources: Counter[str]) -> dict[str, Any]:
    total = sum(severities.values())
    by_severity = ", ".join(f"{n} {s}" for s, n in sorted(
        severities.items(), key=lambda item: -SEVERITY_IDS.get(item[0], 0)))
    by_source = ", ".join(f"{escape(s)} {n}" for s, n in sources.most_common())
    text = (f"*{total} alerts* to notify in this run, too many for one message each: "
            f"{by_severity}.\n*Sources:* {by_source}.\nSee them with `alertpull alerts "
            "--status open`.")
    return {"text": f"alertpull: {total} alerts ({by_severity})",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
