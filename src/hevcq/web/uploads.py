"""API uploads: ids, keys, the presigned POST policy and the per-owner upload records.

An upload goes to ``TODO/<ulid>/<filename>`` like any other source, so the farm treats it
the same way. The server also writes a small record under ``uploads/<owner hash>/<ulid>.json``
(outside ``TODO/``, so it raises no event): listing a caller's uploads is one prefix
listing, and a record outside the caller's prefix simply does not exist for them.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict
from ulid import ULID

from hevcq.aws.clients import error_code
from hevcq.keys import TODO_PREFIX, relative_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

UPLOADS_PREFIX = "uploads/"
META_OWNER = "hevcq-owner"
META_UPLOAD_ID = "hevcq-upload-id"


class UploadRecord(BaseModel):
    """What the server remembers of an upload it issued."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    owner: str
    filename: str
    key: str
    created_at: datetime


def new_upload_id() -> str:
    """A sortable unique id (ULID: time first, then randomness)."""
    return str(ULID())


def is_upload_id(value: str) -> bool:
    """True for a well-formed ULID."""
    try:
        ULID.from_str(value)
    except ValueError:
        return False
    return True


def owner_prefix(owner: str) -> str:
    """The records folder of one owner; hashed so any owner string makes a safe key."""
    return f"{UPLOADS_PREFIX}{hashlib.sha256(owner.encode()).hexdigest()[:32]}/"


def record_key(owner: str, upload_id: str) -> str:
    """Where an owner's upload record lives."""
    return f"{owner_prefix(owner)}{upload_id}.json"


def upload_key(upload_id: str, filename: str) -> str:
    """``TODO/<id>/<name>``: only the file name's last part is kept."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return f"{TODO_PREFIX}{upload_id}/{relative_key(name)}"


def post_conditions(owner: str, upload_id: str, max_bytes: int) -> tuple[dict[str, str], list[Any]]:
    """The form fields and policy conditions of an upload's presigned POST.

    S3 refuses a POST whose body is outside ``content-length-range`` or whose fields differ
    from the signed ones, so the owner recorded in the metadata is the one we signed.
    """
    fields = {
        f"x-amz-meta-{META_OWNER}": owner,
        f"x-amz-meta-{META_UPLOAD_ID}": upload_id,
    }
    # boto3 adds the bucket and the key conditions itself.
    conditions: list[Any] = [
        *({name: value} for name, value in fields.items()),
        ["content-length-range", 1, max_bytes],
    ]
    return fields, conditions


def presigned_upload(
    s3: S3Client, bucket: str, record: UploadRecord, max_bytes: int, ttl_s: int
) -> tuple[str, dict[str, str], datetime]:
    """Store the record and presign the POST: (url, form fields, expiry)."""
    fields, conditions = post_conditions(record.owner, record.id, max_bytes)
    s3.put_object(
        Bucket=bucket,
        Key=record_key(record.owner, record.id),
        Body=record.model_dump_json().encode(),
        ContentType="application/json",
    )
    post = _signer(s3).generate_presigned_post(
        bucket, record.key, Fields=fields, Conditions=conditions, ExpiresIn=ttl_s
    )
    expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
    return str(post["url"]), {k: str(v) for k, v in post["fields"].items()}, expires


def _signer(s3: S3Client) -> S3Client:
    """A client like ``s3`` that signs with SigV4 (what S3 requires of new buckets)."""
    import boto3  # noqa: PLC0415 - only presigning needs its own client

    config = s3.meta.config.merge(Config(signature_version="s3v4"))
    return boto3.session.Session().client(
        "s3", region_name=s3.meta.region_name, endpoint_url=s3.meta.endpoint_url, config=config
    )


def get_record(s3: S3Client, bucket: str, owner: str, upload_id: str) -> UploadRecord | None:
    """The owner's record of an upload, or None (another owner's upload is None too)."""
    if not is_upload_id(upload_id):
        return None
    try:
        body = s3.get_object(Bucket=bucket, Key=record_key(owner, upload_id))["Body"].read()
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return UploadRecord.model_validate_json(body)


def list_records(s3: S3Client, bucket: str, owner: str, limit: int = 200) -> list[UploadRecord]:
    """The owner's most recent uploads, newest first."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=owner_prefix(owner)
    ):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    ids = sorted((k.rsplit("/", 1)[-1].removesuffix(".json") for k in keys), reverse=True)
    found = (get_record(s3, bucket, owner, i) for i in ids[:limit])
    return [r for r in found if r is not None]


def all_records(s3: S3Client, bucket: str) -> list[UploadRecord]:
    """Every owner's records (the raw-deletion sweep)."""
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=UPLOADS_PREFIX):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            out.append(UploadRecord.model_validate_json(body))
    return out
