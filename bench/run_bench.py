"""What users wait for: `alertpull fetch` against wire fakes that answer at a network's pace.

For each source type and size N this starts the vendor fake in its own process (bench/fakes.py:
every call answered `--latency-ms` after it arrived, alerts prebuilt, calls counted) with N
alerts spread over the last 59 days, and measures, as a subprocess reading the child's CPU
time and peak RSS from the kernel (wait4):

- first run: the INSTALLED CLI, `fetch --all --since 60d`;
- tick: the same state again after 1,000 alerts changed (an incremental run);

each next to the floor (a minimal `requests` loop at the API's maximum page size, same
latency, pages appended raw) and the record floor (the floor plus what the record shape
costs any puller per alert: parse, canonical hash, one line). Calls are the fake's count;
the minimum is each stream's alerts at the API's maximum page size, plus auth.

    .venv/bin/python bench/run_bench.py --quick            # every source, under ~3 minutes
    .venv/bin/python bench/run_bench.py                    # 10k and 100k, regions, startup
    .venv/bin/python bench/run_bench.py --sources scc --sizes 10000 1000000

Targets, printed with the figures: calls <= 1.05x the minimum; first-run wall <= 1.3x the
floor's; CPU <= 1.5x the record floor's; peak RSS flat in N (largest <= 1.2x smallest).
The bench config raises every rate budget far above the vendors' limits (RAISED) and sets
settle to 0 (so a tick sees changes made a second before it).

`run_bench.py --serve SOURCE N DIR LATENCY_MS` is the fake's process (started by the bench).
`--alertpull-src DIR` runs the CLI from another checkout (e.g. main, for a before/after).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ALERTPULL = str(BIN / "alertpull")
SPAN = timedelta(days=59)  # the alerts' timestamps spread over this, the newest 5 min ago
SINCE = "60d"
RAISED = 10**7  # rate budgets in the bench config: far above any vendor limit
TICK_SPAN = timedelta(seconds=1)  # the tick's changes are stamped over this, just before it

sys.path.insert(0, str(REPO))
from bench.fakes import TICK  # noqa: E402  (the tick's changes, which the fake adds)

FakeSetup = tuple[Any, Callable[[str], dict[str, str]], dict[str, Any]]  # fake, env(url), YAML

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
since = int(os.environ["BENCH_SINCE_MS"])
criteria = {"criterion": {"updatedAt": {"greaterThanOrEqual": since, "lessThan": 2**62}}}
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

# Alert Center filters on createTime only, so any puller reads in two passes: the alerts
# created since `since`, then the older ones by update_time desc down to `since` (changes).
FLOOR_ALERTCENTER = r'''
import os, requests
session = requests.Session()
session.headers["Authorization"] = "Bearer " + os.environ["FLOOR_TOKEN"]
url, since = os.environ["BENCH_URL"] + "/v1beta1/alerts", os.environ["BENCH_SINCE"]
customer = os.environ["BENCH_CUSTOMER"]
passes = [{"filter": f'createTime >= "{since}"', "orderBy": "create_time asc"},
          {"filter": f'createTime < "{since}"', "orderBy": "update_time desc"}]
with open(os.environ["BENCH_OUT"], "ab") as sink:
    for query in passes:
        params = {"customerId": customer, "pageSize": 1000, **query}
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


# CrowdStrike: the client-credentials token call is part of the measured floor (one POST).
FLOOR_CROWDSTRIKE = r'''
import os, requests
url = os.environ["BENCH_URL"]
session = requests.Session()
token = session.post(url + "/oauth2/token", data={
    "client_id": os.environ["BENCH_ID"],
    "client_secret": os.environ["BENCH_SECRET"]}).json()["access_token"]
session.headers["Authorization"] = "Bearer " + token
body = {"filter": f"updated_timestamp:>='{os.environ['BENCH_SINCE']}'",
        "sort": "updated_timestamp|asc", "limit": 1000}
with open(os.environ["BENCH_OUT"], "ab") as sink:
    while True:
        response = session.post(url + "/alerts/combined/alerts/v1", json=body)
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

# Canary pages by updated_id, not time: the floor keeps max_updated_id next to its output
# (one watermark per floor kind), so its tick reads only the changes, as any puller's would.
FLOOR_CANARY = r'''
import os, requests
token, out = os.environ["BENCH_TOKEN"], os.environ["BENCH_OUT"]
mark = out + ".position"
since = open(mark).read() if os.path.exists(mark) else "0"
session = requests.Session()
params = {"auth_token": token, "incidents_since": since, "limit": 500}
with open(out, "ab") as sink:
    while True:
        response = session.get(os.environ["BENCH_URL"] + "/api/v1/incidents/all", params=params)
        emit(sink, response.content)
        page = response.json()
        since = str(page.get("max_updated_id", since))
        if not page["cursor"]["next"]:
            break
        params = {"auth_token": token, "cursor": page["cursor"]["next"]}
with open(mark, "w") as kept:
    kept.write(since)
'''


# -- one adapter per source type -------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """How to bench one source type.

    fake(workdir): in the fake's process, an unstarted fake, env(url) for the CLI and the
    floor once it is started, and the YAML source block (rate budgets raised).
    alerts(n, base_time, step): its n alerts; install(fake, alerts) puts them in the fake.
    floor: the floor loop; items: where a page holds its alerts. token(env): a bearer token
    for the floor, got before the measured run (None: none needed, or the floor gets it).
    max_page, calls_per_page, auth_calls, passes: what the minimum calls count (passes > 1:
    each further pass is one call at least, e.g. Alert Center's changes pass).
    """

    title: str
    fake: Callable[[Path], FakeSetup]
    alerts: Callable[[int, datetime, timedelta], Sequence[Any]]
    install: Callable[[Any, Sequence[Any]], None]
    floor: str
    items: str  # the key of a page's alert list, for the record floor
    max_page: int
    calls_per_page: int = 1
    auth_calls: int = 0
    passes: int = 1
    raised: str = "no rate budget option"
    token: Callable[[dict[str, str]], str] | None = None

    def minimum_calls(self, alerts: int) -> int:
        pages = max(1, math.ceil(alerts / self.max_page))
        return self.auth_calls + self.calls_per_page * pages + self.passes - 1


def _start_time() -> datetime:
    from alertpull.timeutil import utcnow

    return utcnow() - SPAN


def _step(n: int) -> timedelta:
    return (SPAN - timedelta(minutes=5)) / max(n, 1)


# Every fake but Security Hub's serves a Generated dataset (tests/fakes/generated.py): a
# page is found by bisection on its time, so the fake serves a page in the same time at any N.


def guardduty_fake(workdir: Path) -> FakeSetup:
    from tests.fakes.aws import AwsFake

    return AwsFake(), lambda url: {**aws_env(url), "BENCH_REGIONS": "us-east-1"}, {
        "type": "guardduty", "regions": ["us-east-1"]}


def guardduty_alerts(n: int, base: datetime, step: timedelta) -> Sequence[Any]:
    from tests.fakes.guardduty_data import generated_findings

    return generated_findings(n, base_time=base, step=step)


def guardduty_install(fake: Any, alerts: Sequence[Any]) -> None:
    from tests.fakes.guardduty_data import DETECTOR, REGION

    fake.add_detector(REGION, DETECTOR, alerts)


def securityhub_fake(workdir: Path) -> FakeSetup:
    from tests.fakes.securityhub import SecurityHubFake
    from tests.fakes.securityhub_data import REGION

    return SecurityHubFake(), aws_env, {"type": "securityhub", "regions": [REGION]}


def securityhub_alerts(n: int, base: datetime, step: timedelta) -> Sequence[Any]:
    # A list: the fake filters and sorts a query's matches once, when its paging starts.
    from tests.fakes.securityhub_data import make_ocsf_findings

    return make_ocsf_findings(n, base_time=base, step=step)


def securityhub_install(fake: Any, alerts: Sequence[Any]) -> None:
    from tests.fakes.securityhub_data import REGION

    fake.enable_hub(REGION, alerts)


def scc_fake(workdir: Path) -> FakeSetup:
    from tests.fakes.scc import SccFake
    from tests.fakes.scc_data import ORG

    fake = SccFake()

    def env(url: str) -> dict[str, str]:
        key = fake.write_key_file(workdir)
        return {"BENCH_KEY": str(key), "BENCH_ORG": ORG}

    return fake, env, {"type": "scc", "parent": f"organizations/{ORG}",
                       "credentials_file": "${BENCH_KEY}", "api_endpoint": "${BENCH_URL}",
                       "reads_per_minute": RAISED}


def scc_alerts(n: int, base: datetime, step: timedelta) -> Sequence[Any]:
    from tests.fakes.scc_data import generated_results

    return generated_results(n, base_time=base, step=step)


def alertcenter_fake(workdir: Path) -> FakeSetup:
    from tests.fakes.alertcenter import ADMIN, TOKEN_PATH, AlertCenterFake
    from tests.fakes.alertcenter_data import CUSTOMER_ID
    from tests.fakes.google_sa import make_key

    fake = AlertCenterFake(make_key())
    fake.max_page_size = 1000  # what Alert Center serves at most

    def env(url: str) -> dict[str, str]:
        key = fake.key.write(workdir / "workspace-key.json", url + TOKEN_PATH)
        return {"BENCH_KEY": str(key), "BENCH_CUSTOMER": CUSTOMER_ID, "BENCH_SUBJECT": ADMIN}

    return fake, env, {"type": "workspace_alertcenter", "credentials_file": "${BENCH_KEY}",
                       "subject": ADMIN, "customer_id": CUSTOMER_ID,
                       "api_endpoint": "${BENCH_URL}"}


def alertcenter_alerts(n: int, base: datetime, step: timedelta) -> Sequence[Any]:
    from tests.fakes.alertcenter_data import generated_alerts

    return generated_alerts(n, base_time=base, step=step)


def _graph_setup(fake: Any, roles: set[str], bundle: Path, collection: str, field: str,
                 source: dict[str, Any]) -> FakeSetup:
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


def entra_fake(workdir: Path) -> FakeSetup:
    from tests.fakes.graph import ALERTS_PATH, GraphFake

    ca, bundle = _throwaway_tls(workdir)
    # riskDetections are left out: Identity Protection's fixed 1 call/s would dominate.
    return _graph_setup(GraphFake(ca.server_context()), {"SecurityAlert.Read.All"}, bundle,
                        ALERTS_PATH, "lastUpdateDateTime", {
                            "type": "entra_id", "streams": ["alerts"],
                            "alerts_per_minute": RAISED})


def entra_alerts(n: int, base: datetime, step: timedelta) -> Sequence[Any]:
    from tests.fakes.generated import Generated
    from tests.fakes.graph_data import make_alert

    return Generated(functools.partial(make_alert, base_time=base, step=step), n,
                     "lastUpdateDateTime")


def intune_fake(workdir: Path) -> FakeSetup:
    from tests.fakes.intune import AUDIT_PATH, INTUNE_ROLES, IntuneFake

    ca, bundle = _throwaway_tls(workdir)
    return _graph_setup(IntuneFake(ca.server_context()), set(INTUNE_ROLES), bundle,
                        AUDIT_PATH, "activityDateTime", {
                            "type": "intune", "streams": ["audit_events"],
                            "requests_per_minute": RAISED})


def intune_alerts(n: int, base: datetime, step: timedelta) -> Sequence[Any]:
    from tests.fakes.generated import Generated
    from tests.fakes.intune_data import make_audit_event

    return Generated(functools.partial(make_audit_event, base_time=base, step=step), n,
                     "activityDateTime")


def kandji_fake(workdir: Path) -> FakeSetup:
    from tests.fakes.kandji import KandjiFake

    fake = KandjiFake()
    return fake, lambda url: {"BENCH_TOKEN": fake.token}, {
        "type": "kandji", "base_url": "${BENCH_URL}", "api_token": "${BENCH_TOKEN}",
        "streams": ["audit_events"], "requests_per_hour": RAISED}


def kandji_alerts(n: int, base: datetime, step: timedelta) -> Sequence[Any]:
    from tests.fakes.generated import Generated
    from tests.fakes.kandji_data import make_audit_event

    return Generated(lambda i: make_audit_event(i, base + i * step), n, "occurred_at")

# The declarative recipes' fakes filter and sort whatever sequence they hold on every call;
# a Generated one gets the prebuilt page cache (bench/fakes.py) like the others.


def crowdstrike_fake(workdir: Path) -> FakeSetup:
    from tests.fakes.crowdstrike import CrowdStrikeFake

    fake = CrowdStrikeFake()
    return fake, lambda url: {"BENCH_ID": fake.client_id, "BENCH_SECRET": fake.client_secret}, {
        "type": "crowdstrike", "base_url": "${BENCH_URL}", "client_id": "${BENCH_ID}",
        "client_secret": "${BENCH_SECRET}"}


def crowdstrike_alerts(n: int, base: datetime, step: timedelta) -> Sequence[Any]:
    from tests.fakes.crowdstrike import make_alert
    from tests.fakes.generated import Generated

    return Generated(lambda i: make_alert(i, base + i * step), n, "updated_timestamp")


def sentinelone_fake(workdir: Path) -> FakeSetup:
    from tests.fakes.sentinelone import SentinelOneFake

    fake = SentinelOneFake()
    return fake, lambda url: {"BENCH_TOKEN": fake.token}, {
        "type": "sentinelone", "base_url": "${BENCH_URL}", "api_token": "${BENCH_TOKEN}"}


def sentinelone_alerts(n: int, base: datetime, step: timedelta) -> Sequence[Any]:
    from tests.fakes.generated import Generated
    from tests.fakes.sentinelone import make_threat

    return Generated(lambda i: make_threat(i, base + i * step), n, "threatInfo.updatedAt")


def canary_fake(workdir: Path) -> FakeSetup:
    from tests.fakes.canary import CanaryFake

    fake = CanaryFake()
    return fake, lambda url: {"BENCH_TOKEN": fake.auth_token}, {
        "type": "thinkst_canary", "base_url": "${BENCH_URL}", "auth_token": "${BENCH_TOKEN}"}


def canary_alerts(n: int, base: datetime, step: timedelta) -> Sequence[Any]:
    from tests.fakes.canary import CanaryFake
    from tests.fakes.generated import Generated

    maker = CanaryFake()  # never started: only its incident shape is used

    def incident(i: int) -> dict[str, Any]:
        made = maker.make(i, base + i * step, kind=i)
        made["updated_id"] = i + 1  # the console's counter: incident i was its (i+1)th change
        return made

    return Generated(incident, n, "updated_id")



def google_token(env: dict[str, str], scope: str, subject: str | None = None) -> str:
    """A bearer token from the fake's OAuth endpoint (JWT-bearer grant of the key file)."""
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_file(
        env["BENCH_KEY"], scopes=[scope], subject=subject)
    credentials.refresh(Request())
    return str(credentials.token)


def _setter(name: str) -> Callable[[Any, Sequence[Any]], None]:
    return lambda fake, alerts: setattr(fake, name, alerts)


SOURCES: dict[str, Source] = {
    "guardduty": Source("GuardDuty findings", guardduty_fake, guardduty_alerts,
                        guardduty_install, FLOOR_GUARDDUTY, "findings", max_page=50,
                        calls_per_page=2),  # ListFindings + GetFindings a page of 50
    # api v2: the CSPM API's fixed 3 calls/s (no option raises it) would be all it measured.
    "securityhub": Source("Security Hub GetFindingsV2 findings", securityhub_fake,
                          securityhub_alerts, securityhub_install, FLOOR_SECURITYHUB,
                          "Findings", max_page=100),
    # google-api-core signs its own JWT from the key: SCC's auth makes no call.
    "scc": Source("SCC v2 findings", scc_fake, scc_alerts, _setter("results"), FLOOR_SCC,
                  "listFindingsResults", max_page=1000, raised="reads_per_minute",
                  token=lambda env: google_token(
                      env, "https://www.googleapis.com/auth/cloud-platform")),
    "workspace_alertcenter": Source(
        "Workspace Alert Center alerts", alertcenter_fake, alertcenter_alerts,
        _setter("alerts"), FLOOR_ALERTCENTER, "alerts", max_page=1000, auth_calls=1, passes=2,
        token=lambda env: google_token(env, "https://www.googleapis.com/auth/apps.alerts",
                                       env["BENCH_SUBJECT"])),
    "entra_id": Source("Entra ID alerts_v2 (stream alerts)", entra_fake, entra_alerts,
                       _setter("alerts"), FLOOR_GRAPH, "value", max_page=1000, auth_calls=1,
                       raised="alerts_per_minute"),
    "intune": Source("Intune auditEvents (stream audit_events)", intune_fake, intune_alerts,
                     _setter("audit_events"), FLOOR_GRAPH, "value", max_page=1000,
                     auth_calls=1, raised="requests_per_minute"),
    "kandji": Source("Kandji audit events (stream audit_events)", kandji_fake, kandji_alerts,
                     _setter("audit_events"), FLOOR_KANDJI, "results", max_page=500,
                     raised="requests_per_hour"),
    # The recipes' rate budgets are in their specs (no option raises them); CrowdStrike's
    # 5,000 a minute is far above a serial run's pace.
    "crowdstrike": Source("CrowdStrike Falcon alerts (recipe)", crowdstrike_fake,
                          crowdstrike_alerts, _setter("alerts"), FLOOR_CROWDSTRIKE,
                          "resources", max_page=1000, auth_calls=1,
                          raised="none: the spec's 5,000 a minute"),
    "sentinelone": Source("SentinelOne threats (recipe)", sentinelone_fake, sentinelone_alerts,
                          _setter("threats"), FLOOR_SENTINELONE, "data", max_page=1000),
    # Canary documents no maximum `limit`: the minimum counts at the recipe's 500.
    "thinkst_canary": Source("Thinkst Canary incidents (recipe, position cursor)", canary_fake,
                             canary_alerts, _setter("incidents"), FLOOR_CANARY, "incidents",
                             max_page=500),
}


# -- measurement -----------------------------------------------------------------------------


@dataclass
class Usage:
    wall: float
    cpu: float
    max_rss_mb: float
    calls: int = 0
    overruns: int = 0  # calls the fake answered later than the latency (its own cost showed)
    by_path: dict[str, int] = field(default_factory=dict)  # calls by method and path
    fetched: int | None = None  # alerts alertpull read (its summary line), None for a floor


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
    fetched = re.search(r" (\d+) fetched, ", done.stderr)
    return Usage(float(wall), float(cpu), int(max_rss_kb) / 1024,
                 fetched=int(fetched.group(1)) if fetched else None)


class FakeProcess:
    """A fake in its own process, so its CPU is not counted; its first stdout line says
    where it listens, then it answers one line to each command (see bench/fakes.py)."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(command, cwd=REPO, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.first_line = self.process.stdout.readline().strip()
        if not self.first_line:
            self.close()
            raise SystemExit(f"the fake did not start: {' '.join(command)}")

    def ask(self, command: str) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def measured(self, run: Callable[[], Usage]) -> Usage:
        """run(), with the calls the fake answered during it."""
        self.ask("stats")
        usage = run()
        stats = self.ask("stats")
        usage.calls, usage.overruns, usage.by_path = stats["calls"], stats["overruns"], stats["by"]
        return usage

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


def base_env(alertpull_src: str | None = None) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
    if alertpull_src:
        env["PYTHONPATH"] = alertpull_src  # ahead of the editable install's finder
    return env


def importable(checkout: str, into: str) -> str:
    """The checkout's package laid out as installed (connectors/ is alertpull.connectors, see
    pyproject.toml), under `into`: on PYTHONPATH it shadows this venv's editable install."""
    shutil.copytree(Path(checkout, "alertpull"), Path(into, "alertpull"))
    shutil.copytree(Path(checkout, "connectors"), Path(into, "alertpull", "connectors"))
    return into


def aws_env(url: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_STS": url,
            "AWS_ENDPOINT_URL_EC2": url, "AWS_ENDPOINT_URL_GUARDDUTY": url,
            "AWS_ENDPOINT_URL_SECURITYHUB": url,
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def pull(env: dict[str, str], source: dict[str, Any], workdir: str,
         concurrency: int = 1, profile: str | None = None) -> Usage:
    """`alertpull fetch --all` with a config naming one source, written to workdir (its state
    kept there: a second call is an incremental run); sampled by py-spy into `profile`."""
    config = Path(workdir) / "alertpull.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "state": {"backend": "local", "path": "state"}, "sink": {"type": "jsonl", "path": "alerts"},
        "defaults": {"concurrency": concurrency, "settle": "0s"},
        "sources": {"bench": source}}, indent=1))
    # Every thread sampled while it holds the GIL (the scopes are pulled in worker threads;
    # a thread waiting for the GIL is not working), as collapsed stacks.
    profiled = [py_spy(), "record", "--gil", "--format", "raw", "--rate", "250",
                "--output", profile, "--"] if profile else []
    return run_measured([*profiled, ALERTPULL, "-c", str(config), "fetch", "--all",
                         "--since", SINCE], env, workdir)


def py_spy() -> str:
    found = shutil.which("py-spy")
    if not found:
        raise SystemExit("--profile needs py-spy on PATH: pip install py-spy")
    return found


def floor(adapter: Source, kind: str, env: dict[str, str], workdir: str) -> Usage:
    """The adapter's floor loop, `raw` or `record` (see FLOOR_EMIT)."""
    out = str(Path(workdir) / f"{kind}.jsonl")
    return run_measured([sys.executable, "-c", FLOOR_EMIT + adapter.floor],
                        {**env, "BENCH_OUT": out, "BENCH_FLOOR": kind,
                         "BENCH_ITEMS": adapter.items}, workdir)


def written(workdir: str) -> int:
    """Records the sink wrote under workdir/alerts."""
    count = 0
    for path in Path(workdir, "alerts").rglob("*.jsonl*"):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as lines:
            count += sum(1 for _ in lines)
    return count


@dataclass
class Row:
    """One phase (first run or tick) of one size: alertpull, the floor, the record floor."""

    phase: str
    n: int
    alerts: int  # what the phase must read: N, or the tick's changes
    ours: Usage
    low: Usage
    record_low: Usage
    records: int  # alertpull's records written in this phase


def since_env(env: dict[str, str], since: datetime) -> dict[str, str]:
    from alertpull.timeutil import format_time, to_epoch_ms

    return {**env, "BENCH_SINCE": format_time(since), "BENCH_SINCE_MS": str(to_epoch_ms(since))}


def run_size(name: str, n: int, latency_ms: int, alertpull_src: str | None,
             profile_dir: str | None = None) -> list[Row]:
    """First run and tick of one source at size n, each next to its floors."""
    from alertpull.timeutil import format_time, parse_time, utcnow

    adapter = SOURCES[name]
    rows = []
    with tempfile.TemporaryDirectory() as ours, tempfile.TemporaryDirectory() as base:
        fake = FakeProcess([sys.executable, __file__, "--serve", name, str(n), base,
                            str(latency_ms)])
        try:
            served = json.loads(fake.first_line)
            env = {**base_env(), **served["env"], "BENCH_URL": served["url"]}
            floor_env = since_env(env, parse_time(served["since"]))
            ours_env = {**env, **base_env(alertpull_src)}
            def profile(phase: str) -> str | None:
                return str(Path(profile_dir, f"{name}-{n}-{phase}.txt")) if profile_dir else None

            first = fake.measured(lambda: pull(ours_env, served["source"], ours,
                                               profile=profile("first")))
            if adapter.token:
                token = adapter.token(env)  # not measured
                env["FLOOR_TOKEN"] = floor_env["FLOOR_TOKEN"] = token
            low = fake.measured(lambda: floor(adapter, "raw", floor_env, base))
            record_low = fake.measured(lambda: floor(adapter, "record", floor_env, base))
            first_records = written(ours)
            rows.append(Row("first", n, n, first, low, record_low, first_records))

            start = utcnow()
            end = start + TICK_SPAN
            fake.ask(f"tick {format_time(start)} {format_time(end)}")
            time.sleep(max(0.0, (end - utcnow()).total_seconds()) + 0.2)
            tick_env = since_env(env, start)
            tick = fake.measured(lambda: pull(ours_env, served["source"], ours,
                                              profile=profile("tick")))
            tick_low = fake.measured(lambda: floor(adapter, "raw", tick_env, base))
            tick_record = fake.measured(lambda: floor(adapter, "record", tick_env, base))
            rows.append(Row("tick", n, TICK, tick, tick_low, tick_record,
                            written(ours) - first_records))
        finally:
            fake.close()
    return rows


def verdict(value: float, target: float) -> str:
    return f"{value:.2f}x {'ok' if value <= target else 'MISSED'} (<= {target}x)"


def report(adapter: Source, row: Row) -> None:
    per = 1e5 / max(row.alerts, 1)
    minimum = adapter.minimum_calls(row.alerts)
    label = f"{row.phase} N={row.n}" if row.phase == "first" else f"tick +{row.alerts} on {row.n}"
    note = ""
    expected = row.n if row.phase == "first" else row.alerts
    if row.records < expected:
        note = f"  (!) {row.records} records written, {expected} expected"
    for who, usage in (("alertpull", row.ours), ("floor", row.low),
                       ("record floor", row.record_low)):
        late = f"  ({usage.overruns} calls over latency)" if usage.overruns else ""
        print(f"  {label:>22} {who:>12} {usage.wall:>8.2f} {usage.calls:>6} {minimum:>6} "
              f"{usage.cpu * per:>10.1f} {usage.max_rss_mb:>7.1f}{late}")
    ratios = [f"calls {verdict(row.ours.calls / minimum, 1.05)}"]
    if row.phase == "first":
        ratios.append(f"wall/floor {verdict(row.ours.wall / row.low.wall, 1.3)}")
    ratios.append(f"CPU/record floor {verdict(row.ours.cpu / row.record_low.cpu, 1.5)}")
    print(f"  {'':>22} {'':>12} {'; '.join(ratios)}{note}", flush=True)
    if row.phase == "tick":
        explain_calls(adapter, row.ours, row.alerts)


def explain_calls(adapter: Source, ours: Usage, changes: int) -> None:
    """Where a tick's calls went, and the minimum for what it read: besides the changes, a
    tick reads again the alerts inside its overlap (the design's guard against late
    arrivals), so its pages hold more than the changes the minimum counts."""
    by_path = ", ".join(f"{path} x{n}" for path, n in
                        sorted(ours.by_path.items(), key=lambda item: -item[1]))
    print(f"  {'':>22} {'':>12} calls: {by_path}")
    if ours.fetched is not None and ours.fetched > changes:
        window = adapter.minimum_calls(ours.fetched)
        print(f"  {'':>22} {'':>12} read {ours.fetched} alerts: the {changes} changes and "
              f"{ours.fetched - changes} in the overlap; minimum for {ours.fetched}: {window}, "
              f"calls {ours.calls / window:.2f}x that", flush=True)


def bench_source(name: str, sizes: list[int], latency_ms: int,
                 alertpull_src: str | None, profile_dir: str | None) -> None:
    """One table: first run and tick at each size, then the RSS ratio across sizes."""
    adapter = SOURCES[name]
    print(f"\n{adapter.title} [{name}], {latency_ms} ms a call, max page {adapter.max_page} "
          f"(rate budget raised: {adapter.raised})")
    print(f"  {'':>22} {'':>12} {'wall s':>8} {'calls':>6} {'min':>6} {'CPU s/100k':>10} "
          f"{'RSS MB':>7}")
    rss = {}
    for n in sizes:
        for row in run_size(name, n, latency_ms, alertpull_src, profile_dir):
            report(adapter, row)
            if row.phase == "first":
                rss[n] = row.ours.max_rss_mb
    if len(sizes) > 1:
        smallest, largest = min(sizes), max(sizes)
        print(f"  peak RSS {largest} vs {smallest}: "
              f"{verdict(rss[largest] / rss[smallest], 1.2)}", flush=True)


def serve(name: str, n: int, workdir: str, latency_ms: int) -> None:
    """The fake's process: build, prebuild the alerts, start, say where, serve commands."""
    from alertpull.timeutil import format_time, utcnow
    from bench.fakes import Paced, control, fast_json, prebuilt

    fast_json()
    adapter = SOURCES[name]
    since = format_time(utcnow() - timedelta(days=60))
    fake, env_for, source = adapter.fake(Path(workdir))
    history = prebuilt(adapter.alerts(n, _start_time(), _step(n)))
    adapter.install(fake, history)
    paced = Paced(fake, latency_ms / 1000)
    fake.start()
    print(json.dumps({"url": fake.url, "env": env_for(fake.url), "source": source,
                      "since": since}), flush=True)
    control(fake, paced, functools.partial(adapter.install, fake), history, adapter.alerts)


def regions_concurrency(alertpull_src: str | None) -> None:
    from tests.fakes.aws import REGIONS

    fake = FakeProcess([sys.executable, "-m", "tests.fakes.aws", "--findings", str(16 * 200),
                        "--regions", "16", "--span-hours", str(24 * 59), "--latency-ms", "100"])
    env = {**base_env(alertpull_src), **aws_env(fake.first_line)}
    source = {"type": "guardduty", "regions": list(REGIONS)}
    try:
        with tempfile.TemporaryDirectory() as serial, tempfile.TemporaryDirectory() as wide:
            one = pull(env, source, serial, concurrency=1)
            many = pull(env, source, wide, concurrency=8)
            # Again on the same state: what a tick with nothing new waits for (the account,
            # the 16 regions' detectors, one page each).
            one_tick = pull(env, source, serial, concurrency=1)
            many_tick = pull(env, source, wide, concurrency=8)
    finally:
        fake.close()
    print(f"\n16 regions, 100 ms per call: serial {one.wall:.1f}s, concurrency 8 "
          f"{many.wall:.1f}s = {many.wall / one.wall:.2f}x (target <= 0.35x); a tick after it: "
          f"serial {one_tick.wall:.2f}s, concurrency 8 {many_tick.wall:.2f}s")


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
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="default 10000 100000; "
                        "--quick: 5000")
    parser.add_argument("--sources", nargs="+", choices=list(SOURCES), default=list(SOURCES))
    parser.add_argument("--latency-ms", type=int, default=50,
                        help="how long the fake takes to answer each call (default 50)")
    parser.add_argument("--quick", action="store_true",
                        help="one small size, no regions or startup run: under ~3 minutes")
    parser.add_argument("--alertpull-src", help="run the CLI from this checkout's sources")
    parser.add_argument("--profile", metavar="DIR",
                        help="sample alertpull with py-spy: one SOURCE-N-PHASE.txt of collapsed "
                        "stacks per run in DIR (CPU figures then include py-spy's)")
    parser.add_argument("--skip-regions", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    args = parser.parse_args()
    sizes = sorted(args.sizes or ([5_000] if args.quick else [10_000, 100_000]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    print(f"Alerts spread over the last {SPAN.days} days; each call answered after "
          f"{args.latency_ms} ms; rate budgets raised to {RAISED:,}. Columns: wall seconds, "
          "calls made, minimum calls, CPU seconds per 100k alerts read, peak RSS.")
    if not (args.skip_startup or args.quick):
        startup()
    with tempfile.TemporaryDirectory() as shadow:
        src = importable(args.alertpull_src, shadow) if args.alertpull_src else None
        for name in args.sources:
            bench_source(name, sizes, args.latency_ms, src, args.profile)
        if not (args.skip_regions or args.quick):
            regions_concurrency(src)


if __name__ == "__main__":
    main()
