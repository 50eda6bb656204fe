"""The ingest's summary as data: one row per (file, pool), totals per pool and for the
library, and the few plain-text formats people read them in. Rendering is the CLI's
(``hevcq.cli.report``) and the web's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

NO_POOL = "-"  # the pool of a row about a file no pool got (not a video, unreadable)


@dataclass(frozen=True)
class Row:
    """One (file, pool) line of the ingest summary."""

    file: str
    pool: str
    outcome: str
    reason: str = ""
    input_bytes: int | None = None
    output_bytes: int | None = None
    seconds: float | None = None

    @property
    def saved(self) -> str:
        """Space saved by the output, as a percentage of the input."""
        if not self.input_bytes or self.output_bytes is None:
            return ""
        return f"{100 * (1 - self.output_bytes / self.input_bytes):.0f}%"


def human_bytes(n: int | None) -> str:
    """1536 -> '1.5 KiB'."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def shorten_middle(name: str, most: int) -> str:
    """``name`` in at most ``most`` characters: the middle gives way, so the folder's start
    and the file's own name and extension stay readable."""
    if len(name) <= most:
        return name
    keep = max(most - 1, 2)
    tail = keep - keep // 3
    return f"{name[: keep - tail]}…{name[-tail:]}"


def library_input(rows: list[Row]) -> tuple[int, int]:
    """How many files the rows are about, and their bytes, each file counted once."""
    sizes = {r.file: r.input_bytes or 0 for r in rows if r.input_bytes}
    return len(sizes), sum(sizes.values())


def pool_totals(rows: list[Row]) -> list[Row]:
    """One totals row per pool: its outcomes, and the input and output of the files it made
    an output of, so "saved" is per pool (a file's input counts once in each pool)."""
    totals = []
    for pool in sorted({r.pool for r in rows}):
        mine = [r for r in rows if r.pool == pool]
        total = totals_row(mine)
        label = "total (not sent)" if pool == NO_POOL else f"total {pool}"
        totals.append(dataclasses.replace(total, file=label, pool=pool))
    return totals


def totals_row(rows: list[Row]) -> Row:
    """Counts per outcome, and bytes in and out over the rows with an output."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    made = [r for r in rows if r.output_bytes is not None and r.input_bytes]
    return Row(
        "total",
        "",
        ", ".join(f"{n} {o}" for o, n in sorted(counts.items())),
        "",
        sum(r.input_bytes or 0 for r in made) if made else None,
        sum(r.output_bytes or 0 for r in made) if made else None,
        sum(r.seconds or 0.0 for r in rows),
    )


def human_seconds(s: float) -> str:
    """3725 -> '1h02m05s'."""
    total = round(s)
    h, rest = divmod(total, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"
