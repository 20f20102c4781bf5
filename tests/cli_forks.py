"""The CLI as a fresh process without paying Python's start-up and imports for each run.

Most tests run the CLI hundreds of times, and each run of the installed script spends
~0.3 CPU-s importing click, requests and the vendor SDKs before it does anything: on the
2-core machine that is most of the suite's time. A *fork server* per test worker imports
all of that once, then forks a child for each run. The child is a real process of its own
— its own pid, environment, working directory, stdout and stderr files, signals and exit
code (a signal's death reads as -N, as subprocess reports it) — that runs the same
`alertpull.cli.main` the installed script runs, with sys.argv as the script would see it.

What a forked child cannot mimic, it is not asked to do: a run whose environment sets
PYTHON* variables (they act at interpreter start) goes through a fresh interpreter, as do
the tests marked `fresh_process` (tests/test_cli.py: every command as cron starts it) and
every run when ALERTPULL_TESTS_FRESH=1. A module that read the environment at import would
see the server's, not the run's: alertpull reads its own variables when it acts (see
alertpull/failpoints.py), and tests/test_cli_forks.py compares forked and fresh runs.

Protocol, over a Unix socket: the client sends one JSON line (entry, argv, env, cwd, the
stdout and stderr paths); the server forks a *waiter*, which forks the *runner*, sends its
pid, waits for it and sends its exit code. The server itself never waits (SIGCHLD
ignored), so it stays single-threaded and ready to fork.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import locale
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LEDGER_SCRIPT = str(REPO / "tests" / "ledger_cli.py")
# What a run imports lazily, imported once here (besides every alertpull module): the SDKs.
PRELOADED = (
    "boto3", "botocore", "googleapiclient.discovery", "googleapiclient.discovery_cache",
    "google.auth", "google.auth.impersonated_credentials", "google.oauth2.service_account",
    "google.api_core", "google.cloud.storage", "jmespath", "msal", "netrc", "yaml",
    "tests.ledger_connector",
)


# -- the server -------------------------------------------------------------------------------


def serve(path: str) -> None:
    import importlib
    import pkgutil

    sys.path.insert(0, str(REPO))
    for name in PRELOADED:
        # An extra not installed: its runs import it (and fail) as a fresh interpreter does.
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # Every module of alertpull, and of its connectors (a package of their own directory).
    for name in ("alertpull", "alertpull.connectors"):
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            if not module.name.endswith("__main__"):
                with contextlib.suppress(ImportError):
                    importlib.import_module(module.name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # waiters are reaped by the kernel
    parent = os.getppid()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(16)
        listener.settimeout(1.0)
        print("ready", flush=True)
        while os.getppid() == parent:  # the test worker that started it is gone: stop
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            if os.fork() == 0:
                listener.close()
                _wait_on_runner(conn)
            conn.close()


def _wait_on_runner(conn: socket.socket) -> None:
    """The waiter: fork the runner, tell the client its pid and then its exit code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    code = 1
    try:
        request = json.loads(conn.makefile("r").readline())
        pid = os.fork()
        if pid == 0:
            conn.close()
            _run(request)
        conn.sendall(f"{pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
        code = 0
    finally:
        os._exit(code)


def _run(request: dict[str, Any]) -> None:
    """The runner: become the process the script would have started, and run main()."""
    code: int | str | None = 1
    try:
        os.setpgid(0, 0)  # its own group, as a timeout kills it alone
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()  # TZ acts at interpreter start
        for fd, name, flags in ((0, os.devnull, os.O_RDONLY),
                                (1, request["stdout"], os.O_WRONLY),
                                (2, request["stderr"], os.O_WRONLY)):
            opened = os.open(name, flags)
            os.dup2(opened, fd)
            os.close(opened)
        sys.argv = list(request["argv"])
        from alertpull.cli import main

        if request["entry"] == "ledger":
            from alertpull.connectors import REGISTRY
            from tests.ledger_connector import REGISTRY_ENTRY, TYPE_NAME

            REGISTRY[TYPE_NAME] = REGISTRY_ENTRY
        try:
            main()
            code = 0
        except SystemExit as done:
            code = done.code
    finally:
        # As the interpreter does at exit: wait for the threads it would wait for, run the
        # exit hooks, flush Python's buffers; then the status.
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        if isinstance(code, str):  # sys.exit("message"), as the interpreter reports it
            os.write(2, (code + "\n").encode())
            code = 1
        os._exit(code if isinstance(code, int) else 0)


# -- the client -------------------------------------------------------------------------------


class ForkServer:
    """One per test worker, started on first use."""

    def __init__(self, alertpull: str) -> None:
        self.alertpull = alertpull
        self.dir = tempfile.mkdtemp(prefix="alertpull-forks-")
        self.path = os.path.join(self.dir, "socket")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
        # The same clean environment as a run's fresh interpreter starts from (stdio
        # encodings and locale are settled at start), so children start from what it has.
        self.process = subprocess.Popen([sys.executable, __file__, self.path], env=env,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the CLI fork server did not start")
        self.runs = 0

    def entry(self, command: Sequence[str]) -> str | None:
        """Which main() a command runs, if a forked child can run it."""
        if tuple(command) == (self.alertpull,):
            return "alertpull"
        if tuple(command) == (sys.executable, "-m", "tests.ledger_cli"):
            return "ledger"
        return None

    def run(self, entry: str, command: Sequence[str], args: Sequence[str],
            env: Mapping[str, str], cwd: Path | None,
            timeout: float) -> subprocess.CompletedProcess[str]:
        self.runs += 1
        out, err = (os.path.join(self.dir, f"{self.runs}.{name}") for name in ("out", "err"))
        for name in (out, err):
            Path(name).touch()
        argv0 = LEDGER_SCRIPT if entry == "ledger" else command[0]
        request = {"entry": entry, "argv": [argv0, *args], "env": dict(env),
                   "cwd": str(cwd or os.getcwd()), "stdout": out, "stderr": err}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.path)
            conn.sendall((json.dumps(request) + "\n").encode())
            conn.settimeout(timeout)
            answers = conn.makefile("r")
            pid = int(answers.readline())
            try:
                code = int(answers.readline())
            except TimeoutError:
                os.killpg(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired([*command, *args], timeout) from None
        encoding = locale.getpreferredencoding(False)
        stdout, stderr = (Path(name).read_text(encoding=encoding) for name in (out, err))
        for name in (out, err):
            os.unlink(name)
        return subprocess.CompletedProcess([*command, *args], code, stdout, stderr)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def forkable(env: Mapping[str, str]) -> bool:
    """Whether a forked child starts as a fresh interpreter with this environment would:
    PYTHON* variables act at interpreter start (the repository on PYTHONPATH, which the
    server has on its path, aside)."""
    return all(not key.startswith("PYTHON") or (key == "PYTHONPATH" and value == str(REPO))
               for key, value in env.items())


if __name__ == "__main__":
    serve(sys.argv[1])
