"""The `notify:` section: a list of targets, each validated into a `Target`.

A target is named in messages by its `name` (or its place, `notify[0]`) and its URL's
host, never by its URL: a Slack incoming-webhook URL is itself the secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from alertpull.config import validate_block
from alertpull.connector import Option, Secret
from alertpull.errors import ConfigError
from alertpull.http import DEFAULT_RETRIES
from alertpull.record import SEVERITY_IDS, STATUSES

# Thresholds: `unknown` (id 0) ranks below every one, so it is no threshold itself.
SEVERITIES = tuple(s for s in SEVERITY_IDS if s != "unknown")

_FILTERS: dict[str, Option] = {
    "type": Option(required=True),
    "name": Option(help="names the target in messages and state (default: notify[N])"),
    "min_severity": Option(choices=SEVERITIES, help="only alerts at least this severe"),
    "sources": Option(kind="list", help="only these configured sources"),
    "statuses": Option(kind="list", choices=STATUSES, help="only alerts in these statuses"),
    "changes": Option(default="new", choices=("new", "all"),
                      help="new: an alert's first version only; all: every new version"),
    "retries": Option(kind="int", default=DEFAULT_RETRIES, minimum=0,
                      help="times one delivery is retried through 429, 5xx and timeouts"),
}
TARGET_OPTIONS: dict[str, dict[str, Option]] = {
    "webhook": {
        **_FILTERS,
        "url": Option(required=True, secret=True, help="receiver URL (may hold a token)"),
        "bearer_token": Option(secret=True, help="sent as Authorization: Bearer"),
        "headers": Option(kind="map", help="extra headers; values are secrets"),
        "signature_secret": Option(secret=True,
                                   help="HMAC-SHA256 of the body in X-Alertpull-Signature"),
    },
    "slack": {
        **_FILTERS,
        "url": Option(required=True, secret=True, help="Slack incoming-webhook URL"),
        "max_messages": Option(kind="int", default=20,
                               help="more alerts than this in a run: one summary message"),
    },
}


@dataclass(frozen=True)
class Target:
    index: int
    type: str  # webhook | slack
    url: Secret
    min_severity: str | None
    sources: tuple[str, ...]
    statuses: tuple[str, ...]
    changes: str  # new | all
    retries: int
    name: str | None = None
    headers: Mapping[str, Secret] = field(default_factory=dict)
    signature_secret: Secret | None = None
    max_messages: int = 20

    @property
    def key(self) -> str:
        """Its position's key in state: the name, else its place in the list."""
        return self.name or f"notify[{self.index}]"

    @property
    def host(self) -> str:
        return urlsplit(self.url.reveal()).hostname or "?"

    @property
    def label(self) -> str:
        """How messages name it: never the URL, whose path may be the secret."""
        place = f"notify[{self.index}]"
        named = f"{place} {self.name!r}" if self.name else place
        return f"notify target {named} ({self.type} to {self.host})"


def parse_notify(raw: Any, sink: Mapping[str, Any], sources: Mapping[str, Any],
                 base_dir: str) -> tuple[Target, ...]:
    """Validate the `notify:` list (present: alertpull.config reads no section as no
    targets) against the sink and the configured sources."""
    if not isinstance(raw, list):
        raise ConfigError("notify: expected a list of targets, e.g. "
                          "notify: [{type: slack, url: \"${SLACK_WEBHOOK}\"}]")
    if raw and sink["type"] == "stdout":
        raise ConfigError("notify: needs a sink it can read back (jsonl, s3 or gcs): it notifies "
                          "only what was published; with sink type stdout, notify from your "
                          "pipe instead")
    targets = [_target(i, item, sources, base_dir) for i, item in enumerate(raw)]
    keys = [t.key for t in targets]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigError(f"notify: two targets are named {key!r}; give each its own name")
    return tuple(targets)


def _target(index: int, data: Any, sources: Mapping[str, Any], base_dir: str) -> Target:
    where = f"notify[{index}]"
    if not isinstance(data, Mapping) or data.get("type") not in TARGET_OPTIONS:
        kind = data.get("type") if isinstance(data, Mapping) else data
        raise ConfigError(f"{where}.type: {kind!r} is not one of {', '.join(TARGET_OPTIONS)}")
    spec = TARGET_OPTIONS[data["type"]]
    values = validate_block(data, spec, where, base_dir)
    url = values["url"].reveal()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The URL itself is not quoted: for Slack it is the secret.
        raise ConfigError(f"{where}.url: expected an http(s) URL with a host")
    for name in values["sources"] or ():
        if name not in sources:
            raise ConfigError(f"{where}.sources: {name} is not a configured source; "
                              f"configured: {', '.join(sources)}")
    headers = {str(k): validate_block({"v": v}, {"v": Option(secret=True)},
                                      f"{where}.headers.{k}", base_dir)["v"]
               for k, v in (values.get("headers") or {}).items()}
    if values.get("bearer_token"):
        headers["Authorization"] = Secret(f"Bearer {values['bearer_token'].reveal()}")
    return Target(
        index=index,
        type=values["type"],
        url=values["url"],
        name=values["name"],
        min_severity=values["min_severity"],
        sources=tuple(values["sources"] or ()),
        statuses=tuple(values["statuses"] or ()),
        changes=values["changes"],
        retries=values["retries"],
        headers=headers,
        signature_secret=values.get("signature_secret"),
        max_messages=values.get("max_messages") or 20,
    )
