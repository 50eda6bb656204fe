"""Bringing results home: verify each output against its source, then place or swap it in."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import TypeVar

import structlog

from hevcq.bundle import attempt_prefix, is_bundle_key
from hevcq.errors import HevcqError, PermanentError, SupersededJob
from hevcq.keys import output_place, output_relative, source_relative
from hevcq.ledger import LedgerItem, LedgerReader, State, finished_version
from hevcq.library.bundles import (
    bundle_folder,
    download_parts,
    file_md5,
    place_folder,
    read_manifest,
)
from hevcq.library.catalog import Catalog
from hevcq.library.quarantine import (
    DEFAULT_QUARANTINE,
    LargerThanOriginal,
    OutputFolderUnusable,
    QuarantineEntry,
    ReplaceRefused,
    dated_like,
    final_path,
    list_quarantine,
    place_output,
    recover,
    swap_in,
    verify_replacement,
)
from hevcq.library.results import Action, Fetched, Inbox, drain
from hevcq.library.summary import human_bytes
from hevcq.library.walk import ScanOptions, fingerprint, mark_outputs, walk
from hevcq.media.decide import KEPT_ORIGINAL
from hevcq.messages import JobResult
from hevcq.metadata import META_HASH, META_LIBRARY, META_PARTS, client_settled
from hevcq.objects import ObjectInfo, ObjectStore

log = structlog.get_logger()


VerifyFn = Callable[[Path, Path, bool], None]  # (candidate, original, allow_larger)

# The ETag of a single-part upload (and of a copy) is the MD5 of its bytes under SSE-S3, the
# farm's bucket encryption (Amazon S3 API Reference, "Object" ETag); others are not checksums.
_MD5_ETAG = re.compile(r"[0-9a-f]{32}")
# Errors a placement meets again on every try until someone acts: no point going on.
_SPACE = "free some space"
# (what is wrong with the folder, what it needs)
_STOPS_PLACING = {
    errno.ENOSPC: ("no space left in {}", _SPACE),
    errno.EDQUOT: ("disk quota exceeded in {}", _SPACE),
    errno.EROFS: ("{} is read-only", "make it writable"),
    errno.EACCES: ("permission denied in {}", "give this user write access"),
    errno.EPERM: ("operation not permitted in {}", "give this user write access"),
}
_ROOM_SLACK = 64 * 1024  # blocks and folder entries beyond the bytes themselves
# A source missing from its path makes the library be walked to find where it went; the
# walk is reused for this long before another missing source walks it again.
_REWALK_S = 30.0

T = TypeVar("T")


def _verify(candidate: Path, original: Path, allow_larger: bool) -> None:
    verify_replacement(candidate, original, allow_larger=allow_larger)


def _not_larger(candidate: Path, original: Path, allow_larger: bool) -> None:
    """``LargerThanOriginal`` unless larger outputs are allowed or this one is not."""
    size, orig_size = candidate.stat().st_size, original.stat().st_size
    if size > orig_size and not allow_larger:
        raise LargerThanOriginal(f"larger than the original ({size} > {orig_size} bytes)")


@dataclass(frozen=True)
class FetchOptions:
    """Which pools' results to take and what to do with their outputs."""

    pools: frozenset[str]
    out_dir: Path | None = None  # outputs land in out_dir/<pool>/<output path>
    replace: frozenset[str] = frozenset()  # pools whose outputs take the original's place
    allow_larger: bool = False
    keep_days: float = 30.0
    cleanup: bool = True  # delete the job's objects once it is safely home
    # The pool whose outputs other pools may copy (pools.primary_pool): its output stays
    # while another pool's job of the source version is open, and goes with the source.
    primary: str | None = None
    # The pools whose workers may copy it (``decide.may_share_encode``); None: every other.
    copiers: frozenset[str] | None = None


@dataclass
class Fetcher:
    """Handles results of one library: ownership, verification, placement, clean-up."""

    root: Path
    state: Catalog
    objects: ObjectStore
    ledger: LedgerReader | None
    options: FetchOptions
    all_pools: Sequence[str]
    library: str  # the library id written on uploads (catalog.library_id)
    verify: VerifyFn = _verify
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # What this session knows first-hand. The embedded farm's uploads never reach the
    # catalog (they die with the farm), so its outcomes there are earlier runs' and say
    # nothing of this upload: source key -> fingerprint of the content this run uploaded,
    # and (source key, pool, committed output ETag) of each done job brought home here.
    _uploads: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _home: set[tuple[str, str, str]] = field(default_factory=set, init=False, repr=False)
    _marked: set[str] = field(default_factory=set, init=False, repr=False)  # pool folders
    # The library's files by identity (inode, size, mtime), walked when a source is not at
    # its path, to find where a rename during the run took it; and when that walk was.
    _identities: dict[tuple[int, int, int], Path] = field(
        default_factory=dict, init=False, repr=False
    )
    _walked_at: float = field(default=float("-inf"), init=False, repr=False)

    def remember_upload(self, source_key: str, fingerprint: str) -> None:
        """This run uploaded the content ``fingerprint`` to ``source_key``: its results are
        matched by it, even after the source has left the bucket."""
        self._uploads[source_key] = fingerprint

    @property
    def quarantine(self) -> Path:
        """This library's quarantine folder."""
        return self.root / DEFAULT_QUARANTINE

    def owns(self, r: JobResult) -> bool:
        """True for a result of a wanted pool whose source this library uploaded."""
        if r.pool not in self.options.pools:
            return False
        try:
            rel = source_relative(r.source_key)
        except PermanentError:
            return False
        rec = self.state.get(rel)
        if rec is not None and rec.upload_key == r.source_key:
            return True
        head = self.objects.head(r.source_key)
        return head is not None and head.metadata.get(META_LIBRARY) == self.library

    def process(self, r: JobResult) -> Fetched:
        """Take one result of this library home; never raises for one bad job."""
        rel = source_relative(r.source_key)
        log.info("result_received", rel=rel, pool=r.pool, outcome=r.outcome)
        if r.outcome == "failed":
            self.state.record_outcome(rel, r.pool, "failed", r.reason)
            return Fetched(rel, r.pool, "failed", r.reason or "failed on the farm", result=r)
        if r.outcome == "skipped":
            self.state.record_outcome(rel, r.pool, "skipped", r.reason)
            gone = self._cleanup_source(r, rel)
            return Fetched(rel, r.pool, "skipped", r.reason or "", result=r, source_deleted=gone)
        try:
            fetched = self._done(r, rel)
        except OutputFolderUnusable:
            raise  # stops the run: every later placement there would fail alike
        except HevcqError as exc:  # S3 trouble: leave the result for a later fetch
            log.warning("fetch_failed", rel=rel, pool=r.pool, error=str(exc))
            return Fetched(rel, r.pool, "retry", str(exc), result=r)
        if fetched.ok:
            fetched = self._cleanup(r, rel, fetched)
        return fetched

    def _done(self, r: JobResult, rel: str) -> Fetched:
        if not r.output_key:
            return Fetched(rel, r.pool, "failed", "done without an output key", result=r)
        settled = self._replaced_or_kept(r, rel)
        if settled is not None:
            return settled
        item, disagreement = self._confirm(r)
        if item is None or disagreement is not None:
            action, why = disagreement or ("retry", "the ledger has no record of this job yet")
            log.info("result_not_current", rel=rel, pool=r.pool, reason=why)
            return Fetched(rel, r.pool, action, why, result=r)
        src = self.root.joinpath(*rel.split("/"))
        try:
            out = _committed_output(r, item)
            original, why = self._original(r, rel, src)
            if original is None:
                log.warning("result_orphaned", rel=rel, pool=r.pool, reason=why)
                return Fetched(rel, r.pool, "orphaned", why, result=r)
            dest = self._destination(r, out, src)
        except ReplaceRefused as exc:
            return self._refused(r, rel, str(exc))
        fetched = self._fetch(r, rel, out, dest, (src, original))
        renamed = original != src and not original.is_relative_to(self.quarantine)
        if renamed and fetched.action == "placed":
            # Renamed during the run: the output lands under the name it was made for,
            # "done" there, and the next scan moves both to the new name (``follow``).
            new = original.relative_to(self.root).as_posix()
            log.info("output_of_renamed_source", rel=rel, pool=r.pool, now=new)
            fetched = replace(
                fetched,
                reason=f"renamed to {new} during the run; the next run moves this output"
                " to its name",
            )
        if fetched.action in ("placed", "replaced", "skipped"):  # home, or the original kept
            self._home.add((r.source_key, r.pool, out.etag))
        if fetched.action == "placed" and r.pool not in self.options.replace:
            self._mark(r.pool)
        return fetched

    def _mark(self, pool: str) -> None:
        """A pool's folder under --out holds hevcq's outputs only: once it holds one, it is
        marked, so no later scan takes them for sources, whatever --out that run is given
        (an --out inside the library, or the library's parent scanned one day)."""
        if pool in self._marked or self.options.out_dir is None:
            return
        with contextlib.suppress(OSError):  # unmarked, the run goes on (mark_outputs logs)
            mark_outputs(self.options.out_dir / pool)
        self._marked.add(pool)

    def _fetch(
        self, r: JobResult, rel: str, out: ObjectInfo, dest: Path, files: tuple[Path, Path]
    ) -> Fetched:
        """Download exactly the committed output beside ``dest``, then verify and place it."""
        if is_bundle_key(out.key):
            return self._fetch_bundle(r, rel, out, bundle_folder(dest))
        copies = 2 if r.pool in self.options.replace else 1  # a swap stages one more copy
        _make_room(dest.parent, out.size * copies, _named(r, rel))
        tmp = dest.parent / f".hevcq-fetch-{uuid.uuid4().hex}.part"  # generated, never keys
        made = [p for p in [dest.parent, *dest.parent.parents] if not p.exists()]
        fetched: Fetched | None = None
        try:
            fetched = self._fetch_checked(r, rel, out, (tmp, dest), files)
            return fetched
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if fetched is None or fetched.action not in ("placed", "replaced"):
                _remove_empty(made)  # a refused or failed output leaves no trace

    def _fetch_bundle(self, r: JobResult, rel: str, out: ObjectInfo, dest: Path) -> Fetched:
        """Bring a committed ladder home as one folder (``hevcq.library.bundles``)."""
        what = _named(r, rel)
        _make_room(dest.parent, out.size, what)
        made = [p for p in [dest.parent, *dest.parent.parents] if not p.exists()]
        staging = dest.parent / f".hevcq-fetch-{uuid.uuid4().hex}.part"  # generated
        placed: Path | None = None
        try:
            _placing(dest.parent, what, lambda: staging.mkdir(parents=True))
            scratch = staging.with_suffix(".manifest")
            scratch.mkdir()
            try:
                manifest = read_manifest(self.objects, out, r, scratch)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            _placing(
                dest.parent,
                what,
                lambda: download_parts(self.objects, out.key, manifest, staging),
            )
            placed = _placing(dest.parent, what, lambda: place_folder(staging, dest))
        except SupersededJob:
            if self._still_committed(r, out):
                return self._refused(r, rel, _not_committed(out, "parts of another attempt"))
            return Fetched(
                rel, r.pool, "retry", "the ladder changed since it was committed", result=r
            )
        except ReplaceRefused as exc:
            return self._refused(r, rel, str(exc))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if placed is None:
                _remove_empty(made)
        self.state.record_outcome(rel, r.pool, "done")
        log.info("output_fetched", rel=rel, pool=r.pool, action="placed", path=str(placed))
        return Fetched(rel, r.pool, "placed", path=placed, result=r)

    def _fetch_checked(
        self,
        r: JobResult,
        rel: str,
        out: ObjectInfo,
        paths: tuple[Path, Path],
        files: tuple[Path, Path],
    ) -> Fetched:
        tmp, dest = paths
        try:
            mkdir = partial(dest.parent.mkdir, parents=True, exist_ok=True)
            _placing(dest.parent, _named(r, rel), mkdir)
            _placing(dest.parent, _named(r, rel), lambda: self._download(out, tmp))
        except SupersededJob:
            if self._still_committed(r, out):
                return self._refused(r, rel, _not_committed(out, "another ETag"))
            return Fetched(
                rel, r.pool, "retry", "the output changed since it was committed", result=r
            )
        except ReplaceRefused as exc:
            return self._refused(r, rel, str(exc))
        checksummed = _MD5_ETAG.fullmatch(out.etag) is not None
        return self._verify_and_place(r, rel, tmp, dest, files, checksummed=checksummed)

    def _download(self, out: ObjectInfo, tmp: Path) -> None:
        """The committed bytes into ``tmp`` (If-Match on the committed ETag), checked."""
        known = out if out.size >= 0 else None
        got = self.objects.download(out.key, tmp, etag=out.etag, known=known)
        if got.etag != out.etag:
            raise ReplaceRefused(_not_committed(out, f"ETag {got.etag}"))
        size = tmp.stat().st_size
        if out.size >= 0 and size != out.size:
            raise ReplaceRefused(_not_committed(out, f"{size} bytes, not the committed {out.size}"))
        if _MD5_ETAG.fullmatch(out.etag) and file_md5(tmp) != out.etag:
            raise ReplaceRefused(_not_committed(out, "a checksum other than its ETag"))

    def _still_committed(self, r: JobResult, out: ObjectInfo) -> bool:
        """True while the ledger still names ``out``: the object changed under it."""
        item = self.ledger.get(r.source_key, r.pool) if self.ledger is not None else None
        return item is not None and item.output_etag == out.etag

    def _refused(self, r: JobResult, rel: str, reason: str) -> Fetched:
        log.warning("output_refused", rel=rel, pool=r.pool, key=r.output_key, reason=reason)
        self.state.record_outcome(rel, r.pool, "failed", f"refused: {reason}")
        return Fetched(rel, r.pool, "refused", reason, result=r)

    def _destination(self, r: JobResult, out: ObjectInfo, src: Path) -> Path:
        """Where the output goes: beside its source (replacing) or under ``--out``; never
        through a symlinked folder that leads out of the library or ``--out``."""
        if r.pool in self.options.replace:
            base, dest = self.root, _final_path(r, src)
        elif self.options.out_dir is None:
            raise ReplaceRefused(f"no output folder for pool {r.pool}")
        else:
            base = self.options.out_dir
            rel = output_place(out.key, r.pool, r.source_key)
            dest = base.joinpath(r.pool, *rel.split("/"))
        if not dest.parent.resolve().is_relative_to(base.resolve()):
            raise ReplaceRefused(f"{dest.parent} leads outside {base} (a symlinked folder)")
        return dest

    def _verify_and_place(
        self,
        r: JobResult,
        rel: str,
        tmp: Path,
        dest: Path,
        files: tuple[Path, Path],
        *,
        checksummed: bool,
    ) -> Fetched:
        """Check the downloaded output ``tmp`` and place it (``checksummed``: its bytes
        matched the committed output's MD5)."""
        src, original = files
        swapped: QuarantineEntry | None = None
        try:
            if r.pool in self.options.replace or not checksummed:
                # Every frame, whatever the worker proved: the check that stands between an
                # original and its deletion (and the only one left when the ETag is no
                # checksum, a multipart output).
                self.verify(tmp, original, self.options.allow_larger)
            else:
                # The worker proved this output under its pool's verify policy and committed
                # these bytes; the download matched their MD5 and size (``_download``), so
                # they are what the worker proved and nothing is decoded a second time.
                _not_larger(tmp, original, self.options.allow_larger)
            if r.pool in self.options.replace:
                _same_file(original, src)
                entry = _placing(
                    dest.parent,
                    _named(r, rel),
                    lambda: swap_in(
                        src,
                        tmp,
                        quarantine_root=self.quarantine,
                        keep_days=self.options.keep_days,
                        now=self.clock(),
                        final=dest,
                        original_hash=self._known_hash(rel),
                    ),
                    instead="run without --replace",
                )
                action: Action = "replaced"
                path = entry.final
                swapped = entry
            else:
                path = _placing(
                    dest.parent, _named(r, rel), lambda: place_output(tmp, dest, move=True)
                )
                dated_like(path, original)
                action = "placed"
        except LargerThanOriginal as exc:
            log.info("output_kept_original", rel=rel, pool=r.pool, reason=str(exc))
            self.state.record_outcome(rel, r.pool, "skipped", KEPT_ORIGINAL)
            return Fetched(rel, r.pool, "skipped", KEPT_ORIGINAL, result=r)
        except ReplaceRefused as exc:
            return self._refused(r, rel, str(exc))
        except OSError as exc:
            return self._refused(r, rel, _placing_failed(exc, dest))
        self.state.record_outcome(rel, r.pool, "done")
        if swapped is not None:
            self._remember_replacement(path, rel, swapped)
        log.info("output_fetched", rel=rel, pool=r.pool, action=action, path=str(path))
        return Fetched(rel, r.pool, action, path=path, result=r)

    def _known_hash(self, rel: str) -> tuple[tuple[int, int, int], str] | None:
        """The original's whole-file hash the catalog took as it was sent, with the version
        it was taken at (``swap_in`` keeps it while the original is still that version)."""
        rec = self.state.get(rel)
        if rec is None or rec.content_hash is None:
            return None
        return (rec.size, rec.mtime_ns, rec.inode), rec.content_hash

    def _remember_replacement(self, placed: Path, original: str, entry: QuarantineEntry) -> None:
        """Mark the swapped-in file so no later scan takes it for a source, with its whole
        hash (taken as it was staged): touched or synced since (a new mtime), it is still
        known as hevcq's."""
        try:
            st = placed.stat()
            ours = (st.st_size, st.st_ino) == (entry.staged_size, entry.staged_inode)
            self.state.record_replacement(
                placed.relative_to(self.root).as_posix(),
                st,
                original,
                entry.staged_hash if ours else None,  # another file already: its stat alone
            )
        except OSError as exc:  # moved or removed already: a changed file is a new source
            log.warning("replacement_not_recorded", rel=original, error=str(exc))

    def _confirm(self, r: JobResult) -> tuple[LedgerItem | None, tuple[Action, str] | None]:
        """The ledger's record of the job, and whether it and the result disagree (what to do).

        A worker publishes only after its fenced commit, so a result that the ledger does
        not confirm is either outdated (a newer version or output was committed since) or
        not yet confirmed (try again later). Only the ledger's record says what to fetch.
        """
        if self.ledger is None:
            return None, ("refused", "no ledger to confirm the output")
        item = self.ledger.get(r.source_key, r.pool)
        if item is None:
            return None, None
        if r.source_etag and item.etag != r.source_etag:
            return item, ("superseded", "a newer version of the source was uploaded since")
        if item.state is not State.DONE:
            return item, ("retry", f"the ledger says {item.state.value}")
        if r.output_etag and item.output_etag not in (None, r.output_etag):
            return item, ("superseded", "the ledger records a newer output for this job")
        return item, None

    def _original(self, r: JobResult, rel: str, src: Path) -> tuple[Path | None, str]:
        """The file holding the uploaded version of the source: in the library or quarantine."""
        expected = self._uploaded_fingerprint(r, rel)
        if expected is None:
            return None, "cannot tell which version of the source was uploaded"
        candidates = [src] + [
            e.quarantined
            for e in list_quarantine(self.quarantine)
            if e.original == src.absolute() and e.state == "complete"
        ]
        for path in candidates:
            if path.is_file() and _fingerprint(path, expected) == expected:
                return path, ""
        if src.is_file():
            return None, "source changed since it was uploaded"
        moved = self._renamed(rel, expected)
        if moved is None:
            return None, "source no longer in the library"
        if r.pool in self.options.replace:
            new = moved.relative_to(self.root).as_posix()
            return None, f"source renamed to {new} during the run; the next run replaces it there"
        return moved, ""

    def _renamed(self, rel: str, expected: str) -> Path | None:
        """Where a rename or a move inside the library took ``rel`` since the scan: the
        file with the identity the catalog recorded for it (inode, size and mtime, which a
        rename keeps) that still holds the uploaded content; None if there is none."""
        rec = self.state.get(rel)
        if rec is None:
            return None
        ident = (rec.inode, rec.size, rec.mtime_ns)
        if ident not in self._identities and time.monotonic() - self._walked_at > _REWALK_S:
            found, _ = walk(self.root, ScanOptions())
            self._identities = {(c.inode, c.size, c.mtime_ns): c.path for c in found}
            self._walked_at = time.monotonic()
        path = self._identities.get(ident)
        if path is None or not path.is_file() or _fingerprint(path, expected) != expected:
            return None
        return path

    def _uploaded_fingerprint(self, r: JobResult, rel: str) -> str | None:
        """The fingerprint of the uploaded content: this run's own upload, the catalog's
        record of it, or (neither at hand) the source object's metadata."""
        if r.source_key in self._uploads:
            return self._uploads[r.source_key]
        rec = self.state.get(rel)
        if rec is not None and rec.upload_key == r.source_key and rec.upload_fingerprint:
            return rec.upload_fingerprint
        head = self.objects.head(r.source_key)
        return head.metadata.get(META_HASH) if head is not None else None

    def _replaced_or_kept(self, r: JobResult, rel: str) -> Fetched | None:
        """For a replacing pool: the original was replaced earlier (this result came
        twice), or a rollback put it back and it stays; None to go on and place it."""
        if r.pool not in self.options.replace:
            return None
        kept = self._rolled_back(rel)
        if kept is not None:  # a person chose this original over its replacement
            self.state.record_outcome(rel, r.pool, "skipped", kept)
            return Fetched(rel, r.pool, "skipped", kept, result=r)
        if self._outcome(rel, r.pool) == "done" and not self._original_in_place(r, rel):
            return Fetched(rel, r.pool, "already", "replaced earlier", result=r)
        return None

    def _original_in_place(self, r: JobResult, rel: str) -> bool:
        """Whether the uploaded version of the source is still at its place in the
        library: then nothing has replaced it, whatever an earlier "done" says. A run
        without --replace records "done" once its output is placed in its --out, and
        leaves the original as it was; a later --replace run must still swap it in."""
        expected = self._uploaded_fingerprint(r, rel)
        src = self.root.joinpath(*rel.split("/"))
        return expected is not None and src.is_file() and _fingerprint(src, expected) == expected

    def _rolled_back(self, rel: str) -> str | None:
        """Why the original at ``rel`` stays, when a rollback put it back and it is still
        that file; None otherwise."""
        back = self.state.rollback(rel)  # one row: this runs once per replace result
        if back is None:
            return None
        try:
            st = self.root.joinpath(*rel.split("/")).stat()
        except OSError:
            return None
        return back.reason if back.holds(st.st_size, st.st_mtime_ns, st.st_ino) else None

    def _outcome(self, rel: str, pool: str) -> str | None:
        rec = self.state.decisions(rel).get(pool)
        return rec.outcome if rec is not None else None

    def _cleanup(self, r: JobResult, rel: str, fetched: Fetched) -> Fetched:
        if not self.options.cleanup or fetched.action == "already":
            return fetched
        if r.output_key and is_bundle_key(r.output_key):
            self._delete_with_parts(r, self.objects.head(r.output_key))
        elif r.output_key and not self._may_be_copied(r):
            head = self.objects.head(r.output_key)
            if head is not None and META_PARTS in head.metadata:
                self._delete_with_parts(r, head)  # a file with its poster: the same two steps
            else:
                self.objects.delete(r.output_key)
        gone = self._cleanup_source(r, rel)
        return Fetched(
            fetched.rel,
            fetched.pool,
            fetched.action,
            fetched.reason,
            fetched.path,
            r,
            source_deleted=gone,
        )

    def _delete_with_parts(self, r: JobResult, current: ObjectInfo | None) -> None:
        """A ladder (or a file with a poster) brought home leaves the bucket: exactly the
        committed output, then the parts of its attempt (a newer commit's output and parts
        are left alone). ``current`` is the output's head as just read."""
        key, etag = r.output_key or "", r.output_etag or ""
        if current is None or current.etag != etag:
            return
        token = current.metadata.get(META_PARTS, "")
        if self.objects.delete_if(key, etag):
            with contextlib.suppress(PermanentError):
                for part in self.objects.list_keys(attempt_prefix(key, token)):
                    self.objects.delete(part)

    def _cleanup_source(self, r: JobResult, rel: str) -> bool:
        """Delete the uploaded source once every pool's job for it is finished and home."""
        if not self.options.cleanup or self.ledger is None:
            return False
        local = self.state.decisions(rel)
        source = self.objects.head(r.source_key)
        uploader_settled = self._uploader_settled(source)
        recorded = self._outcomes_of_this_upload(r, rel, source)
        for pool in self.all_pools:
            item = self.ledger.get(r.source_key, pool)
            if item is None and pool in uploader_settled:
                continue  # the client's own skip or earlier outcome: no job to wait for
            mine = local.get(pool)
            if not source_settled(item, r.source_etag, mine.outcome if mine else None):
                return False
            done_here = recorded and mine is not None and mine.outcome == "done"
            if item and item.state is State.DONE and not self._home_already(r, item, done_here):
                return False  # its result is still on its way: it needs the source
        self._delete_primary_output(r)
        self.objects.delete(r.source_key)
        log.info("source_deleted", key=r.source_key)
        return True

    def _home_already(self, r: JobResult, item: LedgerItem, done_here: bool) -> bool:
        """Whether a done job's committed output is home: brought home in this session,
        recorded done for this very upload (``done_here``), or no longer in the bucket
        (someone else fetched it and their clean-up deleted it)."""
        if (r.source_key, item.pool, item.output_etag or "") in self._home or done_here:
            return True
        return self.objects.head(item.output_key or "") is None

    def _outcomes_of_this_upload(self, r: JobResult, rel: str, source: ObjectInfo | None) -> bool:
        """Whether the catalog's outcomes for ``rel`` belong to the object being cleaned
        up: the catalog records that upload (``record_upload`` resets them) and this session
        made none of its own. An upload to the embedded farm is never recorded there, so an
        earlier run's "done" would pass for a result this run has not brought home."""
        if r.source_key in self._uploads or source is None:
            return False
        rec = self.state.get(rel)
        return (
            rec is not None
            and rec.upload_key == r.source_key
            and bool(rec.upload_fingerprint)
            and source.metadata.get(META_HASH) == rec.upload_fingerprint
        )

    def _uploader_settled(self, head: ObjectInfo | None) -> frozenset[str]:
        """Pools the uploading client settled for this object (its skips, and outcomes it
        holds from an earlier run), as named in the object's metadata.

        Such a pool may never open a job: the embedded farm starts no worker for a pool
        with nothing to encode, so waiting for its ledger item would keep the source in the
        bucket until the run ends. A worker that reaches the message after the source is
        gone finds nothing to do (``source_gone``). ``head``: the source object's.
        """
        if head is None:
            return frozenset()
        return frozenset(p for p in self.all_pools if client_settled(head.metadata, p))

    def _may_be_copied(self, r: JobResult) -> bool:
        """True for the primary's output while another pool's job of this source version is
        open or not yet begun: a rendition making the same encode copies it
        (``hevcq.worker.shared``). A job no worker has claimed yet has no item for this
        version; deleting the output then made that rendition encode it all again (the
        fetch ran between the primary's commit and its copy). Unless the uploader settled
        that pool itself, such a job is waited for; the output goes with the source at the
        latest (``_delete_primary_output``)."""
        if r.pool != self.options.primary or self.ledger is None:
            return False
        settled: frozenset[str] | None = None
        copiers = self.options.copiers
        for pool in self.all_pools:
            if pool == r.pool or (copiers is not None and pool not in copiers):
                continue
            item = self.ledger.get(r.source_key, pool)
            if item is None or item.etag != r.source_etag:
                if settled is None:
                    settled = self._not_to_come(r)
                if pool in settled:
                    continue
            elif item.state not in OPEN:
                continue
            log.info("output_kept_for_copy", key=r.output_key, pool=pool)
            return True
        return False

    def _not_to_come(self, r: JobResult) -> frozenset[str]:
        """The pools whose jobs of ``r``'s source version will never begin: every pool once
        that version is gone from the bucket (deleted, or overwritten by a newer one), else
        those its uploader settled itself."""
        head = self.objects.head(r.source_key)
        if head is None or head.etag != r.source_etag:
            return frozenset(self.all_pools)
        return self._uploader_settled(head)

    def _delete_primary_output(self, r: JobResult) -> None:
        """The primary's output, kept for a copy, goes with the source (exactly that one)."""
        primary = self.options.primary
        if primary is None or primary == r.pool or self.ledger is None:
            return
        item = self.ledger.get(r.source_key, primary)
        if item and item.state is State.DONE and item.output_key and item.output_etag:
            self.objects.delete_if(item.output_key, item.output_etag)


OPEN = frozenset({State.QUEUED, State.RUNNING, State.INTERRUPTED})


def source_settled(item: LedgerItem | None, etag: str, local_outcome: str | None) -> bool:
    """True when a pool's job for this source version finished and did not fail here."""
    return local_outcome != "failed" and finished_version(item, etag)


def _committed_output(r: JobResult, item: LedgerItem) -> ObjectInfo:
    """The output the ledger committed for the job (key, size or -1, ETag), as the result
    must name it; ``ReplaceRefused`` for a result that names another key."""
    key = item.output_key or ""
    if key != r.output_key:
        raise ReplaceRefused(
            f"output key {r.output_key!r} disagrees with the ledger's record {key!r}"
        )
    if not item.output_etag:
        raise ReplaceRefused("the ledger records no committed output for this job")
    try:
        output_place(key, r.pool, r.source_key)
    except PermanentError as exc:
        raise ReplaceRefused(str(exc)) from exc
    size = item.output_bytes if item.output_bytes is not None else -1
    return ObjectInfo(key, size, item.output_etag)


def _named(r: JobResult, rel: str) -> str:
    """How a message names one result: its file and pool."""
    return f"{rel} [{r.pool}]"


def _placing_failed(exc: OSError, dest: Path) -> str:
    """Why placing at ``dest`` failed, for a person: what the system said about which
    name, not Python's rendering of the error."""
    if exc.errno == errno.ENAMETOOLONG:
        size = len(os.fsencode(dest.name))
        return (
            f"the output's name is too long for {dest.parent} ({size} bytes with the pool's"
            " suffix): rename the source shorter"
        )
    return f"{exc.strerror or exc}: {dest}"


def _not_committed(out: ObjectInfo, what: str) -> str:
    return f"the object under {out.key} differs from the one the ledger committed: {what}"


def _placing(
    folder: Path, what: str, step: Callable[[], T], instead: str = "choose another output folder"
) -> T:
    """Run one step of placing ``what`` in ``folder``; a failure that will not pass by
    itself (no space, no permission, read-only) stops the run (``OutputFolderUnusable``),
    saying what to fix or, ``instead``, what else to do."""
    try:
        return step()
    except (OSError, HevcqError) as exc:
        cause = _os_error(exc)
        if cause is None or cause.errno not in _STOPS_PLACING:
            raise
        wrong, needed = _STOPS_PLACING[cause.errno]
        message = _stop_message(wrong.format(folder), what, needed, instead)
        raise OutputFolderUnusable(message) from exc


def _stop_message(
    wrong: str, what: str, needed: str, instead: str = "choose another output folder"
) -> str:
    return f"{wrong}: {what}; {needed} or {instead}, then run the same command again"


def _os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind ``exc`` (itself, or what a store wrapped), if any."""
    while exc is not None and not isinstance(exc, OSError):
        exc = exc.__cause__
    return exc


def _make_room(folder: Path, need: int, what: str) -> None:
    """Stop before a placement that the output's disk has no room for."""
    if need < 0:
        return
    free = shutil.disk_usage(_existing(folder)).free
    if free < need + _ROOM_SLACK:
        what = f"{what} needs {human_bytes(need)}, {human_bytes(free)} free"
        raise OutputFolderUnusable(_stop_message(f"no space left in {folder}", what, _SPACE))


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()


def _existing(folder: Path) -> Path:
    """``folder``, or the nearest folder above it that exists."""
    return next(p for p in [folder, *folder.parents] if p.exists())


def _final_path(r: JobResult, src: Path) -> Path:
    """Where a replacing output lands: beside its source, under the name the worker gave
    its output (a replacing pool has no suffix; the name may keep the source's extension)."""
    name = PurePosixPath(r.output_key or "").name
    if name == output_relative(src.name, with_source_ext=True):
        return src.with_name(name)
    return final_path(src)


def _same_file(original: Path, src: Path) -> None:
    if original != src:
        raise ReplaceRefused("the original was already replaced")


def _fingerprint(path: Path, like: str) -> str | None:
    try:
        return fingerprint(path, full=like.startswith("f1:"))
    except OSError:
        return None


def find_library(path: Path) -> Path | None:
    """The library holding ``path``: the nearest folder above it with a quarantine."""
    for folder in [path.absolute(), *path.absolute().parents]:
        if (folder / DEFAULT_QUARANTINE).is_dir():
            return folder
    return None


def fetch_library(
    inbox: Inbox,
    fetcher: Fetcher,
    *,
    follow: bool,
    stop: threading.Event,
    on_item: Callable[[Fetched], None] | None = None,
) -> list[Fetched]:
    """Finish interrupted swaps, then drain the results queue for this library."""
    finished = recover(fetcher.quarantine)
    if finished:
        log.info("interrupted_swaps_finished", count=len(finished))
    return drain(inbox, fetcher, follow=follow, stop=stop, on_item=on_item)
