"""A Suricata sensor's log directory (and an S3 bucket of EVE objects) for CLI tests.

Rotation is done the way logrotate does it: rename + reopen, copytruncate, compress.
Alert times lie days back, past any overlap, so the engine's version memory cannot hide
a line read twice: every repeat would be written (and counted) again.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.world import CliWorld

BASE_TIME = "2026-11-20T10:00:00"


def eve_alert(n: int, *, host: str | None = "sensor-1", severity: int = 2,
              event_type: str = "alert") -> dict[str, Any]:
    """One EVE alert line's object; `n` makes it unique (flow, time, rule)."""
    event: dict[str, Any] = {
        "timestamp": f"{BASE_TIME}.{n:06d}+0000",
        "flow_id": 1_000_000_000 + n,
        "in_iface": "eth0",
        "event_type": event_type,
        "src_ip": "10.1.2.3",
        "src_port": 40000 + n % 20000,
        "dest_ip": "198.51.100.7",
        "dest_port": 443,
        "proto": "TCP",
        "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": 2_010_000 + n,
            "rev": 3,
            "signature": f"ET MALWARE test signature {n}",
            "category": "A Network Trojan was detected",
            "severity": severity,
            "metadata": {"mitre_tactic_id": ["TA0011"], "mitre_technique_id": ["T1071"]},
        },
    }
    if host is not None:
        event["host"] = host
    return event


def noise(n: int) -> dict[str, Any]:
    """A line that is not an alert (most of eve.json is flows, DNS, stats)."""
    return {"timestamp": f"{BASE_TIME}.{n:06d}+0000", "flow_id": n, "event_type": "flow",
            "src_ip": "10.1.2.3", "dest_ip": "10.9.9.9", "flow": {"pkts_toserver": 3}}


def line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":")) + "\n"


@dataclass
class SuricataWorld(CliWorld):
    next_n: int = 0
    written: list[int] = field(default_factory=list)  # the n of every alert line written

    @property
    def logs(self) -> Path:
        return self.root / "suricata"

    @property
    def eve(self) -> Path:
        return self.logs / "eve.json"

    def write_config(self, **overrides: Any) -> None:
        block = {"type": "suricata", "path": str(self.logs / "eve.json*"), **overrides}
        self.write_yaml({"ids": {k: v for k, v in block.items() if v is not None}})

    def write_alerts(self, count: int, *, to: Path | None = None, with_noise: bool = True,
               **fields: Any) -> None:
        """Append `count` alert lines (each after a flow line) to eve.json or `to`."""
        text = ""
        for _ in range(count):
            n = self.next_n
            self.next_n += 1
            self.written.append(n)
            text += (line(noise(n)) if with_noise else "") + line(eve_alert(n, **fields))
        self.append(text, to=to)

    def append(self, text: str, *, to: Path | None = None) -> None:
        self.logs.mkdir(exist_ok=True)
        with open(to or self.eve, "a", encoding="utf-8") as handle:
            handle.write(text)

    # -- logrotate ---------------------------------------------------------------------------

    def rotate_rename(self) -> None:
        """`create` mode: eve.json.N -> N+1, eve.json -> eve.json.1 (same inode); the
        sensor reopens eve.json when it gets its HUP (the next append)."""
        self._shift()
        os.rename(self.eve, self.logs / "eve.json.1")

    def rotate_copytruncate(self) -> None:
        self._shift()
        shutil.copyfile(self.eve, self.logs / "eve.json.1")
        with open(self.eve, "r+b") as handle:
            handle.truncate(0)

    def compress(self, name: str) -> None:
        """gzip NAME into NAME.gz (a new inode) and remove NAME, as `compress` does."""
        source = self.logs / name
        with open(source, "rb") as plain, gzip.open(f"{source}.gz", "wb") as packed:
            shutil.copyfileobj(plain, packed)
        source.unlink()

    def _shift(self) -> None:
        for path in sorted(self.logs.glob("eve.json.*"), reverse=True):
            number, _, ext = path.name.removeprefix("eve.json.").partition(".")
            path.rename(self.logs / f"eve.json.{int(number) + 1}{'.' + ext if ext else ''}")

    # -- what came out ---------------------------------------------------------------------

    def assert_each_alert_once(self) -> None:
        """Every alert line written so far is in the output exactly once."""
        titles = Counter(r["title"] for r in self.records())
        expected = {f"ET MALWARE test signature {n}" for n in self.written}
        assert set(titles) == expected, (sorted(set(titles) - expected),
                                         sorted(expected - set(titles))[:10])
        assert set(titles.values()) == {1} if titles else True, \
            [t for t, c in titles.items() if c > 1][:10]

    def last_counts(self) -> dict[str, int]:
        doc = json.loads(next(self.state.glob("*.json")).read_text())
        counts: dict[str, int] = doc["last_run"]["counts"]
        return counts
