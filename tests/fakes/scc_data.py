"""Deterministic, realistic SCC v2 ListFindingsResult objects in the camelCase wire JSON.

Five shapes rotate by index: an Event Threat Detection IAM anomalous grant (access,
MITRE), an ETD cryptomining threat on a VM (indicator IPs, domains, signatures,
process hashes), a Security Health Analytics PUBLIC_BUCKET_ACL misconfiguration, a VM
Manager OS vulnerability (CVE, file hash) and a folder-level SHA ADMIN_SERVICE_ACCOUNT
finding. `name` is the org-level relative name; `canonicalName` uses the closest CRM
ancestor of the resource (a project number, or the folder), as SCC does. IPs are
documentation ranges, domains are example.net. `generated_results` is the bench's lazy form:
results made when read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from alertpull.timeutil import format_time

from .generated import Generated

ORG = "386193000800"
FOLDER = "710468670182"
LOCATION = "global"
BASE_TIME = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(minutes=1)
# (project number, project id) pairs the findings' resources live in.
PROJECTS = (("1089695574439", "payments-prod"), ("2207351118024", "data-lake"),
            ("3316080452961", "ci-runners"))
# Source id and display name of each detector.
ETD = ("6119898994322174789", "Event Threat Detection")
SHA = ("2673592633662526977", "Security Health Analytics")
VMM = ("9012845523018832711", "VM Manager")
SEVERITIES = ("HIGH", "CRITICAL", "MEDIUM", "LOW", "HIGH", "MEDIUM", "LOW")

Result = dict[str, Any]
Shape = Callable[["_Context"], dict[str, Any]]


def finding_id(index: int) -> str:
    return hashlib.md5(f"scc/{index}".encode(), usedforsecurity=False).hexdigest()


def make_result(
    index: int,
    *,
    base_time: datetime = BASE_TIME,
    step: timedelta = STEP,
    event_time: datetime | None = None,
    create_time: datetime | None = None,
    kind: str | None = None,
    location: str = LOCATION,
    severity: str | None = None,
    state: str = "ACTIVE",
    mute: str = "UNMUTED",
) -> Result:
    """Result number `index`: eventTime = base_time + index * step unless given.

    createTime is 7 minutes after eventTime by default: SCC records a finding after
    the event it describes (minutes for ETD, hours for some scanners).
    """
    kind = kind or KINDS[index % len(KINDS)]
    event = event_time or base_time + index * step
    ctx = _Context(index, location)
    shape = _SHAPES[kind](ctx)
    (source_id, source_name) = shape.pop("source")
    crm_ancestor = shape.pop("crm_ancestor", f"projects/{ctx.project_number}")
    relative = f"sources/{source_id}/locations/{location}/findings/{finding_id(index)}"
    resource = shape.pop("resource")
    finding = {
        "name": f"organizations/{ORG}/{relative}",
        "canonicalName": f"{crm_ancestor}/{relative}",
        "parent": f"organizations/{ORG}/sources/{source_id}/locations/{location}",
        "parentDisplayName": source_name,
        "resourceName": resource["name"],
        "state": state,
        "eventTime": format_time(event),
        "createTime": format_time(create_time or event + timedelta(minutes=7)),
        "severity": severity or SEVERITIES[index % len(SEVERITIES)],
        "mute": mute,
        "securityMarks": {
            "name": f"organizations/{ORG}/{relative}/securityMarks",
        },
        **shape,
    }
    return {"finding": finding, "resource": resource}


def make_results(count: int, *, first: int = 0, **kwargs: Any) -> list[Result]:
    """Results number first .. first+count-1 (see make_result for the keyword args)."""
    return [make_result(index, **kwargs) for index in range(first, first + count)]


def generated_results(count: int, *, base_time: datetime = BASE_TIME,
                      step: timedelta = STEP) -> Generated[Result]:
    """Results 0 .. count-1 made when read (a bench's million), ascending in eventTime.

    All are one organization's (ORG) in one location (LOCATION): SccFake relies on that to
    list them without looking at each one's name.
    """
    return Generated(lambda index: make_result(index, base_time=base_time, step=step), count,
                     "eventTime")


class _Context:
    """Per-finding values the shapes share, all derived from the index."""

    def __init__(self, index: int, location: str) -> None:
        self.index = index
        self.location = location
        self.project_number, self.project_id = PROJECTS[index % len(PROJECTS)]
        self.ip = f"203.0.113.{index % 250 + 1}"
        self.caller_ip = f"198.51.100.{index % 250 + 1}"
        self.domain = f"pool-{index % 40}.example.net"
        self.sha256 = hashlib.sha256(f"binary/{index}".encode()).hexdigest()
        self.principal = f"deployer-{index % 5}@{self.project_id}.iam.gserviceaccount.com"

    def gcp_metadata(self) -> dict[str, Any]:
        return {
            "project": f"//cloudresourcemanager.googleapis.com/projects/{self.project_number}",
            "projectDisplayName": self.project_id,
            "parent": f"//cloudresourcemanager.googleapis.com/projects/{self.project_number}",
            "parentDisplayName": self.project_id,
            "folders": [{
                "resourceFolder": f"//cloudresourcemanager.googleapis.com/folders/{FOLDER}",
                "resourceFolderDisplayName": "prod",
            }],
            "organization": f"organizations/{ORG}",
        }

    def resource(self, name: str, display_name: str, kind: str, service: str,
                 location: str) -> dict[str, Any]:
        return {
            "name": name,
            "displayName": display_name,
            "type": kind,
            "cloudProvider": "GOOGLE_CLOUD_PLATFORM",
            "service": service,
            "location": location,
            "gcpMetadata": self.gcp_metadata(),
        }


def _iam_anomalous_grant(ctx: _Context) -> dict[str, Any]:
    project = f"//cloudresourcemanager.googleapis.com/projects/{ctx.project_number}"
    return {
        "source": ETD,
        "category": "Persistence: IAM Anomalous Grant",
        "findingClass": "THREAT",
        "description": (
            "A principal granted a sensitive IAM role to a member outside the organization."
        ),
        "sourceProperties": {
            "detectionCategory": {"ruleName": "iam_anomalous_grant",
                                  "subRuleName": "external_member_added_to_policy"},
            "evidence": [{"sourceLogId": {"insertId": f"log-{ctx.index:08d}"}}],
        },
        "access": {
            "principalEmail": ctx.principal,
            "callerIp": ctx.caller_ip,
            "callerIpGeo": {"regionCode": "NL"},
            "userAgent": "google-cloud-sdk gcloud/512.0.0",
            "serviceName": "cloudresourcemanager.googleapis.com",
            "methodName": "SetIamPolicy",
            "principalSubject": f"serviceAccount:{ctx.principal}",
        },
        "iamBindings": [{"action": "ADD", "role": "roles/owner",
                         "member": f"user:outsider-{ctx.index % 9}@example.net"}],
        "mitreAttack": {
            "primaryTactic": "PERSISTENCE",
            "primaryTechniques": ["ACCOUNT_MANIPULATION"],
            "additionalTactics": ["PRIVILEGE_ESCALATION"],
            "additionalTechniques": ["VALID_ACCOUNTS"],
            "version": "8",
        },
        "resource": ctx.resource(project, ctx.project_id,
                                 "google.cloud.resourcemanager.Project",
                                 "cloudresourcemanager.googleapis.com", "global"),
    }


def _cryptomining(ctx: _Context) -> dict[str, Any]:
    zone = "us-central1-a"
    instance = (f"//compute.googleapis.com/projects/{ctx.project_id}/zones/{zone}/instances/"
                f"{5289438569693667937 + ctx.index}")
    return {
        "source": ETD,
        "category": "Execution: Cryptocurrency Mining Combined Detection",
        "findingClass": "THREAT",
        "description": "A VM ran a known cryptocurrency miner and connected to a mining pool.",
        "indicator": {
            "ipAddresses": [ctx.ip],
            "domains": [ctx.domain],
            "signatures": [
                {"memoryHashSignature": {
                    "binaryFamily": "XMRig",
                    "detections": [{"binary": "linux-x86-64_xmrig_6.15.2",
                                    "percentPagesMatched": 0.78}],
                }, "signatureType": "SIGNATURE_TYPE_PROCESS"},
                {"yaraRuleSignature": {"yaraRule": "YARA_RULE9"},
                 "signatureType": "SIGNATURE_TYPE_FILE"},
            ],
        },
        "processes": [{
            "name": "xmrig",
            "binary": {"path": "/tmp/.x/xmrig", "size": "8412160", "sha256": ctx.sha256},
            "args": ["--donate-level=1", f"-o {ctx.domain}:3333"],
            "pid": str(4000 + ctx.index),
        }],
        "connections": [{"destinationIp": ctx.ip, "destinationPort": 3333,
                         "sourceIp": "10.128.0.7", "sourcePort": 41000 + ctx.index % 1000,
                         "protocol": "TCP"}],
        "mitreAttack": {"primaryTactic": "IMPACT",
                        "primaryTechniques": ["RESOURCE_HIJACKING"], "version": "8"},
        "resource": ctx.resource(instance, f"worker-{ctx.index % 12}",
                                 "google.compute.Instance", "compute.googleapis.com",
                                 zone),
    }


def _public_bucket(ctx: _Context) -> dict[str, Any]:
    bucket = f"{ctx.project_id}-exports-{ctx.index % 17}"
    return {
        "source": SHA,
        "category": "PUBLIC_BUCKET_ACL",
        "findingClass": "MISCONFIGURATION",
        "externalUri": f"https://console.cloud.google.com/storage/browser/{bucket}",
        "description": "A Cloud Storage bucket is readable by allUsers.",
        "nextSteps": "Remove allUsers and allAuthenticatedUsers from the bucket's IAM policy.",
        "sourceProperties": {
            "ReactivationCount": 0.0,
            "ScannerName": "STORAGE_SCANNER",
            "ExceptionInstructions": "Add the security mark \"allow_public_bucket_acl\".",
        },
        "compliances": [{"standard": "cis", "version": "1.3", "ids": ["5.1"]}],
        "resource": ctx.resource(f"//storage.googleapis.com/{bucket}", bucket,
                                 "google.cloud.storage.Bucket", "storage.googleapis.com",
                                 "us"),
    }


def _os_vulnerability(ctx: _Context) -> dict[str, Any]:
    zone = "europe-west1-b"
    instance = (f"//compute.googleapis.com/projects/{ctx.project_id}/zones/{zone}/instances/"
                f"{7788100000000000000 + ctx.index}")
    cve = f"CVE-2025-{20000 + ctx.index % 500}"
    return {
        "source": VMM,
        "category": "OS_VULNERABILITY",
        "findingClass": "VULNERABILITY",
        "description": f"{cve}: a package installed on the VM has a known vulnerability.",
        "vulnerability": {
            "cve": {"id": cve, "cvssv3": {"baseScore": 7.8}, "upstreamFixAvailable": True},
            "offendingPackage": {"packageName": "openssl", "packageVersion": "3.0.2-0ubuntu1"},
        },
        "files": [{"path": "/usr/lib/x86_64-linux-gnu/libssl.so.3", "size": "667864",
                   "sha256": ctx.sha256}],
        "resource": ctx.resource(instance, f"build-{ctx.index % 6}",
                                 "google.compute.Instance", "compute.googleapis.com", zone),
    }


def _admin_service_account(ctx: _Context) -> dict[str, Any]:
    folder = f"//cloudresourcemanager.googleapis.com/folders/{FOLDER}"
    return {
        "source": SHA,
        "crm_ancestor": f"folders/{FOLDER}",  # a folder IAM policy: folder-level only
        "category": "ADMIN_SERVICE_ACCOUNT",
        "findingClass": "MISCONFIGURATION",
        "description": "A service account holds an admin role on a folder.",
        "iamBindings": [{"action": "ADD", "role": "roles/resourcemanager.folderAdmin",
                         "member": f"serviceAccount:{ctx.principal}"}],
        "resource": {
            "name": folder,
            "displayName": "prod",
            "type": "google.cloud.resourcemanager.Folder",
            "cloudProvider": "GOOGLE_CLOUD_PLATFORM",
            "service": "cloudresourcemanager.googleapis.com",
            "location": "global",
            "gcpMetadata": {"organization": f"organizations/{ORG}"},
        },
    }


_SHAPES: dict[str, Shape] = {
    "iam_grant": _iam_anomalous_grant,
    "cryptomining": _cryptomining,
    "public_bucket": _public_bucket,
    "os_vulnerability": _os_vulnerability,
    "admin_service_account": _admin_service_account,
}
KINDS = tuple(_SHAPES)
