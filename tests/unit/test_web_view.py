"""What the dashboard draws, from ledger items: running jobs, recent results, totals, charts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from hevcq.errors import FailureClass
from hevcq.jobs import QueueDepth, RunningJob
from hevcq.ledger import LedgerItem, State
from hevcq.web import view as web_view
from hevcq.web.models import PoolOutcome
from hevcq.web.videos import video_state
from hevcq.web.view import job_summary, recent, status_report, totals

HOUR = 3600
T0 = 1_700_000_000 // HOUR * HOUR  # the start of an hour
NOW = T0 + HOUR + 400


def _item(key: str, pool: str, state: str, **kw: object) -> LedgerItem:
    return LedgerItem(key=key, pool=pool, state=State(state), job_id=f"{key}@{pool}", **kw)  # type: ignore[arg-type]


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


ITEMS = [
    _item(
        "a.mov",
        "hevc",
        "done",
        finished_at=T0 + 100,
        input_bytes=1000,
        output_bytes=400,
        output_key="DONE/hevc/a.mp4",
    ),
    _item("b.mov", "hevc", "skipped", finished_at=T0 + 200, reason="already HEVC"),
    _item(
        "c.mp4",
        "hevc",
        "failed",
        finished_at=T0 + 300,
        reason="not a media file",
        failure_class="permanent",
        attempts=1,
    ),
    _item(
        "a.mov",
        "720p",
        "done",
        finished_at=T0 + HOUR + 100,
        input_bytes=1000,
        output_bytes=700,
        output_key="DONE/720p/a.720p.mp4",
    ),
    _item("old.mov", "hevc", "failed", finished_at=NOW - 30 * HOUR, reason="old"),
    _item(
        "d.mov",
        "720p",
        "running",
        worker="w1",
        started_at=NOW - 30,
        progress=25.0,
        fps=48.5,
        speed=2.25,
    ),
    _item("e.mov", "720p", "running", worker="w1", started_at=NOW - 5, progress=0.5),
    _item("f.mov", "hevc", "running", worker="w2", started_at=NOW - 60, progress=50.0),
    _item("g.mov", "hevc", "queued"),
]


def test_recent_results_are_newest_first_with_sizes_saved_reasons_and_classes() -> None:
    rows = recent(ITEMS)
    assert [(r.key, r.pool) for r in rows] == [
        ("a.mov", "720p"),
        ("c.mp4", "hevc"),
        ("b.mov", "hevc"),
        ("a.mov", "hevc"),
        ("old.mov", "hevc"),
    ]
    done, failed, skipped, first = rows[0], rows[1], rows[2], rows[3]
    assert (done.state, done.input_bytes, done.output_bytes, done.saved_bytes) == (
        "done",
        1000,
        700,
        300,
    )
    assert (first.saved_bytes, first.output_key) == (600, "DONE/hevc/a.mp4")
    assert (skipped.state, skipped.reason, skipped.saved_bytes) == ("skipped", "already HEVC", None)
    assert (failed.state, failed.failure_class, failed.reason) == (
        "failed",
        FailureClass.PERMANENT,
        "not a media file",
    )
    assert failed.attempts == 1
    assert len(recent(ITEMS, limit=2)) == 2


def test_a_job_shows_the_score_its_pool_measured_vmaf_or_xpsnr() -> None:
    xpsnr = job_summary(_item("a.mov", "hevc", "done", xpsnr=41.2, xpsnr_low=38.0, crf=27))
    assert (xpsnr.xpsnr, xpsnr.xpsnr_low, xpsnr.vmaf, xpsnr.crf) == (41.2, 38.0, None, 27)
    vmaf = job_summary(_item("a.mov", "hevc", "done", vmaf=95.1, vmaf_low=90.0, vmaf_neg=93.2))
    assert (vmaf.vmaf, vmaf.vmaf_low, vmaf.vmaf_neg, vmaf.xpsnr) == (95.1, 90.0, 93.2, None)


def test_totals_and_the_two_chart_series() -> None:
    t = totals(ITEMS, NOW)
    assert (t.done, t.skipped, t.failed) == (2, 1, 2)
    assert (t.input_bytes, t.output_bytes, t.saved_bytes) == (2000, 1100, 900)
    # Space saved over time: cumulative, one point per done job, oldest first.
    assert [(p.at, p.saved_bytes) for p in t.saved_over_time] == [
        (_at(T0 + 100), 600),
        (_at(T0 + HOUR + 100), 900),
    ]
    # Jobs per hour per pool over the last 24 hours: every outcome counts, "old" is outside.
    assert [(h.hour, h.pool, h.jobs) for h in t.jobs_per_hour] == [
        (_at(T0), "hevc", 3),
        (_at(T0 + HOUR), "720p", 1),
    ]


def test_running_jobs_show_percent_fps_speed_and_eta() -> None:
    depths = [QueueDepth("720p", 3, 2, 0, 1), QueueDepth("hevc", 0, 1, 0, 0)]
    report = status_report(depths, ITEMS, NOW)
    pools = {p.pool: p for p in report.pools}
    p720 = pools["720p"]
    assert (p720.waiting, p720.in_flight, p720.dead_lettered) == (3, 2, 1)
    # Workers alive: distinct workers holding a job of the pool.
    assert (pools["720p"].workers_alive, pools["hevc"].workers_alive) == (1, 1)
    assert [r.key for r in report.running] == ["f.mov", "d.mov", "e.mov"]  # oldest first
    d = next(r for r in report.running if r.key == "d.mov")
    assert (d.progress, d.fps, d.speed, d.age_s) == (25.0, 48.5, 2.25, 30.0)
    assert d.eta_s == pytest.approx(90.0)  # 30 s for 25%: 90 s for the other 75%
    assert RunningJob.of(ITEMS[6], NOW).eta_s is None  # under 1%: no estimate yet
    searching = RunningJob.of(dataclasses.replace(ITEMS[6], step="searching"), NOW)
    assert (searching.step, searching.done) == ("searching", "searching")
    probing = RunningJob.of(dataclasses.replace(ITEMS[6], step="searching", probe=3), NOW)
    assert (probing.probe, probing.done) == (3, "searching, probe 3")
    # The probe count belongs to the search: an encoding job shows its percent alone.
    encoding = RunningJob.of(dataclasses.replace(ITEMS[6], step="encoding", probe=3), NOW)
    assert (encoding.probe, encoding.done) == (None, f"{encoding.progress:.0f}%")
    # A step no worker of this release writes (a compromised one's text) is not shown.
    forged = RunningJob.of(dataclasses.replace(ITEMS[6], step="<img src=x onerror=1>"), NOW)
    assert (forged.step, forged.done) == (None, f"{forged.progress:.0f}%")
    totals_by = {(t.pool, t.state): t.jobs for t in report.totals}
    assert totals_by[("hevc", "queued")] == 1
    assert totals_by[("720p", "running")] == 2


def test_a_searched_jobs_time_left_is_at_the_pace_of_its_encode() -> None:
    """150 s of search then 30 s of encode to 15 %: 170 s left, not 15 minutes."""
    item = dataclasses.replace(ITEMS[6], started_at=NOW - 180, progress=15.0)
    encoding = dataclasses.replace(item, step="encoding", step_at=NOW - 30)
    assert RunningJob.of(encoding, NOW).eta_s == pytest.approx(170.0)
    assert RunningJob.of(encoding, NOW).age_s == 180.0  # the job's age is still its own
    assert RunningJob.of(item, NOW).eta_s == pytest.approx(1020.0)  # no search: from claim


@pytest.mark.parametrize(
    ("states", "word"),
    [
        (["done", "skipped"], "done"),
        (["done", "failed"], "failed"),
        (["done", "running"], "processing"),
        (["awaiting upload", "awaiting upload"], "awaiting upload"),
        (["waiting", "done"], "processing"),
    ],
)
def test_a_video_is_done_only_when_every_pool_settled(states: list[str], word: str) -> None:
    assert video_state([PoolOutcome(pool=str(i), state=s) for i, s in enumerate(states)]) == word


class _SlowScans:
    """A farm whose ledger scan takes ``took_s`` on the view's clock, counted."""

    def __init__(self, clock: list[float], took_s: float) -> None:
        self.clock, self.took_s, self.scans = clock, took_s, 0

    def items(self) -> list[LedgerItem]:
        self.scans += 1
        self.clock[0] += self.took_s
        return list(ITEMS)


@pytest.mark.parametrize(
    ("took_s", "share", "later", "scans"),
    [
        (2.0, 10.0, [5, 19.9], 1),  # a 2 s scan serves the next 20 s
        (2.0, 10.0, [20.1], 2),
        (0.05, 10.0, [0.1, 0.2, 0.3], 4),  # a quick scan is never reused
        (2.0, 0.0, [0.1, 0.2], 3),  # a view that reuses nothing (the default)
    ],
)
def test_a_slow_ledger_scan_is_reused_for_a_share_of_its_time(
    monkeypatch: pytest.MonkeyPatch, took_s: float, share: float, later: list[float], scans: int
) -> None:
    """A dashboard polling once a second scanned the whole ledger once a second: on the
    embedded farm a core at a few thousand jobs, taken from the encodes."""
    clock = [1000.0]
    monkeypatch.setattr("hevcq.web.view.time.monotonic", lambda: clock[0])
    farm = _SlowScans(clock, took_s)
    view = web_view.FarmView(farm, scan_share=share)  # type: ignore[arg-type]
    assert len(view.items()) == len(ITEMS)
    ended = clock[0]
    for after in later:  # seconds after the first scan ended
        clock[0] = max(clock[0], ended + after)
        assert len(view.items()) == len(ITEMS)
    assert farm.scans == scans


class _Ledger:
    """A farm whose ledger holds what the test puts in ``held``."""

    def __init__(self, held: list[LedgerItem]) -> None:
        self.held = held

    def items(self) -> list[LedgerItem]:
        return list(self.held)


def _job(n: int, at: float | None, state: str = "done", pool: str = "hevc") -> LedgerItem:
    kw = {"finished_at": at} if state != "running" else {"started_at": at}
    return LedgerItem(key=f"v{n}.mov", pool=pool, state=State(state), job_id=f"{n:016x}", **kw)  # type: ignore[arg-type]


def _pages(
    view: web_view.FarmView, limit: int, cursor: str | None = None, **kw: object
) -> list[list[str]]:
    pages = []
    while True:
        page = view.jobs(limit=limit, cursor=cursor, **kw)  # type: ignore[arg-type]
        pages.append([j.job_id for j in page.jobs])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def test_pages_of_jobs_chain_newest_first_and_new_jobs_do_not_shift_them() -> None:
    """Every job once, in order, across pages; three jobs share a finish time."""
    held = [_job(n, T0 + n // 3 if n else None) for n in range(10)]  # job 0 has no time
    view = web_view.FarmView(_Ledger(held))  # type: ignore[arg-type]
    whole = [j.job_id for j in view.jobs(limit=100).jobs]
    assert whole[-1] == f"{0:016x}"
    assert len(whole) == 10
    times = [(i.finished_at or 0, i.job_id) for i in held]
    assert whole == [j for _, j in sorted(times, reverse=True)]
    for limit in (1, 3, 4, 10):
        pages = _pages(view, limit)
        assert [j for p in pages for j in p] == whole
        assert all(len(p) == limit for p in pages[:-1])
        assert 0 < len(pages[-1]) <= limit
    first = view.jobs(limit=4)
    held += [_job(n, T0 + 100 + n) for n in range(10, 15)]  # newer jobs arrive meanwhile
    rest = _pages(view, 100, cursor=first.next_cursor)
    assert [j.job_id for j in first.jobs] + rest[0] == whole


def test_a_page_of_jobs_of_one_state_or_pool_chains_over_that_state_or_pool() -> None:
    held = [
        _job(n, T0 + n, "done" if n % 2 else "failed", "hevc" if n % 3 else "720p")
        for n in range(12)
    ]
    held.append(_job(12, T0 + 50, "running"))
    view = web_view.FarmView(_Ledger(held))  # type: ignore[arg-type]
    for state, pool in [(State.DONE, None), (State.FAILED, "720p"), (State.RUNNING, None)]:
        want = [
            i.job_id
            for i in sorted(held, key=lambda i: i.finished_at or i.started_at or 0, reverse=True)
            if i.state is state and (pool is None or i.pool == pool)
        ]
        assert [j for p in _pages(view, 2, state=state, pool=pool) for j in p] == want


class _CountedLedger(_Ledger):
    scans = 0

    def items(self) -> list[LedgerItem]:
        self.scans += 1
        return super().items()


@pytest.mark.parametrize(
    ("job_id", "scans"),
    [
        ("no-such-job", 0),
        ("../../etc/passwd", 0),
        (f"{0xAB:016X}", 0),  # ids are lower-case
        (f"{1:017x}", 0),
        ("", 0),
        (f"{99:016x}", 1),  # shaped like an id: the ledger is read, and holds none
    ],
)
def test_an_id_that_names_no_job_is_answered_without_reading_the_ledger(
    job_id: str, scans: int
) -> None:
    """Every request for one job read the whole ledger: a stream of garbage ids cost a
    scan each."""
    farm = _CountedLedger([_job(n, T0 + n) for n in range(3)])
    view = web_view.FarmView(farm)  # type: ignore[arg-type]
    assert view.job(job_id) is None
    assert farm.scans == scans


@pytest.mark.parametrize("said", ["<img src=x onerror=1>", {"S": "two"}, [2], -1, 0])
def test_a_probe_number_no_worker_of_this_release_writes_is_not_shown(said: object) -> None:
    """The ledger item is a worker's word: a compromised one's text or nonsense for the
    probe reads as no probe, and the job still lists."""
    item = LedgerItem.from_item(
        {
            "key": "TODO/a.mp4",
            "pool": "hevc",
            "state": "running",
            "step": "searching",
            "probe": said,
        }
    )
    job = RunningJob.of(item, NOW)
    assert (job.probe, job.done) == (None, "searching")


@pytest.mark.parametrize(
    ("said", "read"),
    [
        ("<b>", None),
        ({"S": "1e999"}, None),
        ("nan", None),
        (-5, 0.0),
        ({"N": "250"}, 100.0),
        (42.5, 42.5),
    ],
)
def test_a_probes_percent_a_worker_writes_is_held_to_a_percent(said: object, read: object) -> None:
    """What a worker writes of its probe's progress weighs the ingest's time left: a
    compromised worker's text, infinity or a number out of range reads as no percent or
    as 0-100, and the job still lists."""
    item = LedgerItem.from_item(
        {
            "key": "TODO/a.mp4",
            "pool": "hevc",
            "state": "running",
            "step": "searching",
            "probe": 2,
            "probe_done": said,
        }
    )
    job = RunningJob.of(item, NOW)
    assert (job.probe, job.probe_done) == (2, read)
    encoding = RunningJob.of(dataclasses.replace(item, step="encoding"), NOW)
    assert encoding.probe_done is None  # the probe's percent belongs to the search
