"""AWS Security Hub: the findings of every (account, region), pulled by their changed-at.

Two APIs, picked by `api`:
- `v2` (default): GetFindingsV2, the relaunched Security Hub's OCSF findings, filtered on
  `finding_info.modified_time_dt` and sorted by it ascending. `raw` is the vendor's OCSF
  finding, which `--format ocsf` passes through (see ocsf_finding).
- `cspm`: GetFindings, the ASFF findings of what AWS now calls Security Hub CSPM, filtered
  on `UpdatedAt`, sorted by it ascending, paced under its 3 calls a second.

A scope is one (account, region). With a cross-region aggregator, its region alone holds
every linked region's findings, so `regions` defaults to it; without one, to every region
enabled for the account. An administrator account (and, with `organization_units`, a
delegated administrator's chosen part of its organization) sees its members' findings:
`tenant` is the finding's own account.

`exclude_products` leaves out, in the vendor's filter, the findings of products pulled
directly (GuardDuty...), so that the log does not hold them twice.

boto3/botocore are imported inside the methods only: `alertpull --help` and sources of
other types never import them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from alertpull.connector import Connector, Landmarks, Memory, Option, Scope, Stream, Vendor, Window
from alertpull.connectors import aws
from alertpull.connectors.aws import WIRE_ITEMS, AwsClients, AwsService, error_code
from alertpull.errors import ConfigError, MalformedAlert
from alertpull.paging import PageGuard
from alertpull.ratebudget import RateBudget
from alertpull.record import Normalized, compact, dig, text
from alertpull.timeutil import format_time, from_epoch_ms, parse_time_or_none

MAX_PAGE = 100  # MaxResults' maximum for GetFindingsV2 and GetFindings (botocore model)
V2_CHANGED_AT = "finding_info.modified_time_dt"
V2_PRODUCT = "metadata.product.name"
# GetFindings: 3 requests a second per account and region (a burst of 6); the budget keeps
# a steady pace under it, and botocore's retries ride out what another client spends.
CSPM_CALLS_PER_SECOND = 3
# Where a finding keeps its id, title and times, for a degraded record (alertpull.degraded).
OCSF_LANDMARKS = Landmarks(id=("finding_info.uid",), title=("finding_info.title",),
                           created=("finding_info.created_time_dt",),
                           updated=("finding_info.modified_time_dt",))
ASFF_LANDMARKS = Landmarks(id=("Id",), title=("Title",), created=("CreatedAt",),
                           updated=("UpdatedAt",))
SECURITYHUB = AwsService("securityhub", "Security Hub", "AWSSecurityHubReadOnlyAccess",
                         wire_results={"GetFindingsV2": "Findings", "GetFindings": "Findings"})
# What Security Hub answers where it is not enabled for the account, and what a disabled
# opt-in region answers (boto/boto3#2065).
NOT_ENABLED = ("InvalidAccessException", "UnrecognizedClientException")

# OCSF ids; the record's statuses are OCSF's finding statuses, one for one.
SEVERITIES_BY_ID = {0: "unknown", 1: "informational", 2: "low", 3: "medium", 4: "high",
                    5: "critical", 6: "critical"}  # 6 Fatal: beyond critical
STATUSES_BY_ID = {0: "unknown", 1: "new", 2: "in_progress", 3: "suppressed", 4: "resolved",
                  5: "archived", 6: "deleted"}
# ASFF Workflow.Status -> record status (RecordState ARCHIVED wins over all of them).
WORKFLOW_STATUSES = {"NEW": "new", "NOTIFIED": "in_progress", "SUPPRESSED": "suppressed",
                     "RESOLVED": "resolved"}
ASFF_SEVERITIES = {"INFORMATIONAL": "informational", "LOW": "low", "MEDIUM": "medium",
                   "HIGH": "high", "CRITICAL": "critical"}


# Asked for by UpdatedAt ascending: a window cut short keeps the mark it reached. Findings
# are deleted 90 days after their last update.
FINDINGS = Stream("findings", ordered=True, retention=timedelta(days=90))


class SecurityHubConnector(Connector):
    type_name = "securityhub"
    vendor = Vendor("Amazon Web Services", cloud="AWS", account_type_id=10)  # AWS Account
    default_overlap = timedelta(hours=1)
    options: ClassVar[Mapping[str, Option]] = {
        **aws.aws_options(
            SECURITYHUB, "regions to pull (default: the cross-region aggregator's region if "
            "one is configured, else every region enabled for the account)"),
        "api": Option(default="v2", choices=("v2", "cspm"),
                      help="v2: GetFindingsV2 (OCSF); cspm: GetFindings (ASFF, Security Hub "
                      "CSPM)"),
        "exclude_products": Option(
            "list", help="product names whose findings are left out by the vendor's filter, "
            "e.g. [GuardDuty] when GuardDuty is pulled directly"),
        "organization_units": Option(
            "list", help="api v2, delegated administrator only: the organization (o-...) or "
            "organizational units (ou-...) to pull (default: what the account sees)"),
    }
    requires = aws.AWS_REQUIRES

    @classmethod
    def check_settings(cls, where: str, settings: Mapping[str, Any]) -> None:
        aws.check_aws_settings(where, settings)
        _check_organization_units(where, settings["organization_units"] or [],
                                  settings["api"] == "v2")

    def __init__(self, source_name: str, settings: Mapping[str, Any], log: logging.Logger) -> None:
        super().__init__(source_name, settings, log)
        self._aws = AwsClients(settings, SECURITYHUB, _describe)
        self._v2 = settings["api"] == "v2"
        _check_organization_units(f"sources.{source_name}", settings["organization_units"] or [],
                                  self._v2)

    # -- the connector contract ----------------------------------------------------------

    def scopes(self) -> list[Scope]:
        account, regions = self._aws.account_and(self._regions)
        return [FINDINGS.scope(f"{account}/{region}", {"account": account, "region": region},
                               account)
                for region in regions]

    def landmarks(self, scope: Scope) -> Landmarks:
        return OCSF_LANDMARKS if self._v2 else ASFF_LANDMARKS

    def fetch(self, scope: Scope, window: Window, memory: Memory) -> Iterator[list[Any]]:
        region = scope.params["region"]
        with self._aws.errors(region):
            client = self._aws.client("securityhub", region)
            if self._v2:
                yield from self._pages(client.get_findings_v2, self._v2_request(window),
                                       region, pace=lambda: None)
            else:
                budget = RateBudget.shared(f"securityhub-cspm:{scope.key}",
                                           CSPM_CALLS_PER_SECOND, 1.0)
                yield from self._pages(client.get_findings, self._cspm_request(window),
                                       region, pace=budget.acquire)

    def _pages(self, call: Callable[..., Any], request: dict[str, Any], region: str,
               pace: Callable[[], None]) -> Iterator[list[Any]]:
        """The pages of one pinned query, by NextToken, with the loop guard."""
        from botocore.exceptions import ClientError

        # A token seen before in this window would read its pages again, forever; the pages
        # read so far are yielded, each finding once.
        guard = PageGuard("Security Hub", f"in {region}", self.settings["max_pages"],
                          then="; stopped at the findings read so far")
        guard.check(None)
        token = None
        while True:
            pace()
            try:
                reply = call(**request, **({"NextToken": token} if token else {}))
            except ClientError as err:
                if token is None and error_code(err) in NOT_ENABLED:
                    self.log.warning("Security Hub is not enabled in %s for this account; "
                                     "nothing to pull there", region)
                    return
                raise
            yield reply[WIRE_ITEMS]
            token = reply.get("NextToken")
            if not token:
                return
            guard.check(token)

    def normalize(self, scope: Scope, raw: Any) -> Normalized:
        if not isinstance(raw, dict):
            raise MalformedAlert("Security Hub finding is not a JSON object")
        return _normalize_ocsf(raw) if self._v2 else _normalize_asff(raw)

    def ocsf_finding(self, raw: Any) -> Mapping[str, Any] | None:
        # GetFindingsV2 serves OCSF already: it is passed through, not mapped again.
        if self._v2 and isinstance(raw, dict) and isinstance(raw.get("metadata"), dict):
            return raw
        return None

    def describe(self, raw: Any) -> str:
        uid = dig(raw, "finding_info", "uid") if self._v2 else dig(raw, "Id")
        return str(uid) if uid else super().describe(raw)

    def check(self) -> str:
        account = self._aws.account()
        regions = self._regions()
        region = regions[0] if regions else self._aws.home()
        with self._aws.errors(region):
            client = self._aws.client("securityhub", region)
            if self._v2:
                client.get_findings_v2(MaxResults=1)
            else:
                client.get_findings(MaxResults=1)
        api = "GetFindingsV2" if self._v2 else "GetFindings (CSPM)"
        return f"AWS account {account}: Security Hub {api} answered in {region}; " \
               f"pulling {', '.join(regions)}"

    # -- scopes --------------------------------------------------------------------------

    def _regions(self) -> list[str]:
        if self.settings["regions"]:
            return list(self.settings["regions"])
        aggregated = self._aggregation_region()
        if aggregated:
            return [aggregated]
        return self._aws.enabled_regions()

    def _aggregation_region(self) -> str | None:
        """The region a cross-region aggregator gathers findings into, if there is one."""
        region = self._aws.home()
        with self._aws.errors(region):
            client = self._aws.client("securityhub", region)
            if self._v2:
                listed = client.list_aggregators_v2().get("AggregatorsV2") or []
                if not listed:
                    return None
                reply = client.get_aggregator_v2(AggregatorV2Arn=listed[0]["AggregatorV2Arn"])
                return str(reply["AggregationRegion"])
            found = client.list_finding_aggregators().get("FindingAggregators") or []
            if not found:
                return None
            reply = client.get_finding_aggregator(
                FindingAggregatorArn=found[0]["FindingAggregatorArn"])
            return str(reply["FindingAggregationRegion"])

    # -- requests ------------------------------------------------------------------------

    def _v2_request(self, window: Window) -> dict[str, Any]:
        start, end = _bounds(window)
        composite: dict[str, Any] = {
            "DateFilters": [{"FieldName": V2_CHANGED_AT, "Filter": {"Start": start, "End": end}}],
            "Operator": "AND",
        }
        excluded = self.settings["exclude_products"] or []
        if excluded:
            composite["StringFilters"] = [
                {"FieldName": V2_PRODUCT, "Filter": {"Value": name, "Comparison": "NOT_EQUALS"}}
                for name in excluded]
        request: dict[str, Any] = {
            "Filters": {"CompositeFilters": [composite], "CompositeOperator": "AND"},
            "SortCriteria": [{"Field": V2_CHANGED_AT, "SortOrder": "asc"}],
            "MaxResults": MAX_PAGE,
        }
        units = self.settings["organization_units"]
        if units:
            request["Scopes"] = {"AwsOrganizations": [
                {"OrganizationalUnitId": unit} if unit.startswith("ou-")
                else {"OrganizationId": unit} for unit in units]}
        return request

    def _cspm_request(self, window: Window) -> dict[str, Any]:
        start, end = _bounds(window)
        filters: dict[str, Any] = {"UpdatedAt": [{"Start": start, "End": end}]}
        excluded = self.settings["exclude_products"] or []
        if excluded:
            filters["ProductName"] = [{"Value": name, "Comparison": "NOT_EQUALS"}
                                      for name in excluded]
        return {"Filters": filters, "SortCriteria": [{"Field": "UpdatedAt", "SortOrder": "asc"}],
                "MaxResults": MAX_PAGE}


def _check_organization_units(block: str, units: list[str], v2: bool) -> None:
    """`block` is the source's place in the config, sources.NAME."""
    where = f"{block}.organization_units"
    if units and not v2:
        raise ConfigError(f"{where}: only api v2 scopes a pull to an organization; with api "
                          "cspm an administrator account pulls all it sees. Remove it or set "
                          "api: v2")
    bad = [unit for unit in units if not unit.startswith(("o-", "ou-"))]
    if bad:
        raise ConfigError(f"{where}: {bad[0]!r} is neither an organization id (o-...) nor an "
                          "organizational unit id (ou-...)")


def _bounds(window: Window) -> tuple[str, str]:
    """The window as a date filter: Security Hub's Start and End are both inclusive, so End
    is the last millisecond before the window's end."""
    return format_time(window.start), format_time(window.end - timedelta(milliseconds=1))


def _describe(err: Exception, region: str | None) -> str:
    return aws.describe_error(err, region, SECURITYHUB)


# -- normalization: OCSF (v2) ---------------------------------------------------------------


def _normalize_ocsf(raw: dict[str, Any]) -> Normalized:
    info = raw.get("finding_info")
    if not isinstance(info, dict) or not text(info.get("uid")):
        raise MalformedAlert("Security Hub finding has no finding_info.uid")
    account = dig(raw, "cloud", "account", "uid")
    if not account:
        raise MalformedAlert("Security Hub finding has no cloud.account.uid")
    modified = _ocsf_time(info, "modified_time")
    if modified is None:
        raise MalformedAlert("Security Hub finding has no readable finding_info.modified_time")
    product = dig(raw, "metadata", "product") or {}
    region = text(dig(raw, "cloud", "region"))
    severity_id, status_id = raw.get("severity_id"), raw.get("status_id")
    types = _list(info.get("types"))
    return Normalized(
        native_id=_unique_id(info["uid"], product.get("uid") or product.get("name")),
        tenant=str(account),
        changed_at=modified,
        title=text(info.get("title")) or text(raw.get("message")) or info["uid"],
        severity=SEVERITIES_BY_ID.get(severity_id, "unknown"),  # type: ignore[arg-type]
        severity_raw=text(raw.get("severity")) or _str_or_none(severity_id),
        status=STATUSES_BY_ID.get(status_id, "unknown"),  # type: ignore[arg-type]
        status_raw=text(raw.get("status")) or _str_or_none(status_id),
        created_at=_ocsf_time(info, "created_time"),
        updated_at=modified,
        link=text(info.get("src_url")),
        extra={
            "description": text(info.get("desc")),
            "type": next((t for t in types if text(t)), None),
            "category": text(raw.get("class_name")),
            "region": region,
            "product": text(product.get("name")),
            "first_seen_at": _ocsf_time(info, "first_seen_time"),
            "last_seen_at": _ocsf_time(info, "last_seen_time"),
            "count": raw.get("count") if isinstance(raw.get("count"), int) else None,
            "resources": [_ocsf_resource(r, region) for r in _dicts(raw.get("resources"))
                          if r.get("uid") or r.get("name")],
        },
    )


def _ocsf_time(info: dict[str, Any], name: str) -> datetime | None:
    """An OCSF time from its `_dt` twin, else from its epoch milliseconds."""
    moment = parse_time_or_none(info.get(f"{name}_dt"))
    if moment is None and isinstance(info.get(name), int) and not isinstance(info[name], bool):
        moment = from_epoch_ms(info[name])
    return moment


def _ocsf_resource(resource: dict[str, Any], region: str | None) -> dict[str, Any]:
    details = {k: v for k, v in resource.items() if k not in ("uid", "name", "type", "region")}
    return compact({"type": resource.get("type"), "id": resource.get("uid"),
                    "name": resource.get("name"), "region": resource.get("region") or region,
                    "details": details})


# -- normalization: ASFF (cspm) -------------------------------------------------------------

ASFF_REQUIRED = ("Id", "ProductArn", "AwsAccountId", "UpdatedAt")


def _normalize_asff(raw: dict[str, Any]) -> Normalized:
    missing = [name for name in ASFF_REQUIRED if not text(raw.get(name))]
    if missing:
        raise MalformedAlert(f"Security Hub finding has no {missing[0]}")
    updated = parse_time_or_none(raw["UpdatedAt"])
    if updated is None:
        raise MalformedAlert(f"Security Hub finding UpdatedAt {raw['UpdatedAt']!r} is not a time")
    label = dig(raw, "Severity", "Label")
    workflow = dig(raw, "Workflow", "Status") or raw.get("WorkflowState")
    record_state = raw.get("RecordState")
    if record_state == "ARCHIVED":
        status = "archived"
    else:
        status = WORKFLOW_STATUSES.get(workflow, "unknown")  # type: ignore[arg-type]
    region = text(raw.get("Region"))
    types = _list(raw.get("Types"))
    first_type = next((t for t in types if text(t)), None)
    return Normalized(
        native_id=_unique_id(raw["Id"], raw["ProductArn"]),
        tenant=raw["AwsAccountId"],
        changed_at=updated,
        title=text(raw.get("Title")) or raw["Id"],
        severity=ASFF_SEVERITIES.get(label, "unknown"),  # type: ignore[arg-type]
        severity_raw=_str_or_none(label),
        status=status,
        status_raw="/".join(str(part) for part in (workflow, record_state) if part) or None,
        created_at=parse_time_or_none(raw.get("CreatedAt")),
        updated_at=updated,
        link=text(raw.get("SourceUrl")),
        extra={
            "description": text(raw.get("Description")),
            "type": first_type,
            # Namespace/Category/Classifier: the namespace is the broad kind.
            "category": first_type.split("/", 1)[0] if first_type else None,
            "region": region,
            "product": text(raw.get("ProductName")),
            "first_seen_at": parse_time_or_none(raw.get("FirstObservedAt")),
            "last_seen_at": parse_time_or_none(raw.get("LastObservedAt")),
            "resources": [_asff_resource(r, region) for r in _dicts(raw.get("Resources"))
                          if r.get("Id")],
        },
    )


def _asff_resource(resource: dict[str, Any], region: str | None) -> dict[str, Any]:
    details = {k: v for k, v in resource.items() if k not in ("Id", "Type", "Region")}
    return compact({"type": resource.get("Type"), "id": resource.get("Id"),
                    "region": resource.get("Region") or region, "details": details})


# -- shared helpers -----------------------------------------------------------------------


def _unique_id(uid: str, product: Any) -> str:
    """A finding's id, unique across products: AWS services' ids are ARNs already; a
    partner's id is unique only within its product."""
    if uid.startswith("arn:") or not product:
        return uid
    return f"{product}|{uid}"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in _list(value) if isinstance(item, dict)]


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
