"""Speed and memory of `alertpull fetch` against the wire fakes, next to a floor.

For each source and size N this starts the vendor fake in its own process with N
realistic alerts (~2 KB each), runs the INSTALLED CLI as a subprocess and reads the
child's CPU time and peak RSS from the kernel (wait4). The floor, measured in the same
run against the same fake, is a minimal `requests` loop that downloads the same pages
and appends them raw to a file: what any puller must at least pay.

    .venv/bin/python bench/run_bench.py                 # default sizes
    .venv/bin/python bench/run_bench.py --sizes 10000 100000 1000000

Figures print as a table plus ratios against the targets of the reliability issue:
CPU per alert <= 2x the floor; peak RSS flat in N (largest <= 1.2x smallest, <= 150 MB);
16 regions at 100 ms latency <= 0.35x a serial pull; --help/sources <= 6x `python -c pass`.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ALERTPULL = str(BIN / "alertpull")

FLOOR = r'''
import sys, requests
url, out, regions = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
session = requests.Session()
criteria = {"criterion": {"updatedAt": {"greaterThanOrEqual": 0, "lessThan": 2**62}}}
sort = {"attributeName": "updatedAt", "orderBy": "ASC"}
with open(out, "ab") as sink:
    for region in regions:
        scope = f"AKID/20260101/{region}/guardduty/aws4_request"
        auth = {"Authorization": f"AWS4-HMAC-SHA256 Credential={scope}"}
        detector = session.get(f"{url}/detector", headers=auth).json()["detectorIds"][0]
        base = f"{url}/detector/{detector}/findings"
        body = {"maxResults": 50, "findingCriteria": criteria, "sortCriteria": sort}
        while True:
            page = session.post(base, json=body, headers=auth).json()
            ids = {"findingIds": page["findingIds"]}
            sink.write(session.post(base + "/get", json=ids, headers=auth).content + b"\n")
            if not page.get("nextToken"):
                break
            body["nextToken"] = page["nextToken"]
'''


@dataclass
class Usage:
    wall: float
    cpu: float
    max_rss_mb: float


def run_measured(command: list[str], env: dict[str, str], cwd: str) -> Usage:
    """Run a child to completion; its wall time, CPU seconds and peak RSS from wait4."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[0]} failed: {stderr}")
    return Usage(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


class Fake:
    """`python -m tests.fakes.aws` in its own process, so its CPU is not counted."""

    def __init__(self, findings: int, regions: int = 1, latency_ms: float = 0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.aws", "--findings", str(findings),
             "--regions", str(regions), "--span-hours", str(24 * 60),
             "--latency-ms", str(latency_ms)],
            cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


def aws_env(url: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"),
            "AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_STS": url,
            "AWS_ENDPOINT_URL_EC2": url, "AWS_ENDPOINT_URL_GUARDDUTY": url,
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def pull(url: str, regions: list[str], concurrency: int, workdir: str) -> Usage:
    config = Path(workdir) / "alertpull.yaml"
    config.write_text(
        "state: {backend: local, path: state}\nsink: {type: jsonl, path: alerts}\n"
        f"defaults: {{concurrency: {concurrency}}}\n"
        f"sources: {{aws: {{type: guardduty, regions: [{', '.join(regions)}]}}}}\n")
    return run_measured([ALERTPULL, "-c", str(config), "fetch", "--all", "--since", "61d"],
                        aws_env(url), workdir)


def floor(url: str, regions: list[str], workdir: str) -> Usage:
    return run_measured([sys.executable, "-c", FLOOR, url, str(Path(workdir) / "raw.jsonl"),
                         ",".join(regions)], aws_env(url), workdir)


def throughput(sizes: list[int]) -> None:
    print("GuardDuty: alertpull vs floor (requests loop appending raw pages)")
    print(f"{'N':>9} {'alerts/s':>9} {'CPU s/100k':>11} {'RSS MB':>7} | {'floor a/s':>9} "
          f"{'floor CPU/100k':>14} {'floor RSS':>9} | {'CPU ratio':>9}")
    rss = {}
    for n in sizes:
        fake = Fake(n)
        try:
            with tempfile.TemporaryDirectory() as ours, tempfile.TemporaryDirectory() as base:
                mine = pull(fake.url, ["us-east-1"], 1, ours)
                low = floor(fake.url, ["us-east-1"], base)
        finally:
            fake.close()
        rss[n] = mine.max_rss_mb
        print(f"{n:>9} {n / mine.wall:>9.0f} {mine.cpu / n * 1e5:>11.1f} {mine.max_rss_mb:>7.1f} | "
              f"{n / low.wall:>9.0f} {low.cpu / n * 1e5:>14.1f} {low.max_rss_mb:>9.1f} | "
              f"{mine.cpu / low.cpu:>8.2f}x")
    smallest, largest = min(sizes), max(sizes)
    print(f"peak RSS {largest} vs {smallest}: {rss[largest] / rss[smallest]:.2f}x "
          f"(target <= 1.2x), {rss[largest]:.0f} MB (target <= 150 MB)")


def regions_concurrency() -> None:
    sys.path.insert(0, str(REPO))
    from tests.fakes.aws import REGIONS

    fake = Fake(16 * 200, regions=16, latency_ms=100)
    try:
        with tempfile.TemporaryDirectory() as serial, tempfile.TemporaryDirectory() as wide:
            one = pull(fake.url, list(REGIONS), 1, serial)
            many = pull(fake.url, list(REGIONS), 8, wide)
    finally:
        fake.close()
    print(f"16 regions, 100 ms per call: serial {one.wall:.1f}s, concurrency 8 {many.wall:.1f}s "
          f"= {many.wall / one.wall:.2f}x (target <= 0.35x)")


def startup() -> None:
    def best(command: list[str]) -> float:
        return min(run_measured(command, dict(os.environ), str(REPO)).wall for _ in range(5))

    base = best([sys.executable, "-c", "pass"])
    with tempfile.TemporaryDirectory() as workdir:
        config = Path(workdir) / "alertpull.yaml"
        config.write_text("sources: {aws: {type: guardduty}}\n")
        helped = best([ALERTPULL, "--help"])
        listed = best([ALERTPULL, "-c", str(config), "sources"])
    print(f"startup: python -c pass {base * 1000:.0f} ms; --help {helped * 1000:.0f} ms "
          f"= {helped / base:.1f}x; sources {listed * 1000:.0f} ms = {listed / base:.1f}x "
          "(target <= 6x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--skip-regions", action="store_true")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    startup()
    throughput(sorted(args.sizes))
    if not args.skip_regions:
        regions_concurrency()


if __name__ == "__main__":
    main()
