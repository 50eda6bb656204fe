"""A small IAM evaluation for tests: which action and resource an AWS call needs, and
whether Allow statements grant it. moto does not evaluate IAM, so a test that wants to know
whether a role suffices records the calls its code makes and asks this module.

Only what the API's calls need: S3 (bucket and object operations), SQS, DynamoDB. No
conditions, no Deny, no NotAction; a call this module cannot map is reported, not passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

# S3 operations whose IAM action is not "s3:<operation>".
S3_ACTIONS = {
    "HeadBucket": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
}
# Calls that need no permission of their own.
FREE = {("sts", "GetCallerIdentity")}


@dataclass(frozen=True)
class Need:
    """One permission a call needs."""

    action: str
    resource: str


@dataclass(frozen=True)
class Account:
    """Where the farm lives, to build ARNs."""

    account_id: str
    region: str

    def queue_arn(self, url_or_name: str) -> str:
        """The ARN of a queue given by URL or name."""
        name = url_or_name.rstrip("/").rsplit("/", 1)[-1]
        return f"arn:aws:sqs:{self.region}:{self.account_id}:{name}"

    def table_arn(self, name: str) -> str:
        """The ARN of a DynamoDB table."""
        return f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{name}"


def need(service: str, operation: str, params: Mapping[str, Any], where: Account) -> Need | None:
    """The permission a recorded call needs; None when it needs none."""
    if (service, operation) in FREE:
        return None
    if service == "s3":
        action = S3_ACTIONS.get(operation, f"s3:{operation}")
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        return Need(action, f"{bucket}/{params['Key']}" if "Key" in params else bucket)
    if service == "sqs":
        if operation == "StartMessageMoveTask":
            return Need("sqs:StartMessageMoveTask", str(params["SourceArn"]))
        queue = params.get("QueueUrl") or params["QueueName"]
        return Need(f"sqs:{operation}", where.queue_arn(str(queue)))
    if service == "dynamodb":
        return Need(f"dynamodb:{operation}", where.table_arn(str(params["TableName"])))
    raise AssertionError(f"no IAM mapping for {service}:{operation}")


def allows(statements: Iterable[Mapping[str, Any]], wanted: Need) -> bool:
    """True when some Allow statement names the action and matches the resource."""
    for st in statements:
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        if st["Effect"] != "Allow" or "Condition" in st:
            continue
        if wanted.action in actions and any(fnmatchcase(wanted.resource, r) for r in resources):
            return True
    return False
