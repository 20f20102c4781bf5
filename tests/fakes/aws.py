"""A fake of the AWS APIs alertpull's GuardDuty connector calls, on one local port.

- GuardDuty, REST-JSON: GET /detector, POST /detector/{id}/findings (ListFindings),
  POST /detector/{id}/findings/get (GetFindings).
- STS, query protocol: POST / with Action=GetCallerIdentity or AssumeRole.
- EC2, query protocol: POST / with Action=DescribeRegions (only enabled regions).

Requests are routed to a region by the SigV4 credential scope of their Authorization
header, as AWS routes by endpoint. It is strict where AWS is strict and the client could
get it wrong: maxResults and GetFindings ids capped at 50, page tokens bound to the query
that produced them ("Input Query has changed"), the deprecated 32-bit gt/gte/lt/lte
operators rejected for epoch-ms values, session tokens required for assumed-role keys.
Errors have the AWS shape (REST-JSON: {"message", "__type"} + x-amzn-ErrorType).

    python -m tests.fakes.aws --findings 500 --port 4566   # serve a generated dataset
"""

from __future__ import annotations

import argparse
import json
import operator
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from xml.sax.saxutils import escape

from alertpull.timeutil import format_time, parse_time, to_epoch_ms, utcnow

from .generated import Generated
from .guardduty_data import ACCOUNT, DETECTOR, REGION, Finding, make_findings
from .http_fake import FakeServer, Request, Response

MAX_RESULTS = 50
INT32_MAX = 2**31 - 1
INVALID_DETECTOR = "The request is rejected because the parameter detectorId has an invalid value."
NOT_OWNED = (
    "The request is rejected because the input detectorId is not owned by the current account."
)
BAD_TOKEN = "The security token included in the request is invalid."
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")
_LIST_FINDINGS = re.compile(r"^/detector/([^/]+)/findings$")
_GET_FINDINGS = re.compile(r"^/detector/([^/]+)/findings/get$")

# Condition operators on Long fields, and the deprecated ones the model types as Integer.
_LONG_OPS: dict[str, Callable[[int, int], bool]] = {
    "greaterThanOrEqual": operator.ge,
    "greaterThan": operator.gt,
    "lessThan": operator.lt,
    "lessThanOrEqual": operator.le,
}
_INT32_OPS: dict[str, Callable[[int, int], bool]] = {
    "gte": operator.ge,
    "gt": operator.gt,
    "lt": operator.lt,
    "lte": operator.le,
}


class FindingList(list[Finding]):
    """A detector's findings; `version` moves whenever the list itself changes, so the
    fake can cache its id index (tests edit findings in place and add or clear them)."""

    version = 0

    def _changed(self) -> None:
        self.version += 1


for _name in ("append", "extend", "insert", "remove", "pop", "clear", "__setitem__",
              "__delitem__", "__iadd__", "sort", "reverse"):
    def _mutator(self: FindingList, *args: Any, _op: str = _name, **kwargs: Any) -> Any:
        self._changed()
        return getattr(list, _op)(self, *args, **kwargs)

    setattr(FindingList, _name, _mutator)


@dataclass(frozen=True)
class SigV4Scope:
    """The credential scope of a SigV4 Authorization header."""

    access_key: str
    date: str
    region: str
    service: str


def credential_scope(request: Request) -> SigV4Scope | None:
    match = _CREDENTIAL.search(request.headers.get("authorization", ""))
    return SigV4Scope(*match.groups()) if match else None


def rest_json_error(status: int, error_type: str, message: str, body_type: str = "") -> Response:
    """An AWS REST-JSON error. GuardDuty's 400s say InvalidInputException in the body but
    BadRequestException in x-amzn-ErrorType (the header is what botocore reports)."""
    body = {"message": message, "__type": body_type or error_type}
    return Response.json(body, status, {"x-amzn-ErrorType": error_type})


def bad_request(message: str) -> Response:
    return rest_json_error(400, "BadRequestException", message, "InvalidInputException")


def throttled() -> Response:
    return rest_json_error(429, "TooManyRequestsException", "Rate exceeded")


def query_error(status: int, code: str, message: str, namespace: str = STS_NS) -> Response:
    """An error in the STS query-protocol XML shape."""
    body = (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
        "</ErrorResponse>"
    )
    return Response(status, body.encode(), {"Content-Type": "text/xml"})


class Rejected(Exception):
    """Raised inside a handler to answer with an error response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def invalid_input(what: str) -> Rejected:
    """GuardDuty's 400 for a bad parameter, worded as the service words it."""
    return Rejected(bad_request(f"The request is rejected because {what}."))


@dataclass
class _Issued:
    """Temporary credentials the fake's AssumeRole handed out."""

    secret_key: str
    session_token: str
    role_arn: str
    session_name: str


class AwsFake(FakeServer):
    """One AWS account (or several, through roles) with GuardDuty detectors per region.

    findings: (region, detector_id) -> findings in wire format; the test may edit them.
        The bench's are Generated (guardduty_data.generated_findings): read-only, lazy.
    disabled_regions: opt-in regions not enabled for the account: GuardDuty answers 403.
    trusted_external_id: when set, AssumeRole requires this ExternalId.
    role_session_lifetime: how long the credentials AssumeRole hands out stay valid.
    repeat_token_from_page: from this ListFindings page on, answer with the same nextToken
        the request carried (GuardDuty has been seen doing this, elastic/integrations#8601).
    """

    def __init__(self, account: str = ACCOUNT) -> None:
        super().__init__()
        self.account = account
        self.enabled_regions: set[str] = set()
        self.disabled_regions: set[str] = set()
        self.findings: dict[tuple[str, str], FindingList | Generated[Finding]] = {}
        self.trusted_external_id: str | None = None
        self.role_session_lifetime = timedelta(hours=1)
        self.repeat_token_from_page: int | None = None
        self.latency = 0.0  # seconds added to every call, like a distant endpoint
        self.issued: dict[str, _Issued] = {}  # access key id -> temporary credentials
        # nextToken -> (bound query, offset, the ids the paging session matched)
        self._tokens: dict[str, tuple[str, int, Sequence[str]]] = {}
        self._indexes: dict[tuple[str, str], tuple[int, dict[str, Finding]]] = {}
        self._state = threading.Lock()

    # -- data setup ----------------------------------------------------------------------

    def add_detector(self, region: str, detector_id: str, findings: Iterable[Finding] = ()) -> None:
        self.enabled_regions.add(region)
        self.findings[(region, detector_id)] = (
            findings if isinstance(findings, Generated) else FindingList(findings))

    def enable_region(self, region: str) -> None:
        """An enabled region where GuardDuty has no detector."""
        self.enabled_regions.add(region)

    def disable_region(self, region: str) -> None:
        self.disabled_regions.add(region)

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if self.latency:
            time.sleep(self.latency)  # outside the lock: concurrent callers wait in parallel
        with self._state:
            try:
                return self._dispatch(request)
            except Rejected as rejected:
                return rejected.response

    def _dispatch(self, request: Request) -> Response:
        scope = credential_scope(request)
        if scope is None:
            raise Rejected(
                rest_json_error(
                    403, "MissingAuthenticationTokenException", "Missing Authentication Token"
                )
            )
        if request.method == "POST" and request.path == "/":
            return self._query_action(request, scope)
        self._check_session_token(
            request, scope, rest_json_error(403, "UnrecognizedClientException", BAD_TOKEN)
        )
        if scope.region in self.disabled_regions:
            raise Rejected(rest_json_error(403, "UnrecognizedClientException", BAD_TOKEN))
        if request.method == "GET" and request.path == "/detector":
            return self._list_detectors(request, scope.region)
        if request.method == "POST" and (match := _LIST_FINDINGS.match(request.path)):
            return self._list_findings(scope.region, match.group(1), request.json())
        if request.method == "POST" and (match := _GET_FINDINGS.match(request.path)):
            return self._get_findings(scope.region, match.group(1), request.json())
        return rest_json_error(404, "ResourceNotFoundException", f"no route for {request.path}")

    def _check_session_token(self, request: Request, scope: SigV4Scope, error: Response) -> None:
        """Keys from AssumeRole are only valid together with their session token."""
        issued = self.issued.get(scope.access_key)
        if issued and request.headers.get("x-amz-security-token") != issued.session_token:
            raise Rejected(error)

    # -- GuardDuty -----------------------------------------------------------------------

    def _list_detectors(self, request: Request, region: str) -> Response:
        self._check_max_results(int(request.query.get("maxResults", ["50"])[0]))
        ids = sorted(det for (reg, det) in self.findings if reg == region)
        return Response.json({"detectorIds": ids})

    def _detector_findings(self, region: str,
                           detector_id: str) -> FindingList | Generated[Finding]:
        if (region, detector_id) not in self.findings:
            raise Rejected(bad_request(INVALID_DETECTOR))
        return self.findings[(region, detector_id)]

    def _list_findings(self, region: str, detector_id: str, body: dict[str, Any]) -> Response:
        findings = self._detector_findings(region, detector_id)
        max_results = body.get("maxResults", MAX_RESULTS)
        self._check_max_results(max_results)
        criterion = body.get("findingCriteria", {}).get("criterion", {})
        sort = body.get("sortCriteria")
        query = json.dumps([region, detector_id, criterion, sort], sort_keys=True)
        token = body.get("nextToken")
        if token:
            offset, matches = self._resume(token, query)
        else:
            # A paging session reads the ids matching when it started, as a cursor would.
            offset, matches = 0, _matching_ids(findings, criterion, sort)
        page = list(matches[offset : offset + max_results])
        end = offset + len(page)
        more = end < len(matches)
        next_token = self._next_token(token, query, offset, end, matches) if more else ""
        return Response.json({"findingIds": page, "nextToken": next_token})

    def _resume(self, token: str, query: str) -> tuple[int, Sequence[str]]:
        """Where a nextToken continues; a token only continues the query it came from."""
        if token not in self._tokens:
            raise invalid_input("the input nextToken has an invalid value")
        bound_query, offset, matches = self._tokens[token]
        if bound_query != query:
            raise Rejected(bad_request("Input Query has changed"))
        return offset, matches

    def _next_token(self, token: str | None, query: str, offset: int, end: int,
                    matches: Sequence[str]) -> str:
        page_number = offset // (end - offset) + 1
        if token and self.repeat_token_from_page and page_number >= self.repeat_token_from_page:
            return token
        new_token = secrets.token_urlsafe(24)
        self._tokens[new_token] = (query, end, matches)
        return new_token

    def _finder(self, region: str, detector_id: str) -> Callable[[str], Finding | None]:
        """id -> finding: Generated findings find it from the id itself; a list's index is
        rebuilt only when the list of findings changed."""
        findings = self._detector_findings(region, detector_id)
        if isinstance(findings, Generated):
            return findings.find
        version, cached = self._indexes.get((region, detector_id), (-1, {}))
        if version != findings.version:
            cached = {f["id"]: f for f in findings}
            self._indexes[(region, detector_id)] = (findings.version, cached)
        return cached.get

    def _get_findings(self, region: str, detector_id: str, body: dict[str, Any]) -> Response:
        find = self._finder(region, detector_id)
        ids = body.get("findingIds", [])
        if not 1 <= len(ids) <= MAX_RESULTS:
            raise invalid_input("the input findingIds has an invalid value")
        # Unknown ids are left out, as AWS does.
        found = [finding for finding in map(find, ids) if finding is not None]
        sort = body.get("sortCriteria")
        return Response.json({"findings": _sorted(found, sort) if sort else found})

    @staticmethod
    def _check_max_results(value: int) -> None:
        if not 1 <= value <= MAX_RESULTS:
            raise invalid_input(f"the input maxResults {value} is out of range [1, 50]")

    # -- STS and EC2 (query protocol) ----------------------------------------------------

    def _query_action(self, request: Request, scope: SigV4Scope) -> Response:
        form = request.form()
        action = form.get("Action")
        self._check_session_token(
            request, scope, query_error(403, "InvalidClientTokenId", BAD_TOKEN)
        )
        if action == "GetCallerIdentity":
            return self._caller_identity(scope)
        if action == "AssumeRole":
            return self._assume_role(form)
        if action == "DescribeRegions":
            return self._describe_regions()
        return query_error(400, "InvalidAction", f"Could not find operation {action}")

    def _caller_identity(self, scope: SigV4Scope) -> Response:
        issued = self.issued.get(scope.access_key)
        if issued:
            account = issued.role_arn.split(":")[4]
            role = issued.role_arn.rsplit("/", 1)[-1]
            arn = f"arn:aws:sts::{account}:assumed-role/{role}/{issued.session_name}"
        else:
            account, arn = self.account, f"arn:aws:iam::{self.account}:user/alertpull"
        return _xml(
            "GetCallerIdentity",
            STS_NS,
            f"<Arn>{arn}</Arn><UserId>AIDAEXAMPLE</UserId><Account>{account}</Account>",
        )

    def _assume_role(self, form: dict[str, str]) -> Response:
        role_arn = form["RoleArn"]
        if (
            self.trusted_external_id is not None
            and form.get("ExternalId") != self.trusted_external_id
        ):
            caller = f"arn:aws:iam::{self.account}:user/alertpull"
            message = (
                f"User: {caller} is not authorized to perform: sts:AssumeRole "
                f"on resource: {role_arn}"
            )
            return query_error(403, "AccessDenied", message)
        key = "ASIA" + secrets.token_hex(8).upper()
        issued = _Issued(
            secrets.token_urlsafe(30), secrets.token_urlsafe(60), role_arn, form["RoleSessionName"]
        )
        self.issued[key] = issued
        expires = utcnow() + self.role_session_lifetime
        return _xml(
            "AssumeRole",
            STS_NS,
            f"<Credentials><AccessKeyId>{key}</AccessKeyId>"
            f"<SecretAccessKey>{issued.secret_key}</SecretAccessKey>"
            f"<SessionToken>{issued.session_token}</SessionToken>"
            f"<Expiration>{format_time(expires)}</Expiration></Credentials>"
            f"<AssumedRoleUser><Arn>{role_arn}</Arn>"
            f"<AssumedRoleId>AROAEXAMPLE:{escape(issued.session_name)}</AssumedRoleId>"
            "</AssumedRoleUser>",
        )

    def _describe_regions(self) -> Response:
        items = "".join(
            f"<item><regionName>{r}</regionName>"
            f"<regionEndpoint>ec2.{r}.amazonaws.com</regionEndpoint>"
            "<optInStatus>opt-in-not-required</optInStatus></item>"
            for r in sorted(self.enabled_regions - self.disabled_regions)
        )
        body = (
            f'<DescribeRegionsResponse xmlns="{EC2_NS}"><requestId>{uuid.uuid4()}</requestId>'
            f"<regionInfo>{items}</regionInfo></DescribeRegionsResponse>"
        )
        return Response(200, body.encode(), {"Content-Type": "text/xml"})


def _xml(action: str, namespace: str, result: str) -> Response:
    body = (
        f'<{action}Response xmlns="{namespace}"><{action}Result>{result}</{action}Result>'
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )
    return Response(200, body.encode(), {"Content-Type": "text/xml"})


def _matching_ids(findings: Sequence[Finding], criterion: dict[str, Any],
                  sort: dict[str, Any] | None) -> Sequence[str]:
    """The ids ListFindings pages through. Generated findings filtered on updatedAt alone
    and sorted by it ascending are a window found by bisection, their ids read per page."""
    ascending = sort is not None and sort.get("attributeName") == "updatedAt" and \
        sort.get("orderBy", "ASC") != "DESC"
    if isinstance(findings, Generated) and findings.sorted_by == "updatedAt" and ascending \
            and set(criterion) <= {"updatedAt"}:
        window = findings
        for compare, value in _updated_at_checks(criterion.get("updatedAt", {})):
            window = window.where(_updated_ms, compare, value)
        return window.map(operator.itemgetter("id"))
    return [f["id"] for f in _sorted(_filter(findings, criterion), sort)]


def _filter(findings: Iterable[Finding], criterion: dict[str, Any]) -> list[Finding]:
    tests = [_condition(field, condition) for field, condition in criterion.items()]
    return [f for f in findings if all(test(f) for test in tests)]


def _condition(field: str, condition: dict[str, Any]) -> Callable[[Finding], bool]:
    if field == "updatedAt":
        checks = _updated_at_checks(condition)
        return lambda f: all(op(_updated_ms(f), value) for op, value in checks)
    if field == "service.archived":
        wanted = {value == "true" for value in condition.get("equals", [])}
        return lambda f: bool(f["service"]["archived"]) in wanted
    raise invalid_input(f"the criterion field {field} is not supported by this fake")


def _updated_at_checks(condition: dict[str, Any]) -> list[tuple[Callable[[int, int], bool], int]]:
    """The (comparison, epoch ms) pairs of an updatedAt condition, each checked as AWS does."""
    checks: list[tuple[Callable[[int, int], bool], int]] = []
    for name, value in condition.items():
        if name in _INT32_OPS and abs(value) > INT32_MAX:
            raise invalid_input(f"the value {value} of {name} is out of range for an Integer")
        op = _LONG_OPS.get(name) or _INT32_OPS.get(name)
        if op is None:
            raise invalid_input(f"the operator {name} is not valid for updatedAt")
        checks.append((op, value))
    return checks


def _sorted(findings: Iterable[Finding], sort: dict[str, Any] | None) -> list[Finding]:
    """Sort by updatedAt (then id, so equal timestamps page stably); without sortCriteria by id."""
    if not sort:
        return sorted(findings, key=lambda f: f["id"])
    if sort.get("attributeName") != "updatedAt":
        raise invalid_input("sortCriteria other than updatedAt are not supported by this fake")
    descending = sort.get("orderBy", "ASC") == "DESC"
    return sorted(findings, key=lambda f: (_updated_ms(f), f["id"]), reverse=descending)


def _updated_ms(finding: Finding) -> int:
    return to_epoch_ms(parse_time(finding["updatedAt"]))


REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2", "eu-west-3",
    "eu-central-1", "eu-north-1", "ap-northeast-1", "ap-northeast-2", "ap-southeast-1",
    "ap-southeast-2", "ap-south-1", "ca-central-1", "sa-east-1",
)


def demo_fake(count: int, regions: tuple[str, ...] = (REGION,), detector_id: str = DETECTOR,
              span: timedelta = timedelta(hours=12)) -> AwsFake:
    """`count` findings spread over `regions`, updated over the last `span` (the last 5 min ago)."""
    fake = AwsFake()
    per_region = count // len(regions)
    step = (span - timedelta(minutes=5)) / max(per_region, 1)
    for region in regions:
        findings = make_findings(per_region, region=region, detector_id=detector_id,
                                 base_time=utcnow() - span, step=step)
        fake.add_detector(region, detector_id, findings)
    return fake


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Serve a fake AWS (GuardDuty, STS, EC2) with generated findings."
    )
    parser.add_argument("--findings", type=int, default=200, help="number of findings to generate")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--regions", type=int, default=1, help="regions (1-16), one detector each")
    parser.add_argument("--span-hours", type=float, default=12, help="updatedAt spread over")
    parser.add_argument("--latency-ms", type=float, default=0, help="delay added to every call")
    args = parser.parse_args()
    fake = demo_fake(args.findings, REGIONS[: args.regions],
                     span=timedelta(hours=args.span_hours))
    fake.latency = args.latency_ms / 1000
    fake.start(args.port)
    print(fake.url, flush=True)  # the first line is the URL, for scripts that start the fake
    fake.serve_until_interrupted()


if __name__ == "__main__":
    main()
