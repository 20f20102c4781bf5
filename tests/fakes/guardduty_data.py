"""Deterministic, realistic GuardDuty findings in the camelCase wire format of GetFindings.

Six finding shapes rotate by index (EC2 network connection, S3 API call, IAM access key,
EKS API call, DNS request, Runtime process), each about 2 KB like the real ones. Ids and
ARNs are unique per (account, region, detector, index); times, severity and the archived
flag can be set explicitly. IPs are documentation ranges, domains are example.net.
`generated_findings` is the bench's lazy form: findings made when read, ids carrying
their index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from alertpull.timeutil import format_time

from .generated import Generated

ACCOUNT = "123456789012"
REGION = "us-east-1"
DETECTOR = "12abc34d567e8fa901bc2d34e56789f0"
BASE_TIME = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(minutes=1)
SEVERITIES = (2, 5.0, 8.0, 3.9, 7, 9.5, 4, 6.9, 8.9, 1.0, 10, 5)

Finding = dict[str, Any]


def finding_id(account: str, region: str, detector_id: str, index: int) -> str:
    seed = f"{account}/{region}/{detector_id}/{index}".encode()
    return hashlib.md5(seed, usedforsecurity=False).hexdigest()  # 32 hex chars, like GuardDuty


def make_finding(
    index: int,
    *,
    account: str = ACCOUNT,
    region: str = REGION,
    detector_id: str = DETECTOR,
    base_time: datetime = BASE_TIME,
    step: timedelta = STEP,
    kind: str | None = None,
    updated_at: datetime | None = None,
    created_at: datetime | None = None,
    severity: float | None = None,
    archived: bool = False,
    ident: str | None = None,
) -> Finding:
    """Finding number `index`: updatedAt = base_time + index * step unless given; its id is
    `ident` or else finding_id(account, region, detector_id, index)."""
    kind = kind or KINDS[index % len(KINDS)]
    updated = updated_at or base_time + index * step
    ident = ident or finding_id(account, region, detector_id, index)
    ctx = _Context(index, account, region)
    shape = _SHAPES[kind](ctx)
    count = 1 + index % 5
    return {
        "schemaVersion": "2.0",
        "accountId": account,
        "region": region,
        "partition": "aws",
        "id": ident,
        "arn": f"arn:aws:guardduty:{region}:{account}:detector/{detector_id}/finding/{ident}",
        "type": shape["type"],
        "resource": shape["resource"],
        "service": {
            "serviceName": "guardduty",
            "detectorId": detector_id,
            **shape["service"],
            "resourceRole": "TARGET",
            "additionalInfo": {"value": "{}", "type": "default"},
            "eventFirstSeen": format_time(updated - timedelta(hours=count)),
            "eventLastSeen": format_time(updated - timedelta(seconds=30)),
            "archived": archived,
            "count": count,
        },
        "severity": SEVERITIES[index % len(SEVERITIES)] if severity is None else severity,
        "createdAt": format_time(created_at or updated - timedelta(hours=count)),
        "updatedAt": format_time(updated),
        "title": shape["title"],
        "description": shape["description"],
    }


def make_findings(count: int, *, first: int = 0, **kwargs: Any) -> list[Finding]:
    """Findings number first .. first+count-1 (see make_finding for the keyword args)."""
    return [make_finding(index, **kwargs) for index in range(first, first + count)]


def generated_findings(count: int, *, account: str = ACCOUNT, region: str = REGION,
                       detector_id: str = DETECTOR, base_time: datetime = BASE_TIME,
                       step: timedelta = STEP) -> Generated[Finding]:
    """Findings 0 .. count-1 made when read (a bench's million), ascending in updatedAt.

    Each id is 32 hex digits, as GuardDuty's, the last 12 of them the index: GetFindings
    finds a finding from its id alone, with no map of every id.
    """

    def ident(index: int) -> str:
        return finding_id(account, region, detector_id, index)[:20] + f"{index:012x}"

    def make(index: int) -> Finding:
        return make_finding(index, account=account, region=region, detector_id=detector_id,
                            base_time=base_time, step=step, ident=ident(index))

    def index_of(finding: str) -> int | None:
        try:
            index = int(finding[20:], 16)
        except ValueError:
            return None
        return index if ident(index) == finding else None

    return Generated(make, count, "updatedAt", index_of=index_of)


class _Context:
    """Per-finding values the shapes share, all derived from the index."""

    def __init__(self, index: int, account: str, region: str) -> None:
        self.index = index
        self.account = account
        self.region = region
        self.remote_ip = f"198.51.100.{index % 250 + 1}"
        self.private_ip = f"10.0.{index % 200}.{index % 250 + 1}"
        self.instance_id = f"i-{index:017x}"
        self.domain = f"c2-{index}.example.net"
        self.access_key_id = f"ASIAEXAMPLE{index:09d}"
        self.user_name = f"svc-deploy-{index % 7}"

    def remote_ip_details(self) -> dict[str, Any]:
        return {
            "ipAddressV4": self.remote_ip,
            "organization": {
                "asn": "64496",
                "asnOrg": "Example Transit",
                "isp": "Example ISP",
                "org": "Example Hosting",
            },
            "country": {"countryCode": "NL", "countryName": "Netherlands"},
            "city": {"cityName": "Amsterdam"},
            "geoLocation": {"lat": 52.37, "lon": 4.89},
        }

    def instance_details(self) -> dict[str, Any]:
        return {
            "instanceId": self.instance_id,
            "instanceType": "m5.large",
            "launchTime": "2025-11-02T08:15:00.000Z",
            "platform": None,
            "productCodes": [],
            "iamInstanceProfile": {
                "arn": f"arn:aws:iam::{self.account}:instance-profile/app-server",
                "id": "AIPAEXAMPLEPROFILE01",
            },
            "networkInterfaces": [
                {
                    "networkInterfaceId": f"eni-{self.index:017x}",
                    "privateDnsName": f"ip-{self.private_ip.replace('.', '-')}.ec2.internal",
                    "privateIpAddress": self.private_ip,
                    "privateIpAddresses": [{"privateIpAddress": self.private_ip}],
                    "subnetId": "subnet-0a1b2c3d4e5f60718",
                    "vpcId": "vpc-0a1b2c3d4e5f60718",
                    "securityGroups": [{"groupName": "app", "groupId": "sg-0a1b2c3d4e5f60718"}],
                    "publicIp": f"203.0.113.{self.index % 250 + 1}",
                    "ipv6Addresses": [],
                }
            ],
            "tags": [
                {"key": "Name", "value": f"app-{self.index % 9}"},
                {"key": "env", "value": "prod"},
            ],
            "instanceState": "running",
            "availabilityZone": f"{self.region}a",
            "imageId": "ami-0abcdef1234567890",
            "imageDescription": "Amazon Linux 2023",
        }

    def access_key_details(self, user_type: str = "IAMUser") -> dict[str, Any]:
        return {
            "accessKeyId": self.access_key_id,
            "principalId": f"AIDAEXAMPLE{self.index:09d}",
            "userName": self.user_name,
            "userType": user_type,
        }

    def api_call(self, api: str, service_name: str) -> dict[str, Any]:
        return {
            "api": api,
            "serviceName": service_name,
            "callerType": "Remote IP",
            "remoteIpDetails": self.remote_ip_details(),
            "userAgent": "aws-cli/2.15.0 Python/3.11.6",
            "affectedResources": {},
        }


def _ec2_network(ctx: _Context) -> dict[str, Any]:
    return {
        "type": "Backdoor:EC2/C&CActivity.B",
        "title": f"EC2 instance {ctx.instance_id} is communicating with a command and control "
        "server.",
        "description": f"EC2 instance {ctx.instance_id} is communicating with {ctx.remote_ip}, "
        "a known command and control server.",
        "resource": {"resourceType": "Instance", "instanceDetails": ctx.instance_details()},
        "service": {
            "action": {
                "actionType": "NETWORK_CONNECTION",
                "networkConnectionAction": {
                    "connectionDirection": "OUTBOUND",
                    "protocol": "TCP",
                    "blocked": False,
                    "localPortDetails": {"port": 49152 + ctx.index % 1000, "portName": "Unknown"},
                    "remotePortDetails": {"port": 443, "portName": "HTTPS"},
                    "localIpDetails": {"ipAddressV4": ctx.private_ip},
                    "remoteIpDetails": ctx.remote_ip_details(),
                },
            }
        },
    }


def _s3_api(ctx: _Context) -> dict[str, Any]:
    bucket = f"acme-data-{ctx.index % 11}"
    call = ctx.api_call("GetObject", "s3.amazonaws.com")
    call["domainDetails"] = {"domain": ctx.domain}
    return {
        "type": "Exfiltration:S3/AnomalousBehavior",
        "title": f"Anomalous data access from S3 bucket {bucket}.",
        "description": f"An IAM entity invoked S3 GetObject on {bucket} in an unusual way.",
        "resource": {
            "resourceType": "S3Bucket",
            "accessKeyDetails": ctx.access_key_details(),
            "s3BucketDetails": [
                {
                    "arn": f"arn:aws:s3:::{bucket}",
                    "name": bucket,
                    "type": "Destination",
                    "createdAt": "2024-05-01T10:00:00.000Z",
                    "owner": {"id": "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"},
                    "tags": [{"key": "classification", "value": "confidential"}],
                    "defaultServerSideEncryption": {"encryptionType": "aws:kms"},
                }
            ],
        },
        "service": {"action": {"actionType": "AWS_API_CALL", "awsApiCallAction": call}},
    }


def _iam_access_key(ctx: _Context) -> dict[str, Any]:
    return {
        "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        "title": f"Credentials for instance role used from remote IP {ctx.remote_ip}.",
        "description": "Credentials created exclusively for an EC2 instance through an instance "
        f"launch role are being used from the external IP address {ctx.remote_ip}.",
        "resource": {
            "resourceType": "AccessKey",
            "accessKeyDetails": ctx.access_key_details("AssumedRole"),
        },
        "service": {
            "action": {
                "actionType": "AWS_API_CALL",
                "awsApiCallAction": ctx.api_call("ListBuckets", "s3.amazonaws.com"),
            }
        },
    }


def _eks_api(ctx: _Context) -> dict[str, Any]:
    cluster = f"prod-cluster-{ctx.index % 3}"
    return {
        "type": "Discovery:Kubernetes/TorIPCaller",
        "title": "Kubernetes API commonly used in Discovery tactics invoked from a Tor exit node.",
        "description": f"Kubernetes API commonly used in Discovery tactics was invoked on cluster "
        f"{cluster} from Tor exit node IP address {ctx.remote_ip}.",
        "resource": {
            "resourceType": "EKSCluster",
            "eksClusterDetails": {
                "name": cluster,
                "arn": f"arn:aws:eks:{ctx.region}:{ctx.account}:cluster/{cluster}",
                "vpcId": "vpc-0a1b2c3d4e5f60718",
                "status": "ACTIVE",
                "createdAt": 1735689600.0,
                "tags": [{"key": "team", "value": "platform"}],
            },
            "kubernetesDetails": {
                "kubernetesUserDetails": {
                    "username": f"dev-{ctx.index % 5}@example.com",
                    "uid": f"uid-{ctx.index:06d}",
                    "groups": ["system:authenticated"],
                }
            },
        },
        "service": {
            "action": {
                "actionType": "KUBERNETES_API_CALL",
                "kubernetesApiCallAction": {
                    "requestUri": "/api/v1/namespaces/kube-system/secrets",
                    "verb": "list",
                    "sourceIPs": [ctx.remote_ip],
                    "userAgent": "kubectl/v1.31.0",
                    "remoteIpDetails": ctx.remote_ip_details(),
                    "statusCode": 200,
                },
            }
        },
    }


def _dns(ctx: _Context) -> dict[str, Any]:
    return {
        "type": "Trojan:EC2/DNSDataExfiltration",
        "title": f"Data exfiltration through DNS queries from EC2 instance {ctx.instance_id}.",
        "description": f"EC2 instance {ctx.instance_id} is querying {ctx.domain} in a way that "
        "suggests data exfiltration through DNS.",
        "resource": {"resourceType": "Instance", "instanceDetails": ctx.instance_details()},
        "service": {
            "action": {
                "actionType": "DNS_REQUEST",
                "dnsRequestAction": {"domain": ctx.domain, "protocol": "UDP", "blocked": False},
            },
            "evidence": {
                "threatIntelligenceDetails": [
                    {"threatNames": ["DNSExfil"], "threatListName": "ProofPoint"}
                ]
            },
        },
    }


def _runtime(ctx: _Context) -> dict[str, Any]:
    sha = hashlib.sha256(f"process-{ctx.index}".encode()).hexdigest()
    return {
        "type": "PrivilegeEscalation:Runtime/DockerSocketAccessed",
        "title": "A container is communicating with a docker socket.",
        "description": "A process inside a container is communicating with the host's "
        "docker socket using a unix socket.",
        "resource": {
            "resourceType": "Container",
            "instanceDetails": ctx.instance_details(),
            "containerDetails": {
                "containerRuntime": "docker",
                "id": f"{ctx.index:012x}",
                "name": f"worker-{ctx.index % 4}",
                "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/worker:1.8.2",
            },
        },
        "service": {
            "featureName": "RuntimeMonitoring",
            "action": {},
            "runtimeDetails": {
                "process": {
                    "name": "curl",
                    "executablePath": "/usr/bin/curl",
                    "executableSha256": sha,
                    "pid": 2000 + ctx.index % 1000,
                    "user": "root",
                    "userId": 0,
                    "euid": 0,
                    "startTime": "2026-03-01T00:00:00.000Z",
                },
                "context": {"socketPath": "/var/run/docker.sock"},
            },
        },
    }


_SHAPES: dict[str, Callable[[_Context], dict[str, Any]]] = {
    "ec2_network": _ec2_network,
    "s3_api": _s3_api,
    "iam_access_key": _iam_access_key,
    "eks_api": _eks_api,
    "dns": _dns,
    "runtime": _runtime,
}
KINDS = tuple(_SHAPES)
