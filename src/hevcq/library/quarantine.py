"""Placing outputs in a library: verified, atomic, and reversible through a quarantine."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from hevcq.errors import PermanentError, RunHalted, VerificationError
from hevcq.keys import output_extension
from hevcq.library.walk import fingerprint, hashes_to
from hevcq.limits import MiB
from hevcq.media.equality import same_media
from hevcq.media.model import MediaInfo
from hevcq.media.probe import ProbeFn, probe
from hevcq.media.splice import refuse_moved_picture
from hevcq.media.verify import (
    DECODE_SHORTFALL_S,
    DURATION_TOLERANCE_S,
    as_played,
    decoded_seconds,
    readable_video_end,
    sound_seconds,
    subtitle_packets,
)

log = structlog.get_logger()

MANIFEST = "manifest.json"
DEFAULT_QUARANTINE = Path(".hevcq") / "quarantine"  # inside the library: same filesystem
_COPY_CHUNK = MiB
# What link(2) answers on filesystems without hard links (vfat/exFAT: EPERM; FUSE, SMB).
_NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK})

DecodeFn = Callable[[Path], float]  # seconds of video decoded; raises VerificationError
# How long a file's video stream (by index) reads, its packets demuxed; None when unknown.
VideoSpanFn = Callable[[Path, int], float | None]
# Seconds of sound each audio stream of a file decodes to, by index (verify.sound_seconds).
SoundFn = Callable[[Path], dict[int, float]]
# Packets each subtitle stream of a file carries, by index (verify.subtitle_packets).
SubtitlePacketsFn = Callable[[Path], dict[int, int]]


class ReplaceRefused(PermanentError):
    """An output may not take a file's place; the message says why."""


class LargerThanOriginal(ReplaceRefused):
    """The output saves nothing: the original is kept (not a failure)."""


class OutputExists(ReplaceRefused):
    """The destination holds a different file and overwriting was not asked for."""


class OutputFolderUnusable(RunHalted):
    """No output can be placed in a folder until someone acts (full, read-only, no access):
    the run stops, keeping what it placed; the message names the folder and what is needed."""


# --- verification ---------------------------------------------------------------------------


def compare(candidate: MediaInfo, original: MediaInfo) -> str | None:
    """Why a candidate cannot replace an original (streams, subtitles it would lose,
    duration), or None."""
    # An audio stream without a shape (``AudioStream.known``) is in no output; what it
    # holds is looked at when the sound is decoded (``_sound_kept``).
    counts = [
        (sum(not v.attached_pic for v in i.video), sum(a.known for a in i.audio))
        for i in (candidate, original)
    ]
    if counts[0] != counts[1]:
        return f"stream counts differ: (video, audio) {counts[0]} vs original {counts[1]}"
    lost = _lost(candidate, original)
    if lost:
        return lost
    if candidate.duration_s is None or original.duration_s is None:
        return "duration unknown, cannot compare"
    gap = abs(candidate.duration_s - original.duration_s)
    if gap > DURATION_TOLERANCE_S:
        return (
            f"duration {candidate.duration_s:.2f} s differs from the original's "
            f"{original.duration_s:.2f} s by more than {DURATION_TOLERANCE_S} s"
        )
    return None


def _lost(candidate: MediaInfo, original: MediaInfo) -> str | None:
    """What of the original, beside its picture and sound, the candidate would lose in
    its place (subtitles, telemetry, a 360-degree mapping), or None."""
    # MP4 holds text subtitles only: a disc's or a broadcast's bitmap subtitles (PGS, DVD,
    # DVB) are left out of an MP4 output, which is fine beside the original and a loss in
    # its place.
    subtitles = len(candidate.subtitles), len(original.subtitles)
    if subtitles[0] < subtitles[1]:
        why = (
            " (an MP4 cannot hold bitmap subtitles; a pool with container: mkv keeps them)"
            if "mp4" in candidate.format_name.split(",")
            else ""
        )
        return f"it holds {subtitles[0]} of the original's {subtitles[1]} subtitle streams{why}"
    kept = len(candidate.telemetry), len(original.telemetry)
    if kept[0] < kept[1]:
        return (
            f"it holds {kept[0]} of the original's {kept[1]} telemetry streams (a GoPro's GPS"
            " and sensor data; a pool with container: mp4 keeps them)"
        )
    if _spherical(original) and not _spherical(candidate):
        # An output made before 360-degree mappings were kept (decision 0040) plays as a
        # flat panorama: in the original's place, the mapping would be gone for good.
        return "it lacks the original's spherical (360-degree) mapping: it would play flat"
    return None


def _spherical(info: MediaInfo) -> bool:
    video = info.main_video
    return video is not None and video.spherical


def verify_replacement(
    candidate: Path,
    original: Path,
    *,
    allow_larger: bool,
    probe_fn: ProbeFn = probe,
    decode_fn: DecodeFn = decoded_seconds,
    video_span_fn: VideoSpanFn = readable_video_end,
    sound_fn: SoundFn = sound_seconds,
    subtitles_fn: SubtitlePacketsFn = subtitle_packets,
) -> None:
    """Raise ``ReplaceRefused`` unless ``candidate`` can stand in for ``original``; reads only.

    The candidate is decoded in full (``hevcq.media.verify.decoded_seconds``) after its streams
    and duration are compared with the original's, and its picture must last as long as
    the original's does (its packets read, nothing decoded) or the file, whichever is
    shorter. Not always as long as the file: a picture that starts after the sound (a
    recording whose first frame comes 2 s after its audio) or ends before it lasts less
    than the file in the original too, and its faithful encode was refused as truncated.
    """
    size, orig_size = candidate.stat().st_size, original.stat().st_size
    if size > orig_size and not allow_larger:
        raise LargerThanOriginal(f"larger than the original ({size} > {orig_size} bytes)")
    try:
        info = probe_fn(candidate)
    except PermanentError as exc:
        raise ReplaceRefused(f"candidate unreadable: {exc}") from exc
    try:
        orig_info = probe_fn(original)
    except PermanentError as exc:
        raise ReplaceRefused(f"original unreadable, nothing to compare with: {exc}") from exc
    # A subtitle stream of the original that carries nothing (a broadcast's DVB subtitles
    # in a programme without any) is nothing an output can lose.
    carried = subtitles_fn(original)
    held = tuple(s for s in orig_info.subtitles if carried.get(s.index, 1) > 0)
    reason = compare(info, as_played(dataclasses.replace(orig_info, subtitles=held), original))
    if reason:
        raise ReplaceRefused(reason)
    try:
        refuse_moved_picture(original)  # what follows is in no output
    except PermanentError as exc:
        raise ReplaceRefused(f"the original: {exc}") from exc
    # Every frame, whatever the pool's verify policy let through: this is the check that
    # stands between an original and its deletion.
    try:
        decoded = decode_fn(candidate)
    except VerificationError as exc:
        raise ReplaceRefused(str(exc)) from exc
    video = orig_info.main_video
    picture = video_span_fn(original, video.index) if video is not None else None
    # The shorter of the two: packets an edit list skips are read too (an MP4 trimmed
    # on a phone holds 8 s from its keyframe and plays 6.7), and the file's length,
    # already within a tolerance of the original's, bounds them.
    spans = [s for s in (picture, info.duration_s) if s is not None]
    expected = min(spans) if spans else None
    if expected is not None and decoded < expected - DECODE_SHORTFALL_S:
        raise ReplaceRefused(f"only {decoded:.2f} s of {expected:.2f} s decode: truncated")
    _sound_kept(candidate, original, (info, orig_info), sound_fn)


def _sound_kept(
    candidate: Path, original: Path, infos: tuple[MediaInfo, MediaInfo], sound_fn: SoundFn
) -> None:
    """Raise ``ReplaceRefused`` unless each of the candidate's audio streams decodes to as
    much sound as the original's does, within ``DURATION_TOLERANCE_S``, and the
    original's streams without a shape (left out of every output) hold none.

    The video check above proves nothing of the sound, and a file whose sound is missing
    or wrong in places plays and probes like a good one: AAC copied from MPEG-TS across a
    change of channels (silence from the change on) or of sample rate (too fast, too
    short), where an encode made before ``hevcq.media.soundshape`` did so. A stream without a
    shape is usually empty; one that starts after the stretch a probe reads is not, and
    the output lacks it.
    """
    try:
        ours, theirs = sound_fn(candidate), sound_fn(original)
    except VerificationError as exc:
        raise ReplaceRefused(f"its sound {exc}") from exc
    info, orig_info = infos
    kept = [a for a in orig_info.audio if a.known]
    for n, (mine, was) in enumerate(zip(info.audio, kept, strict=False), start=1):
        got, had = ours.get(mine.index, 0.0), theirs.get(was.index, 0.0)
        if got < had - DURATION_TOLERANCE_S:
            raise ReplaceRefused(
                f"audio stream {n} decodes to {got:.2f} s of sound where the original's"
                f" gives {had:.2f} s"
            )
    for stream in orig_info.audio:
        held = theirs.get(stream.index, 0.0)
        if not stream.known and held > DURATION_TOLERANCE_S:
            raise ReplaceRefused(
                f"the original's stream {stream.index} holds {held:.2f} s of sound starting"
                " past what a probe reads, and no output has it"
            )


# --- durable filesystem steps ----------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some filesystems (SMB, some FUSE mounts) cannot sync a directory; renames there
        # are as durable as they get.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _temp_name(folder: Path) -> Path:
    return folder / f".hevcq-{uuid.uuid4().hex}.part"  # generated, never from user paths


def _stage(source: Path, tmp: Path) -> Path:
    """Copy ``source`` to the new file ``tmp``, synced to disk."""
    try:
        with source.open("rb") as src, tmp.open("xb") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def _synced(path: Path) -> Path:
    with path.open("rb+") as fh:
        os.fsync(fh.fileno())
    return path


def rename_no_clobber(src: Path, dst: Path) -> None:
    """Rename, failing with ``OutputExists`` rather than replacing whatever is at ``dst``."""
    try:
        dst.hardlink_to(src)  # atomic "create if absent"
    except FileExistsError as exc:
        raise OutputExists(f"{dst} already exists") from exc
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        # No hard links here (SMB, exFAT): check-then-rename, the best this filesystem offers.
        if os.path.lexists(dst):
            raise OutputExists(f"{dst} already exists") from None
        src.rename(dst)
        return
    src.unlink()


def dated_like(path: Path, original: Path) -> None:
    """Give an output in ``--out`` its original's modification time, as a swapped-in file
    keeps it: a folder sorted by date (a gallery, a file manager) shows each video where it
    was shot, not on the day it was converted. A file system that cannot set it (or an
    original gone meanwhile) leaves the output dated today: it is placed all the same."""
    with contextlib.suppress(OSError):
        os.utime(path, ns=(path.stat().st_atime_ns, original.stat().st_mtime_ns))


def place_output(
    candidate: Path, dest: Path, *, overwrite: bool = False, move: bool = False
) -> Path:
    """Copy ``candidate`` to ``dest`` atomically (temp name, fsync, rename); never clobbers.

    A ``dest`` that already holds the same output (``equality.same_media``: equal bytes,
    or equal streams) is kept as it is: a repeated fetch or a re-run is a no-op. ``move``
    renames a ``candidate`` of ``dest``'s own folder into place instead of copying it, so
    the disk needs room for one copy, not two.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(dest) and not overwrite:
        if dest.is_file() and same_media(candidate, dest):
            log.info("output_already_in_place", path=str(dest))
            return dest
        raise OutputExists(f"{dest} exists and differs; not overwriting")
    tmp = _synced(candidate) if move else _stage(candidate, _temp_name(dest.parent))
    try:
        if overwrite:
            tmp.replace(dest)
        else:
            rename_no_clobber(tmp, dest)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(dest.parent)
    return dest


# --- the quarantine --------------------------------------------------------------------------


class QuarantineEntry(BaseModel):
    """The manifest of one swap: where the original came from and what replaced it."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    id: str
    state: Literal["prepared", "staged", "complete"]
    original: Path
    final: Path
    same_path: bool  # the output takes the original's own path (a.mp4 -> a.mp4)
    temp: Path
    quarantined: Path
    original_size: int
    original_mtime_ns: int
    original_atime_ns: int
    original_inode: int
    # The original's whole-file hash when the caller knew it for this very version (the
    # catalog takes one as a file is sent): a rollback hands it to the catalog's mark, so a
    # sync touching the original put back does not lose that mark.
    original_hash: str | None = None
    staged_size: int | None = None
    staged_inode: int | None = None
    # The staged file's whole-file hash (``walk.fingerprint(full=True)``): touched or synced
    # since (another mtime or inode), the file is still ours while it hashes to this.
    staged_hash: str | None = None
    created_at: datetime
    keep_until: datetime

    @property
    def folder(self) -> Path:
        """This entry's folder in the quarantine."""
        return self.quarantined.parent


def _write_manifest(entry: QuarantineEntry) -> None:
    path = entry.folder / MANIFEST
    tmp = entry.folder / f"{MANIFEST}.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(entry.model_dump_json(indent=2))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    _fsync_dir(entry.folder)


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _holds_original(entry: QuarantineEntry, path: Path) -> bool:
    ident = (entry.original_size, entry.original_mtime_ns, entry.original_inode)
    return _identity(path) == ident


def _holds_ours(entry: QuarantineEntry, path: Path) -> bool:
    """True if ``path`` is still the file we placed: its size, inode, and mtime once
    complete; or, once complete, the same bytes under another mtime or inode (a sync client
    or a restore rewrote it), which ``staged_hash`` tells."""
    ident = _identity(path)
    if ident is None or entry.staged_inode is None:
        return False
    size, mtime_ns, inode = ident
    if (size, inode) == (entry.staged_size, entry.staged_inode) and (
        entry.state != "complete" or mtime_ns == entry.original_mtime_ns
    ):
        return True
    return (
        entry.state == "complete"
        and entry.staged_hash is not None
        and size == entry.staged_size
        and hashes_to(path, entry.staged_hash, ident)
    )


def final_path(original: Path) -> Path:
    """Where the output of ``original`` lands with --replace: its path, output extension."""
    return original.with_suffix(output_extension(original.name))


def _prepare(
    original: Path,
    quarantine_root: Path,
    keep_days: float,
    now: datetime,
    final: Path | None,
    *,
    known: tuple[tuple[int, int, int], str] | None = None,
) -> QuarantineEntry:
    st = original.lstat()
    if original.is_symlink() or not original.is_file():
        raise ReplaceRefused(f"{original} is not a regular file")
    final = final or final_path(original)
    same = final == original or (os.path.lexists(final) and final.samefile(original))
    if os.path.lexists(final) and not same:
        raise ReplaceRefused(f"{final} already exists and is not the original")
    quarantine_root.mkdir(parents=True, exist_ok=True)
    if quarantine_root.stat().st_dev != original.parent.stat().st_dev:
        raise ReplaceRefused(f"quarantine {quarantine_root} is on another filesystem")
    entry_id = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    folder = quarantine_root / entry_id
    folder.mkdir()
    return QuarantineEntry(
        id=entry_id,
        state="prepared",
        original=original.absolute(),
        final=(original if same else final).absolute(),
        same_path=same,
        temp=_temp_name(original.parent).absolute(),
        quarantined=(folder / original.name).absolute(),
        original_size=st.st_size,
        original_mtime_ns=st.st_mtime_ns,
        original_atime_ns=st.st_atime_ns,
        original_inode=st.st_ino,
        original_hash=known[1]
        if known and known[0] == (st.st_size, st.st_mtime_ns, st.st_ino)
        else None,
        created_at=now,
        keep_until=now + timedelta(days=keep_days),
    )


def swap_in(
    original: Path,
    candidate: Path,
    *,
    quarantine_root: Path,
    keep_days: float,
    now: datetime,
    final: Path | None = None,
    original_hash: tuple[tuple[int, int, int], str] | None = None,
) -> QuarantineEntry:
    """Put a verified ``candidate`` in place of ``original``, keeping the original in quarantine.

    The candidate takes the name ``final`` (by default ``final_path(original)``).
    ``original_hash``: the original's whole-file hash and the (size, mtime, inode) it was
    taken at, kept in the manifest while the original is still that version.

    The order makes every crash recoverable from the manifest (``recover`` or ``rollback``):
    1. manifest "prepared" (paths, original's identity), synced: nothing touched yet;
    2. candidate copied to a generated temp name beside the original, fsynced, then the
       manifest says "staged" with the temp's inode: the temp is complete from here on;
    3. original renamed into the quarantine (same filesystem: an atomic rename);
    4. temp renamed to the final name: the final path only ever receives a complete file;
    5. the original's atime/mtime copied; 6. manifest "complete" (the file we placed).
    Before 3 the original is at its path; from 3 on it is in the quarantine with a manifest.
    An error on the way undoes the steps already taken before it is raised.
    """
    entry = _prepare(original, quarantine_root, keep_days, now, final, known=original_hash)
    try:
        _write_manifest(entry)
        _stage_into(entry, candidate)
        entry.original.rename(entry.quarantined)
        _fsync_dir(entry.folder)
        _fsync_dir(entry.original.parent)
        rename_no_clobber(entry.temp, entry.final)
        _fsync_dir(entry.final.parent)
        _finish(entry)
    except (OSError, ReplaceRefused):
        with contextlib.suppress(OSError):
            _undo(entry)  # best effort; what is left is found from the manifest later
        raise
    log.info("output_swapped_in", original=str(entry.original), final=str(entry.final))
    return entry


def _stage_into(entry: QuarantineEntry, candidate: Path) -> None:
    st = _stage(candidate, entry.temp).stat()
    if st.st_size != candidate.stat().st_size:
        raise ReplaceRefused("staged copy has the wrong size")
    entry.staged_hash = fingerprint(entry.temp, full=True)  # read back from the page cache
    entry.staged_size, entry.staged_inode, entry.state = st.st_size, st.st_ino, "staged"
    _write_manifest(entry)


def _finish(entry: QuarantineEntry) -> None:
    os.utime(entry.final, ns=(entry.original_atime_ns, entry.original_mtime_ns))
    entry.state = "complete"
    _write_manifest(entry)


# --- recovery, rollback, purge ---------------------------------------------------------------


@dataclass(frozen=True)
class Conflict:
    """An original a rollback could not put back, why, and where it still is."""

    original: Path
    reason: str
    kept_in: Path | None = None  # its copy in the quarantine, when there is one


def _undo(entry: QuarantineEntry, conflicts: list[Conflict] | None = None) -> bool:
    """Put the original back and remove what we placed; False (and untouched) on conflict,
    which is logged and, given ``conflicts``, added to it."""
    orig, final = entry.original, entry.final

    def conflict(reason: str) -> bool:
        log.warning("rollback_conflict", path=str(orig), reason=reason)
        if conflicts is not None:
            conflicts.append(Conflict(orig, reason, entry.quarantined))
        return False

    if os.path.lexists(entry.quarantined):
        if entry.same_path:
            if os.path.lexists(orig) and not _holds_ours(entry, orig):
                return conflict(
                    "the file there changed since hevcq swapped it in; it stays as it is"
                )
            entry.quarantined.replace(orig)  # atomically replaces our file, if there
        else:
            try:
                rename_no_clobber(entry.quarantined, orig)
            except OutputExists:
                return conflict("another file now has its name; it stays as it is")
        _fsync_dir(orig.parent)
        back = True
    else:
        # Not in the quarantine: never moved (interrupted early), already moved back by an
        # interrupted rollback, or purged; only the last one is a dead end.
        back = _holds_original(entry, orig)
        if not back and entry.state == "complete":
            log.warning("rollback_original_gone", path=str(orig), id=entry.id)
            if conflicts is not None:
                conflicts.append(Conflict(orig, "the original is no longer in the quarantine"))
            return False
    # Our output may only go once the original is known to be at its path again.
    if back and not entry.same_path and _holds_ours(entry, final):
        final.unlink()
    with contextlib.suppress(FileNotFoundError):
        entry.temp.unlink()
    _fsync_dir(orig.parent)
    shutil.rmtree(entry.folder)
    return True


def _read_manifest(folder: Path) -> QuarantineEntry | None:
    try:
        return QuarantineEntry.model_validate_json((folder / MANIFEST).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        log.warning("quarantine_manifest_unreadable", folder=str(folder), error=str(exc))
        return None


def list_quarantine(quarantine_root: Path) -> list[QuarantineEntry]:
    """Every swap recorded in the quarantine, oldest first."""
    if not quarantine_root.is_dir():
        return []
    entries = [_read_manifest(d) for d in sorted(quarantine_root.iterdir()) if d.is_dir()]
    return sorted((e for e in entries if e is not None), key=lambda e: e.created_at)


def recover(quarantine_root: Path) -> list[Path]:
    """Finish interrupted swaps whose output is staged; undo the others. Returns final paths."""
    done = []
    for entry in list_quarantine(quarantine_root):
        if entry.state == "complete":
            continue
        if entry.state == "staged" and os.path.lexists(entry.quarantined):
            if not os.path.lexists(entry.final) and _holds_ours_temp(entry):
                rename_no_clobber(entry.temp, entry.final)
                _fsync_dir(entry.final.parent)
            if _holds_ours(entry, entry.final):
                _finish(entry)
                with contextlib.suppress(FileNotFoundError):
                    entry.temp.unlink()  # a second link left by a crash inside the rename
                done.append(entry.final)
                continue
        _undo(entry)
    return done


def _holds_ours_temp(entry: QuarantineEntry) -> bool:
    ident = _identity(entry.temp)
    return ident is not None and (ident[0], ident[2]) == (entry.staged_size, entry.staged_inode)


def _matches(entry: QuarantineEntry, path: Path | None) -> bool:
    if path is None:
        return True
    target = path.absolute()
    return target in (entry.original, entry.final)


def held(quarantine_root: Path, path: Path | None = None) -> list[QuarantineEntry]:
    """The quarantine's entries (all, or those of the file at ``path``)."""
    return [e for e in list_quarantine(quarantine_root) if _matches(e, path)]


def rollback(
    quarantine_root: Path, path: Path | None = None, conflicts: list[Conflict] | None = None
) -> list[Path]:
    """Put originals back (all, or the one at ``path``), undoing interrupted swaps too;
    those that cannot go back are added to ``conflicts`` when it is given."""
    return [entry.original for entry in rollback_entries(quarantine_root, path, conflicts)]


def rollback_entries(
    quarantine_root: Path, path: Path | None = None, conflicts: list[Conflict] | None = None
) -> list[QuarantineEntry]:
    """``rollback``, returning the manifest of each original put back."""
    restored = []
    for entry in list_quarantine(quarantine_root):
        if _matches(entry, path) and _undo(entry, conflicts):
            log.info("original_restored", path=str(entry.original), id=entry.id)
            restored.append(entry)
    return restored


def purge(quarantine_root: Path, now: datetime) -> list[Path]:
    """Delete quarantined originals whose keep time has passed; returns their old paths."""
    purged = []
    _remove_leftovers(quarantine_root)
    for entry in list_quarantine(quarantine_root):
        if entry.state != "complete" or entry.keep_until > now:
            continue  # interrupted swaps wait for recover or rollback
        # File first, manifest last: a crash in between leaves a manifest without its file,
        # which rollback reports and the next purge removes, never an unexplained file.
        with contextlib.suppress(FileNotFoundError):
            entry.quarantined.unlink()
        shutil.rmtree(entry.folder)
        purged.append(entry.original)
    log.info("quarantine_purged", count=len(purged))
    return purged


def _remove_leftovers(quarantine_root: Path) -> None:
    # An original only moves in after its manifest exists, and the manifest goes last, so a
    # folder without one (a crash before the first manifest write) holds no original.
    if quarantine_root.is_dir():
        for folder in quarantine_root.iterdir():
            if folder.is_dir() and not (folder / MANIFEST).exists():
                shutil.rmtree(folder)
