"""The standard suite's world protocol: what a source type provides to get every check of
tests/test_standard_suite.py (as the Singer SDK's test factory builds its baseline tests).

A *world* is a context manager `world(source, secrets_dir, ca) -> Iterator[Subject]`,
registered in `WORLDS` (tests/standard_worlds.py). It starts the type's wire fake on
127.0.0.1 and yields a `Subject`: one source of that type, configured against that fake,
with what the vendor-neutral checks need to know of it:

- `block` and `env`: the YAML block and the environment that point the CLI at the fake,
  with a read timeout of TIMEOUT_SECONDS, max_retries of RETRIES and, where the source has
  it, retry_base_seconds of RETRY_BASE_SECONDS;
- `items()` and `make(count, first, at, step)`: the fake's alert list of the pulled stream
  (wire JSON, edited in place) and how to make alerts first..first+count-1 (alert i changed
  at `at + i * step`), at most PAGE to a page wherever the fake lets a test choose;
- `update(raw, at)`: a new version of an alert, changed at `at` (None: the stream's alerts
  never change, as audit events do);
- `page_call` (the request that returns a page of alerts), `token_call` (the one that
  carries the page token, if another) and `error(status)` (an error in the vendor's shape);
- `malform(raw)` and `bloat(raw, text)`: break what the mapping requires; put a huge text
  where the vendor keeps a description;
- `configured_secrets` and `issued_secrets()`: what must never reach any output;
- `bound_retries(n)`: the block keys that bound its retries to `n` (SCC retries against a
  deadline instead: `retries_by_deadline`), `issues_tokens` (it presents access tokens or
  self-signed JWTs beyond its configured secrets) and `command` (how the CLI is started:
  the installed one, or a launcher registering a test-only source type).

Adding a source type to the suite is adding its world to WORLDS (docs/development.md).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alertpull.timeutil import utcnow
from tests.conftest import ALERTPULL, run_cli
from tests.fakes.http_fake import FakeServer, Matcher, Request, Response
from tests.world import CliWorld

TIMEOUT_SECONDS = 1  # every source's read timeout here: a stalled answer costs a second
RETRIES = 3  # max_retries here: rides out the longest transient burst, three faults in a row
# retry_base_seconds wherever a source has it: that retries happen is proven here, their
# pacing in each source's own tests.
RETRY_BASE_SECONDS = 0.05
PAGE = 20  # alerts per page, wherever the source or its fake lets a test choose
STEP = timedelta(seconds=20)  # between two alerts' changed-at times
LATEST_AGE = timedelta(minutes=5)  # how long ago the newest alert of a batch changed
FAST_BUDGET = 360_000  # calls per hour or minute: pacing is proven elsewhere, not here

Raw = dict[str, Any]


def _max_retries(times: int) -> dict[str, Any]:
    return {"max_retries": times}


@dataclass
class Subject:
    """One source of one type, configured against its own started wire fake."""

    type_name: str
    source: str  # the source's name in the config
    fake: FakeServer
    env: dict[str, str]
    block: dict[str, Any]  # the YAML block of the source
    items: Callable[[], list[Raw]]  # the fake's alerts of the pulled stream, wire JSON
    # (count, first index, index 0's changed-at, step between two alerts)
    make: Callable[[int, int, datetime, timedelta], list[Raw]]
    update: Callable[[Raw, datetime], object] | None  # a new version, changed at the time
    page_call: Matcher  # the request that returns a page of alerts
    error: Callable[[int], Response]  # an error answer in the vendor's shape, by status
    malform: Callable[[Raw], None]  # break what the mapping requires (the fake still lists it)
    bloat: Callable[[Raw, str], None]  # put a huge text where the vendor keeps a description
    configured_secrets: list[str]
    issued_secrets: Callable[[], list[str]] = list  # e.g. the access tokens the fake handed out
    token_call: Matcher | None = None  # the request carrying the page token (else page_call)
    bound_retries: Callable[[int], dict[str, Any]] = _max_retries
    retries_by_deadline: bool = False  # its client retries until a deadline, not a count
    issues_tokens: bool = True
    command: tuple[str, ...] = (ALERTPULL,)

    def add(self, count: int, first: int, *, step: timedelta = STEP,
            newest: datetime | None = None) -> list[Raw]:
        """Alerts first..first+count-1, changed every `step` up to `newest` (default:
        LATEST_AGE ago: recent news, inside the window of the next run whatever ran
        before)."""
        last = first + count - 1
        newest = newest or utcnow() - LATEST_AGE
        new = self.make(count, first, newest - last * step, step)
        self.items().extend(new)
        return new

    def tokens(self) -> list[str]:
        """The access tokens the source was issued or presented (self-signed JWTs included),
        beyond its configured secrets."""
        presented = {r.headers.get("authorization", "").removeprefix("Bearer ")
                     for r in self.fake.requests
                     if r.headers.get("authorization", "").startswith("Bearer ")}
        return sorted((presented | set(self.issued_secrets())) - set(self.configured_secrets))

    def secrets(self) -> list[str]:
        return [*self.configured_secrets, *self.tokens()]

    def retrying(self, times: int) -> Subject:
        """This source with its retries bounded to `times` (see bound_retries)."""
        return dataclasses.replace(self, block={**self.block, **self.bound_retries(times)})


@dataclass
class Breaker:
    """A switchable matcher: while on, it matches the page calls after the first `spare`."""

    page_call: Matcher
    spare: int = 1
    on: bool = True
    _seen: int = field(default=0, init=False)

    def __call__(self, request: Request) -> bool:
        if not (self.on and self.page_call(request)):
            return False
        self._seen += 1
        return self._seen > self.spare

    @property
    def struck(self) -> int:
        """How many calls it has broken so far."""
        return max(0, self._seen - self.spare)


@dataclass
class RunWorld(CliWorld):
    """A run directory whose config holds the sources under test (and nothing secret)."""

    launcher: tuple[str, ...] = (ALERTPULL,)

    def configure(self, *subjects: Subject, **top: Any) -> None:
        self.write_yaml({s.source: s.block for s in subjects}, **top)
        for subject in subjects:
            self.env.update(subject.env)
        self.launcher = next((s.command for s in subjects if s.command != (ALERTPULL,)),
                             (ALERTPULL,))

    def cli(self, *args: str, **env: str) -> Any:
        return self.run(*args, env=env)

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
        return run_cli("-c", str(self.config_path), *args, env={**self.env, **(env or {})},
                       timeout=timeout, command=self.launcher)


def state_scopes(world: CliWorld, source: str) -> dict[str, Any]:
    """The source's committed cursors, as its state file holds them ({} before any)."""
    path = world.state / f"{source}.json"
    return dict(json.loads(path.read_text())["scopes"]) if path.exists() else {}


def source_records(world: RunWorld, subject: Subject) -> list[dict[str, Any]]:
    return [r for r in world.records() if r["source"] == subject.source]


def hidden_files(world: RunWorld) -> list[Path]:
    return [p for p in world.alerts.rglob("*") if p.is_file() and p.name.startswith((".", "_"))]


def visible_files(world: RunWorld, subject: Subject) -> list[Path]:
    return sorted(p for p in (world.alerts / f"source={subject.source}").rglob("*")
                  if p.is_file() and not p.name.startswith((".", "_")))


def assert_exactly_once(world: RunWorld, subject: Subject, expected: int) -> None:
    versions = Counter((r["native_id"], r["raw_sha256"]) for r in source_records(world, subject))
    assert len(versions) == expected
    assert set(versions.values()) == {1}, [v for v, n in versions.items() if n > 1][:3]
    assert not hidden_files(world), "staged files left behind"


def error_lines(stderr: str, subject: Subject) -> list[str]:
    tag = f"[{subject.source}]"
    return [line for line in stderr.splitlines() if "ERROR" in line and tag in line]


def with_retry_after(response: Response, seconds: str) -> Response:
    return dataclasses.replace(response, headers={**response.headers, "Retry-After": seconds})
