"""The API's uploads as the farm sees them: a video's state per pool, pages of an owner's
videos, the uploads in flight and the quota on them, and settling those the farm has
finished with (the raw policy's sweep).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from hevcq.bundle import MASTER, POSTER, attempt_prefix, is_bundle_key
from hevcq.errors import HevcqError, PermanentError
from hevcq.ledger import FINISHED, LedgerItem, LedgerReader, State
from hevcq.metadata import META_PARTS
from hevcq.web import uploads
from hevcq.web.models import PoolOutcome, VideoList, VideoStatus
from hevcq.web.play import PlayPolicy, sign
from hevcq.web.raw import in_flight, settle_raw

DOWNLOAD_URL_TTL_S = 3600
DELETE_WHEN_SETTLED = "delete-when-settled"
# A POST that started before its policy expired may still be arriving: an upload never
# made counts in flight this long after that.
POST_GRACE = timedelta(minutes=15)


class QuotaExceeded(HevcqError):
    """An owner has as many uploads, or bytes, in flight as the quota allows."""


@dataclass(frozen=True)
class UploadQuota:
    """Per owner: uploads in flight, and the bytes their presigned POSTs may take."""

    uploads: int = 20
    bytes: int = 100 * 1024**3


def _pool_outcome(
    item: LedgerItem | None,
    source_seen: bool,
    link: str | None,
    play: tuple[str | None, str | None] = (None, None),
) -> PoolOutcome:
    if item is None:
        return PoolOutcome(pool="", state="waiting" if source_seen else "awaiting upload")
    state = item.state.value
    if state not in ("queued", "running", "done", "skipped", "failed"):
        state = "queued"
    return PoolOutcome(
        pool=item.pool,
        state=state,
        reason=item.reason or None,
        output_bytes=item.output_bytes,
        download_url=link if state == "done" else None,
        play_url=play[0] if state == "done" else None,
        poster_url=play[1] if state == "done" else None,
    )


def video_state(outcomes: list[PoolOutcome]) -> str:
    """One word for a video: failed beats processing beats done."""
    states = {o.state for o in outcomes}
    if "failed" in states:
        return "failed"
    if states <= {"done", "skipped"}:
        return "done"
    if states == {"awaiting upload"}:
        return "awaiting upload"
    return "processing"


@dataclass(frozen=True)
class UploadSide:
    """What an upload's status and settlement read: bucket, ledger, pools, raw policy."""

    store: uploads.RecordStore
    ledger: LedgerReader
    pools: tuple[str, ...]
    raw_policy: str = "keep"
    play: PlayPolicy = field(default_factory=PlayPolicy)
    api_base: str = "/"  # where this API is reached: play links start here


def play_links(side: UploadSide, item: LedgerItem) -> tuple[str | None, str | None]:
    """A done output's play URL and poster URL (``hevcq.web.play``): a file plays from its
    own link, a ladder from its master, by a public base URL or a signed play link."""
    key = item.output_key or ""
    base = side.play.public_base_url
    if not is_bundle_key(key):
        poster = file_poster(side, key)
        if base:
            root = base.rstrip("/")
            return f"{root}/{quote(key)}", f"{root}/{quote(poster)}" if poster else None
        url = side.store.presign_get(key, DOWNLOAD_URL_TTL_S)
        return url, side.store.presign_get(poster, DOWNLOAD_URL_TTL_S) if poster else None
    if base:
        master = side.store.head(key)
        token = master.metadata.get(META_PARTS, "") if master else ""
        poster = f"{attempt_prefix(key, token)}{POSTER}" if token else None
        root = base.rstrip("/")
        return f"{root}/{quote(key)}", f"{root}/{quote(poster)}" if poster else None
    grant = sign(side.play, item)
    root = f"{side.api_base.rstrip('/')}/play/{grant}"
    return f"{root}/{MASTER}", f"{root}/{POSTER}"


def file_poster(side: UploadSide, key: str) -> str | None:
    """The key of the poster a file output was committed with (None: it has none). The
    token comes from the bucket, so it is checked before it names a key."""
    head = side.store.head(key)
    token = head.metadata.get(META_PARTS, "") if head else ""
    if not token:
        return None
    try:
        return f"{attempt_prefix(key, token)}{POSTER}"
    except PermanentError:
        return None


def pools_of(side: UploadSide, record: uploads.UploadRecord) -> tuple[str, ...]:
    """The pools an upload was made for: those it chose, else (older records) every pool."""
    return side.pools if record.pools is None else record.pools


def video_status(side: UploadSide, record: uploads.UploadRecord) -> VideoStatus:
    """An upload's state per pool, with download links for done pools."""
    store, ledger = side.store, side.ledger
    pools = pools_of(side, record)
    source = store.head(record.key)
    raw_deleted = False
    if source is not None and side.raw_policy == DELETE_WHEN_SETTLED:
        raw_deleted = settle_raw(store, ledger, record.key, pools).settled
    items = {p: ledger.get(record.key, p) for p in sorted(pools)}
    seen = source is not None or any(items.values())
    outcomes = []
    for pool, item in items.items():
        link: str | None = None
        play: tuple[str | None, str | None] = (None, None)
        if item and item.state is State.DONE and item.output_key:
            # A ladder is many objects: its one link is the play link, not a download.
            bundle = is_bundle_key(item.output_key)
            link = None if bundle else store.presign_get(item.output_key, DOWNLOAD_URL_TTL_S)
            play = play_links(side, item)
        outcome = _pool_outcome(item, seen, link, play)
        outcomes.append(outcome.model_copy(update={"pool": pool}))
    return VideoStatus(
        id=record.id,
        filename=record.filename,
        key=record.key,
        created_at=record.created_at,
        state=video_state(outcomes),
        raw_deleted=raw_deleted or (source is None and any(items.values())),
        pools=outcomes,
    )


def video_page(side: UploadSide, owner: str, limit: int, cursor: str | None) -> VideoList:
    """A page of the owner's uploads: reads for that page's records only."""
    records, after = uploads.page_of_records(side.store, owner, limit, cursor)
    return VideoList(videos=[video_status(side, r) for r in records], next_cursor=after)


def settle_upload(side: UploadSide, upload: uploads.OpenUpload, now: datetime) -> bool:
    """Drop the marker of an upload no longer in flight, applying the raw policy on the way;
    True while it is still in flight."""
    store, ledger = side.store, side.ledger
    record = uploads.open_record(store, upload)
    if record is None:
        return False
    source = store.head(record.key)
    pools = pools_of(side, record)
    items = {p: ledger.get(record.key, p) for p in pools}
    finished = all(i is not None and i.state in FINISHED for i in items.values())
    if source is not None and finished and side.raw_policy == DELETE_WHEN_SETTLED:
        settle_raw(store, ledger, record.key, pools)
    expired = record.expires_at is None or now > record.expires_at + POST_GRACE
    if in_flight(source, items, expired):
        return True
    store.delete(upload.marker)
    return False


def sweep_in_flight(side: UploadSide, now: datetime) -> int:
    """Settle every owner's uploads in flight (and no others); how many stopped flying."""
    return sum(not settle_upload(side, u, now) for u in uploads.all_in_flight(side.store))


def check_quota(side: UploadSide, owner: str, wanted: int, quota: UploadQuota) -> None:
    """Raise QuotaExceeded unless the owner may start an upload of ``wanted`` bytes more.

    One listing when under the quota; at the quota, the owner's uploads in flight are
    settled first (those the farm has finished with stop counting).
    """
    flying = uploads.in_flight(side.store, owner)
    if _fits(flying, wanted, quota):
        return
    now = datetime.now(UTC)
    flying = [u for u in flying if settle_upload(side, u, now)]
    if not _fits(flying, wanted, quota):
        raise QuotaExceeded(_over(flying, wanted, quota))


def _fits(flying: list[uploads.OpenUpload], wanted: int, quota: UploadQuota) -> bool:
    held = sum(u.max_bytes for u in flying)
    return len(flying) < quota.uploads and held + wanted <= quota.bytes


def _over(flying: list[uploads.OpenUpload], wanted: int, quota: UploadQuota) -> str:
    if len(flying) >= quota.uploads:
        return (
            f"{len(flying)} uploads in flight, the most allowed (HEVCQ_UPLOADS_IN_FLIGHT); "
            "try again once the farm has finished some"
        )
    held = sum(u.max_bytes for u in flying)
    return (
        f"{held} bytes in flight and this upload may take {wanted}, over the "
        f"{quota.bytes} allowed (HEVCQ_UPLOAD_BYTES_IN_FLIGHT); send a smaller size or "
        "try again once the farm has finished some"
    )
