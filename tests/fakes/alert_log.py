"""A generated published alert log, for the `alertpull alerts` memory test and the bench:
Hive partitions of gzip JSONL parts laid out as the jsonl sink writes them, each line a
record written by alertpull.record.record_line around a GuardDuty-like raw finding of about
1.6 KB in all."""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alertpull.record import Normalized, canonical_and_sha256, record_fields, record_line
from alertpull.timeutil import format_time, utcnow

SEVERITIES = ("low", "medium", "medium", "high", "critical")
STATUSES = ("new", "new", "in_progress", "resolved")
SOURCES = ("aws-prod", "aws-dev", "entra", "suricata")


def _raw(n: int, version: int, moment: str, rng: random.Random) -> dict[str, Any]:
    return {
        "accountId": "111122223333", "arn": f"arn:aws:guardduty:us-east-1:111122223333:"
        f"detector/0123456789abcdef/finding/{n:032x}", "createdAt": moment, "id": f"{n:032x}",
        "partition": "aws", "region": "us-east-1", "schemaVersion": "2.0",
        "severity": rng.choice((2, 5, 8)), "title": f"Trojan:EC2/DNSDataExfiltration #{n}",
        "type": "Trojan:EC2/DNSDataExfiltration", "updatedAt": moment,
        "resource": {"resourceType": "Instance", "instanceDetails": {
            "instanceId": f"i-{n:017x}", "instanceType": "m5.large",
            "networkInterfaces": [{"privateIpAddress": f"10.0.{n % 250}.{version % 250}",
                                   "subnetId": "subnet-0123abcd", "vpcId": "vpc-0a1b2c3d"}]}},
        "service": {"archived": False, "count": version + 1, "detectorId": "0123456789abcdef",
                    "eventFirstSeen": moment, "eventLastSeen": moment,
                    "action": {"actionType": "DNS_REQUEST", "dnsRequestAction": {
                        "domain": f"c2-{n % 997}.example.net", "protocol": "UDP"}},
                    # What varies between findings, as real ones do (ids, peers, ports).
                    "additionalInfo": {"requestId": rng.randbytes(16).hex(),
                                       "remoteIp": ".".join(str(rng.randrange(1, 255))
                                                            for _ in range(4)),
                                       "localPort": rng.randrange(1024, 65535)}},
    }


def lines(count: int, alerts: int, *, days: int = 10, seed: int = 11,
          end: datetime | None = None) -> Iterator[tuple[str, str, bytes]]:
    """(source, day, line) for `count` lines of `alerts` alerts (line i is a version of
    alert i % alerts), updated in time order over the last `days` days."""
    rng = random.Random(seed)
    end = end or utcnow()
    start = end - timedelta(days=days)
    step = (end - start) / max(count, 1)
    for i in range(count):
        n, version = i % alerts, i // alerts
        moment = start + step * i
        stamp = format_time(moment)
        raw = _raw(n, version, stamp, rng)
        source = SOURCES[n % len(SOURCES)]
        alert = Normalized(
            native_id=raw["arn"], tenant="111122223333", changed_at=moment,
            title=raw["title"], severity=SEVERITIES[n % len(SEVERITIES)],
            severity_raw=str(raw["severity"]), status=STATUSES[(n + version) % len(STATUSES)],
            status_raw=None, created_at=start + step * n, updated_at=moment,
            link=f"https://console.aws.amazon.com/guardduty/home#/findings?fId={raw['id']}",
            extra={"count": version + 1, "category": raw["type"]})
        canonical, sha = canonical_and_sha256(raw)
        fields = record_fields(source, "guardduty", alert, stamp)
        yield source, f"{moment:%Y-%m-%d}", record_line(fields, canonical, sha)


def write_log(root: Path, count: int, alerts: int, *, per_part: int = 5000,
              **options: Any) -> list[Path]:
    """The log of `lines(count, alerts)` under root, gzip parts of at most `per_part`
    lines per partition; returns the parts written."""
    open_parts: dict[tuple[str, str], tuple[Any, int]] = {}
    written: list[Path] = []
    for source, day, line in lines(count, alerts, **options):
        handle, held = open_parts.get((source, day), (None, per_part))
        if held >= per_part:
            if handle is not None:
                handle.close()
            folder = root / f"source={source}" / f"dt={day}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{len(written):06d}-bench-0000.jsonl.gz"
            written.append(path)
            handle, held = gzip.open(path, "wb", compresslevel=6), 0  # noqa: SIM115 (closed below)
        handle.write(line + b"\n")
        open_parts[(source, day)] = (handle, held + 1)
    for handle, _ in open_parts.values():
        handle.close()
    return written
