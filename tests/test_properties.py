"""Property: whatever the sequence of new alerts, updates, equal timestamps, page
boundaries and overlapping runs, the published output holds every version that was
visible to a run exactly once, and the latest version of every alert."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertpull.config import parse_config
from alertpull.log import Progress
from alertpull.runner import FetchFlags, SourceRun
from alertpull.sinks import open_sink
from alertpull.state import open_state
from alertpull.timeutil import format_time, parse_time, utcnow
from tests.aws_env import REGION, aws_client_env
from tests.conftest import read_records
from tests.fakes.aws import AwsFake
from tests.fakes.guardduty_data import DETECTOR, make_finding

# Minutes before now at which alerts change; few distinct values -> many equal timestamps.
AGES = st.sampled_from([200, 150, 90, 61, 60, 59, 30, 10, 5])
STEP = st.one_of(
    st.tuples(st.just("new"), st.integers(1, 60), AGES),  # n alerts changed `age` min ago
    st.tuples(st.just("update"), st.integers(0, 10_000), AGES),  # an existing alert changes
    st.tuples(st.just("run"), st.just(0), st.just(0)),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    fake = AwsFake()
    fake.add_detector(REGION, DETECTOR, [])
    with fake:
        yield fake, tmp_path_factory.mktemp("prop")


def run_once(root: Path) -> None:
    config = parse_config({
        "state": {"backend": "local", "path": "state"},
        "sink": {"type": "jsonl", "path": "alerts"},
        "defaults": {"first_run_since": "6h"},
        "sources": {"aws": {"type": "guardduty", "regions": [REGION]}},
    }, str(root / "alertpull.yaml"))
    result = SourceRun(config.sources["aws"], open_state(config.state),
                       open_sink(config.sink), FetchFlags(), Progress(False)).run()
    assert result.status == "ok", result.error


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=12))
def test_every_visible_version_is_written_exactly_once(world: Any, steps: list[Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    fake, base = world
    for key, value in aws_client_env(fake.url).items():
        monkeypatch.setenv(key, value)
    root = Path(base) / f"example-{len(list(Path(base).iterdir()))}"
    root.mkdir()
    findings = fake.findings[(REGION, DETECTOR)]
    findings.clear()
    visible: set[tuple[str, str]] = set()  # (arn, updatedAt) current at some run
    ran = False
    for action, number, age in [*steps, ("run", 0, 0)]:
        # Once a run happened, news arrives at most as late as the overlap (1h) allows;
        # later than that is outside the guarantee (the README says so).
        changed = utcnow() - timedelta(minutes=min(age, 55) if ran else age)
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
        elif action == "run":
            run_once(root)
            ran = True
            visible |= {(f["arn"], f["updatedAt"]) for f in findings}
    records = read_records(root / "alerts")
    written = Counter((r["native_id"], r["raw"]["updatedAt"]) for r in records)
    assert set(written.values()) <= {1}, "a version was written twice"
    assert set(written) == visible, "a version visible to a run is missing"
