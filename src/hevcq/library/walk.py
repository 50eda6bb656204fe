"""Finding library files: extensions, globs, symlinks, unreadable folders, fingerprints."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from hevcq.errors import ConfigError
from hevcq.limits import MiB

# Phones, cameras and desktops: containers hevcq reads. Camcorder and broadcast formats
# too (MXF from professional cameras, MOD/TOD from SD camcorders, M2T from HDV, DV), TV
# recorders' (WTV and DVR-MS from Windows Media Center, TP/TRP transport streams from
# set-top boxes), a DVD's bare MPEG-2 video, OGM and RealMedia, so a NAS of recordings
# shows every video: one in a codec no pool takes is a "skipped" row that says so, not a
# file left out without a word. Bare H.264/HEVC streams (a security camera's ``.h264``)
# are read when asked for with ``--ext``: they carry no timing, so their speed is the
# one their stream states or 25 frames a second, as every player guesses it.
_EXTS = (
    ".mp4 .m4v .mov .mkv .avi .ts .mts .m2ts .wmv .flv .webm .3gp .mpg .mpeg .vob"
    " .mxf .mod .tod .m2t .dv .3g2 .f4v .qt .ogv .divx .asf"
    " .wtv .dvr-ms .tp .trp .m2v .ogm .rm .rmvb"
)
DEFAULT_EXTENSIONS = frozenset(_EXTS.split(" "))
# NAS and desktop debris that carries video extensions but is not a video of the user's:
# Synology thumbnails and recycle bin, macOS AppleDouble files, desktop trash folders.
DEFAULT_EXCLUDES = ("@eaDir", "#recycle", "#snapshot", "._*", ".Trash-*", ".Trashes")
HEVCQ_DIR = ".hevcq"  # quarantine and other hevcq folders inside a library
# A folder of hevcq's outputs carries this file at its root (in the spirit of CACHEDIR.TAG):
# the walk never enters it, so a later run with another --out does not encode its
# renditions again. The name alone counts; the content is for the person who finds it.
OUTPUTS_MARKER = ".hevcq-outputs"
OUTPUTS_MARKER_TEXT = "hevcq outputs: this folder is never scanned as a library source.\n"

log = structlog.get_logger()

# Fingerprint sampling (see fingerprint()): files up to FULL_HASH_MAX are hashed whole.
FULL_HASH_MAX = MiB
EDGE_BYTES = 256 << 10
STRIPE_BYTES = 64 << 10
STRIPES = 4
_READ_CHUNK = MiB

ProblemKind = Literal[
    "broken_symlink",
    "symlinked_dir",
    "permission",
    "vanished",
    "unreadable",
    "changing",
    "probe_failed",
    "bad_path",
]


@dataclass(frozen=True, kw_only=True)
class ScanOptions:
    """What to scan: extensions, globs (on the library-relative POSIX path) and limits."""

    extensions: frozenset[str] = DEFAULT_EXTENSIONS
    include: tuple[str, ...] = ()  # empty: every file with a video extension
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES
    max_files: int | None = None  # files selected for sending in this run
    max_bytes: int | None = None
    skip_dirs: tuple[Path, ...] = ()  # e.g. an output folder inside the library
    full_hash: bool = False  # hash whole files instead of sampling (see fingerprint())
    retry_failed: bool = False  # a pool's failure in an earlier run is tried again
    # The pool whose outputs this run swaps in for originals (ingest --replace): it leaves
    # alone an original a rollback put back.
    replace_pools: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Candidate:
    """A file found by the walk, with the stat fields that identify its version."""

    rel: str
    path: Path
    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True)
class Problem:
    """A file or folder the scan skipped, and why."""

    rel: str
    kind: ProblemKind
    reason: str


# --- globs and filters (pure) ------------------------------------------------------------


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a glob to a regex: ``*`` and ``?`` stay in one segment, ``**`` spans many."""
    p, i, out = pattern.strip("/"), 0, []
    while i < len(p):
        if p.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif p.startswith("/**", i) and i + 3 == len(p):
            out.append("(?:/.*)?")  # "dir/**" also names the folder itself, so it is pruned
            i += 3
        elif p.startswith("**", i):
            out.append(".*")
            i += 2
        elif p[i] == "[" and (end := p.find("]", i + 2)) != -1:
            body = p[i + 1 : end].replace("\\", "\\\\")
            out.append(f"[^{body[1:]}]" if body[0] == "!" else f"[{body}]")
            i = end + 1
        else:
            out.append({"*": "[^/]*", "?": "[^/]"}.get(p[i], re.escape(p[i])))
            i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Matcher:
    """Compiled include/exclude globs; a pattern without ``/`` matches the last name only."""

    include: tuple[tuple[re.Pattern[str], bool], ...]
    exclude: tuple[tuple[re.Pattern[str], bool], ...]
    extensions: frozenset[str]

    @classmethod
    def from_options(cls, options: ScanOptions) -> Matcher:
        """Compile the options' globs."""

        def comp(pats: Iterable[str]) -> tuple[tuple[re.Pattern[str], bool], ...]:
            return tuple((glob_regex(p), "/" not in p.strip("/")) for p in pats)

        exts = frozenset("." + e.lower().lstrip(".") for e in options.extensions)
        return cls(comp(options.include), comp(options.exclude), exts)

    @staticmethod
    def _any(pats: tuple[tuple[re.Pattern[str], bool], ...], rel: str) -> bool:
        name = rel.rsplit("/", 1)[-1]
        return any(rx.match(name if base else rel) for rx, base in pats)

    def wants_dir(self, rel: str) -> bool:
        """False when an exclude pattern names this folder."""
        return not self._any(self.exclude, rel)

    def wants_file(self, rel: str) -> bool:
        """Video extension (case-insensitive), included, not excluded."""
        ext = os.path.splitext(rel)[1].lower()  # noqa: PTH122 (hot path: no Path objects)
        if ext not in self.extensions:
            return False
        if self.include and not self._any(self.include, rel):
            return False
        return not self._any(self.exclude, rel)


# --- fingerprints --------------------------------------------------------------------------


def sample_offsets(size: int) -> list[tuple[int, int]]:
    """(offset, length) windows hashed for a file of ``size`` bytes: head, stripes, tail."""
    if size <= FULL_HASH_MAX:
        return [(0, size)]
    windows = [(0, EDGE_BYTES)]
    span = size - 2 * EDGE_BYTES
    windows += [
        (EDGE_BYTES + span * k // (STRIPES + 1), STRIPE_BYTES) for k in range(1, STRIPES + 1)
    ]
    windows.append((size - EDGE_BYTES, EDGE_BYTES))
    return [(off, min(n, size - off)) for off, n in windows]


def fingerprint(path: Path, *, full: bool = False) -> str:
    """BLAKE2b-256 of the size and sampled windows (or the whole file): ``s1:``/``f1:`` + hex.

    Sampling reads at most ~0.75 MiB per file (head and tail 256 KiB, four 64 KiB stripes)
    instead of whole multi-GB files over a NAS. Head and tail hold the container index
    (MP4 ``moov``, Matroska cues), which lists every frame's size, so two different videos
    of the same byte size almost never agree there. The residual risk (a file edited in
    place in its middle without changing size) only ever makes a scan report a duplicate
    and not upload it twice; ``full=True`` (ScanOptions.full_hash) removes that risk.
    """
    h = hashlib.blake2b(digest_size=32)
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        h.update(size.to_bytes(8, "little"))
        if full or size <= FULL_HASH_MAX:
            while chunk := fh.read(_READ_CHUNK):
                h.update(chunk)
            return "f1:" + h.hexdigest()
        for off, n in sample_offsets(size):
            fh.seek(off)
            h.update(fh.read(n))
    return "s1:" + h.hexdigest()


def hashes_to(path: Path, content_hash: str, version: tuple[int, int, int]) -> bool:
    """True when ``path`` hashes whole (``fingerprint(full=True)``) to ``content_hash`` and
    is still the version (size, mtime, inode) it was found as: it did not change while it
    was read. False when it cannot be read."""
    try:
        now = fingerprint(path, full=True)
        st = path.lstat()
    except OSError:
        return False
    return now == content_hash and (st.st_size, st.st_mtime_ns, st.st_ino) == version


# --- the walk --------------------------------------------------------------------------

_scandir = os.scandir  # a seam for tests that simulate unreadable folders


def mark_outputs(out: Path) -> None:
    """Make the output folder ``out`` if missing and mark it with ``OUTPUTS_MARKER``.

    Idempotent: an existing marker is left as it is. An OSError propagates only when the
    folder itself cannot be made (no output could be placed there either); a marker that
    cannot be written is logged as a warning and the run goes on, unmarked.
    """
    out.mkdir(parents=True, exist_ok=True)
    try:
        with (out / OUTPUTS_MARKER).open("x", encoding="utf-8") as fh:
            fh.write(OUTPUTS_MARKER_TEXT)
    except FileExistsError:
        pass
    except OSError as exc:
        log.warning("outputs_marker_not_written", folder=str(out), error=str(exc))


def walk(root: Path, options: ScanOptions) -> tuple[list[Candidate], list[Problem]]:
    """Every wanted file under ``root`` (sorted by relative path) and what could not be read.

    Folders holding ``OUTPUTS_MARKER`` are hevcq's outputs and are skipped, as ``.hevcq``
    and ``options.skip_dirs`` are; a ``root`` holding it is refused with a ConfigError.
    """
    matcher = Matcher.from_options(options)
    skip = {HEVCQ_DIR} | {_rel_inside(root, d) for d in options.skip_dirs} - {None}
    found: list[Candidate] = []
    problems: list[Problem] = []
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with _scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            problems.append(os_problem(prefix.rstrip("/") or ".", exc))
            continue
        if _holds_outputs(root, prefix, entries):
            continue  # hevcq's outputs, like the current --out: never a source
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if rel not in skip and matcher.wants_dir(rel):
                    stack.append((Path(entry.path), rel + "/"))
            elif matcher.wants_file(rel):
                item = _candidate(entry, rel) if _is_text(rel) else _not_text(rel)
                if isinstance(item, Candidate):
                    found.append(item)
                else:
                    problems.append(item)
            elif entry.is_symlink() and matcher.wants_dir(rel) and _is_dir(entry):
                problems.append(Problem(rel, "symlinked_dir", "symlinked folder not followed"))
    found.sort(key=lambda c: c.rel)
    problems.sort(key=lambda p: p.rel)
    return found, problems


def _holds_outputs(root: Path, prefix: str, entries: list[os.DirEntry[str]]) -> bool:
    """True for a folder below ``root`` holding ``OUTPUTS_MARKER``; ``root`` holding it is
    refused (a ConfigError), since every file in it would be hevcq's own output."""
    if not any(entry.name == OUTPUTS_MARKER for entry in entries):
        return False
    if not prefix:
        raise ConfigError(
            f"{root} is an hevcq output folder (it holds {OUTPUTS_MARKER}), not a library:"
            " give the folder of the originals"
        )
    return True


def _rel_inside(root: Path, folder: Path) -> str | None:
    try:
        return folder.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_text(rel: str) -> bool:
    """True when the name decodes as UTF-8 (object keys and the catalog hold text)."""
    try:
        rel.encode()
    except UnicodeEncodeError:  # bytes the file system decoded with surrogateescape
        return False
    return True


def _not_text(rel: str) -> Problem:
    shown = os.fsencode(rel).decode(errors="backslashreplace")
    return Problem(shown, "bad_path", "name is not UTF-8 text; rename the file to send it")


def _candidate(entry: os.DirEntry[str], rel: str) -> Candidate | Problem:
    try:
        st = entry.stat()  # follows symlinked files
    except FileNotFoundError:
        if entry.is_symlink():
            target = os.readlink(entry.path)  # noqa: PTH115
            return Problem(rel, "broken_symlink", f"symlink target missing: {target}")
        return Problem(rel, "vanished", "file disappeared during the scan")
    except OSError as exc:
        return os_problem(rel, exc)
    if not stat.S_ISREG(st.st_mode):
        return Problem(rel, "unreadable", "not a regular file")
    return Candidate(rel, Path(entry.path), st.st_size, st.st_mtime_ns, st.st_ino)


def os_problem(rel: str, exc: OSError) -> Problem:
    """Name an OS error as a scan problem."""
    if isinstance(exc, PermissionError):
        return Problem(rel, "permission", f"permission denied: {exc.strerror or exc}")
    if isinstance(exc, FileNotFoundError):
        return Problem(rel, "vanished", "disappeared during the scan")
    return Problem(rel, "unreadable", f"cannot read: {exc.strerror or exc}")
