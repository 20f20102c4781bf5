"""What the engine asks of a connector, and what it hands one.

A connector knows its vendor's API: how to enumerate scopes (regions, tenants, …),
how to pull the raw alerts changed inside a time window, and how to map one raw
alert onto `Normalized`. It never writes state or output: the runner owns the
cursor, the dedup and the delivery (STYLE.md, "the cursor is a value handed to the
code that pulls").
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from alertpull.record import Normalized

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]


@dataclass(frozen=True)
class Option:
    """One key of a source's config block.

    kind: "str", "path" (relative to the config file, ~ expanded), "int", "seconds" (a
    positive number, fractions allowed), "bool", "duration", "list", "map",
    "path_or_mapping" (a path, or that file's content inline). A `secret` option accepts a
    string (with ${VAR}) or {file: PATH}, and its value is wrapped in `Secret`.
    `choices` limits a string, or every item of a (non-empty) list, to those values.
    An "int" is at least `minimum`.
    """

    kind: str = "str"
    required: bool = False
    default: Any = None
    secret: bool = False
    help: str = ""
    choices: tuple[str, ...] = ()
    minimum: int = 1


def max_retries_option(default: int) -> Option:
    """`max_retries`, declared by every connector whose retries are counted (SCC's run
    against a deadline): `default` is the count its retry mechanism (botocore, urllib3, a
    loop of its own) used before the option existed."""
    return Option(
        "int", default=default, minimum=0,
        help="times one call is retried through 429, 5xx, dropped connections and timeouts "
        "before the source fails (Graph's 429 loop and its HTTP layer count separately)",
    )


def retry_base_option(default: float) -> Option:
    """`retry_base_seconds`, declared beside max_retries by every connector whose backoff
    it sets (urllib3's, the engine's unreadable-answer and 429 loops, api-core's): `default`
    is the wait its retry mechanism used before the option existed."""
    return Option(
        "seconds", default=default,
        help="first backed-off wait of a retried call, doubled on each retry after it "
        "(plus jitter); fractions allowed",
    )


class Secret:
    """A secret config value: its repr and str never reveal it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class Vendor:
    """Who makes the product a connector pulls from (OCSF metadata.product, cloud)."""

    name: str
    cloud: str | None = None  # cloud.provider, for sources whose tenant is a cloud account
    account_type_id: int | None = None  # OCSF account.type_id of that tenant


@dataclass(frozen=True)
class Scope:
    """One cursor's worth of a source: e.g. (account, region, detector), or a stream.

    `overlap` overrides the connector's default_overlap for this scope (e.g. a stream
    whose vendor is later than the others); a user's configured overlap wins over both.
    `retention` likewise overrides the connector's `retention` (a stream kept for less).
    `error` marks a part of the source the connector could not enumerate (e.g. a region
    whose detectors it cannot list): its key is a prefix of the keys it would have had.
    The runner fails that part alone; the other scopes are still pulled and committed.
    `snapshot` marks a scope whose connector finds the changes itself by diffing its
    Memory (a device-posture snapshot, a re-polled list without ids): the runner then
    takes every alert it yields, whatever its changed-at, instead of only the window's.
    `position` marks a scope of a stream read with a position cursor (see Position): the
    runner calls fetch once per run, with a window spanning the run's planned ranges
    (for logging and a first run's start only), and takes every alert it yields.
    `tenant` is the tenant every alert of the scope belongs to, where the scope knows it:
    the tenant of a degraded record (see alertpull.degraded), whose own may be unreadable.
    `stream` is the declared stream the scope pulls (Stream.scope() makes the scope): its
    `ordered` and `retention` then hold for the scope instead of the connector's. It is not
    part of what the scope is, so it is left out of comparisons.
    """

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)
    overlap: timedelta | None = None
    snapshot: bool = False
    position: bool = False
    tenant: str | None = None
    retention: timedelta | None = None
    error: str | None = None
    stream: Stream | None = field(default=None, compare=False)

    @property
    def ordered(self) -> bool | None:
        """Whether its stream is declared ascending in changed-at (None: not declared)."""
        return self.stream.ordered if self.stream is not None else None


@dataclass(frozen=True)
class Stream:
    """One list a connector pulls, declared rather than coded (the Singer SDK's stream
    attributes): what the engine must know of it, per stream, not per connector.

    ordered: it is asked for in ascending changed-at order, so a window cut short keeps the
    mark it reached (see Connector.ordered). retention: how far back the vendor keeps it.
    overlap: how late the vendor may show a change (None: the connector's default_overlap).
    snapshot: its changes are found by diffing a listing against Memory (alertpull.snapshot).
    page_size: records asked for per page: the vendor's maximum, where it has one.
    """

    name: str
    ordered: bool = False
    retention: timedelta | None = None
    overlap: timedelta | None = None
    snapshot: bool = False
    page_size: int | None = None

    def scope(self, key: str, params: Mapping[str, Any], tenant: str | None = None, *,
              retention: timedelta | None = None) -> Scope:
        """A scope pulling this stream: its declaration carried into the Scope. `retention`
        is one the config sets for this scope (a licence's), over the stream's."""
        return Scope(key=key, params=params, overlap=self.overlap, snapshot=self.snapshot,
                     tenant=tenant, retention=retention, stream=self)


@dataclass(frozen=True)
class Landmarks:
    """Where a raw alert keeps its id, title and times: what a degraded record is made of
    when normalize() fails (see alertpull.degraded). Each is a list of dotted paths into
    the object ("finding.name"), the first that holds a readable value wins."""

    id: tuple[str, ...] = ("id",)
    title: tuple[str, ...] = ()
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()


@dataclass(frozen=True)
class Window:
    """The half-open query window [start, end), fixed once per run."""

    start: datetime
    end: datetime


_NOT_ADVANCED = object()


class Position:
    """Where a position-cursor stream has read up to: an opaque vendor position that only
    moves forward (a monotonic id such as Thinkst Canary's `max_updated_id`, a ULID, a file
    identity and offset, an object key), any JSON value.

    `previous` is the position the last successful run committed (None on the first run).
    The connector reads from it and calls `advance(new)` as it yields, each time with the
    position just past what it has yielded so far. The runner commits the last advanced
    value with the cursor, only after the output is published and in the same two-phase
    delivery, so a crash at any point re-reads from `previous` and writes nothing twice. A
    run that fails commits nothing; one whose pull stops early (WindowIncomplete) commits
    the position reached. Ordering is the connector's: the engine never compares positions.
    """

    __slots__ = ("_current", "previous")

    def __init__(self, previous: Any = None) -> None:
        self.previous = previous
        self._current: Any = _NOT_ADVANCED

    def advance(self, new: Any) -> None:
        if new is None:
            raise ValueError("a position cannot advance to None")
        self._current = new

    @property
    def advanced(self) -> bool:
        return self._current is not _NOT_ADVANCED

    @property
    def reached(self) -> Any:
        """The position to commit: the last advanced one, else the previous."""
        return self._current if self.advanced else self.previous


@dataclass
class Memory:
    """A connector's own JSON kept in its scope's cursor (e.g. a posture snapshot to diff).

    `previous` is what the last successful run left; a connector that keeps memory sets
    `current`, and the runner commits it with the cursor, after the output is published.
    One Memory is shared by every window of a scope in a run. `position` is the scope's
    position cursor (see Position), for the scopes marked `position`.

    `unparsed` is where a connector that reads raw input (files, objects) counts what it
    read but could not make an alert of, such as a line that is not JSON: the engine adds
    it to the run's counts, so it shows in the run summary and `status`, not only in the
    connector's warning. `unchanged` counts the alerts it read and left out as versions
    already written (a remembered version, see the declarative `version_memory`): the
    engine counts them as fetched and duplicate, as it does the versions it drops itself.
    """

    previous: Mapping[str, Any] | None = None
    current: dict[str, Any] | None = None
    unparsed: int = 0
    unchanged: int = 0
    position: Position = field(default_factory=Position)


class Connector(ABC):
    """Base class of every source type. Subclasses declare the class attributes."""

    type_name: ClassVar[str]
    vendor: ClassVar[Vendor]
    options: ClassVar[Mapping[str, Option]]
    default_overlap: ClassVar[timedelta] = timedelta(hours=1)
    # For scopes without a declared Stream (Stream.scope() is the way to declare these per
    # stream): how far back the vendor keeps alerts, and whether fetch() yields alerts in
    # ascending changed-at order, so a window that stops early (WindowIncomplete) can
    # still commit the mark it reached.
    retention: ClassVar[timedelta | None] = None
    ordered: ClassVar[bool] = False
    # Modules the connector imports when it pulls -> the alertpull extra that installs them:
    # checked while the config loads, so a missing SDK is one line, not an ImportError.
    requires: ClassVar[Mapping[str, str]] = {}
    # How many vendor calls scopes() may have in flight at once (one discovery call per
    # region, say): the source's `concurrency`, set by the runner.
    concurrency: int = 1

    def __init__(self, source_name: str, settings: Mapping[str, Any], log: Log) -> None:
        self.source_name = source_name
        self.settings = settings
        self.log = log

    @classmethod
    def configured(cls, where: str, data: Mapping[str, Any], base_dir: str) -> type[Connector]:
        """The class that pulls this source block: itself, except for a type whose options
        depend on the block (`type: rest` takes the options its spec declares)."""
        return cls

    @classmethod
    def check_settings(cls, where: str, settings: Mapping[str, Any]) -> None:
        """Raise ConfigError for what the option types cannot say (e.g. "exactly one of
        two keys", a key file that is not there), while the config loads and under `check`: a
        wrong config exits 2 before anything runs. Shared checks are in alertpull.validate."""
        return None

    @abstractmethod
    def scopes(self) -> list[Scope]:
        """The scopes to pull, each with its own cursor. May call the vendor."""

    @abstractmethod
    def fetch(self, scope: Scope, window: Window, memory: Memory) -> Iterator[list[Any]]:
        """Yield pages of raw vendor alerts whose changed-at lies in the window.

        Most connectors ignore `memory`; see Memory for those that keep their own state,
        and Position for a stream that reads from a vendor position instead of by time.
        """

    @abstractmethod
    def normalize(self, scope: Scope, raw: Any) -> Normalized:
        """Map one raw alert; raise MalformedAlert when it lacks what the mapping needs.

        Whatever it raises stays with that alert: the engine writes it as a degraded
        record instead (see alertpull.degraded), so a mapping need not guard every field.
        """

    @abstractmethod
    def check(self) -> str:
        """One cheap authenticated call; return a short description of what answered."""

    def ocsf_finding(self, raw: Any) -> Mapping[str, Any] | None:
        """The vendor's own OCSF finding for a raw alert, where the vendor serves OCSF:
        `--format ocsf` then passes it through (alertpull.ocsf) instead of mapping the
        record. None (every connector whose vendor has its own format): the record is
        mapped."""
        return None

    def version_view(self, raw: Any) -> Any:
        """What version dedup hashes: raw itself, or raw without the fields whose change
        alone is not a new version (a vendor that touches a timestamp and nothing else).
        The record's `raw` and `raw_sha256` stay those of the verbatim object."""
        return raw

    def landmarks(self, scope: Scope) -> Landmarks:
        """Where the raw alerts of this scope keep their id, title and times."""
        return Landmarks()

    def describe(self, raw: Any) -> str:
        """A short, secret-free handle for a raw alert in warnings (e.g. its id)."""
        if isinstance(raw, dict):
            for key in ("id", "name", "Id", "Arn", "alertId"):
                if key in raw:
                    return str(raw[key])
        return "<unidentified alert>"
