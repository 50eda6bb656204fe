"""Outputs of many objects (a streaming ladder): where their parts live, the manifest that
names them, and the rules that keep a reader from ever seeing a mix of two attempts.

A bundle output has one stable key, its master playlist (``DONE/<pool>/<dir>/<stem>.m3u8``,
named by ``hevcq.keys.done_key`` like any output). Everything else (media playlists, init
and media segments, I-frame playlists, the poster, the attempt's own master) lives under a
prefix of the attempt that wrote it::

    DONE/hls/trips/beach.m3u8                         the commit: written last, fenced
    DONE/hls/trips/beach.parts/<token>/manifest.json  every part with its ETag and size
    DONE/hls/trips/beach.parts/<token>/v0/seg_00000.m4s ...

Parts are written first, each under a key no other attempt uses, so writing them changes
nothing a reader sees. The master at the stable key is then written by the same fenced
compare-and-swap as a single-file output (``hevcq.worker.fence``), and its URIs point into
the attempt's prefix: a player that read the master reads that attempt's parts and no
other's. The master's metadata names the token and the manifest's ETag, so a reader that
copies the whole output (``hevcq fetch``) checks every part against the manifest the
committed master names. Parts of any other token are swept by the lease holder at its
commit; an abandoned attempt's parts are removed then, or by the attempt itself when it
learns that the master does not name it.

Everything here is pure; the writer is ``hevcq.worker.fence.FencedWriter.put_bundle``.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Callable, Iterable

from pydantic import BaseModel, ConfigDict, Field

from hevcq.errors import PermanentError

MASTER_SUFFIX = ".m3u8"
PARTS_SUFFIX = ".parts"
MANIFEST = "manifest.json"
MASTER = "master.m3u8"  # the attempt's own master playlist, with URIs relative to its parts
POSTER = "poster.jpg"
# A ladder brought home is one folder: ``<out>/<pool>/<dir>/<stem>.hls/`` (``local_master``).
FOLDER_SUFFIX = ".hls"
# A part's path inside its attempt: plain names, at most two folders deep, no dot names.
# Both are used with fullmatch: ``$`` with ``match`` also passes a trailing newline.
_PART = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/){0,2}[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TOKEN = re.compile(r"[0-9a-f]{16}")
# One attribute of a playlist tag's attribute list (RFC 8216 4.2), read left to right so
# that a quoted value is taken whole: an audio rendition NAME made from a file's track
# title ("Making-of URI=") is never read as the tag's URI="..." (EXT-X-MEDIA, EXT-X-MAP,
# EXT-X-I-FRAME-STREAM-INF).
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^",]*)')


class Part(BaseModel):
    """One object of a bundle, as its manifest lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    etag: str
    size: int = Field(ge=0)


class Manifest(BaseModel):
    """What an attempt wrote: every part, with the ETag and size it was written with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    token: str
    source_key: str
    source_etag: str
    parts: tuple[Part, ...]

    def part(self, path: str) -> Part | None:
        """The part at ``path`` (None: the attempt wrote no such part)."""
        return next((p for p in self.parts if p.path == path), None)


def is_bundle_key(output_key: str) -> bool:
    """True for the stable key of a bundle output (its master playlist)."""
    return output_key.endswith(MASTER_SUFFIX)


def local_master(output_rel: str) -> str:
    """Where a ladder's master lands under ``<out>/<pool>/``, from its output's relative
    path: ``trips/beach.m3u8`` -> ``trips/beach.hls/master.m3u8``."""
    stem = output_rel[: -len(MASTER_SUFFIX)] if is_bundle_key(output_rel) else output_rel
    return f"{stem}{FOLDER_SUFFIX}/{MASTER}"


def parts_prefix(output_key: str) -> str:
    """The prefix every attempt's parts go under: ``.../<stem>.parts/`` for a ladder,
    ``.../<name>.parts/`` for a file output with parts of its own (its poster)."""
    if is_bundle_key(output_key):
        return output_key[: -len(MASTER_SUFFIX)] + PARTS_SUFFIX + "/"
    return output_key + PARTS_SUFFIX + "/"


def attempt_token(attempt: str) -> str:
    """The folder name of one attempt's parts: a digest of its writer's lease
    (``FencedWriter.attempt``), so no two attempts share one and a retried request of the
    same attempt writes the same keys again."""
    return hashlib.sha256(attempt.encode()).hexdigest()[:16]


def attempt_prefix(output_key: str, token: str) -> str:
    """The prefix of one attempt's parts."""
    return f"{parts_prefix(output_key)}{check_token(token)}/"


def check_token(token: str) -> str:
    """``token`` when it is one ``attempt_token`` makes; PermanentError otherwise (a
    metadata value read back from the bucket is checked before it names a key)."""
    if not _TOKEN.fullmatch(token):
        raise PermanentError(f"not an attempt token: {token!r}")
    return token


def check_part_path(path: str) -> str:
    """``path`` when it is a plain relative path a ladder writes; PermanentError otherwise.

    A manifest is read back from the bucket, which a compromised worker may have written:
    no part may name a place outside its attempt's folder (``..``, an absolute path, a
    backslash, a hidden name) or be nested deeper than a ladder nests.
    """
    if not _PART.fullmatch(path) or any(seg in ("", ".", "..") for seg in path.split("/")):
        raise PermanentError(f"not a plain part path: {path!r}")
    return path


def is_parts_folder(folder: str, child: str) -> bool:
    """True when ``folder/child/`` has the shape of one attempt's parts folder
    (``<stem>.parts/<token>/``): no source may live there (``hevcq.keys.relative_key``), so
    a sweep of an output's parts never reaches another output."""
    return folder.endswith(PARTS_SUFFIX) and bool(_TOKEN.fullmatch(child))


def token_of(key: str, output_key: str) -> str | None:
    """The attempt token of a key under the output's parts prefix (None: another key)."""
    prefix = parts_prefix(output_key)
    if not key.startswith(prefix):
        return None
    token = key[len(prefix) :].split("/", 1)[0]
    return token if _TOKEN.fullmatch(token) else None


def sweepable(keys: Iterable[str], output_key: str, keep: str | None) -> list[str]:
    """The keys under the output's parts prefix that belong to no attempt but ``keep``
    (None: every part goes, as when the job ends without an output). A key under the
    prefix but in no attempt's folder is not a part (another source's output, say
    ``trips/beach.parts/notes.m3u8``) and is never swept."""
    found = ((k, token_of(k, output_key)) for k in keys)
    return [k for k, token in found if token is not None and token != keep]


def relative_master(master_text: str, output_key: str, token: str) -> str:
    """The attempt's master playlist rewritten for the stable key: every URI (variant
    lines and ``URI="..."`` attributes) is prefixed with the attempt's folder, relative to
    the stable key's folder, so the master works from a bucket, a CDN or a local copy."""
    base = posixpath.basename(attempt_prefix(output_key, token).rstrip("/"))
    folder = posixpath.basename(parts_prefix(output_key).rstrip("/"))
    lead = f"{folder}/{base}/"
    lines = []
    for line in master_text.splitlines():
        if line and not line.startswith("#"):
            lines.append(lead + check_part_path(line.strip()))
        else:
            lines.append(_with_uris(line, lambda uri: lead + check_part_path(uri)))
    return "\n".join(lines) + "\n"


def _with_uris(line: str, change: Callable[[str], str]) -> str:
    """A tag line with its quoted URI attribute's value changed (``change``), the rest as
    it was."""
    tag, colon, attributes = line.partition(":")
    if not colon:
        return line

    def one(m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(2)
        if name != "URI" or not value.startswith('"'):
            return m.group(0)
        return f'URI="{change(value[1:-1])}"'

    return tag + colon + _ATTRIBUTE.sub(one, attributes)


def _tag_uris(line: str) -> list[str]:
    """The quoted URI attribute values of a tag line."""
    _, colon, attributes = line.partition(":")
    found = _ATTRIBUTE.findall(attributes) if colon else []
    return [value[1:-1] for name, value in found if name == "URI" and value.startswith('"')]


def master_uris(master_text: str) -> list[str]:
    """Every URI a master playlist names (variant lines and URI attributes), in order."""
    uris: list[str] = []
    for line in master_text.splitlines():
        if line and not line.startswith("#"):
            uris.append(line.strip())
        else:
            uris.extend(_tag_uris(line))
    return uris
