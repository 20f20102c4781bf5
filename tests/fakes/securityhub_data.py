"""Deterministic Security Hub findings in both wire formats: OCSF (GetFindingsV2) and ASFF
(GetFindings, the API of what AWS now calls Security Hub CSPM).

Two kinds rotate by index: a GuardDuty threat finding (OCSF Detection Finding, class 2004)
and a Security Hub CSPM control finding (OCSF Compliance Finding, class 2003). The OCSF
ones are valid OCSF 1.8.0 for their class, as Security Hub serves them; `touch` makes the
next version of a finding (a workflow change, a suppression, an archived record), moving
its changed-at as Security Hub does.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from alertpull.timeutil import format_time, to_epoch_ms

ACCOUNT = "123456789012"
REGION = "us-east-1"
BASE_TIME = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(minutes=1)
KINDS = ("guardduty", "control")
PRODUCTS = {"guardduty": "GuardDuty", "control": "Security Hub CSPM"}
# OCSF severity_id -> caption; Security Hub adds 6 Fatal.
SEVERITY_CAPTIONS = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical",
                     6: "Fatal"}
STATUS_CAPTIONS = {1: "New", 2: "In Progress", 3: "Suppressed", 4: "Resolved", 5: "Archived",
                   6: "Deleted"}
ASFF_LABELS = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")

Finding = dict[str, Any]


def _hex(*parts: object) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()


def _ocsf_time(name: str, moment: datetime) -> dict[str, Any]:
    return {name: to_epoch_ms(moment), f"{name}_dt": format_time(moment)}


def make_ocsf_finding(index: int, *, account: str = ACCOUNT, region: str = REGION,
                      base_time: datetime = BASE_TIME, step: timedelta = STEP,
                      kind: str | None = None, severity_id: int | None = None) -> Finding:
    """OCSF finding number `index`: modified at base_time + index * step, created an hour
    before."""
    kind = kind or KINDS[index % len(KINDS)]
    modified = base_time + index * step
    created = modified - timedelta(hours=1)
    severity = severity_id or 1 + index % 6
    product = PRODUCTS[kind]
    if kind == "guardduty":
        uid = (f"arn:aws:guardduty:{region}:{account}:detector/{_hex(account, region)}"
               f"/finding/{_hex(account, region, index)}")
        body: Finding = {
            "class_uid": 2004, "class_name": "Detection Finding",
            "finding_info": {"uid": uid, "title": f"EC2 instance i-{index:017x} is querying a "
                             "domain name associated with a known command and control server",
                             "desc": "An EC2 instance is querying a known C&C domain.",
                             "types": ["Backdoor:EC2/C&CActivity.B!DNS"],
                             **_ocsf_time("created_time", created),
                             **_ocsf_time("modified_time", modified),
                             **_ocsf_time("first_seen_time", created),
                             **_ocsf_time("last_seen_time", modified)},
            "resources": [{"type": "AWS::EC2::Instance", "region": region,
                           "uid": f"arn:aws:ec2:{region}:{account}:instance/i-{index:017x}",
                           "cloud_partition": "aws",
                           "owner": {"account": {"uid": account, "type_id": 10,
                                                 "type": "AWS Account"}}}],
            "observables": [{"type_id": 1, "type": "Hostname",
                             "value": f"c2-{index}.example.net"}],
        }
        product_uid = f"arn:aws:securityhub:{region}::productv2/aws/guardduty"
    else:
        control = f"S3.{1 + index % 9}"
        uid = f"arn:aws:securityhub:{region}:{account}:security-control/{control}/finding/" \
              f"{_hex('control', account, region, index)}"
        bucket = f"acme-logs-{index}"
        body = {
            "class_uid": 2003, "class_name": "Compliance Finding",
            "finding_info": {"uid": uid, "title": "S3 general purpose buckets should block "
                             "public access", "types": ["Posture Management"],
                             **_ocsf_time("created_time", created),
                             **_ocsf_time("modified_time", modified)},
            "compliance": {"control": control, "status": "Fail", "status_id": 3,
                           "standards": ["arn:aws:securityhub:::standards/aws-foundational-"
                                         "security-best-practices/v/1.0.0"]},
            "resources": [{"type": "AWS::S3::Bucket", "region": region, "name": bucket,
                           "uid": f"arn:aws:s3:::{bucket}", "cloud_partition": "aws"}],
        }
        product_uid = f"arn:aws:securityhub:{region}::productv2/aws/securityhub"
    class_uid = body["class_uid"]
    return {
        **body,
        "category_uid": 2, "category_name": "Findings",
        "activity_id": 1, "activity_name": "Create",
        "type_uid": class_uid * 100 + 1, "type_name": f"{body['class_name']}: Create",
        "severity_id": severity, "severity": SEVERITY_CAPTIONS[severity],
        "status_id": 1, "status": "New",
        **_ocsf_time("time", modified),
        "cloud": {"provider": "AWS", "region": region,
                  "account": {"uid": account, "type_id": 10, "type": "AWS Account"}},
        "metadata": {"version": "1.6.0", "uid": uid, "profiles": ["cloud", "datetime"],
                     "product": {"name": product, "uid": product_uid, "vendor_name": "AWS"}},
        "vendor_attributes": {"severity_id": severity, "severity": SEVERITY_CAPTIONS[severity]},
    }


def make_ocsf_findings(count: int, *, first: int = 0, **kwargs: Any) -> list[Finding]:
    return [make_ocsf_finding(i, **kwargs) for i in range(first, first + count)]


def touch_ocsf(finding: Finding, at: datetime, *, status_id: int | None = None) -> None:
    """The next version of an OCSF finding: modified at `at`, with a new status."""
    finding["finding_info"].update(_ocsf_time("modified_time", at))
    finding.update(_ocsf_time("time", at), activity_id=2, activity_name="Update",
                   type_uid=finding["class_uid"] * 100 + 2,
                   type_name=f"{finding['class_name']}: Update")
    if status_id is not None:
        finding.update(status_id=status_id, status=STATUS_CAPTIONS[status_id])


def make_asff_finding(index: int, *, account: str = ACCOUNT, region: str = REGION,
                      base_time: datetime = BASE_TIME, step: timedelta = STEP,
                      kind: str | None = None) -> Finding:
    """ASFF finding number `index`: updated at base_time + index * step."""
    kind = kind or KINDS[index % len(KINDS)]
    updated = base_time + index * step
    created = updated - timedelta(hours=1)
    label = ASFF_LABELS[index % len(ASFF_LABELS)]
    if kind == "guardduty":
        ident = (f"arn:aws:guardduty:{region}:{account}:detector/{_hex(account, region)}"
                 f"/finding/{_hex(account, region, index)}")
        product = {"ProductArn": f"arn:aws:securityhub:{region}::product/aws/guardduty",
                   "ProductName": "GuardDuty", "GeneratorId": f"arn:aws:guardduty:{region}"
                   f":{account}:detector/{_hex(account, region)}",
                   "Types": ["TTPs/Command and Control/Backdoor:EC2-C&CActivity.B!DNS"],
                   "Title": f"EC2 instance i-{index:017x} is querying a C&C domain",
                   "Description": "An EC2 instance is querying a known C&C domain."}
        resources = [{"Type": "AwsEc2Instance", "Partition": "aws", "Region": region,
                      "Id": f"arn:aws:ec2:{region}:{account}:instance/i-{index:017x}",
                      "Details": {"AwsEc2Instance": {"Type": "m5.large"}}}]
    else:
        control = f"S3.{1 + index % 9}"
        ident = (f"arn:aws:securityhub:{region}:{account}:security-control/{control}/finding/"
                 f"{_hex('control', account, region, index)}")
        product = {"ProductArn": f"arn:aws:securityhub:{region}::product/aws/securityhub",
                   "ProductName": "Security Hub", "GeneratorId": f"security-control/{control}",
                   "Types": ["Software and Configuration Checks/Industry and Regulatory "
                             "Standards"],
                   "Title": "S3 general purpose buckets should block public access",
                   "Description": "This control checks whether public access is blocked.",
                   "Compliance": {"Status": "FAILED", "SecurityControlId": control}}
        resources = [{"Type": "AwsS3Bucket", "Partition": "aws", "Region": region,
                      "Id": f"arn:aws:s3:::acme-logs-{index}"}]
    return {
        "SchemaVersion": "2018-10-08", "Id": ident, "AwsAccountId": account, "Region": region,
        "CompanyName": "AWS", **product,
        "FirstObservedAt": format_time(created), "LastObservedAt": format_time(updated),
        "CreatedAt": format_time(created), "UpdatedAt": format_time(updated),
        "Severity": {"Label": label, "Original": label},
        "Resources": resources,
        "WorkflowState": "NEW", "Workflow": {"Status": "NEW"}, "RecordState": "ACTIVE",
        "ProductFields": {"aws/securityhub/FindingId": ident},
    }


def make_asff_findings(count: int, *, first: int = 0, **kwargs: Any) -> list[Finding]:
    return [make_asff_finding(i, **kwargs) for i in range(first, first + count)]


def touch_asff(finding: Finding, at: datetime, *, workflow: str | None = None,
               record_state: str | None = None) -> None:
    """The next version of an ASFF finding: updated at `at`, its workflow or record state
    changed."""
    finding["UpdatedAt"] = format_time(at)
    if workflow is not None:
        finding["Workflow"] = {"Status": workflow}
        finding["WorkflowState"] = workflow
    if record_state is not None:
        finding["RecordState"] = record_state
