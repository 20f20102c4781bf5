"""Every object of the shared corpus of real vendor payloads (/work/shared/corpus, read in
place, never copied) yields one schema-valid record and one valid OCSF event, in-process
through its connector's normalize; tests/test_samples_wire.py pulls them over the wire."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertpull.connector import Connector, Scope
from alertpull.connectors.entra_id import EntraIdConnector
from alertpull.connectors.guardduty import GuardDutyConnector
from alertpull.connectors.kandji import KandjiConnector
from alertpull.connectors.scc import SccConnector
from alertpull.connectors.workspace_alertcenter import AlertCenterConnector
from alertpull.degraded import degraded
from alertpull.ocsf import to_ocsf
from alertpull.record import build_record, raw_sha256
from alertpull.timeutil import format_time, utcnow
from tests.conftest import REPO, check_records
from tests.graph_env import connector_settings as entra_settings
from tests.test_ocsf import check_ocsf
from tests.world import engine_settings

# Beside the checkout (/work/main), or beside the worktrees' folder (/work/wt/NAME).
CORPUS = next((p / "shared" / "corpus" for p in (REPO.parent, REPO.parent.parent)
               if (p / "shared" / "corpus").is_dir()), REPO.parent / "shared" / "corpus")
LOG = logging.getLogger("test")


def _connector(kind: str, name: str) -> tuple[Connector, Scope]:
    if kind == "guardduty":
        conn: Connector = GuardDutyConnector(
            "aws", engine_settings(GuardDutyConnector, regions=["us-east-1"]), LOG)
        return conn, Scope("1/us-east-1/d", {"account": "1", "region": "us-east-1",
                                             "detector_id": "d"}, tenant="1")
    if kind == "scc":
        conn = SccConnector("scc", engine_settings(SccConnector, parent="organizations/1"), LOG)
    elif kind == "workspace":
        conn = AlertCenterConnector("ws", engine_settings(
            AlertCenterConnector, credentials_file="k.json", subject="a@example.com"), LOG)
    elif kind == "entra_alerts":
        conn = EntraIdConnector("entra", entra_settings(None), LOG)
    else:
        conn = KandjiConnector("kandji", engine_settings(
            KandjiConnector, base_url="https://acme.api.kandji.io", api_token="t"), LOG)
    stream = ("alerts" if kind == "entra_alerts" else
              "audit_events" if "audit" in name else "behavioral_detections")
    scopes = conn.scopes()
    return conn, next((s for s in scopes if s.params.get("stream") == stream), scopes[0])


def corpus() -> Iterator[Any]:
    if not CORPUS.is_dir():
        return
    for path in sorted(CORPUS.glob("*/*.json")):
        for index, obj in enumerate(json.loads(path.read_text())["objects"]):
            yield pytest.param(path.parent.name, path.name, obj, id=f"{path.stem}-{index}")


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the shared corpus is not at {CORPUS}")
@pytest.mark.parametrize(("kind", "name", "raw"), list(corpus()))
def test_every_corpus_object_yields_one_valid_record(kind: str, name: str, raw: Any) -> None:
    conn, scope = _connector(kind, name)
    alert = conn.normalize(scope, raw)
    record = build_record("src", conn.type_name, alert, raw, raw_sha256(raw),
                          format_time(utcnow()))
    check_records([record])
    check_ocsf([to_ocsf(record, seen_before=False, vendor=conn.vendor)])


MUTATIONS = ("delete", "null", "list", "nest", "number")


def _mutated(raw: dict[str, Any], key: str, how: str) -> dict[str, Any]:
    changed = dict(raw)
    if how == "delete":
        del changed[key]
    else:
        changed[key] = {"null": None, "list": [raw[key]], "nest": {"value": raw[key]},
                        "number": 7}[how]
    return changed


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the shared corpus is not at {CORPUS}")
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_mutated_corpus_object_still_yields_exactly_one_valid_record(data: Any) -> None:
    kind, name, raw = data.draw(st.sampled_from([p.values for p in corpus()]))
    key = data.draw(st.sampled_from(sorted(raw)))
    changed = _mutated(raw, key, data.draw(st.sampled_from(MUTATIONS)))
    conn, scope = _connector(kind, name)
    sha, now = raw_sha256(changed), utcnow()
    try:
        alert = conn.normalize(scope, changed)
    except Exception as exc:  # what the engine does with it (alertpull.pull)
        alert = degraded(conn.type_name, scope, conn.landmarks(scope), changed, sha, exc, now)
    [record] = check_records([build_record("src", conn.type_name, alert, changed, sha,
                                           format_time(now))])
    assert record["raw"] == changed
