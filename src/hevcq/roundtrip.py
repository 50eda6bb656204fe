"""One ingest round trip: plan, upload, wait for results, download, summarise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from hevcq.aws import Clients
from hevcq.farm import Pool
from hevcq.ingest import Candidate, plan, upload_all
from hevcq.ledger import DynamoLedger
from hevcq.media import Skip
from hevcq.messages import JobResult
from hevcq.provision import FarmRefs
from hevcq.report import Row
from hevcq.results import ResultCollector, download_outputs, result_from_item
from hevcq.store import S3Store

log = structlog.get_logger()


@dataclass
class RoundTrip:
    """What one ingest did, for the summary and the exit status."""

    candidates: list[Candidate] = field(default_factory=list)
    uploaded: dict[str, Candidate] = field(default_factory=dict)
    results: dict[tuple[str, str], JobResult] = field(default_factory=dict)
    outputs: dict[tuple[str, str], Path] = field(default_factory=dict)
    timed_out: bool = False

    def rows(self, pools: list[str]) -> list[Row]:
        """Summary rows: local decisions for files not sent, farm results for the rest."""
        rows = []
        sent = {c.rel: key for key, c in self.uploaded.items()}
        for c in self.candidates:
            if c.error:
                rows.append(Row(c.rel, "-", "failed", c.error, c.size or None))
                continue
            for pool in pools:
                rows.append(self._row(c, pool, sent.get(c.rel)))
        return rows

    def _row(self, c: Candidate, pool: str, key: str | None) -> Row:
        if key is None:
            d = c.decisions.get(pool)
            reason = d.reason if isinstance(d, Skip) else "not sent"
            return Row(c.rel, pool, "skipped", reason, c.size)
        r = self.results.get((key, pool))
        if r is None:
            return Row(c.rel, pool, "pending", "no result yet", c.size)
        return Row(c.rel, pool, r.outcome, r.reason or "", c.size, r.output_bytes, r.encode_s)

    @property
    def failed(self) -> bool:
        """True when any job failed or never finished."""
        return (
            self.timed_out
            or any(c.error for c in self.candidates)
            or any(r.outcome == "failed" for r in self.results.values())
        )


def _already_finished(
    ledger: DynamoLedger, keys: list[str], pools: list[str], bucket: str
) -> dict[tuple[str, str], JobResult]:
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
    pools: dict[str, Pool],
    library: Path,
    *,
    out_dir: Path | None,
    wait: bool,
    timeout_s: float | None = None,
    on_tick: Callable[[], None] | None = None,
) -> RoundTrip:
    """Plan, upload what needs work and, when waiting, collect results and download outputs."""
    rt = RoundTrip(candidates=plan(library, pools))
    todo = [c for c in rt.candidates if not c.error and c.needs_work]
    log.info("ingest_planned", files=len(rt.candidates), to_upload=len(todo))
    store = S3Store(clients.s3, refs.bucket)
    uploads = upload_all(store, todo)
    rt.uploaded = {u.key: u.candidate for u in uploads}
    if not wait:
        return rt
    names = sorted(pools)
    collector = ResultCollector(clients.sqs, refs, {(k, p) for k in rt.uploaded for p in names})
    # Identical content already in the bucket raises no new event: its results, if the
    # farm already finished them, come from the ledger.
    unchanged = sorted(u.key for u in uploads if not u.sent)
    ledger = DynamoLedger(clients.dynamodb, refs.ledger_table)
    collector.results.update(_already_finished(ledger, unchanged, names, refs.bucket))
    rt.timed_out = not collector.wait(timeout_s=timeout_s, on_tick=on_tick)
    rt.results = dict(collector.results)
    if out_dir is not None:
        rt.outputs = download_outputs(clients.s3, refs.bucket, list(rt.results.values()), out_dir)
    return rt

