"""A degraded record (its mapping failed) is valid in the record schema and in OCSF."""

from __future__ import annotations

import logging

import pytest

from alertpull.connector import Scope
from alertpull.connectors.guardduty import GuardDutyConnector
from alertpull.degraded import degraded
from alertpull.ocsf import to_ocsf
from alertpull.record import build_record, raw_sha256
from alertpull.timeutil import format_time, utcnow
from tests.conftest import check_records
from tests.fakes.guardduty_data import make_finding
from tests.test_ocsf import check_ocsf
from tests.world import engine_settings

SCOPE = Scope("123456789012/us-east-1/d", {"account": "123456789012", "region": "us-east-1",
                                          "detector_id": "d"}, tenant="123456789012")


@pytest.mark.parametrize("unnamed", [False, True])
def test_a_degraded_record_is_schema_and_ocsf_valid(unnamed: bool) -> None:
    conn = GuardDutyConnector("aws", engine_settings(GuardDutyConnector, regions=["us-east-1"]),
                              logging.getLogger("test"))
    raw = {**make_finding(0), "service": ["not", "an", "object"]}
    if unnamed:
        del raw["arn"], raw["id"]
    with pytest.raises(Exception) as failed:  # either fault will do
        conn.normalize(SCOPE, raw)
    sha, now = raw_sha256(raw), utcnow()
    alert = degraded("guardduty", SCOPE, conn.landmarks(SCOPE), raw, sha, failed.value, now)
    [record] = check_records([build_record("aws", "guardduty", alert, raw, sha,
                                           format_time(now))])
    assert record["native_id"] == (f"sha256:{sha}" if unnamed else raw["arn"])
    assert record["normalize_error"].startswith(
        "GuardDuty finding has no id" if unnamed else "AttributeError: ")
    assert (record["severity"], record["status"], record["tenant"]) == (
        "unknown", "unknown", "123456789012")
    assert record["updated_at"] == format_time(alert.updated_at or now) != format_time(now)
    [event] = check_ocsf([to_ocsf(record, seen_before=False, vendor=conn.vendor)])
    assert event["unmapped"]["normalize_error"] == record["normalize_error"]
