"""Speed and memory of `alertpull fetch` against the wire fakes, next to a floor.

For each source type and size N this starts the vendor fake in its own process with N
generated alerts spread over the last 59 days (so the overlap window holds few), runs the
INSTALLED CLI as a subprocess (`fetch --all --since 60d`) and reads the child's CPU time
and peak RSS from the kernel (wait4). The floor, measured in the same run against the same
fake, is a minimal `requests` loop that downloads the same pages over the same wire
protocol and appends them raw to a file: what any puller must at least pay.

    .venv/bin/python bench/run_bench.py                 # every source, default sizes
    .venv/bin/python bench/run_bench.py --sources scc kandji --sizes 10000 100000

Figures print as one table per source plus ratios against the targets of the reliability
issue: CPU per alert <= 2x the floor; peak RSS flat in N (largest <= 1.2x smallest,
<= 150 MB); 16 regions at 100 ms latency <= 0.35x a serial pull; --help/sources <= 6x
`python -c pass`. The bench config raises every rate budget far above the vendors' limits
(see RAISED), so pacing does not dominate the figures.

`run_bench.py --serve SOURCE N DIR` is the fake's process (started by the bench itself).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ALERTPULL = str(BIN / "alertpull")
SPAN = timedelta(days=59)  # the alerts' timestamps spread over this, the newest 5 min ago
SINCE = "60d"
RAISED = 10**7  # rate budgets in the bench config: far above any vendor limit

Replay = tuple[Any, Callable[[str], dict[str, str]], dict[str, Any]]  # fake, env(url), YAML

# -- the floors: minimal `requests` loops, one per wire protocol -----------------------------
# Each reads BENCH_URL, BENCH_OUT, BENCH_SINCE (RFC 3339) and what its source's env names,
# and hands every page's body to emit() (FLOOR_EMIT, run first). The raw floor appends the
# body as it came. The record floor also pays what the record contract costs any puller
# per alert, whatever its code: read the alert out of the page, SHA-256 its canonical JSON
# (sorted keys) and write one JSON line carrying it and the hash: no normalization, no
# dedup. Ours against it is what alertpull's own work per alert costs.

FLOOR_EMIT = r'''
import os
if os.environ["BENCH_FLOOR"] == "raw":
    def emit(sink, body):
        sink.write(body + b"\n")
else:
    import hashlib, orjson
    def emit(sink, body):
        for item in orjson.loads(body).get(os.environ["BENCH_ITEMS"], []):
            sha = hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()
            sink.write(orjson.dumps({"raw": item, "raw_sha256": sha}) + b"\n")
'''

FLOOR_GUARDDUTY = r'''
import os, requests
url, regions = os.environ["BENCH_URL"], os.environ["BENCH_REGIONS"].split(",")
session = requests.Session()
criteria = {"criterion": {"updatedAt": {"greaterThanOrEqual": 0, "lessThan": 2**62}}}
sort = {"attributeName": "updatedAt", "orderBy": "ASC"}
with open(os.environ["BENCH_OUT"], "ab") as sink:
    for region in regions:
        scope = f"AKID/20260101/{region}/guardduty/aws4_request"
        auth = {"Authorization": f"AWS4-HMAC-SHA256 Credential={scope}"}
        detector = session.get(f"{url}/detector", headers=auth).json()["detectorIds"][0]
        base = f"{url}/detector/{detector}/findings"
        body = {"maxResults": 50, "findingCriteria": criteria, "sortCriteria": sort}
        while True:
            page = session.post(base, json=body, headers=auth).json()
            ids = {"findingIds": page["findingIds"]}
            emit(sink, session.post(base + "/get", json=ids, headers=auth).content)
            if not page.get("nextToken"):
                break
            body["nextToken"] = page["nextToken"]
'''

FLOOR_SECURITYHUB = r'''
import os, requests
session = requests.Session()
session.headers["Authorization"] = (
    "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/securityhub/aws4_request")
date = {"FieldName": "finding_info.modified_time_dt",
        "Filter": {"Start": os.environ["BENCH_SINCE"], "End": "2999-01-01T00:00:00.000Z"}}
body = {"Filters": {"CompositeFilters": [{"DateFilters": [date], "Operator": "AND"}],
                    "CompositeOperator": "AND"},
        "SortCriteria": [{"Field": "finding_info.modified_time_dt", "SortOrder": "asc"}],
        "MaxResults": 100}
with open(os.environ["BENCH_OUT"], "ab") as sink:
    while True:
        response = session.post(os.environ["BENCH_URL"] + "/findingsv2", json=body)
        emit(sink, response.content)
        token = response.json().get("NextToken")
        if not token:
            break
        body["NextToken"] = token
'''

FLOOR_SCC = r'''
import os, requests
session = requests.Session()
session.headers["Authorization"] = "Bearer " + os.environ["FLOOR_TOKEN"]
url = f"{os.environ['BENCH_URL']}/v2/organizations/{os.environ['BENCH_ORG']}/sources/-/findings"
params = {"filter": f'event_time >= "{os.environ["BENCH_SINCE"]}"', "orderBy": "event_time",
          "pageSize": 1000}
with open(os.environ["BENCH_OUT"], "ab") as sink:
    while True:
        response = session.get(url, params=params)
        emit(sink, response.content)
        token = response.json().get("nextPageToken")
        if not token:
            break
        params["pageToken"] = token
'''

# Alert Center filters on createTime only, so any puller reads twice: the alerts created
# since `since`, then every alert by update_time desc down to `since` (as alertpull does).
FLOOR_ALERTCENTER = r'''
import os, requests
session = requests.Session()
session.headers["Authorization"] = "Bearer " + os.environ["FLOOR_TOKEN"]
url, since = os.environ["BENCH_URL"] + "/v1beta1/alerts", os.environ["BENCH_SINCE"]
customer = os.environ["BENCH_CUSTOMER"]
passes = [{"filter": f'createTime >= "{since}"', "orderBy": "create_time asc"},
          {"orderBy": "update_time desc"}]
with open(os.environ["BENCH_OUT"], "ab") as sink:
    for query in passes:
        params = {"customerId": customer, "pageSize": 100, **query}
        while True:
            response = session.get(url, params=params)
            emit(sink, response.content)
            page = response.json()
            alerts = page.get("alerts", [])
            if not page.get("nextPageToken") or (alerts and alerts[-1]["updateTime"] < since):
                break
            params["pageToken"] = page["nextPageToken"]
'''

# Graph (Entra alerts_v2, Intune auditEvents): the client-credentials token call is part
# of the measured floor (one POST); then $filter/$orderby/$top paging by @odata.nextLink.
FLOOR_GRAPH = r'''
import os, requests
env = os.environ
url, field = env["BENCH_URL"], env["BENCH_FIELD"]
session = requests.Session()  # trusts the throwaway CA through REQUESTS_CA_BUNDLE
token = session.post(f"{url}/{env['BENCH_TENANT']}/oauth2/v2.0/token", data={
    "grant_type": "client_credentials", "client_id": env["BENCH_CLIENT_ID"],
    "client_secret": env["BENCH_SECRET"], "scope": f"{url}/.default"}).json()["access_token"]
session.headers["Authorization"] = f"Bearer {token}"
params = {"$filter": f"{field} ge {env['BENCH_SINCE']}", "$orderby": f"{field} asc",
          "$top": 1000}
link = url + env["BENCH_PATH"]
with open(env["BENCH_OUT"], "ab") as sink:
    while link:
        response = session.get(link, params=params)
        emit(sink, response.content)
        link, params = response.json().get("@odata.nextLink"), None
'''

FLOOR_KANDJI = r'''
import os, requests
session = requests.Session()
session.headers["Authorization"] = "Bearer " + os.environ["BENCH_TOKEN"]
link = os.environ["BENCH_URL"] + "/api/v1/audit/events"
params = {"limit": 500, "sort_by": "occurred_at", "start_date": os.environ["BENCH_SINCE"]}
with open(os.environ["BENCH_OUT"], "ab") as sink:
    while link:
        response = session.get(link, params=params)
        emit(sink, response.content)
        link, params = response.json().get("next"), None
'''

FLOOR_CROWDSTRIKE = r'''
import os, requests
session = requests.Session()
token = session.post(os.environ["BENCH_URL"] + "/oauth2/token",
                     data={"client_id": os.environ["BENCH_ID"],
                           "client_secret": os.environ["BENCH_SECRET"]}).json()["access_token"]
session.headers["Authorization"] = "Bearer " + token
body = {"filter": f"updated_timestamp:>='{os.environ['BENCH_SINCE']}'",
        "sort": "updated_timestamp|asc", "limit": 1000}
with open(os.environ["BENCH_OUT"], "ab") as sink:
    while True:
        response = session.post(os.environ["BENCH_URL"] + "/alerts/combined/alerts/v1", json=body)
        emit(sink, response.content)
        after = response.json()["meta"]["pagination"].get("after")
        if not after:
            break
        body = {**body, "after": after}
'''

FLOOR_SENTINELONE = r'''
import os, requests
session = requests.Session()
session.headers["Authorization"] = "ApiToken " + os.environ["BENCH_TOKEN"]
params = {"updatedAt__gte": os.environ["BENCH_SINCE"], "sortBy": "updatedAt",
          "sortOrder": "asc", "limit": 1000}
with open(os.environ["BENCH_OUT"], "ab") as sink:
    while True:
        response = session.get(os.environ["BENCH_URL"] + "/web/api/v2.1/threats", params=params)
        emit(sink, response.content)
        cursor = response.json()["pagination"]["nextCursor"]
        if not cursor:
            break
        params = {**params, "cursor": cursor}
'''

FLOOR_CANARY = r'''
import os, requests
session = requests.Session()
params = {"auth_token": os.environ["BENCH_TOKEN"], "incidents_since": 0, "limit": 500}
with open(os.environ["BENCH_OUT"], "ab") as sink:
    while True:
        response = session.get(os.environ["BENCH_URL"] + "/api/v1/incidents/all", params=params)
        emit(sink, response.content)
        cursor = response.json()["cursor"]["next"]
        if not cursor:
            break
        params = {"auth_token": os.environ["BENCH_TOKEN"], "cursor": cursor}
'''


# -- one adapter per source type -------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """How to bench one source type.

    make(n, workdir): in the fake's process, an unstarted fake holding n alerts, env(url)
    for the CLI and the floor once it is started, and the YAML source block (rate budgets
    raised). floor: the floor loop; items: where a page holds its alerts. token(env): a
    bearer token for the floor, got here before the measured run (None: the floor needs
    none, or gets it itself).
    """

    title: str
    make: Callable[[int, Path], Replay]
    floor: str
    items: str  # the key of a page's alert list, for the record floor
    raised: str = "no rate budget option"
    token: Callable[[dict[str, str]], str] | None = None


def _start_time() -> Any:
    from alertpull.timeutil import utcnow

    return utcnow() - SPAN


def _step(n: int) -> timedelta:
    return (SPAN - timedelta(minutes=5)) / max(n, 1)


# Every source's fake serves a Generated dataset (tests/fakes/generated.py):
# each alert is made when a page reads it, and a page is found by bisection on its time, so
# the fake holds no list of N alerts and serves a page in the same time at any N.


def make_guardduty(n: int, workdir: Path) -> Replay:
    from tests.fakes.aws import AwsFake
    from tests.fakes.guardduty_data import DETECTOR, REGION, generated_findings

    fake = AwsFake()
    fake.add_detector(REGION, DETECTOR,
                      generated_findings(n, base_time=_start_time(), step=_step(n)))
    return fake, lambda url: {**aws_env(url), "BENCH_REGIONS": "us-east-1"}, {
        "type": "guardduty", "regions": ["us-east-1"]}


def make_securityhub(n: int, workdir: Path) -> Replay:
    # A list, not a Generated dataset: the fake filters and sorts a query's matches once,
    # when its paging session starts, then serves each page by offset.
    from tests.fakes.securityhub import SecurityHubFake
    from tests.fakes.securityhub_data import REGION, make_ocsf_findings

    fake = SecurityHubFake()
    fake.enable_hub(REGION, make_ocsf_findings(n, base_time=_start_time(), step=_step(n)))
    return fake, aws_env, {"type": "securityhub", "regions": [REGION]}


def make_scc(n: int, workdir: Path) -> Replay:
    from tests.fakes.scc import SccFake
    from tests.fakes.scc_data import ORG, generated_results

    fake = SccFake(generated_results(n, base_time=_start_time(), step=_step(n)))

    def env(url: str) -> dict[str, str]:
        key = fake.write_key_file(workdir)
        return {"BENCH_KEY": str(key), "BENCH_ORG": ORG}

    return fake, env, {"type": "scc", "parent": f"organizations/{ORG}",
                       "credentials_file": "${BENCH_KEY}", "api_endpoint": "${BENCH_URL}",
                       "reads_per_minute": RAISED}


def make_alertcenter(n: int, workdir: Path) -> Replay:
    from tests.fakes.alertcenter import ADMIN, TOKEN_PATH, AlertCenterFake
    from tests.fakes.alertcenter_data import CUSTOMER_ID, generated_alerts
    from tests.fakes.google_sa import make_key

    fake = AlertCenterFake(make_key())
    fake.alerts = generated_alerts(n, base_time=_start_time(), step=_step(n))

    def env(url: str) -> dict[str, str]:
        key = fake.key.write(workdir / "workspace-key.json", url + TOKEN_PATH)
        return {"BENCH_KEY": str(key), "BENCH_CUSTOMER": CUSTOMER_ID, "BENCH_SUBJECT": ADMIN}

    return fake, env, {"type": "workspace_alertcenter", "credentials_file": "${BENCH_KEY}",
                       "subject": ADMIN, "customer_id": CUSTOMER_ID,
                       "api_endpoint": "${BENCH_URL}"}


def _graph_replay(fake: Any, roles: set[str], bundle: Path, collection: str, field: str,
                  source: dict[str, Any]) -> Replay:
    """The Microsoft fakes: one app with a secret, TLS through a throwaway CA."""
    from tests.fakes.graph_data import TENANT_ID

    client_id, secret = "8a1c6e2f-5b3d-4f7a-9c0e-1d2b3a4c5e6f", "bench-secret-not-real"
    fake.add_app(client_id, secret=secret, roles=roles)

    def env(url: str) -> dict[str, str]:
        return {"REQUESTS_CA_BUNDLE": str(bundle), "BENCH_TENANT": TENANT_ID,
                "BENCH_CLIENT_ID": client_id, "BENCH_SECRET": secret,
                "BENCH_PATH": collection, "BENCH_FIELD": field}

    return fake, env, {**source, "tenant_id": TENANT_ID, "client_id": client_id,
                       "client_secret": "${BENCH_SECRET}", "authority_host": "${BENCH_URL}",
                       "graph_endpoint": "${BENCH_URL}"}


def _throwaway_tls(workdir: Path) -> tuple[Any, Path]:
    from tests.fakes.tls import bundle_with_system_roots, make_throwaway_ca

    ca = make_throwaway_ca(workdir / "tls")
    return ca, bundle_with_system_roots(ca, workdir / "tls" / "ca-bundle.pem")


def make_entra(n: int, workdir: Path) -> Replay:
    from tests.fakes.generated import Generated
    from tests.fakes.graph import ALERTS_PATH, GraphFake
    from tests.fakes.graph_data import make_alert

    ca, bundle = _throwaway_tls(workdir)
    fake = GraphFake(ca.server_context())
    make = functools.partial(make_alert, base_time=_start_time(), step=_step(n))
    fake.alerts = Generated(make, n, "lastUpdateDateTime")
    # riskDetections are left out: Identity Protection's fixed 1 call/s would dominate.
    roles = {"SecurityAlert.Read.All"}
    return _graph_replay(fake, roles, bundle, ALERTS_PATH, "lastUpdateDateTime", {
        "type": "entra_id", "streams": ["alerts"], "alerts_per_minute": RAISED})


def make_intune(n: int, workdir: Path) -> Replay:
    from tests.fakes.generated import Generated
    from tests.fakes.intune import AUDIT_PATH, INTUNE_ROLES, IntuneFake
    from tests.fakes.intune_data import make_audit_event

    ca, bundle = _throwaway_tls(workdir)
    fake = IntuneFake(ca.server_context())
    make = functools.partial(make_audit_event, base_time=_start_time(), step=_step(n))
    fake.audit_events = Generated(make, n, "activityDateTime")
    return _graph_replay(fake, set(INTUNE_ROLES), bundle, AUDIT_PATH, "activityDateTime", {
        "type": "intune", "streams": ["audit_events"], "requests_per_minute": RAISED})


def make_kandji(n: int, workdir: Path) -> Replay:
    from tests.fakes.generated import Generated
    from tests.fakes.kandji import KandjiFake
    from tests.fakes.kandji_data import make_audit_event

    start, step = _start_time(), _step(n)
    fake = KandjiFake()
    fake.audit_events = Generated(lambda i: make_audit_event(i, start + i * step), n,
                                  "occurred_at")
    return fake, lambda url: {"BENCH_TOKEN": fake.token}, {
        "type": "kandji", "base_url": "${BENCH_URL}", "api_token": "${BENCH_TOKEN}",
        "streams": ["audit_events"], "requests_per_hour": RAISED}


# The declarative recipes: their fakes hold plain lists (a fake's CPU is not counted) and
# their specs' rate budgets are far above what a bench run calls.


def make_crowdstrike(n: int, workdir: Path) -> Replay:
    from tests.fakes.crowdstrike import CrowdStrikeFake, make_alert

    start, step = _start_time(), _step(n)
    fake = CrowdStrikeFake()
    fake.alerts = [make_alert(i, start + i * step) for i in range(n)]
    return fake, lambda url: {"BENCH_ID": fake.client_id, "BENCH_SECRET": fake.client_secret}, {
        "type": "crowdstrike", "base_url": "${BENCH_URL}", "client_id": "${BENCH_ID}",
        "client_secret": "${BENCH_SECRET}"}


def make_sentinelone(n: int, workdir: Path) -> Replay:
    from tests.fakes.sentinelone import SentinelOneFake, make_threat

    start, step = _start_time(), _step(n)
    fake = SentinelOneFake()
    fake.threats = [make_threat(i, start + i * step) for i in range(n)]
    return fake, lambda url: {"BENCH_TOKEN": fake.token}, {
        "type": "sentinelone", "base_url": "${BENCH_URL}", "api_token": "${BENCH_TOKEN}"}


def make_canary(n: int, workdir: Path) -> Replay:
    from tests.fakes.canary import CanaryFake

    start, step = _start_time(), _step(n)
    fake = CanaryFake()
    for i in range(n):
        fake.add(i, start + i * step, kind=i)
    return fake, lambda url: {"BENCH_TOKEN": fake.auth_token}, {
        "type": "thinkst_canary", "base_url": "${BENCH_URL}", "auth_token": "${BENCH_TOKEN}"}


def google_token(env: dict[str, str], scope: str, subject: str | None = None) -> str:
    """A bearer token from the fake's OAuth endpoint (JWT-bearer grant of the key file)."""
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_file(
        env["BENCH_KEY"], scopes=[scope], subject=subject)
    credentials.refresh(Request())
    return str(credentials.token)


SOURCES: dict[str, Source] = {
    "guardduty": Source("GuardDuty findings", make_guardduty, FLOOR_GUARDDUTY, "findings"),
    # api v2: the CSPM API's fixed 3 calls/s (no option raises it) would be all it measured.
    "securityhub": Source("Security Hub GetFindingsV2 findings", make_securityhub,
                          FLOOR_SECURITYHUB, "Findings"),
    "scc": Source("SCC v2 findings", make_scc, FLOOR_SCC, "listFindingsResults",
                  "reads_per_minute",
                  lambda env: google_token(env, "https://www.googleapis.com/auth/cloud-platform")),
    "workspace_alertcenter": Source(
        "Workspace Alert Center alerts", make_alertcenter, FLOOR_ALERTCENTER, "alerts",
        token=lambda env: google_token(env, "https://www.googleapis.com/auth/apps.alerts",
                                       env["BENCH_SUBJECT"])),
    "entra_id": Source("Entra ID alerts_v2 (stream alerts)", make_entra, FLOOR_GRAPH,
                       "value", "alerts_per_minute"),
    "intune": Source("Intune auditEvents (stream audit_events)", make_intune, FLOOR_GRAPH,
                     "value", "requests_per_minute"),
    "kandji": Source("Kandji audit events (stream audit_events)", make_kandji, FLOOR_KANDJI,
                     "results", "requests_per_hour"),
    "crowdstrike": Source("CrowdStrike Falcon alerts (recipe)", make_crowdstrike,
                          FLOOR_CROWDSTRIKE, "resources"),
    "sentinelone": Source("SentinelOne threats (recipe)", make_sentinelone, FLOOR_SENTINELONE,
                          "data"),
    "thinkst_canary": Source("Thinkst Canary incidents (recipe, position cursor)", make_canary,
                             FLOOR_CANARY, "incidents"),
}


# -- measurement -----------------------------------------------------------------------------


@dataclass
class Usage:
    wall: float
    cpu: float
    max_rss_mb: float


# wait4's ru_maxrss starts from the forking process's peak (Linux carries it across exec),
# so children are started by this lean launcher, not by the bench with its imports.
LAUNCHER = r'''
import os, sys, time
started = time.monotonic()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), time.monotonic() - started,
      usage.ru_utime + usage.ru_stime, usage.ru_maxrss)
'''


def run_measured(command: list[str], env: dict[str, str], cwd: str) -> Usage:
    """Run a child to completion; its wall time, CPU seconds and peak RSS from wait4."""
    done = subprocess.run([sys.executable, "-I", "-S", "-c", LAUNCHER, *command], env=env,
                          cwd=cwd, capture_output=True, text=True, check=False)
    code, wall, cpu, max_rss_kb = done.stdout.split()
    if int(code) != 0:
        raise SystemExit(f"{command[0]} failed: {done.stderr}")
    return Usage(float(wall), float(cpu), int(max_rss_kb) / 1024)


class FakeProcess:
    """A fake in its own process, so its CPU is not counted; its first stdout line says
    where it listens."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.first_line = self.process.stdout.readline().strip()
        if not self.first_line:
            self.close()
            raise SystemExit(f"the fake did not start: {' '.join(command)}")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


def base_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}


def aws_env(url: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_STS": url,
            "AWS_ENDPOINT_URL_EC2": url, "AWS_ENDPOINT_URL_GUARDDUTY": url,
            "AWS_ENDPOINT_URL_SECURITYHUB": url,
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def pull(env: dict[str, str], source: dict[str, Any], workdir: str,
         concurrency: int = 1) -> Usage:
    """`alertpull fetch --all` with a config naming one source, written to workdir."""
    config = Path(workdir) / "alertpull.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "state": {"backend": "local", "path": "state"}, "sink": {"type": "jsonl", "path": "alerts"},
        "defaults": {"concurrency": concurrency}, "sources": {"bench": source}}, indent=1))
    return run_measured([ALERTPULL, "-c", str(config), "fetch", "--all", "--since", SINCE],
                        env, workdir)


def floor(adapter: Source, kind: str, env: dict[str, str], workdir: str) -> Usage:
    """The adapter's floor loop, `raw` or `record` (see FLOOR_EMIT)."""
    out = str(Path(workdir) / f"{kind}.jsonl")
    return run_measured([sys.executable, "-c", FLOOR_EMIT + adapter.floor],
                        {**env, "BENCH_OUT": out, "BENCH_FLOOR": kind,
                         "BENCH_ITEMS": adapter.items}, workdir)


def written(workdir: str) -> tuple[int, float]:
    """Records the sink wrote under workdir/alerts and their mean size in bytes."""
    count = size = 0
    for path in Path(workdir, "alerts").rglob("*.jsonl*"):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as lines:
            for line in lines:
                count, size = count + 1, size + len(line)
    return count, size / max(count, 1)


def bench_source(name: str, sizes: list[int]) -> None:
    """One table: alertpull vs the floor at each size, then the RSS ratio across sizes."""
    adapter = SOURCES[name]
    print(f"\n{adapter.title} [{name}]: alertpull fetch --all --since {SINCE} vs floor "
          f"(rate budget raised: {adapter.raised})")
    print(f"{'N':>7} {'rec B':>6} {'alerts/s':>9} {'CPU s/100k':>11} {'RSS MB':>7} | "
          f"{'floor a/s':>9} {'floor CPU/100k':>14} {'floor RSS':>9} | {'CPU ratio':>9} | "
          f"{'rec-floor CPU/100k':>18} {'ratio':>6}")
    rss = {}
    for n in sizes:
        with tempfile.TemporaryDirectory() as ours, tempfile.TemporaryDirectory() as base:
            fake = FakeProcess([sys.executable, __file__, "--serve", name, str(n), base])
            try:
                served = json.loads(fake.first_line)
                env = {**base_env(), **served["env"], "BENCH_URL": served["url"],
                       "BENCH_SINCE": served["since"]}
                mine = pull(env, served["source"], ours)
                if adapter.token:
                    env["FLOOR_TOKEN"] = adapter.token(env)  # not measured
                low = floor(adapter, "raw", env, base)
                record_low = floor(adapter, "record", env, base)
            finally:
                fake.close()
            count, mean = written(ours)
        note = "" if count == n else f"  (!) {count} records written"
        rss[n] = mine.max_rss_mb
        print(f"{n:>7} {mean:>6.0f} {n / mine.wall:>9.0f} {mine.cpu / n * 1e5:>11.1f} "
              f"{mine.max_rss_mb:>7.1f} | {n / low.wall:>9.0f} {low.cpu / n * 1e5:>14.1f} "
              f"{low.max_rss_mb:>9.1f} | {mine.cpu / low.cpu:>8.2f}x | "
              f"{record_low.cpu / n * 1e5:>18.1f} {mine.cpu / record_low.cpu:>5.2f}x{note}",
              flush=True)
    smallest, largest = min(sizes), max(sizes)
    print(f"peak RSS {largest} vs {smallest}: {rss[largest] / rss[smallest]:.2f}x "
          f"(target <= 1.2x), {rss[largest]:.0f} MB (target <= 150 MB)", flush=True)


def serve(name: str, n: int, workdir: str) -> None:
    """The fake's process: build, start, say where (one JSON line), serve until killed."""
    sys.path.insert(0, str(REPO))
    from alertpull.timeutil import format_time, utcnow

    since = format_time(utcnow() - timedelta(days=60))
    fake, env_for, source = SOURCES[name].make(n, Path(workdir))
    fake.start()
    print(json.dumps({"url": fake.url, "env": env_for(fake.url), "source": source,
                      "since": since}), flush=True)
    fake.serve_until_interrupted()


def regions_concurrency() -> None:
    sys.path.insert(0, str(REPO))
    from tests.fakes.aws import REGIONS

    fake = FakeProcess([sys.executable, "-m", "tests.fakes.aws", "--findings", str(16 * 200),
                        "--regions", "16", "--span-hours", str(24 * 59), "--latency-ms", "100"])
    env = {**base_env(), **aws_env(fake.first_line)}
    source = {"type": "guardduty", "regions": list(REGIONS)}
    try:
        with tempfile.TemporaryDirectory() as serial, tempfile.TemporaryDirectory() as wide:
            one = pull(env, source, serial, concurrency=1)
            many = pull(env, source, wide, concurrency=8)
    finally:
        fake.close()
    print(f"\n16 regions, 100 ms per call: serial {one.wall:.1f}s, concurrency 8 "
          f"{many.wall:.1f}s = {many.wall / one.wall:.2f}x (target <= 0.35x)")


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
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 10_000])
    parser.add_argument("--sources", nargs="+", choices=list(SOURCES), default=list(SOURCES))
    parser.add_argument("--skip-regions", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    print(f"Alerts spread over the last {SPAN.days} days; rate budgets in the bench config "
          f"raised to {RAISED:,} so pacing does not dominate. rec B: mean bytes per record "
          "written by alertpull.")
    if not args.skip_startup:
        startup()
    for name in args.sources:
        bench_source(name, sorted(args.sizes))
    if not args.skip_regions:
        regions_concurrency()


if __name__ == "__main__":
    main()
