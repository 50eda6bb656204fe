"""The ingest side: find candidates in a library, decide locally, upload to ``TODO/``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from hevcq.decide import decide
from hevcq.errors import HevcqError
from hevcq.farm import Pool
from hevcq.keys import todo_key
from hevcq.media import Decision, MediaInfo, Skip
from hevcq.probe import probe
from hevcq.store import S3Store

log = structlog.get_logger()

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".ts", ".mts", ".m2ts", ".wmv", ".flv",
     ".webm", ".3gp", ".mpg", ".mpeg", ".vob"}
)  # fmt: skip
HEVCQ_DIRS = frozenset({".hevcq", ".hevcq-quarantine"})

META_REL_PATH = "hevcq-rel-path"
META_SIZE = "hevcq-size"
META_MTIME = "hevcq-mtime-ns"
META_HASH = "hevcq-content-hash"


@dataclass
class Candidate:
    """A library file and what each pool would do with it."""

    path: Path
    rel: str
    size: int
    info: MediaInfo | None = None
    error: str | None = None
    decisions: dict[str, Decision] = field(default_factory=dict)

    @property
    def needs_work(self) -> bool:
        """True when at least one pool would encode it."""
        return any(not isinstance(d, Skip) for d in self.decisions.values())


def walk(root: Path, extensions: frozenset[str] = VIDEO_EXTENSIONS) -> Iterator[tuple[Path, str]]:
    """Video files below ``root`` with their POSIX relative paths; symlinked dirs not followed."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            log.warning("scan_unreadable_folder", path=str(folder), error=str(exc))
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                if e.name not in HEVCQ_DIRS:
                    stack.append(Path(e.path))
            elif Path(e.name).suffix.lower() in extensions:
                yield Path(e.path), Path(e.path).relative_to(root).as_posix()


def examine(path: Path, rel: str, pools: dict[str, Pool]) -> Candidate:
    """Probe one file and decide per pool; a bad file becomes a Candidate with an error."""
    try:
        size = path.stat().st_size
        info = probe(path)
    except (HevcqError, OSError) as exc:
        return Candidate(path, rel, size=0, error=str(exc))
    return Candidate(
        path, rel, size, info, decisions={n: decide(info, p, rel) for n, p in pools.items()}
    )


def plan(root: Path, pools: dict[str, Pool], workers: int = 8) -> list[Candidate]:
    """Examine every video file in the library, in parallel (probing is in-process)."""
    files = list(walk(root))
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(lambda f: examine(f[0], f[1], pools), files))


def content_hash(path: Path, chunk: int = 1024 * 1024) -> str:
    """BLAKE2b of the whole file."""
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Uploaded:
    """A candidate's object key; ``sent`` is False when identical content was already there."""

    key: str
    candidate: Candidate
    sent: bool


def upload_one(store: S3Store, c: Candidate) -> Uploaded:
    """Upload a candidate under ``TODO/``; skipped when the same content is already there."""
    key = todo_key(c.rel)
    st = c.path.stat()
    digest = content_hash(c.path)
    existing = store.head(key)
    if existing is not None and existing.metadata.get(META_HASH) == digest:
        log.info("upload_skipped_same_content", key=key)
        return Uploaded(key, c, sent=False)
    store.upload(
        c.path,
        key,
        {META_REL_PATH: c.rel, META_SIZE: str(st.st_size), META_MTIME: str(st.st_mtime_ns),
         META_HASH: digest},
    )  # fmt: skip
    log.info("uploaded", key=key, bytes=st.st_size)
    return Uploaded(key, c, sent=True)


def upload_all(
    store: S3Store,
    candidates: list[Candidate],
    workers: int = 4,
    on_done: Callable[[Candidate], None] | None = None,
) -> list[Uploaded]:
    """Upload in parallel."""

    def one(c: Candidate) -> Uploaded:
        up = upload_one(store, c)
        if on_done:
            on_done(c)
        return up

    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(one, candidates))
