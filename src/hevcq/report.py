"""Rendering summaries for people: the ingest table and status tables."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table


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


def summary_table(rows: list[Row]) -> Table:
    """The table printed at the end of an ingest."""
    table = Table(title="hevcq summary")
    for col in ("file", "pool", "outcome", "input", "output", "saved", "seconds"):
        table.add_column(col, justify="right" if col in ("input", "output", "saved", "seconds") else "left")
    style = {"done": "green", "skipped": "yellow", "failed": "red"}
    for r in sorted(rows, key=lambda r: (r.file, r.pool)):
        outcome = r.outcome + (f": {r.reason}" if r.reason else "")
        table.add_row(
            r.file,
            r.pool,
            f"[{style.get(r.outcome, 'white')}]{outcome}[/]",
            human_bytes(r.input_bytes),
            human_bytes(r.output_bytes),
            r.saved,
            f"{r.seconds:.1f}" if r.seconds is not None else "",
        )
    return table


def print_table(table: Table, console: Console | None = None) -> None:
    """Print a table wide enough not to wrap reasons into unreadable columns."""
    (console or Console(width=160)).print(table)
