"""The catalog of a library: one SQLite file per library, remembering what each file was
and what became of it."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hevcq.errors import ConfigError
from hevcq.media.model import (
    BARE_STREAM_FORMATS,
    KEYFRAME_SIZED_CODECS,
    AudioStream,
    Cover,
    Decision,
    EncodePlan,
    MediaInfo,
    Skip,
    SubtitleStream,
    VideoStream,
)
from hevcq.private import private_dir, private_file
from hevcq.settings import state_dir

# Bump when the serialised shapes change: older rows are then re-probed and re-decided.
SCHEMA_VERSION = 1

# Where a file stands in one pool, as the catalog records it (a job result's outcome is
# ``messages.Outcome``: done, skipped or failed).
PoolState = Literal["pending", "uploaded", "done", "skipped", "failed"]

# A version of a file as the catalog tells versions apart: size, mtime (ns) and inode.
Version = tuple[int, int, int]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    rel TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    info TEXT,
    probe_error TEXT,
    scanned_at REAL NOT NULL,
    upload_key TEXT,
    upload_fingerprint TEXT,
    uploaded_at REAL,
    content_hash TEXT
);
CREATE INDEX IF NOT EXISTS files_fingerprint ON files (fingerprint);
CREATE TABLE IF NOT EXISTS decisions (
    rel TEXT NOT NULL REFERENCES files (rel) ON DELETE CASCADE,
    pool TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    decision TEXT NOT NULL,
    outcome TEXT NOT NULL DEFAULT 'pending',
    reason TEXT,
    outcome_at REAL,
    PRIMARY KEY (rel, pool)
);
CREATE TABLE IF NOT EXISTS replacements (
    rel TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    original TEXT NOT NULL,
    replaced_at REAL NOT NULL,
    original_fingerprint TEXT,
    content_hash TEXT
);
CREATE TABLE IF NOT EXISTS rollbacks (
    rel TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    rolled_back_at REAL NOT NULL,
    content_hash TEXT
);
"""


def default_store_path(root: Path, directory: Path | None = None) -> Path:
    """The store file for a library: named from a hash of its absolute root."""
    return (directory or state_dir()) / f"library-{library_id(root)}.sqlite3"


class RunLock:
    """The library's run lock, held while a command brings results home into it; a second
    such command of the same library is refused in one line.

    Two ingests of one library each uploaded every file, took each other's upload records
    in the catalog, and failed results as orphaned. The lock is ``flock`` on a file beside
    the catalog: it goes with its process, however that process ends.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def take(cls, root: Path, what: str, directory: Path | None = None) -> RunLock:
        """The lock, or a ConfigError naming the command that holds it."""
        path = state_file(default_store_path(root, directory).with_suffix(".run.lock"))
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1024, 0).decode(errors="replace").strip() or "another one"
            os.close(fd)
            raise ConfigError(
                f"{root}: a hevcq command already brings results home to this library"
                f" ({holder}); wait for it to end, or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {what}".encode(), 0)
        return cls(fd)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)  # and with it the lock


def state_folder(folder: Path) -> Path:
    """``folder`` made (0700) if missing; a ConfigError when it cannot be, rather than a
    traceback (XDG_STATE_HOME or HOME unwritable)."""
    try:
        return private_dir(folder)
    except OSError as exc:
        raise ConfigError(
            f"cannot use the state folder {folder}: {exc.strerror or exc}; set"
            " XDG_STATE_HOME to a folder this user can write"
        ) from exc


def state_file(path: Path) -> Path:
    """``path`` made (0600) if missing, in a ``state_folder``."""
    folder = state_folder(path.parent)
    try:
        return private_file(folder / path.name)
    except OSError as exc:
        raise ConfigError(f"cannot use the state file {path}: {exc.strerror or exc}") from exc


def library_id(root: Path) -> str:
    """A stable id of a library: a hash of its absolute path (upload metadata, store name)."""
    return hashlib.sha256(os.fsencode(Path(root).absolute())).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class FileRecord:
    """What the store remembers about one library file."""

    rel: str
    size: int
    mtime_ns: int
    inode: int
    fingerprint: str
    info: MediaInfo | None
    probe_error: str | None
    upload_key: str | None = None
    upload_fingerprint: str | None = None
    uploaded_at: float | None = None
    # A hash of the whole file (``walk.fingerprint(full=True)``), taken when it was sent,
    # while it was this version: a later version of the same size (touched, copied to
    # another disk) with this hash is the same content, and keeps its outcomes.
    content_hash: str | None = None

    @property
    def uploaded(self) -> bool:
        """True when this exact content was uploaded."""
        return self.upload_key is not None and self.upload_fingerprint == self.fingerprint


@dataclass(frozen=True)
class PoolRecord:
    """A file's decision and outcome in one pool."""

    settings_hash: str
    decision: Decision
    outcome: PoolState = "pending"
    reason: str | None = None


@dataclass(frozen=True)
class Replacement:
    """A file hevcq swapped in for an original: never a source for another pool."""

    rel: str
    size: int
    mtime_ns: int
    inode: int
    original: str  # the original's relative path (now in the quarantine, or purged)
    original_fingerprint: str | None = None  # its content, so its copies stay duplicates
    # The placed file's whole-file hash (``walk.fingerprint(full=True)``): touched or synced
    # since, with the same hash, it is still hevcq's file (``scan._Scan.recheck_replacements``).
    content_hash: str | None = None

    def holds(self, size: int, mtime_ns: int, inode: int) -> bool:
        """True while the file at ``rel`` is still the one hevcq placed there."""
        return (self.size, self.mtime_ns, self.inode) == (size, mtime_ns, inode)


@dataclass(frozen=True)
class Rollback:
    """An original that ``hevcq rollback`` put back: a person chose it over its
    replacement, so no later run replaces it again while it is that same file."""

    rel: str
    size: int
    mtime_ns: int
    inode: int
    at: float  # when it was put back (Unix time)
    # Its whole-file hash, when known (``QuarantineEntry.original_hash``): touched or
    # synced since, with the same hash, it is still the original put back.
    content_hash: str | None = None

    def holds(self, size: int, mtime_ns: int, inode: int) -> bool:
        """True while the file at ``rel`` is still the original that was put back."""
        return (self.size, self.mtime_ns, self.inode) == (size, mtime_ns, inode)

    @property
    def reason(self) -> str:
        """Why the replacing pool leaves this file alone, for the summary."""
        day = time.strftime("%Y-%m-%d", time.localtime(self.at))
        return (
            f"rolled back on {day}: the original stays, and is replaced again only once it changes"
        )


# --- serialisation: plain JSON of the media dataclasses -----------------------------------


def info_to_json(info: MediaInfo) -> str:
    """Serialise a MediaInfo."""
    return json.dumps(info, default=vars, separators=(",", ":"))  # vars: far cheaper than asdict


def info_from_json(text: str) -> MediaInfo:
    """Rebuild a MediaInfo; raises ``ValueError`` when the stored shape is stale."""
    try:
        d = _with_guess(json.loads(text))
        return MediaInfo(
            **{
                **d,
                "video": tuple(_video_stream(v) for v in d["video"]),
                "audio": tuple(AudioStream(**a) for a in d["audio"]),
                "subtitles": tuple(SubtitleStream(**s) for s in d["subtitles"]),
                "telemetry": tuple(d.get("telemetry", ())),
            }
        )
    except (TypeError, KeyError) as exc:
        raise ValueError(f"stale media info: {exc}") from exc


def _with_guess(d: dict[str, Any]) -> dict[str, Any]:
    # A bare stream probed before its length was guessed is stale: probed again for it.
    bare = d["format_name"] in BARE_STREAM_FORMATS and d["duration_s"] is None
    if bare and "duration_guess_s" not in d:
        raise KeyError("duration_guess_s")
    # So is a file stating no length probed before such a file was measured from its
    # packets (a browser's recording): its length was unknown.
    if not bare and d["duration_s"] is None and "length_measured" not in d:
        raise KeyError("length_measured")
    return d


def _video_stream(v: dict[str, Any]) -> VideoStream:
    # Probed before the sample aspect ratio, interlacing and HDR were read: the same file
    # may now need other rungs, a deinterlacer or a tone map, so it counts as stale and
    # is probed again. So is cover art probed before its name was read: a Matroska output
    # attaches it under that name.
    missing = {"sar_num", "interlaced", "hdr_transfer"} - v.keys()
    if v.get("attached_pic") and "filename" not in v:
        missing.add("filename")
    # So is a VP8/VP9 stream probed before its keyframes were read for its size: a call
    # recording that starts small was taken to be small, and a rendition pool skipped it.
    if v.get("codec") in KEYFRAME_SIZED_CODECS and "sized_by_keyframes" not in v:
        missing.add("sized_by_keyframes")
    if missing:
        raise KeyError(min(missing))
    # Probed before colours and RGB were read: the defaults (none read, not RGB) hold
    # for what the client decides from it; the worker probes the file itself.
    if v.get("colours") is not None:
        v = {**v, "colours": tuple(v["colours"])}  # JSON keeps it as a list
    return VideoStream(**v)


def decision_to_json(decision: Decision) -> str:
    """Serialise a Skip or an EncodePlan, tagged with its kind."""
    kind = "skip" if isinstance(decision, Skip) else "encode"
    return json.dumps({"kind": kind, **vars(decision)}, default=vars, separators=(",", ":"))


def decision_from_json(text: str) -> Decision:
    """Rebuild a decision; raises ``ValueError`` when the stored shape is stale."""
    try:
        d = json.loads(text)
        kind = d.pop("kind")
        if kind == "skip":
            return Skip(**d)
        d["audio"] = tuple(tuple(a) for a in d["audio"])
        d["subtitles"] = tuple(tuple(s) for s in d["subtitles"])
        d["covers"] = tuple(Cover(**c) for c in d.get("covers", ()))
        d["audio_first_pair"] = tuple(d.get("audio_first_pair", ()))
        d["audio_shapes"] = tuple(tuple(a) for a in d.get("audio_shapes", ()))
        d["audio_rates"] = tuple(tuple(a) for a in d.get("audio_rates", ()))
        d["audio_titles"] = tuple(tuple(a) for a in d.get("audio_titles", ()))
        d["telemetry"] = tuple(d.get("telemetry", ()))
        d["extra_video"] = tuple(d.get("extra_video", ()))
        d["source_size"] = tuple(d.get("source_size", (0, 0)))
        d["pixel_aspect"] = tuple(d.get("pixel_aspect", (1, 1)))
        return EncodePlan(**d)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"stale decision: {exc}") from exc


def _record(row: tuple[Any, ...]) -> FileRecord:
    info = None if row[5] is None else info_from_json(row[5])
    rel, size, mtime_ns, inode, fp = row[:5]
    probe_error, upload_key, upload_fp, uploaded_at, content_hash = row[6:11]
    return FileRecord(
        rel=rel,
        size=size,
        mtime_ns=mtime_ns,
        inode=inode,
        fingerprint=fp,
        info=info,
        probe_error=probe_error,
        upload_key=upload_key,
        upload_fingerprint=upload_fp,
        uploaded_at=uploaded_at,
        content_hash=content_hash,
    )


# --- the store --------------------------------------------------------------------------


def catalog_trouble(path: Path, exc: sqlite3.Error) -> str:
    """What went wrong with the catalog at ``path``, for a person, with what to do."""
    said = str(exc)
    if "disk is full" in said:
        return (
            f"no space left for the library's catalog in {path.parent}: free some space,"
            " then run the same command again"
        )
    return f"cannot use the library's catalog {path}: {said}"


class Catalog:
    """SQLite (WAL) state of one library; use from one thread."""

    def __init__(self, path: Path) -> None:
        # SQLite gives its -wal and -shm files the database file's mode.
        state_file(path)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across application crashes with WAL; a power cut can lose
            # the last commits, which only costs a re-probe.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise ConfigError(catalog_trouble(path, exc)) from exc

    @classmethod
    def for_library(cls, root: Path, directory: Path | None = None) -> Catalog:
        """Open the default store of a library."""
        return cls(default_store_path(root, directory))

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(replacements)")}
        if "original_fingerprint" not in columns:  # a catalog from an older release
            self._db.execute("ALTER TABLE replacements ADD COLUMN original_fingerprint TEXT")
        if "content_hash" not in columns:  # a catalog from an older release
            self._db.execute("ALTER TABLE replacements ADD COLUMN content_hash TEXT")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(rollbacks)")}
        if "content_hash" not in columns:  # a catalog from an older release
            self._db.execute("ALTER TABLE rollbacks ADD COLUMN content_hash TEXT")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(files)")}
        if "content_hash" not in columns:  # a catalog from an older release
            self._db.execute("ALTER TABLE files ADD COLUMN content_hash TEXT")
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is not None and int(row[0]) != SCHEMA_VERSION:
            # Derived data only: forget probes and decisions, keep nothing half-understood.
            with self.transaction():
                self._db.execute("DELETE FROM decisions")
                self._db.execute("UPDATE files SET info=NULL, probe_error=NULL, size=-1")
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
        )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (all or nothing)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def load_files(self) -> dict[str, FileRecord]:
        """Every file record, keyed by relative path."""
        out: dict[str, FileRecord] = {}
        for row in self._db.execute(
            "SELECT rel, size, mtime_ns, inode, fingerprint, info, probe_error,"
            " upload_key, upload_fingerprint, uploaded_at, content_hash FROM files"
        ):
            try:
                out[row[0]] = _record(row)
            except ValueError:
                continue  # stale shape: treat as unknown, the scan re-probes it
        return out

    def load_decisions(self) -> dict[str, dict[str, PoolRecord]]:
        """Every decision, keyed by relative path then pool; stale shapes are dropped."""
        out: dict[str, dict[str, PoolRecord]] = {}
        for rel, pool, shash, text, outcome, reason in self._db.execute(
            "SELECT rel, pool, settings_hash, decision, outcome, reason FROM decisions"
        ):
            try:
                decision = decision_from_json(text)
            except ValueError:
                continue
            out.setdefault(rel, {})[pool] = PoolRecord(shash, decision, outcome, reason)
        return out

    def get(self, rel: str) -> FileRecord | None:
        """One file record."""
        row = self._db.execute(
            "SELECT rel, size, mtime_ns, inode, fingerprint, info, probe_error,"
            " upload_key, upload_fingerprint, uploaded_at, content_hash FROM files WHERE rel=?",
            (rel,),
        ).fetchone()
        return None if row is None else _record(row)

    def decisions(self, rel: str) -> dict[str, PoolRecord]:
        """The per-pool records of one file."""
        rows = self._db.execute(
            "SELECT pool, settings_hash, decision, outcome, reason FROM decisions WHERE rel=?",
            (rel,),
        )
        return {
            pool: PoolRecord(shash, decision_from_json(text), outcome, reason)
            for pool, shash, text, outcome, reason in rows
        }

    def put_file(self, rec: FileRecord, at: float | None = None) -> None:
        """Insert or update a file's identity and probe; keeps its upload fields. Its
        content hash is the record's: a new version's is unknown until it is sent."""
        self._db.execute(
            "INSERT INTO files (rel, size, mtime_ns, inode, fingerprint, info, probe_error,"
            " scanned_at, content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (rel) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns,"
            " inode=excluded.inode, fingerprint=excluded.fingerprint, info=excluded.info,"
            " probe_error=excluded.probe_error, scanned_at=excluded.scanned_at,"
            " content_hash=excluded.content_hash",
            (
                rec.rel,
                rec.size,
                rec.mtime_ns,
                rec.inode,
                rec.fingerprint,
                None if rec.info is None else info_to_json(rec.info),
                rec.probe_error,
                time.time() if at is None else at,
                rec.content_hash,
            ),
        )

    def put_decision(self, rel: str, pool: str, rec: PoolRecord) -> None:
        """Store a pool's decision; a new decision resets the outcome to ``pending``."""
        self._db.execute(
            "INSERT OR REPLACE INTO decisions (rel, pool, settings_hash, decision, outcome,"
            " reason) VALUES (?, ?, ?, ?, ?, ?)",
            (rel, pool, rec.settings_hash, decision_to_json(rec.decision), rec.outcome, rec.reason),
        )

    def move_outcome(self, old: str, new: str, pool: str) -> None:
        """Give ``new`` the decision and outcome ``old`` has in ``pool`` (a renamed file
        taking its output along); ``new``'s own record in that pool is replaced."""
        self._db.execute("DELETE FROM decisions WHERE rel=? AND pool=?", (new, pool))
        self._db.execute("UPDATE decisions SET rel=? WHERE rel=? AND pool=?", (new, old, pool))

    def drop_decisions(self, rel: str) -> None:
        """Forget every pool decision of a file (its content changed)."""
        self._db.execute("DELETE FROM decisions WHERE rel=?", (rel,))

    def record_upload(self, rel: str, key: str, fingerprint: str, at: float | None = None) -> None:
        """Remember that this content of ``rel`` was uploaded to ``key``."""
        when = time.time() if at is None else at
        with self.transaction():
            self._db.execute(
                "UPDATE files SET upload_key=?, upload_fingerprint=?, uploaded_at=? WHERE rel=?",
                (key, fingerprint, when, rel),
            )
            self._db.execute(
                "UPDATE decisions SET outcome='uploaded', outcome_at=?"
                ' WHERE rel=? AND decision LIKE \'{"kind":"encode"%\'',
                (when, rel),
            )

    def record_content_hash(self, rel: str, version: Version, content_hash: str) -> None:
        """Remember the whole-file hash of ``rel`` while the catalog still holds that
        version of it (``version``: size, mtime and inode when it was hashed)."""
        size, mtime_ns, inode = version
        with self.transaction():
            self._db.execute(
                "UPDATE files SET content_hash=? WHERE rel=? AND size=? AND mtime_ns=? AND inode=?",
                (content_hash, rel, size, mtime_ns, inode),
            )

    def record_outcome(
        self,
        rel: str,
        pool: str,
        outcome: PoolState,
        reason: str | None = None,
        at: float | None = None,
    ) -> None:
        """Remember a pool's result for a file (done, skipped or failed with a reason)."""
        self._db.execute(
            "UPDATE decisions SET outcome=?, reason=?, outcome_at=? WHERE rel=? AND pool=?",
            (outcome, reason, time.time() if at is None else at, rel, pool),
        )

    def record_replacement(
        self,
        rel: str,
        placed: os.stat_result,
        original: str,
        content_hash: str | None = None,
    ) -> None:
        """Remember that the file now at ``rel`` (``placed``: its stat; ``content_hash``: its
        whole-file hash, when taken) replaced ``original``, and the original's content as
        last scanned (its copies stay its duplicates)."""
        self._db.execute(
            "INSERT OR REPLACE INTO replacements (rel, size, mtime_ns, inode, original,"
            " replaced_at, original_fingerprint, content_hash) VALUES (?, ?, ?, ?, ?, ?,"
            " (SELECT fingerprint FROM files WHERE rel=?), ?)",
            (
                rel,
                placed.st_size,
                placed.st_mtime_ns,
                placed.st_ino,
                original,
                time.time(),
                original,
                content_hash,
            ),
        )

    def renew_replacement(
        self, rel: str, mtime_ns: int, inode: int, content_hash: str | None
    ) -> None:
        """Record what a scan found of the file hevcq swapped in at ``rel``: this mtime and
        inode with its content unchanged (touched, synced, restored), or, changed, no
        content hash any more (its identity stays the placed file's)."""
        self._db.execute(
            "UPDATE replacements SET mtime_ns=?, inode=?, content_hash=? WHERE rel=?",
            (mtime_ns, inode, content_hash, rel),
        )

    def load_replacements(self) -> dict[str, Replacement]:
        """Every file hevcq swapped in, keyed by its relative path."""
        rows = self._db.execute(
            "SELECT rel, size, mtime_ns, inode, original, original_fingerprint, content_hash"
            " FROM replacements"
        ).fetchall()
        return {row[0]: Replacement(*row) for row in rows}

    def record_rollback(
        self, rel: str, restored: os.stat_result, content_hash: str | None = None
    ) -> None:
        """Remember that the original at ``rel`` (``restored``: its stat; ``content_hash``:
        its whole-file hash, when known) was put back."""
        self._db.execute(
            "INSERT OR REPLACE INTO rollbacks (rel, size, mtime_ns, inode, rolled_back_at,"
            " content_hash) VALUES (?, ?, ?, ?, ?, ?)",
            (
                rel,
                restored.st_size,
                restored.st_mtime_ns,
                restored.st_ino,
                time.time(),
                content_hash,
            ),
        )

    def renew_rollback(self, rel: str, mtime_ns: int, inode: int, content_hash: str | None) -> None:
        """As ``renew_replacement``, for the mark of an original a rollback put back."""
        self._db.execute(
            "UPDATE rollbacks SET mtime_ns=?, inode=?, content_hash=? WHERE rel=?",
            (mtime_ns, inode, content_hash, rel),
        )

    def load_rollbacks(self) -> dict[str, Rollback]:
        """Every original put back by a rollback, keyed by its relative path."""
        rows = self._db.execute(
            "SELECT rel, size, mtime_ns, inode, rolled_back_at, content_hash FROM rollbacks"
        ).fetchall()
        return {row[0]: Rollback(*row) for row in rows}

    def rollback(self, rel: str) -> Rollback | None:
        """The rollback mark of the original at ``rel``, if it has one."""
        row = self._db.execute(
            "SELECT rel, size, mtime_ns, inode, rolled_back_at, content_hash FROM rollbacks"
            " WHERE rel=?",
            (rel,),
        ).fetchone()
        return Rollback(*row) if row is not None else None

    def forget(self, rels: Iterable[str]) -> None:
        """Drop files (and their decisions) from the store."""
        with self.transaction():
            self._db.executemany("DELETE FROM files WHERE rel=?", [(r,) for r in rels])

    def count(self) -> int:
        """Number of file records."""
        return int(self._db.execute("SELECT COUNT(*) FROM files").fetchone()[0])
