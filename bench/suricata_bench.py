"""Speed of a `suricata` source reading a sensor's EVE file, next to two floors.

Generates an eve.json of about SIZE MB (tests/fakes/eve.py: Suricata 7 lines, flows and DNS
with one alert in ten) in a temporary directory, then times the INSTALLED CLI as a
subprocess, `alertpull fetch --source ids` with a `suricata` source in file mode (a first
run: the whole file is new), reading the child's wall time, CPU time and peak RSS from the
kernel (wait4). Floors on the same file, each also a subprocess:

- jq: `jq -c 'select(.event_type=="alert")' eve.json > alerts.jsonl`, the usual shell
  pipeline for pulling alerts out of EVE;
- orjson loop: Python parsing each line with orjson and writing the alert lines, what any
  Python reader of EVE must at least pay.

Figures: MB/s of EVE read for each, and ours as a ratio of each floor's time.

    .venv/bin/python bench/suricata_bench.py              # 200 MB
    .venv/bin/python bench/suricata_bench.py --size 50
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.eve import eve_lines  # noqa: E402

ALERTPULL = str(Path(sys.executable).parent / "alertpull")
LINE_BYTES = 470  # about what eve_lines' lines weigh on average, to size the file
ORJSON_FLOOR = """
import sys, orjson
with open(sys.argv[1], "rb") as eve, open(sys.argv[2], "wb") as out:
    for line in eve:
        event = orjson.loads(line)
        if event.get("event_type") == "alert":
            out.write(line)
"""


def run(argv: list[str], cwd: Path, stdout: Path | None = None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MB) of one child process."""
    started = time.perf_counter()
    with open(stdout or os.devnull, "wb") as sink:
        child = subprocess.Popen(argv, cwd=cwd, stdout=sink, stderr=subprocess.PIPE)
        assert child.stderr is not None
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        errors = child.stderr.read().decode()
        child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {errors.strip()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=200, help="MB of EVE (default 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="suricata-bench-") as work:
        root = Path(work)
        (root / "sensor").mkdir()
        eve = root / "sensor" / "eve.json"
        count = args.size * 1_000_000 // LINE_BYTES
        with open(eve, "w") as handle:
            handle.writelines(eve_lines(count))
        mb = eve.stat().st_size / 1e6
        alerts = count // 10
        print(f"eve.json: {mb:.0f} MB, {count:,} lines, {alerts:,} alerts")
        (root / "alertpull.yaml").write_text(
            "state: {backend: local, path: state}\nsink: {type: jsonl, path: alerts}\n"
            f"sources:\n  ids: {{type: suricata, path: {eve}}}\n")

        figures: dict[str, tuple[float, float, float]] = {}
        figures["alertpull fetch (suricata)"] = run(
            [ALERTPULL, "-c", "alertpull.yaml", "fetch", "--source", "ids", "--since", "2d"],
            root)
        written = sum(p.read_bytes().count(b"\n") for p in (root / "alerts").rglob("*.jsonl"))
        if shutil.which("jq"):
            figures["jq select(alert) floor"] = run(
                ["jq", "-c", 'select(.event_type=="alert")', str(eve)], root,
                stdout=root / "jq.jsonl")
        else:
            print("jq is not installed (apt-get install -y jq): its floor is left out")
        figures["orjson loop floor"] = run(
            [sys.executable, "-c", ORJSON_FLOOR, str(eve), str(root / "py.jsonl")], root)
        print(f"alert records written: {written:,}\n")
        print(f"{'reader':30} {'wall s':>7} {'CPU s':>7} {'MB/s':>7} {'RSS MB':>7}")
        for name, (wall, cpu, rss) in figures.items():
            print(f"{name:30} {wall:7.2f} {cpu:7.2f} {mb / wall:7.1f} {rss:7.0f}")
        ours = figures["alertpull fetch (suricata)"][0]
        print()
        for name, (wall, _, _) in figures.items():
            if name != "alertpull fetch (suricata)":
                print(f"ours / {name}: {ours / wall:.2f}x the time")


if __name__ == "__main__":
    main()
