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
import functools
import logging
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlsplit

from alertpull.connector import (
    Connector,
    Memory,
    Option,
    Scope,
    Vendor,
    Window,
    max_retries_option,
)
from alertpull.errors import (
    MalformedAlert,
    SourceError,
    WindowIncomplete,
    one_line,
    retries_phrase,
)
from alertpull.record import Normalized, compact, dig, parse_json, unique_strings
from alertpull.timeutil import parse_time_or_none, to_epoch_ms

# ListFindings maxResults and GetFindings ids are capped at 50 by the service; botocore
# checks only the minimum, so a larger value would reach the server and fail there.
MAX_PAGE = 50
SORT_ASCENDING = {"AttributeName": "updatedAt", "OrderBy": "ASC"}
MAX_RETRIES = 8  # max_retries' default: botocore backs off at random for up to ~1 min
CONNECT_TIMEOUT = 10  # seconds; timeout_seconds lowers it, never raises it
FALLBACK_REGION = "us-east-1"  # STS/EC2 home region when neither config nor profile names one
# Key under which our after-call hook attaches the wire findings to GetFindings' reply.
WIRE_FINDINGS = "alertpull:wire-findings"
REQUIRED_FIELDS = ("id", "arn", "accountId", "updatedAt", "severity", "type")
# Calls to other services than GuardDuty, by operation: (IAM action prefix, label).
OTHER_SERVICES = {
    "GetCallerIdentity": ("sts", "STS"),
    "AssumeRole": ("sts", "STS"),
    "DescribeRegions": ("ec2", "EC2"),
}


class GuardDutyConnector(Connector):
    type_name = "guardduty"
    vendor = Vendor("Amazon Web Services", cloud="AWS", account_type_id=10)  # AWS Account
    retention = timedelta(days=90)  # fixed by AWS, cannot be raised
    default_overlap = timedelta(hours=1)
    ordered = True
    options: ClassVar[Mapping[str, Option]] = {
        "regions": Option(
            "list", help="regions to pull (default: every region enabled for the account)"
        ),
        "role_arn": Option(help="IAM role to assume first, e.g. in the GuardDuty admin account"),
        "external_id": Option(secret=True, help="ExternalId required by the role's trust policy"),
        "role_session_name": Option(
            default="alertpull", help="session name of the assumed role, shown in CloudTrail"
        ),
        "profile": Option(help="named AWS profile (default: the standard credential chain)"),
        "endpoint_url": Option(
            help="GuardDuty endpoint override (AWS_ENDPOINT_URL_GUARDDUTY works too)"
        ),
        "include_archived": Option(
            "bool", default=True, help="also pull archived findings, with status 'archived'"
        ),
        "timeout_seconds": Option(
            "int", default=60, help="seconds to wait for a vendor's answer (connect and read)"
        ),
        "max_retries": max_retries_option(MAX_RETRIES),
    }

    def __init__(self, source_name: str, settings: Mapping[str, Any], log: logging.Logger) -> None:
        super().__init__(source_name, settings, log)
        # A boto3 Session is not thread-safe but its clients are: the session and one
        # client per (service, region) are made under this lock, then shared by the
        # worker threads that run fetch() for different scopes.
        self._lock = threading.Lock()
        self._session: Any = None
        self._home_region = ""
        self._clients: dict[tuple[str, str], Any] = {}

    # -- the connector contract ----------------------------------------------------------

    def scopes(self) -> list[Scope]:
        account = self._account()
        scopes: list[Scope] = []
        for region in self._regions():
            try:
                scopes += self._scopes_in(account, region)
            except SourceError as exc:  # one region failing never holds back the others
                scopes.append(Scope(key=f"{account}/{region}", error=str(exc)))
        return scopes

    def fetch(self, scope: Scope, window: Window, memory: Memory) -> Iterator[list[Any]]:
        from botocore.exceptions import PaginationError

        region, detector_id = scope.params["region"], scope.params["detector_id"]
        with _aws_errors(region, detector_id):
            client = self._client("guardduty", region)
            pages = client.get_paginator("list_findings").paginate(
                DetectorId=detector_id,
                FindingCriteria=self._criteria(window),
                SortCriteria=SORT_ASCENDING,
                PaginationConfig={"PageSize": MAX_PAGE},
            )
            try:
                for page in pages:
                    # A page holds at most PageSize ids; GetFindings' own cap is still
                    # enforced here rather than trusted to the server's paging.
                    for ids in _chunks(page["FindingIds"], MAX_PAGE):
                        yield self._get_findings(client, detector_id, ids, window)
            except PaginationError:
                # botocore stops when GuardDuty hands back the token it was just given
                # (elastic/integrations#8601); the pages read so far are already yielded.
                raise WindowIncomplete(
                    f"GuardDuty repeated a page token in {region} (detector {detector_id}); "
                    "stopped at the findings read so far"
                ) from None

    def normalize(self, scope: Scope, raw: Any) -> Normalized:
        updated_at = _validated(raw)
        region = raw.get("region") or scope.params["region"]
        service = raw.get("service") or {}
        archived = bool(service.get("archived"))
        return Normalized(
            native_id=raw["arn"],  # finding ids are unique per detector only
            tenant=str(raw["accountId"]),
            changed_at=updated_at,
            title=raw.get("title") or raw["type"],
            severity=severity_band(_severity_number(raw["severity"])),
            severity_raw=str(raw["severity"]),
            status="archived" if archived else "new",
            status_raw="archived" if archived else "active",
            created_at=parse_time_or_none(raw.get("createdAt")),
            updated_at=updated_at,
            link=console_link(region, raw["id"]),
            extra=_extra(raw, region, service),
        )

    def check(self) -> str:
        account = self._account()
        region = self._home()
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

    def _account(self) -> str:
        region = self._home()
        with _aws_errors(region):
            return str(self._client("sts", region).get_caller_identity()["Account"])

    def _regions(self) -> list[str]:
        if self.settings["regions"]:
            return list(self.settings["regions"])
        region = self._home()
        with _aws_errors(region):
            # Unlike Session.get_available_regions(), this lists only the regions enabled
            # for the account: opt-in regions that are not enabled would fail every call.
            reply = self._client("ec2", region).describe_regions()
        return sorted(item["RegionName"] for item in reply["Regions"])

    def _scopes_in(self, account: str, region: str) -> list[Scope]:
        detectors = self._detectors(region)
        if detectors is None:
            self.log.warning("skipping %s: the region is not enabled for this account", region)
        elif not detectors:
            self.log.warning("GuardDuty is not enabled in %s", region)
        return [
            Scope(
                key=f"{account}/{region}/{detector_id}",
                params={"account": account, "region": region, "detector_id": detector_id},
            )
            for detector_id in detectors or ()
        ]

    def _detectors(self, region: str) -> list[str] | None:
        """The region's detector ids; None when it is an opt-in region not enabled."""
        from botocore.exceptions import ClientError

        with _aws_errors(region):
            try:
                paginator = self._client("guardduty", region).get_paginator("list_detectors")
                pages = paginator.paginate(PaginationConfig={"PageSize": MAX_PAGE})
                return [detector for page in pages for detector in page["DetectorIds"]]
            except ClientError as err:
                # What a disabled opt-in region answers (boto/boto3#2065).
                if _error_code(err) == "UnrecognizedClientException":
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
        return _ascending_in_window(reply[WIRE_FINDINGS], window)

    # -- boto3 session and clients -------------------------------------------------------

    def _home(self) -> str:
        """The region for account-wide calls (STS, DescribeRegions)."""
        self._ensure_session()
        return self._home_region

    def _ensure_session(self) -> None:
        with self._lock, _aws_errors():
            if self._session is None:
                self._session, self._home_region = _open_session(self.settings)

    def _client(self, service: str, region: str) -> Any:
        self._ensure_session()
        with self._lock:
            client = self._clients.get((service, region))
            if client is None:
                client = self._clients[(service, region)] = self._new_client(service, region)
            return client

    def _new_client(self, service: str, region: str) -> Any:
        client = self._session.client(
            service,
            region_name=region,
            # None lets botocore apply AWS_ENDPOINT_URL_<SERVICE> / AWS_ENDPOINT_URL itself.
            endpoint_url=self.settings["endpoint_url"] if service == "guardduty" else None,
            config=_botocore_config(self.settings),
        )
        if service == "guardduty":
            _read_whole_json_answers(client)
        return client


# -- boto3 plumbing ------------------------------------------------------------------------


def _botocore_config(settings: Mapping[str, Any]) -> Any:
    from botocore.config import Config

    # botocore's standard retry mode backs off on 429, Throttling*, 5xx, dropped connections
    # and timeouts by itself. Its Config key max_attempts counts the retries after the first
    # attempt (total_max_attempts would count that one too).
    timeout_seconds = settings["timeout_seconds"]
    return Config(
        connect_timeout=min(CONNECT_TIMEOUT, timeout_seconds),
        read_timeout=timeout_seconds,
        retries={"mode": "standard", "max_attempts": settings["max_retries"]},
    )


def _open_session(settings: Mapping[str, Any]) -> tuple[Any, str]:
    """A boto3 Session for the profile (and role, if any), and the home region."""
    import boto3
    import botocore.session

    base = botocore.session.Session(profile=settings["profile"])
    regions = settings["regions"] or []
    home = regions[0] if regions else base.get_config_variable("region") or FALLBACK_REGION
    if settings["role_arn"]:
        base = _assume_role_session(base, settings, home)
    return boto3.session.Session(botocore_session=base), home


def _assume_role_session(source: Any, settings: Mapping[str, Any], region: str) -> Any:
    """A botocore session whose credentials come from sts:AssumeRole and refresh themselves.

    A long pull can outlive the one-hour role session: botocore's fetcher assumes the
    role again shortly before the credentials expire.
    """
    import botocore.session
    from botocore.credentials import (
        AssumeRoleCredentialFetcher,
        CredentialProvider,
        CredentialResolver,
        DeferredRefreshableCredentials,
    )
    from botocore.exceptions import NoCredentialsError

    source_credentials = source.get_credentials()
    if source_credentials is None:
        raise NoCredentialsError()
    extra_args = {"RoleSessionName": settings["role_session_name"]}
    if settings["external_id"] is not None:
        extra_args["ExternalId"] = settings["external_id"].reveal()
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=functools.partial(
            source.create_client, region_name=region,
            config=_botocore_config(settings),
        ),
        source_credentials=source_credentials,
        role_arn=settings["role_arn"],
        extra_args=extra_args,
    )
    credentials = DeferredRefreshableCredentials(
        refresh_using=fetcher.fetch_credentials, method="assume-role"
    )

    class AssumedRole(CredentialProvider):
        METHOD = "alertpull-assume-role"

        def load(self) -> Any:
            return credentials

    assumed = botocore.session.Session(profile=settings["profile"])
    assumed.register_component("credential_provider", CredentialResolver([AssumedRole()]))
    return assumed


def _read_whole_json_answers(client: Any) -> None:
    """Check every GuardDuty answer inside botocore's retries, and hand GetFindings' findings
    to the caller as sent.

    botocore reads bodies without enforcing Content-Length (it passes
    enforce_content_length=False to urllib3) and parses a 200 whose body is not JSON as an
    empty reply, so a body cut mid-way or mangled on its way would read as an empty page
    and the rest of the window be silently skipped. An error raised after the send (in a
    before-parse hook) escapes botocore's retries, so the body is checked in the send: a
    short one fails the attempt as urllib3 fails a connection closed mid-response, one that
    is not JSON as UnreadableBody, and botocore retries both.

    The before-parse hook then takes the page parsed in the send (the same thread's
    previous step of the same call) and hands GetFindings' findings over exactly as sent
    (camelCase, unknown fields kept), letting botocore parse an empty reply instead: its
    model-driven parse of findings we never use was ~40% of a pull's CPU.
    """
    from botocore.exceptions import ConnectionClosedError

    session = client._endpoint.http_session  # botocore has no public hook inside its retries
    send = session.send
    parsed = threading.local()  # the body of the 200 this thread's send_whole just read

    def send_whole(request: Any) -> Any:
        response = send(request)
        if request.stream_output:
            return response
        expected = response.headers.get("content-length")
        if expected is not None and len(response.content) != int(expected):
            raise ConnectionClosedError(endpoint_url=request.url)
        if response.status_code == 200:
            try:
                parsed.body = parse_json(response.content)
            except ValueError:
                raise _unreadable_body()(endpoint_url=request.url) from None
        return response

    def take_wire_body(response_dict: dict[str, Any], customized_response_dict: dict[str, Any],
                       operation_model: Any, **_: Any) -> None:
        if response_dict["status_code"] != 200:
            return
        body = parsed.__dict__.pop("body")
        if operation_model.name != "GetFindings":
            return
        findings = body.get("findings") if isinstance(body, dict) else None
        if not isinstance(findings, list):
            raise SourceError("GuardDuty answered GetFindings without a findings list")
        customized_response_dict[WIRE_FINDINGS] = findings
        response_dict["body"] = _NO_FINDINGS
        response_dict["headers"]["content-length"] = str(len(_NO_FINDINGS))

    session.send = send_whole
    client.meta.events.register("before-parse.guardduty", take_wire_body)


_NO_FINDINGS = b'{"findings":[]}'


@functools.cache
def _unreadable_body() -> Any:
    """A 200 whose body is not JSON, as a botocore HTTPClientError: retried like a dropped
    connection. Built on first use, as botocore is imported only when GuardDuty is pulled."""
    from botocore.exceptions import HTTPClientError

    class UnreadableBody(HTTPClientError):
        fmt = "a body that is not JSON from {endpoint_url}"

    return UnreadableBody


def _error_code(err: Any) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def _aws_errors(region: str | None = None, detector_id: str | None = None) -> Iterator[None]:
    """Turn botocore errors escaping the block into a one-line, secret-free SourceError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as err:
        raise SourceError(describe_error(err, region, detector_id)) from None


def describe_error(err: Exception, region: str | None, detector_id: str | None) -> str:
    """One line for a botocore error: what failed, where, and what to fix."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectionError,
        CredentialRetrievalError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    where = f" in {region}" if region else ""
    if isinstance(err, ProfileNotFound):
        return (
            f"AWS profile {err.kwargs.get('profile')!r} is not in ~/.aws/config or "
            "~/.aws/credentials (or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE)"
        )
    if isinstance(err, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        detail = "" if isinstance(err, NoCredentialsError) else f" ({one_line(str(err))})"
        return (
            f"no AWS credentials found{detail}: configure the standard chain (env vars, "
            "~/.aws, instance role) or set role_arn"
        )
    if isinstance(err, _unreadable_body()):
        call = urlsplit(err.kwargs["endpoint_url"]).path
        return (
            f"GuardDuty answered POST {call}{where} with a body that is not JSON, still after "
            "retries; the next run reads the window again"
        )
    if isinstance(err, ConnectionClosedError):  # mid-response, e.g. a body cut short
        return (
            f"AWS closed the connection mid-response{where}, still after retries; the next "
            "run reads the window again"
        )
    if isinstance(err, (ConnectionError, HTTPClientError)):  # refused, timeouts, TLS, proxy
        endpoint = getattr(err, "kwargs", {}).get("endpoint_url") or f"the AWS endpoint{where}"
        return (
            f"cannot reach {endpoint} after retries ({type(err).__name__}); check endpoint_url "
            "/ AWS_ENDPOINT_URL_*, the network and HTTPS_PROXY"
        )
    if not isinstance(err, ClientError):
        return f"AWS call{where} failed: {one_line(str(err))}"
    return _describe_client_error(err, where, detector_id)


def _describe_client_error(err: Any, where: str, detector_id: str | None) -> str:
    code = _error_code(err)
    message = one_line(err.response.get("Error", {}).get("Message", ""))
    operation = err.operation_name
    prefix, label = OTHER_SERVICES.get(operation, ("guardduty", "GuardDuty"))
    if operation == "AssumeRole" and code.startswith("AccessDenied"):
        return (
            "cannot assume role_arn: access denied to sts:AssumeRole; check the role's trust "
            "policy (principal, ExternalId) and external_id"
        )
    if code.startswith("AccessDenied") or code == "UnauthorizedOperation":
        hint = " (or attach AmazonGuardDutyReadOnlyAccess)" if prefix == "guardduty" else ""
        return f"access denied{where}: allow {prefix}:{operation}{hint} for alertpull"
    if code == "BadRequestException" and detector_id and "detectorId" in message:
        problem = "is not owned by the current account" if "not owned" in message else "is invalid"
        return (
            f"GuardDuty detector {detector_id}{where} {problem}; detector ids belong to "
            "one account and region"
        )
    said = f"{code}: {message}".rstrip(": ")
    metadata = err.response.get("ResponseMetadata", {})
    status = metadata.get("HTTPStatusCode") or 0
    if status == 429 or status >= 500:  # throttling or an outage that outlasted the retries
        return (
            f"{label} {operation}{where} still failed with HTTP {status} after "
            f"{retries_phrase(metadata.get('RetryAttempts', 0))} ({said}); the next run reads "
            "the window again"
        )
    return f"{label} {operation}{where} failed: {said}".rstrip(": ")


# -- fetch helpers -------------------------------------------------------------------------


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
    finding_type = raw["type"]
    resource = raw.get("resource") or {}
    return {
        "description": raw.get("description"),
        "type": finding_type,
        # ThreatPurpose:ResourceTypeAffected/ThreatFamilyName.DetectionMechanism!Artifact
        "category": finding_type.split(":", 1)[0] if ":" in finding_type else None,
        "region": region,
        "product": "GuardDuty",
        "count": service.get("count"),
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
