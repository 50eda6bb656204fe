"""Rendering summaries for people: the ingest table and status tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from hevcq.cli.screen import SafeConsole, shown
from hevcq.library.summary import (
    Row,
    human_bytes,
    human_seconds,
    pool_totals,
    shorten_middle,
)
from hevcq.media.model import Skip
from hevcq.printable import printable

if TYPE_CHECKING:
    from hevcq.library.estimate import Estimate
    from hevcq.library.results import Fetched
    from hevcq.library.scan import FileEntry, ScanReport
    from hevcq.library.upload import Uploaded


# Summary columns, the last dropped first when the terminal is narrow; the widths below
# which each goes.
SUMMARY_COLUMNS = ("file", "pool", "outcome", "saved", "output", "input", "seconds")
_DROPPED_BELOW = {"seconds": 100, "input": 80, "output": 64}
_NUMERIC = frozenset({"input", "output", "saved", "seconds"})


def summary_columns(width: int) -> tuple[str, ...]:
    """The summary's columns that fit ``width`` characters, by priority."""
    return tuple(c for c in SUMMARY_COLUMNS if width >= _DROPPED_BELOW.get(c, 0))


def summary_table(rows: list[Row], width: int = 10_000) -> Table:
    """The table printed at the end of an ingest; names are text, per-pool totals end it.

    It fits ``width``: the least needed columns go first, and a file name too long for its
    share is shortened in the middle (one line, never folded); reasons fold.
    """
    columns = summary_columns(width)
    table = Table(title="hevcq summary")
    for col in columns:
        numeric = col in _NUMERIC
        table.add_column(
            col,
            justify="right" if numeric else "left",
            overflow="fold",
            no_wrap=numeric or col in ("file", "pool"),
        )
    style = {"done": "green", "skipped": "yellow", "failed": "red"}
    name_room = max(16, width // 3)
    for r in sorted(rows, key=lambda r: (r.file, r.pool)):
        outcome = r.outcome + (f": {r.reason}" if r.reason else "")
        cells = _cells(
            r,
            shown(shorten_middle(printable(r.file), name_room)),
            shown(outcome, style.get(r.outcome, "white")),
        )
        table.add_row(*(cells[c] for c in columns))
    table.add_section()
    for total in pool_totals(rows):
        cells = _cells(total, Text(total.file), Text(total.outcome))
        table.add_row(*(cells[c] for c in columns))
    return table


def _cells(r: Row, file: Text, outcome: Text) -> dict[str, Text | str]:
    return {
        "file": file,
        "pool": Text(r.pool),
        "outcome": outcome,
        "input": human_bytes(r.input_bytes),
        "output": human_bytes(r.output_bytes),
        "saved": r.saved,
        "seconds": f"{r.seconds:.1f}" if r.seconds else "",
    }


def print_table(table: Table, console: Console | None = None) -> None:
    """Print a table within the terminal's width (long cells fold)."""
    (console or SafeConsole()).print(table)


def _why_not_sent(e: FileEntry) -> str:
    if e.status == "duplicate":
        return e.why_duplicate
    if e.status == "uploaded":
        return "already uploaded"
    if e.status == "deferred":
        return "over this run's limit"
    if e.status == "finished":
        return _finished(e)
    skips = sorted((p, d.reason) for p, d in e.decisions.items() if isinstance(d, Skip))
    return "; ".join(f"{p}: {reason}" for p, reason in skips + _settled(e))


def _settled(e: FileEntry) -> list[tuple[str, str]]:
    """The pools an earlier run settled for a file this run sends, with what it did."""
    settled = sorted(set(e.pools_to_encode) - set(e.pools_pending))
    return [
        (p, f"copies the identical encode of {e.shared[p]}")
        if p in e.shared
        else (p, f"{e.outcomes[p]} in an earlier run")
        for p in settled
    ]


def _finished(e: FileEntry) -> str:
    """Why a file every pool settled is not sent, and what this run does for it locally."""
    said = "finished in an earlier run"
    if e.followed:
        old = sorted(set(e.followed.values()))
        said += f" as {', '.join(old)}; its outputs move to this name"
    if e.shared:
        pools, primary = ", ".join(sorted(e.shared)), sorted(e.shared.values())[0]
        said += f"; {pools} copy the identical encode of {primary}"
    return said


def plan_tables(report: ScanReport) -> list[Table]:
    """What a dry run would upload (per pool), what it skips and why, and scan problems."""
    send = Table(title="would upload")
    for col in ("file", "size", "duration", "pools", "not in this run"):
        send.add_column(col, justify="right" if col in ("size", "duration") else "left")
    for e in report.to_send:
        dur = human_seconds(e.duration_s) if e.duration_s is not None else "?"
        dur = f"~{dur}" if e.duration_guessed else dur  # a bare stream's, by its first frames
        pools = ", ".join(sorted(e.pools_pending))
        send.add_row(shown(e.rel), human_bytes(e.size), dur, pools, shown(_why_not_sent(e)))
    skipped = Table(title="not uploaded")
    for col in ("file", "why"):
        skipped.add_column(col)
    for e in report.entries:
        if e.status != "send":
            skipped.add_row(shown(e.rel), shown(_why_not_sent(e)))
    for p in report.problems:
        skipped.add_row(shown(p.rel), shown(f"{p.kind}: {p.reason}", "red"))
    per_pool = Table(title="work per pool")
    for col in ("pool", "files", "size", "source duration"):
        per_pool.add_column(col, justify="left" if col == "pool" else "right")
    for name, t in sorted(report.totals.items()):
        per_pool.add_row(name, str(t.files), human_bytes(t.bytes), human_seconds(t.seconds))
    sent = report.to_send
    per_pool.add_section()
    per_pool.add_row(
        "all (uploaded once)",
        str(len(sent)),
        human_bytes(sum(e.size for e in sent)),
        human_seconds(sum(e.duration_s or 0.0 for e in sent)),
    )
    return [send, skipped, per_pool]


def estimate_table(est: Estimate) -> Table:
    """Encode hours and cost per pool: this machine, and Fargate on-demand and Spot."""
    t = Table(title=f"estimate (Fargate prices {est.prices.region}, {est.prices.as_of})")
    cols = (
        "pool",
        "source h",
        "speed x/vCPU",
        f"local h ({est.local_cpus} CPUs)",
        "task",
        "task-hours",
        "on-demand $",
        "Spot $",
    )
    for col in cols:
        t.add_column(col, justify="left" if col == "pool" else "right")
    for p in sorted(est.pools.values(), key=lambda p: p.pool):
        t.add_row(
            p.pool,
            f"{p.source_hours:.2f}",
            f"{p.speed:.3g}" + ("" if p.calibrated else " (default)"),
            f"{p.local_hours:.2f}",
            f"{p.task.vcpu:g} vCPU/{p.task.memory_gib:g} GiB",
            f"{p.task_hours:.2f}",
            f"{p.on_demand_usd:.2f}",
            f"{p.spot_usd:.2f}",
        )
        for r in p.rungs:  # a ladder: what each rung of it costs
            t.add_row(
                f"  {p.pool} {r.rung}",
                "",
                "",
                f"{r.vcpu_hours / max(1, est.local_cpus):.2f}",
                f"{r.files} files",
                f"{r.vcpu_hours / p.task.vcpu:.2f}",
                f"{r.on_demand_usd:.2f}",
                f"{r.spot_usd:.2f}",
            )
    t.add_section()
    t.add_row(
        "total",
        "",
        "",
        f"{est.local_hours:.2f}",
        "",
        "",
        f"{est.on_demand_usd:.2f}",
        f"{est.spot_usd:.2f}",
    )
    return t


class BarProgress:
    """Upload progress as a rich bar for files and bytes (for a terminal)."""

    def __init__(self, console: Console) -> None:
        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._files = self._bytes = TaskID(0)

    def begin(self, files: int, total_bytes: int) -> None:
        """Show the bars."""
        self._files = self._bar.add_task("files", total=files)
        self._bytes = self._bar.add_task("bytes", total=total_bytes)
        self._bar.start()

    def advance(self, nbytes: int) -> None:
        """Bytes sent (called from transfer threads; rich locks)."""
        self._bar.advance(self._bytes, nbytes)

    def file_done(self, up: Uploaded) -> None:
        """One file finished."""
        self._bar.advance(self._files, 1)
        if up.error:
            self._bar.console.print(
                Text.assemble(("upload failed", "red"), f" {up.entry.rel}: {up.error}")
            )

    def end(self) -> None:
        """Stop redrawing."""
        self._bar.stop()


class LineProgress:
    """Upload progress as plain lines (logs, pipes, CI)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._done = self._files = 0

    def begin(self, files: int, total_bytes: int) -> None:
        """Say what is coming."""
        self._files = files
        self._console.print(f"uploading {files} files, {human_bytes(total_bytes)}")

    def advance(self, nbytes: int) -> None:
        """Not shown byte by byte."""

    def file_done(self, up: Uploaded) -> None:
        """One line per file."""
        self._done += 1
        what = f"failed: {up.error}" if up.error else ("sent" if up.sent else "already there")
        self._console.print(Text(f"[{self._done}/{self._files}] {up.entry.rel}: {what}"))

    def end(self) -> None:
        """Nothing to tidy."""


def progress_for(console: Console) -> BarProgress | LineProgress:
    """A bar on a terminal, lines otherwise."""
    return BarProgress(console) if console.is_terminal else LineProgress(console)


def fetch_table(items: list[Fetched]) -> Table:
    """What a fetch did with each result."""
    t = Table(title="hevcq fetch")
    for col in ("file", "pool", "action", "detail"):
        t.add_column(col)
    style = {"placed": "green", "replaced": "green", "skipped": "yellow", "already": "yellow"}
    for f in sorted(items, key=lambda f: (f.rel, f.pool)):
        detail = f.reason or (str(f.path) if f.path else "")
        if f.source_deleted:
            detail += " (source removed from the bucket)"
        t.add_row(shown(f.rel), f.pool, Text(f.action, style.get(f.action, "red")), shown(detail))
    return t
