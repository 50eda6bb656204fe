"""Before a download: a pool the client already decided to skip re-checks from a few ranges.

The client probes every file when it scans, so it knows which pools will skip it (too
small for a rendition, already HEVC). It names those pools in the object's metadata. A
worker of such a pool probes the object through ranged reads (the container header, the
index and one frame: usually a few MiB) and decides again with its own pool settings;
only when that decision is also a skip does it skip without downloading. Any doubt (no
such metadata, a store that cannot read ranges, a probe that fails or reads too much)
falls back to the download as before.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Mapping

import structlog

from hevcq.errors import HevcqError
from hevcq.limits import MiB
from hevcq.media.decide import decide
from hevcq.media.model import Decision, Skip
from hevcq.media.probe import probe_stream
from hevcq.objects import ObjectStore
from hevcq.pools import Pool

log = structlog.get_logger()

META_CLIENT_SKIPS = "hevcq-client-skips"  # pools the client decided to skip, comma separated
BLOCK = MiB
CACHED_BLOCKS = 8
# A probe that needs more than this is not cheap any more: download and probe as usual.
MAX_PROBE_BYTES = 64 * BLOCK


class ProbeTooCostly(HevcqError):
    """The re-check read more than MAX_PROBE_BYTES."""


def client_skips_metadata(decisions: Mapping[str, Decision]) -> dict[str, str]:
    """Upload metadata naming the pools whose decision is a skip (empty when none)."""
    skips = sorted(pool for pool, d in decisions.items() if isinstance(d, Skip))
    return {META_CLIENT_SKIPS: ",".join(skips)} if skips else {}


def client_skipped(metadata: Mapping[str, str], pool: str) -> bool:
    """Whether the uploading client decided that ``pool`` skips this object."""
    return pool in metadata.get(META_CLIENT_SKIPS, "").split(",")


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


def confirmed_skip(store: ObjectStore, key: str, etag: str | None, pool: Pool) -> Skip | None:
    """The pool's own skip decision from a ranged probe, when the client said skip."""
    head = store.head(key)
    if head is None or not client_skipped(head.metadata, pool.name):
        return None
    ranged = RangedFile(store, key, head.size, etag)
    try:
        info = probe_stream(ranged, head.size)
    except (HevcqError, OSError, ValueError) as exc:
        log.info("precheck_fell_back", reason=str(exc), bytes_read=ranged.bytes_read)
        return None
    decision = decide(info, pool, key)
    skip = isinstance(decision, Skip)
    log.info("precheck_done", skip=skip, bytes_read=ranged.bytes_read, size=head.size)
    return decision if isinstance(decision, Skip) else None
