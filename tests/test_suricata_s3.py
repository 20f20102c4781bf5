"""The suricata source, S3 mode: AWS Network Firewall alert logs and sensor uploads in a
real moto S3 server, objects landing out of key order, crashes."""

from __future__ import annotations

import gzip
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env
from tests.s3_fixtures import moto_server, unique_bucket
from tests.suricata_env import eve_alert, line, noise
from tests.test_crash import POINTS
from tests.world import CliWorld

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


class BucketWorld(CliWorld):
    def __init__(self, root: Path, endpoint: str) -> None:
        super().__init__(root, clean_env(AWS_ACCESS_KEY_ID="AKIDALERTPULLTEST",
                                         AWS_SECRET_ACCESS_KEY="not-a-real-secret-key",
                                         AWS_DEFAULT_REGION="us-east-1",
                                         AWS_CONFIG_FILE="/dev/null",
                                         AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                                         AWS_EC2_METADATA_DISABLED="true"))
        import boto3

        self.endpoint = endpoint
        self.bucket = unique_bucket()
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id="AKIDALERTPULLTEST",
                               aws_secret_access_key="not-a-real-secret-key")
        self.s3.create_bucket(Bucket=self.bucket)
        self.written: list[int] = []

    def configure(self, prefix: str = "AWSLogs/", **block: Any) -> None:
        self.write_yaml({"nfw": {"type": "suricata", "s3_uri": f"s3://{self.bucket}/{prefix}",
                                 "endpoint_url": self.endpoint, **block}})

    def put(self, key: str, numbers: list[int], *, firewall: str | None = "edge-fw",
            compress: bool = True, extra: str = "") -> None:
        """One object of EVE lines (Network Firewall's wrapped ones unless firewall=None)."""
        body = extra
        for n in numbers:
            event = eve_alert(n, host=None if firewall else "sensor-9")
            body += line(noise(n)) + line(
                {"firewall_name": firewall, "availability_zone": "us-east-1a",
                 "event_timestamp": "1795168800", "event": event} if firewall else event)
            self.written.append(n)
        data = gzip.compress(body.encode()) if compress else body.encode()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def fetch_ok(self) -> str:
        result = self.fetch()
        assert result.returncode == 0, result.stderr
        return str(result.stderr)

    def assert_each_alert_once(self) -> list[dict[str, Any]]:
        records = self.records()
        titles = Counter(r["title"] for r in records)
        assert set(titles) == {f"ET MALWARE test signature {n}" for n in self.written}
        assert max(titles.values()) == 1
        return records


def nfw_key(firewall: str, hour: int, name: str) -> str:
    return (f"AWSLogs/{ACCOUNT}/network-firewall/alert/us-east-1/{firewall}/2026/12/02/"
            f"{hour:02d}/{ACCOUNT}_network-firewall_alert_us-east-1_{firewall}_"
            f"20261202T{hour:02d}{name}Z.log.gz")


@pytest.fixture
def nfw(tmp_path: Path, endpoint: str) -> BucketWorld:
    world = BucketWorld(tmp_path, endpoint)
    world.configure()
    return world


def test_network_firewall_objects_are_read_once_per_firewall_stream(nfw: BucketWorld) -> None:
    nfw.put(nfw_key("edge-fw", 9, "05"), [1, 2])
    nfw.put(nfw_key("core-fw", 9, "00"), [3], firewall="core-fw")
    nfw.fetch_ok()
    records = nfw.assert_each_alert_once()
    assert {r["tenant"] for r in records} == {f"{ACCOUNT}/edge-fw", f"{ACCOUNT}/core-fw"}
    assert {r["region"] for r in records} == {"us-east-1"}
    # edge-fw's next hour sorts before core-fw's old keys: one marker would skip it.
    nfw.put(nfw_key("edge-fw", 10, "00"), [4])
    nfw.put(nfw_key("core-fw", 10, "00"), [5], firewall="core-fw")
    nfw.fetch_ok()
    nfw.assert_each_alert_once()
    nfw.fetch_ok()
    nfw.assert_each_alert_once()
    status = nfw.cli("status", "--json")
    assert f"s3://{nfw.bucket}/AWSLogs/{ACCOUNT}/network-firewall/alert/us-east-1/edge-fw/" \
        in status.stdout


def test_an_object_landing_behind_read_keys_is_read_once(nfw: BucketWorld) -> None:
    nfw.put(nfw_key("edge-fw", 9, "50"), [1])
    nfw.put(nfw_key("edge-fw", 10, "05"), [2])
    nfw.fetch_ok()
    nfw.put(nfw_key("edge-fw", 9, "55"), [3])  # delivered late, into the hour before
    nfw.put(nfw_key("edge-fw", 10, "10"), [4])
    nfw.fetch_ok()
    nfw.assert_each_alert_once()
    nfw.fetch_ok()
    nfw.assert_each_alert_once()


def test_the_key_memory_moves_past_what_is_older_than_late_arrival(
        nfw: BucketWorld) -> None:
    nfw.configure(late_arrival="1s")
    nfw.put(nfw_key("edge-fw", 8, "00"), [1])
    nfw.put(nfw_key("edge-fw", 9, "00"), [2])
    time.sleep(2.5)  # LastModified has whole seconds
    nfw.put(nfw_key("edge-fw", 10, "00"), [3])
    nfw.fetch_ok()
    state = next(nfw.state.glob("*.json")).read_text()
    # (the key's name, not "T08": the run's own timestamps may fall in the 08:00 hour)
    assert nfw_key("edge-fw", 8, "00") not in state, "keys older than late_arrival stay"
    assert f'"after": "{nfw_key("edge-fw", 9, "00")}"' in state.replace('":"', '": "')
    nfw.put(nfw_key("edge-fw", 9, "30"), [4])  # behind the newest key, past `after`: read
    nfw.fetch_ok()
    nfw.assert_each_alert_once()


def test_sensor_uploads_plain_or_gzip_in_a_flat_folder(tmp_path: Path, endpoint: str) -> None:
    world = BucketWorld(tmp_path, endpoint)
    world.configure(prefix="sensors/")
    world.put("sensors/dmz/eve-0002.json", [2], firewall=None, compress=False)
    world.put("sensors/dmz/eve-0001.json.gz", [1], firewall=None,
              extra="not json\n")
    stderr = world.fetch_ok()
    records = world.assert_each_alert_once()
    assert {r["tenant"] for r in records} == {"sensor-9"}
    assert {r["product"] for r in records} == {"Suricata"}
    assert f"s3://{world.bucket}/sensors/dmz/eve-0001.json.gz: 1 line(s) are not JSON " \
           "objects and were skipped (the first at byte 0)" in stderr
    assert "2 written, 0 duplicate, 0 degraded, 1 unparsed," in stderr  # counted in the run
    world.put("sensors/dmz/eve-0003.json", [3], firewall=None, compress=False)
    world.fetch_ok()
    world.assert_each_alert_once()


def test_a_corrupt_gzip_object_fails_the_source_naming_it(nfw: BucketWorld) -> None:
    key = nfw_key("edge-fw", 9, "00")
    nfw.s3.put_object(Bucket=nfw.bucket, Key=key, Body=gzip.compress(b"x" * 1000)[:-20])
    result = nfw.fetch()
    assert result.returncode == 1
    assert f"s3://{nfw.bucket}/{key} is not a readable gzip object" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_prefix_and_a_missing_bucket_fail_clearly(nfw: BucketWorld) -> None:
    result = nfw.fetch()
    assert result.returncode == 1
    assert f"s3://{nfw.bucket}/AWSLogs/ holds no objects" in result.stderr
    nfw.write_yaml({"nfw": {"type": "suricata", "s3_uri": "s3://no-such-bucket-here/x/",
                            "endpoint_url": nfw.endpoint}})
    result = nfw.fetch()
    assert result.returncode == 1
    assert "S3 bucket 'no-such-bucket-here' does not exist" in result.stderr


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_delivery_step_then_rerun_reads_each_object_once(
        nfw: BucketWorld, point: str) -> None:
    nfw.put(nfw_key("edge-fw", 9, "00"), list(range(0, 700)))
    nfw.put(nfw_key("edge-fw", 9, "05"), list(range(700, 1400)))  # two pages
    crashed = nfw.fetch(ALERTPULL_FAILPOINT=point)
    assert crashed.returncode == -signal.SIGKILL
    nfw.put(nfw_key("edge-fw", 8, "59"), [2000])  # late, before the rerun
    nfw.fetch_ok()
    nfw.assert_each_alert_once()
    nfw.fetch_ok()
    nfw.assert_each_alert_once()
