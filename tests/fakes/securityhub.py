"""A fake of AWS Security Hub (REST-JSON, SigV4 service `securityhub`) beside the AWS fake's
STS and EC2, on one local port.

- POST /findingsv2 (GetFindingsV2): OCSF findings; DateFilters on
  finding_info.modified_time_dt, StringFilters on metadata.product.name, SortCriteria on
  finding_info.modified_time_dt, Scopes.AwsOrganizations (delegated administrator only).
- POST /findings (GetFindings): ASFF findings; Filters UpdatedAt and ProductName,
  SortCriteria UpdatedAt; 3 requests a second per account and region, a burst of 6.
- GET /aggregatorv2/list, /aggregatorv2/get/{arn}, /findingAggregator/list,
  /findingAggregator/get/{arn}: the cross-region aggregator, when one is configured.

Strict where AWS is and a client could slip: MaxResults 1-100, tokens bound to the query
that produced them, filter fields and comparisons outside what it serves rejected (a
ValidationException, not a silent full answer), DateFilter Start and End inclusive.
Findings are per region; a region without Security Hub answers InvalidAccessException.

    python -m tests.fakes.securityhub --findings 500 --port 4566   # serve generated data
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from alertpull.timeutil import parse_time, to_epoch_ms, utcnow

from .aws import BAD_TOKEN, AwsFake, Rejected, credential_scope, rest_json_error
from .http_fake import Request, Response
from .securityhub_data import ACCOUNT, REGION, Finding, make_asff_findings, make_ocsf_findings

MAX_RESULTS = 100
V2_CHANGED_AT = "finding_info.modified_time_dt"
V2_PRODUCT = "metadata.product.name"
CSPM_RATE, CSPM_BURST = 3.0, 6.0  # GetFindings: requests a second, and the bucket's size


def validation(message: str) -> Rejected:
    return Rejected(rest_json_error(400, "ValidationException", message))


def invalid_input(message: str) -> Rejected:
    """GetFindings' (v1) 400."""
    return Rejected(rest_json_error(400, "InvalidInputException", message))


class SecurityHubFake(AwsFake):
    """One account's Security Hub, per region, in both APIs.

    ocsf / asff: region -> findings in wire format (GetFindingsV2 / GetFindings); the test
        may edit them. A region with neither has Security Hub off.
    aggregation_region: the cross-region aggregator's region (None: no aggregator).
    delegated_admin: the caller may use Scopes; organization: scope id (o-... / ou-...) ->
        the member accounts it holds.
    page_limit: the most findings a page holds, whatever MaxResults asks (to page small
        data sets).
    repeat_token_from_page: from this page on, answer with the token the request carried.
    """

    def __init__(self, account: str = ACCOUNT) -> None:
        super().__init__(account)
        self.ocsf: dict[str, list[Finding]] = {}
        self.asff: dict[str, list[Finding]] = {}
        self.aggregation_region: str | None = None
        self.delegated_admin = False
        self.organization: dict[str, set[str]] = {}
        self.page_limit = MAX_RESULTS
        self.throttled = 0  # GetFindings calls refused for going over the rate
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # (tokens, at)
        self._hub_tokens: dict[str, tuple[str, int, Sequence[Finding]]] = {}

    def enable_hub(self, region: str = REGION, ocsf: Sequence[Finding] = (),
                   asff: Sequence[Finding] = ()) -> None:
        self.enabled_regions.add(region)
        self.ocsf[region] = list(ocsf)
        self.asff[region] = list(asff)

    # -- dispatch ------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        scope = credential_scope(request)
        if scope is None or scope.service != "securityhub":
            return super()._dispatch(request)
        self._check_session_token(
            request, scope, rest_json_error(403, "UnrecognizedClientException", BAD_TOKEN))
        region = scope.region
        if region in self.disabled_regions:
            raise Rejected(rest_json_error(403, "UnrecognizedClientException", BAD_TOKEN))
        path = unquote(request.path)
        if request.method == "GET" and path == "/aggregatorv2/list":
            return self._list_aggregators("AggregatorsV2", "AggregatorV2Arn", "aggregatorv2")
        if request.method == "GET" and path.startswith("/aggregatorv2/get/"):
            return self._aggregator(path, "AggregatorV2Arn", "AggregationRegion",
                                    "aggregatorv2")
        if request.method == "GET" and path == "/findingAggregator/list":
            return self._list_aggregators("FindingAggregators", "FindingAggregatorArn",
                                          "finding-aggregator")
        if request.method == "GET" and path.startswith("/findingAggregator/get/"):
            return self._aggregator(path, "FindingAggregatorArn", "FindingAggregationRegion",
                                    "finding-aggregator")
        if region not in self.ocsf:
            raise Rejected(rest_json_error(
                403, "InvalidAccessException",
                f"Account {self.account} is not subscribed to AWS Security Hub"))
        if request.method == "POST" and path == "/findingsv2":
            return self._findings_v2(region, request.json())
        if request.method == "POST" and path == "/findings":
            self._spend(region)
            return self._findings_v1(region, request.json())
        return rest_json_error(404, "ResourceNotFoundException", f"no route for {path}")

    # -- aggregators ---------------------------------------------------------------------

    def _aggregator_arn(self, kind: str) -> str:
        return f"arn:aws:securityhub:{self.aggregation_region}:{self.account}:{kind}/a1b2c3"

    def _list_aggregators(self, key: str, arn_key: str, kind: str) -> Response:
        listed = [{arn_key: self._aggregator_arn(kind)}] if self.aggregation_region else []
        return Response.json({key: listed})

    def _aggregator(self, path: str, arn_key: str, region_key: str, kind: str) -> Response:
        arn = path.split("/get/", 1)[1]
        if not self.aggregation_region or arn != self._aggregator_arn(kind):
            raise Rejected(rest_json_error(404, "ResourceNotFoundException", f"{arn} not found"))
        return Response.json({arn_key: arn, region_key: self.aggregation_region,
                              "RegionLinkingMode": "ALL_REGIONS"})

    # -- GetFindingsV2 -------------------------------------------------------------------

    def _findings_v2(self, region: str, body: dict[str, Any]) -> Response:
        findings: Sequence[Finding] = self.ocsf[region]
        scopes = body.get("Scopes")
        if scopes is not None:
            if not self.delegated_admin:
                raise Rejected(rest_json_error(
                    403, "AccessDeniedException",
                    "Only the delegated administrator account can use Scopes"))
            accounts = self._scoped_accounts(scopes)
            findings = [f for f in findings if f["cloud"]["account"]["uid"] in accounts]
        tests = _v2_filters(body.get("Filters") or {})
        sort = _sort_key(body.get("SortCriteria"), V2_CHANGED_AT,
                         lambda f: (_ms(f["finding_info"][V2_CHANGED_AT.split(".")[1]]),
                                    f["finding_info"]["uid"]))
        return self._page(body, [region, body.get("Filters"), body.get("SortCriteria"), scopes],
                          lambda: sort([f for f in findings if all(t(f) for t in tests)]),
                          validation)

    def _scoped_accounts(self, scopes: dict[str, Any]) -> set[str]:
        accounts: set[str] = set()
        for entry in scopes.get("AwsOrganizations", []):
            unit = entry.get("OrganizationalUnitId") or entry.get("OrganizationId")
            if unit not in self.organization:
                error = "OrganizationalUnitNotFoundException" \
                    if "OrganizationalUnitId" in entry else "OrganizationNotFoundException"
                raise Rejected(rest_json_error(404, error, f"{unit} was not found"))
            accounts |= self.organization[unit]
        return accounts

    # -- GetFindings (ASFF) --------------------------------------------------------------

    def _spend(self, region: str) -> None:
        """A token bucket per account and region: 3 a second, a burst of 6."""
        now = time.monotonic()
        tokens, at = self._buckets.get((self.account, region), (CSPM_BURST, now))
        tokens = min(CSPM_BURST, tokens + (now - at) * CSPM_RATE)
        if tokens < 1:
            self.throttled += 1
            self._buckets[(self.account, region)] = (tokens, now)
            raise Rejected(rest_json_error(429, "LimitExceededException", "Rate exceeded"))
        self._buckets[(self.account, region)] = (tokens - 1, now)

    def _findings_v1(self, region: str, body: dict[str, Any]) -> Response:
        findings = self.asff[region]
        tests = _v1_filters(body.get("Filters") or {})
        sort = _sort_key(body.get("SortCriteria"), "UpdatedAt",
                         lambda f: (_ms(f["UpdatedAt"]), f["Id"]))
        return self._page(body, [region, body.get("Filters"), body.get("SortCriteria")],
                          lambda: sort([f for f in findings if all(t(f) for t in tests)]),
                          invalid_input)

    # -- paging --------------------------------------------------------------------------

    def _page(self, body: dict[str, Any], query_parts: list[Any],
              matching: Callable[[], Sequence[Finding]],
              error: Callable[[str], Rejected]) -> Response:
        max_results = body.get("MaxResults", MAX_RESULTS)
        if not 1 <= max_results <= MAX_RESULTS:
            raise error(f"MaxResults {max_results} is out of range [1, {MAX_RESULTS}]")
        query = json.dumps(query_parts, sort_keys=True)
        token = body.get("NextToken")
        if token:
            if token not in self._hub_tokens:
                raise error("The NextToken is invalid")
            bound, offset, matches = self._hub_tokens[token]
            if bound != query:
                raise error("The NextToken does not match the query")
        else:
            offset, matches = 0, matching()  # a paging session reads what matched at first
        size = min(max_results, self.page_limit)
        page = list(matches[offset : offset + size])
        end = offset + len(page)
        answer: dict[str, Any] = {"Findings": page}
        if end < len(matches):
            page_number = offset // size + 1
            if token and self.repeat_token_from_page and \
                    page_number >= self.repeat_token_from_page:
                answer["NextToken"] = token
            else:
                answer["NextToken"] = new_token = secrets.token_urlsafe(24)
                self._hub_tokens[new_token] = (query, end, matches)
        return Response.json(answer)


# -- filters -------------------------------------------------------------------------------

Test = Callable[[Finding], bool]


def _ms(value: str) -> int:
    return to_epoch_ms(parse_time(value))


def _date_test(bounds: dict[str, Any], read: Callable[[Finding], str],
               error: Callable[[str], Rejected]) -> Test:
    if set(bounds) - {"Start", "End"} or not bounds:
        raise error("only DateFilters with Start and End are supported by this fake")
    start = _ms(bounds["Start"]) if "Start" in bounds else None
    end = _ms(bounds["End"]) if "End" in bounds else None

    def test(finding: Finding) -> bool:
        moment = _ms(read(finding))  # Start and End are both inclusive
        return (start is None or start <= moment) and (end is None or moment <= end)

    return test


def _string_test(condition: dict[str, Any], read: Callable[[Finding], Any],
                 error: Callable[[str], Rejected]) -> Test:
    value, comparison = condition.get("Value"), condition.get("Comparison")
    if comparison == "EQUALS":
        return lambda f: read(f) == value
    if comparison == "NOT_EQUALS":
        return lambda f: read(f) != value
    raise error(f"the comparison {comparison} is not supported by this fake")


def _v2_filters(filters: dict[str, Any]) -> list[Test]:
    if filters.get("CompositeOperator", "AND") != "AND":
        raise validation("only CompositeOperator AND is supported by this fake")
    tests: list[Test] = []
    for composite in filters.get("CompositeFilters", []):
        if set(composite) - {"DateFilters", "StringFilters", "Operator"} or \
                composite.get("Operator", "AND") != "AND":
            raise validation("only AND-ed DateFilters and StringFilters are supported")
        for date in composite.get("DateFilters", []):
            if date["FieldName"] != V2_CHANGED_AT:
                raise validation(f"DateFilters on {date['FieldName']} are not served here")
            tests.append(_date_test(date["Filter"],
                                    lambda f: f["finding_info"]["modified_time_dt"], validation))
        for string in composite.get("StringFilters", []):
            if string["FieldName"] != V2_PRODUCT:
                raise validation(f"StringFilters on {string['FieldName']} are not served here")
            tests.append(_string_test(string["Filter"],
                                      lambda f: f["metadata"]["product"]["name"], validation))
    return tests


def _v1_filters(filters: dict[str, Any]) -> list[Test]:
    if set(filters) - {"UpdatedAt", "ProductName"}:
        raise invalid_input(f"filters {sorted(filters)} are not supported by this fake")
    tests = [_date_test(bounds, lambda f: f["UpdatedAt"], invalid_input)
             for bounds in filters.get("UpdatedAt", [])]
    tests += [_string_test(condition, lambda f: f["ProductName"], invalid_input)
              for condition in filters.get("ProductName", [])]
    return tests


def _sort_key(criteria: list[dict[str, Any]] | None, field: str,
              key: Callable[[Finding], Any]) -> Callable[[list[Finding]], list[Finding]]:
    """Sort by the changed-at field (then id, so equal times page stably)."""
    if not criteria:
        return lambda findings: findings
    [criterion] = criteria
    if criterion.get("Field") != field:
        raise validation(f"sorting on {criterion.get('Field')} is not supported by this fake")
    descending = criterion.get("SortOrder") == "desc"
    return lambda findings: sorted(findings, key=key, reverse=descending)


def demo_fake(count: int, regions: Sequence[str] = (REGION,),
              span: timedelta = timedelta(hours=12)) -> SecurityHubFake:
    """`count` findings (of each API) spread over `regions`, changed over the last `span`."""
    fake = SecurityHubFake()
    per_region = count // len(regions)
    step = (span - timedelta(minutes=5)) / max(per_region, 1)
    base = utcnow() - span
    for region in regions:
        kw = {"region": region, "base_time": base, "step": step}
        fake.enable_hub(region, make_ocsf_findings(per_region, **kw),
                        make_asff_findings(per_region, **kw))
    return fake


def demo_replay() -> tuple[SecurityHubFake, Callable[[str], dict[str, str]], dict[str, Any]]:
    """An unstarted fake with findings of the last 12 hours, the env for the CLI, the block.

    Half the findings are GuardDuty's, which the demo also pulls directly: the block leaves
    them out in Security Hub's filter (exclude_products).
    """
    fake = demo_fake(120)

    def env_for(url: str) -> dict[str, str]:
        # Any AWS fake answers STS alike, whichever replay's URL the env ends up holding.
        return {"DEMO_SECURITYHUB_URL": url, "AWS_ENDPOINT_URL_STS": url,
                "AWS_ACCESS_KEY_ID": "AKIDALERTPULLDEMO",
                "AWS_SECRET_ACCESS_KEY": "demo-secret-not-real", "AWS_DEFAULT_REGION": REGION}

    source = {"type": "securityhub", "regions": [REGION], "exclude_products": ["GuardDuty"],
              "endpoint_url": "${DEMO_SECURITYHUB_URL}"}
    return fake, env_for, source


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Security Hub (and STS, EC2).")
    parser.add_argument("--findings", type=int, default=200, help="findings to generate")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--latency-ms", type=float, default=0, help="delay added to every call")
    args = parser.parse_args()
    fake = demo_fake(args.findings)
    fake.latency = args.latency_ms / 1000
    fake.start(args.port)
    print(fake.url, flush=True)  # the first line is the URL, for scripts that start the fake
    fake.serve_until_interrupted()


if __name__ == "__main__":
    main()
