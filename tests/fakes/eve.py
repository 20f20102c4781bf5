"""A generated Suricata eve.json, for `make demo` and the bench: what a sensor writes, mostly
flows, DNS and TLS with an alert now and then, each line as Suricata 7 lays it out."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from alertpull.timeutil import utcnow

SIGNATURES = [
    (2027865, "ET INFO Observed DNS Query to .cloud TLD", "Potentially Bad Traffic", 2,
     {"mitre_tactic_id": ["TA0011"], "mitre_technique_id": ["T1071"]}),
    (2013028, "ET POLICY curl User-Agent Outbound", "Attempted Information Leak", 2, {}),
    (2024897, "ET USER_AGENTS Go HTTP Client User-Agent", "Misc activity", 3, {}),
    (2032776, "ET EXPLOIT Apache log4j RCE Attempt (CVE-2021-44228)",
     "Attempted Administrator Privilege Gain", 1,
     {"mitre_tactic_id": ["TA0001"], "mitre_tactic_name": ["Initial_Access"],
      "mitre_technique_id": ["T1190"],
      "mitre_technique_name": ["Exploit_Public_Facing_Application"]}),
]


def _eve_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


def eve_lines(count: int, *, alert_every: int = 10, start: datetime | None = None,
              host: str = "demo-sensor", seed: int = 7) -> list[str]:
    """`count` EVE lines, one alert in every `alert_every`, spread over the last hours."""
    rng = random.Random(seed)
    start = start or utcnow() - timedelta(hours=6)
    step = timedelta(hours=6) / max(count, 1)
    out = []
    for n in range(count):
        moment = start + step * n
        base: dict[str, Any] = {
            "timestamp": _eve_time(moment), "flow_id": 1_200_000_000_000 + n,
            "in_iface": "ens5", "src_ip": f"10.0.{rng.randrange(8)}.{rng.randrange(2, 250)}",
            "src_port": rng.randrange(1024, 65535), "dest_ip": f"203.0.113.{rng.randrange(1, 250)}",
            "dest_port": rng.choice((53, 80, 443)), "proto": "TCP", "host": host,
        }
        if n % alert_every == alert_every - 1:
            sid, signature, category, severity, metadata = rng.choice(SIGNATURES)
            event = {**base, "event_type": "alert", "pkt_src": "wire/pcap",
                     "alert": {"action": "allowed", "gid": 1, "signature_id": sid, "rev": 4,
                               "signature": signature, "category": category,
                               "severity": severity, "metadata": metadata},
                     "app_proto": "http", "direction": "to_server",
                     "flow": {"pkts_toserver": 4, "pkts_toclient": 3, "bytes_toserver": 512,
                              "bytes_toclient": 1830, "start": _eve_time(moment)}}
        elif n % 3:
            event = {**base, "event_type": "flow", "app_proto": "tls",
                     "flow": {"pkts_toserver": 12, "pkts_toclient": 10, "bytes_toserver": 2210,
                              "bytes_toclient": 9123, "start": _eve_time(moment),
                              "end": _eve_time(moment + timedelta(seconds=2)), "age": 2,
                              "state": "closed", "reason": "timeout", "alerted": False}}
        else:
            event = {**base, "event_type": "dns", "proto": "UDP",
                     "dns": {"version": 2, "type": "answer", "id": rng.randrange(65535),
                             "rrname": f"host{n % 97}.example.com", "rrtype": "A",
                             "rcode": "NOERROR", "answers": [
                                 {"rrname": f"host{n % 97}.example.com", "rrtype": "A",
                                  "ttl": 300, "rdata": "198.51.100.20"}]}}
        out.append(json.dumps(event, separators=(",", ":")) + "\n")
    return out


class EveReplay:
    """A sensor log directory holding a generated eve.json (a context like the fakes; its
    `url` is the directory)."""

    def __init__(self, directory: Path, count: int = 2000) -> None:
        self.directory = directory
        self.count = count
        self.url = str(directory)

    def __enter__(self) -> EveReplay:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "eve.json").write_text("".join(eve_lines(self.count)))
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        return None
