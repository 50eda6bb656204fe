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
from pathlib import Path

import structlog

from hevcq.errors import RetryableError, WriteConflict
from hevcq.metadata import META_ATTEMPT
from hevcq.objects import ObjectInfo, ObjectStore
from hevcq.worker.lease import LeaseKeeper

log = structlog.get_logger()

COMMIT_ROUNDS = 3  # compare-and-swap tries of an output write under one lease

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
