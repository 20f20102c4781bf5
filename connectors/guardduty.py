"""AWS GuardDuty: the findings of every (account, region, detector), pulled by updatedAt.

GuardDuty is regional: each region has at most one detector per account, and an
administrator account's detector also sees its members' findings. A scope is one
(account, region, detector). A window is read with ListFindings filtered on
`updatedAt` in [start, end) and sorted ascending, then GetFindings on each page of ids.
`raw` is the finding exactly as GuardDuty sent it (camelCase JSON), taken from the HTTP
body rather than from boto3's PascalCase parse.

boto3/botocore are imported inside the methods only: `alertpull --help` and sources of
other types never import them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, NamedTuple

from alertpull.connector import Connector, Landmarks, Memory, Option, Scope, Stream, Vendor, Window
from alertpull.connectors import aws
from alertpull.connectors.aws import WIRE_ITEMS, AwsClients, AwsService, aws_errors, error_code
from alertpull.errors import MalformedAlert, SourceError
from alertpull.paging import PageGuard
from alertpull.readahead import ReadAhead
from alertpull.record import Normalized, compact, dig, text, unique_strings
from alertpull.shutdown import map_concurrently
from alertpull.timeutil import parse_time_or_none, to_epoch_ms

# ListFindings maxResults and GetFindings ids are capped at 50 by the service; botocore
# checks only the minimum, so a larger value would reach the server and fail there.
MAX_PAGE = 50
SORT_ASCENDING = {"AttributeName": "updatedAt", "OrderBy": "ASC"}
REQUIRED_FIELDS = ("id", "arn", "accountId", "updatedAt", "severity")
LANDMARKS = Landmarks(id=("arn", "id"), title=("title", "type"), created=("createdAt",),
                      updated=("updatedAt",))
# GetFindings' findings are handed over as sent (camelCase, unknown fields kept).
GUARDDUTY = AwsService("guardduty", "GuardDuty", "AmazonGuardDutyReadOnlyAccess",
                       wire_results={"GetFindings": "findings"})


# Ascending updatedAt (SORT_ASCENDING): a window cut short keeps the mark it reached.
FINDINGS = Stream("findings", ordered=True,
                  retention=timedelta(days=90))  # fixed by AWS, cannot be raised


class GuardDutyConnector(Connector):
    type_name = "guardduty"
    vendor = Vendor("Amazon Web Services", cloud="AWS", account_type_id=10)  # AWS Account
    default_overlap = timedelta(hours=1)
    options: ClassVar[Mapping[str, Option]] = {
        **aws.aws_options(
            GUARDDUTY, "regions to pull (default: every region enabled for the account)"
        ),
        "include_archived": Option(
            "bool", default=True, help="also pull archived findings, with status 'archived'"
        ),
    }
    requires = aws.AWS_REQUIRES

    @classmethod
    def check_settings(cls, where: str, settings: Mapping[str, Any]) -> None:
        aws.check_aws_settings(where, settings)

    def __init__(self, source_name: str, settings: Mapping[str, Any], log: logging.Logger) -> None:
        super().__init__(source_name, settings, log)
        self._aws = AwsClients(settings, GUARDDUTY,
                               lambda err, region: describe_error(err, region, None))

    # -- the connector contract ----------------------------------------------------------

    def scopes(self) -> list[Scope]:
        # Each region answers ListDetectors at its own endpoint: asked at once (and while the
        # account is, see account_and), a run of 17 regions waits one round trip for its
        # detectors instead of 17 after one for the account.
        def detectors() -> list[tuple[str, list[str] | SourceError | None]]:
            regions = self._regions()
            found = map_concurrently(self._detectors_or_error, regions, self.concurrency,
                                     "detectors")
            return list(zip(regions, found, strict=True))

        account, found = self._aws.account_and(detectors)
        return [scope for region, listed in found
                for scope in self._scopes_in(account, region, listed)]

    def fetch(self, scope: Scope, window: Window, memory: Memory) -> Iterator[list[Any]]:
        from botocore.exceptions import PaginationError

        region, detector_id = scope.params["region"], scope.params["detector_id"]
        with _aws_errors(region, detector_id):
            client = self._aws.client("guardduty", region)
            pages = client.get_paginator("list_findings").paginate(
                DetectorId=detector_id,
                FindingCriteria=self._criteria(window),
                SortCriteria=SORT_ASCENDING,
                PaginationConfig={"PageSize": MAX_PAGE},
            )
            guard = PageGuard("GuardDuty", f"in {region} (detector {detector_id})",
                              self.settings["max_pages"],
                              then="; stopped at the findings read so far")
            guard.check(None)
            try:
                # ListFindings of the next page is on the wire while GetFindings of this
                # one is: a page costs one round trip, not two.
                with ReadAhead(_guarded(pages, guard)) as listed:
                    for page in listed:
                        # A page holds at most PageSize ids; GetFindings' own cap is still
                        # enforced here rather than trusted to the server's paging.
                        for ids in _chunks(page["FindingIds"], MAX_PAGE):
                            yield self._get_findings(client, detector_id, ids, window)
            except PaginationError:
                # botocore stops when GuardDuty hands back the token it was just given
                # (elastic/integrations#8601); the pages read so far are already yielded.
                raise guard.repeated() from None

    def normalize(self, scope: Scope, raw: Any) -> Normalized:
        updated_at = _validated(raw)
        region = text(raw.get("region")) or scope.params["region"]
        service = raw.get("service") or {}
        archived = bool(service.get("archived"))
        return Normalized(
            native_id=raw["arn"],  # finding ids are unique per detector only
            tenant=str(raw["accountId"]),
            changed_at=updated_at,
            title=text(raw.get("title")) or text(raw.get("type")) or "GuardDuty finding",
            severity=severity_band(_severity_number(raw["severity"])),
            severity_raw=str(raw["severity"]),
            status="archived" if archived else "new",
            status_raw="archived" if archived else "active",
            created_at=parse_time_or_none(raw.get("createdAt")),
            updated_at=updated_at,
            link=console_link(region, raw["id"]),
            extra=_extra(raw, region, service),
        )

    def landmarks(self, scope: Scope) -> Landmarks:
        return LANDMARKS

    def check(self) -> str:
        account = self._aws.account()
        region = self._aws.home()
        detectors = self._detectors(region)
        if detectors is None:
            found = f"{region} is not enabled for the account"
        elif detectors:
            found = f"GuardDuty detector {detectors[0]} in {region}"
        else:
            found = f"GuardDuty is not enabled in {region}"
        regions = self.settings["regions"]
        pulling = f"{len(regions)} configured region(s)" if regions else "all enabled regions"
        return f"AWS account {account}: {found}; pulling {pulling}"

    # -- scopes --------------------------------------------------------------------------

    def _regions(self) -> list[str]:
        return list(self.settings["regions"] or self._aws.enabled_regions())

    def _detectors_or_error(self, region: str) -> list[str] | SourceError | None:
        try:
            return self._detectors(region)
        except SourceError as exc:  # one region failing never holds back the others
            return exc

    def _scopes_in(self, account: str, region: str,
                   detectors: list[str] | SourceError | None) -> list[Scope]:
        if isinstance(detectors, SourceError):
            return [Scope(key=f"{account}/{region}", error=str(detectors))]
        if detectors is None:
            self.log.warning("skipping %s: the region is not enabled for this account", region)
        elif not detectors:
            self.log.warning("GuardDuty is not enabled in %s", region)
        return [
            FINDINGS.scope(f"{account}/{region}/{detector_id}",
                           {"account": account, "region": region, "detector_id": detector_id},
                           account)
            for detector_id in detectors or ()
        ]

    def _detectors(self, region: str) -> list[str] | None:
        """The region's detector ids; None when it is an opt-in region not enabled."""
        from botocore.exceptions import ClientError

        with _aws_errors(region):
            try:
                paginator = self._aws.client("guardduty", region).get_paginator("list_detectors")
                pages = paginator.paginate(PaginationConfig={"PageSize": MAX_PAGE})
                return [detector for page in pages for detector in page["DetectorIds"]]
            except ClientError as err:
                # What a disabled opt-in region answers (boto/boto3#2065).
                if error_code(err) == "UnrecognizedClientException":
                    return None
                raise

    # -- fetch ---------------------------------------------------------------------------

    def _criteria(self, window: Window) -> dict[str, Any]:
        # GreaterThanOrEqual/LessThan are Longs; the deprecated Gte/Lt are 32-bit Integers
        # that cannot hold epoch milliseconds.
        criterion: dict[str, Any] = {
            "updatedAt": {
                "GreaterThanOrEqual": to_epoch_ms(window.start),
                "LessThan": to_epoch_ms(window.end),
            }
        }
        if not self.settings["include_archived"]:
            criterion["service.archived"] = {"Equals": ["false"]}
        return {"Criterion": criterion}

    @staticmethod
    def _get_findings(
        client: Any, detector_id: str, ids: list[str], window: Window
    ) -> list[dict[str, Any]]:
        reply = client.get_findings(
            DetectorId=detector_id, FindingIds=ids, SortCriteria=SORT_ASCENDING
        )
        return _ascending_in_window(reply[WIRE_ITEMS], window)

# -- errors --------------------------------------------------------------------------------


@contextlib.contextmanager
def _aws_errors(region: str | None = None, detector_id: str | None = None) -> Iterator[None]:
    """Turn botocore errors escaping the block into a one-line, secret-free SourceError."""
    with aws_errors(lambda err: describe_error(err, region, detector_id)):
        yield


def describe_error(err: Exception, region: str | None, detector_id: str | None) -> str:
    """One line for a botocore error: what failed, where, and what to fix."""
    from botocore.exceptions import ClientError

    if isinstance(err, ClientError) and error_code(err) == "BadRequestException" and detector_id:
        message = err.response.get("Error", {}).get("Message", "")
        if "detectorId" in message:
            where = f" in {region}" if region else ""
            problem = "is not owned by the current account" if "not owned" in message \
                else "is invalid"
            return (
                f"GuardDuty detector {detector_id}{where} {problem}; detector ids belong to "
                "one account and region"
            )
    return aws.describe_error(err, region, GUARDDUTY)


# -- fetch helpers -------------------------------------------------------------------------


def _guarded(pages: Iterable[dict[str, Any]], guard: PageGuard) -> Iterator[dict[str, Any]]:
    """ListFindings pages, each next token checked by the guard before botocore asks for
    the page it names (also when the pages are read ahead)."""
    for page in pages:
        yield page
        if page.get("NextToken"):
            guard.check(page["NextToken"])


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for offset in range(0, len(items), size):
        yield items[offset : offset + size]


def _ascending_in_window(findings: list[dict[str, Any]], window: Window) -> list[dict[str, Any]]:
    """The findings still inside the window, in ascending updatedAt order.

    A finding updated between ListFindings and GetFindings comes back with an updatedAt
    past the window: the next run reads it, and keeping it here would break the order
    the runner relies on. One without a readable updatedAt is kept for normalize() to
    report.
    """
    stamped = [(parse_time_or_none(f.get("updatedAt")) or window.start, f) for f in findings]
    kept = [(stamp, f) for stamp, f in stamped if stamp < window.end]
    return [f for _, f in sorted(kept, key=lambda pair: pair[0])]


# -- normalization -------------------------------------------------------------------------


def _validated(raw: Any) -> datetime:
    """Check what the mapping needs; return the finding's updatedAt."""
    if not isinstance(raw, dict):
        raise MalformedAlert("GuardDuty finding is not a JSON object")
    missing = [name for name in REQUIRED_FIELDS if raw.get(name) in (None, "")]
    if missing:
        raise MalformedAlert(f"GuardDuty finding has no {missing[0]}")
    not_text = [name for name in ("id", "arn", "accountId") if not isinstance(raw[name], str)]
    if not_text:
        raise MalformedAlert(f"GuardDuty finding {not_text[0]} is not text")
    updated_at = parse_time_or_none(raw["updatedAt"])
    if updated_at is None:
        raise MalformedAlert(f"GuardDuty finding updatedAt {raw['updatedAt']!r} is not a time")
    return updated_at


def severity_band(number: float) -> str:
    """GuardDuty's bands: 1-3.9 low, 4-6.9 medium, 7-8.9 high, 9-10 critical."""
    if number < 1:
        return "informational"
    if number < 4:
        return "low"
    if number < 7:
        return "medium"
    if number < 9:
        return "high"
    return "critical"


def console_link(region: str, finding_id: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/guardduty/home?region={region}"
        f"#/findings?macros=current&fId={finding_id}"
    )


def _severity_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MalformedAlert(f"GuardDuty finding severity {value!r} is not a number")
    try:
        return float(value)
    except ValueError:
        raise MalformedAlert(f"GuardDuty finding severity {value!r} is not a number") from None


def _extra(raw: dict[str, Any], region: str, service: dict[str, Any]) -> dict[str, Any]:
    finding_type = text(raw.get("type"))
    resource = raw.get("resource") or {}
    return {
        "description": text(raw.get("description")),
        "type": finding_type,
        # ThreatPurpose:ResourceTypeAffected/ThreatFamilyName.DetectionMechanism!Artifact
        "category": finding_type.split(":", 1)[0] if finding_type and ":" in finding_type else None,
        "region": region,
        "product": "GuardDuty",
        "count": count if type(count := service.get("count")) is int else None,
        "first_seen_at": parse_time_or_none(service.get("eventFirstSeen")),
        "last_seen_at": parse_time_or_none(service.get("eventLastSeen")),
        "resources": _resources(resource, region),
        "users": _users(resource),
        "related": _related(service),
    }


class _ResourceKind(NamedTuple):
    key: str  # under finding.resource
    type: str  # the record's resource type (Security Hub ASFF names)
    id_field: str
    name_field: str | None
    detail_fields: tuple[str, ...]


_RESOURCE_KINDS = (
    _ResourceKind(
        "instanceDetails",
        "AwsEc2Instance",
        "instanceId",
        None,
        ("instanceType", "imageId", "instanceState", "availabilityZone"),
    ),
    _ResourceKind("s3BucketDetails", "AwsS3Bucket", "arn", "name", ("type",)),
    _ResourceKind("accessKeyDetails", "AwsIamAccessKey", "accessKeyId", None, ("userType",)),
    _ResourceKind("eksClusterDetails", "AwsEksCluster", "arn", "name", ("vpcId", "status")),
    _ResourceKind("ecsClusterDetails", "AwsEcsCluster", "arn", "name", ("status",)),
    _ResourceKind("containerDetails", "Container", "id", "name", ("image", "containerRuntime")),
    _ResourceKind(
        "rdsDbInstanceDetails",
        "AwsRdsDbInstance",
        "dbInstanceArn",
        "dbInstanceIdentifier",
        ("engine", "engineVersion", "dbClusterIdentifier"),
    ),
    _ResourceKind(
        "lambdaDetails", "AwsLambdaFunction", "functionArn", "functionName", ("functionVersion",)
    ),
)


def _resources(resource: dict[str, Any], region: str) -> list[dict[str, Any]]:
    entries = (
        _resource(kind, item, region)
        for kind in _RESOURCE_KINDS
        for item in _as_list(resource.get(kind.key))  # s3BucketDetails is a list
    )
    return [entry for entry in entries if entry]


def _resource(kind: _ResourceKind, item: Any, region: str) -> dict[str, Any] | None:
    """The record entry for one resource; None when it carries no identifier."""
    if not isinstance(item, dict):
        return None
    name = item.get(kind.name_field) if kind.name_field else None
    ident = item.get(kind.id_field) or name
    if not ident:
        return None
    details = compact({field: item.get(field) for field in kind.detail_fields})
    entry = {"type": kind.type, "id": ident, "name": name, "region": region, "details": details}
    return compact(entry)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _users(resource: dict[str, Any]) -> list[dict[str, Any]]:
    access_key = resource.get("accessKeyDetails") or {}
    kubernetes = dig(resource, "kubernetesDetails", "kubernetesUserDetails") or {}
    database = resource.get("rdsDbUserDetails") or {}
    candidates = [
        {
            "name": access_key.get("userName"),
            "id": access_key.get("principalId"),
            "type": access_key.get("userType"),
        },
        {"name": kubernetes.get("username"), "id": kubernetes.get("uid"), "type": "KubernetesUser"},
        {"name": database.get("user"), "type": "DatabaseUser"},
    ]
    return [compact(user) for user in candidates if user.get("name") or user.get("id")]


# Actions whose remoteIpDetails name the other side of the activity.
_REMOTE_IP_ACTIONS = (
    "networkConnectionAction",
    "awsApiCallAction",
    "kubernetesApiCallAction",
    "rdsLoginAttemptAction",
)


def _related(service: dict[str, Any]) -> dict[str, list[str]]:
    action = service.get("action") or {}
    remotes = [dig(action, name, "remoteIpDetails") for name in _REMOTE_IP_ACTIONS]
    remotes += [
        dig(probe, "remoteIpDetails")
        for probe in dig(action, "portProbeAction", "portProbeDetails") or []
    ]
    related = {
        "ips": unique_strings(
            ip
            for remote in remotes
            for ip in (dig(remote, "ipAddressV4"), dig(remote, "ipAddressV6"))
        ),
        "domains": unique_strings(
            [
                dig(action, "dnsRequestAction", "domain"),
                dig(action, "awsApiCallAction", "domainDetails", "domain"),
            ]
        ),
        "hashes": unique_strings(_hashes(service)),
    }
    return {name: values for name, values in related.items() if values}


def _hashes(service: dict[str, Any]) -> Iterator[Any]:
    """The runtime process's executable and the files malware scans found."""
    yield dig(service, "runtimeDetails", "process", "executableSha256")
    ebs_threats = dig(
        service, "ebsVolumeScanDetails", "scanDetections", "threatDetectedByName", "threatNames"
    )
    for threat in ebs_threats or []:
        yield from (dig(path, "hash") for path in dig(threat, "filePaths") or [])
    for threat in dig(service, "malwareScanDetails", "threats") or []:
        yield dig(threat, "hash")
        yield from (dig(path, "hash") for path in dig(threat, "itemPaths") or [])
