"""Read a REST source spec (YAML) into frozen values, or fail with one precise line.

Every problem is a ConfigError naming the spec file, the key and the fix, raised while the
config loads (exit 2), before anything is pulled. What the spec may say is listed in
docs/declarative.md; the checks here are what keeps a spec from saying what broke other
pullers: a template may name only options and the window (no per-page values), a secret
option may appear only in `auth`, and a field path must parse as JMESPath.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from alertpull.connector import Option
from alertpull.errors import ConfigError
from alertpull.record import SEVERITY_IDS, STATUSES, holds_something
from alertpull.rest.render import TIME_FORMATS, WINDOW_NAMES, names_in
from alertpull.timeutil import parse_duration

OPTION_KINDS = ("str", "int", "bool", "list", "duration")
AUTH_KINDS = ("bearer", "header", "query", "basic", "oauth2_client_credentials", "token_login")
# The kinds of alertpull.paging's paginator protocol (the one page loop and loop guard).
PAGING_KINDS = ("none", "cursor", "next_url", "link_header", "offset", "page_number")
ENTITY_FIELDS = ("resources", "users", "devices", "related", "category", "type")
ENTITY_LISTS = ("resources", "users", "devices")
RELATED_KINDS = ("ips", "domains", "urls", "hashes", "emails")  # the record's related keys


@dataclass(frozen=True)
class Call:
    """One request as declared: its values are templates, rendered once per window."""

    method: str
    path: str
    query: Mapping[str, Any] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Auth:
    kind: str
    values: Mapping[str, Any]  # the kind's own keys, as templates (see AUTH_KEYS)


@dataclass(frozen=True)
class Paging:
    """How the next page is asked for: which paginator of alertpull.paging, and its keys.

    cursor: `token` (a path into the answer) sent back as `param`, in the query or (`in:
    json`) the body; `alone` sends it without the first request's query (a cursor that
    encodes its query, as Canary's does). next_url: the URL at `token`. link_header: the
    Link header's rel=next. offset: `param` (the offset) and `limit_param` = `limit`, ended
    by `total` or `more` paths. page_number: `param` from `start`, ended by `total`."""

    kind: str = "none"
    token: str | None = None  # JMESPath text: alertpull.paging compiles it
    param: str = ""
    location: str = "query"  # query | json
    alone: bool = False
    limit_param: str = "limit"
    limit: int = 100
    start: int = 1
    total: str | None = None
    more: str | None = None
    max_pages: int = 100_000


@dataclass(frozen=True)
class Position:
    """A position cursor: the value sent in the request (as `{position}`) is where the last
    run read up to. `answer` finds the listing's newest position in an answer (Canary's
    max_updated_id), `record` a record's own (its updated_id): after each page the position
    moves past the records yielded, and to the answer's once the listing is complete."""

    answer: Any  # compiled JMESPath into a page's body
    record: Any  # compiled JMESPath into one record, or None
    initial: Any


@dataclass(frozen=True)
class Choice:
    """severity or status: a value read by `path`, then an exact `map`, then `ranges`."""

    path: Any
    map: Mapping[str, str]
    ranges: tuple[tuple[float, float, str], ...] = ()
    default: str = "unknown"
    derived: bool = False  # from alertpull's policy table, not the vendor's own rating


@dataclass(frozen=True)
class Fields:
    id: Any
    changed_at: Any
    title: Any
    severity: Choice
    status: Choice
    created_at: Any = None
    description: Any = None
    link: Any = None
    link_template: str | None = None
    tenant: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # ENTITY_FIELDS, compiled
    landmarks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    source: str  # the spec file (or "<inline>"), for error lines
    vendor: str
    options: Mapping[str, Option]
    base_url: str
    auth: Auth
    request: Call
    records: Any
    fields: Fields
    paging: Paging = field(default_factory=Paging)
    position: Position | None = None
    time_format: str = "rfc3339"
    version_ignores: tuple[str, ...] = ()
    # How long the versions of alerts are remembered beyond the engine's overlap memory, so
    # that a touch-only update arriving days later is still recognised (None: no longer).
    version_memory: timedelta | None = None
    rate: tuple[int, float] | None = None  # calls per seconds
    # The vendor's own name for Retry-After on a 429 (seconds, an HTTP date or a Unix time).
    retry_after_header: str | None = None
    retention: timedelta | None = None
    overlap: timedelta = timedelta(hours=1)
    ordered: bool = False
    check: Call | None = None
    error_message: Any = None
    hints: Mapping[int, str] = field(default_factory=dict)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(name for name, option in self.options.items() if option.secret)


AUTH_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # kind: (required, optional)
    "bearer": (("token",), ()),
    "header": (("name", "value"), ()),
    "query": (("param", "value"), ()),
    "basic": (("username", "password"), ()),
    "oauth2_client_credentials": (("token_url", "client_id", "client_secret"), ("form",)),
    "token_login": (("url", "token"), ("json", "form", "header", "expires_in")),
}


class _Block:
    """One mapping of the spec, read key by key; what is left unread is an unknown key."""

    def __init__(self, data: Any, where: str, source: str) -> None:
        self.source = source
        self.where = where
        if not isinstance(data, Mapping):
            self.fail(where, f"expected a mapping, got {type(data).__name__}")
        self.data = dict(data)
        self.read: set[str] = set()

    def fail(self, key: str, problem: str) -> None:
        raise ConfigError(f"{self.source}: {key}: {problem}")

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(self, name: str, kinds: type | tuple[type, ...], default: Any = None,
            required: bool = False) -> Any:
        self.read.add(name)
        value = self.data.get(name)
        if value is None:
            if required:
                self.fail(self.key(name), "required key is missing; add it")
            return default
        if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple)
                                                   else (kinds,)):
            self.fail(self.key(name), f"expected {_kind_name(kinds)}, got a boolean")
        if not isinstance(value, kinds):
            self.fail(self.key(name), f"expected {_kind_name(kinds)}, got "
                      f"{type(value).__name__}")
        return value

    def block(self, name: str, required: bool = False) -> _Block | None:
        value = self.get(name, dict, required=required)
        return None if value is None else _Block(value, self.key(name), self.source)

    def path(self, name: str, required: bool = False) -> Any:
        return compile_path(self.get(name, str, required=required), self.key(name), self.source)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            valid = ", ".join(sorted(self.read))
            self.fail(self.key(unknown[0]), f"unknown key; valid keys are {valid}")


def _kind_name(kinds: type | tuple[type, ...]) -> str:
    words = {str: "a string", int: "a number", float: "a number", bool: "true or false",
             dict: "a mapping", list: "a list"}
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(dict.fromkeys(words[k] for k in kinds))


_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class FieldPath:
    """A compiled JMESPath expression. Field paths run for every field of every alert, so
    a plain dotted path (`threatInfo.updatedAt`, most of them) is read by key lookups, as
    JMESPath would read it, and the rest share one interpreter instead of one per call."""

    __slots__ = ("_keys", "_tree", "expression")

    def __init__(self, expression: str) -> None:
        import jmespath

        self.expression = expression
        self._tree = jmespath.compile(expression).parsed  # raises on a broken expression
        self._keys = expression.split(".") if _DOTTED.match(expression) else None

    def search(self, value: Any) -> Any:
        if self._keys is None:
            return _interpreter().visit(self._tree, value)
        for key in self._keys:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value


class EntityPaths:
    """The entities of a record field written as field paths, not as a JMESPath projection:
    `[{type: device, id: device.device_id, name: device.hostname, require: id}]`. `type` is
    the entity's type as written, every other key a field path; an entity is kept when its
    `require`d key (id, else name, unless said) found something. Its dotted paths are key
    lookups: ~8x faster per alert than the projection it replaces, which JMESPath's tree
    interpreter walks node by node for every alert."""

    __slots__ = ("_entities",)

    def __init__(self, entities: tuple[tuple[str, tuple[tuple[str, FieldPath], ...], str], ...]
                 ) -> None:
        self._entities = entities  # (type, ((key, path), ...), required key) each

    def search(self, value: Any) -> list[dict[str, Any]]:
        found = []
        for kind, paths, required in self._entities:
            entity: dict[str, Any] = {"type": kind}
            for key, path in paths:
                read = path.search(value)
                if holds_something(read):
                    entity[key] = read
            if entity.get(required, False) is not False:  # false is no id, as for `[?id]`
                found.append(entity)
        return found


class RelatedPaths:
    """`related` written as field paths per kind: `{ips: [src.ip, dst.ip], hashes: [sha256]}`
    (the mapping then drops what is absent or repeated, as for a JMESPath one)."""

    __slots__ = ("_kinds",)

    def __init__(self, kinds: tuple[tuple[str, tuple[FieldPath, ...]], ...]) -> None:
        self._kinds = kinds

    def search(self, value: Any) -> dict[str, list[Any]]:
        return {kind: [path.search(value) for path in paths] for kind, paths in self._kinds}


@functools.cache
def _interpreter() -> Any:
    from jmespath.visitor import TreeInterpreter

    return TreeInterpreter()


def compile_path(expression: str | None, key: str, source: str) -> FieldPath | None:
    """An optional field path: None, or as field_path compiles it."""
    return None if expression is None else field_path(expression, key, source)


def field_path(expression: str, key: str, source: str) -> FieldPath:
    """A JMESPath expression, compiled; a broken one is a spec error naming the key."""
    from jmespath.exceptions import JMESPathError

    try:
        return FieldPath(expression)
    except JMESPathError as exc:
        problem = " ".join(str(exc).split())
        raise ConfigError(f"{source}: {key}: {expression!r} is not a JMESPath expression "
                          f"({problem}); fix the path, e.g. data.items or threatInfo.updatedAt"
                          ) from None


def load_spec(value: Any, base_dir: str, where: str) -> Spec:
    """A spec from a file path (relative to the config's directory) or an inline mapping."""
    if isinstance(value, Mapping):
        return parse_spec(value, f"{where}.spec (inline)")
    if not isinstance(value, str):
        raise ConfigError(f"{where}.spec: expected a spec file path or an inline mapping")
    path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))
    return read_spec_file(path, f"{where}.spec")


def read_spec_file(path: str, where: str) -> Spec:
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            # libyaml's loader where PyYAML has it: a recipe is read on every run
            data = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read spec file {path}: {exc.strerror}; "
                          "fix the path (relative to the config file)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{at}: {getattr(exc, 'problem', None) or 'invalid YAML'}; "
                          "fix the YAML syntax") from None
    return parse_spec(data, path)


def parse_spec(data: Any, source: str) -> Spec:
    top = _Block(data, "", source)
    options = _options(top.block("options"), source)
    template_names = {*options, *WINDOW_NAMES, "base_url_host"}
    auth = _auth(top.block("auth", required=True), options)
    request = _call(top.block("request", required=True), source)
    check_block = top.block("check")
    check = _call(check_block, source) if check_block else None
    position_block = top.block("position")
    position = None
    if position_block:
        position = Position(position_block.path("answer", required=True),
                            position_block.path("record"),
                            position_block.get("initial", (int, str), 0))
        position_block.done()
        template_names.add("position")
    time_format = top.get("time_format", str, "rfc3339")
    if time_format not in TIME_FORMATS and "%" not in time_format:
        top.fail("time_format", f"{time_format!r} is not a time format; use one of "
                 f"{', '.join(TIME_FORMATS)} or a strftime pattern such as %Y-%m-%dT%H:%M:%SZ")
    rate_block = top.block("rate")
    rate, retry_after_header = None, None
    if rate_block:
        rate = (rate_block.get("calls", int, required=True),
                float(rate_block.get("per_seconds", (int, float), required=True)))
        retry_after_header = rate_block.get("retry_after_header", str)
        rate_block.done()
        if rate[0] < 1 or rate[1] <= 0:
            top.fail("rate", "calls and per_seconds must be positive")
    errors = top.block("errors")
    error_message = errors.path("message") if errors else None
    hints: dict[int, str] = {}
    if errors:
        for status in ("401", "403", "404"):
            hint = errors.get(f"hint_{status}", str)
            if hint:
                hints[int(status)] = hint
        errors.done()
    base_url = top.get("base_url", str, required=True)
    spec = Spec(
        source=source,
        vendor=top.get("vendor", str, required=True),
        options=options,
        base_url=base_url,
        auth=auth,
        request=request,
        records=top.path("records", required=True),
        fields=_fields(top.block("fields", required=True), options),
        paging=_paging(top.block("paging")),
        position=position,
        time_format=time_format,
        version_ignores=tuple(_strings(top, "version_ignores")),
        version_memory=_duration(top, "version_memory"),
        rate=rate,
        retry_after_header=retry_after_header,
        retention=_duration(top, "retention"),
        overlap=_duration(top, "overlap") or timedelta(hours=1),
        ordered=top.get("ordered", bool, False),
        check=check,
        error_message=error_message,
        hints=hints,
    )
    top.done()
    if spec.version_memory and not spec.version_ignores:
        top.fail("version_memory", "only means something with version_ignores; add the "
                 "fields whose change alone is not a new version, or remove it")
    _check_templates(spec, template_names)
    return spec


def _options(block: _Block | None, source: str) -> dict[str, Option]:
    if block is None:
        return {}
    options: dict[str, Option] = {}
    for name in list(block.data):
        one = block.block(name)
        assert one is not None
        kind = one.get("type", str, "str")
        if kind not in OPTION_KINDS:
            one.fail(one.key("type"), f"{kind!r} is not an option type; use one of "
                     f"{', '.join(OPTION_KINDS)}")
        secret = one.get("secret", bool, False)
        if secret and kind != "str":
            one.fail(one.key("secret"), "only a str option can be secret")
        default = one.get("default", (str, int, bool, list))
        if kind == "duration" and default is not None:
            default = parse_duration(str(default))
        options[name] = Option(kind, required=one.get("required", bool, False),
                               default=default, secret=secret, help=one.get("help", str, ""),
                               minimum=one.get("minimum", int, 1))
        one.done()
    return options


def _auth(block: _Block | None, options: Mapping[str, Option]) -> Auth:
    assert block is not None
    kind = block.get("kind", str, required=True)
    if kind not in AUTH_KINDS:
        block.fail(block.key("kind"), f"{kind!r} is not an auth kind; use one of "
                   f"{', '.join(AUTH_KINDS)}")
    required, optional = AUTH_KEYS[kind]
    values: dict[str, Any] = {}
    for name in required:
        if block.data.get(name) is None:
            block.fail(block.key(name), f"auth kind {kind} needs {name}; add it "
                       f"(it takes {', '.join(required + optional)})")
    for name in required + optional:
        value = block.get(name, (str, dict, int))
        if value is not None:
            values[name] = value
    if kind == "token_login":
        values["token"] = block.path("token")
        if "expires_in" in values:
            values["expires_in"] = block.path("expires_in")
    block.done()
    own = {"token"} if kind == "token_login" else set()  # the token_login header's {token}
    for name in names_in({k: v for k, v in values.items() if isinstance(v, (str, dict))}):
        if name not in options and name not in own:
            block.fail(block.where, f"{{{name}}} is not an option of this spec; declare it "
                       "under options")
    return Auth(kind, values)


def _call(block: _Block | None, source: str) -> Call:
    assert block is not None
    method = block.get("method", str, "GET").upper()
    if method not in ("GET", "POST"):
        block.fail(block.key("method"), f"{method} is not GET or POST")
    call = Call(method=method, path=block.get("path", str, required=True),
                query=block.get("query", dict, {}), json=block.get("json", dict),
                headers=block.get("headers", dict, {}))
    block.done()
    return call


def _paging(block: _Block | None) -> Paging:
    if block is None:
        return Paging()
    kind = block.get("kind", str, required=True)
    if kind not in PAGING_KINDS:
        block.fail(block.key("kind"), f"{kind!r} is not a paging kind; use one of "
                   f"{', '.join(PAGING_KINDS)}")
    for name in ("token", "total", "more"):
        block.path(name, required=name == "token" and kind in ("cursor", "next_url"))
    paging = Paging(kind=kind, token=block.data.get("token"),
                    param=block.get("param", str, "",
                                    required=kind in ("cursor", "offset", "page_number")),
                    location=block.get("in", str, "query"),
                    alone=block.get("alone", bool, False),
                    limit_param=block.get("limit_param", str, "limit"),
                    limit=block.get("limit", int, 100), start=block.get("start", int, 1),
                    total=block.data.get("total"), more=block.data.get("more"),
                    max_pages=block.get("max_pages", int, 100_000))
    if paging.location not in ("query", "json"):
        block.fail(block.key("in"), f"{paging.location!r} is not query or json")
    block.done()
    return paging


def _choice(block: _Block | None, what: str, allowed: tuple[str, ...]) -> Choice:
    assert block is not None
    mapping = block.get("map", dict, {})
    ranges = []
    for n, item in enumerate(block.get("ranges", list, [])):
        if not (isinstance(item, list) and len(item) == 3
                and all(isinstance(x, (int, float)) for x in item[:2])):
            block.fail(f"{block.key('ranges')}[{n}]", "expected [low, high, value], e.g. "
                       "[40, 59, medium]")
        ranges.append((float(item[0]), float(item[1]), str(item[2])))
    default = block.get("default", str, "unknown")
    for value in [*map(str, mapping.values()), *(r[2] for r in ranges), default]:
        if value not in allowed:
            block.fail(block.where, f"{value!r} is not a {what}; use one of "
                       f"{', '.join(allowed)}")
    choice = Choice(path=block.path("path", required=True),
                    map={str(k): str(v) for k, v in mapping.items()}, ranges=tuple(ranges),
                    default=default, derived=block.get("derived", bool, False))
    block.done()
    return choice


def _fields(block: _Block | None, options: Mapping[str, Option]) -> Fields:
    assert block is not None
    raw_paths = {name: block.data.get(name) for name in ("id", "title", "created_at",
                                                          "changed_at")}
    fields = Fields(
        id=block.path("id", required=True),
        changed_at=block.path("changed_at", required=True),
        title=block.path("title", required=True),
        severity=_choice(block.block("severity", required=True), "severity",
                         tuple(SEVERITY_IDS)),
        status=_choice(block.block("status", required=True), "status", STATUSES),
        created_at=block.path("created_at"),
        description=block.path("description"),
        link=block.path("link"),
        link_template=block.get("link_template", str),
        tenant=block.path("tenant"),
        extra={name: _entity_field(block, name) for name in ENTITY_FIELDS
               if block.data.get(name)},
        landmarks={name: (path,) for name, path in raw_paths.items()
                   if isinstance(path, str) and path.replace(".", "").replace("_", "").isalnum()},
    )
    for name in ENTITY_FIELDS:
        block.read.add(name)
    if fields.link_template:
        for name in names_in(fields.link_template):
            if name in options and options[name].secret:
                block.fail(block.key("link_template"), f"{{{name}}} is a secret; a link "
                           "must never carry one")
            if name not in options and name not in ("id", "tenant", "base_url_host"):
                block.fail(block.key("link_template"), f"{{{name}}} is not an option, id "
                           "or tenant")
    block.done()
    return fields


def _entity_field(block: _Block, name: str) -> Any:
    """A JMESPath expression, or the field-path form of an entity list or of related."""
    value = block.data[name]
    if isinstance(value, list) and name in ENTITY_LISTS:
        return _entity_paths(block, name, value)
    if isinstance(value, Mapping) and name == "related":
        return _related_paths(block, value)
    if not isinstance(value, str):
        other = (" or a list of entities, e.g. [{type: device, id: host.id, name: host.name}]"
                 if name in ENTITY_LISTS else
                 " or a mapping of lists, e.g. {ips: [src.ip], hashes: [file.sha256]}"
                 if name == "related" else "")
        block.fail(block.key(name), f"expected a JMESPath expression{other}, got "
                   f"{type(value).__name__}")
    return block.path(name)


def _entity_paths(block: _Block, name: str, entities: list[Any]) -> EntityPaths:
    compiled = []
    for n, item in enumerate(entities):
        entity = _Block(item, f"{block.key(name)}[{n}]", block.source)
        kind = entity.get("type", str, required=True)
        required = entity.get("require", str)
        paths = tuple((key, field_path(entity.get(key, str, required=True), entity.key(key),
                                       block.source))
                      for key in entity.data if key not in ("type", "require"))
        keys = [key for key, _ in paths]
        if not keys:
            entity.fail(entity.where, "no field paths; add e.g. id: host.id, name: host.name")
        required = required or ("id" if "id" in keys else "name")
        if required not in keys:
            entity.fail(entity.key("require"), f"{required!r} is not one of its keys "
                        f"({', '.join(keys)}); name the key an entity must have")
        compiled.append((kind, paths, required))
    return EntityPaths(tuple(compiled))


def _related_paths(block: _Block, kinds: Mapping[str, Any]) -> RelatedPaths:
    related = _Block(kinds, block.key("related"), block.source)
    compiled = []
    for kind in kinds:
        if kind not in RELATED_KINDS:
            related.fail(related.key(kind),
                         f"not a kind of related; use {', '.join(RELATED_KINDS)}")
        related.read.add(kind)
        paths = related.data[kind]
        if not (isinstance(paths, list) and paths
                and all(isinstance(p, str) and p for p in paths)):
            related.fail(related.key(kind), "expected a list of field paths, e.g. [src.ip, dst.ip]")
        compiled.append((kind, tuple(field_path(p, f"{related.key(kind)}[{n}]", block.source)
                                     for n, p in enumerate(paths))))
    return RelatedPaths(tuple(compiled))


def _strings(block: _Block, name: str) -> list[str]:
    values = block.get(name, list, [])
    if not all(isinstance(v, str) and v for v in values):
        block.fail(block.key(name), "expected a list of field names, e.g. [updated_timestamp]")
    return values


def _duration(block: _Block, name: str) -> timedelta | None:
    value = block.get(name, (str, int))
    if value is None:
        return None
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        block.fail(block.key(name), str(exc))
    return None


def _check_templates(spec: Spec, allowed: set[str]) -> None:
    """Request templates name only declared options, the window or the position; never a
    secret (a secret goes in `auth`, whose query form is redacted everywhere)."""
    calls = {"request": spec.request, **({"check": spec.check} if spec.check else {})}
    for where, call in calls.items():
        parts = {"path": call.path, "query": call.query, "json": call.json or {},
                 "headers": call.headers}
        for part, value in parts.items():
            for name in names_in(value):
                if name in spec.secrets:
                    raise ConfigError(f"{spec.source}: {where}.{part}: {{{name}}} is a secret; "
                                      "secrets may appear only under auth")
                if name not in allowed:
                    raise ConfigError(f"{spec.source}: {where}.{part}: {{{name}}} is not an "
                                      "option of this spec, start, end or position; declare "
                                      "it under options")
    for name in names_in(spec.base_url):
        if name not in spec.options or spec.options[name].secret:
            raise ConfigError(f"{spec.source}: base_url: {{{name}}} must be a (non-secret) "
                              "option of this spec")
