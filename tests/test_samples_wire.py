"""Every real vendor payload in /work/shared (samples/ and corpus/, read in place, never
copied) goes over the wire: served by its connector's fake on 127.0.0.1, pulled by
`alertpull fetch` as cron runs it, and written as exactly one schema-valid record holding
the object verbatim in `raw`.

The fakes select by time, as their vendors do, and these payloads are months or years old
(past every retention): each object is served as changed about an hour ago, by rewriting the
field(s) its fake selects on. Every other field, odd or missing, goes out as found; the odd
times themselves are covered in-process by tests/test_corpus.py. Skips where /work/shared is
not there (a fresh CI machine)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alertpull.timeutil import format_time, utcnow
from tests.alertcenter_env import workspace_fixture  # noqa: F401
from tests.conftest import REPO, check_records
from tests.graph_env import graph_world, throwaway_ca  # noqa: F401
from tests.intune_env import intune_world  # noqa: F401
from tests.kandji_env import kandji_fixture  # noqa: F401
from tests.scc_env import scc_world  # noqa: F401

# Beside the checkout (/work/main), or beside the worktrees' folder (/work/wt/NAME).
SHARED = next((p / "shared" for p in (REPO.parent, REPO.parent.parent)
               if (p / "shared" / "samples").is_dir()), REPO.parent / "shared")
SAMPLES, CORPUS = SHARED / "samples", SHARED / "corpus"

Obj = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """Where one kind of payload goes: the world (fixture) whose fake serves it, the stream
    that pulls it, the fields that fake selects on, and the fake's list of such objects."""

    world: str
    stream: str | None
    time_fields: tuple[str, ...]  # dotted paths
    items: Callable[[Any], list[Obj]]
    ident: Callable[[Obj], Any] = lambda obj: obj.get("id")


TARGETS = {
    "guardduty": Target("aws", None, ("updatedAt",), lambda w: w.findings()),
    "entra_alerts": Target("graph_world", "alerts", ("lastUpdateDateTime",),
                           lambda w: w.fake.alerts),
    "entra_risk": Target("graph_world", "risk_detections", ("lastUpdatedDateTime",),
                         lambda w: w.fake.risk_detections),
    "intune_audit": Target("intune_world", "audit_events", ("activityDateTime",),
                           lambda w: w.fake.audit_events),
    "kandji_audit": Target("kandji", "audit_events", ("occurred_at",),
                           lambda w: w.fake.audit_events),
    "kandji_behavioral": Target("kandji", "behavioral_detections", ("detection_date",),
                                lambda w: w.fake.behavioral_detections),
    "kandji_threats": Target("kandji", "threat_details", ("detection_date",),
                             lambda w: w.fake.threat_details),
    "workspace": Target("workspace", None, ("createTime", "updateTime"),
                        lambda w: w.fake.alerts, ident=lambda obj: obj.get("alertId")),
    "scc": Target("scc", None, ("finding.eventTime",), lambda w: w.fake.results,
                  ident=lambda obj: (obj.get("finding") or {}).get("name")),
}


def _whole(data: Any) -> list[Obj]:
    return [data]


def _key(name: str) -> Callable[[Any], list[Obj]]:
    return lambda data: list(data[name])


# sample dir -> [(file name prefix, target, how the file holds its alerts)]
SAMPLE_FILES: dict[str, list[tuple[str, str, Callable[[Any], list[Obj]]]]] = {
    "aws_guardduty": [("finding_", "guardduty", _whole),
                      ("get_findings_response", "guardduty", _key("findings"))],
    "entra_id_protection": [("list_riskdetections", "entra_risk", _key("value"))],
    "ms_graph_security_alerts_v2": [("list_alerts_v2", "entra_alerts", _key("value"))],
    "mdm_intune": [("list_auditevents", "intune_audit", _key("value"))],
    "mdm_kandji": [("audit_events", "kandji_audit", _key("results")),
                   ("behavioral_detections", "kandji_behavioral", _key("results")),
                   ("threat_details", "kandji_threats", _key("results"))],
    "google_workspace_alertcenter": [("alert_", "workspace", _whole)],
    "gcp_scc": [("list_findings_result", "scc", _whole), ("notification_", "scc", _whole)],
}
# What in samples/ holds no alert to pull, and why: checked, so a new file is never skipped
# unnoticed.
NOT_ALERTS = {
    "SOURCE.txt": "provenance",
    "error_": "a vendor error answer (the connectors' error tests cover these)",
    "list_findings_response.json": "GuardDuty ListFindings ids only; the findings come from "
                                   "GetFindings",
    "list_findings_response_empty_page.json": "an empty SCC page",
}
# Named so that it is not silently passed over: Jamf Protect has no connector.
NO_WIRE_FAKE = {"mdm_jamf_protect"}
CORPUS_TARGETS = {"guardduty": "guardduty", "entra_alerts": "entra_alerts", "scc": "scc",
                  "kandji": "", "workspace": "workspace"}  # kandji: by file name, below


def sample_cases() -> Iterator[Any]:
    if not SAMPLES.is_dir():
        return
    for directory in sorted(p for p in SAMPLES.iterdir() if p.is_dir()):
        for path in sorted(directory.iterdir()):
            for prefix, target, pick in SAMPLE_FILES.get(directory.name, []):
                if path.name.startswith(prefix):
                    yield pytest.param(target, path, pick, id=f"{directory.name}/{path.stem}")


def corpus_cases() -> Iterator[Any]:
    if not CORPUS.is_dir():
        return
    for path in sorted(CORPUS.glob("*/*.json")):
        kind = path.parent.name
        if kind in NO_WIRE_FAKE:
            continue
        target = CORPUS_TARGETS[kind] or (
            "kandji_audit" if "audit" in path.name else "kandji_behavioral")
        yield pytest.param(target, path, _key("objects"), id=f"corpus/{kind}/{path.stem}")


def served_as_changed(obj: Obj, fields: tuple[str, ...], moment: str) -> Obj:
    """The object as its vendor would list it now: its selecting time(s) set to `moment`."""
    served = json.loads(json.dumps(obj))  # a deep copy: the shared files stay untouched
    for path in fields:
        *parents, name = path.split(".")
        holder = served
        for key in parents:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            holder[name] = moment
    return served


def served_by_scc_v2(obj: Obj) -> Obj:
    """SCC v2 names every finding with its location: a v1 name (…/sources/S/findings/F, as
    2019-2022 payloads carry) is listed as …/sources/S/locations/global/findings/F."""
    finding = obj.get("finding")
    if isinstance(finding, dict) and isinstance(finding.get("name"), str):
        parts = finding["name"].split("/")
        if len(parts) == 6 and parts[4] == "findings":
            finding["name"] = "/".join([*parts[:4], "locations", "global", *parts[4:]])
    return obj


def scc_sources(world: Any, served: list[Obj]) -> None:
    """One source per organization the findings belong to, as an SCC user would set up."""
    parents = sorted({"/".join(obj["finding"]["name"].split("/")[:2]) for obj in served})
    key = str(world.key_file.relative_to(world.root))
    world.fake.verbatim = True  # as found: the protos would refuse their unknown keys
    world.write_yaml({f"gcp-{n}": {"type": "scc", "parent": parent, "credentials_file": key,
                                   "api_endpoint": world.fake.url}
                      for n, parent in enumerate(parents)})


needs_shared = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"{SAMPLES} is not here")


@needs_shared
def test_every_sample_file_is_pulled_over_the_wire_or_named_as_holding_no_alert() -> None:
    for directory in (p for p in SAMPLES.iterdir() if p.is_dir()):
        if directory.name in NO_WIRE_FAKE:
            continue
        for path in directory.iterdir():
            mapped = any(path.name.startswith(prefix)
                         for prefix, _, _ in SAMPLE_FILES.get(directory.name, []))
            skipped = any(path.name.startswith(prefix) for prefix in NOT_ALERTS)
            assert mapped != skipped, f"{path}: map it to a target, or say why it holds none"
    kinds = {p.name for p in CORPUS.iterdir() if p.is_dir()} if CORPUS.is_dir() else set()
    assert kinds <= set(CORPUS_TARGETS) | NO_WIRE_FAKE, kinds


@needs_shared
@pytest.mark.parametrize(("target_name", "path", "pick"), [*sample_cases(), *corpus_cases()])
def test_every_real_payload_pulled_through_its_fake_is_one_valid_record(
        request: pytest.FixtureRequest, target_name: str, path: Path,
        pick: Callable[[Any], list[Obj]]) -> None:
    target = TARGETS[target_name]
    world = request.getfixturevalue(target.world)
    # One second apart: two objects of one id (a finding seen twice) stay two versions.
    start = utcnow() - timedelta(hours=1)
    served = [served_as_changed(obj, target.time_fields, format_time(start + timedelta(seconds=n)))
              for n, obj in enumerate(pick(json.loads(path.read_text())))]
    assert served, f"{path} holds no object"
    if target.stream:
        world.write_config(streams=[target.stream])
    if target_name == "scc":
        served = [served_by_scc_v2(obj) for obj in served]
        scc_sources(world, served)

    # A vendor holds one state per id: objects sharing an id (one finding seen at several
    # severities) are its successive versions, listed by successive runs.
    for listed in rounds(served, target.ident):
        target.items(world)[:] = listed
        result = world.fetch()
        assert result.returncode == 0, result.stderr

    records = check_records(world.records())
    distinct = {json.dumps(obj, sort_keys=True) for obj in served}
    assert len(records) == len(distinct), result.stderr
    assert {json.dumps(r["raw"], sort_keys=True) for r in records} == distinct


def rounds(objects: list[Obj], ident_of: Callable[[Obj], Any]) -> list[list[Obj]]:
    """The objects in as few lists as hold each id at most once, in their order."""
    lists: list[list[Obj]] = []
    seen: dict[str, int] = {}
    for obj in objects:
        ident = json.dumps(ident_of(obj) if isinstance(obj, dict) else None)
        index = seen[ident] = seen.get(ident, -1) + 1
        if index == len(lists):
            lists.append([])
        lists[index].append(obj)
    return lists
