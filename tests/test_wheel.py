"""The wheel, installed into a fresh venv, runs: catches a module, package or package-data
file that an editable install finds in the checkout but the wheel lacks.

The venv borrows its dependencies from this one (a .pth naming its site-packages, whose own
.pth files — the editable install of alertpull among them — are not read from there), so
alertpull itself can only come from the wheel: installing `[all]` afresh would cost half a
minute to prove what `make`'s install of the same pyproject already proves."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import yaml

from demo.run_demo import REPLAYS
from tests.conftest import REPO, clean_env, read_records


def test_the_built_wheel_installs_and_pulls(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = dist.glob("alertpull-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    (site_packages,) = env_dir.glob("lib/python*/site-packages")
    (site_packages / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin/python"),
                    "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=900)
    where = subprocess.run([str(env_dir / "bin/python"), "-c",
                            "import alertpull.connectors, alertpull; print(alertpull.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path)
    assert where.stdout.startswith(str(site_packages)), where.stdout
    alertpull = str(env_dir / "bin/alertpull")
    work = tmp_path / "work"  # outside the checkout: nothing can be imported from it
    work.mkdir()

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([alertpull, *args], cwd=work, env=env or clean_env(),
                              capture_output=True, text=True, timeout=120, check=False)

    assert run("--help").returncode == 0
    schema = run("schema")
    assert schema.returncode == 0 and '"raw_sha256"' in schema.stdout

    fake, env_for, source = REPLAYS["aws-demo"]()
    # A declarative recipe: its spec is package data (alertpull/rest/recipes/*.yaml).
    recipe, recipe_env_for, recipe_source = REPLAYS["canary-demo"]()
    with fake, recipe:
        (work / "alertpull.yaml").write_text(yaml.safe_dump({
            "state": {"backend": "local", "path": "state"},
            "sink": {"type": "jsonl", "path": "alerts"},
            "sources": {"aws-demo": source, "canary-demo": recipe_source},
        }))
        fetched = run("-c", "alertpull.yaml", "fetch", "--all",
                      env=clean_env(**env_for(fake.url), **recipe_env_for(recipe.url)))
    assert fetched.returncode == 0, fetched.stderr
    records = read_records(work / "alerts")
    # the replay's 150 + 60 findings and the Canary replay's incidents, each once
    assert len([r for r in records if r["source"] == "aws-demo"]) == 210
    assert len([r for r in records if r["source"] == "canary-demo"]) == len(recipe.incidents)
