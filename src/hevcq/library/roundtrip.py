"""One ingest round trip: scan, then a bounded window of sources in the farm.

The next source is uploaded as one settles, and each result is brought home (placed under
``--out`` or swapped in) and recorded in the catalog the moment it arrives, so an
interrupted run loses at most the jobs in flight.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from hevcq.errors import RunHalted
from hevcq.farm.client import Farm
from hevcq.ledger import State
from hevcq.library.catalog import Catalog, library_id
from hevcq.library.fetch import Fetcher, FetchOptions
from hevcq.library.quarantine import OutputFolderUnusable
from hevcq.library.results import (
    DLQ_CHECK_EVERY_S,
    Fetched,
    SourcePool,
    dead_letter_results,
    drain,
    result_from_item,
)
from hevcq.library.scan import FileEntry, ScanOptions, ScanReport, scan
from hevcq.library.share import copied_reason
from hevcq.library.summary import Row
from hevcq.library.upload import (
    UPLOAD_WORKERS,
    NoProgress,
    Uploaded,
    UploadProgress,
    recorder,
    to_upload,
    upload_all,
    upload_one,
)
from hevcq.media.decide import copiers_of
from hevcq.media.model import Skip
from hevcq.media.quality import shown
from hevcq.messages import JobResult
from hevcq.objects import ObjectStore
from hevcq.pools import Metric, Pool, primary_pool, replacing_pools

log = structlog.get_logger()


@dataclass(frozen=True, kw_only=True)
class IngestOptions:
    """How one ingest runs."""

    scan: ScanOptions = field(default_factory=ScanOptions)
    out_dir: Path | None = None  # where outputs go once results arrive
    wait: bool = False
    fresh_farm: bool = False  # the embedded farm: starts empty, remembers nothing
    replace: bool = False  # swap the hevc pool's outputs in place of the originals
    allow_larger: bool = False
    keep_days: float = 30.0
    timeout_s: float | None = None
    window: int = 4  # sources in the farm at once (uploading or waiting for results)
    # ``--target-vmaf``: carried on every upload; ``pools`` are already ``with_target``.
    target_vmaf: float | None = None

    @property
    def home(self) -> Path | None:
        """Where this run brings outputs home (a done job whose output is not there is redone)."""
        return self.out_dir if self.wait else None


@dataclass
class RoundTrip:
    """What one ingest did, for the summary and the exit status."""

    report: ScanReport
    uploads: list[Uploaded] = field(default_factory=list)
    results: dict[SourcePool, JobResult] = field(default_factory=dict)
    fetched: dict[SourcePool, Fetched] = field(default_factory=dict)
    timed_out: bool = False
    interrupted: bool = False
    halted: str | None = None  # why the run stopped at once (RunHalted): the output disk, ...
    halted_by_workers: bool = False  # ... or local workers that exit as they start
    not_started: list[FileEntry] = field(default_factory=list)  # left for the next run
    lost: list[SourcePool] = field(default_factory=list)  # in the farm when the run stopped

    def rows(self, pools: list[str]) -> list[Row]:
        """Summary rows: scan problems, local decisions, upload errors and farm results."""
        return summary_rows(self, pools)

    @property
    def failed(self) -> bool:
        """True when any file or job failed or never finished."""
        pools = sorted({p for e in self.report.entries for p in e.decisions})
        return self.timed_out or any(r.outcome == "failed" for r in self.rows(pools))

    @property
    def encoded_nothing(self) -> bool:
        """True when this run sent nothing to the farm."""
        return not self.uploads and not self.results


def summary_rows(rt: RoundTrip, pools: list[str]) -> list[Row]:
    """One row per problem file, and per (file, pool) for the files the scan kept."""
    rows = [
        Row(p.rel, "-", "skipped" if p.kind == "symlinked_dir" else "failed", p.reason)
        for p in rt.report.problems
    ]
    ups = {u.entry.rel: u for u in rt.uploads}
    left = {e.rel for e in rt.not_started}
    for e in rt.report.entries:
        rows.extend(_entry_row(rt, e, pool, ups.get(e.rel), left) for pool in pools)
    return rows


def _local_row(e: FileEntry, pool: str, up: Uploaded | None) -> Row | None:
    """The row of a file the farm never saw in this run, or None."""
    d = e.decisions.get(pool)
    if e.status == "duplicate":
        return Row(e.rel, pool, "skipped", e.why_duplicate, e.size)
    if e.status == "deferred":
        return Row(e.rel, pool, "deferred", "over this run's limit; the next run takes it", e.size)
    if up is not None and not up.ok:
        return Row(e.rel, pool, "failed", up.error or "upload failed", e.size)
    if pool in e.pools_to_encode and pool not in e.pools_pending:
        return Row(e.rel, pool, "earlier", _earlier(e, pool), e.size)
    if e.status == "skip" or isinstance(d, Skip) or (up is None and e.upload_key is None):
        return Row(e.rel, pool, "skipped", d.reason if isinstance(d, Skip) else "not sent", e.size)
    return None


def _earlier(e: FileEntry, pool: str) -> str:
    """What an earlier run settled for ``e`` in ``pool``."""
    said = e.outcomes[pool]
    if pool in e.followed:  # its output came along from the path the file had then
        return f"{said} in an earlier run as {e.followed[pool]}; output moved to this name"
    if pool in e.shared:  # a copy of the primary's identical encode, made by this scan
        return copied_reason(e.shared[pool])
    return f"{said} in an earlier run" + (
        "; --retry-failed tries again" if said == "failed" else ""
    )


def _entry_row(rt: RoundTrip, e: FileEntry, pool: str, up: Uploaded | None, left: set[str]) -> Row:
    local = _local_row(e, pool, up)
    if local is not None:
        return local
    key = up.key if up is not None else str(e.upload_key)
    r = rt.results.get((key, pool))
    if r is None and (key, pool) in rt.lost:
        return Row(e.rel, pool, "pending", "stopped in the farm; the next run takes it", e.size)
    if r is None and e.rel in left:
        return Row(e.rel, pool, "pending", "not started; the next run takes it", e.size)
    if r is None:
        return Row(e.rel, pool, "pending", "no result yet", e.size)
    return _result_row(e, pool, r, rt.fetched.get((key, pool)))


def quality_note(r: JobResult) -> str:
    """What a scored output's summary row says of its quality: the VMAF or XPSNR it
    reached (its worst 1 %, and VMAF's NEG), and for a searched CRF the CRF and the size
    against the prediction."""
    scores: list[tuple[Metric, float | None, float | None]] = [
        ("vmaf", r.vmaf, r.vmaf_low),
        ("xpsnr", r.xpsnr, r.xpsnr_low),
    ]
    measured = [(metric, value, low) for metric, value, low in scores if value is not None]
    if not measured:
        return ""
    metric, value, low = measured[0]
    beside = [f"{low:.1f} low"] if low is not None else []
    if metric == "vmaf" and r.vmaf_neg is not None:
        beside.append(f"NEG {r.vmaf_neg:.1f}")
    note = shown(metric, value, 1) + (f" ({', '.join(beside)})" if beside else "")
    if r.predicted_bytes and r.output_bytes is not None:
        ratio = 100 * r.output_bytes / r.predicted_bytes
        note += f" at CRF {r.crf}, {ratio:.0f} % of the predicted size"
    return note


def _result_row(e: FileEntry, pool: str, r: JobResult, f: Fetched | None) -> Row:
    if f is None and r.outcome == "done":  # the farm made it; it never came home
        return Row(e.rel, pool, "pending", "not placed; the next run takes it", e.size)
    if f is not None and not f.ok:
        # A failure in the farm is told by its reason alone; a failure at home (a refused
        # or orphaned output) by what went wrong, then why.
        why = f.reason if f.action == "failed" else f"{f.action}: {f.reason}"
        return Row(e.rel, pool, "failed", why, e.size, r.output_bytes)
    if f is not None and f.action == "skipped" and r.outcome == "done":
        return Row(e.rel, pool, "skipped", f.reason, e.size)  # e.g. kept the original
    home = f.reason if f is not None and f.action == "placed" else ""  # e.g. renamed since
    reason = "; ".join(x for x in (r.reason or "", quality_note(r), home) if x)
    return Row(e.rel, pool, r.outcome, reason, e.size, r.output_bytes, r.encode_s)


class Window:
    """Which sources are in the farm: at most ``size`` at once, the next as one settles.

    Pure bookkeeping (no I/O), so the streaming rules are tested without a farm.
    """

    def __init__(self, entries: list[FileEntry], size: int) -> None:
        self.size = max(1, size)
        self.waiting: deque[FileEntry] = deque(entries)
        self.uploading = 0
        self.in_farm: dict[str, set[str]] = {}  # upload key -> pools still to report
        self.rel_of: dict[str, str] = {}
        self.closed = False  # stop taking work: nothing more is uploaded

    def take(self) -> list[FileEntry]:
        """Entries to upload now, marked as uploading."""
        out = []
        while not self.closed and self.waiting and self.uploading + len(self.in_farm) < self.size:
            out.append(self.waiting.popleft())
            self.uploading += 1
        return out

    def uploaded(self, key: str, rel: str, pools: tuple[str, ...]) -> None:
        """An upload ended; with ``pools`` empty (it failed) its slot is free at once."""
        self.uploading -= 1
        if pools:
            self.in_farm[key] = set(pools)
            self.rel_of[key] = rel

    def expects(self, key: str, pool: str) -> bool:
        """True for a job whose result this run waits for."""
        return pool in self.in_farm.get(key, ())

    def others_pending(self, key: str, pool: str) -> bool:
        """True while pools other than ``pool`` have not reported for this source."""
        return bool(self.in_farm.get(key, set()) - {pool})

    def settle(self, key: str, pool: str) -> bool:
        """One job reported; True when that was the source's last one (its slot is free)."""
        pools = self.in_farm.get(key)
        if pools is None or pool not in pools:
            return False
        pools.discard(pool)
        if pools:
            return False
        del self.in_farm[key]
        return True

    @property
    def idle(self) -> bool:
        """Nothing in the farm and nothing more to send."""
        return not self.in_farm and not self.uploading and (self.closed or not self.waiting)

    def in_flight(self) -> list[SourcePool]:
        """Jobs in the farm without a result."""
        return sorted((k, p) for k, pools in self.in_farm.items() for p in pools)


@dataclass
class Streaming:
    """The streaming loop's result handler: each result goes home as it arrives."""

    rt: RoundTrip
    window: Window
    fetcher: Fetcher
    on_result: Callable[[Fetched], None] | None = None
    _held: dict[SourcePool, JobResult] = field(default_factory=dict)
    # Sources this run deleted (key -> the version's ETag): a result is known as this
    # library's by its source's metadata where the catalog holds no upload (the embedded
    # farm), and a clean-up may delete the source while a settled job's result is still
    # on its way (the ledger said every pool had finished).
    deleted: dict[str, str] = field(default_factory=dict)

    def owns(self, r: JobResult) -> bool:
        """Results of jobs this run waits for, or already brought home (a late copy)."""
        jid = (r.source_key, r.pool)
        if not (self.window.expects(*jid) or jid in self.rt.fetched):
            return False
        return self.deleted.get(r.source_key) == r.source_etag or self.fetcher.owns(r)

    def process(self, r: JobResult) -> Fetched:
        """Place one result; a replacing pool's result waits for the file's renditions."""
        jid = (r.source_key, r.pool)
        if jid in self.rt.fetched and not self.window.expects(*jid):
            # Home already from the ledger: this message is only its late copy.
            item = self.rt.fetched[jid]
            return Fetched(item.rel, r.pool, "already", "brought home already", result=r)
        replace = self.fetcher.options.replace
        if r.pool in replace and self.window.others_pending(*jid):
            # Renditions are made from and checked against the original: swap it last.
            self._held[jid] = r
            self.rt.results[jid] = r
            return Fetched(self.window.rel_of.get(r.source_key, ""), r.pool, "waiting", result=r)
        item = self._home(r)
        if item.action != "retry":
            waiting = [j for j in self._held if j[0] == r.source_key]
            for held in waiting:
                if not self.window.others_pending(*held):
                    self._home(self._held.pop(held))
        return item

    def _home(self, r: JobResult) -> Fetched:
        jid = (r.source_key, r.pool)
        self.rt.results[jid] = r
        if (
            r.outcome == "done"
            and self.fetcher.options.out_dir is None
            and (r.pool not in self.fetcher.options.replace)
        ):
            item = Fetched(
                self.window.rel_of.get(r.source_key, ""),
                r.pool,
                "skipped",
                "no output folder",
                result=r,
            )
        else:
            item = self.fetcher.process(r)
        if item.source_deleted:
            self.deleted[r.source_key] = r.source_etag
        if item.action == "retry":
            return item
        self.rt.fetched[jid] = item
        self.window.settle(*jid)
        if self.on_result:
            self.on_result(item)
        return item

    def missed(self, results: Iterable[JobResult]) -> None:
        """Jobs the ledger has finished whose result never arrived (taken off the queue by
        someone else, or lost): brought home from the ledger's record."""
        for r in results:
            jid = (r.source_key, r.pool)
            if self.window.expects(*jid) and jid not in self._held:
                log.info("result_from_ledger", key=r.source_key, pool=r.pool)
                self.process(r)

    def dead_letters(self, farm: Farm) -> None:
        """Jobs whose messages the farm gave up on (a dead-letter queue) fail here."""
        for r in dead_letter_results(farm):
            if self.window.expects(r.source_key, r.pool):
                self.process(r)


@dataclass
class Control:
    """How a run is told to stop: ``draining`` takes no more work, ``stop`` ends it now."""

    draining: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def interrupt(self) -> None:
        """First call: finish what runs and take nothing new; second: stop now."""
        if self.draining.is_set():
            self.stop.set()
        self.draining.set()


def run_round_trip(
    farm: Farm,
    pools: Mapping[str, Pool],
    library: Path,
    *,
    state: Catalog,
    options: IngestOptions,
    progress: UploadProgress | None = None,
    on_scanned: Callable[[ScanReport], None] | None = None,
    on_tick: Callable[[list[SourcePool]], None] | None = None,
    on_result: Callable[[Fetched], None] | None = None,
    control: Control | None = None,
    report: ScanReport | None = None,
) -> RoundTrip:
    """Scan (unless given the report), then upload and, when waiting, stream results home.

    ``on_tick`` is called on each turn of the loop with the jobs the run has in the farm.
    """
    if report is None:
        report = scan(
            library, list(pools.values()), state, options.scan, out_dir=options.home, move=True
        )
        if on_scanned:
            on_scanned(report)
    rt = RoundTrip(report)
    # Waiting, sources a configured farm already holds wait too: their results (or the
    # ledger, for a job done in an earlier run whose output is not in this --out) come home.
    held = options.fresh_farm or options.wait
    entries = [e for e in to_upload(report, fresh_farm=held) if e.pools_pending]
    log.info("ingest_planned", files=len(report.entries), to_upload=len(entries))
    store = farm.store
    if not options.wait:
        on_done = recorder(state, farm_keeps=not options.fresh_farm)
        rt.uploads = upload_all(
            store,
            library,
            entries,
            library_id(library),
            progress=progress,
            on_done=on_done,
            target_vmaf=options.target_vmaf,
        )
        return rt
    fetcher = Fetcher(
        library,
        state,
        store,
        farm.ledger,
        fetch_options(options, pools),
        all_pools=sorted(pools),
        library=library_id(library),
    )
    run = _Run(
        rt,
        Streaming(rt, Window([], options.window), fetcher, on_result),
        farm,
        options=options,
        control=control or Control(),
        on_tick=on_tick,
    )
    run.start(entries, store, recorder(state, farm_keeps=not options.fresh_farm))
    run.loop(progress or NoProgress())
    return rt


class _Run:
    """One streaming run: uploads into the window, results out of it, until idle or stopped."""

    def __init__(
        self,
        rt: RoundTrip,
        handler: Streaming,
        farm: Farm,
        *,
        options: IngestOptions,
        control: Control,
        on_tick: Callable[[list[SourcePool]], None] | None,
    ) -> None:
        self.rt, self.handler, self.farm = rt, handler, farm
        self.options, self.control, self.on_tick = options, control, on_tick
        self.window = handler.window
        self.fetcher = handler.fetcher
        self.uploads: dict[Future[Uploaded], FileEntry] = {}
        self.busy = True  # a job of the window runs on a worker (checked once draining)
        self.deadline = None if options.timeout_s is None else time.monotonic() + options.timeout_s
        self.next_dlq = time.monotonic() + DLQ_CHECK_EVERY_S
        self.on_done: Callable[[Uploaded], None] | None = None
        self.sending: list[FileEntry] = []

    def start(
        self,
        entries: list[FileEntry],
        store: ObjectStore,
        on_done: Callable[[Uploaded], None] | None,
    ) -> None:
        """Queue what to upload; sources a real farm already holds wait for their results."""
        self.store, self.on_done = store, on_done
        self.sending = [e for e in entries if self.options.fresh_farm or e.status == "send"]
        self.window.waiting.extend(self.sending)
        for e in self.sending:  # the client's own skips: no farm result will say so
            for pool, d in e.decisions.items():
                if isinstance(d, Skip) and e.outcomes.get(pool) != "skipped":
                    self.fetcher.state.record_outcome(e.rel, pool, "skipped", d.reason)
        sent_now = {e.rel for e in self.sending}
        for e in entries:
            if e.rel in sent_now or not e.upload_key:
                continue
            # Content already in the bucket raises no new event: finished results come
            # from the ledger.
            self.window.uploading += 1
            self.window.uploaded(e.upload_key, e.rel, e.pools_pending)
            for pool in e.pools_pending:
                res = self._from_ledger(e.upload_key, pool)
                if res is not None:
                    self.handler.process(self._still_there(res))

    def _from_ledger(self, key: str, pool: str) -> JobResult | None:
        ledger = self.fetcher.ledger
        item = ledger.get(key, pool) if ledger is not None else None
        return result_from_item(item, self.farm.refs.bucket) if item else None

    def _finished_in_ledger(self) -> Iterator[JobResult]:
        """The window's jobs the ledger has finished for the version this run uploaded."""
        for key, pool in self.window.in_flight():
            res = self._from_ledger(key, pool)
            if res is None:
                continue
            head = self.store.head(key)
            version = head.etag if head is not None else self.handler.deleted.get(key)
            if version == res.source_etag:
                yield self._still_there(res)

    def _still_there(self, r: JobResult) -> JobResult:
        """A done job is fetched again from the farm; one whose output the farm no longer
        holds (fetched and cleaned up earlier) fails with that reason instead of waiting."""
        if r.outcome != "done" or not r.output_key or self.store.head(r.output_key) is not None:
            return r
        why = f"its output {r.output_key} is no longer in the farm (fetched and deleted earlier)"
        return r.model_copy(update={"outcome": "failed", "reason": why, "output_key": None})

    def loop(self, progress: UploadProgress) -> None:
        """Run until every source settled, or until stopped."""
        self.progress = progress
        progress.begin(len(self.sending), sum(e.size for e in self.sending))
        with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS, thread_name_prefix="upload") as ex:
            self.executor = ex
            self.tick()
            try:
                drain(
                    self.farm.results_inbox(),
                    self.handler,
                    follow=True,
                    stop=self.control.stop,
                    on_tick=self.tick,
                    until=self.finished,
                )
            except RunHalted as exc:
                # Every later output would meet the same disk, every job the same workers:
                # stop now, keep what is home.
                log.error("ingest_halted", reason=str(exc))  # noqa: TRY400 - said, not a bug
                self.rt.halted = str(exc)
                self.rt.halted_by_workers = not isinstance(exc, OutputFolderUnusable)
            finally:
                progress.end()
                self.window.closed = True
                for fut in self.uploads:
                    fut.cancel()
        rt = self.rt
        rt.interrupted = self.control.draining.is_set() and not rt.timed_out
        rt.not_started = [*self.uploads.values(), *self.window.waiting]
        rt.lost = self.window.in_flight()
        rt.uploads.sort(key=lambda u: u.entry.rel)

    def finished(self) -> bool:
        """Every source settled; or, draining, no job of the window still running."""
        w = self.window
        return w.idle or (w.closed and not self.uploads and not self.busy)

    def tick(self) -> None:
        """Take finished uploads, start new ones, look for dead letters and the clock."""
        if self.control.draining.is_set():
            self.window.closed = True
            self.busy = any(self._running(jid) for jid in self.window.in_flight())
        for fut in [f for f in self.uploads if f.done()]:
            del self.uploads[fut]
            self._uploaded(fut.result())
        lib = self.fetcher.library
        for e in self.window.take():
            fut = self.executor.submit(
                upload_one,
                self.store,
                self.fetcher.root,
                e,
                lib,
                self.progress.advance,
                target_vmaf=self.options.target_vmaf,
            )
            self.uploads[fut] = e
        if self.on_tick:
            self.on_tick(self.window.in_flight())  # a view reads these jobs, never a scan
        if time.monotonic() >= self.next_dlq:
            self.handler.dead_letters(self.farm)
            self.handler.missed(self._finished_in_ledger())
            self.next_dlq = time.monotonic() + DLQ_CHECK_EVERY_S
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.rt.timed_out = True
            self.control.stop.set()

    def _uploaded(self, up: Uploaded) -> None:
        self.rt.uploads.append(up)
        self.progress.file_done(up)
        if self.on_done:
            self.on_done(up)
        if up.ok:  # the run's own record: the embedded farm's uploads skip the catalog
            self.fetcher.remember_upload(up.key, up.entry.fingerprint)
        self.window.uploaded(up.key, up.entry.rel, up.entry.pools_pending if up.ok else ())

    def _running(self, jid: SourcePool) -> bool:
        ledger = self.fetcher.ledger
        item = ledger.get(*jid) if ledger is not None else None
        return item is not None and item.state is State.RUNNING


def fetch_options(options: IngestOptions, pools: Mapping[str, Pool]) -> FetchOptions:
    """How an ingest takes its results home: which pools replace, and what is cleaned up."""
    replace = replacing_pools(pools.values()) if options.replace else frozenset()
    primary = primary_pool(pools.values())
    return FetchOptions(
        pools=frozenset(pools),
        out_dir=options.out_dir,
        replace=replace,
        allow_larger=options.allow_larger,
        keep_days=options.keep_days,
        # The embedded farm's bucket is scratch space that ends with the run: a source and
        # its outputs go as soon as every pool's result is home, so its disk holds the
        # window, not the library. A configured farm's outputs stay for other readers.
        cleanup=options.fresh_farm,
        primary=primary.name if primary else None,
        copiers=copiers_of(primary, pools.values()),
    )
