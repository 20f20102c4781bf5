"""`fetch --metrics-file PATH`: Prometheus text metrics for node_exporter's textfile
collector, written at the end of every run (failed ones too) and replaced atomically."""

from __future__ import annotations

import fcntl
import os
import re
import stat
import time
from pathlib import Path

import pytest

from alertpull.fileutil import write_atomic
from alertpull.metrics import ERRORS, WRITTEN, render
from tests.aws_env import AwsWorld
from tests.world import hours_ago

NAMES = {
    "alertpull_last_success_timestamp_seconds",
    "alertpull_last_run_duration_seconds",
    "alertpull_last_run_alerts_fetched",
    "alertpull_last_run_alerts_written",
    "alertpull_last_run_alerts_degraded",
    "alertpull_last_run_errors",
    "alertpull_last_run_locked",
    "alertpull_lag_seconds",
}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_prometheus(text: str) -> Samples:
    """A strict little parser of the text exposition format: every sample has a TYPE
    declared before it, labels are well quoted, values are numbers."""
    assert text.endswith("\n")
    declared: dict[str, str] = {}
    samples: Samples = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.removeprefix("# TYPE ").split(" ")
            assert kind in {"gauge", "counter"} and name not in declared
            declared[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, label_text, value = match.groups()
        assert name in declared, f"{name} has no TYPE line before it"
        labels = _labels(label_text or "")
        assert (name, labels) not in samples, f"duplicate sample {line!r}"
        samples[(name, labels)] = float(value)
    return samples


def _labels(text: str) -> tuple[tuple[str, str], ...]:
    pairs, position = [], 0
    while position < len(text):
        match = _LABEL.match(text, position)
        assert match, f"bad labels {text!r}"
        raw = match.group(2)
        pairs.append((match.group(1), re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(
            m.group(1), m.group(1)), raw)))
        position = match.end()
    return tuple(sorted(pairs))


def metric(samples: Samples, name: str, source: str) -> float | None:
    found = [v for (n, labels), v in samples.items() if n == name and ("source", source) in labels]
    assert len(found) <= 1
    return found[0] if found else None


def metrics_path(aws: AwsWorld) -> Path:
    directory = aws.root / "textfile"
    directory.mkdir(exist_ok=True)
    return directory / "alertpull.prom"


def test_a_good_run_writes_every_metric_per_source(aws: AwsWorld) -> None:
    aws.add(4, first=0, base_time=hours_ago(2))
    path = metrics_path(aws)
    before = time.time()
    result = aws.fetch("--metrics-file", str(path))
    assert result.returncode == 0, result.stderr
    samples = parse_prometheus(path.read_text())
    assert {name for name, _ in samples} == NAMES
    assert {labels for _, labels in samples} == {(("source", "aws"), ("type", "guardduty"))}
    assert metric(samples, "alertpull_last_run_alerts_written", "aws") == 4
    assert metric(samples, "alertpull_last_run_alerts_fetched", "aws") == 4
    assert metric(samples, "alertpull_last_run_alerts_degraded", "aws") == 0
    assert metric(samples, "alertpull_last_run_errors", "aws") == 0
    assert metric(samples, "alertpull_last_run_locked", "aws") == 0
    assert 0 < (metric(samples, "alertpull_last_run_duration_seconds", "aws") or 0) < 60
    success = metric(samples, "alertpull_last_success_timestamp_seconds", "aws") or 0
    assert before - 1 <= success <= time.time() + 1
    assert 0 <= (metric(samples, "alertpull_lag_seconds", "aws") or -1) < 600
    # Readable by node_exporter's user; no temp file left beside it.
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == ["alertpull.prom"]


def test_metrics_are_written_when_a_source_fails(aws: AwsWorld) -> None:
    aws.add(3, first=0, base_time=hours_ago(2))
    aws.write_config(sources={
        "aws": {"type": "guardduty", "regions": ["us-east-1"]},
        "broken": {"type": "guardduty", "regions": ["us-east-1"],
                   "endpoint_url": "http://127.0.0.1:9", "max_retries": 0},  # nothing listens there
    })
    path = metrics_path(aws)
    result = aws.fetch("--metrics-file", str(path))
    assert result.returncode == 1
    samples = parse_prometheus(path.read_text())
    assert metric(samples, "alertpull_last_run_errors", "broken") == 1
    assert metric(samples, "alertpull_last_run_errors", "aws") == 0
    assert metric(samples, "alertpull_last_success_timestamp_seconds", "broken") == 0
    assert metric(samples, "alertpull_lag_seconds", "broken") is None  # no watermark yet
    assert metric(samples, "alertpull_last_run_alerts_written", "aws") == 3
    # The next good run clears the error.
    aws.write_config()
    assert aws.fetch("--metrics-file", str(path)).returncode == 0
    samples = parse_prometheus(path.read_text())
    assert metric(samples, "alertpull_last_run_errors", "aws") == 0
    assert metric(samples, "alertpull_last_run_errors", "broken") is None


def test_a_locked_source_is_reported_as_locked_not_failed(aws: AwsWorld) -> None:
    path = metrics_path(aws)
    aws.state.mkdir()
    with open(aws.state / "aws.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = aws.fetch("--metrics-file", str(path))
    assert result.returncode == 75
    samples = parse_prometheus(path.read_text())
    assert metric(samples, "alertpull_last_run_locked", "aws") == 1
    assert metric(samples, "alertpull_last_run_errors", "aws") == 0


def test_the_file_is_replaced_by_a_rename_never_rewritten_in_place(aws: AwsWorld) -> None:
    path = metrics_path(aws)
    path.write_text("# old metrics\n")
    with open(path) as old:  # a reader that opened the file before the run…
        old_inode = os.fstat(old.fileno()).st_ino
        assert aws.fetch("--metrics-file", str(path)).returncode == 0
        assert old.read() == "# old metrics\n"  # …still reads the whole old file
        assert path.stat().st_ino != old_inode
    assert parse_prometheus(path.read_text())
    assert os.listdir(path.parent) == ["alertpull.prom"]


def test_a_failed_write_leaves_the_old_file_whole_and_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "alertpull.prom"
    path.write_text("old\n")

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_atomic(str(path), b"new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["alertpull.prom"]


def test_a_missing_directory_stops_the_run_before_it_pulls(aws: AwsWorld) -> None:
    aws.add(3, first=0, base_time=hours_ago(2))
    result = aws.fetch("--metrics-file", str(aws.root / "nowhere" / "alertpull.prom"))
    assert result.returncode == 2
    assert "--metrics-file" in result.stderr and "does not exist" in result.stderr
    assert aws.fake.requests == []


def test_an_unwritable_metrics_file_fails_the_run_but_keeps_the_alerts(aws: AwsWorld) -> None:
    aws.add(3, first=0, base_time=hours_ago(2))
    path = metrics_path(aws)
    path.mkdir()  # a directory where the file must go: the rename fails
    result = aws.fetch("--metrics-file", str(path))
    assert result.returncode == 1
    assert "cannot write metrics file" in result.stderr and "Traceback" not in result.stderr
    assert len(aws.records()) == 3


def test_render_escapes_label_values_and_formats_numbers() -> None:
    labels = {"source": 'we"ird\\name\n', "type": "guardduty"}
    text = render([(labels, {WRITTEN: 12, ERRORS: 0.0}), ({"source": "b", "type": "x"},
                                                          {WRITTEN: 1.5})])
    samples = parse_prometheus(text)
    assert samples[("alertpull_last_run_alerts_written",
                    (("source", 'we"ird\\name\n'), ("type", "guardduty")))] == 12
    assert "alertpull_last_run_alerts_written{source=\"b\",type=\"x\"} 1.5\n" in text
    assert "alertpull_last_run_errors{source=\"we\\\"ird\\\\name\\n\",type=\"guardduty\"} 0\n" \
        in text
    assert text.count("# TYPE alertpull_last_run_alerts_written gauge") == 1
