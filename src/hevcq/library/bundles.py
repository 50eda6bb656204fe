"""Bringing a ladder home: every part the committed master names, checked, then placed as
one folder (``<out>/<pool>/<dir>/<stem>.hls/``).

The bucket is the other side of a trust boundary: a compromised worker may have written
the master, the manifest and the parts. So the token and every part path are checked
before they name a key or a file (``hevcq.bundle``), every part is fetched with
``If-Match`` on the ETag the manifest gives and checked against its size (and its MD5 where
the ETag is one), and every URI of every playlist must name a part of the same attempt.
A reader that meets a part that is gone (a newer commit swept it) gives up on this copy
and tries again later: it never places a mix of two attempts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import shutil
from pathlib import Path

from pydantic import ValidationError

from hevcq.bundle import (
    FOLDER_SUFFIX,
    MANIFEST,
    MASTER,
    Manifest,
    attempt_prefix,
    check_part_path,
    check_token,
    master_uris,
)
from hevcq.errors import PermanentError, SupersededJob
from hevcq.library.quarantine import OutputExists, ReplaceRefused
from hevcq.limits import MiB
from hevcq.messages import JobResult
from hevcq.metadata import META_MANIFEST_ETAG, META_PARTS
from hevcq.objects import ObjectInfo, ObjectStore

_MD5_ETAG = re.compile(r"[0-9a-f]{32}")


def bundle_folder(dest: Path) -> Path:
    """Where a ladder goes: its master's name with ``.hls`` (``beach.m3u8`` -> ``beach.hls``)."""
    return dest.with_suffix(FOLDER_SUFFIX)


def read_manifest(store: ObjectStore, out: ObjectInfo, r: JobResult, scratch: Path) -> Manifest:
    """The manifest of the committed ladder ``out`` (its master, exactly that ETag).

    ``SupersededJob`` when the master or its manifest changed since the commit (try again
    later); ``ReplaceRefused`` when what the bucket holds is not a ladder of this job.
    """
    master = store.head(out.key)
    if master is None or master.etag != out.etag:
        raise SupersededJob(f"{out.key} changed since it was committed")
    try:
        token = check_token(master.metadata.get(META_PARTS, ""))
    except PermanentError as exc:
        raise ReplaceRefused(f"{out.key}: {exc}") from exc
    local = scratch / MANIFEST
    store.download(
        attempt_prefix(out.key, token) + MANIFEST,
        local,
        etag=master.metadata.get(META_MANIFEST_ETAG) or None,
    )
    try:
        manifest = Manifest.model_validate_json(local.read_bytes())
        for part in manifest.parts:
            check_part_path(part.path)
    except (ValidationError, PermanentError) as exc:
        raise ReplaceRefused(f"{out.key}: not a ladder manifest hevcq writes: {exc}") from exc
    if manifest.token != token or (manifest.source_key, manifest.source_etag) != (
        r.source_key,
        r.source_etag,
    ):
        raise ReplaceRefused(f"{out.key}: its manifest belongs to another job or attempt")
    if manifest.part(MASTER) is None:
        raise ReplaceRefused(f"{out.key}: its manifest lists no {MASTER}")
    return manifest


def download_parts(store: ObjectStore, key: str, manifest: Manifest, staging: Path) -> None:
    """Every part into ``staging`` (a new, empty folder), each exactly as the manifest
    names it; then every playlist URI must name a part that came."""
    prefix = attempt_prefix(key, manifest.token)
    for part in manifest.parts:
        target = staging.joinpath(*check_part_path(part.path).split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        got = store.download(prefix + part.path, target, etag=part.etag)
        size = target.stat().st_size
        if got.etag != part.etag or size != part.size:
            raise SupersededJob(f"{prefix}{part.path} is not the part its manifest names")
        if _MD5_ETAG.fullmatch(part.etag) and file_md5(target) != part.etag:
            raise ReplaceRefused(f"{prefix}{part.path}: its bytes do not match its ETag")
    check_whole(staging, manifest)


def check_whole(folder: Path, manifest: Manifest) -> None:
    """``ReplaceRefused`` unless every URI of every playlist in the ladder names one of
    its own parts (resolved against the playlist's folder, never above the ladder)."""
    paths = {p.path for p in manifest.parts}
    for part in manifest.parts:
        if not part.path.endswith(".m3u8"):
            continue
        text = folder.joinpath(*part.path.split("/")).read_text(errors="replace")
        base = posixpath.dirname(part.path)
        for uri in master_uris(text):
            target = posixpath.normpath(posixpath.join(base, uri))
            if target not in paths:
                raise ReplaceRefused(f"{part.path} names {uri!r}, which is not in the ladder")


def place_folder(staging: Path, dest: Path) -> Path:
    """Rename the complete ladder ``staging`` to ``dest`` (same folder, one rename); a
    ``dest`` that holds the same ladder (equal master and parts) is kept as it is, any
    other ``dest`` is never overwritten."""
    if os.path.lexists(dest):
        if dest.is_dir() and not dest.is_symlink() and _same_tree(staging, dest):
            shutil.rmtree(staging, ignore_errors=True)
            return dest
        raise OutputExists(f"{dest} exists and differs; not overwriting")
    staging.rename(dest)
    with contextlib.suppress(OSError):
        fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return dest


def _same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    if files_a != files_b:
        return False
    return all(file_md5(a / f) == file_md5(b / f) for f in files_a)


def file_md5(path: Path) -> str:
    """The MD5 of a file's bytes, as S3 gives it for a single-part object's ETag."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()
