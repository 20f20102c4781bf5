"""What every AWS connector shares: its config keys, its boto3 session and clients (profile,
role_arn + external_id, endpoint_url, timeouts, retries), reading answers whole and as sent,
and one-line error messages.

boto3/botocore are imported inside the functions only: `alertpull --help` and sources of
other types never import them.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from alertpull.connector import Option, max_retries_option
from alertpull.errors import ConfigError, SourceError, one_line, retries_phrase
from alertpull.paging import MAX_PAGES_OPTION
from alertpull.record import dump_json, parse_json
from alertpull.shutdown import in_background
from alertpull.validate import endpoint_url

MAX_RETRIES = 8  # max_retries' default: botocore backs off at random for up to ~1 min
CONNECT_TIMEOUT = 10  # seconds; timeout_seconds lowers it, never raises it
# arn:<partition>:iam::<account>:role/<path and name>
ROLE_ARN = re.compile(r"arn:[a-z-]+:iam::(?P<account>\d{12}):role/.")
FALLBACK_REGION = "us-east-1"  # STS/EC2 home region when neither config nor profile names one
# Calls to other services than the connector's own, by operation: (IAM action prefix, label).
OTHER_SERVICES = {
    "GetCallerIdentity": ("sts", "STS"),
    "AssumeRole": ("sts", "STS"),
    "DescribeRegions": ("ec2", "EC2"),
}


@dataclass(frozen=True)
class AwsService:
    """The AWS service a connector pulls.

    name: boto3's service name (also the IAM action prefix and AWS_ENDPOINT_URL_<NAME>).
    wire_results: operation -> the key of its answer whose items are handed over exactly
        as sent (see read_whole_json_answers), under WIRE_ITEMS.
    """

    name: str
    label: str  # as error lines name it
    managed_policy: str  # the AWS-managed read-only policy that covers the connector's calls
    wire_results: Mapping[str, str] = field(default_factory=dict)


# Key under which the after-call hook attaches an answer's wire items to boto3's reply.
WIRE_ITEMS = "alertpull:wire-items"


def aws_options(service: AwsService, regions_help: str) -> dict[str, Option]:
    """The config keys of every AWS source type."""
    return {
        "regions": Option("list", help=regions_help),
        "role_arn": Option(help="IAM role to assume first, e.g. in the administrator account"),
        "external_id": Option(secret=True, help="ExternalId required by the role's trust policy"),
        "role_session_name": Option(
            default="alertpull", help="session name of the assumed role, shown in CloudTrail"
        ),
        "profile": Option(help="named AWS profile (default: the standard credential chain)"),
        "endpoint_url": Option(
            help=f"{service.label} endpoint override "
            f"(AWS_ENDPOINT_URL_{service.name.upper()} works too)"
        ),
        "timeout_seconds": Option(
            "seconds", default=60, help="seconds to wait for a vendor's answer (connect and read)"
        ),
        "max_retries": max_retries_option(MAX_RETRIES),
        "max_pages": MAX_PAGES_OPTION,
    }


# What every AWS source type imports when it pulls -> the extra that installs it.
AWS_REQUIRES = {"boto3": "aws"}


def check_aws_settings(where: str, settings: Mapping[str, Any]) -> None:
    """The AWS keys' checks the option types cannot make (Connector.check_settings)."""
    if settings["endpoint_url"]:
        endpoint_url(settings["endpoint_url"], f"{where}.endpoint_url",
                     form="http(s)://host[:port] of the service's endpoint")
    if settings["external_id"] is not None and not settings["role_arn"]:
        raise ConfigError(f"{where}.external_id: used only to assume role_arn; set role_arn "
                          "or remove external_id")
    if settings["regions"] == []:
        raise ConfigError(f"{where}.regions: empty; list regions, or remove the key to pull "
                          "every region enabled for the account")


T = TypeVar("T")
Describe = Callable[[Exception, str | None], str]  # (botocore error, region) -> one line


class AwsClients:
    """One source's boto3 session and its clients, shared by the threads that pull its scopes.

    A boto3 Session is not thread-safe but its clients are: the session and one client per
    (service, region) are made under a lock, then shared by the worker threads.
    """

    def __init__(self, settings: Mapping[str, Any], service: AwsService,
                 describe: Describe) -> None:
        self.settings = settings
        self.service = service
        self.describe = describe
        self._lock = threading.Lock()
        self._session: Any = None
        self._home_region = ""
        self._clients: dict[tuple[str, str], Any] = {}

    def home(self) -> str:
        """The region for account-wide calls (STS, DescribeRegions)."""
        with self._lock, self.errors():
            if self._session is None:
                self._session, self._home_region = _open_session(self.settings)
        return self._home_region

    def client(self, service: str, region: str) -> Any:
        self.home()
        with self._lock:
            client = self._clients.get((service, region))
            if client is None:
                client = self._clients[(service, region)] = self._new_client(service, region)
            return client

    def account(self) -> str:
        """The account the credentials are in. A role's ARN names it (AssumeRole hands out
        that account's credentials): the role is assumed now, so a refusal is the source's
        error, and no GetCallerIdentity call is made."""
        region = self.home()
        role = ROLE_ARN.match(self.settings["role_arn"] or "")
        with self.errors(region):
            if role:
                with self._lock:  # the Session is not thread-safe (see the class)
                    credentials = self._session.get_credentials()
                credentials.get_frozen_credentials()  # botocore locks its own refresh
                return role["account"]
            return str(self.client("sts", region).get_caller_identity()["Account"])

    def account_and(self, discover: Callable[[], T]) -> tuple[str, T]:
        """The account and what discover() finds (regions, detectors), asked at once: neither
        needs the other. The account's error (no credentials, a refused role) is the one
        raised when both fail."""
        account = in_background(self.account, "account")
        try:
            found = discover()
        except SourceError:
            account()  # raises the account's error, if it has one
            raise
        return account(), found

    def enabled_regions(self) -> list[str]:
        region = self.home()
        with self.errors(region):
            # Unlike Session.get_available_regions(), this lists only the regions enabled
            # for the account: opt-in regions that are not enabled would fail every call.
            reply = self.client("ec2", region).describe_regions()
        return sorted(item["RegionName"] for item in reply["Regions"])

    @contextlib.contextmanager
    def errors(self, region: str | None = None) -> Iterator[None]:
        """Turn botocore errors escaping the block into a one-line, secret-free SourceError."""
        with aws_errors(lambda err: self.describe(err, region)):
            yield

    def _new_client(self, service: str, region: str) -> Any:
        own = service == self.service.name
        client = self._session.client(
            service,
            region_name=region,
            # None lets botocore apply AWS_ENDPOINT_URL_<SERVICE> / AWS_ENDPOINT_URL itself.
            endpoint_url=self.settings["endpoint_url"] if own else None,
            config=botocore_config(self.settings),
        )
        if own:
            read_whole_json_answers(client, self.service)
        return client


# -- boto3 plumbing ------------------------------------------------------------------------


def botocore_config(settings: Mapping[str, Any]) -> Any:
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
            config=botocore_config(settings),
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


def read_whole_json_answers(client: Any, service: AwsService) -> None:
    """Check every answer of the service inside botocore's retries, and hand the items of
    the service's wire_results to the caller as sent.

    botocore reads bodies without enforcing Content-Length (it passes
    enforce_content_length=False to urllib3) and parses a 200 whose body is not JSON as an
    empty reply, so a body cut mid-way or mangled on its way would read as an empty page
    and the rest of the window be silently skipped. An error raised after the send (in a
    before-parse hook) escapes botocore's retries, so the body is checked in the send: a
    short one fails the attempt as urllib3 fails a connection closed mid-response, one that
    is not JSON as UnreadableBody, and botocore retries both.

    The before-parse hook then takes the page parsed in the send (the same thread's
    previous step of the same call) and hands its items over exactly as sent (the wire's
    names, unknown fields kept), letting botocore parse the rest of the answer with an
    empty list instead: its model-driven parse of items we never use was ~40% of a pull's
    CPU.
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
        key = service.wire_results.get(operation_model.name)
        if key is None:
            return
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise SourceError(
                f"{service.label} answered {operation_model.name} without a {key} list")
        customized_response_dict[WIRE_ITEMS] = items
        rest = dump_json({**body, key: []})
        response_dict["body"] = rest
        response_dict["headers"]["content-length"] = str(len(rest))

    session.send = send_whole
    client.meta.events.register(f"before-parse.{client.meta.service_model.service_id.hyphenize()}",
                                take_wire_body)


@functools.cache
def _unreadable_body() -> Any:
    """A 200 whose body is not JSON, as a botocore HTTPClientError: retried like a dropped
    connection. Built on first use, as botocore is imported only when AWS is pulled."""
    from botocore.exceptions import HTTPClientError

    class UnreadableBody(HTTPClientError):
        fmt = "a body that is not JSON from {endpoint_url}"

    return UnreadableBody


def error_code(err: Any) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def aws_errors(describe: Callable[[Exception], str]) -> Iterator[None]:
    """Turn botocore errors escaping the block into a one-line, secret-free SourceError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as err:
        raise SourceError(describe(err)) from None


def describe_error(err: Exception, region: str | None, service: AwsService) -> str:
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
            f"{service.label} answered POST {call}{where} with a body that is not JSON, still "
            "after retries; the next run reads the window again"
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
    return _describe_client_error(err, where, service)


def _describe_client_error(err: Any, where: str, service: AwsService) -> str:
    code = error_code(err)
    message = one_line(err.response.get("Error", {}).get("Message", ""))
    operation = err.operation_name
    prefix, label = OTHER_SERVICES.get(operation, (service.name, service.label))
    if operation == "AssumeRole" and code.startswith("AccessDenied"):
        return (
            "cannot assume role_arn: access denied to sts:AssumeRole; check the role's trust "
            "policy (principal, ExternalId) and external_id"
        )
    if code.startswith("AccessDenied") or code == "UnauthorizedOperation":
        hint = f" (or attach {service.managed_policy})" if prefix == service.name else ""
        return f"access denied{where}: allow {prefix}:{_iam_action(operation)}{hint} for alertpull"
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


# Operations authorized by an IAM action of another name (Security Hub's v2 reads are
# authorized by the v1 actions, per its service model).
_IAM_ACTIONS = {"GetFindingsV2": "GetFindings"}


def _iam_action(operation: str) -> str:
    return _IAM_ACTIONS.get(operation, operation)
