"""One small adapter per source type for the reliability matrix (tests/test_reliability.py).

An adapter starts the type's wire fake and says what the matrix needs to know of it: the
YAML block and environment that point the installed CLI at the fake (with a short read
timeout and few retries), how to add N alerts, which request is its list/page call, how to
answer an error in the vendor's own shape, how to break or bloat one alert, and which
secrets it configures or issued. The matrix itself stays vendor-neutral.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alertpull.timeutil import utcnow
from tests.aws_env import REGION, aws_client_env
from tests.conftest import clean_env
from tests.fakes import aws, graph_data, intune_data, kandji_data
from tests.fakes.alertcenter import ADMIN, AlertCenterFake
from tests.fakes.alertcenter import ALERTS_PATH as WORKSPACE_PATH
from tests.fakes.alertcenter_data import CUSTOMER_ID
from tests.fakes.alertcenter_data import make_alerts as make_workspace_alerts
from tests.fakes.google_sa import ServiceAccountKey, google_api_error, make_key
from tests.fakes.graph import ALERTS_PATH as ENTRA_PATH
from tests.fakes.graph import GraphFake, graph_error_response
from tests.fakes.guardduty_data import DETECTOR, make_findings
from tests.fakes.http_fake import FakeServer, Matcher, Request, Response, on
from tests.fakes.intune import AUDIT_PATH as INTUNE_PATH
from tests.fakes.kandji import AUDIT_PATH as KANDJI_PATH
from tests.fakes.kandji import KandjiFake
from tests.fakes.scc import SccFake
from tests.fakes.scc_data import ORG, make_results
from tests.fakes.securityhub import SecurityHubFake
from tests.fakes.securityhub_data import make_ocsf_findings
from tests.fakes.tls import ThrowawayCA
from tests.graph_env import CLIENT_ID, SECRET
from tests.graph_env import new_fake as new_graph_fake
from tests.intune_env import new_fake as new_intune_fake
from tests.world import CliWorld

TIMEOUT_SECONDS = 1  # every source's read timeout here: a stalled answer costs a second
RETRIES = 3  # max_retries here: rides out the longest transient burst, three faults in a row
# retry_deadline_seconds where a fault never ends. api-core gives up when the next sleep
# (random, up to 1 s, then 2 s) would pass the deadline, so a stalled first try (1 s read
# timeout plus the token fetch) must leave at least a second more for the second try
# even on a loaded machine: 4 s does, and gives up well inside FAIL_DEADLINE.
SCC_FAIL_DEADLINE = 4
PAGE = 20  # alerts per page, wherever the source or its fake lets a test choose
STEP = timedelta(seconds=20)  # between two alerts' changed-at times
LATEST_AGE = timedelta(minutes=5)  # how long ago the newest alert of a batch changed
FAST_BUDGET = 360_000  # calls per hour or minute: pacing is proven elsewhere, not here

Raw = dict[str, Any]


@dataclass
class Subject:
    """One source of one type, configured against its own started wire fake."""

    type_name: str
    source: str  # the source's name in the config
    fake: FakeServer
    env: dict[str, str]
    block: dict[str, Any]  # the YAML block of the source
    items: Callable[[], list[Raw]]  # the fake's alerts of the pulled stream, wire JSON
    make: Callable[[int, int, datetime], list[Raw]]  # (count, first index, index 0's time)
    page_call: Matcher  # the request that returns a page of alerts
    error: Callable[[int], Response]  # an error answer in the vendor's shape, by status
    malform: Callable[[Raw], None]  # break what the mapping requires (the fake still lists it)
    bloat: Callable[[Raw, str], None]  # put a huge text where the vendor keeps a description
    configured_secrets: list[str]
    issued_secrets: Callable[[], list[str]] = list  # e.g. the access tokens the fake handed out

    def add(self, count: int, first: int) -> list[Raw]:
        """Alerts first..first+count-1, changed every STEP up to LATEST_AGE ago: recent news,
        inside the window of the next run whatever ran before."""
        last = first + count - 1
        new = self.make(count, first, utcnow() - LATEST_AGE - last * STEP)
        self.items().extend(new)
        return new

    def tokens(self) -> list[str]:
        """The access tokens the source was issued or presented (self-signed JWTs included),
        beyond its configured secrets."""
        presented = {r.headers.get("authorization", "").removeprefix("Bearer ")
                     for r in self.fake.requests
                     if r.headers.get("authorization", "").startswith("Bearer ")}
        return sorted((presented | set(self.issued_secrets())) - set(self.configured_secrets))

    def secrets(self) -> list[str]:
        return [*self.configured_secrets, *self.tokens()]

    def retrying(self, times: int) -> Subject:
        """This source with max_retries set to `times`; SCC, whose Google client retries
        against a deadline instead, with SCC_FAIL_DEADLINE (a few tries at its 1 s backoff)."""
        if self.type_name == "scc":
            bound = {"retry_deadline_seconds": SCC_FAIL_DEADLINE}
        else:
            bound = {"max_retries": times}
        return dataclasses.replace(self, block={**self.block, **bound})


@dataclass
class Breaker:
    """A switchable matcher: while on, it matches the page calls after the first `spare`."""

    page_call: Matcher
    spare: int = 1
    on: bool = True
    _seen: int = field(default=0, init=False)

    def __call__(self, request: Request) -> bool:
        if not (self.on and self.page_call(request)):
            return False
        self._seen += 1
        return self._seen > self.spare

    @property
    def struck(self) -> int:
        """How many calls it has broken so far."""
        return max(0, self._seen - self.spare)


@dataclass
class RunWorld(CliWorld):
    """A run directory whose config holds the sources under test (and nothing secret)."""

    def configure(self, *subjects: Subject, **top: Any) -> None:
        self.write_yaml({s.source: s.block for s in subjects}, **top)
        for subject in subjects:
            self.env.update(subject.env)


# -- the adapters ------------------------------------------------------------------------


def _html(status: int) -> Response:
    """What a load balancer in front of any vendor answers: not the vendor's JSON."""
    return Response(status, b"<html><body>Bad Gateway</body></html>",
                    {"Content-Type": "text/html"})


def _set(path: tuple[str, ...], value: Any) -> Callable[[Raw], None]:
    def apply(raw: Raw) -> None:
        for key in path[:-1]:
            raw = raw[key]
        raw[path[-1]] = value
    return apply


def _bloat_at(*path: str) -> Callable[[Raw, str], None]:
    return lambda raw, text: _set(path, text)(raw)


def _pem_lines(pem: str) -> list[str]:
    """The body lines of a PEM key: what a leak would show, wrapped or not."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


@contextmanager
def guardduty(source: str, secrets_dir: Path, ca: ThrowawayCA) -> Iterator[Subject]:
    fake = aws.AwsFake()
    fake.add_detector(REGION, DETECTOR, [])
    with fake:
        env = aws_client_env(fake.url)
        codes = {429: "TooManyRequestsException", 500: "InternalServerErrorException",
                 503: "ServiceUnavailableException"}
        yield Subject(
            type_name="guardduty", source=source, fake=fake, env=env,
            block={"type": "guardduty", "regions": [REGION], "timeout_seconds": TIMEOUT_SECONDS,
                   "max_retries": RETRIES},
            items=lambda: fake.findings[(REGION, DETECTOR)],
            make=lambda count, first, at: make_findings(count, first=first, region=REGION,
                                                        base_time=at, step=STEP),
            # GetFindings: the call that carries the findings (ListFindings only ids).
            page_call=on("POST", f"/detector/{DETECTOR}/findings/get"),
            error=lambda status: (aws.rest_json_error(status, codes[status], "Rate exceeded")
                                  if status in codes else _html(status)),
            malform=_set(("service",), ["not", "an", "object"]),  # a TypeError-like fault
            bloat=_bloat_at("description"),
            configured_secrets=[env["AWS_SECRET_ACCESS_KEY"]],
        )


@contextmanager
def securityhub(source: str, secrets_dir: Path, ca: ThrowawayCA) -> Iterator[Subject]:
    fake = SecurityHubFake()
    fake.enable_hub(REGION)
    fake.page_limit = PAGE
    with fake:
        env = aws_client_env(fake.url)
        codes = {429: "ThrottlingException", 500: "InternalServerException",
                 503: "ServiceUnavailableException"}
        yield Subject(
            type_name="securityhub", source=source, fake=fake, env=env,
            block={"type": "securityhub", "regions": [REGION],
                   "timeout_seconds": TIMEOUT_SECONDS, "max_retries": RETRIES},
            items=lambda: fake.ocsf[REGION],
            make=lambda count, first, at: make_ocsf_findings(count, first=first, base_time=at,
                                                             step=STEP),
            page_call=on("POST", "/findingsv2"),
            error=lambda status: (aws.rest_json_error(status, codes[status], "Rate exceeded")
                                  if status in codes else _html(status)),
            malform=lambda raw: raw["cloud"].pop("account"),  # whose finding: unknown
            bloat=_bloat_at("finding_info", "desc"),
            configured_secrets=[env["AWS_SECRET_ACCESS_KEY"]],
        )


def _google_key_secrets(key: ServiceAccountKey) -> list[str]:
    return [key.private_key_id, *_pem_lines(key.private_pem)]


def _google_error(status: int) -> Response:
    return _html(status) if status == 502 else google_api_error(status, "Backend error")


@contextmanager
def scc(source: str, secrets_dir: Path, ca: ThrowawayCA) -> Iterator[Subject]:
    with SccFake() as fake:
        fake.page_limit = PAGE
        fake.verbatim = True  # the protos would refuse the malformed finding
        key_file = fake.write_key_file(secrets_dir)
        [endpoint] = fake.token_endpoints.values()
        parent = f"organizations/{ORG}"
        yield Subject(
            type_name="scc", source=source, fake=fake, env=clean_env(),
            block={"type": "scc", "parent": parent, "credentials_file": str(key_file),
                   "api_endpoint": fake.url, "timeout_seconds": TIMEOUT_SECONDS},
            items=lambda: fake.results,
            make=lambda count, first, at: make_results(count, first=first, base_time=at,
                                                       step=STEP),
            page_call=on("GET", f"/v2/{parent}/sources/-/findings"),
            error=_google_error,
            malform=_set(("finding", "indicator"), ["203.0.113.9"]),  # a list, not an object
            bloat=_bloat_at("finding", "description"),
            configured_secrets=_google_key_secrets(endpoint.key),
            issued_secrets=lambda: list(endpoint.issued),
        )


@contextmanager
def workspace_alertcenter(source: str, secrets_dir: Path, ca: ThrowawayCA) -> Iterator[Subject]:
    key = make_key()
    with AlertCenterFake(key) as fake:
        key_file = fake.write_key(secrets_dir / "workspace-key.json")
        yield Subject(
            type_name="workspace_alertcenter", source=source, fake=fake, env=clean_env(),
            block={"type": "workspace_alertcenter", "credentials_file": str(key_file),
                   "subject": ADMIN, "customer_id": CUSTOMER_ID, "api_endpoint": fake.url,
                   "page_size": PAGE, "retry_base_seconds": 1,
                   "timeout_seconds": TIMEOUT_SECONDS, "max_retries": RETRIES},
            items=lambda: fake.alerts,
            make=lambda count, first, at: make_workspace_alerts(count, first=first,
                                                                base_time=at, step=STEP),
            page_call=on("GET", WORKSPACE_PATH),
            error=_google_error,
            malform=_set(("alertId",), None),  # the fake sorts by it: null, not absent
            bloat=_bloat_at("data", "description"),
            configured_secrets=_google_key_secrets(key),
            issued_secrets=lambda: list(fake.tokens.issued),
        )


def _graph_error(status: int) -> Response:
    if status == 502:
        return _html(status)
    code = {429: "TooManyRequests", 500: "InternalServerError"}.get(status, "ServiceUnavailable")
    return graph_error_response(status, code, "Try again later.")


def _graph_subject(type_name: str, source: str, fake: GraphFake, ca: ThrowawayCA,
                   block: dict[str, Any], **kw: Any) -> Subject:
    fake.max_page = PAGE
    secret_var = f"{source.upper().replace('-', '_')}_SECRET"
    return Subject(
        type_name=type_name, source=source, fake=fake,
        env={"REQUESTS_CA_BUNDLE": str(ca.ca_file), secret_var: SECRET},
        block={"type": type_name, "tenant_id": fake.tenant_id, "client_id": CLIENT_ID,
               "client_secret": f"${{{secret_var}}}", "authority_host": fake.url,
               "graph_endpoint": fake.url, "timeout_seconds": TIMEOUT_SECONDS,
               "max_retries": RETRIES, **block},
        error=_graph_error,
        configured_secrets=[SECRET],
        issued_secrets=lambda: list(fake._tokens),  # the fake keeps what it issued
        **kw,
    )


@contextmanager
def entra_id(source: str, secrets_dir: Path, ca: ThrowawayCA) -> Iterator[Subject]:
    fake = new_graph_fake(ca)
    with fake:
        yield _graph_subject(
            "entra_id", source, fake, ca,
            # risk_detections is paced at 1 call/s per tenant: the alerts stream stands for
            # the source type here; its own tests cover the other stream.
            {"streams": ["alerts"], "alerts_per_minute": FAST_BUDGET},
            items=lambda: fake.alerts,
            make=lambda count, first, at: graph_data.make_alerts(
                count, first=first, base_time=at, step=STEP, tenant_id=fake.tenant_id),
            page_call=on("GET", ENTRA_PATH),
            malform=_set(("id",), None),  # the fake pages by id: null, not absent
            bloat=_bloat_at("description"),
        )


@contextmanager
def intune(source: str, secrets_dir: Path, ca: ThrowawayCA) -> Iterator[Subject]:
    fake = new_intune_fake(ca)
    with fake:
        yield _graph_subject(
            "intune", source, fake, ca,
            # device_posture is a snapshot diff, not a windowed list: its own tests cover it.
            {"streams": ["audit_events"], "requests_per_minute": FAST_BUDGET},
            items=lambda: fake.audit_events,
            make=lambda count, first, at: intune_data.make_audit_events(
                count, first=first, base_time=at, step=STEP),
            page_call=on("GET", INTUNE_PATH),
            malform=_set(("id",), None),
            bloat=_bloat_at("displayName"),
        )


class PagedKandjiFake(KandjiFake):
    """Kandji answering at most PAGE audit events a page (the real cap is 500), so a handful
    of events spans several cursor pages."""

    def handle(self, request: Request) -> Response:
        limit = request.query.get("limit")
        if limit and request.path == KANDJI_PATH:
            capped = str(min(int(limit[-1]), PAGE))
            request = dataclasses.replace(request, query={**request.query, "limit": [capped]})
        return super().handle(request)


@contextmanager
def kandji(source: str, secrets_dir: Path, ca: ThrowawayCA) -> Iterator[Subject]:
    with PagedKandjiFake() as fake:
        token_var = f"{source.upper().replace('-', '_')}_TOKEN"
        yield Subject(
            type_name="kandji", source=source, fake=fake, env={token_var: fake.token},
            block={"type": "kandji", "base_url": fake.url, "api_token": f"${{{token_var}}}",
                   "streams": ["audit_events"], "requests_per_hour": FAST_BUDGET,
                   "timeout_seconds": TIMEOUT_SECONDS, "max_retries": RETRIES},
            items=lambda: fake.audit_events,
            make=lambda count, first, at: kandji_data.make_audit_events(
                count, first=first, base_time=at, step=STEP),
            page_call=on("GET", KANDJI_PATH),
            error=lambda status: (_html(status) if status == 502
                                  else Response.json({"detail": "Try again later."}, status)),
            malform=_set(("id",), None),  # the fake sorts by id: null, not absent
            bloat=_bloat_at("metadata", "description"),
            configured_secrets=[fake.token],
        )


ADAPTERS: dict[str, Callable[[str, Path, ThrowawayCA], Any]] = {
    "guardduty": guardduty,
    "securityhub": securityhub,
    "scc": scc,
    "workspace_alertcenter": workspace_alertcenter,
    "entra_id": entra_id,
    "intune": intune,
    "kandji": kandji,
}


def state_scopes(world: CliWorld, source: str) -> dict[str, Any]:
    """The source's committed cursors, as its state file holds them ({} before any)."""
    path = world.state / f"{source}.json"
    return dict(json.loads(path.read_text())["scopes"]) if path.exists() else {}
