"""`make demo`: pull from bundled local replays of the vendor APIs, no credentials needed.

Starts the wire fakes the tests use on 127.0.0.1, then runs the installed `alertpull`
CLI twice against demo/alertpull.yaml, exactly as cron would: the first run writes every
alert, the second writes nothing new (every version was already written).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from alertpull.timeutil import utcnow  # noqa: E402
from tests.fakes.aws import AwsFake  # noqa: E402
from tests.fakes.guardduty_data import DETECTOR, make_findings  # noqa: E402

ALERTPULL = str(Path(sys.executable).parent / "alertpull")
CONFIG = str(REPO / "demo" / "alertpull.yaml")


def aws_replay() -> AwsFake:
    """Two regions of GuardDuty findings updated over the last 12 hours."""
    fake = AwsFake()
    start = utcnow() - timedelta(hours=12)
    for region, count in (("us-east-1", 150), ("eu-west-1", 60)):
        step = timedelta(hours=12) / count
        fake.add_detector(region, DETECTOR,
                          make_findings(count, region=region, base_time=start, step=step))
    return fake


def alertpull(*args: str, env: dict[str, str]) -> None:
    command = [ALERTPULL, "-c", CONFIG, *args]
    print(f"\n$ alertpull -c demo/alertpull.yaml {' '.join(args)}", flush=True)
    subprocess.run(command, env=env, check=False)


def reset_demo_output() -> None:
    """The replay's alerts are generated relative to now, so each demo starts afresh."""
    shutil.rmtree(REPO / "alerts" / "source=aws-demo", ignore_errors=True)
    for name in ("aws-demo.json", "aws-demo.lock"):
        (REPO / ".alertpull" / "state" / name).unlink(missing_ok=True)


def main() -> None:
    reset_demo_output()
    with aws_replay() as fake:
        env = {
            **os.environ,
            "DEMO_AWS_URL": fake.url,
            # The replay checks SigV4 signatures' shape, not their keys: any key works.
            "AWS_ACCESS_KEY_ID": "AKIDALERTPULLDEMO",
            "AWS_SECRET_ACCESS_KEY": "demo-secret-not-real",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_STS": fake.url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        env.pop("AWS_PROFILE", None)
        alertpull("fetch", "--all", env=env)
        alertpull("fetch", "--all", env=env)
        alertpull("status", env=env)
    files = sorted((REPO / "alerts").rglob("*.jsonl*"))
    print(f"\nThe alert log is in {REPO / 'alerts'} ({len(files)} file(s)), e.g.:")
    for path in files[-3:]:
        print(f"  {path.relative_to(REPO)}")
    print("Try: head -n1 " + (str(files[-1].relative_to(REPO)) if files else "alerts/...")
          + " | python3 -m json.tool")


if __name__ == "__main__":
    main()
