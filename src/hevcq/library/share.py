"""A pool added later takes the primary pool's output an earlier run brought home, where
its encode would be the same.

For an H.264 source of exactly 1920x1080 the ``1080p`` pool's encode is the ``hevc``
pool's, argument for argument (``decide.shares_encode``), and in one run the farm makes it
once and copies it (``hevcq.worker.shared``). A library converted with ``--pools hevc``
first and with every pool later would otherwise encode each such file a second time: the
farm's copy needs the primary's job in the same run, and the primary's output of the
earlier run is in ``--out``, not in the farm.

So the scan gives a pool the primary's output in ``--out`` as its own when
(``Sharer.find``):

- the primary pool is in this run and its job for the file is done under its current
  settings, with its output in this ``--out`` (the scan's ``_missing_outputs`` says so);
- the pool's job is pending, it does not replace originals, and ``shares_encode`` holds
  for the file's probe: the same plan and the same ffmpeg arguments, checked at least as
  strictly, at the same quality target;
- both outputs' places are inside their pools' folders, and nothing is yet at the pool's.

The pool's outcome is recorded first, then the output copied under a temporary name and
renamed into place, never over anything (``quarantine.place_output``), dated like its
original. A copy that fails (a full disk, a file come to the name) puts the outcome back
and the pool encodes the file as before; a run killed between the two steps leaves the
pool "done" without an output, which the next scan takes for an output that is not home.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import structlog

from hevcq.library.catalog import Catalog
from hevcq.library.follow import PlacedFn, output_item
from hevcq.library.quarantine import OutputExists, dated_like, place_output
from hevcq.media.decide import shares_encode
from hevcq.media.model import MediaInfo
from hevcq.pools import Pool

log = structlog.get_logger()


def copied_reason(primary: str) -> str:
    """The outcome's reason for a pool given the primary's output."""
    return f"the identical encode of pool {primary} in an earlier run, copied"


@dataclass(frozen=True)
class Share:
    """``pool``'s output of ``rel`` (at ``dst``): a copy of the primary's (at ``src``)."""

    pool: str
    rel: str
    src: Path
    dst: Path


class Sharer:
    """Finds and makes the copies of one scan (see the module's docstring)."""

    def __init__(self, root: Path, out_dir: Path, primary: Pool, *, placed: PlacedFn) -> None:
        self.root, self.out_dir, self.primary, self.placed = root, out_dir, primary, placed

    def find(self, rel: str, info: MediaInfo, pool: Pool) -> Share | None:
        """The copy that gives ``pool`` the primary's output of ``rel``, or None.

        The caller has checked the outcomes: the primary's done, the pool's pending.
        """
        if pool.name == self.primary.name or pool.ladder is not None:
            return None
        src = output_item(
            self.out_dir, self.primary.name, self.placed(rel, self.primary.name, None), folder=False
        )
        dst = output_item(self.out_dir, pool.name, self.placed(rel, pool.name, None), folder=False)
        if src is None or dst is None or os.path.lexists(dst) or not _is_file(src):
            return None
        if not shares_encode(info, self.primary, pool, rel):
            return None
        return Share(pool.name, rel, src, dst)

    def copy(self, store: Catalog, s: Share) -> bool:
        """Record ``s``'s outcome, then copy the output; True when both are done."""
        with store.transaction():
            store.record_outcome(s.rel, s.pool, "done", copied_reason(self.primary.name))
        made = [p for p in [s.dst.parent, *s.dst.parent.parents] if not p.exists()]
        try:
            place_output(s.src, s.dst)
        except (OSError, OutputExists) as exc:
            with store.transaction():
                store.record_outcome(s.rel, s.pool, "pending")
            for folder in made:  # deepest first: a failed copy leaves no folder behind
                with contextlib.suppress(OSError):
                    folder.rmdir()
            log.warning("output_not_copied", rel=s.rel, pool=s.pool, error=str(exc))
            return False
        dated_like(s.dst, self.root.joinpath(*s.rel.split("/")))  # as a fetch dates it
        log.info("output_copied", rel=s.rel, pool=s.pool, copied_from=str(s.src))
        return True


def _is_file(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return path.is_file() and not path.is_symlink()
    return False
