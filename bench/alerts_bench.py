"""Speed and memory of `alertpull alerts` over a large published log, next to a floor.

Generates a log of N stored lines (gzip JSONL parts in Hive partitions, as the jsonl sink
writes them; records of ~1.8 KB built by alertpull.record around a GuardDuty-like raw
finding; one alert per 2.5 lines on average, so most alerts have several versions) in a
temporary directory, then runs the INSTALLED CLI as a subprocess and reads the child's
wall time and peak RSS from the kernel (wait4):

- `alertpull alerts --summary`
- `alertpull alerts` (the default listing: every alert, a table, to /dev/null)
- `alertpull alerts --status open --limit 20`

The floor is `zcat PARTS | wc -l` on the same files: decompressing and counting the lines,
what any reader of the log must at least pay. Target (issue 18): 1M lines in at most 5x the
floor's time; peak RSS at the smallest and the largest size is printed side by side.

    .venv/bin/python bench/alerts_bench.py                     # 100k and 1M lines
    .venv/bin/python bench/alerts_bench.py --sizes 20000 100000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.alert_log import SOURCES, write_log  # noqa: E402

ALERTPULL = str(Path(sys.executable).parent / "alertpull")
TARGET = 5.0
LINES_PER_ALERT = 2.5
COMMANDS = {
    "alerts --summary": ["alerts", "--summary"],
    "alerts (default listing)": ["alerts"],
    "alerts --status open --limit 20": ["alerts", "--status", "open", "--limit", "20"],
}


def run(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process; its output goes to /dev/null."""
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        child = subprocess.Popen(argv, cwd=cwd, stdout=sink, stderr=subprocess.PIPE)
        assert child.stderr is not None
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        errors = child.stderr.read().decode()
        child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {errors.strip()}")
    return seconds, usage.ru_maxrss / 1024


def floor(parts: list[Path], cwd: Path) -> float:
    started = time.perf_counter()
    counted = subprocess.run("xargs -0 zcat | wc -l", shell=True, cwd=cwd, check=True,
                             input=b"\0".join(str(p).encode() for p in parts),
                             capture_output=True)
    seconds = time.perf_counter() - started
    print(f"    floor counted {int(counted.stdout)} lines")
    return seconds


def bench(size: int, work: Path) -> dict[str, tuple[float, float]]:
    root = work / f"log-{size}"
    started = time.perf_counter()
    parts = write_log(root / "alerts", size, int(size / LINES_PER_ALERT))
    stored = sum(p.stat().st_size for p in parts)
    print(f"\n{size:,} lines: {len(parts)} parts, {stored / 1e6:.0f} MB gzip, generated in "
          f"{time.perf_counter() - started:.0f}s")
    sources = "".join(f"  {name}: {{type: guardduty, regions: [us-east-1]}}\n"
                      for name in SOURCES)
    (root / "alertpull.yaml").write_text(
        f"state: {{backend: local, path: state}}\nsink: {{type: jsonl, path: alerts}}\n"
        f"sources:\n{sources}")
    results = {"zcat | wc -l (floor)": (floor(parts, root), 0.0)}
    for name, args in COMMANDS.items():
        results[name] = run([ALERTPULL, "-c", "alertpull.yaml", *args], root)
    base = results["zcat | wc -l (floor)"][0]
    print(f"    {'command':34} {'seconds':>8} {'x floor':>8} {'peak RSS MB':>12}")
    for name, (seconds, rss) in results.items():
        peak = f"{rss:.0f}" if rss else "-"
        print(f"    {name:34} {seconds:8.2f} {seconds / base:8.2f} {peak:>12}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="alerts-bench-") as work:
        figures = {size: bench(size, Path(work)) for size in args.sizes}
    small, large = min(figures), max(figures)
    base = figures[large]["zcat | wc -l (floor)"][0]
    print(f"\nat {large:,} lines (target: <= {TARGET:.0f}x the floor's time):")
    for name in COMMANDS:
        ratio = figures[large][name][0] / base
        print(f"    {name:34} {ratio:5.2f}x  {'ok' if ratio <= TARGET else 'MISSED'}   "
              f"peak RSS {figures[small][name][1]:.0f} MB at {small:,} -> "
              f"{figures[large][name][1]:.0f} MB at {large:,}")


if __name__ == "__main__":
    main()
