"""Object key layout: ``TODO/<relative path>`` in, ``DONE/<pool>/<relative path>`` out, and
the output names of sources that share one."""

from __future__ import annotations

import posixpath
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping

from hevcq.bundle import is_parts_folder
from hevcq.errors import PermanentError
from hevcq.formats import auto_container
from hevcq.metadata import META_NAMING, META_NAMING_STEM, STEM_SHARED, WITH_SOURCE_EXT

TODO_PREFIX = "TODO/"
DONE_PREFIX = "DONE/"
# S3 object key limit (Amazon S3 User Guide, "Naming Amazon S3 objects").
MAX_KEY_BYTES = 1024


def output_extension(source_name: str) -> str:
    """A pool's output extension when it keeps the container automatic: Matroska stays
    Matroska, everything else becomes MP4 (``hevcq.formats.auto_container``)."""
    return auto_container(source_name).extension


def relative_key(rel_path: str) -> str:
    """A library-relative POSIX path as the part of a key after ``TODO/``.

    Rejects what could escape the prefix or is not a file name, and the one folder shape
    a streaming ladder's parts use (``<name>.parts/<16 hex digits>/``, ``hevcq.bundle``):
    an output under it would be another output's attempt folder, and that output's next
    commit would sweep it. Every other character is kept as it is (a backslash, Unicode
    in whatever form the file system wrote it), so the key names the file it came from
    and its output goes back under the matching name.
    """
    parts = [p for p in rel_path.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise PermanentError(f"not a usable relative path: {rel_path!r}")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in rel_path):
        raise PermanentError(f"control characters in path: {rel_path!r}")
    folders = parts[:-1]
    for at in range(len(folders) - 1):
        if is_parts_folder(folders[at], folders[at + 1]):
            reserved = "/".join(folders[: at + 2])
            raise PermanentError(
                f"folder {reserved!r} is reserved: streaming ladders keep their parts there"
            )
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


def output_relative(
    rel: str, suffix: str = "", *, with_source_ext: bool = False, extension: str | None = None
) -> str:
    """The output's library-relative path: new extension, optional pool suffix.

    ``with_source_ext`` keeps the source's extension in the name (``IMG_0001.MOV.mp4``),
    for sources that would otherwise share an output name (see ``sharing_sources``).
    ``extension`` is the pool's container's (``Pool.output_extension``); by default the
    automatic one.
    """
    stem = rel if with_source_ext else posixpath.splitext(rel)[0]
    return f"{stem}{suffix}{extension or output_extension(rel)}"


def done_key(
    source_key: str,
    pool: str,
    suffix: str = "",
    *,
    with_source_ext: bool = False,
    extension: str | None = None,
) -> str:
    """The output key of a source key in a pool."""
    rel = output_relative(
        source_relative(source_key), suffix, with_source_ext=with_source_ext, extension=extension
    )
    return f"{DONE_PREFIX}{pool}/{rel}"


def output_place(output_key: str, pool: str, source_key: str) -> str:
    """The path below ``<out>/<pool>/`` of a committed output key of ``source_key``.

    Raises ``PermanentError`` unless the key is under ``DONE/<pool>/``, already in the form
    ``relative_key`` gives (no ``..``, ``.`` or empty parts, no leading ``/``, a backslash
    only where its source's name has one) and beside its source, as ``done_key`` names
    every output.
    """
    prefix = f"{DONE_PREFIX}{pool}/"
    if not output_key.startswith(prefix):
        raise PermanentError(f"output key {output_key!r} is not under {prefix}")
    rel = output_key[len(prefix) :]
    # A backslash is an ordinary character of a POSIX name, but only a source's own name
    # brings one: every output name starts with its source's stem.
    stem = posixpath.splitext(posixpath.basename(source_relative(source_key)))[0]
    named = "\\" not in rel or ("\\" in stem and posixpath.basename(rel).startswith(stem))
    try:
        plain = named and relative_key(rel) == rel
    except PermanentError:
        plain = False
    if not plain:
        raise PermanentError(f"output key {output_key!r} is not a plain relative path")
    if posixpath.dirname(rel) != posixpath.dirname(source_relative(source_key)):
        raise PermanentError(f"output key {output_key!r} is not beside its source")
    return rel


def sharing_sources(rels: Iterable[str]) -> frozenset[str]:
    """The sources whose output names keep their own extension.

    Sources that would share one output name (``IMG_0001.MOV`` and ``IMG_0001.mp4``; the
    name compared without case or Unicode form, NFC or NFD, as a Mac or Windows disk
    does) each keep their extension (``IMG_0001.MOV.mp4``), except one whose own name
    already is that output name: it keeps the plain name, and ``--replace`` leaves it in
    place. Only the set of names counts, never an order, so every run and every farm
    names them alike.
    """
    groups: defaultdict[str, list[str]] = defaultdict(list)
    for rel in rels:
        groups[_disk_name(output_relative(rel))].append(rel)
    return frozenset(
        rel
        for group in groups.values()
        if len(group) > 1
        for rel in group
        if rel != output_relative(rel)
    )


def sharing_stems(rels: Iterable[str]) -> frozenset[str]:
    """The sources that share their name but for its extension with another in their
    folder (``clip.mkv`` and ``clip.mp4``; compared as ``sharing_sources`` compares).

    A pool whose outputs all take one extension (a WebM copy, a ladder, a pool naming its
    container) would give them one output name (``clip.av1.webm``), which the automatic
    extension keeps apart (``clip.mkv``, ``clip.mp4``): ``keeps_ext`` decides per pool."""
    groups: defaultdict[str, list[str]] = defaultdict(list)
    for rel in rels:
        groups[_disk_name(posixpath.splitext(rel)[0])].append(rel)
    return frozenset(rel for group in groups.values() if len(group) > 1 for rel in group)


def keeps_ext(rel: str, extension: str | None, *, sharing_name: bool, sharing_stem: bool) -> bool:
    """Whether ``rel``'s output name keeps its extension in a pool whose outputs take
    ``extension`` (None: the automatic one, ``output_extension``).

    The automatic extension: as ``sharing_sources`` answered (``sharing_name``). One
    extension for all: when another source shares its stem (``sharing_stem``), unless its
    own name is the output name (``clip.mp4`` in an MP4 pool), as in ``sharing_sources``.
    Both answers come from the folder's names alone, so the uploader and every worker
    name an output alike."""
    if extension is None:
        return sharing_name
    return sharing_stem and output_relative(rel, extension=extension) != rel


def output_keeps_ext(source_key: str, extension: str | None, metadata: Mapping[str, str]) -> bool:
    """``keeps_ext`` for a source as its upload's metadata carries the answers."""
    return keeps_ext(
        source_relative(source_key),
        extension,
        sharing_name=keeps_source_ext(metadata),
        sharing_stem=shares_stem(metadata),
    )


def _disk_name(rel: str) -> str:
    """``rel`` as a Mac or Windows disk compares names: without case or Unicode form."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", rel).casefold())


def keeps_source_ext(metadata: Mapping[str, str]) -> bool:
    """True when a source's upload metadata says its output name keeps its extension."""
    return metadata.get(META_NAMING) == WITH_SOURCE_EXT


def naming_metadata(with_source_ext: bool, shares_stem: bool = False) -> dict[str, str]:
    """The upload metadata that carries the naming rule's answers to the workers."""
    meta = {META_NAMING: WITH_SOURCE_EXT} if with_source_ext else {}
    return meta | ({META_NAMING_STEM: STEM_SHARED} if shares_stem else {})


def shares_stem(metadata: Mapping[str, str]) -> bool:
    """True when a source's upload metadata says another source shares its stem."""
    return metadata.get(META_NAMING_STEM) == STEM_SHARED
