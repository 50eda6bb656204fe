"""One ingest round trip: scan, upload, wait for results, bring outputs home, summarise."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from hevcq.aws import Clients
from hevcq.farm import Pool
from hevcq.fetch import Fetched, Fetcher, FetchOptions
from hevcq.ingest import Progress, Uploaded, library_id, recorder, to_upload, upload_all
from hevcq.ledger import DynamoLedger
from hevcq.library import FileEntry, ScanOptions, ScanReport, scan
from hevcq.media import Skip
from hevcq.messages import JobResult
from hevcq.provision import FarmRefs
from hevcq.report import Row
from hevcq.results import JobId, ResultCollector, result_from_item
from hevcq.statestore import StateStore
from hevcq.store import S3Store

log = structlog.get_logger()


@dataclass(frozen=True)
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


REPLACE_POOL = "hevc"


@dataclass
class RoundTrip:
    """What one ingest did, for the summary and the exit status."""

    report: ScanReport
    uploads: list[Uploaded] = field(default_factory=list)
    results: dict[JobId, JobResult] = field(default_factory=dict)
    fetched: dict[JobId, Fetched] = field(default_factory=dict)
    timed_out: bool = False

    def rows(self, pools: list[str]) -> list[Row]:
        """Summary rows: scan problems, local decisions, upload errors and farm results."""
        return summary_rows(self, pools)

    @property
    def failed(self) -> bool:
        """True when any file or job failed or never finished."""
        pools = sorted({p for e in self.report.entries for p in e.decisions})
        return self.timed_out or any(r.outcome == "failed" for r in self.rows(pools))


def summary_rows(rt: RoundTrip, pools: list[str]) -> list[Row]:
    """One row per problem file, and per (file, pool) for the files the scan kept."""
    rows = [
        Row(p.rel, "-", "skipped" if p.kind == "symlinked_dir" else "failed", p.reason)
        for p in rt.report.problems
    ]
    ups = {u.entry.rel: u for u in rt.uploads}
    for e in rt.report.entries:
        rows.extend(_entry_row(rt, e, pool, ups.get(e.rel)) for pool in pools)
    return rows


def _local_row(e: FileEntry, pool: str, up: Uploaded | None) -> Row | None:
    """The row of a file the farm never saw in this run, or None."""
    d = e.decisions.get(pool)
    if e.status == "duplicate":
        return Row(e.rel, pool, "skipped", f"duplicate of {e.duplicate_of}", e.size)
    if e.status == "deferred":
        return Row(e.rel, pool, "deferred", "over this run's limit; the next run takes it", e.size)
    if up is not None and not up.ok:
        return Row(e.rel, pool, "failed", up.error or "upload failed", e.size)
    if e.status == "skip" or (up is None and e.upload_key is None):
        return Row(e.rel, pool, "skipped", d.reason if isinstance(d, Skip) else "not sent", e.size)
    return None


def _entry_row(rt: RoundTrip, e: FileEntry, pool: str, up: Uploaded | None) -> Row:
    local = _local_row(e, pool, up)
    if local is not None:
        return local
    key = up.key if up is not None else str(e.upload_key)
    r = rt.results.get((key, pool))
    if r is None:
        return Row(e.rel, pool, "pending", "no result yet", e.size)
    f = rt.fetched.get((key, pool))
    if f is not None and not f.ok:
        return Row(e.rel, pool, "failed", f"{f.action}: {f.reason}", e.size, r.output_bytes)
    return Row(e.rel, pool, r.outcome, r.reason or "", e.size, r.output_bytes, r.encode_s)


def _from_ledger(
    ledger: DynamoLedger, keys: list[str], pools: list[str], bucket: str
) -> dict[JobId, JobResult]:
    """Results of jobs the ledger already holds (for re-runs that upload nothing new)."""
    found = {}
    for key in keys:
        for pool in pools:
            item = ledger.get(key, pool)
            res = result_from_item(item, bucket) if item else None
            if res is not None:
                found[(key, pool)] = res
    return found


def run_round_trip(
    clients: Clients,
    refs: FarmRefs,
    pools: Mapping[str, Pool],
    library: Path,
    *,
    state: StateStore,
    options: IngestOptions,
    progress: Progress | None = None,
    on_scanned: Callable[[ScanReport], None] | None = None,
    on_tick: Callable[[], None] | None = None,
) -> RoundTrip:
    """Scan, upload what needs work and, when waiting, collect results and fetch outputs."""
    report = scan(library, list(pools.values()), state, options.scan)
    if on_scanned:
        on_scanned(report)
    rt = RoundTrip(report)
    entries = to_upload(report, fresh_farm=options.fresh_farm)
    log.info("ingest_planned", files=len(report.entries), to_upload=len(entries))
    store = S3Store(clients.s3, refs.bucket)
    # Uploads to an embedded farm die with it: remembering them would stop a later
    # ingest to a real farm from sending those files.
    on_done = None if options.fresh_farm else recorder(state)
    rt.uploads = upload_all(store, library, entries, library_id(library),
                            progress=progress, on_done=on_done)  # fmt: skip
    if not options.wait:
        return rt
    names = sorted(pools)
    keys = {u.key for u in rt.uploads if u.ok}
    keys |= {e.upload_key for e in report.entries if e.status == "uploaded" and e.upload_key}
    collector = ResultCollector(clients.sqs, refs, {(k, p) for k in keys for p in names})
    # Content already in the bucket raises no new event: its results, if the farm already
    # finished them, come from the ledger.
    unchanged = sorted(keys - {u.key for u in rt.uploads if u.sent})
    ledger = DynamoLedger(clients.dynamodb, refs.ledger_table)
    collector.results.update(_from_ledger(ledger, unchanged, names, refs.bucket))
    rt.timed_out = not collector.wait(timeout_s=options.timeout_s, on_tick=on_tick)
    rt.results = dict(collector.results)
    fetcher = Fetcher(library, state, store, ledger, _fetch_options(options, names),
                      all_pools=names, library=library_id(library))  # fmt: skip
    rt.fetched = bring_home(fetcher, list(rt.results.values()))
    return rt


def _fetch_options(options: IngestOptions, pools: list[str]) -> FetchOptions:
    replace = frozenset({REPLACE_POOL} & set(pools)) if options.replace else frozenset()
    return FetchOptions(
        pools=frozenset(pools), out_dir=options.out_dir, replace=replace,
        allow_larger=options.allow_larger, keep_days=options.keep_days, cleanup=False,
    )  # fmt: skip


def bring_home(fetcher: Fetcher, results: list[JobResult]) -> dict[JobId, Fetched]:
    """Verify and place every result; replacing pools go last (renditions check the original)."""
    replace = fetcher.options.replace
    ordered = sorted(results, key=lambda r: (r.pool in replace, r.source_key, r.pool))
    out = {}
    for r in ordered:
        if r.outcome == "done" and fetcher.options.out_dir is None and r.pool not in replace:
            continue  # nowhere to put it: `hevcq fetch` brings it later
        out[(r.source_key, r.pool)] = fetcher.process(r)
    return out
