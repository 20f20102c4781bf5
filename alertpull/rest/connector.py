"""A Connector made from a spec: `type: rest` with `spec:`, and every shipped recipe.

The spec says how to ask (one request, rendered once per window), how to sign, how to
page and how to map; the engine keeps what it always keeps: the pinned window, version
dedup, the two-phase commit. One scope per base_url host. With a position cursor (a
monotonic vendor id such as Canary's `max_updated_id`) the scope is a position scope: the
engine's Position (alertpull.connector) is committed with the output, after it is
published, so a crash re-reads from the last committed position and dedup drops repeats.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from alertpull.connector import (
    Connector,
    Landmarks,
    Log,
    Memory,
    Option,
    Scope,
    Secret,
    Vendor,
    Window,
    max_retries_option,
    retry_base_option,
)
from alertpull.errors import ConfigError, SourceError, one_line, retries_phrase
from alertpull.http import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    RETRY_BASE_SECONDS,
    UnreadableAnswer,
    asked_again_if_unreadable,
    error_text,
    make_session,
)
from alertpull.log import redact_in_logs
from alertpull.paging import (
    LinkHeader,
    NextTokenInBody,
    NextUrlInBody,
    OffsetLimit,
    PageNumber,
    Paginator,
    Request,
    pages,
)
from alertpull.ratebudget import RateBudget
from alertpull.record import Normalized, parse_json, raw_sha256
from alertpull.rest import mapping
from alertpull.rest.auth import Authenticator
from alertpull.rest.render import Missing, format_bound, render, render_all
from alertpull.rest.spec import Call, Paging, Spec, load_spec
from alertpull.timeutil import to_epoch_ms, utcnow

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SPEC_OPTION = Option("path_or_mapping", required=True,
                     help="the spec: a YAML file (relative to this config) or an inline mapping")
# Every declared source takes these beside its spec's own options.
ENGINE_OPTIONS: dict[str, Option] = {
    "timeout_seconds": Option("seconds", default=60,
                              help="seconds to wait for a vendor's answer (connect and read)"),
    "max_retries": max_retries_option(DEFAULT_RETRIES),
    "retry_base_seconds": retry_base_option(RETRY_BASE_SECONDS),
}


class RestConnector(Connector):
    type_name = "rest"
    vendor = Vendor("REST API")
    options: ClassVar[Mapping[str, Option]] = {"spec": SPEC_OPTION}
    spec: ClassVar[Spec | None] = None  # set on the class made for one spec

    def __new__(cls, source_name: str, settings: Mapping[str, Any], log: Log) -> RestConnector:
        if cls.spec is None:  # `type: rest`: the class is made from the source's own spec
            cls = connector_for(load_spec(settings["spec"], "", f"sources.{source_name}"),
                                "rest", with_spec_option=True)
        return super().__new__(cls)

    @classmethod
    def configured(cls, where: str, data: Mapping[str, Any], base_dir: str) -> type[Connector]:
        if cls.spec is not None:
            return cls
        if data.get("spec") is None:
            raise ConfigError(f"{where}.spec: required key is missing; add the path of a spec "
                              "file (see docs/declarative.md) or an inline spec")
        return connector_for(load_spec(data["spec"], base_dir, where), "rest",
                             with_spec_option=True)

    @classmethod
    def check_settings(cls, where: str, settings: Mapping[str, Any]) -> None:
        if cls.spec is not None:  # a bad base_url is the config's fault: exit 2, now
            plain = {k: v for k, v in settings.items() if not isinstance(v, Secret)}
            try:
                url = str(render(cls.spec.base_url, plain))
            except Missing as unset:
                raise ConfigError(f"{where}.{unset}: the spec's base_url needs it; set it"
                                  ) from None
            _base_url(where.removeprefix("sources."), url)

    def __init__(self, source_name: str, settings: Mapping[str, Any], log: Log) -> None:
        super().__init__(source_name, settings, log)
        spec = type(self).spec
        assert spec is not None
        self.the_spec = spec
        self.base_url = _base_url(source_name, str(render(spec.base_url, self._plain())))
        self.host = urlsplit(self.base_url).netloc
        self._values = self._plain()  # read for every alert's mapping: built once
        self._secrets: set[str] = set()
        revealed = dict(self._values)
        for name in spec.secrets:
            value = settings.get(name)
            if isinstance(value, Secret):
                revealed[name] = value.reveal()
                self._remember(value.reveal())
        seconds = settings["timeout_seconds"]
        vendor_retry_after = (spec.retry_after_header,) if spec.retry_after_header else ()
        self._http = make_session(retries=settings["max_retries"],
                                  backoff=settings["retry_base_seconds"],
                                  timeout=(min(DEFAULT_TIMEOUT[0], seconds), seconds),
                                  retry_after_headers=vendor_retry_after)
        self._auth = Authenticator(spec.auth, revealed, self._http, self.base_url,
                                   spec.vendor, self._remember)
        self._budget = (RateBudget.shared(f"rest:{self.type_name}:{self.base_url}", *spec.rate)
                        if spec.rate else None)

    # -- the connector contract ----------------------------------------------------------

    def scopes(self) -> list[Scope]:
        return [Scope(key=self.host, position=self.the_spec.position is not None,
                      tenant=self.host)]

    def fetch(self, scope: Scope, window: Window, memory: Memory) -> Iterator[list[Any]]:
        spec = self.the_spec
        values = self._plain()  # its own: the window is added to it
        if spec.position is None:
            values["start"] = format_bound(window.start, spec.time_format)
            values["end"] = format_bound(window.end, spec.time_format)
            yield from self._new_versions(self._records(spec.request, values), window, memory)
            return
        start = memory.position.previous
        start = spec.position.initial if start is None else start
        newest = [start]
        for page in self._records(spec.request, {**values, "position": start}, newest):
            yield page
            if spec.position.record is not None:  # past what is yielded, should a page fail
                reached = [p for raw in page
                           if (p := spec.position.record.search(raw)) is not None]
                memory.position.advance(max([memory.position.reached or start, *reached],
                                            key=_order))
        memory.position.advance(max(newest, key=_order))  # the listing is complete

    def _new_versions(self, pages: Iterator[list[Any]], window: Window,
                      memory: Memory) -> Iterator[list[Any]]:
        """Pages less the alerts whose only change is in `version_ignores`, as remembered
        for `version_memory` (the engine's own memory spans only the overlap: a vendor that
        touches an alert days later would otherwise write it again). Only what lies in the
        window is remembered: what the engine drops as outside it was never written."""
        spec = self.the_spec
        if spec.version_memory is None:
            yield from pages
            return
        if memory.current is None:
            memory.current = {"versions": dict((memory.previous or {}).get("versions", {}))}
        remembered: dict[str, list[Any]] = memory.current["versions"]
        start, end = to_epoch_ms(window.start), to_epoch_ms(window.end)
        for page in pages:
            kept = []
            for raw in page:
                identity = self._identity(raw)
                if identity is None:
                    kept.append(raw)  # unreadable: normalize() reports it, degraded
                    continue
                key, changed_ms = identity
                digest = raw_sha256(self.version_view(raw))[:16]  # 64 bits: enough per alert
                if remembered.get(key, [None])[0] == digest:
                    memory.unchanged += 1  # touched, not changed
                    continue
                kept.append(raw)
                if start <= changed_ms < end:
                    remembered[key] = [digest, changed_ms]
            if kept:
                yield kept
        horizon = to_epoch_ms(utcnow() - spec.version_memory)
        memory.current["versions"] = {k: v for k, v in remembered.items() if v[1] >= horizon}

    def _identity(self, raw: Any) -> tuple[str, int] | None:
        fields = self.the_spec.fields
        try:
            native_id = fields.id.search(raw)
            changed = mapping.to_time(fields.changed_at.search(raw), "changed_at")
        except Exception:  # what cannot be read is normalize()'s to report
            return None
        return (str(native_id), to_epoch_ms(changed)) if native_id is not None else None

    def normalize(self, scope: Scope, raw: Any) -> Normalized:
        alert = mapping.normalize(raw, self.the_spec.fields, self.host, self._values)
        if alert.link:
            alert.link = self.redact(alert.link)
        return alert

    def version_view(self, raw: Any) -> Any:
        return mapping.version_view(raw, self.the_spec.version_ignores)

    def landmarks(self, scope: Scope) -> Landmarks:
        marks = self.the_spec.fields.landmarks
        return Landmarks(id=marks.get("id", ()), title=marks.get("title", ()),
                         created=marks.get("created_at", ()), updated=marks.get("changed_at", ()))

    def describe(self, raw: Any) -> str:
        found = self.the_spec.fields.id.search(raw) if isinstance(raw, dict) else None
        return str(found) if found is not None else super().describe(raw)

    def check(self) -> str:
        spec = self.the_spec
        end = utcnow()
        values = {**self._values, "start": format_bound(end - timedelta(hours=1),
                                                       spec.time_format),
                  "end": format_bound(end, spec.time_format),
                  "position": spec.position.initial if spec.position else None}
        call = spec.check or spec.request
        self._send(self._request(call, values))
        return f"{spec.vendor} {self.host}: the credentials read {call.method} {call.path}"

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # -- pages -----------------------------------------------------------------------------

    def _records(self, call: Call, values: Mapping[str, Any],
                 newest: list[Any] | None = None) -> Iterator[list[Any]]:
        """Every page's records, through the engine's one page loop (alertpull.paging). The
        request is rendered here, once; the paginator only carries the paging state."""
        spec = self.the_spec
        first = self._request(call, values)
        if spec.paging.kind == "offset":
            paginator = _paginator(spec.paging)
            assert isinstance(paginator, OffsetLimit)
            first = replace(first, params=paginator.first(first.params))
        else:
            paginator = _paginator(spec.paging)

        def records(body: Any) -> list[Any]:
            found = spec.records.search(body)
            if not isinstance(found, list):
                raise SourceError(f"{spec.vendor} answered {first.call} without a list at "
                                  f"{spec.records.expression}")
            if newest is not None and spec.position is not None:
                position = spec.position.answer.search(body)
                if position is not None:
                    newest.append(position)
            return found

        yield from pages(self._send, first, paginator, records, vendor=spec.vendor,
                         max_pages=spec.paging.max_pages)

    def _request(self, call: Call, values: Mapping[str, Any]) -> Request:
        try:
            path = str(render(call.path, values))
        except Missing as unset:
            raise SourceError(f"{self.the_spec.vendor}: the request path {call.path} needs the "
                              f"option {unset}; set it in the source's config") from None
        return Request(call.method,
                       path if path.startswith(("http://", "https://")) else self.base_url + path,
                       params=_query(render_all(dict(call.query), values)),
                       json=render_all(call.json, values) if call.json is not None else None,
                       headers=render_all(dict(call.headers), values))

    def _send(self, request: Request) -> tuple[requests.Response, Any]:
        return asked_again_if_unreadable(lambda: self._send_once(request),
                                         self.settings["max_retries"],
                                         self.settings["retry_base_seconds"])

    def _send_once(self, request: Request) -> tuple[requests.Response, Any]:
        what = request.call
        for attempt in (1, 2):
            if self._budget is not None:
                self._budget.acquire()
            headers = {"Accept": "application/json", **request.headers}
            params = dict(request.params)
            self._auth.sign(headers, params)
            with self._network_errors(what):
                response = self._http.request(request.method, request.url, params=params,
                                              json=request.json, headers=headers)
            if response.status_code == 401 and self._auth.refreshable and attempt == 1:
                self._auth.invalidate()  # a token revoked before its time: fetch another
                continue
            break
        if response.status_code != 200:
            raise self._api_error(response, what)
        try:
            return response, parse_json(response.content)
        except ValueError:
            raise UnreadableAnswer(f"{self.the_spec.vendor} answered {what}") from None

    @contextlib.contextmanager
    def _network_errors(self, what: str) -> Iterator[None]:
        retries = retries_phrase(self.settings["max_retries"])
        try:
            yield
        except requests.exceptions.SSLError:
            raise SourceError(f"{what}: TLS verification of {self.base_url} failed; if a proxy "
                              "or private CA signs its certificate, point REQUESTS_CA_BUNDLE at "
                              "that CA") from None
        except requests.exceptions.ChunkedEncodingError:
            raise SourceError(f"{what}: {self.base_url} cut its response short; the next run "
                              "reads the window again") from None
        except requests.exceptions.RequestException as exc:
            raise SourceError(f"{what}: cannot reach {self.base_url} after {retries} "
                              f"({type(exc).__name__}); check base_url, the network and "
                              "HTTPS_PROXY/NO_PROXY") from None

    def _api_error(self, response: requests.Response, what: str) -> SourceError:
        spec, status = self.the_spec, response.status_code
        said = self._said(response)
        retries = retries_phrase(self.settings["max_retries"])
        secrets = ", ".join(spec.secrets) or "the credentials"
        hint = spec.hints.get(status) or {
            401: f"the credentials are invalid or expired; check {secrets}",
            403: "the credentials lack the permission to read this; grant it in the console",
            404: "check base_url",
        }.get(status)
        if status == 429:
            hint = f"still rate-limited after {retries}; the next run resumes"
        elif status >= 500:
            hint = f"still failing after {retries}; the next run reads the window again"
        message = f"{spec.vendor} answered HTTP {status} to {what}{said}"
        return SourceError(self.redact(f"{message}: {hint}" if hint else message))

    def _said(self, response: requests.Response) -> str:
        detail: Any = None
        if self.the_spec.error_message is not None:
            with contextlib.suppress(ValueError):
                detail = self.the_spec.error_message.search(parse_json(response.content))
        text = one_line(self.redact(str(detail if detail is not None
                                        else error_text(response))), 200)
        return f" ({text})" if text else ""

    # -- values ----------------------------------------------------------------------------

    def _plain(self) -> dict[str, Any]:
        """The option values a template may name: every non-secret option, the host."""
        values = {name: value for name, value in self.settings.items()
                  if not isinstance(value, Secret) and name not in ENGINE_OPTIONS}
        host = getattr(self, "host", None)
        if host:
            values["base_url_host"] = host
        return values

    def _remember(self, secret: str) -> None:
        self._secrets.add(secret)
        redact_in_logs(secret)


def connector_for(spec: Spec, type_name: str, *, with_spec_option: bool = False
                  ) -> type[RestConnector]:
    """The Connector class of one spec: its options, vendor, retention and overlap."""
    options = {**({"spec": SPEC_OPTION} if with_spec_option else {}), **spec.options,
               **ENGINE_OPTIONS}
    return type(f"RestConnector[{type_name}]", (RestConnector,), {"__module__": __name__,
        "type_name": type_name, "vendor": Vendor(spec.vendor), "options": options,
        "spec": spec, "retention": spec.retention, "default_overlap": spec.overlap,
        "ordered": spec.ordered,
    })


def _order(value: Any) -> Any:
    """Positions compare as numbers where they are numbers (Canary's ids), else as text."""
    if isinstance(value, (int, float)):
        return (0, value, "")
    if isinstance(value, str) and value.isdigit():
        return (0, int(value), "")
    return (1, 0, str(value))


def _base_url(source: str, value: str) -> str:
    """scheme://host[:port]; http only towards this machine (a token must not go in clear)."""
    where = f"sources.{source}.base_url"
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query:
        raise ConfigError(f"{where}: {value!r} is not an https:// URL of the vendor's API")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise ConfigError(f"{where}: plain http would send the credentials unencrypted; use "
                          "https:// (http is accepted for 127.0.0.1 and localhost only)")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _query(params: Mapping[str, Any]) -> dict[str, Any]:
    """A list goes in the query comma-separated (`accountIds=1,2`), as REST APIs filter."""
    return {key: ",".join(map(str, value)) if isinstance(value, list) else value
            for key, value in params.items()}


class _CursorAlone(NextTokenInBody):
    """A cursor that encodes its own query (Canary's): the next page is asked for with the
    cursor alone, as the vendor's own next link does."""

    noun = "cursor"

    def next_request(self, request: Request) -> Request:
        return replace(request, params={self.param: self.position()})


def _paginator(paging: Paging) -> Paginator:
    """A fresh paginator of the spec's kind, for one window's listing."""
    if paging.kind == "cursor":
        assert paging.token is not None
        if paging.alone:
            return _CursorAlone(paging.token, paging.param)
        return NextTokenInBody(paging.token, paging.param, in_json=paging.location == "json")
    if paging.kind == "next_url":
        assert paging.token is not None
        return NextUrlInBody(paging.token)
    if paging.kind == "link_header":
        return LinkHeader()
    if paging.kind == "offset":
        return OffsetLimit(paging.param, paging.limit_param, paging.limit,
                           total_path=paging.total, more_path=paging.more)
    if paging.kind == "page_number":
        return PageNumber(paging.param, paging.start, total_pages_path=paging.total)
    return _OnePage()


class _OnePage:
    """paging kind none: the first answer is the whole listing."""

    noun = "page"
    counted = False

    def update(self, response: requests.Response, body: Any, records: list[Any]) -> None:
        return None

    def has_next(self) -> bool:
        return False

    def next_request(self, request: Request) -> Request:
        raise AssertionError("a listing without paging has no next page")

    def position(self) -> Hashable:
        return None
