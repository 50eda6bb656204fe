"""Before a download: a pool the client already decided to skip re-checks from a few ranges.

The client probes every file when it scans, so it knows which pools will skip it (too
small for a rendition, already HEVC). It names those pools in the object's metadata. A
worker of such a pool probes the object through ranged reads (the container header, the
index and one frame: usually a few MiB) and decides again with its own pool settings;
only when that decision is also a skip does it skip without downloading. Any doubt (no
such metadata, a store that cannot read ranges, a probe that fails or reads too much)
falls back to the download as before.

A client re-sending a file also names the pools that settled it in an earlier run
(``hevcq-client-settled``: the client holds their outcome under the same pool settings and
will not read a new one). Every pool's queue hears of every upload; those pools skip the
job at once, without a probe, so a re-run spends CPU only on the pools it waits for. The
word is the uploader's own about its own upload, and it is read from the exact version the
job names.
"""

from __future__ import annotations

import io
from collections import OrderedDict

import structlog

from hevcq.errors import HevcqError
from hevcq.limits import MiB
from hevcq.media.decide import decide
from hevcq.media.model import KEYFRAME_SIZED_CODECS, MediaInfo, Skip
from hevcq.media.probe import probe_stream
from hevcq.metadata import client_chose, client_holds, client_skipped
from hevcq.objects import ObjectInfo, ObjectStore
from hevcq.pools import Pool

log = structlog.get_logger()

SETTLED_EARLIER = "settled in an earlier run: the uploading client holds this pool's outcome"
NOT_CHOSEN = "not chosen: the upload names other pools"
BLOCK = MiB
CACHED_BLOCKS = 8
# A probe that needs more than this is not cheap any more: download and probe as usual.
MAX_PROBE_BYTES = 64 * BLOCK


class ProbeTooCostly(HevcqError):
    """The re-check read more than MAX_PROBE_BYTES."""


class RangedFile(io.RawIOBase):
    """An object read through ranged reads of whole blocks, a few blocks cached."""

    def __init__(self, store: ObjectStore, key: str, size: int, etag: str | None) -> None:
        super().__init__()
        self._store, self._key, self._size, self._etag = store, key, size, etag
        self._pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self.bytes_read = 0

    def readable(self) -> bool:
        """Yes."""
        return True

    def seekable(self) -> bool:
        """Yes."""
        return True

    def tell(self) -> int:
        """The read position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the read position."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the current position (0 at the end)."""
        if self._pos >= self._size:
            return 0
        index, offset = divmod(self._pos, BLOCK)
        block = self._block(index)
        n = min(len(buffer), len(block) - offset)
        buffer[:n] = block[offset : offset + n]
        self._pos += n
        return n

    def _block(self, index: int) -> bytes:
        if index in self._blocks:
            self._blocks.move_to_end(index)
            return self._blocks[index]
        start = index * BLOCK
        if self.bytes_read >= MAX_PROBE_BYTES:
            raise ProbeTooCostly(f"probing {self._key} needs more than {MAX_PROBE_BYTES} bytes")
        data = self._store.read_range(self._key, start, min(BLOCK, self._size - start), self._etag)
        self.bytes_read += len(data)
        self._blocks[index] = data
        if len(self._blocks) > CACHED_BLOCKS:
            self._blocks.popitem(last=False)
        return data


def confirmed_skip(
    store: ObjectStore, key: str, etag: str | None, pool: Pool, *, head: ObjectInfo | None = None
) -> Skip | None:
    """A skip without a download: the pool's own decision from a ranged probe when the client
    said skip, or at once when the client settled this pool in an earlier run. ``head`` is
    the object as the worker found it before claiming the job (else it is read here)."""
    if head is None or head.etag != etag:
        head = store.head(key)
    if head is None or (etag is not None and head.etag != etag):
        return None  # another version: its own job decides
    if not client_chose(head.metadata, pool.name):
        log.info("precheck_done", skip=True, bytes_read=0, size=head.size, chosen=False)
        return Skip(NOT_CHOSEN)
    if client_holds(head.metadata, pool.name):
        log.info("precheck_done", skip=True, bytes_read=0, size=head.size, settled_earlier=True)
        return Skip(SETTLED_EARLIER)
    if not client_skipped(head.metadata, pool.name):
        return None
    return _ranged_skip(store, key, etag, head.size, pool)


def _ranged_skip(
    store: ObjectStore, key: str, etag: str | None, size: int, pool: Pool
) -> Skip | None:
    """The pool's own skip, decided from a ranged probe; None: download and decide."""
    info = ranged_probe(store, key, etag, size)
    if info is None:
        return None
    if info.main_video is not None and info.main_video.codec in KEYFRAME_SIZED_CODECS:
        # Its header states the first keyframe's size only; the size a plan is made at
        # is read from every keyframe (media/picshape.py), after the download.
        log.info("precheck_done", skip=False, size=size, sized_by_keyframes=True)
        return None
    decision = decide(info, pool, key)
    log.info("precheck_done", skip=isinstance(decision, Skip), size=size)
    return decision if isinstance(decision, Skip) else None


def ranged_probe(store: ObjectStore, key: str, etag: str | None, size: int) -> MediaInfo | None:
    """The object's media info from ranged reads of that version; None when that fails or
    would read more than MAX_PROBE_BYTES (the caller then downloads, or does without)."""
    ranged = RangedFile(store, key, size, etag)
    try:
        info = probe_stream(ranged, size)
    except (HevcqError, OSError, ValueError) as exc:
        log.info("ranged_probe_failed", reason=str(exc), bytes_read=ranged.bytes_read)
        return None
    log.info("ranged_probe_done", bytes_read=ranged.bytes_read, size=size)
    return info
