"""The upload side of ingest: what a scan says to send goes to ``TODO/`` with our metadata."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from hevcq.errors import HevcqError
from hevcq.keys import keeps_source_ext, naming_metadata, shares_stem, todo_key
from hevcq.library.catalog import Catalog, Version
from hevcq.library.scan import FileEntry, ScanReport
from hevcq.library.walk import fingerprint, os_problem
from hevcq.media.model import Skip
from hevcq.metadata import (
    META_HASH,
    META_LIBRARY,
    META_MTIME,
    META_REL_PATH,
    META_SIZE,
    META_TARGET_VMAF,
    chosen_pools_metadata,
    client_settled_metadata,
    client_skips_metadata,
    target_metadata,
)
from hevcq.objects import ObjectStore

log = structlog.get_logger()


# Files uploaded at once; each upload also splits into parts (aws.s3.TRANSFER concurrency).
UPLOAD_WORKERS = 4


def to_upload(report: ScanReport, *, fresh_farm: bool = False) -> list[FileEntry]:
    """Entries to upload; a fresh (embedded) farm also needs those an earlier farm received."""
    wanted = ("send", "uploaded") if fresh_farm else ("send",)
    return [e for e in report.entries if e.status in wanted]


def upload_metadata(
    entry: FileEntry, mtime_ns: int, library: str, target_vmaf: float | None = None
) -> dict[str, str]:
    """The object metadata of an upload (``target_vmaf``: the run's ``--target-vmaf``)."""
    return {
        META_REL_PATH: entry.rel,
        META_SIZE: str(entry.size),
        META_MTIME: str(mtime_ns),
        META_HASH: entry.fingerprint,
        META_LIBRARY: library,
        **naming_metadata(entry.with_source_ext, entry.shares_stem),
        # The pools this run chose: the workers of every other pool skip the file at once.
        **(chosen_pools_metadata(entry.decisions) if entry.decisions else {}),
        # The workers of these pools re-check from a few ranges instead of downloading.
        **client_skips_metadata(p for p, d in entry.decisions.items() if isinstance(d, Skip)),
        # These pools settled the file in an earlier run, or a person did (a rollback):
        # their workers skip at once.
        **client_settled_metadata(
            [p for p in entry.pools_to_encode if p not in entry.pools_pending] + sorted(entry.kept)
        ),
        **target_metadata(target_vmaf),
    }


class UploadProgress(Protocol):
    """Something that shows upload progress (a bar on a terminal, log lines otherwise)."""

    def begin(self, files: int, total_bytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, up: Uploaded) -> None: ...
    def end(self) -> None: ...


class NoProgress:
    """Shows nothing."""

    def begin(self, files: int, total_bytes: int) -> None:
        """Nothing."""

    def advance(self, nbytes: int) -> None:
        """Nothing."""

    def file_done(self, up: Uploaded) -> None:
        """Nothing."""

    def end(self) -> None:
        """Nothing."""


@dataclass(frozen=True)
class Uploaded:
    """One upload attempt: ``sent`` is False when the object already held this content.

    ``content_hash`` is the whole file's hash (``fingerprint(full=True)``), taken just
    before it was sent, with ``version`` (size, mtime, inode) at that moment; None when
    nothing was sent or the file changed while it was read.
    """

    entry: FileEntry
    key: str
    sent: bool
    error: str | None = None
    content_hash: str | None = None
    version: Version | None = None

    @property
    def ok(self) -> bool:
        """True when the object now holds the file's content."""
        return self.error is None


def upload_one(
    target: ObjectStore,
    root: Path,
    entry: FileEntry,
    library: str,
    advance: Callable[[int], None],
    *,
    target_vmaf: float | None = None,
) -> Uploaded:
    """Upload one file unless its object already holds the same content for the same
    target."""
    key = entry.upload_key or todo_key(entry.rel)
    path = root.joinpath(*entry.rel.split("/"))
    try:
        st = path.stat()
        if st.st_size != entry.size:
            return Uploaded(entry, key, False, "changed since the scan; run ingest again")
        existing = target.head(key)
        if existing is not None and _same_upload(existing.metadata, entry, target_vmaf):
            log.info("upload_skipped_same_content", key=key)
            advance(entry.size)
            return Uploaded(entry, key, sent=False)
        version = (st.st_size, st.st_mtime_ns, st.st_ino)
        # One whole read beside the upload's (mostly from the page cache it leaves warm):
        # what lets a later run tell a touched file from an edited one, and keep its
        # outputs instead of encoding it again (scan, ``_Scan.recheck_touched``).
        content = fingerprint(path, full=True)
        metadata = upload_metadata(entry, st.st_mtime_ns, library, target_vmaf)
        target.upload(path, key, metadata, advance)
        after = path.stat()
    except OSError as exc:
        return Uploaded(entry, key, False, os_problem(entry.rel, exc).reason)
    except HevcqError as exc:
        return Uploaded(entry, key, False, f"upload failed: {exc}")
    log.info("uploaded", key=key, bytes=entry.size)
    unchanged = (after.st_size, after.st_mtime_ns, after.st_ino) == version
    return Uploaded(
        entry, key, sent=True, content_hash=content if unchanged else None, version=version
    )


def _same_upload(metadata: dict[str, str], entry: FileEntry, target_vmaf: float | None) -> bool:
    """The object holds this content, named by the same rule (a sibling may have come),
    for the same VMAF target (the workers read it from the object)."""
    return (
        metadata.get(META_HASH) == entry.fingerprint
        and keeps_source_ext(metadata) == entry.with_source_ext
        and shares_stem(metadata) == entry.shares_stem
        and metadata.get(META_TARGET_VMAF) == target_metadata(target_vmaf).get(META_TARGET_VMAF)
    )


def upload_all(
    target: ObjectStore,
    root: Path,
    entries: list[FileEntry],
    library: str,
    *,
    workers: int = UPLOAD_WORKERS,
    progress: UploadProgress | None = None,
    on_done: Callable[[Uploaded], None] | None = None,
    target_vmaf: float | None = None,
) -> list[Uploaded]:
    """Upload in parallel; ``on_done`` runs in the calling thread (the catalog's)."""
    shown = progress or NoProgress()
    shown.begin(len(entries), sum(e.size for e in entries))
    out: list[Uploaded] = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="upload") as ex:
            futures = [
                ex.submit(
                    upload_one, target, root, e, library, shown.advance, target_vmaf=target_vmaf
                )
                for e in entries
            ]
            for fut in as_completed(futures):
                up = fut.result()
                out.append(up)
                shown.file_done(up)
                if on_done:
                    on_done(up)
    finally:
        shown.end()
    return sorted(out, key=lambda u: u.entry.rel)


def recorder(state: Catalog, *, farm_keeps: bool = True) -> Callable[[Uploaded], None]:
    """An ``on_done`` that remembers in the library's catalog what a successful upload
    read of the file (its content hash), and the upload itself when the farm keeps it
    (``farm_keeps``: not an embedded farm, whose uploads die with it; remembering them
    would stop a later ingest to a real farm from sending those files)."""

    def record(up: Uploaded) -> None:
        if not up.ok:
            return
        if up.content_hash is not None and up.version is not None:
            state.record_content_hash(up.entry.rel, up.version, up.content_hash)
        if farm_keeps:
            state.record_upload(up.entry.rel, up.key, up.entry.fingerprint)

    return record


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """'1500', '700M', '50G', '1.5T' (binary units, optional trailing B or iB) -> bytes."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        raise ValueError(f"not a size: {text!r}") from None
    if value < 0:
        raise ValueError(f"not a size: {text!r}")
    return int(value * _UNITS[unit])
