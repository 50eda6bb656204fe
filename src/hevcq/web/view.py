"""The farm as the dashboard and the API see it: what a ``Farm`` (its queues, its ledger's
typed ``LedgerItem``s and its bucket) holds, turned into the models of ``hevcq.web.models``.

The web side reads the farm through nothing else.
"""

from __future__ import annotations

import heapq
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hevcq.errors import FailureClass, PermanentError
from hevcq.jobs import QueueDepth, running_jobs
from hevcq.ledger import PHASES, TERMINAL, LedgerItem, RuleLedger, State
from hevcq.library.results import announced_objects
from hevcq.web import uploads
from hevcq.web.models import (
    Dashboard,
    DeadLetterOut,
    HourCount,
    JobDetail,
    JobList,
    JobSummary,
    JobVersion,
    ObjectMeta,
    PoolStatus,
    RedriveResult,
    SavedPoint,
    StateTotal,
    StatusReport,
    Totals,
    VideoList,
    VideoStatus,
)
from hevcq.web.play import PlayPolicy, Served, serve, verify
from hevcq.web.videos import (
    DELETE_WHEN_SETTLED,
    UploadQuota,
    UploadSide,
    check_quota,
    play_links,
    sweep_in_flight,
    video_page,
    video_status,
)

if TYPE_CHECKING:
    from hevcq.aws.s3 import S3Store
    from hevcq.farm.client import Farm

RECENT_JOBS = 50
CHART_HOURS = 24
# A page of jobs ends at the last job it holds: its time (finish, else start) in
# microseconds and its id. Opaque to callers; the API checks its shape.
JOB_CURSOR_PATTERN = r"^[0-9]{1,20}\.[0-9a-f]{16}$"
# A job id: 16 lower-case hex digits (`JobKey.job_id`). Anything else names no job, so it
# is answered without reading the ledger.
JOB_ID = re.compile(r"[0-9a-f]{16}")


def _job_order(item: LedgerItem) -> tuple[int, str]:
    """Where a job sorts in a page of jobs: its time (finish, else start) in whole
    microseconds, then its id, so that no two jobs tie."""
    t = item.finished_at or item.started_at or 0.0
    return (round(t * 1_000_000), item.job_id)


def _when(t: float | None) -> datetime | None:
    return datetime.fromtimestamp(t, UTC) if t else None


def job_summary(item: LedgerItem) -> JobSummary:
    """A ledger item as a job."""
    inb, outb = item.input_bytes, item.output_bytes
    cls = item.failure_class
    state = item.state.value
    return JobSummary(
        job_id=item.job_id,
        key=item.key,
        pool=item.pool,
        state=state,
        worker=item.worker,
        progress=item.progress or 0.0,
        attempts=item.attempts,
        started_at=_when(item.started_at),
        finished_at=_when(item.finished_at),
        input_bytes=inb,
        output_bytes=outb,
        saved_bytes=inb - outb if state == "done" and inb and outb else None,
        reason=item.reason or None,
        failure_class=FailureClass(cls) if cls in set(FailureClass) else None,
        output_key=item.output_key or None,
        vmaf=item.vmaf,
        vmaf_low=item.vmaf_low,
        vmaf_neg=item.vmaf_neg,
        xpsnr=item.xpsnr,
        xpsnr_low=item.xpsnr_low,
        crf=item.crf,
        predicted_bytes=item.predicted_bytes,
    )


def _live(item: LedgerItem) -> bool:
    # A running item is held by a worker. Whether its lease is still alive can only be
    # judged by watching it over time (hevcq.worker.lease), never by comparing clocks.
    return item.state is State.RUNNING


def status_report(
    depths: Iterable[QueueDepth], items: list[LedgerItem], now: float
) -> StatusReport:
    """Queues, running jobs and totals per (pool, state)."""
    live = [i for i in items if _live(i)]
    workers = Counter(i.pool for i in {i.worker: i for i in live}.values())
    pools = [
        PoolStatus(
            pool=d.pool,
            waiting=d.visible,
            in_flight=d.in_flight,
            delayed=d.delayed,
            dead_lettered=d.dead_letters,
            workers_alive=workers.get(d.pool, 0),
        )
        for d in depths
    ]
    running = running_jobs(live, now)
    totals = Counter((i.pool, i.state.value) for i in items)
    return StatusReport(
        pools=pools,
        running=running,
        totals=[StateTotal(pool=p, state=s, jobs=n) for (p, s), n in sorted(totals.items())],
    )


def totals(items: Iterable[LedgerItem], now: float) -> Totals:
    """Counts, bytes and the chart series over finished jobs."""
    jobs = sorted(
        (job_summary(i) for i in items if i.state in TERMINAL),
        key=lambda j: j.finished_at or datetime.min.replace(tzinfo=UTC),
    )
    done = [j for j in jobs if j.state == "done"]
    saved, points = 0, []
    for j in done:
        if j.saved_bytes is not None and j.finished_at is not None:
            saved += j.saved_bytes
            points.append(SavedPoint(at=j.finished_at, saved_bytes=saved))
    since = now - CHART_HOURS * 3600
    hours = Counter(
        (int(j.finished_at.timestamp()) // 3600 * 3600, j.pool)
        for j in jobs
        if j.finished_at is not None and j.finished_at.timestamp() >= since
    )
    return Totals(
        done=len(done),
        skipped=sum(j.state == "skipped" for j in jobs),
        failed=sum(j.state == "failed" for j in jobs),
        input_bytes=sum(j.input_bytes or 0 for j in done),
        output_bytes=sum(j.output_bytes or 0 for j in done),
        saved_bytes=saved,
        saved_over_time=points,
        jobs_per_hour=[
            HourCount(hour=datetime.fromtimestamp(h, UTC), pool=p, jobs=n)
            for (h, p), n in sorted(hours.items())
        ],
    )


def recent(items: Iterable[LedgerItem], limit: int = RECENT_JOBS) -> list[JobSummary]:
    """Finished jobs, newest first."""
    jobs = [job_summary(i) for i in items if i.state in TERMINAL]
    jobs.sort(key=lambda j: j.finished_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return jobs[:limit]


# The views' one expensive read is a scan of the whole ledger: about 1.5 ms of CPU per item
# on the embedded farm (moto writing its answer), and read capacity on DynamoDB. A view
# that reuses scans (``scan_share``) scans again only once ``scan_share`` times the last
# scan's duration has passed, so however many items the ledger holds and however often a
# dashboard polls, its scans take about 1 / scan_share of one core. A scan quicker than
# SCAN_REUSE_FROM_S is never reused: it is cheap at the dashboard's once a second.
SCAN_SHARE = 10.0
SCAN_REUSE_FROM_S = 0.1


@dataclass
class _Scan:
    items: list[LedgerItem]
    took_s: float
    at: float  # time.monotonic() when it ended


@dataclass
class FarmView:
    """A farm to read and operate, with the API's upload policy."""

    farm: Farm
    raw_policy: str = "keep"
    quota: UploadQuota = field(default_factory=UploadQuota)
    # The pools an API upload naming none is made for (HEVCQ_API_POOLS); None: every pool.
    api_pools: tuple[str, ...] | None = None
    # How outputs are played: grant key, segments, a public base URL (hevcq.web.play).
    play_policy: PlayPolicy = field(default_factory=PlayPolicy)
    # 0: every view reads the ledger afresh; a server and `status --watch` give SCAN_SHARE.
    scan_share: float = 0.0
    _dlq_lock: threading.Lock = field(default_factory=threading.Lock)
    _scan_lock: threading.Lock = field(default_factory=threading.Lock)
    _scan: _Scan | None = None

    def items(self) -> list[LedgerItem]:
        """Every ledger item, from a scan made now or, when scans are slow, a recent one.

        Requests at once share one scan: the lock holds the others until it ends."""
        with self._scan_lock:
            last = self._scan
            if (
                last is not None
                and last.took_s >= SCAN_REUSE_FROM_S
                and time.monotonic() - last.at < self.scan_share * last.took_s
            ):
                return last.items
            start = time.monotonic()
            items = self.farm.items()
            end = time.monotonic()
            self._scan = _Scan(items, end - start, end)
            return items

    @property
    def label(self) -> str:
        """What the page calls the farm."""
        return self.farm.label

    @property
    def ledger(self) -> RuleLedger:
        """The ledger table."""
        return self.farm.ledger

    @property
    def store(self) -> S3Store:
        """The bucket."""
        return self.farm.store

    def status(self, now: float | None = None) -> StatusReport:
        """What `hevcq status` shows."""
        now = time.time() if now is None else now
        return status_report(self.farm.depths(), self.items(), now)

    def dashboard(self, now: float | None = None) -> Dashboard:
        """Status, recent results and totals from one scan of the ledger."""
        now = time.time() if now is None else now
        items = self.items()
        depths = self.farm.depths()
        return Dashboard(
            status=status_report(depths, items, now),
            recent=recent(items),
            totals=totals(items, now),
        )

    def jobs(
        self,
        state: State | None = None,
        pool: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> JobList:
        """A page of jobs, newest first (by finish, else start), optionally of one state or
        pool, older than ``cursor`` (the ``next_cursor`` of the page before).

        Jobs keep their place while new ones arrive: a page starts where the one before
        ended, whatever was added since. A job that finishes between two pages moves to
        the front and is not seen again by the pages that follow."""
        picked = [
            i
            for i in self.items()
            if (state is None or i.state is state) and (pool is None or i.pool == pool)
        ]
        if cursor is not None:
            micros, _, job_id = cursor.partition(".")
            end = (int(micros), job_id)
            picked = [i for i in picked if _job_order(i) < end]
        page = heapq.nlargest(limit + 1, picked, key=_job_order)
        last = _job_order(page[limit - 1]) if len(page) > limit else None
        return JobList(
            jobs=[job_summary(i) for i in page[:limit]],
            next_cursor=f"{last[0]}.{last[1]}" if last else None,
        )

    def job(self, job_id: str) -> JobDetail | None:
        """One job by id, with its objects."""
        if not JOB_ID.fullmatch(job_id):
            return None
        item = next((i for i in self.items() if i.job_id == job_id), None)
        if item is None:
            return None
        j = job_summary(item)
        timings = {p: v for p in PHASES if (v := getattr(item, p)) is not None}
        play: tuple[str | None, str | None] = (None, None)
        if item.state is State.DONE and item.output_key and item.output_etag:
            play = play_links(self.upload_side(), item)
        return JobDetail(
            play_url=play[0],
            poster_url=play[1],
            job=j,
            source=self._meta(j.key),
            output=self._meta(j.output_key) if j.output_key else None,
            timings_s=timings,
            versions=[
                JobVersion(
                    etag=item.etag,
                    state=j.state,
                    finished_at=j.finished_at,
                    settings_hash=item.settings_hash,
                ),
                *(
                    JobVersion(
                        etag=v.etag,
                        state=v.state,
                        finished_at=_when(v.finished_at),
                        settings_hash=v.settings_hash,
                        output_etag=v.output_etag,
                        reason=v.reason,
                    )
                    for v in item.history
                ),
            ],
        )

    def _meta(self, key: str) -> ObjectMeta | None:
        info = self.store.head(key)
        if info is None:
            return None
        return ObjectMeta(key=key, size=info.size, etag=info.etag, metadata=info.metadata)

    def dead_letters(self, pool: str | None = None) -> list[DeadLetterOut]:
        """Dead-letter messages of every pool (or one), with the objects they name."""
        out = []
        with self._dlq_lock:
            for name in sorted(self.farm.refs.pools):
                if pool and name != pool:
                    continue
                for m in self.farm.dead_letters(name, wait_s=0):
                    out.append(
                        DeadLetterOut(
                            pool=name,
                            message_id=m.message_id,
                            failure_class=m.failure_class,
                            reason=m.reason,
                            keys=[o.key for o in announced_objects(m.body)],
                        )
                    )
        return out

    def redrive(
        self, pool: str, failure_class: FailureClass | None, message_id: str | None
    ) -> RedriveResult:
        """Move dead letters of a pool back: all of them, one class, or one message."""
        with self._dlq_lock:
            if message_id is not None:
                moved: int | str = int(self.farm.redrive_message(pool, message_id))
            else:
                moved = self.farm.redrive([pool], failure_class)[pool]
        return RedriveResult(pool=pool, moved=moved)

    def upload_side(self, api_base: str = "/") -> UploadSide:
        """The bucket, ledger, pools and raw policy the API's uploads are read with."""
        pools = tuple(sorted(self.farm.refs.pools))
        return UploadSide(
            self.store, self.ledger, pools, self.raw_policy, self.play_policy, api_base
        )

    def video(self, record: uploads.UploadRecord, api_base: str = "/") -> VideoStatus:
        """An upload's state per pool, with download and play links for done pools."""
        return video_status(self.upload_side(api_base), record)

    def videos(self, owner: str, limit: int, cursor: str | None, api_base: str = "/") -> VideoList:
        """A page of the owner's uploads, newest first, older than ``cursor``."""
        return video_page(self.upload_side(api_base), owner, limit, cursor)

    def play(self, grant: str, path: str, byte_range: str | None = None) -> Served:
        """One object of a played output (``hevcq.web.play``); PlayRefused otherwise."""
        return serve(
            self.store,
            self.ledger,
            self.play_policy,
            verify(self.play_policy, grant),
            path,
            byte_range=byte_range,
        )

    def upload_pools(self, requested: list[str] | None) -> tuple[str, ...]:
        """The pools an upload is made for: those it names, else the operator's default,
        else every pool. Raises ``PermanentError`` naming a pool the farm does not have."""
        farm = sorted(self.farm.refs.pools)
        wanted = requested or self.api_pools or farm
        unknown = sorted(set(wanted) - set(farm))
        if unknown:
            raise PermanentError(f"unknown pool(s) {', '.join(unknown)}; known: {', '.join(farm)}")
        return tuple(sorted(set(wanted)))

    def new_upload(
        self, record: uploads.UploadRecord, size: int | None, max_bytes: int, ttl_s: int
    ) -> tuple[str, dict[str, str], datetime, int]:
        """Check the owner's quota, then store the record and presign its POST:
        (url, fields, expiry, the most bytes it accepts)."""
        if size is not None and size > max_bytes:
            raise PermanentError(f"size {size} is over the {max_bytes} bytes an upload may take")
        wanted = size or max_bytes
        check_quota(self.upload_side(), record.owner, wanted, self.quota)
        url, fields, expires = uploads.presigned_upload(self.store, record, wanted, ttl_s)
        return url, fields, expires, wanted

    def sweep_raw(self, now: datetime | None = None) -> int:
        """Apply the raw policy to the API uploads in flight (no others: those are settled);
        returns how many stopped being in flight."""
        if self.raw_policy != DELETE_WHEN_SETTLED:
            return 0
        return sweep_in_flight(self.upload_side(), now or datetime.now(UTC))
