"""The suricata source, file mode: incremental reads of eve.json through logrotate's
rotations, the mapping, bad input. Run through the installed CLI, as cron would."""

from __future__ import annotations

import gzip
import os
import signal
from pathlib import Path

import pytest

from alertpull.connector import Scope
from alertpull.connectors.suricata import SuricataConnector, native_id, normalize_eve
from tests.conftest import clean_env
from tests.suricata_env import SuricataWorld, eve_alert, line, noise
from tests.test_crash import POINTS


@pytest.fixture
def ids(tmp_path: Path) -> SuricataWorld:
    world = SuricataWorld(root=tmp_path, env=clean_env())
    world.write_config()
    return world


def fetch_ok(world: SuricataWorld) -> str:
    result = world.fetch()
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return str(result.stderr)


# -- incremental reads ----------------------------------------------------------------------


def test_appends_are_read_from_the_committed_offset(ids: SuricataWorld) -> None:
    ids.write_alerts(5)
    fetch_ok(ids)
    ids.assert_each_alert_once()
    assert ids.last_counts()["fetched"] == 5  # the flow lines are not alerts
    fetch_ok(ids)
    assert ids.last_counts()["fetched"] == 0  # nothing read again
    ids.write_alerts(3)
    fetch_ok(ids)
    assert ids.last_counts()["fetched"] == 3
    ids.assert_each_alert_once()


def test_a_line_being_written_is_left_for_the_next_run(ids: SuricataWorld) -> None:
    ids.write_alerts(2)
    whole = line(eve_alert(99))
    ids.append(whole[:40])  # the sensor is mid-write
    fetch_ok(ids)
    assert ids.last_counts()["fetched"] == 2
    ids.append(whole[40:])
    ids.written.append(99)
    fetch_ok(ids)
    assert ids.last_counts()["fetched"] == 1
    ids.assert_each_alert_once()


def test_rename_rotation_then_compression_loses_and_repeats_nothing(ids: SuricataWorld) -> None:
    ids.write_alerts(4)
    fetch_ok(ids)
    # Suricata writes on into the renamed file until its HUP reopens eve.json.
    ids.rotate_rename()
    ids.write_alerts(3, to=ids.logs / "eve.json.1")
    ids.write_alerts(2)  # the new eve.json
    fetch_ok(ids)
    ids.assert_each_alert_once()
    ids.write_alerts(2, to=ids.logs / "eve.json.1")  # late lines after that run, before gzip
    ids.compress("eve.json.1")  # a new inode, the same first line
    ids.write_alerts(1)
    fetch_ok(ids)
    ids.assert_each_alert_once()
    assert ids.last_counts()["duplicates"] == 0
    ids.rotate_rename()  # eve.json.1.gz -> eve.json.2.gz, eve.json -> eve.json.1
    ids.compress("eve.json.1")
    ids.write_alerts(2)
    fetch_ok(ids)
    assert ids.last_counts()["fetched"] == 2  # the gzip copies are not read again
    ids.assert_each_alert_once()


def test_copytruncate_then_compression_loses_and_repeats_nothing(ids: SuricataWorld) -> None:
    ids.write_alerts(4)
    fetch_ok(ids)
    ids.write_alerts(2)  # unread when the copy is taken
    ids.rotate_copytruncate()
    ids.write_alerts(3)  # into the truncated original, from offset 0
    fetch_ok(ids)
    ids.assert_each_alert_once()
    ids.compress("eve.json.1")
    ids.write_alerts(1)
    fetch_ok(ids)
    ids.assert_each_alert_once()
    assert ids.last_counts()["fetched"] == 1


def test_a_rotation_between_runs_with_compression_at_once(ids: SuricataWorld) -> None:
    ids.write_alerts(3)
    fetch_ok(ids)
    ids.write_alerts(2)
    ids.rotate_rename()
    ids.compress("eve.json.1")  # no delaycompress: the unread tail is only in the .gz
    ids.write_alerts(2)
    fetch_ok(ids)
    ids.assert_each_alert_once()


def test_a_gzip_still_being_written_is_read_on_from_its_plain_source(
        ids: SuricataWorld) -> None:
    ids.write_alerts(3)
    ids.rotate_rename()
    ids.write_alerts(2)
    rotated = ids.logs / "eve.json.1"
    half = gzip.compress(rotated.read_bytes())[:-30]  # gzip has not finished yet
    (ids.logs / "eve.json.1.gz").write_bytes(half)
    fetch_ok(ids)
    ids.assert_each_alert_once()
    ids.compress("eve.json.1")  # done: the plain copy is gone
    fetch_ok(ids)
    ids.assert_each_alert_once()


def test_a_truncated_file_is_read_again_from_the_start(ids: SuricataWorld) -> None:
    ids.write_alerts(3)
    fetch_ok(ids)
    with open(ids.eve, "r+b") as handle:
        handle.truncate(0)
    ids.write_alerts(2)  # new content: a new first line
    fetch_ok(ids)
    assert ids.last_counts()["fetched"] == 2
    ids.assert_each_alert_once()


def test_a_file_replaced_by_a_new_one_is_read_from_the_start(ids: SuricataWorld) -> None:
    ids.write_alerts(6)
    fetch_ok(ids)
    ids.eve.unlink()  # a reused inode or not, its first line is new
    ids.write_alerts(2, with_noise=False)
    fetch_ok(ids)
    assert ids.last_counts()["fetched"] == 2
    ids.assert_each_alert_once()


def test_the_position_memory_keeps_only_files_still_on_disk(ids: SuricataWorld) -> None:
    ids.write_alerts(2)
    ids.rotate_rename()
    ids.write_alerts(2)
    fetch_ok(ids)
    (ids.logs / "eve.json.1").unlink()  # logrotate's `rotate N` dropped it
    fetch_ok(ids)
    state = ids.state.glob("*.json").__next__().read_text()
    assert "eve.json.1" not in state and "eve.json\"" in state


# -- event types and bad lines -------------------------------------------------------------


def test_event_types_choose_the_lines_and_others_cost_nothing(ids: SuricataWorld) -> None:
    ids.append(line(eve_alert(1)) + line(noise(2)) + line(eve_alert(3, event_type="anomaly"))
               + line({"timestamp": "2026-11-20T10:00:04+0000", "event_type": "anomaly",
                       "anomaly": {"type": "decode", "event": "ipv4.trunc_pkt"}}))
    ids.write_config(event_types=["alert", "anomaly"])
    fetch_ok(ids)
    titles = sorted(r["title"] for r in ids.records())
    assert titles == ["ET MALWARE test signature 1", "ET MALWARE test signature 3",
                      "Protocol anomaly: ipv4.trunc_pkt"]
    assert ids.last_counts()["degraded"] == 0


def test_a_line_that_is_not_json_is_warned_about_once_and_never_blocks(
        ids: SuricataWorld) -> None:
    ids.write_alerts(1)
    bad_at = ids.eve.stat().st_size
    ids.append("garbage {\n[1, 2]\n")
    ids.write_alerts(2)
    stderr = fetch_ok(ids)
    assert stderr.count("not JSON objects") == 1
    assert f"{ids.eve}: 2 line(s) are not JSON objects and were skipped (the first at byte " \
           f"{bad_at})" in stderr
    assert ids.last_counts()["unparsed"] == 2  # counted in the run, not only warned about
    assert "3 written, 0 duplicate, 0 degraded, 2 unparsed," in stderr
    assert "0 degraded, 2 unparsed)" in ids.cli("status").stdout
    ids.assert_each_alert_once()
    ids.write_alerts(1)
    assert "not JSON" not in fetch_ok(ids)  # the cursor moved past them
    assert ids.last_counts()["unparsed"] == 0
    ids.assert_each_alert_once()


# -- bad config and missing files ----------------------------------------------------------


@pytest.mark.parametrize("block", [
    {"path": None},
    {"s3_uri": "s3://bucket/AWSLogs/"},
])
def test_exactly_one_of_path_and_s3_uri_is_a_config_error(ids: SuricataWorld,
                                                           block: dict[str, str]) -> None:
    ids.write_config(**block)
    result = ids.fetch()
    assert result.returncode == 2
    assert "sources.ids: set exactly one of path (files on this host) and s3_uri" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_s3_uri_that_is_no_uri_is_a_config_error(ids: SuricataWorld) -> None:
    ids.write_config(path=None, s3_uri="bucket/prefix")
    result = ids.fetch()
    assert result.returncode == 2
    assert "sources.ids.s3_uri: 'bucket/prefix' is not an s3:// URI" in result.stderr


def test_a_missing_directory_fails_the_source_clearly(ids: SuricataWorld) -> None:
    ids.write_config(path=str(ids.root / "nowhere" / "eve.json"))
    result = ids.fetch()
    assert result.returncode == 1
    assert f"directory {ids.root / 'nowhere'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_matching_file_fails_the_source_clearly(ids: SuricataWorld) -> None:
    ids.logs.mkdir()
    result = ids.fetch()
    assert result.returncode == 1
    assert f"path {ids.logs}/eve.json*: no file matches; check the path" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any directory")
def test_an_unreadable_directory_fails_the_source_clearly(ids: SuricataWorld) -> None:
    ids.logs.mkdir()
    ids.logs.chmod(0o300)
    try:
        result = ids.fetch()
    finally:
        ids.logs.chmod(0o700)
    assert result.returncode == 1
    assert "(permission denied)" in result.stderr


# -- crash safety ---------------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_delivery_step_then_rerun_reads_each_line_once(
        ids: SuricataWorld, point: str) -> None:
    ids.write_alerts(1500)  # two pages
    crashed = ids.fetch(ALERTPULL_FAILPOINT=point)
    assert crashed.returncode == -signal.SIGKILL
    ids.write_alerts(5)
    ids.rotate_rename()  # a rotation between the crash and the rerun
    ids.write_alerts(5)
    fetch_ok(ids)
    ids.assert_each_alert_once()
    fetch_ok(ids)
    ids.assert_each_alert_once()


# -- mapping ----------------------------------------------------------------------------------


def test_the_record_maps_the_eve_alert(ids: SuricataWorld) -> None:
    ids.write_alerts(1, severity=1)
    fetch_ok(ids)
    [record] = ids.records()  # schema-checked by read_records
    assert record["tenant"] == "sensor-1"
    assert record["title"] == "ET MALWARE test signature 0"
    assert (record["severity"], record["severity_raw"]) == ("high", "1")
    assert record["category"] == "A Network Trojan was detected"
    assert record["related"] == {"ips": ["10.1.2.3", "198.51.100.7"]}
    assert record["mitre"] == {"tactics": ["TA0011"], "techniques": ["T1071"]}
    assert record["created_at"] == "2026-11-20T10:00:00.000Z"
    assert record["raw"] == eve_alert(0, severity=1)
    assert record["native_id"] == native_id(eve_alert(0, severity=1))


@pytest.mark.parametrize(("severity", "expected"), [
    (1, "high"), (2, "medium"), (3, "low"), (4, "informational"), (7, "unknown"),
    (None, "unknown"),
])
def test_severity_policy_table(severity: int | None, expected: str) -> None:
    event = eve_alert(1)
    event["alert"]["severity"] = severity
    assert normalize_eve(event, "s", {}).severity == expected


def test_the_native_id_is_stable_and_tells_alerts_apart() -> None:
    one = eve_alert(1)
    assert native_id(one) == native_id(eve_alert(1))
    other_rule = eve_alert(1)
    other_rule["alert"]["signature_id"] += 1
    reversed_flow = {**eve_alert(1), "src_ip": "198.51.100.7", "dest_ip": "10.1.2.3"}
    assert len({native_id(one), native_id(other_rule), native_id(reversed_flow)}) == 3


def test_tenant_falls_back_to_the_sensor_option_then_the_hostname(ids: SuricataWorld) -> None:
    ids.write_alerts(1, host=None)
    ids.write_config(sensor="dmz-ids")
    fetch_ok(ids)
    assert [r["tenant"] for r in ids.records()] == ["dmz-ids"]
    connector = SuricataConnector("ids", {"path": "x", "s3_uri": None, "sensor": None,
                                          "event_types": ["alert"]}, log=None)  # type: ignore[arg-type]
    import socket
    assert connector.normalize(Scope("file:x"), eve_alert(2, host=None)).tenant == \
        socket.gethostname()


def test_a_network_firewall_record_names_account_and_firewall() -> None:
    wrapped = {"firewall_name": "edge-fw", "availability_zone": "us-east-1a",
               "event_timestamp": "1795168800", "event": eve_alert(1, host=None)}
    alert = normalize_eve(wrapped, "123456789012/edge-fw", {"region": "us-east-1"})
    assert alert.extra["product"] == "AWS Network Firewall"
    assert alert.extra["resources"] == [{"type": "network_firewall", "id": "edge-fw",
                                         "availability_zone": "us-east-1a"}]
    assert alert.title == "ET MALWARE test signature 1"
