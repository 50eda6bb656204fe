"""Object key layout: ``TODO/<relative path>`` in, ``DONE/<pool>/<relative path>`` out."""

from __future__ import annotations

import posixpath
import unicodedata
from pathlib import PurePosixPath

from hevcq.errors import PermanentError

TODO_PREFIX = "TODO/"
DONE_PREFIX = "DONE/"
# S3 object key limit (Amazon S3 User Guide, "Naming Amazon S3 objects").
MAX_KEY_BYTES = 1024

# Containers that hold everything Matroska sources carry (subtitles, attachments).
MATROSKA_EXTENSIONS = frozenset({".mkv", ".webm"})


def output_extension(source_name: str) -> str:
    """Matroska stays Matroska; everything else becomes MP4."""
    ext = PurePosixPath(source_name).suffix.lower()
    return ".mkv" if ext in MATROSKA_EXTENSIONS else ".mp4"


def relative_key(rel_path: str) -> str:
    """Normalise a library-relative path into the part of a key after ``TODO/``.

    Rejects what could escape the prefix or is not a file name; keeps unicode (NFC).
    """
    rel = unicodedata.normalize("NFC", rel_path.replace("\\", "/"))
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise PermanentError(f"not a usable relative path: {rel_path!r}")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in rel):
        raise PermanentError(f"control characters in path: {rel_path!r}")
    key = "/".join(parts)
    if len((TODO_PREFIX + key).encode()) > MAX_KEY_BYTES:
        raise PermanentError(f"path too long for an object key: {rel_path!r}")
    return key


def todo_key(rel_path: str) -> str:
    """The upload key for a library-relative path."""
    return TODO_PREFIX + relative_key(rel_path)


def source_relative(key: str) -> str:
    """The library-relative path of a ``TODO/`` key."""
    if not key.startswith(TODO_PREFIX) or key.endswith("/"):
        raise PermanentError(f"not a source key under {TODO_PREFIX}: {key!r}")
    return relative_key(key[len(TODO_PREFIX) :])


def output_relative(rel: str, suffix: str = "") -> str:
    """The output's library-relative path: new extension, optional pool suffix."""
    stem, _ = posixpath.splitext(rel)
    return f"{stem}{suffix}{output_extension(rel)}"


def done_key(source_key: str, pool: str, suffix: str = "") -> str:
    """The output key of a source key in a pool."""
    return f"{DONE_PREFIX}{pool}/{output_relative(source_relative(source_key), suffix)}"
