"""The live view of an ingest: one line per running job and the whole library's progress.

On a terminal it is a rich Live display redrawn in place; lines printed through the same
console go above it, and log lines go to the run's log file, so nothing tears it. Elsewhere
(pipes, CI) it prints plain lines. Names are always text, never markup.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hevcq.cli.report import LineProgress
from hevcq.errors import PermanentError
from hevcq.jobs import RunningJob
from hevcq.keys import source_relative, todo_key
from hevcq.library.estimate import JobWork
from hevcq.library.summary import human_bytes, human_seconds, shorten_middle
from hevcq.pace import time_left_s

if TYPE_CHECKING:
    from hevcq.library.results import Fetched, SourcePool
    from hevcq.library.upload import Uploaded

PLAIN_EVERY_S = 10.0  # a status line when not on a terminal
REFRESH_EVERY_S = 1.0  # the ledger is read at most this often


@dataclass(frozen=True)
class Totals:
    """Overall progress of an ingest."""

    jobs_done: int
    jobs_total: int
    bytes_in: int
    bytes_out: int
    elapsed_s: float
    # The work done and planned (``estimate.job_work``, vCPU seconds), when the run knows
    # it: the time left is then weighed by it rather than by the count of jobs.
    work_done: float = 0.0
    work_total: float = 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds until the last job, at the pace so far: of the work where it is known,
        else of the jobs."""
        if self.work_total > 0:
            return time_left_s(self.elapsed_s, 100 * min(1.0, self.work_done / self.work_total))
        if self.jobs_total == 0:
            return None
        return time_left_s(self.elapsed_s, 100 * self.jobs_done / self.jobs_total)


JobRef = tuple[str, str]  # (upload key, pool)


def job_weights(work: Mapping[JobRef, JobWork | None]) -> dict[JobRef, JobWork]:
    """Each job's work in the time left: its own, or the mean of the known ones' where it
    is unknown (no duration); every job weighs 1 when none is known (pure)."""
    known = [w.total for w in work.values() if w is not None]
    mean = JobWork(sum(known) / len(known) if known else 1.0)
    return {ref: mean if w is None else w for ref, w in work.items()}


def overall_line(t: Totals) -> str:
    """One line: jobs, the sources' bytes (each file once) and every pool's outputs, ETA.

    What each pool saved is the summary's, per pool: one file's renditions share its input.
    """
    eta = f", about {human_seconds(t.eta_s)} left" if t.eta_s is not None else ""
    return (
        f"jobs {t.jobs_done}/{t.jobs_total}, in {human_bytes(t.bytes_in)}"
        f" -> out {human_bytes(t.bytes_out)} (all pools){eta}"
    )


def _name(key: str) -> str:
    try:
        return source_relative(key)
    except PermanentError:
        return key


def _rate(value: float | None, fmt: str) -> str:
    # ffmpeg reports 0 until its first frame is out: not a rate anyone should read.
    return fmt.format(value) if value else "-"


def job_cells(j: RunningJob) -> tuple[str, str, str, str, str, str]:
    """file, pool, percent, fps, speed, ETA of one running job (plain text)."""
    eta = j.eta_s
    return (
        _name(j.key),
        j.pool,
        j.done,
        _rate(j.fps, "{:.0f} fps"),
        _rate(j.speed, "{:.2f}x"),
        human_seconds(eta) if eta is not None else "?",
    )


JOB_COLUMNS = ("file", "pool", "done", "fps", "speed", "eta")
NARROW_JOBS = 70  # below this many columns, fps and speed give way to the file name


def jobs_table(running: list[RunningJob], width: int = 200) -> Table:
    """One row per running job, on one line each at any ``width``: below ``NARROW_JOBS``
    the rates go, and a long name is shortened in the middle (its end stays)."""
    shown = JOB_COLUMNS if width >= NARROW_JOBS else ("file", "pool", "done", "eta")
    room = max(12, width - (44 if width >= NARROW_JOBS else 24))
    t = Table(box=None, show_header=True, header_style="bold", expand=False, pad_edge=False)
    t.add_column("file", overflow="ellipsis", no_wrap=True, ratio=1)
    for col in shown[1:]:
        t.add_column(col, justify="left" if col == "pool" else "right", no_wrap=True)
    for j in running:
        cells = dict(zip(JOB_COLUMNS, job_cells(j), strict=True))
        cells["file"] = shorten_middle(cells["file"], room)
        t.add_row(*(Text(cells[c]) for c in shown))
    return t


class LiveView:
    """Shows an ingest as it runs; also the progress sink of its uploads (``UploadProgress``)."""

    def __init__(
        self,
        console: Console,
        running: Callable[[list[SourcePool]], list[RunningJob]],
        jobs_total: int,
        work: Mapping[JobRef, JobWork | None] | None = None,
    ) -> None:
        """``work``: each planned job's work (``estimate.job_work``), by upload key and
        pool; without it the time left counts jobs."""
        self.console = console
        self._running = running
        self._jobs_total = jobs_total
        self._work = job_weights(work or {})
        self._work_total = sum(w.total for w in self._work.values())
        self._finished: set[JobRef] = set()
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._sent = self._to_send = 0
        self._done = self._in = self._out = 0
        self._counted: set[str] = set()  # files whose input is in ``_in``
        self._jobs: list[RunningJob] = []
        self._last_read = self._last_plain = float("-inf")
        self._live: Live | None = None
        self._lines = None if console.is_terminal else LineProgress(console)

    # --- the upload progress sink ----------------------------------------------------

    def begin(self, files: int, total_bytes: int) -> None:
        """Start showing."""
        self._to_send = total_bytes
        if self._lines is not None:
            self._lines.begin(files, total_bytes)
            return
        self.console.print(Text(f"uploading {files} files, {human_bytes(total_bytes)}"))
        self._live = Live(
            self.renderable(),
            console=self.console,
            refresh_per_second=2,
            transient=True,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._live.start()

    def advance(self, nbytes: int) -> None:
        """Bytes uploaded (called from upload threads)."""
        with self._lock:
            self._sent += nbytes

    def file_done(self, up: Uploaded) -> None:
        """An upload ended: a line for each off a terminal, only failures on one."""
        if self._lines is not None:
            self._lines.file_done(up)
        elif up.error:
            self.console.print(Text(f"upload failed: {up.entry.rel}: {up.error}", style="red"))

    def end(self) -> None:
        """Stop redrawing (the summary follows)."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    # --- the farm ----------------------------------------------------------------------

    def result(self, f: Fetched) -> None:
        """One line per result brought home; counts it in the totals."""
        r = f.result
        self._done += 1
        self._finished.add((r.source_key if r is not None else todo_key(f.rel), f.pool))
        if f.action in ("placed", "replaced") and r is not None and r.output_bytes:
            if f.rel not in self._counted:  # a file's input counts once, whatever its pools
                self._counted.add(f.rel)
                self._in += r.input_bytes or 0
            self._out += r.output_bytes
        where = f" -> {f.path}" if f.path else ""
        why = f": {f.reason}" if f.reason else ""
        line = f"{f.action} {f.rel} [{f.pool}]{why}{where}"
        self.console.print(Text(line, style="" if f.ok else "red"))
        self.refresh()

    def totals(self) -> Totals:
        """Jobs home out of jobs planned, bytes in and out of the outputs so far, and the
        work done: of the jobs home, and the part of those running their steps say
        (``JobWork.done``: a search's probes, the encoded part)."""
        done = sum(self._work[ref].total for ref in self._finished if ref in self._work)
        for j in self._jobs:
            ref = (j.key, j.pool)
            if ref not in self._finished and ref in self._work:
                done += self._work[ref].done(j.step, j.probe, j.progress, j.probe_done)
        return Totals(
            self._done,
            self._jobs_total,
            self._in,
            self._out,
            time.monotonic() - self._started,
            work_done=done,
            work_total=self._work_total,
        )

    def tick(self, in_flight: list[SourcePool]) -> None:
        """Read which of the run's jobs in the farm run (at most once a second), and redraw
        or print a plain line."""
        now = time.monotonic()
        if now - self._last_read >= REFRESH_EVERY_S:
            self._last_read = now
            self._jobs = self._running(in_flight) if in_flight else []
        if self._live is not None:
            self.refresh()
        elif now - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = now
            self.console.print(Text(self.plain_status()))

    def refresh(self) -> None:
        """Redraw the live display (a terminal only)."""
        if self._live is not None:
            self._live.update(self.renderable())

    def plain_status(self) -> str:
        """The whole view as one line of text."""
        running = "; ".join(" ".join(job_cells(j)) for j in self._jobs)
        return overall_line(self.totals()) + (f"; running: {running}" if running else "")

    def renderable(self) -> RenderableType:
        """What the terminal shows now: running jobs, then the overall line."""
        with self._lock:
            sent, total = self._sent, self._to_send
        parts: list[RenderableType] = []
        if self._jobs:
            parts.append(jobs_table(self._jobs, self.console.width))
        upload = f", uploaded {human_bytes(sent)}/{human_bytes(total)}" if sent < total else ""
        parts.append(Text(overall_line(self.totals()) + upload, style="bold"))
        return Group(*parts)
