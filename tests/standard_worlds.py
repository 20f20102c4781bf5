"""The standard suite's worlds: one per source type (the protocol is in
tests/standard_suite.py, the checks in tests/test_standard_suite.py).

A world starts the type's wire fake and yields a Subject saying what the suite needs to
know of it. Adding a source type to the suite is adding its world to WORLDS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from alertpull.timeutil import format_time
from tests.aws_env import REGION, aws_client_env
from tests.conftest import clean_env
from tests.engine_env import LEDGER_CLI, ledger_block, ledger_env
from tests.fakes import aws, graph_data, intune_data, kandji_data
from tests.fakes.alertcenter import ADMIN, AlertCenterFake
from tests.fakes.alertcenter import ALERTS_PATH as WORKSPACE_PATH
from tests.fakes.alertcenter_data import CUSTOMER_ID
from tests.fakes.alertcenter_data import make_alerts as make_workspace_alerts
from tests.fakes.alertcenter_data import touch as touch_workspace_alert
from tests.fakes.canary import INCIDENTS_PATH as CANARY_PATH
from tests.fakes.canary import CanaryFake
from tests.fakes.crowdstrike import ALERTS_PATH as FALCON_ALERTS_PATH
from tests.fakes.crowdstrike import CrowdStrikeFake
from tests.fakes.crowdstrike import make_alert as make_falcon_alert
from tests.fakes.google_sa import ServiceAccountKey, google_api_error, make_key
from tests.fakes.graph import ALERTS_PATH as ENTRA_PATH
from tests.fakes.graph import GraphFake, graph_error_response
from tests.fakes.graph_data import graph_time
from tests.fakes.guardduty_data import DETECTOR, make_findings
from tests.fakes.http_fake import Request, Response, on
from tests.fakes.intune import AUDIT_PATH as INTUNE_PATH
from tests.fakes.kandji import AUDIT_PATH as KANDJI_PATH
from tests.fakes.kandji import KandjiFake
from tests.fakes.ledger import ALERTS_PATH as LEDGER_ALERTS_PATH
from tests.fakes.ledger import FEED_PATH as LEDGER_FEED_PATH
from tests.fakes.ledger import LedgerFake, ledger_error
from tests.fakes.ledger import touch as touch_ledger_alert
from tests.fakes.scc import SccFake
from tests.fakes.scc_data import ORG, make_results
from tests.fakes.securityhub import SecurityHubFake
from tests.fakes.securityhub_data import make_ocsf_findings, touch_ocsf
from tests.fakes.sentinelone import THREATS_PATH, SentinelOneFake, make_threat
from tests.fakes.tls import ThrowawayCA
from tests.graph_env import CLIENT_ID, SECRET
from tests.graph_env import new_fake as new_graph_fake
from tests.intune_env import new_fake as new_intune_fake
from tests.standard_suite import (
    FAST_BUDGET,
    PAGE,
    RETRIES,
    RETRY_BASE_SECONDS,
    TIMEOUT_SECONDS,
    Raw,
    Subject,
)

# retry_deadline_seconds where a fault never ends. api-core gives up when its next sleep
# (random, up to retry_base_seconds, doubling) would pass the deadline, so a stalled first
# try (1 s read timeout plus the token fetch) must leave at least a second more for the
# second try even on a loaded machine: 3 s does, and gives up well inside the suite's
# FAIL_DEADLINE.
SCC_FAIL_DEADLINE = 3


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
            make=lambda count, first, at, step: make_findings(
                count, first=first, region=REGION, base_time=at, step=step),
            update=_update_finding,
            # GetFindings: the call that carries the findings (ListFindings only ids).
            page_call=on("POST", f"/detector/{DETECTOR}/findings/get"),
            token_call=on("POST", f"/detector/{DETECTOR}/findings"),
            error=lambda status: (aws.rest_json_error(status, codes[status], "Rate exceeded")
                                  if status in codes else _html(status)),
            malform=_set(("service",), ["not", "an", "object"]),  # a TypeError-like fault
            bloat=_bloat_at("description"),
            configured_secrets=[env["AWS_SECRET_ACCESS_KEY"]],
            issues_tokens=False,  # it signs each call (SigV4)
        )


def _update_finding(raw: Raw, at: datetime) -> None:
    raw["service"]["count"] += 1
    raw["updatedAt"] = format_time(at)


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
            make=lambda count, first, at, step: make_ocsf_findings(
                count, first=first, base_time=at, step=step),
            update=lambda raw, at: touch_ocsf(raw, at, status_id=2),  # in progress
            page_call=on("POST", "/findingsv2"),
            error=lambda status: (aws.rest_json_error(status, codes[status], "Rate exceeded")
                                  if status in codes else _html(status)),
            malform=lambda raw: raw["cloud"].pop("account"),  # whose finding: unknown
            bloat=_bloat_at("finding_info", "desc"),
            configured_secrets=[env["AWS_SECRET_ACCESS_KEY"]],
            issues_tokens=False,  # it signs each call (SigV4)
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
                   "api_endpoint": fake.url, "timeout_seconds": TIMEOUT_SECONDS,
                   "retry_base_seconds": RETRY_BASE_SECONDS},
            items=lambda: fake.results,
            make=lambda count, first, at, step: make_results(count, first=first, base_time=at,
                                                             step=step),
            update=lambda raw, at: raw["finding"].update(state="INACTIVE",
                                                         eventTime=format_time(at)),
            page_call=on("GET", f"/v2/{parent}/sources/-/findings"),
            error=_google_error,
            malform=_set(("finding", "indicator"), ["203.0.113.9"]),  # a list, not an object
            bloat=_bloat_at("finding", "description"),
            configured_secrets=_google_key_secrets(endpoint.key),
            issued_secrets=lambda: list(endpoint.issued),
            # Its Google client retries until retry_deadline_seconds instead of a count.
            bound_retries=lambda times: {"retry_deadline_seconds": SCC_FAIL_DEADLINE},
            retries_by_deadline=True,
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
                   "page_size": PAGE, "retry_base_seconds": RETRY_BASE_SECONDS,
                   "timeout_seconds": TIMEOUT_SECONDS, "max_retries": RETRIES},
            items=lambda: fake.alerts,
            make=lambda count, first, at, step: make_workspace_alerts(
                count, first=first, base_time=at, step=step),
            update=lambda raw, at: touch_workspace_alert(raw, at, status="IN_PROGRESS",
                                                         assignee=ADMIN),
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
               "max_retries": RETRIES,
               "retry_base_seconds": RETRY_BASE_SECONDS, **block},
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
            make=lambda count, first, at, step: graph_data.make_alerts(
                count, first=first, base_time=at, step=step, tenant_id=fake.tenant_id),
            update=lambda raw, at: raw.update(status="resolved",
                                              lastUpdateDateTime=graph_time(at)),
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
            make=lambda count, first, at, step: intune_data.make_audit_events(
                count, first=first, base_time=at, step=step),
            update=None,  # an audit event never changes
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
                   "timeout_seconds": TIMEOUT_SECONDS, "max_retries": RETRIES,
                   "retry_base_seconds": RETRY_BASE_SECONDS},
            items=lambda: fake.audit_events,
            make=lambda count, first, at, step: kandji_data.make_audit_events(
                count, first=first, base_time=at, step=step),
            update=None,  # an audit event never changes
            page_call=on("GET", KANDJI_PATH),
            error=lambda status: (_html(status) if status == 502
                                  else Response.json({"detail": "Try again later."}, status)),
            malform=_set(("id",), None),  # the fake sorts by id: null, not absent
            bloat=_bloat_at("metadata", "description"),
            configured_secrets=[fake.token],
            issues_tokens=False,  # it sends its configured token
        )


@contextmanager
def _ledger(source: str, stream: str, path: str) -> Iterator[Subject]:
    with LedgerFake() as fake:
        fake.max_limit = PAGE
        yield Subject(
            type_name="ledger", source=source, fake=fake, env=ledger_env(fake),
            block=ledger_block(fake, stream, page_size=PAGE, timeout_seconds=TIMEOUT_SECONDS,
                               max_retries=RETRIES),
            items=lambda: fake.alerts,
            make=lambda count, first, at, step: fake.make(count, first, at + first * step,
                                                          step),
            update=lambda raw, at: touch_ledger_alert(raw, at, fake),
            page_call=on("GET", path),
            error=lambda status: (_html(status) if status == 502 else
                                  ledger_error(status, "Unavailable", "Try again later.")),
            malform=_set(("created_at",), ["not", "a", "time"]),
            bloat=_bloat_at("description"),
            configured_secrets=[fake.token],
            issues_tokens=False,  # it sends its configured token
            command=LEDGER_CLI,
        )


@contextmanager
def ledger(source: str, secrets_dir: Path, ca: ThrowawayCA) -> Iterator[Subject]:
    """The test-only `ledger` source type's time-window stream (tests/ledger_connector.py):
    the engine's own world, free of any vendor's quirks."""
    with _ledger(source, "changes", LEDGER_ALERTS_PATH) as subject:
        yield subject


@contextmanager
def ledger_feed(source: str, secrets_dir: Path, ca: ThrowawayCA) -> Iterator[Subject]:
    """Its position-cursor stream (connector.Position)."""
    with _ledger(source, "feed", LEDGER_FEED_PATH) as subject:
        yield subject


# -- the declarative recipes (alertpull/rest/recipes) ---------------------------------------


def _env_var(source: str, what: str) -> str:
    return f"{source.upper().replace('-', '_')}_{what}"


@contextmanager
def crowdstrike(source: str, secrets_dir: Path, ca: ThrowawayCA) -> Iterator[Subject]:
    with CrowdStrikeFake() as fake:
        fake.page_cap = PAGE
        id_var, secret_var = _env_var(source, "ID"), _env_var(source, "SECRET")
        yield Subject(
            type_name="crowdstrike", source=source, fake=fake,
            env={id_var: fake.client_id, secret_var: fake.client_secret},
            block={"type": "crowdstrike", "base_url": fake.url, "client_id": f"${{{id_var}}}",
                   "client_secret": f"${{{secret_var}}}", "timeout_seconds": TIMEOUT_SECONDS,
                   "max_retries": RETRIES,
                   "retry_base_seconds": RETRY_BASE_SECONDS},
            items=lambda: fake.alerts,
            make=lambda count, first, at, step: [make_falcon_alert(n, at + n * step)
                                                 for n in range(first, first + count)],
            update=_update_falcon_alert,
            page_call=on("POST", FALCON_ALERTS_PATH),
            error=lambda status: (_html(status) if status == 502 else Response.json(
                {"errors": [{"code": status, "message": "try again later"}], "resources": []},
                status)),
            malform=_set(("composite_id",), None),
            bloat=_bloat_at("description"),
            configured_secrets=[fake.client_secret],
            issued_secrets=lambda: list(fake.tokens),
        )


def _update_falcon_alert(raw: Raw, at: datetime) -> None:
    raw["status"] = "in_progress"
    raw["updated_timestamp"] = format_time(at)


@contextmanager
def sentinelone(source: str, secrets_dir: Path, ca: ThrowawayCA) -> Iterator[Subject]:
    with SentinelOneFake() as fake:
        fake.page_cap = PAGE
        token_var = _env_var(source, "TOKEN")
        yield Subject(
            type_name="sentinelone", source=source, fake=fake, env={token_var: fake.token},
            block={"type": "sentinelone", "base_url": fake.url, "api_token": f"${{{token_var}}}",
                   "timeout_seconds": TIMEOUT_SECONDS, "max_retries": RETRIES,
                   "retry_base_seconds": RETRY_BASE_SECONDS},
            items=lambda: fake.threats,
            make=lambda count, first, at, step: [make_threat(n, at + n * step)
                                                 for n in range(first, first + count)],
            update=_update_threat,
            page_call=on("GET", THREATS_PATH),
            error=lambda status: (_html(status) if status == 502 else Response.json(
                {"errors": [{"code": status * 10000 + 10, "title": "Try again later"}]},
                status)),
            malform=_set(("id",), None),
            bloat=_bloat_at("threatInfo", "classification"),
            configured_secrets=[fake.token],
            issues_tokens=False,  # it sends its configured token
        )


def _update_threat(raw: Raw, at: datetime) -> None:
    raw["threatInfo"]["incidentStatus"] = "in_progress"
    raw["threatInfo"]["updatedAt"] = format_time(at)


@contextmanager
def thinkst_canary(source: str, secrets_dir: Path, ca: ThrowawayCA) -> Iterator[Subject]:
    """A position stream: incidents listed by updated_id (incidents_since)."""
    with CanaryFake() as fake:
        fake.page_cap = PAGE
        token_var = _env_var(source, "TOKEN")
        yield Subject(
            type_name="thinkst_canary", source=source, fake=fake,
            env={token_var: fake.auth_token},
            block={"type": "thinkst_canary", "base_url": fake.url,
                   "auth_token": f"${{{token_var}}}", "timeout_seconds": TIMEOUT_SECONDS,
                   "max_retries": RETRIES,
                   "retry_base_seconds": RETRY_BASE_SECONDS},
            items=lambda: fake.incidents,
            make=lambda count, first, at, step: [fake.make(n, at + n * step, kind=n)
                                                 for n in range(first, first + count)],
            update=fake.acknowledge,
            page_call=on("GET", CANARY_PATH),
            error=lambda status: (_html(status) if status == 502 else Response.json(
                {"result": "error", "message": "Try again later"}, status)),
            malform=_set(("id",), None),
            bloat=_bloat_at("description", "description"),
            configured_secrets=[fake.auth_token],
            issues_tokens=False,  # it sends its configured token
        )


World = Callable[[str, Path, ThrowawayCA], Any]  # a context manager yielding a Subject

WORLDS: dict[str, World] = {
    "guardduty": guardduty,
    "securityhub": securityhub,
    "scc": scc,
    "workspace_alertcenter": workspace_alertcenter,
    "entra_id": entra_id,
    "intune": intune,
    "kandji": kandji,
    "ledger": ledger,
    "ledger_feed": ledger_feed,
    "crowdstrike": crowdstrike,
    "sentinelone": sentinelone,
    "thinkst_canary": thinkst_canary,
}
