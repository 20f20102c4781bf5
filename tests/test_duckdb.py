"""The DuckDB example of docs/working-with-the-log.md, run as written on real output of the
installed CLI: the latest version of each alert out of the Hive-partitioned JSONL, plain and
gzip."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.aws_env import AwsWorld
from tests.conftest import REPO
from tests.world import hours_ago

duckdb = pytest.importorskip("duckdb")


def documented_sql() -> list[str]:
    """The statements of the DuckDB example in docs/working-with-the-log.md."""
    page = (REPO / "docs" / "working-with-the-log.md").read_text()
    for block in re.findall(r"```sql\n(.*?)```", page, re.S):
        if "QUALIFY" in block and "read_json" in block:
            return [s.strip() for s in block.split(";") if _code(s)]
    raise AssertionError("no DuckDB example (```sql with read_json and QUALIFY) in the docs")


def _code(statement: str) -> str:
    return "\n".join(line for line in statement.splitlines()
                     if line.strip() and not line.strip().startswith("--"))


def latest(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    current: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: (r["updated_at"], r["pulled_at"])):
        current[record["id"]] = record
    return current


def test_the_documented_query_returns_the_latest_version_of_each_alert(
        aws: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    aws.add(12, first=0, base_time=hours_ago(0.9))
    assert aws.fetch().returncode == 0
    for index, finding in enumerate(aws.findings()[:4]):  # four alerts change
        finding["service"]["count"] += 1
        finding["service"]["archived"] = index == 0
        finding["updatedAt"] = hours_ago(0.3).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    aws.write_config(sink={"type": "jsonl", "path": "alerts", "compression": "gzip"})
    assert aws.fetch().returncode == 0
    records = aws.records()
    assert len(records) == 16 and len({r["id"] for r in records}) == 12
    expected = latest(records)
    plant_a_file_still_being_written(aws.alerts, records[0])

    monkeypatch.chdir(aws.root)
    view, open_by_severity = documented_sql()
    db = duckdb.connect()
    db.execute(view)
    got = db.execute("SELECT id, native_id, count, status, source, dt FROM alerts").fetchall()
    assert len(got) == 12
    assert {str(row[0]): (row[1], row[2], row[3]) for row in got} == {
        i: (r["native_id"], r["count"], r["status"]) for i, r in expected.items()}
    assert {row[4] for row in got} == {"aws"} and all(row[5] for row in got)

    still_open = Counter((r["source"], r["severity"]) for r in expected.values()
                         if r["status"] not in ("resolved", "archived", "deleted"))
    assert sum(still_open.values()) == 11
    answer = db.execute(open_by_severity).fetchall()
    assert {(source, severity): n for source, severity, n in answer} == still_open


def plant_a_file_still_being_written(root: Path, record: dict[str, Any]) -> None:
    """A staged part as a run leaves it mid-write, with a 'newer' version no query may see."""
    partition = next(root.glob("source=aws/dt=*"))
    bogus = {**record, "updated_at": "2999-01-01T00:00:00.000Z", "count": 999}
    (partition / ".235959-deadbeef-00000000.jsonl.tmp").write_text(json.dumps(bogus) + "\n")
