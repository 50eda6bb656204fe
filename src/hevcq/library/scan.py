"""Scanning a local library: walk, filter, fingerprint, probe, decide, remember."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import structlog

from hevcq.bundle import local_master
from hevcq.errors import PermanentError
from hevcq.keys import keeps_ext, output_relative, sharing_sources, sharing_stems, todo_key
from hevcq.library.calibrate import CALIBRATION_FPS, CALIBRATION_SIZE
from hevcq.library.catalog import (
    Catalog,
    FileRecord,
    PoolRecord,
    PoolState,
    Replacement,
    Rollback,
)
from hevcq.library.follow import Follower
from hevcq.library.share import Sharer
from hevcq.library.walk import (
    DEFAULT_EXCLUDES,
    DEFAULT_EXTENSIONS,
    Candidate,
    Problem,
    ScanOptions,
    fingerprint,
    hashes_to,
    os_problem,
    walk,
)
from hevcq.media.model import Decision, EncodePlan, MediaInfo, Skip
from hevcq.media.picshape import probe_main, sized_enough
from hevcq.media.probe import ProbeFn
from hevcq.pools import Pool, primary_pool

__all__ = [
    "DEFAULT_EXCLUDES",
    "DEFAULT_EXTENSIONS",
    "FileEntry",
    "PoolTotals",
    "Problem",
    "ScanOptions",
    "ScanReport",
    "fingerprint",
    "scan",
]

log = structlog.get_logger()

DecideFn = Callable[[MediaInfo, Pool, str], Decision]
FingerprintFn = Callable[[Path], str]
Status = Literal["send", "uploaded", "skip", "duplicate", "deferred", "finished"]
# Outcomes that a later run does not redo (a new pool decision resets the outcome).
SETTLED: frozenset[PoolState] = frozenset({"done", "skipped", "failed"})


@dataclass(frozen=True, kw_only=True)
class FileEntry:
    """One scanned file: what it is, what each pool decided, what happens next."""

    rel: str
    size: int
    duration_s: float | None
    fingerprint: str
    status: Status
    decisions: Mapping[str, Decision] = field(default_factory=dict)
    outcomes: Mapping[str, PoolState] = field(default_factory=dict)
    duplicate_of: str | None = None
    # The path it duplicates is gone from the library: a configured farm received this
    # content under that path (a file renamed since its upload), whose outputs keep it.
    duplicate_gone: bool = False
    upload_key: str | None = None
    cached: bool = False  # reused from the catalog without opening the file
    with_source_ext: bool = False  # its output name keeps its extension (keys.sharing_sources)
    shares_stem: bool = False  # another source shares its stem (keys.sharing_stems)
    # Pools a person settled for this file: the replacing pool of an original a rollback
    # put back. Its workers skip it at once, without deciding again.
    kept: frozenset[str] = frozenset()
    # Pools whose output this file took over from the path it had before (a renamed or
    # moved file, ``hevcq.library.follow``): pool -> that path.
    followed: Mapping[str, str] = field(default_factory=dict)
    # Pools whose output is a copy of the primary pool's identical encode, which an earlier
    # run brought home (``hevcq.library.share``): pool -> the primary's name.
    shared: Mapping[str, str] = field(default_factory=dict)
    # ``duration_s`` is a bare stream's guessed length (``MediaInfo.duration_guess_s``).
    duration_guessed: bool = False

    @property
    def why_duplicate(self) -> str:
        """What a duplicate's row says."""
        if self.duplicate_gone:
            return (
                f"the farm received this content as {self.duplicate_of}, gone from the library"
                " since (renamed?): its outputs keep that name"
            )
        return f"duplicate of {self.duplicate_of}"

    @property
    def pools_to_encode(self) -> tuple[str, ...]:
        """Pools whose decision is to encode this file."""
        return tuple(p for p, d in self.decisions.items() if isinstance(d, EncodePlan))

    @property
    def pools_pending(self) -> tuple[str, ...]:
        """Pools that encode this file and have no settled outcome from an earlier run."""
        return tuple(p for p in self.pools_to_encode if self.outcomes.get(p) not in SETTLED)


@dataclass(frozen=True)
class PoolTotals:
    """Work a pool gets from the files to send: count, bytes and source seconds."""

    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    # The source seconds, each weighed by its encode's ``work_share``; None: as ``seconds``.
    work_seconds: float | None = None

    @property
    def weighed_seconds(self) -> float:
        """Source seconds at the pixel rate a pool's speed is measured at."""
        return self.seconds if self.work_seconds is None else self.work_seconds


def work_share(decision: Decision | None, duration_s: float | None = None) -> float:
    """An encode's work per source second against the one a pool's speed is measured on
    (``calibrate``: a 1920x1080 source at 24 frames a second). Encode work follows the
    pixels encoded: a pool that keeps the source's size does about four times the work on
    a 4K source and a ninth on a 640x360 one. A rendition is encoded at its pool's size
    whatever the source's (only its decode grows, a small part), so it counts as
    measured, as does a decision that is no encode. Both encode every frame of a source
    ``duration_s`` long (``frame_share``)."""
    share = 1.0
    if isinstance(decision, EncodePlan) and not decision.scale:
        width, height = CALIBRATION_SIZE
        share = decision.width * decision.height / (width * height)
    return share * frame_share(decision, duration_s)


def frame_share(
    decision: Decision | None, duration_s: float | None, *, rate: Callable[[float], float] = float
) -> float:
    """An encode's frames per source second against the 24 its pool's speed is measured
    at (``calibrate.CALIBRATION_FPS``), from the frames its plan expects of a source
    ``duration_s`` long: a phone's 30 is 1.25 times the work, its 60 2.5 times, a 240
    slow-motion clip 10 times (each frame is encoded; a high rate's frames, more alike,
    cost a little less each, 2.0 and 9.5 times measured for 60 and 240 on a moving
    fractal). ``rate``: the rate the output is made at from the source's (a ladder's,
    at most 60). 1 where either is unknown, or for no encode."""
    if not isinstance(decision, EncodePlan) or not decision.expected_frames:
        return 1.0
    if not duration_s or duration_s <= 0:
        return 1.0
    return rate(decision.expected_frames / duration_s) / CALIBRATION_FPS


@dataclass(frozen=True)
class ScanReport:
    """The result of a scan; render-free (the CLI renders it)."""

    root: Path
    entries: tuple[FileEntry, ...]
    problems: tuple[Problem, ...]
    totals: Mapping[str, PoolTotals]
    reused: int  # files answered from the catalog
    probed: int  # files fingerprinted and probed in this run
    elapsed_s: float
    # Of the known files, those touched (or copied anew) since and found unchanged by a
    # whole read (``_Scan.recheck_touched``).
    touched_kept: int = 0

    def with_status(self, status: Status) -> tuple[FileEntry, ...]:
        """Entries in one status."""
        return tuple(e for e in self.entries if e.status == status)

    @property
    def to_send(self) -> tuple[FileEntry, ...]:
        """Files to upload in this run."""
        return self.with_status("send")

    @property
    def duplicates(self) -> tuple[FileEntry, ...]:
        """Files whose content was already uploaded or seen earlier in this run."""
        return self.with_status("duplicate")


# --- the scan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Examined:
    cand: Candidate
    fingerprint: str
    info: MediaInfo | None
    error: str | None  # a permanent probe failure, remembered so it is not re-probed


def _examine(c: Candidate, probe_fn: ProbeFn, fingerprint_fn: FingerprintFn) -> _Examined | Problem:
    """Fingerprint and probe one file (runs in a worker thread)."""
    try:
        fp = fingerprint_fn(c.path)
    except OSError as exc:
        return os_problem(c.rel, exc)
    info, error = None, None
    try:
        info = probe_fn(c.path)
    except PermanentError as exc:
        error = str(exc)
    except OSError as exc:
        return os_problem(c.rel, exc)
    except Exception as exc:  # a probe bug on one file must not stop a scan of thousands
        log.warning("probe_crashed", rel=c.rel, exc_info=True)
        return Problem(c.rel, "probe_failed", f"probe crashed: {exc!r}")
    try:
        st = c.path.stat()
    except OSError as exc:
        return os_problem(c.rel, exc)
    if (st.st_size, st.st_mtime_ns) != (c.size, c.mtime_ns):
        return Problem(c.rel, "changing", "file changed while it was read; scan again later")
    return _Examined(c, fp, info, error)


def size_matters_below(pools: Sequence[Pool]) -> int:
    """The picture height under which some pool skips a source as too small (the tallest
    rendition's), 0 when none does."""
    return max((p.applies.target_height or 0 for p in pools), default=0)


def _default_decide(info: MediaInfo, pool: Pool, source_name: str) -> Decision:
    from hevcq.media.decide import decide  # noqa: PLC0415  (kept lazy: the scan core needs no decide)

    return decide(info, pool, source_name)


def nearest_existing(path: Path) -> Path:
    """``path`` if it exists, else the nearest folder above it that does: where a
    folder a run would make is made, so whose file system and permissions count."""
    return next(p for p in [path.absolute(), *path.absolute().parents] if p.exists())


def name_max(folder: Path) -> int:
    """The longest file name, in bytes, the file system of ``folder`` (or of the nearest
    folder above it that exists) takes; 255, the common limit, when it does not say."""
    try:
        return int(os.pathconf(nearest_existing(folder), "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


class _Scan:
    """The state of one scan; methods take files in sorted order."""

    def __init__(
        self,
        pools: Sequence[Pool],
        store: Catalog,
        options: ScanOptions,
        decide_fn: DecideFn,
        out_dir: Path | None = None,
        *,
        root: Path | None = None,
        move: bool = False,
    ) -> None:
        self.pools, self.store, self.options, self.decide_fn = pools, store, options, decide_fn
        self.below = size_matters_below(pools)
        self.out_dir, self.move = out_dir, move
        self.name_max = name_max(out_dir) if out_dir is not None else None
        self.hashes = {p.name: p.settings_hash() for p in pools}
        self.files = store.load_files()
        self.stored_decisions = store.load_decisions()
        self.replacements = store.load_replacements()
        self.rollbacks = store.load_rollbacks()
        # A file renamed or moved since keeps its inode, size and mtime: what hevcq knows of
        # it (its probe, that hevcq swapped it in, that a rollback put it back) goes along.
        self.by_identity = _by_identity(self.files.values())
        self.replaced_by_identity = _by_identity(self.replacements.values())
        self.rolled_back_by_identity = _by_identity(self.rollbacks.values())
        # An original hevcq replaced still owns its content: its copies stay duplicates of
        # it on every run, instead of one more copy being converted each time.
        self.seen: dict[str, str] = {
            r.original_fingerprint: r.original
            for r in sorted(self.replacements.values(), key=lambda r: r.original, reverse=True)
            if r.original_fingerprint
        }
        self.uploaded: dict[str, str] = {}
        self.uploaded_gone: set[str] = set()  # paths of those uploads gone from the disk
        self.sent_files = self.sent_bytes = 0
        self.limit_reached = False
        self.entries: list[FileEntry] = []
        self.problems: list[Problem] = []
        self.new_files: list[FileRecord] = []
        self.refreshed: list[FileRecord] = []  # new identities of unchanged content
        self.renewed: list[Replacement] = []  # the same, for files hevcq swapped in
        self.renewed_rollbacks: list[Rollback] = []  # and for originals put back
        self.touched_kept = 0
        self.new_decisions: list[tuple[str, str, PoolRecord]] = []
        self.reused = self.probed = 0
        self.sharing: frozenset[str] = frozenset()
        self.stems: frozenset[str] = frozenset()  # keys.sharing_stems
        self.by_name = {p.name: p for p in pools}
        self.follower = (
            Follower(
                root,
                out_dir,
                self.files,
                self.stored_decisions,
                placed=lambda rel, pool, ext: self._placed(rel, self.by_name[pool], with_ext=ext),
                ladders={p.name for p in pools if p.ladder is not None},
            )
            if out_dir is not None and root is not None
            else None
        )
        primary = primary_pool(pools)
        self.sharer = (
            Sharer(
                root,
                out_dir,
                primary,
                placed=lambda rel, pool, ext: self._placed(rel, self.by_name[pool], with_ext=ext),
            )
            if out_dir is not None and root is not None and primary is not None
            else None
        )

    def recheck_touched(self, present: Mapping[str, Candidate], pool: ThreadPoolExecutor) -> None:
        """Keep what is known of files whose content did not change, only their mtime or
        inode (touched, synced, restored from a backup, copied to another disk).

        Such a file is the same content when its whole-file hash is the one taken as it
        was sent: its record, decisions and outcomes stay, under its new identity, and
        nothing is probed or encoded again. Any other change (another size, another hash,
        or no hash taken: it was never sent) makes it a new version, as before. The
        sampled fingerprint cannot tell this: an edit in place between its windows keeps
        it, and an output of the earlier content would then pass for the new one's.
        """
        touched = [
            (c, rec)
            for c in present.values()
            if (rec := self.files.get(c.rel)) is not None and _touched(rec, c)
        ]
        for (c, rec), same in zip(touched, pool.map(_same_content, touched), strict=True):
            if same:
                kept = replace(rec, mtime_ns=c.mtime_ns, inode=c.inode)
                self.files[c.rel] = kept
                self.refreshed.append(kept)
        self.touched_kept = len(self.refreshed)

    def recheck_marks(self, present: Mapping[str, Candidate], pool: ThreadPoolExecutor) -> None:
        """Keep knowing the files hevcq swapped in, and the originals a rollback put back,
        once they are touched, synced or restored (``_recheck``).

        A swapped-in file's mark holds by size, mtime and inode; with a new mtime it would
        pass for a new source, and the rendition pools would encode hevcq's own HEVC copy (a
        rendition of a rendition, over the one made from the original). An original put
        back would lose its mark the same way, and the next ``--replace`` run would swap it
        out again, against the choice its rollback recorded.
        """
        self.renewed = _recheck(self.replacements, present, pool)
        if self.renewed:
            self.replaced_by_identity = _by_identity(self.replacements.values())
        self.renewed_rollbacks = _recheck(self.rollbacks, present, pool)
        if self.renewed_rollbacks:
            self.rolled_back_by_identity = _by_identity(self.rollbacks.values())

    def index_uploads(self, present: Mapping[str, Candidate]) -> None:
        """Fingerprints whose upload still holds that content (path gone or unchanged)."""
        for rec in sorted(self.files.values(), key=lambda r: r.rel, reverse=True):
            cur = present.get(rec.rel)
            if rec.uploaded and (cur is None or _same_version(rec, cur)):
                self.uploaded[rec.fingerprint] = rec.rel
                if cur is None:
                    self.uploaded_gone.add(rec.rel)

    def index_done(self, present: Mapping[str, Candidate]) -> None:
        """Content whose outputs an earlier run made stays with that path, unchanged and
        still there: a copy added since is its duplicate, even one that sorts first,
        instead of taking the content over and being encoded again. (The embedded farm
        keeps no upload to say so; a configured farm's upload ranks first.)"""
        for rel, pools in sorted(self.stored_decisions.items()):
            rec, cur = self.files.get(rel), present.get(rel)
            if rec is None or cur is None or not _same_version(rec, cur):
                continue
            if rec.fingerprint and any(r.outcome == "done" for r in pools.values()):
                self.seen.setdefault(rec.fingerprint, rel)

    def known(self, c: Candidate) -> FileRecord | None:
        """The stored record if this exact version was seen, by path or (renamed) by inode;
        None also where a pool added since needs what its probe did not read."""
        rec = self.files.get(c.rel)
        if rec is not None and _same_version(rec, c):
            if rec.info is not None and not sized_enough(rec.info, self.below):
                return None
            return rec if rec.info is not None or rec.probe_error else None
        moved = self.by_identity.get((c.inode, c.size, c.mtime_ns))
        if moved is None or moved.info is None:
            return None
        renamed = FileRecord(
            rel=c.rel,
            size=c.size,
            mtime_ns=c.mtime_ns,
            inode=c.inode,
            fingerprint=moved.fingerprint,
            info=moved.info,
            probe_error=None,
            content_hash=moved.content_hash,
        )
        self.new_files.append(renamed)
        return renamed

    def add(self, c: Candidate, rec: FileRecord, cached: bool) -> None:
        """Report one file: problem, or entry with decisions and status."""
        if rec.info is None:
            self.problems.append(Problem(c.rel, "probe_failed", rec.probe_error or "probe failed"))
            return
        stored = self.stored_decisions.get(c.rel, {}) if cached else {}
        made = self.replacements.get(c.rel) or self.replaced_by_identity.get(
            (c.inode, c.size, c.mtime_ns)
        )
        rolled_back: dict[str, Decision] = {}
        if made is not None and made.holds(c.size, c.mtime_ns, c.inode):
            # Renditions are made from originals: a file hevcq swapped in is no source,
            # whatever pool asks (a new pool, changed settings), until it changes.
            why = Skip(f"hevcq made this file from {made.original}; pools encode originals only")
            decisions: dict[str, Decision] = {p.name: why for p in self.pools}
        else:
            decisions = {
                p.name: self._decision(c.rel, rec.info, p, stored.get(p.name)) for p in self.pools
            }
            rolled_back = self._rolled_back(c, decisions.keys())
            decisions |= rolled_back
        # An outcome belongs to the decision it was reached under.
        outcomes: dict[str, PoolState] = {
            p: stored[p].outcome
            if p in stored and stored[p].settings_hash == self.hashes[p]
            else "pending"
            for p in decisions
        }
        for pool in self._missing_outputs(c.rel, outcomes):
            outcomes[pool] = "pending"  # done, but not in this --out: bring it home again
        followed = self._follow(c.rel, rec.fingerprint, decisions, outcomes)
        outcomes |= dict.fromkeys(followed, "done")
        shared = self._share(c.rel, rec, decisions, outcomes)
        outcomes |= dict.fromkeys(shared, "done")
        for pool in rolled_back:
            outcomes[pool] = "skipped"  # its earlier "done" was the replacement, now undone
        if self.options.retry_failed:
            # A failure settles a pool until the file or the pool changes; asked, try again.
            outcomes = {p: "pending" if o == "failed" else o for p, o in outcomes.items()}
        status, first = self._classify(c, rec, decisions, outcomes)
        key = rec.upload_key if status == "uploaded" else None
        if status == "send":
            try:
                key = todo_key(c.rel)
            except PermanentError as exc:
                self.problems.append(Problem(c.rel, "bad_path", str(exc)))
                return
            too_long = self._name_too_long(c.rel, decisions)
            if too_long:
                # Every encode of it would be made, then refused at its placement.
                self.problems.append(Problem(c.rel, "bad_path", too_long))
                return
            self.sent_files, self.sent_bytes = self.sent_files + 1, self.sent_bytes + c.size
        self.entries.append(
            FileEntry(
                rel=c.rel,
                size=c.size,
                duration_s=_length(rec.info),
                duration_guessed=rec.info.duration_guess_s is not None,  # only where none is stated
                fingerprint=rec.fingerprint,
                status=status,
                decisions=decisions,
                outcomes=outcomes,
                duplicate_of=first,
                duplicate_gone=first in self.uploaded_gone,
                upload_key=key,
                cached=cached,
                with_source_ext=c.rel in self.sharing,
                shares_stem=c.rel in self.stems,
                kept=frozenset(rolled_back),
                followed=followed,
                shared=shared,
            )
        )

    def _follow(
        self,
        rel: str,
        fingerprint: str,
        decisions: Mapping[str, Decision],
        outcomes: Mapping[str, PoolState],
    ) -> dict[str, str]:
        """The pools whose output ``rel`` takes over from the path its content had before
        (pool -> that path): moved now, or in a dry run, the moves a run would make."""
        if self.follower is None or not self._first_with(fingerprint, rel):
            return {}  # no --out, or a duplicate: the first file with this content takes them
        followed: dict[str, str] = {}
        for pool in self._to_encode_into_out(decisions, outcomes):
            decision = decisions[pool]
            move = self.follower.find(rel, fingerprint, pool, self.hashes[pool], decision)
            if move is None:
                continue
            if self.move:
                self.flush()  # the new path's records are stored before its outcome moves
                if not self.follower.move(
                    self.store, move, PoolRecord(self.hashes[pool], decision)
                ):
                    continue
            else:
                self.follower.taken.add((move.old, pool))  # what a run would move
            followed[pool] = move.old
        return followed

    def _share(
        self,
        rel: str,
        rec: FileRecord,
        decisions: Mapping[str, Decision],
        outcomes: Mapping[str, PoolState],
    ) -> dict[str, str]:
        """The pools that take a copy of the primary pool's output of ``rel`` from an
        earlier run instead of encoding it again (pool -> the primary's name): copied now,
        or in a dry run, the copies a run would make."""
        if self.sharer is None or rec.info is None or not self._first_with(rec.fingerprint, rel):
            return {}  # no --out or no primary in this run, or a duplicate
        primary = self.sharer.primary.name
        if outcomes.get(primary) != "done" or primary in self.options.replace_pools:
            return {}  # a swapped-in output is no longer in --out
        shared: dict[str, str] = {}
        for pool in self._to_encode_into_out(decisions, outcomes):
            share = self.sharer.find(rel, rec.info, self.by_name[pool])
            if share is None:
                continue
            if self.move:
                self.flush()  # the pool's decision is stored before its outcome is set
                if not self.sharer.copy(self.store, share):
                    continue
            shared[pool] = primary
        return shared

    def _first_with(self, fingerprint: str, rel: str) -> bool:
        """Whether ``rel`` is the first file with this content (the one uploaded, or the
        first in path order), not a duplicate of another."""
        return self.uploaded.get(fingerprint, self.seen.get(fingerprint, rel)) == rel

    def _to_encode_into_out(
        self, decisions: Mapping[str, Decision], outcomes: Mapping[str, PoolState]
    ) -> list[str]:
        """The pools still to encode a file (pending), whose output goes to ``--out``."""
        return [
            pool
            for pool, decision in decisions.items()
            if outcomes.get(pool) == "pending"
            and isinstance(decision, EncodePlan)
            and pool not in self.options.replace_pools
        ]

    def _rolled_back(self, c: Candidate, pools: Iterable[str]) -> dict[str, Decision]:
        """The replacing pool's decision for an original a rollback put back: left alone."""
        back = self.rollbacks.get(c.rel) or self.rolled_back_by_identity.get(
            (c.inode, c.size, c.mtime_ns)
        )
        if back is None or not back.holds(c.size, c.mtime_ns, c.inode):
            return {}
        return {pool: Skip(back.reason) for pool in self.options.replace_pools & set(pools)}

    def _placed(self, rel: str, p: Pool, *, with_ext: bool | None = None) -> str:
        """Where ``rel``'s output in pool ``p`` lands below ``<out>/<pool>/``
        (``with_ext``: whether the name keeps the source's extension; by default, as this
        scan's sources share names and stems, ``keys.keeps_ext``)."""
        ext = (
            keeps_ext(
                rel,
                p.fixed_extension,
                sharing_name=rel in self.sharing,
                sharing_stem=rel in self.stems,
            )
            if with_ext is None
            else with_ext
        )
        out = output_relative(
            rel, p.output_suffix, with_source_ext=ext, extension=p.fixed_extension
        )
        return local_master(out) if p.ladder is not None else out

    def _missing_outputs(self, rel: str, outcomes: Mapping[str, PoolState]) -> list[str]:
        """Pools whose job is done but whose output is not in this run's ``--out``.

        A swapped-in output needs no check: the file it replaced is no longer a source.
        """
        if self.out_dir is None:
            return []
        return [
            p.name
            for p in self.pools
            if outcomes.get(p.name) == "done"
            and not self.out_dir.joinpath(p.name, *self._placed(rel, p).split("/")).is_file()
        ]

    def _name_too_long(self, rel: str, decisions: Mapping[str, Decision]) -> str | None:
        """Why an output of ``rel`` could not be placed under this run's ``--out``: a part
        of its name longer than that file system allows (a pool's suffix makes a name
        near the limit longer still); None when every one fits, or no ``--out`` is known."""
        if self.out_dir is None or self.name_max is None:
            return None
        for p in self.pools:
            if not isinstance(decisions.get(p.name), EncodePlan):
                continue
            for part in self._placed(rel, p).split("/"):
                size = len(os.fsencode(part))
                if size > self.name_max:
                    return (
                        f"name too long for its {p.name} output: {size} bytes with the pool's"
                        f" suffix, where {self.out_dir} allows {self.name_max}; rename it"
                        f" {size - self.name_max} bytes shorter"
                    )
        return None

    def _decision(self, rel: str, info: MediaInfo, pool: Pool, old: PoolRecord | None) -> Decision:
        if old is not None and old.settings_hash == self.hashes[pool.name]:
            return old.decision
        try:
            decision = self.decide_fn(info, pool, rel)
        except PermanentError as exc:
            decision = Skip(f"cannot decide: {exc}")
        self.new_decisions.append((rel, pool.name, PoolRecord(self.hashes[pool.name], decision)))
        return decision

    def _classify(
        self,
        c: Candidate,
        rec: FileRecord,
        decisions: Mapping[str, Decision],
        outcomes: Mapping[str, PoolState],
    ) -> tuple[Status, str | None]:
        fp = rec.fingerprint
        first = self.uploaded.get(fp, c.rel)
        if first == c.rel:
            first = self.seen.setdefault(fp, c.rel)
        if first != c.rel:
            return "duplicate", first
        if rec.uploaded:
            return "uploaded", None
        encode = [p for p, d in decisions.items() if isinstance(d, EncodePlan)]
        if not encode:
            return "skip", None
        if all(outcomes.get(p) in SETTLED for p in encode):
            return "finished", None
        if self._over_limit(c.size):
            return "deferred", None
        return "send", None

    def _over_limit(self, size: int) -> bool:
        o = self.options
        over = (o.max_files is not None and self.sent_files + 1 > o.max_files) or (
            o.max_bytes is not None and self.sent_bytes + size > o.max_bytes
        )
        self.limit_reached = self.limit_reached or over
        return self.limit_reached

    def flush(self) -> None:
        """Persist new probes and decisions of the last batch in one transaction."""
        if not (
            self.new_files
            or self.new_decisions
            or self.refreshed
            or self.renewed
            or self.renewed_rollbacks
        ):
            return
        with self.store.transaction():
            for made in self.renewed:
                self.store.renew_replacement(made.rel, made.mtime_ns, made.inode, made.content_hash)
            for back in self.renewed_rollbacks:
                self.store.renew_rollback(back.rel, back.mtime_ns, back.inode, back.content_hash)
            for rec in self.refreshed:
                self.store.put_file(rec)  # its decisions and outcomes stay
            for rec in self.new_files:
                self.store.put_file(rec)
                self.store.drop_decisions(rec.rel)
            for rel, pool, prec in self.new_decisions:
                self.store.put_decision(rel, pool, prec)
        self.new_files, self.new_decisions, self.refreshed = [], [], []
        self.renewed, self.renewed_rollbacks = [], []

    def totals(self) -> dict[str, PoolTotals]:
        """Per-pool work among the files to send: the pools that encode them in this run,
        not those an earlier run settled."""
        out = {p.name: PoolTotals() for p in self.pools}
        for e in self.entries:
            if e.status == "send":
                for pool in e.pools_pending:
                    t, seconds = out[pool], e.duration_s or 0.0
                    out[pool] = PoolTotals(
                        t.files + 1,
                        t.bytes + e.size,
                        t.seconds + seconds,
                        t.weighed_seconds
                        + seconds * work_share(e.decisions.get(pool), e.duration_s),
                    )
        return out


def _length(info: MediaInfo) -> float | None:
    """A source's length for planning: the one it states, or a bare stream's guess."""
    return info.duration_s if info.duration_s is not None else info.duration_guess_s


class _Identified(Protocol):
    @property
    def inode(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...


_R = TypeVar("_R", bound=_Identified)


def _by_identity(records: Iterable[_R]) -> dict[tuple[int, int, int], _R]:
    """``records`` by what a rename or a move keeps: inode, size and mtime."""
    return {(r.inode, r.size, r.mtime_ns): r for r in records}


def _same_version(rec: FileRecord, c: Candidate) -> bool:
    return (rec.size, rec.mtime_ns, rec.inode) == (c.size, c.mtime_ns, c.inode)


def _touched(rec: FileRecord, c: Candidate) -> bool:
    """Another version of a file whose content was hashed whole, of the same size: its
    content may be the same (``_Scan.recheck_touched``)."""
    return (
        rec.content_hash is not None
        and rec.info is not None
        and rec.size == c.size
        and not _same_version(rec, c)
    )


def _same_content(pair: tuple[Candidate, FileRecord]) -> bool:
    """True when the file now at ``c`` still holds the content ``rec`` hashed whole, and
    did not change while it was read (runs in a worker thread)."""
    c, rec = pair
    return rec.content_hash is not None and _holds_content((c, rec.content_hash))


_Mark = TypeVar("_Mark", Replacement, Rollback)


def _recheck(
    marks: dict[str, _Mark], present: Mapping[str, Candidate], pool: ThreadPoolExecutor
) -> list[_Mark]:
    """Renew ``marks`` (by relative path, changed in place) whose file is there with the
    same size under another mtime or inode, and hashes whole to the mark's content hash:
    the same file, touched, synced or restored. Any other change leaves the mark not
    holding, as before, and drops its hash, so later scans do not read the file whole
    again. Returns the marks changed, for the catalog."""
    touched = [
        (c, m, m.content_hash)
        for m in marks.values()
        if (c := present.get(m.rel)) is not None
        and m.content_hash is not None
        and m.size == c.size
        and not m.holds(c.size, c.mtime_ns, c.inode)
    ]
    checks = [(c, content_hash) for c, _, content_hash in touched]
    changed = []
    for (c, m, _), same in zip(touched, pool.map(_holds_content, checks), strict=True):
        if same:
            marks[m.rel] = replace(m, mtime_ns=c.mtime_ns, inode=c.inode)
        else:
            marks[m.rel] = replace(m, content_hash=None)
        changed.append(marks[m.rel])
    return changed


def _holds_content(pair: tuple[Candidate, str]) -> bool:
    """True when the file now at ``c`` hashes whole to ``content_hash`` and did not change
    while it was read (runs in a worker thread)."""
    c, content_hash = pair
    return hashes_to(c.path, content_hash, (c.size, c.mtime_ns, c.inode))


def _batches(items: Sequence[Candidate], size: int) -> Iterator[Sequence[Candidate]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def scan(
    root: Path,
    pools: Sequence[Pool],
    store: Catalog,
    options: ScanOptions | None = None,
    *,
    probe_fn: ProbeFn | None = None,
    decide_fn: DecideFn = _default_decide,
    fingerprint_fn: FingerprintFn | None = None,
    workers: int = 8,
    out_dir: Path | None = None,
    move: bool = False,
) -> ScanReport:
    """Walk ``root``, reuse what the store knows, probe the rest in threads, decide per pool.

    With ``out_dir`` (a run that brings outputs home there), a job counts as done only
    while its output is in that folder; otherwise it is to do again. A file renamed or
    moved since its outputs came home there takes them along (``hevcq.library.follow``):
    with ``move`` they are renamed now; without, the report says what a run would move.
    """
    started = time.perf_counter()
    options = options or ScanOptions()
    if probe_fn is None:
        # A VP8/VP9 recording that starts small is read through only where a rendition
        # pool would skip it by its header's size (media/picshape.py).
        probe_fn = functools.partial(probe_main, below=size_matters_below(pools))
    fp_fn = fingerprint_fn or (lambda p: fingerprint(p, full=options.full_hash))
    candidates, walk_problems = walk(root, options)
    state = _Scan(pools, store, options, decide_fn, out_dir, root=root, move=move)
    state.problems.extend(walk_problems)
    present = {c.rel: c for c in candidates}
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="scan") as pool:
        state.recheck_touched(present, pool)
        state.recheck_marks(present, pool)
        state.index_uploads(present)
        state.index_done(present)
        if state.follower is not None:
            state.follower.index({c.rel for c in candidates})
        state.sharing = sharing_sources(c.rel for c in candidates)
        state.stems = sharing_stems(c.rel for c in candidates)
        # Batches keep the order (duplicates point at the first path) and let a limit stop
        # the probing early instead of after the whole library.
        for batch in _batches(candidates, max(1, workers) * 8):
            _scan_batch(state, batch, pool, probe_fn, fp_fn)
            state.flush()
    problems = sorted(state.problems, key=lambda p: p.rel)
    elapsed = time.perf_counter() - started
    report = ScanReport(
        root,
        tuple(state.entries),
        tuple(problems),
        state.totals(),
        state.reused,
        state.probed,
        elapsed,
        state.touched_kept,
    )
    log.info(
        "library_scanned",
        root=str(root),
        files=len(report.entries),
        reused=report.reused,
        probed=report.probed,
        touched_kept=state.touched_kept,
        problems=len(problems),
        elapsed_s=round(elapsed, 3),
    )
    return report


def _scan_batch(
    state: _Scan,
    batch: Sequence[Candidate],
    pool: ThreadPoolExecutor,
    probe_fn: ProbeFn,
    fp_fn: FingerprintFn,
) -> None:
    known = {c.rel: state.known(c) for c in batch}
    fresh = [c for c in batch if known[c.rel] is None]
    if state.limit_reached:
        fresh = []  # nothing more can be sent this run: do not spend time probing
    examined = pool.map(lambda c: _examine(c, probe_fn, fp_fn), fresh)
    results = dict(zip((c.rel for c in fresh), examined, strict=True))
    for c in batch:
        rec = known[c.rel]
        if rec is not None:
            state.reused += 1
            state.add(c, rec, cached=c.rel in state.files and rec is state.files[c.rel])
            continue
        res = results.get(c.rel)
        if res is None:
            state.entries.append(
                FileEntry(
                    rel=c.rel, size=c.size, duration_s=None, fingerprint="", status="deferred"
                )
            )
        elif isinstance(res, Problem):
            state.problems.append(res)
        else:
            state.probed += 1
            rec = FileRecord(
                rel=c.rel,
                size=c.size,
                mtime_ns=c.mtime_ns,
                inode=c.inode,
                fingerprint=res.fingerprint,
                info=res.info,
                probe_error=res.error,
            )
            state.new_files.append(rec)
            state.add(c, rec, cached=False)
