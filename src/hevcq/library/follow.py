"""A library file renamed or moved since its outputs came home takes its outputs along.

People reorganise libraries: a clip goes into a folder per year, a film gets its proper
title. The content is the same, so its encodes would be too; before this, the next run
encoded the file again under its new name and left the old outputs under the old one.

A file found under a new path follows an old one in a pool when (``Follower.find``):

- the catalog remembers the old path with this content (its fingerprint), and the old
  path is gone from the disk, not merely left out of this scan by ``--include``;
- the old path's job in that pool is done, under the pool's current settings and the same
  decision the new path gets;
- its output (a file, or a ladder's folder) is in this run's ``--out``, inside the pool's
  folder, and nothing is yet where the new path's output goes.

The catalog's outcome moves to the new path first, then the output is renamed, never over
anything (``Follower.move``). A rename that fails puts the outcome back, and the pool
encodes the file as it did before. Killed between the two steps, the run leaves the new
path "done" with no output in ``--out``, which the next scan takes for an output that is
not home: it is encoded again and the old output stays where it was. Nothing is lost
either way.

A pool that swaps its outputs in for the originals (``--replace``) has no output in
``--out`` to follow; a renamed original there is encoded again, as before.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from hevcq.library.bundles import place_folder
from hevcq.library.catalog import Catalog, FileRecord, PoolRecord
from hevcq.library.quarantine import OutputExists, rename_no_clobber
from hevcq.media.model import Decision

log = structlog.get_logger()

# (rel, pool, whether the name keeps the source's extension; None: as the scan decides)
# -> the output's path below <out>/<pool>/
PlacedFn = Callable[[str, str, bool | None], str]


@dataclass(frozen=True)
class Move:
    """One pool's output of ``old`` (at ``src``) that becomes ``new``'s (at ``dst``)."""

    pool: str
    old: str
    new: str
    src: Path
    dst: Path


class Follower:
    """Finds and makes the moves of one scan (see the module's docstring)."""

    def __init__(
        self,
        root: Path,
        out_dir: Path,
        files: Mapping[str, FileRecord],
        stored: Mapping[str, Mapping[str, PoolRecord]],
        *,
        placed: PlacedFn,
        ladders: Collection[str],
    ) -> None:
        self.out_dir, self.stored, self.placed, self.ladders = out_dir, stored, placed, ladders
        self.root, self.files = root, files
        self.gone: dict[str, list[str]] = {}  # fingerprint -> old paths with done outputs
        self.taken: set[tuple[str, str]] = set()  # (old path, pool) moved already

    def index(self, present: Collection[str]) -> None:
        """Remember the paths with a done output that are gone from the library."""
        done = {
            rel
            for rel, pools in self.stored.items()
            if any(r.outcome == "done" for r in pools.values())
        }
        for rel in sorted(done - set(present)):
            rec = self.files.get(rel)
            if rec is not None and rec.fingerprint and _gone(self.root, rel):
                self.gone.setdefault(rec.fingerprint, []).append(rel)

    def find(
        self, new: str, fingerprint: str, pool: str, settings_hash: str, decision: Decision
    ) -> Move | None:
        """The move that gives ``new`` an old path's output in ``pool``, or None."""
        olds = self.gone.get(fingerprint)
        if not olds:
            return None  # nearly every file: nothing on the disk is looked at
        dst = self._item(new, pool, with_ext=None)
        if dst is None or os.path.lexists(dst):
            return None
        for old in olds:
            rec = self.stored.get(old, {}).get(pool)
            if (
                rec is None
                or (old, pool) in self.taken
                or rec.outcome != "done"
                or rec.settings_hash != settings_hash
            ):
                continue
            if rec.decision != decision:
                continue
            for with_ext in (False, True):  # as placed then: beside a same-stem source or not
                src = self._item(old, pool, with_ext=with_ext)
                if src is not None and self._is_output(src, pool):
                    return Move(pool, old, new, src, dst)
        return None

    def move(self, store: Catalog, m: Move, decision: PoolRecord) -> bool:
        """Move ``m``'s outcome, then its output; True when both moved. ``decision`` is the
        new path's own record, put back if the output cannot move."""
        with store.transaction():
            store.move_outcome(m.old, m.new, m.pool)
        try:
            _rename(m.src, m.dst, folder=m.pool in self.ladders)
        except (OSError, OutputExists) as exc:  # a file came to the new name meanwhile
            with store.transaction():
                store.move_outcome(m.new, m.old, m.pool)
                store.put_decision(m.new, m.pool, decision)
            log.warning("output_not_moved", rel=m.new, old=m.old, pool=m.pool, error=str(exc))
            return False
        self.taken.add((m.old, m.pool))
        _remove_empty(m.src.parent, self.out_dir / m.pool)
        log.info("output_moved", rel=m.new, old=m.old, pool=m.pool, path=str(m.dst))
        return True

    def _item(self, rel: str, pool: str, *, with_ext: bool | None) -> Path | None:
        """What holds ``rel``'s output in ``pool``: its file, or its ladder's folder; None
        when that lies outside the pool's folder (a symlinked folder in ``--out``)."""
        placed = self.placed(rel, pool, with_ext)
        return output_item(self.out_dir, pool, placed, folder=pool in self.ladders)

    def _is_output(self, item: Path, pool: str) -> bool:
        with contextlib.suppress(OSError):
            if pool in self.ladders:
                return item.is_dir() and not item.is_symlink()
            return item.is_file() and not item.is_symlink()
        return False


def output_item(out_dir: Path, pool: str, placed: str, *, folder: bool) -> Path | None:
    """What holds an output placed at ``placed`` below ``<out_dir>/<pool>/``: the file, or
    (``folder``) a ladder's folder; None when that lies outside the pool's folder, as it
    does through a symlinked folder planted in ``--out``."""
    path = out_dir.joinpath(pool, *placed.split("/"))
    item = path.parent if folder else path
    base = out_dir.resolve() / pool  # the pool's folder itself may be no link either
    try:
        inside = item.parent.resolve().is_relative_to(base)
    except OSError:
        return None
    return item if inside else None


def _rename(src: Path, dst: Path, *, folder: bool) -> None:
    """Rename ``src`` to ``dst``, never over anything there (``OutputExists``)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        place_folder(src, dst)  # a ladder's folder, placed as a fetch places it
    else:
        rename_no_clobber(src, dst)  # a link, then an unlink: atomic where links exist


def _gone(root: Path, rel: str) -> bool:
    try:
        os.lstat(root.joinpath(*rel.split("/")))
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False  # unreadable: perhaps still there
    return False


def _remove_empty(folder: Path, top: Path) -> None:
    """Remove ``folder`` and its parents below ``top`` while they are empty."""
    while folder != top and folder.is_relative_to(top):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
