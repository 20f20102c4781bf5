"""`fetch --metrics-file PATH`: Prometheus text-format metrics of the run, per source.

Written once at the end of a run, for node_exporter's textfile collector: the file is
replaced atomically (a hidden temp file beside it, then a rename), so the collector never
reads half a file, and the temp name does not end in `.prom`, so it is never collected.
Each file describes the sources of the run that wrote it: give each cron line or timer
that runs a different set of sources its own file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from alertpull.errors import AlertpullError
from alertpull.fileutil import write_atomic
from alertpull.status import source_status
from alertpull.timeutil import parse_time

if TYPE_CHECKING:
    from alertpull.config import SourceConfig
    from alertpull.runner import SourceResult
    from alertpull.state.base import StateStore


class Metric(NamedTuple):
    name: str
    help: str


LAST_SUCCESS = Metric("alertpull_last_success_timestamp_seconds",
                      "Unix time the source last finished a run without error (0: never).")
DURATION = Metric("alertpull_last_run_duration_seconds",
                  "Wall-clock seconds of the source's last run.")
FETCHED = Metric("alertpull_last_run_alerts_fetched",
                 "Alerts read from the vendor in the source's last run.")
WRITTEN = Metric("alertpull_last_run_alerts_written",
                 "Alert versions written in the source's last run (new or changed).")
DEGRADED = Metric("alertpull_last_run_alerts_degraded",
                  "Alerts written as degraded records (their mapping failed) in the source's "
                  "last run.")
ERRORS = Metric("alertpull_last_run_errors",
                "1 when the source's last run failed (wholly or in some scope), else 0.")
LOCKED = Metric("alertpull_last_run_locked",
                "1 when the source was skipped because another run held its lock, else 0.")
LAG = Metric("alertpull_lag_seconds",
             "Seconds between now and the source's watermark (its most lagging scope).")
METRICS = (LAST_SUCCESS, DURATION, FETCHED, WRITTEN, DEGRADED, ERRORS, LOCKED, LAG)

Sample = tuple[Mapping[str, str], Mapping[Metric, float]]  # labels, values


def source_values(result: SourceResult, status: Mapping[str, Any] | None) -> dict[Metric, float]:
    """One source's values: this run's figures, and from its state the last success and lag
    (both absent when the state could not be read)."""
    values: dict[Metric, float] = {
        DURATION: result.seconds,
        FETCHED: result.counts.fetched,
        WRITTEN: result.counts.written,
        DEGRADED: result.counts.degraded,
        ERRORS: int(result.status == "failed"),
        LOCKED: int(result.status == "locked"),
    }
    if status is not None:
        success = status["last_success"]
        values[LAST_SUCCESS] = parse_time(success).timestamp() if success else 0
        if status["lag_seconds"] is not None:
            values[LAG] = status["lag_seconds"]
    return values


def run_metrics(sources: Iterable[SourceConfig], results: Iterable[SourceResult],
                store: StateStore) -> str:
    """The metrics file of a run: its results, plus what the state now says of each source."""
    samples: list[Sample] = []
    for source, result in zip(sources, results, strict=True):
        try:
            status = source_status(source, store.load(source.name)[0])
        except AlertpullError:  # unreadable state: the run's own figures still count
            status = None
        samples.append(({"source": source.name, "type": source.type},
                        source_values(result, status)))
    return render(samples)


def render(samples: Iterable[Sample]) -> str:
    """Prometheus text exposition format 0.0.4: each metric's HELP, TYPE, then its samples."""
    samples = list(samples)
    lines: list[str] = []
    for metric in METRICS:
        rows = [(labels, values[metric]) for labels, values in samples if metric in values]
        if not rows:
            continue
        lines += [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} gauge"]
        lines += [f"{metric.name}{{{_labels(labels)}}} {_number(value)}" for labels, value in rows]
    return "\n".join(lines) + "\n"


def write_metrics(path: str, text: str) -> None:
    # World-readable: node_exporter usually runs as another user, and nothing here is secret.
    write_atomic(path, text.encode(), mode=0o644)


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
