"""API uploads: ids, keys, the presigned POST policy and the per-owner upload records.

An upload goes to ``TODO/<ulid>/<filename>`` like any other source, so the farm treats it
the same way. The server also writes a small record under ``uploads/<owner hash>/<ulid>.json``
(outside ``TODO/``, so it raises no event): listing a caller's uploads is one prefix
listing, and a record outside the caller's prefix simply does not exist for them.

While an upload is in flight (issued, and not yet settled by every pool) a copy of its
record also sits under ``uploads/open/<owner hash>/<ulid>-<bytes>.json``, ``bytes`` being
the most its presigned POST accepts: an owner's uploads in flight, and their bytes, are
one listing, and the raw-deletion sweep reads only uploads in flight.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from ulid import ULID

from hevcq.errors import PermanentError
from hevcq.keys import TODO_PREFIX, relative_key
from hevcq.metadata import META_OWNER, META_UPLOAD_ID, chosen_pools_metadata
from hevcq.objects import ObjectStore
from hevcq.printable import BIDI_CONTROLS, CONTROL_CATEGORIES

UPLOADS_PREFIX = "uploads/"
OPEN_PREFIX = f"{UPLOADS_PREFIX}open/"
# The newest-first index: an empty object per upload, named by its id with each Crockford
# digit flipped (0 <-> Z), so S3's ascending listing gives the newest first and a page is
# one listing of page-size keys after the cursor, however many uploads the owner has.
NEWEST_PREFIX = f"{UPLOADS_PREFIX}newest/"
# Written once an owner's records from before the index are in it; '~' sorts after ids.
INDEXED_MARK = "~indexed"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_FLIP = str.maketrans(CROCKFORD, CROCKFORD[::-1])
# Characters that show nothing, so that "invoice\u200b.mp4" reads as "invoice.mp4": zero
# width space, word joiner and the invisible operators, byte order mark, soft hyphen,
# Mongolian vowel separator, the Hangul fillers. The zero width joiner and non-joiner are
# allowed: they join emoji and shape Arabic and Indic scripts.
INVISIBLE = frozenset(
    "\u00ad\u115f\u1160\u180e\u200b\u2060\u2061\u2062\u2063\u2064\u3164\ufeff\uffa0"
)
# S3 replaces "${filename}" in a presigned POST's key with the name of the file sent, and
# boto3 then signs a key *prefix* instead of the key: one ticket would write any number
# of objects under any names.
S3_PLACEHOLDER = "${"


class UploadRecord(BaseModel):
    """What the server remembers of an upload it issued."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    owner: str
    filename: str
    key: str
    created_at: datetime
    max_bytes: int | None = None  # the presigned POST's size limit (records since quotas)
    expires_at: datetime | None = None  # when that POST stops being accepted
    # The pools chosen for the upload; None (records from before pools were chosen): all.
    pools: tuple[str, ...] | None = None


class RecordStore(ObjectStore, Protocol):
    """The bucket as the API keeps its records (``S3Store``; ``tests.fakes.FakeStore``)."""

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None: ...
    def get_bytes(self, key: str) -> bytes | None: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def list_page(self, prefix: str, *, start_after: str | None, max_keys: int) -> list[str]: ...
    def presign_get(self, key: str, ttl_s: int) -> str: ...


class Signer(RecordStore, Protocol):
    """A record store that also presigns uploads (``S3Store``)."""

    def presign_post(
        self, key: str, fields: dict[str, str], conditions: list[Any], ttl_s: int
    ) -> tuple[str, dict[str, str]]: ...


@dataclass(frozen=True)
class OpenUpload:
    """An upload in flight as its marker's key tells: no read needed."""

    marker: str
    id: str
    max_bytes: int


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


def _owner_hash(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


def owner_prefix(owner: str) -> str:
    """The records folder of one owner; hashed so any owner string makes a safe key."""
    return f"{UPLOADS_PREFIX}{_owner_hash(owner)}/"


def open_prefix(owner: str) -> str:
    """The folder of one owner's uploads in flight."""
    return f"{OPEN_PREFIX}{_owner_hash(owner)}/"


def open_key(owner: str, upload_id: str, max_bytes: int) -> str:
    """The marker of an upload in flight; its name carries the bytes it may take."""
    return f"{open_prefix(owner)}{upload_id}-{max_bytes}.json"


def parse_open_key(key: str) -> OpenUpload | None:
    """An upload in flight from its marker's key; None for a key of another shape."""
    upload_id, _, size = key.rsplit("/", 1)[-1].removesuffix(".json").partition("-")
    if not is_upload_id(upload_id) or not size.isdigit():
        return None
    return OpenUpload(key, upload_id, int(size))


def newest_first(upload_id: str) -> str:
    """An upload id with its digits flipped, which S3 sorts newest first (and back)."""
    return upload_id.upper().translate(_FLIP)


def newest_prefix(owner: str) -> str:
    """The folder of one owner's newest-first index."""
    return f"{NEWEST_PREFIX}{_owner_hash(owner)}/"


def newest_key(owner: str, upload_id: str) -> str:
    """An upload's entry in its owner's newest-first index."""
    return f"{newest_prefix(owner)}{newest_first(upload_id)}"


def record_key(owner: str, upload_id: str) -> str:
    """Where an owner's upload record lives."""
    return f"{owner_prefix(owner)}{upload_id}.json"


def check_name(name: str) -> None:
    """Refuse a file name that is blank, carries control, bidi or invisible characters, or
    holds S3's ``${filename}`` placeholder."""
    if any(ch in BIDI_CONTROLS for ch in name):
        raise PermanentError("file name refused: no bidi control characters (U+202E and kin)")
    if any(unicodedata.category(ch) in CONTROL_CATEGORIES for ch in name):
        raise PermanentError("file name refused: no control characters or line breaks")
    if any(ch in INVISIBLE for ch in name):
        raise PermanentError("file name refused: no invisible characters (U+200B and kin)")
    if S3_PLACEHOLDER in name:
        raise PermanentError("file name refused: no '${', which S3 reads as a placeholder")
    if not name.strip():
        raise PermanentError("file name refused: blank (it needs a visible character)")


def upload_key(upload_id: str, filename: str) -> str:
    """``TODO/<id>/<name>``: only the file name's last part is kept."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    check_name(name)
    return f"{TODO_PREFIX}{upload_id}/{relative_key(name)}"


def post_conditions(
    owner: str, upload_id: str, max_bytes: int, pools: tuple[str, ...] | None = None
) -> tuple[dict[str, str], list[Any]]:
    """The form fields and policy conditions of an upload's presigned POST.

    S3 refuses a POST whose body is outside ``content-length-range`` or whose fields differ
    from the signed ones, so the owner recorded in the metadata is the one we signed, and
    so are the pools chosen for it (every other pool's workers skip the upload).
    """
    fields = {
        f"x-amz-meta-{META_OWNER}": owner,
        f"x-amz-meta-{META_UPLOAD_ID}": upload_id,
    }
    if pools is not None:
        fields |= {f"x-amz-meta-{k}": v for k, v in chosen_pools_metadata(pools).items()}
    # boto3 adds the bucket and the key conditions itself.
    conditions: list[Any] = [
        *({name: value} for name, value in fields.items()),
        ["content-length-range", 1, max_bytes],
    ]
    return fields, conditions


def presigned_upload(
    store: Signer, record: UploadRecord, max_bytes: int, ttl_s: int
) -> tuple[str, dict[str, str], datetime]:
    """Store the record and its in-flight marker, and presign the POST: (url, fields, expiry)."""
    expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
    record = record.model_copy(update={"max_bytes": max_bytes, "expires_at": expires})
    fields, conditions = post_conditions(record.owner, record.id, max_bytes, record.pools)
    body = record.model_dump_json().encode()
    store.put_bytes(record_key(record.owner, record.id), body, "application/json")
    store.put_bytes(newest_key(record.owner, record.id), b"", "text/plain")
    store.put_bytes(open_key(record.owner, record.id, max_bytes), body, "application/json")
    url, signed = store.presign_post(record.key, fields, conditions, ttl_s)
    return url, signed, expires


def get_record(store: RecordStore, owner: str, upload_id: str) -> UploadRecord | None:
    """The owner's record of an upload, or None (another owner's upload is None too)."""
    if not is_upload_id(upload_id):
        return None
    body = store.get_bytes(record_key(owner, upload_id))
    return None if body is None else UploadRecord.model_validate_json(body)


def page_of_records(
    store: RecordStore, owner: str, limit: int, cursor: str | None = None
) -> tuple[list[UploadRecord], str | None]:
    """A page of the owner's uploads, newest first, older than ``cursor`` (an upload id),
    and the cursor of the next page (None after the last).

    Ids are ULIDs: their order is the order of creation, so a page never shifts when new
    uploads arrive. One listing of ``limit + 1`` index keys after the cursor, then a read
    of each record on the page: the same few requests for ten uploads or a million.
    """
    index_earlier_records(store, owner)
    prefix = newest_prefix(owner)
    after = prefix + newest_first(cursor) if cursor else None
    keys = store.list_page(prefix, start_after=after, max_keys=limit + 1)
    ids = [i for k in keys if is_upload_id(i := newest_first(k.removeprefix(prefix)))]
    page = ids[:limit]
    found = (get_record(store, owner, i) for i in page)
    records = [r for r in found if r is not None]
    return records, page[-1] if len(ids) > limit else None


def index_earlier_records(store: RecordStore, owner: str) -> None:
    """Put the owner's records from before the newest-first index into it, once.

    Idempotent, so requests at once may both do it; uploads made meanwhile write their own
    entry. The mark is written last: a run cut short (a request's time limit, with very
    many records) goes on where it stopped at the next request, writing only what is
    missing.
    """
    mark = newest_prefix(owner) + INDEXED_MARK
    if store.get_bytes(mark) is not None:
        return
    have = set(store.list_keys(newest_prefix(owner)))
    for key in store.list_keys(owner_prefix(owner)):
        upload_id = _record_id(key)
        if is_upload_id(upload_id) and newest_key(owner, upload_id) not in have:
            store.put_bytes(newest_key(owner, upload_id), b"", "text/plain")
    store.put_bytes(mark, b"", "text/plain")


def _record_id(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(".json")


def in_flight(store: RecordStore, owner: str) -> list[OpenUpload]:
    """The owner's uploads in flight, from one listing."""
    found = (parse_open_key(k) for k in store.list_keys(open_prefix(owner)))
    return [o for o in found if o is not None]


def all_in_flight(store: RecordStore) -> list[OpenUpload]:
    """Every owner's uploads in flight (the sweep), from one listing."""
    found = (parse_open_key(k) for k in store.list_keys(OPEN_PREFIX))
    return [o for o in found if o is not None]


def open_record(store: RecordStore, upload: OpenUpload) -> UploadRecord | None:
    """The record an in-flight marker holds; None once it is gone."""
    body = store.get_bytes(upload.marker)
    return None if body is None else UploadRecord.model_validate_json(body)
