"""`make demo`: pull from bundled local replays of the vendor APIs, no credentials needed.

Starts the wire fakes the tests use on 127.0.0.1 (each with alerts timestamped over the
last hours), writes a demo config naming them (demo/.out/alertpull.yaml), then runs the
installed `alertpull` CLI exactly as cron would: a first run writes every alert, a
second run writes nothing new (every version was already written), then `status`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from alertpull.timeutil import utcnow  # noqa: E402
from tests.fakes import (  # noqa: E402
    alertcenter,
    canary,
    crowdstrike,
    graph,
    intune,
    kandji,
    scc,
    securityhub,
    sentinelone,
)
from tests.fakes.aws import AwsFake  # noqa: E402
from tests.fakes.eve import EveReplay  # noqa: E402
from tests.fakes.guardduty_data import DETECTOR, make_findings  # noqa: E402
from tests.fakes.http_fake import FakeServer  # noqa: E402

ALERTPULL = str(Path(sys.executable).parent / "alertpull")
OUT = REPO / "demo" / ".out"
CONFIG = OUT / "alertpull.yaml"
Replay = tuple[FakeServer | EveReplay, Callable[[str], dict[str, str]], dict[str, Any]]


def guardduty_replay() -> Replay:
    """Two regions of GuardDuty findings updated over the last 12 hours."""
    fake = AwsFake()
    start = utcnow() - timedelta(hours=12)
    for region, count in (("us-east-1", 150), ("eu-west-1", 60)):
        step = timedelta(hours=12) / count
        fake.add_detector(region, DETECTOR,
                          make_findings(count, region=region, base_time=start, step=step))

    def env(url: str) -> dict[str, str]:
        # The replay reads SigV4 headers for the region, not the keys: any key works.
        return {"DEMO_AWS_URL": url, "AWS_ACCESS_KEY_ID": "AKIDALERTPULLDEMO",
                "AWS_SECRET_ACCESS_KEY": "demo-secret-not-real", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL_STS": url, "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull}

    source = {"type": "guardduty", "regions": ["us-east-1", "eu-west-1"],
              "endpoint_url": "${DEMO_AWS_URL}"}
    return fake, env, source


def suricata_replay() -> Replay:
    """A sensor's eve.json of 2,000 lines over the last 6 hours, one in ten an alert."""
    logs = EveReplay(OUT / "suricata")
    source = {"type": "suricata", "path": f"{logs.url}/eve.json*"}
    return logs, lambda _url: {}, source


REPLAYS: dict[str, Callable[[], Replay]] = {
    "aws-demo": guardduty_replay,
    "aws-hub-demo": securityhub.demo_replay,
    "gcp-demo": scc.demo_replay,
    "workspace-demo": alertcenter.demo_replay,
    "entra-demo": graph.demo_replay,
    "intune-demo": intune.demo_replay,
    "kandji-demo": kandji.demo_replay,
    "suricata-demo": suricata_replay,
    # The declarative recipes (alertpull/rest/recipes): a spec each, no Python.
    "s1-demo": sentinelone.demo_replay,
    "canary-demo": canary.demo_replay,
    "falcon-demo": crowdstrike.demo_replay,
}


def reset_demo_output() -> None:
    """The replays' alerts are generated relative to now, so each demo starts afresh."""
    for name in REPLAYS:
        shutil.rmtree(REPO / "alerts" / f"source={name}", ignore_errors=True)
        for suffix in (".json", ".lock"):
            (REPO / ".alertpull" / "state" / f"{name}{suffix}").unlink(missing_ok=True)


def alertpull(*args: str, env: dict[str, str]) -> None:
    print(f"\n$ alertpull -c {CONFIG.relative_to(REPO)} {' '.join(args)}", flush=True)
    subprocess.run([ALERTPULL, "-c", str(CONFIG), *args], env=env, check=False)


def main() -> None:
    reset_demo_output()
    OUT.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "GOOGLE_", "REQUESTS_CA_BUNDLE"))}
    sources = {}
    with contextlib.ExitStack() as stack:
        for name, make in REPLAYS.items():
            fake, env_for, source = make()
            stack.enter_context(fake)
            env.update(env_for(fake.url))
            sources[name] = source
        CONFIG.write_text(yaml.safe_dump({
            "state": {"backend": "local", "path": str(REPO / ".alertpull" / "state")},
            "sink": {"type": "jsonl", "path": str(REPO / "alerts")},
            "sources": sources,
        }, sort_keys=False))
        alertpull("fetch", "--all", env=env)
        alertpull("fetch", "--all", env=env)
        alertpull("status", env=env)
    files = sorted((REPO / "alerts").rglob("*.jsonl*"))
    print(f"\nThe alert log is in {REPO / 'alerts'} ({len(files)} file(s)), e.g.:")
    for path in files[-3:]:
        print(f"  {path.relative_to(REPO)}")
    if files:
        print(f"Try: head -n1 {files[-1].relative_to(REPO)} | python3 -m json.tool")


if __name__ == "__main__":
    main()
