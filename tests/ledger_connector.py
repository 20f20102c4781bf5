"""`ledger`: a source type registered only in tests, for the engine's own tests.

It pulls the Ledger fake (tests/fakes/ledger.py) through the engine's HTTP policy
(alertpull.http) with either cursor kind, one stream per scope:
- `changes`: a time window on `changed_at`, paged by a token, ascending (ordered);
- `feed`: a position cursor (connector.Position) on the vendor's monotonic `seq`.

Register it with `registered_ledger` (tests/engine_env.py) in-process, or run the CLI
through `python -m tests.ledger_cli`, which registers it before alertpull's main.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from alertpull.connector import (
    Connector,
    Log,
    Memory,
    Option,
    Scope,
    Vendor,
    Window,
    max_retries_option,
)
from alertpull.errors import MalformedAlert, SourceError, WindowIncomplete, one_line
from alertpull.http import (
    DEFAULT_RETRIES,
    UnreadableAnswer,
    asked_again_if_unreadable,
    error_text,
    make_session,
)
from alertpull.record import SEVERITY_IDS, Normalized, parse_json
from alertpull.timeutil import format_time, parse_time

TYPE_NAME = "ledger"
REGISTRY_ENTRY = "tests.ledger_connector:LedgerConnector"
CHANGES, FEED = "changes", "feed"
PATHS = {CHANGES: "/v1/alerts", FEED: "/v1/feed"}
STATUSES = {"open": "new", "acknowledged": "in_progress", "closed": "resolved"}


class LedgerConnector(Connector):
    type_name = TYPE_NAME
    vendor = Vendor("Ledger")
    default_overlap = timedelta(hours=1)
    ordered = True  # `changes` is asked for in changed_at order; `feed` has a position
    options: ClassVar[Mapping[str, Option]] = {
        "base_url": Option(required=True, help="the Ledger API"),
        "api_token": Option(required=True, secret=True, help="Ledger API token"),
        "streams": Option("list", default=[CHANGES], choices=(CHANGES, FEED),
                          help="changes (time window) and/or feed (position cursor)"),
        "page_size": Option("int", default=100, help="alerts asked for per page"),
        "timeout_seconds": Option("seconds", default=60, help="seconds to wait for an answer"),
        "max_retries": max_retries_option(DEFAULT_RETRIES),
    }

    def __init__(self, source_name: str, settings: Mapping[str, Any], log: Log) -> None:
        super().__init__(source_name, settings, log)
        self.base_url = str(settings["base_url"]).rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        seconds = settings["timeout_seconds"]
        self._http = make_session(retries=settings["max_retries"], backoff=0.1,
                                  timeout=(seconds, seconds))

    def scopes(self) -> list[Scope]:
        return [Scope(key=f"{self.host}/{name}", params={"stream": name}, tenant=self.host,
                      position=name == FEED)
                for name in self.settings["streams"]]

    def fetch(self, scope: Scope, window: Window, memory: Memory) -> Iterator[list[Any]]:
        if scope.params["stream"] == FEED:
            yield from self._feed(memory)
            return
        query: dict[str, Any] = {"changed_since": format_time(window.start),
                                 "changed_before": format_time(window.end),
                                 "limit": self.settings["page_size"]}
        tokens: set[str] = set()
        while True:
            body = self._get(CHANGES, query)
            yield body["alerts"]
            token = body.get("next_page_token")
            if not token:
                return
            if token in tokens:
                raise WindowIncomplete("Ledger repeated a page token")
            tokens.add(token)
            query["page_token"] = token

    def _feed(self, memory: Memory) -> Iterator[list[Any]]:
        position = memory.position
        after = int(position.previous or 0)
        while True:
            body = self._get(FEED, {"after": after, "limit": self.settings["page_size"]})
            if not body["alerts"]:
                return
            reached = int(body["max_seq"])
            if reached <= after:
                raise WindowIncomplete(f"Ledger repeated the feed position {after}")
            yield body["alerts"]
            position.advance(reached)  # past what was just yielded, never further
            after = reached

    def normalize(self, scope: Scope, raw: Any) -> Normalized:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise MalformedAlert("Ledger alert without an id")
        changed = parse_time(raw["changed_at"])
        severity = raw.get("severity")
        return Normalized(
            native_id=raw["id"], tenant=self.host, changed_at=changed,
            title=str(raw["title"]),
            severity=severity if severity in SEVERITY_IDS else "unknown",
            severity_raw=None if severity is None else str(severity),
            status=STATUSES.get(raw.get("state"), "unknown"), status_raw=raw.get("state"),
            created_at=parse_time(raw["created_at"]), updated_at=changed,
            link=f"{self.base_url}/alerts/{raw['id']}",
            extra={"description": raw.get("description")},
        )

    def check(self) -> str:
        self._get(FEED, {"after": 0, "limit": 1})
        return f"Ledger at {self.host}"

    def _get(self, stream: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return asked_again_if_unreadable(lambda: self._get_once(stream, params),
                                         self.settings["max_retries"], backoff=0.1)

    def _get_once(self, stream: str, params: Mapping[str, Any]) -> dict[str, Any]:
        call = f"GET {PATHS[stream]}"
        token = self.settings["api_token"].reveal()
        try:
            response = self._http.get(self.base_url + PATHS[stream], params=params,
                                      headers={"Authorization": f"Bearer {token}"})
        except requests.exceptions.RequestException as exc:
            raise SourceError(f"{call}: cannot reach {self.base_url} ({type(exc).__name__}); "
                              "the next run reads it again") from None
        if response.status_code != 200:
            raise SourceError(f"Ledger answered {call} with HTTP {response.status_code}: "
                              f"{one_line(_message(response))}")
        try:
            body = parse_json(response.content)
        except ValueError:
            raise UnreadableAnswer(f"Ledger answered {call}") from None
        if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
            raise SourceError(f"Ledger answered {call} without an alerts list")
        return body


def _message(response: requests.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return error_text(response)
