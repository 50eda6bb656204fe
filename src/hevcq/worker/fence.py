"""The fenced write of an output: only the lease holder makes its bytes the current output.

Every write is a compare-and-swap on the object's ETag (S3 conditional writes), expecting
the output the ledger recorded as committed when the job was claimed. A writer that lost
its lease meanwhile (a paused worker resumed) read a stale expectation and is refused,
unless nobody has written since; then its bytes are not the ledger's record, readers ignore
them, and the next holder overwrites them. An encoded file (``put``) and a server-side copy
of another pool's identical encode (``copy``) go through the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

from hevcq.bundle import (
    MANIFEST,
    MASTER,
    Manifest,
    Part,
    attempt_prefix,
    attempt_token,
    check_part_path,
    parts_prefix,
    relative_master,
    sweepable,
)
from hevcq.errors import RetryableError, WriteConflict
from hevcq.metadata import (
    META_ATTEMPT,
    META_MANIFEST_ETAG,
    META_PARTS,
    META_SOURCE_ETAG,
    META_SOURCE_KEY,
)
from hevcq.objects import ObjectInfo, ObjectStore
from hevcq.worker.lease import LeaseKeeper

log = structlog.get_logger()

COMMIT_ROUNDS = 3  # compare-and-swap tries of an output write under one lease
PART_UPLOADS = 8  # a bundle's parts uploaded at once (boto3's clients are thread-safe)

# One conditional write: (metadata, the ETag expected at the key or None) -> what was written.
Write = Callable[[dict[str, str], str | None], ObjectInfo]


class FencedWriter:
    """Writes outputs under one lease; every output names its writer (``hevcq-attempt``)."""

    def __init__(self, store: ObjectStore, keeper: LeaseKeeper, worker_id: str) -> None:
        self._store = store
        self._keeper = keeper
        self.worker_id = worker_id
        # Fixed at the claim: a retried request's own earlier write is told from others'.
        self.attempt = f"{worker_id}/{keeper.lease.rvn}"

    def put(self, src: Path, key: str, metadata: dict[str, str]) -> ObjectInfo:
        """Upload an encoded file as the output at ``key``."""
        return self._write(key, metadata, lambda m, e: self._store.put_if(src, key, m, expect=e))

    def copy(self, source: str, source_etag: str, key: str, metadata: dict[str, str]) -> ObjectInfo:
        """Copy ``source`` (exactly ``source_etag``) as the output at ``key``, server-side."""
        return self._write(
            key,
            metadata,
            lambda m, e: self._store.copy_if(source, source_etag, key, m, expect=e),
        )

    def put_bundle(self, folder: Path, key: str, metadata: dict[str, str]) -> ObjectInfo:
        """Make the output in ``folder`` (a ladder: ``MASTER`` and its parts) the output at
        ``key``: every part under this attempt's own prefix, its manifest, then the master
        at ``key`` by the fenced compare-and-swap (``hevcq.bundle``).

        When the master could not be written, this attempt's parts are removed unless the
        master names them after all (a write that went through before its answer was lost).
        """
        token = attempt_token(self.attempt)
        master = folder.parent / f"{folder.name}.{MASTER}"
        master.write_text(relative_master((folder / MASTER).read_text(), key, token))
        return self.put_with_parts(master, folder, key, metadata)

    def put_with_parts(
        self, src: Path, folder: Path, key: str, metadata: dict[str, str]
    ) -> ObjectInfo:
        """Upload ``src`` as the output at ``key`` with the files in ``folder`` as its parts
        (a ladder's segments, a file's poster): the parts and their manifest first under
        this attempt's own prefix, then ``src`` by the fenced compare-and-swap, its metadata
        naming the attempt and the manifest. The same clean-up as ``put_bundle``."""
        token = attempt_token(self.attempt)
        self._keeper.check()  # parts of an attempt that is already over are never written
        try:
            staged = stage_bundle(self._store, folder, key, metadata, token)
            meta = {**metadata, META_PARTS: token, META_MANIFEST_ETAG: staged.etag}
            return self._write(key, meta, lambda m, e: self._store.put_if(src, key, m, expect=e))
        except BaseException:
            abandon_parts(self._store, key, token)
            raise

    def _write(self, key: str, metadata: dict[str, str], write: Write) -> ObjectInfo:
        meta = {**metadata, META_ATTEMPT: self.attempt}
        expect = self._keeper.lease.output_etag
        for _ in range(COMMIT_ROUNDS):
            self._keeper.check()  # still ours, right before the write
            try:
                return write(meta, expect)
            except WriteConflict:
                current = self._store.head(key)
                if current is not None and current.metadata.get(META_ATTEMPT) == self.attempt:
                    return current  # our own earlier try went through
                found = current.etag if current else None
                log.warning("output_not_as_recorded", output_key=key, found=found, expected=expect)
                expect = found
        raise RetryableError(f"{key} keeps changing under the lease holder")


def stage_bundle(
    store: ObjectStore, folder: Path, key: str, metadata: dict[str, str], token: str
) -> ObjectInfo:
    """Upload every file in ``folder`` under the attempt's prefix, then its manifest;
    returns the manifest as written. Nothing a reader sees changes: no other attempt
    writes under this prefix, and no master names it yet."""
    prefix = attempt_prefix(key, token)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    rels = [check_part_path(f.relative_to(folder).as_posix()) for f in files]

    def put(pair: tuple[Path, str]) -> Part:
        f, rel = pair
        info = store.upload(f, prefix + rel, metadata)
        return Part(path=rel, etag=info.etag, size=info.size)

    with ThreadPoolExecutor(PART_UPLOADS, thread_name_prefix="part") as pool:
        parts = tuple(pool.map(put, zip(files, rels, strict=True)))
    manifest = Manifest(
        token=token,
        source_key=metadata.get(META_SOURCE_KEY, ""),
        source_etag=metadata.get(META_SOURCE_ETAG, ""),
        parts=parts,
    )
    path = folder.parent / f"{folder.name}.{MANIFEST}"
    path.write_text(manifest.model_dump_json(indent=1))
    return store.upload(path, prefix + MANIFEST, metadata)


def abandon_parts(store: ObjectStore, key: str, token: str) -> None:
    """Remove one attempt's parts, unless the master at ``key`` names them (best effort:
    what stays is swept by the next commit of this output)."""
    try:
        current = store.head(key)
        if current is not None and current.metadata.get(META_PARTS) == token:
            return
        doomed = [k for k in store.list_keys(attempt_prefix(key, token))]
        for k in doomed:
            store.delete(k)
        log.info("bundle_parts_abandoned", output_key=key, token=token, parts=len(doomed))
    except Exception as exc:
        log.warning("bundle_parts_left", output_key=key, token=token, error=str(exc)[:300])


def sweep_parts(store: ObjectStore, key: str, keep: str | None) -> int:
    """Remove every part under the output's parts prefix not of the attempt ``keep``
    (None: all of them); returns how many went. The caller holds the job's lease."""
    doomed = sweepable(store.list_keys(parts_prefix(key)), key, keep)
    for k in doomed:
        store.delete(k)
    if doomed:
        log.info("bundle_parts_swept", output_key=key, kept=keep, parts=len(doomed))
    return len(doomed)
