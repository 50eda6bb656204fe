"""API uploads: ids, keys, the presigned POST policy and the per-owner upload records.

An upload goes to ``TODO/<ulid>/<filename>`` like any other source, so the farm treats it
the same way. The server also writes a small record under ``uploads/<owner hash>/<ulid>.json``
(outside ``TODO/``, so it raises no event): listing a caller's uploads is one prefix
listing, and a record outside the caller's prefix simply does not exist for them.
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from ulid import ULID

from hevcq.errors import PermanentError
from hevcq.keys import TODO_PREFIX, relative_key

if TYPE_CHECKING:
    from hevcq.aws.s3 import S3Store

UPLOADS_PREFIX = "uploads/"
META_OWNER = "hevcq-owner"
META_UPLOAD_ID = "hevcq-upload-id"
# Unicode's bidirectional controls (UAX #9): they reorder what a name shows, so that
# "invoice\u202egpj.exe" reads as "invoiceexe.jpg".
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Controls (C0, DEL, C1) and the line and paragraph separators: a name is one line of text.
CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


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


def check_name(name: str) -> None:
    """Refuse a file name that is blank or carries control or bidi characters."""
    if any(ch in BIDI_CONTROLS for ch in name):
        raise PermanentError("file name refused: no bidi control characters (U+202E and kin)")
    if any(unicodedata.category(ch) in CONTROL_CATEGORIES for ch in name):
        raise PermanentError("file name refused: no control characters or line breaks")
    if not name.strip():
        raise PermanentError("file name refused: blank (it needs a visible character)")


def upload_key(upload_id: str, filename: str) -> str:
    """``TODO/<id>/<name>``: only the file name's last part is kept."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    check_name(name)
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
    store: S3Store, record: UploadRecord, max_bytes: int, ttl_s: int
) -> tuple[str, dict[str, str], datetime]:
    """Store the record and presign the POST: (url, form fields, expiry)."""
    fields, conditions = post_conditions(record.owner, record.id, max_bytes)
    store.put_bytes(
        record_key(record.owner, record.id), record.model_dump_json().encode(), "application/json"
    )
    url, signed = store.presign_post(record.key, fields, conditions, ttl_s)
    return url, signed, datetime.now(UTC) + timedelta(seconds=ttl_s)


def get_record(store: S3Store, owner: str, upload_id: str) -> UploadRecord | None:
    """The owner's record of an upload, or None (another owner's upload is None too)."""
    if not is_upload_id(upload_id):
        return None
    body = store.get_bytes(record_key(owner, upload_id))
    return None if body is None else UploadRecord.model_validate_json(body)


def list_records(store: S3Store, owner: str, limit: int = 200) -> list[UploadRecord]:
    """The owner's most recent uploads, newest first."""
    keys = store.list_keys(owner_prefix(owner))
    ids = sorted((k.rsplit("/", 1)[-1].removesuffix(".json") for k in keys), reverse=True)
    found = (get_record(store, owner, i) for i in ids[:limit])
    return [r for r in found if r is not None]


def all_records(store: S3Store) -> list[UploadRecord]:
    """Every owner's records (the raw-deletion sweep)."""
    out = []
    for key in store.list_keys(UPLOADS_PREFIX):
        body = store.get_bytes(key)
        if body is not None:
            out.append(UploadRecord.model_validate_json(body))
    return out
