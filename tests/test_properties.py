"""Property: whatever the sequence of new alerts, updates, equal timestamps, page
boundaries, overlapping runs, backfills, refetches, cursor edits, overlap changes and
crashes between any two steps, the published output holds every version a run was bound
to read, and no version twice — except what `--refetch`, `cursor set` and `cursor reset`
are documented to write again (docs/operations.md): at most once more per such step, and
only for versions it re-reads."""

from __future__ import annotations

import signal
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertpull.config import load_config
from alertpull.log import Progress
from alertpull.runner import FetchFlags, SourceRun
from alertpull.sinks import open_sink
from alertpull.state import open_state
from alertpull.timeutil import format_time, parse_time, utcnow
from tests.aws_env import REGION, aws_client_env
from tests.conftest import read_records, run_cli
from tests.fakes.aws import AwsFake
from tests.fakes.guardduty_data import DETECTOR, make_finding
from tests.test_crash import POINTS

FIRST_RUN_SINCE = timedelta(hours=3)
# Minutes before now at which alerts change; few distinct values -> many equal timestamps.
# All within first_run_since, so the first run reads them.
AGES = st.sampled_from([170, 150, 90, 61, 60, 59, 30, 10, 5])
# Older than first_run_since: only a backfill or refetch reaching back far enough reads them.
OLD_AGES = st.sampled_from([300, 200])
SINCE = st.sampled_from([30, 240, 360])  # minutes ago
# Once a run happened, news arrives at most this late after its watermark (less than every
# overlap); later than that is outside the guarantee (docs/guarantees.md says so).
LATE = timedelta(minutes=55)
STEP = st.one_of(
    st.tuples(st.just("new"), st.integers(1, 60), AGES),  # n alerts changed `age` min ago
    st.tuples(st.just("update"), st.integers(0, 10_000), AGES),  # an existing alert changes
    st.tuples(st.just("run"), st.just(0), st.just(0)),
    # --until N minutes ago: the watermark stays behind, as after days without a run
    st.tuples(st.just("until"), st.sampled_from([100, 150]), st.just(0)),
    # --since N minutes ago, without and with --refetch: before or after the watermark
    st.tuples(st.just("backfill"), SINCE, st.just(0)),
    st.tuples(st.just("refetch"), SINCE, st.just(0)),
    st.tuples(st.just("cursor set"), st.sampled_from([45, 100]), st.just(0)),  # minutes ago
    st.tuples(st.just("cursor reset"), st.just(0), st.just(0)),
    st.tuples(st.just("overlap"), st.sampled_from([60, 90, 120]), st.just(0)),  # minutes
    st.tuples(st.just("crash"), st.sampled_from(POINTS), st.just(0)),  # SIGKILLed fetch
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    fake = AwsFake()
    fake.add_detector(REGION, DETECTOR, [])
    with fake:
        yield fake, tmp_path_factory.mktemp("prop")


Version = tuple[str, str]  # (arn, updatedAt)


@dataclass
class Model:
    """What the output must hold, from what each step did."""

    findings: list[dict[str, Any]]
    required: set[Version] = field(default_factory=set)  # read by a run that succeeded
    repeats: Counter[Version] = field(default_factory=Counter)  # extra writes allowed

    def current(self, since: datetime | None = None) -> set[Version]:
        return {(f["arn"], f["updatedAt"]) for f in self.findings
                if since is None or parse_time(f["updatedAt"]) >= since}

    def ran(self, since: datetime | None = None, until: datetime | None = None) -> None:
        """A run succeeded: it read every current version changed before `until` since
        first_run_since (what earlier runs did not read is in its incremental window:
        news are never later than the overlap) or since `since` if that is older."""
        start = utcnow() - FIRST_RUN_SINCE
        self.required |= self.current(min(since, start) if since else start) - (
            self.current(until) if until else set())

    def may_repeat(self, since: datetime | None) -> None:
        self.repeats.update(self.current(since))


def write_config(root: Path, overlap: int) -> Path:
    path = root / "alertpull.yaml"
    path.write_text(yaml.safe_dump({
        "state": {"backend": "local", "path": str(root / "state")},
        "sink": {"type": "jsonl", "path": str(root / "alerts")},
        "defaults": {"first_run_since": "3h", "overlap": f"{overlap}m"},
        "sources": {"aws": {"type": "guardduty", "regions": [REGION]}},
    }))
    return path


def fetch(config_path: Path, flags: FetchFlags) -> None:
    config = load_config(str(config_path))
    result = SourceRun(config.sources["aws"], open_state(config.state),
                       open_sink(config.sink), flags, Progress(False)).run()
    assert result.status == "ok", result.error


# 30 examples in all, in shards that test workers run side by side.
@pytest.mark.parametrize("shard", range(3))
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old=st.lists(OLD_AGES, max_size=8), steps=st.lists(STEP, min_size=1, max_size=12))
def test_every_version_read_is_written_once_except_documented_repeats(
        world: Any, shard: int, old: list[int], steps: list[Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake, base = world
    env = aws_client_env(fake.url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    root = Path(base) / f"example-{len(list(Path(base).iterdir()))}"
    root.mkdir()
    config = write_config(root, 60)
    findings = fake.findings[(REGION, DETECTOR)]
    findings.clear()
    findings.extend(make_finding(i, updated_at=utcnow() - timedelta(minutes=age))
                    for i, age in enumerate(old))
    model = Model(findings)
    watermark: datetime | None = None  # roughly, the latest any run may have committed
    for action, number, age in [*steps, ("run", 0, 0)]:
        now = utcnow()
        changed = now - timedelta(minutes=age)
        if watermark is not None:
            changed = max(changed, watermark - LATE)
        if action == "new":
            first = len(findings)
            findings.extend(make_finding(i, updated_at=changed)
                            for i in range(first, first + number))
        elif action == "update" and findings:
            finding = findings[number % len(findings)]
            finding["service"]["count"] += 1
            # A vendor's changed-at only moves forward.
            previous = parse_time(finding["updatedAt"])
            finding["updatedAt"] = format_time(max(changed, previous + timedelta(milliseconds=1)))
        elif action in ("run", "until", "backfill", "refetch"):
            mark = now - timedelta(minutes=number) if number else None
            since, until = (None, mark) if action == "until" else (mark, None)
            if action == "refetch":
                model.may_repeat(since)  # "may write lines for versions already written"
            fetch(config, FetchFlags(since=since, until=until, refetch=action == "refetch"))
            model.ran(since, until)
            end = until or now
            watermark = max(watermark, end) if watermark else end
        elif action == "cursor set":
            mark = now - timedelta(minutes=number)
            edited = run_cli("-c", str(config), "cursor", "set", "--source", "aws",
                             "--watermark", format_time(mark), env=env)
            if edited.returncode == 0:  # 2 before the first run: no cursor to set yet
                model.may_repeat(mark)  # "may write again what it no longer remembers"
        elif action == "cursor reset":
            if run_cli("-c", str(config), "cursor", "reset", "--source", "aws",
                       env=env).returncode == 0:
                model.may_repeat(None)  # the next fetch starts at first_run_since again
        elif action == "overlap":
            config = write_config(root, number)
        elif action == "crash":
            crashed = run_cli("-c", str(config), "fetch", "--all",
                              env={**env, "ALERTPULL_FAILPOINT": number})
            assert crashed.returncode in (0, -signal.SIGKILL), crashed.stderr
            if crashed.returncode == 0:  # the point was not on this run's path
                model.ran()
            watermark = now  # killed after its commit, it still moved the watermark
    written = Counter((r["native_id"], r["raw"]["updatedAt"]) for r in
                      read_records(root / "alerts"))
    twice = {v: n for v, n in written.items() if n > 1 + model.repeats[v]}
    assert not twice, "a version was written more often than documented"
    assert model.required <= set(written), "a version a run read is missing"
    assert not list((root / "alerts").rglob(".*.tmp")), "staged files left behind"
