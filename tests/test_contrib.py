"""contrib/: the systemd units, the crontab line and the Kubernetes CronJob are valid as
shipped, run a command line alertpull accepts, and are referenced from the docs."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from alertpull.cli import cli
from alertpull.config import load_config, parse_config
from tests.conftest import ALERTPULL, REPO

CONTRIB = REPO / "contrib"
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


def parse_cli(args: list[str]) -> tuple[str, dict[str, Any]]:
    """The subcommand and its options, as alertpull's own parser reads `args`."""
    assert args[0].endswith("alertpull")
    with cli.make_context("alertpull", args[1:]) as ctx:
        with warnings.catch_warnings():  # Click 8.2 deprecates protected_args (9: in args)
            warnings.simplefilter("ignore", DeprecationWarning)
            words = [*getattr(ctx, "protected_args", []), *ctx.args]
        name, command, rest = cli.resolve_command(ctx, words)
        assert command is not None
        with command.make_context(name, rest, parent=ctx) as sub:
            return str(name), {**ctx.params, **sub.params}


def unit_file(name: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit: section -> key -> values (keys such as LoadCredential repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in (CONTRIB / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), defaultdict(list))
            continue
        key, _, value = line.partition("=")
        current[key.strip()].append(value.strip())
    return sections


# -- systemd -----------------------------------------------------------------------------


def test_the_service_is_a_hardened_oneshot_running_fetch_all() -> None:
    service = unit_file("alertpull.service")["Service"]
    assert service["Type"] == ["oneshot"]
    assert service["DynamicUser"] == ["yes"] and service["ProtectSystem"] == ["strict"]
    assert service["StateDirectory"] == ["alertpull"]
    assert service["NoNewPrivileges"] == ["yes"] and service["CapabilityBoundingSet"] == [""]
    assert "75" in service["SuccessExitStatus"][0].split()  # a held lock is not a failure
    [exec_start] = service["ExecStart"]
    command, options = parse_cli(shlex.split(exec_start))
    assert command == "fetch" and options["all_sources"]
    assert options["log_format"] == "json"
    # The metrics file is in the one directory the service may write besides its state.
    assert Path(options["metrics_file"]).parent == Path("/run") / service["RuntimeDirectory"][0]


def test_the_timer_starts_the_service_every_ten_minutes() -> None:
    timer = unit_file("alertpull.timer")
    assert timer["Timer"]["OnCalendar"] == ["*:0/10"] and timer["Timer"]["Persistent"] == ["yes"]
    assert "Unit" not in timer["Timer"]  # alertpull.timer starts alertpull.service
    assert timer["Install"]["WantedBy"] == ["timers.target"]


def test_the_config_reads_each_systemd_credential(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = {value.partition(":")[0] for value in
                   unit_file("alertpull.service")["Service"]["LoadCredential"]}
    config_text = (CONTRIB / "alertpull.yaml").read_text()
    assert set(re.findall(r"\$\{CREDENTIALS_DIRECTORY\}/([\w.-]+)", config_text)) == credentials
    for name in credentials:
        (tmp_path / name).write_text(f"secret-of-{name}\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = load_config(str(CONTRIB / "alertpull.yaml"))
    secrets = {s.reveal() for source in config.sources.values()
               for s in source.settings.values() if hasattr(s, "reveal")}
    assert secrets == {f"secret-of-{name}" for name in credentials}
    assert config.state["path"].startswith("/var/lib/alertpull/")  # the StateDirectory
    assert config.sink["path"].startswith("/var/lib/alertpull/")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    for name in ("alertpull.service", "alertpull.timer"):
        text = (CONTRIB / name).read_text()
        # verify checks that the binary exists: point it at the installed one.
        (tmp_path / name).write_text(text.replace("/usr/local/bin/alertpull", ALERTPULL))
    units = [str(tmp_path / "alertpull.service"), str(tmp_path / "alertpull.timer")]
    result = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True,
                            text=True, timeout=60, check=False)
    # verify exits 0 on unknown keys and bad values too; it names the file when it warns.
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if "alertpull." in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr
    if "--offline" in subprocess.run(["systemd-analyze", "--help"], capture_output=True,
                                     text=True, check=False).stdout:
        security = subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", "--threshold=30", units[0]],
            capture_output=True, text=True, timeout=60, check=False)
        assert security.returncode == 0, security.stdout[-2000:]  # exposure 3.0 at most


# -- cron --------------------------------------------------------------------------------


def test_the_crontab_line_runs_fetch_all_without_flock() -> None:
    lines = [line for line in (CONTRIB / "alertpull.crontab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    [line] = lines
    fields = line.split(None, 5)
    assert all(CRON_FIELD.match(field) for field in fields[:5]), fields[:5]
    words = shlex.split(fields[5])
    assert "flock" not in fields[5]
    redirect = words.index(next(w for w in words if w.startswith(">>")))
    command, options = parse_cli(words[:redirect])
    assert command == "fetch" and options["all_sources"] and options["metrics_file"]
    assert words[redirect:] == [">>/var/log/alertpull/alertpull.log", "2>&1"]


# -- Kubernetes --------------------------------------------------------------------------


def manifests() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((CONTRIB / "k8s-cronjob.yaml").read_text()))
    return {doc["kind"]: doc for doc in docs}


def test_the_cronjob_forbids_overlap_and_runs_fetch_all_as_non_root() -> None:
    cronjob = manifests()["CronJob"]
    assert cronjob["apiVersion"] == "batch/v1"
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert all(CRON_FIELD.match(field) for field in spec["schedule"].split())
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"]
    assert pod["serviceAccountName"] == manifests()["ServiceAccount"]["metadata"]["name"]
    [container] = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    command, options = parse_cli(["alertpull", *container["args"]])
    assert command == "fetch" and options["all_sources"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == set(volumes)
    assert Path(options["config_path"]).parent == Path(mounts["config"])
    assert volumes["config"]["configMap"]["name"] == manifests()["ConfigMap"]["metadata"]["name"]


def test_the_cronjob_config_uses_s3_state_and_an_s3_sink(tmp_path: Path) -> None:
    pod = manifests()["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    text = manifests()["ConfigMap"]["data"]["alertpull.yaml"]
    # The secret files are where the Secret volume is mounted; stand them in a temp dir.
    names = re.findall(re.escape(mounts["credentials"]) + r"/([\w.-]+)", text)
    assert names
    for name in names:
        (tmp_path / name).write_text("not-a-secret")
    raw = yaml.safe_load(text.replace(mounts["credentials"], str(tmp_path)))
    config = parse_config(raw, str(tmp_path / "alertpull.yaml"))
    assert config.state["backend"] == "s3" and config.sink["type"] == "s3"
    # The root filesystem is read-only: the spool must be on a mounted volume.
    assert Path(config.sink["spool_dir"]).is_relative_to(mounts["spool"])


# -- docs --------------------------------------------------------------------------------


def test_every_contrib_file_is_referenced_from_the_readme() -> None:
    docs = (REPO / "README.md").read_text()
    for path in CONTRIB.iterdir():
        assert f"contrib/{path.name}" in docs, path.name
