"""`alertpull alerts`: the current state of every alert from the published log, run as
the installed CLI against real output of `fetch` (local JSONL, gzip, S3)."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import shutil
import subprocess
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alertpull.alerts.reader import LocalLog
from alertpull.alerts.view import Query, current, open_alerts, summarize
from alertpull.errors import SourceError
from alertpull.record import SEVERITY_IDS
from tests.aws_env import AwsWorld
from tests.conftest import ALERTPULL
from tests.fakes.alert_log import lines, write_log
from tests.fakes.receiver import Receiver
from tests.s3_fixtures import fake_aws_env, moto_server, unique_bucket
from tests.world import hours_ago

TWO_SOURCES = {"aws": {"type": "guardduty", "regions": ["us-east-1"]},
               "aws-eu": {"type": "guardduty", "regions": ["eu-west-1"]}}


def latest(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    current: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: (r["updated_at"], r["pulled_at"])):
        current[record["id"]] = record
    return current


def updated(aws: AwsWorld, index: int, *, archived: bool = False) -> None:
    finding = aws.findings()[index]
    finding["service"]["count"] += 1
    finding["service"]["archived"] = archived
    finding["updatedAt"] = hours_ago(0.1).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def two_runs(aws: AwsWorld, **config: Any) -> None:
    """Two sources; then a second run where three alerts change, one of them archived."""
    aws.fake.add_detector("eu-west-1", "ffffeeee", [])
    aws.add(14, first=0, base_time=hours_ago(0.9))
    aws.write_config(sources=TWO_SOURCES, **config)
    assert aws.fetch().returncode == 0
    updated(aws, 0, archived=True)
    updated(aws, 1)
    updated(aws, 2)
    assert aws.fetch().returncode == 0


def alerts_json(aws: AwsWorld, *args: str, **env: str) -> list[dict[str, Any]]:
    result = aws.cli("alerts", "--format", "json", *args, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_alerts_prints_the_latest_version_of_each_alert_newest_first(
        aws: AwsWorld, compression: str) -> None:
    two_runs(aws, sink={"type": "jsonl", "path": "alerts", "compression": compression})
    records = aws.records()
    assert len(records) == 17
    expected = latest(records)
    shown = alerts_json(aws)
    assert [a["id"] for a in shown] == [r["id"] for r in sorted(
        expected.values(), key=lambda r: (r["updated_at"], r["pulled_at"], r["id"]), reverse=True)]
    assert shown == [expected[a["id"]] for a in shown]  # whole records, raw included
    assert shown[0]["count"] == expected[shown[0]["id"]]["count"]


def test_filters_select_on_the_current_state(aws: AwsWorld) -> None:
    two_runs(aws)
    current = list(latest(aws.records()).values())
    open_high = {a["id"] for a in current if a["status"] in ("new", "in_progress")
                 and SEVERITY_IDS[a["severity"]] >= SEVERITY_IDS["high"]}
    assert 0 < len(open_high) < len(current)
    assert {a["id"] for a in alerts_json(aws, "--status", "open", "--severity", "high")} \
        == open_high
    archived = [a for a in alerts_json(aws, "--status", "archived")]
    assert [a["native_id"] for a in archived] == [aws.findings()[0]["arn"]]
    assert alerts_json(aws, "--source", "aws-eu") == []  # that detector has no findings
    assert len(alerts_json(aws, "--limit", "3")) == 3
    jsonl = aws.cli("alerts", "--format", "jsonl", "--limit", "2")
    assert [json.loads(line)["id"] for line in jsonl.stdout.splitlines()] == [
        a["id"] for a in alerts_json(aws, "--limit", "2")]
    rows = list(csv.DictReader(io.StringIO(aws.cli("alerts", "--format", "csv").stdout)))
    assert len(rows) == 14 and rows[0]["id"] == alerts_json(aws)[0]["id"]
    assert {"severity", "status", "source", "title", "link"} <= set(rows[0])
    bad = aws.cli("alerts", "--source", "nope")
    assert bad.returncode == 2 and "--source nope: no such source" in bad.stderr


def test_since_reads_only_the_partitions_it_needs(aws: AwsWorld) -> None:
    two_runs(aws)
    # An old partition that cannot be read: a query since yesterday must not open it.
    old = aws.alerts / "source=aws" / "dt=2020-01-01"
    old.mkdir()
    (old / "000000-deadbeef-00000000.jsonl").write_text("not json\n")
    recent = alerts_json(aws, "--since", "1d")
    assert len(recent) == 14
    assert [a["id"] for a in alerts_json(aws, "--since", "15m")] == [
        a["id"] for a in recent[:3]]  # only the three updated in the second run
    everything = aws.cli("alerts")
    assert everything.returncode == 1
    assert f"{old / '000000-deadbeef-00000000.jsonl'} line 1 is not JSON" in everything.stderr
    assert "Traceback" not in everything.stderr


def test_summary_counts_open_alerts_by_source_and_severity(aws: AwsWorld) -> None:
    two_runs(aws)
    opened = [a for a in latest(aws.records()).values() if a["status"] == "new"]
    result = aws.cli("alerts", "--summary", "--format", "json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    counts = Counter(a["severity"] for a in opened)
    assert row["source"] == "aws" and row["open"] == len(opened) == 13
    assert {s: row[s] for s in SEVERITY_IDS} == {s: counts.get(s, 0) for s in SEVERITY_IDS}
    oldest = min(a["created_at"] for a in opened)
    assert row["oldest_open_age"].endswith(("h", "m")) and oldest < opened[0]["updated_at"]
    table = aws.cli("alerts", "--summary").stdout.splitlines()
    assert table[0].split() == ["SOURCE", "CRITICAL", "HIGH", "MEDIUM", "LOW",
                                "INFORMATIONAL", "UNKNOWN", "OPEN", "OLDEST", "OPEN"]
    assert table[1].split()[:8] == ["aws", *(str(counts.get(s, 0)) for s in (
        "critical", "high", "medium", "low", "informational", "unknown")), "13"]


def test_show_lists_an_alerts_versions_and_what_changed(aws: AwsWorld) -> None:
    two_runs(aws)
    arn = aws.findings()[0]["arn"]
    result = aws.cli("alerts", "show", arn)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    [first, second] = [line for line in lines if line.startswith("v")]
    assert "status new" in first and "status archived" in second
    before, after = [r for r in sorted(aws.records(), key=lambda r: r["updated_at"])
                     if r["native_id"] == arn]
    assert f"    changed: status new -> archived; count {before['count']} -> " \
           f"{after['count']}" in lines
    by_id = aws.cli("alerts", "show", after["id"], "--format", "json")
    assert [v["raw_sha256"] for v in json.loads(by_id.stdout)] == [
        before["raw_sha256"], after["raw_sha256"]]
    missing = aws.cli("alerts", "show", "no-such-alert")
    assert missing.returncode == 2 and "no alert no-such-alert in the log" in missing.stderr


def test_the_table_is_fitted_and_coloured_on_a_terminal_only(aws: AwsWorld) -> None:
    two_runs(aws)
    plain = aws.cli("alerts").stdout
    assert "\x1b[" not in plain
    header = plain.splitlines()[0]
    assert header.split() == ["UPDATED_AT", "SEVERITY", "STATUS", "SOURCE", "TENANT", "TITLE",
                              "ID"]
    at = header.index("  ID") + 2  # columns line up: every id starts under its header
    ids = [line[at:] for line in plain.splitlines()[1:]]
    assert ids == [a["id"] for a in alerts_json(aws)]
    main, child = pty.openpty()
    os.set_blocking(main, True)
    env = {**aws.env, "COLUMNS": "100", "TERM": "xterm"}
    process = subprocess.Popen([ALERTPULL, "-c", str(aws.config_path), "alerts"], env=env,
                               stdout=child, stderr=subprocess.PIPE)
    os.close(child)
    output = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    assert process.wait() == 0
    screen = output.decode()
    assert "\x1b[31m" in screen  # high/critical in red
    for line in screen.splitlines():
        assert len(_visible(line)) <= 100  # titles cut to fit the terminal
    assert "…" in screen


def _visible(line: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip("\r")


def test_a_log_of_ocsf_events_or_a_stdout_sink_is_a_clear_error(aws: AwsWorld) -> None:
    aws.add(2, first=0, base_time=hours_ago(0.5))
    aws.write_config(sink={"type": "jsonl", "path": "alerts", "format": "ocsf"})
    assert aws.fetch().returncode == 0
    ocsf = aws.cli("alerts")
    assert ocsf.returncode == 2 and "reads the native format" in ocsf.stderr
    aws.write_config(sink={"type": "stdout"})
    stdout = aws.cli("alerts")
    assert stdout.returncode == 2 and "the stdout sink keeps no log" in stdout.stderr


def _peak_bytes(run: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_grows_by_a_small_entry_per_alert_never_by_its_line(tmp_path: Path) -> None:
    """The log is streamed: what a pass holds grows by a few hundred bytes per alert (its
    id, order and place), not by its ~1.8 KB line, let alone its parsed record (~10x)."""
    peaks: dict[int, list[int]] = {}
    for count in (5_000, 20_000):
        write_log(tmp_path / str(count), count, count)  # every line its own alert
        log = LocalLog(str(tmp_path / str(count)))
        shown: list[dict[str, Any]] = []
        peaks[count] = [
            _peak_bytes(lambda: shown.extend(current(log, Query(limit=5)))),  # noqa: B023
            _peak_bytes(lambda: summarize(open_alerts(log, Query()))),  # noqa: B023
        ]
        newest = [line for _, _, line in lines(count, count)][-5:]
        assert [a["raw"]["id"] for a in shown] == [  # the newest five, whole
            json.loads(line)["raw"]["id"] for line in reversed(newest)]
    line_size = len(next(lines(1, 1))[2])
    assert line_size > 1500
    for small, large in zip(peaks[5_000], peaks[20_000], strict=True):
        per_alert = (large - small) / 15_000
        assert per_alert < line_size / 2, (small, large)


def test_the_head_of_a_line_is_read_only_when_it_is_the_records_own(tmp_path: Path) -> None:
    """A `"raw":` key nested in a field before raw does not cut the line short."""
    record = json.loads(next(lines(1, 1))[2])
    nested = {**{k: v for k, v in record.items() if k not in ("raw", "raw_sha256")},
              "evidence": {"kind": "x", "raw": {"status": "resolved"}}, "raw": record["raw"],
              "raw_sha256": record["raw_sha256"]}
    part = tmp_path / "source=aws-prod" / "dt=2026-12-01" / "000001-run-0000.jsonl"
    part.parent.mkdir(parents=True)
    part.write_text(json.dumps(nested, separators=(",", ":")) + "\n")
    [shown] = current(LocalLog(str(tmp_path)), Query(), ("id", "status"))
    assert shown == {"id": record["id"], "status": record["status"]}
    cut = part.with_name("000002-run-0000.jsonl")  # a line cut short inside its raw
    cut.write_bytes(next(lines(2, 2))[2][:-40] + b"\n")
    with pytest.raises(SourceError, match=f"{cut} line 1 is not JSON"):
        summarize(open_alerts(LocalLog(str(tmp_path)), Query()))


def test_alerts_and_notify_read_an_s3_log(aws: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_env(monkeypatch)
    aws.add(6, first=0, base_time=hours_ago(0.8))
    bucket = unique_bucket()
    import boto3

    with moto_server() as endpoint, Receiver() as receiver:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        aws.write_config(sink={"type": "s3", "bucket": bucket, "prefix": "log",
                               "spool_dir": str(aws.root / "spool")},
                         notify=[{"type": "webhook", "url": receiver.url, "retries": 0}])
        result = aws.fetch(AWS_ENDPOINT_URL_S3=endpoint)
        assert result.returncode == 0, result.stderr
        shown = alerts_json(aws, "--since", "1d", AWS_ENDPOINT_URL_S3=endpoint)
        assert sorted(a["native_id"] for a in shown) == sorted(f["arn"] for f in aws.findings())
        assert sorted(json.loads(r.body)["id"] for r in receiver.accepted) == sorted(
            a["id"] for a in shown)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url: str, profile: Path, *args: str) -> str:
    assert CHROMIUM, "chromium is needed (make test installs it)"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", *args, url],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_html_report_shows_charts_and_a_sortable_table_in_a_browser(
        aws: AwsWorld, tmp_path: Path) -> None:
    from html.parser import HTMLParser

    two_runs(aws)
    page = tmp_path / "report.html"
    result = aws.cli("alerts", "--format", "html", "-o", str(page))
    assert result.returncode == 0, result.stderr
    text = page.read_text()
    assert "<script src" not in text and "<link" not in text and "@import" not in text
    current = latest(aws.records()).values()
    opened = [a for a in current if a["status"] == "new"]

    class Page(HTMLParser):
        """What a person sees: table rows (cells' text), chart bars, links."""

        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []
            self.bars: list[dict[str, str]] = []
            self.days: list[dict[str, str]] = []
            self.links: list[str] = []
            self.sorted_by: str | None = None
            self._cell: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = {k: v or "" for k, v in attrs}
            if tag == "tr" and "data-id" in values:
                self.rows.append([])
            elif tag == "td" and self.rows:
                self._cell = []
            elif tag == "rect":
                (self.bars if values.get("class") == "bar" else self.days).append(values)
            elif tag == "a":
                self.links.append(values["href"])
            elif tag == "th" and "aria-sort" in values:
                self.sorted_by = f"{values['data-key']}:{values['aria-sort']}"

        def handle_data(self, data: str) -> None:
            if self._cell is not None:
                self._cell.append(data)

        def handle_endtag(self, tag: str) -> None:
            if tag == "td" and self._cell is not None:
                self.rows[-1].append("".join(self._cell).strip())
                self._cell = None

    def seen(fragment: str) -> Page:
        dom = chromium(f"{page.as_uri()}{fragment}", tmp_path / f"profile{fragment[1:5]}",
                       "--dump-dom")  # the DOM after the page's script ran
        parsed = Page()
        parsed.feed(dom)
        return parsed

    shown = seen("")
    assert len(shown.rows) == len(opened) == 13
    assert {row[1] for row in shown.rows} == {a["title"] for a in opened}
    assert sorted(shown.links) == sorted(a["link"] for a in opened)
    by_severity = Counter(a["severity"] for a in opened)
    assert {b["data-severity"]: int(b["data-count"]) for b in shown.bars} == by_severity
    assert {b["data-source"] for b in shown.bars} == {"aws"}
    assert sum(int(d["data-count"]) for d in shown.days) == 14  # every alert was created lately
    assert [row[0] for row in shown.rows] == sorted(
        (row[0] for row in shown.rows), key=lambda s: -SEVERITY_IDS[s])  # most severe first

    by_title = seen("#sort=title:asc")
    assert by_title.sorted_by == "title:ascending"
    assert [row[1] for row in by_title.rows] == sorted(row[1] for row in shown.rows)
    oldest_first = seen("#sort=age:desc")
    ages = {a["title"]: a["created_at"] for a in opened}
    assert [ages[row[1]] for row in oldest_first.rows] == sorted(
        ages[row[1]] for row in oldest_first.rows)
