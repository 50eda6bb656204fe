"""How long and how much: encode hours per pool, locally and on Fargate (pure arithmetic)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from hevcq.ledger import SEARCHING, VERIFYING
from hevcq.library.calibrate import CALIBRATION_SIZE, speed_for
from hevcq.library.scan import FileEntry, PoolTotals, ScanReport, frame_share, work_share
from hevcq.media.crfsearch import sample_plan
from hevcq.media.decide import same_encode
from hevcq.media.ladder import Rung, choose_rungs, constant_rate
from hevcq.media.model import EncodePlan
from hevcq.pools import Pool

# What a quality target costs beside the encode (decisions 0022-0025), as real-time
# factors per vCPU like the encode speeds (``calibrate.DEFAULT_SPEEDS``), for a 1920x1080
# picture and in proportion to the pixels scored. Every output of such a pool is scored in
# full, every frame, with VMAF's NEG beside it; a pool that searches first encodes its
# samples a few times and scores each probe, without NEG. Measured 2026-11-29 by hand
# (``quality.score`` on 2 threads, the pinned ffmpeg, a 2-vCPU cloud VM) on 5 s 1920x1080
# clips of the three ``calibrate.CONTENT`` classes: 24.1, 23.9 and 34.0 CPU seconds with
# NEG, 13.0, 14.5 and 20.9 without (x265 ``medium`` took 12.9, 32.4 and 39.6 on the same
# clips: on a 1080p picture a score costs about as much as the encode). The middle figures,
# rounded down:
SCORE_SPEED = 0.2  # an output's score, NEG included
PROBE_SCORE_SPEED = 0.33  # a probe's score
# The probes a search makes: 2 to 6 (``crfsearch.MAX_PROBES``); 3 on most of the quality
# benchmark's corpus (docs/benchmarks.md, "Quality targets on a corpus").
SEARCH_PROBES = 3
# A per-title ladder's probes, of the ladder's encode: 0.19-0.26 on the benchmark's six
# kinds of content (docs/benchmarks.md, "Per-title ladders").
PER_TITLE_PROBE_SHARE = 0.25
# Scores compare at most this picture (decision 0022): an 8K output is scored at 4K.
LARGEST_SCORED = 3840 * 2160


@dataclass(frozen=True, kw_only=True)
class FargatePrices:
    """Fargate prices per vCPU-hour and GB-hour, on-demand and Spot, with their source."""

    region: str
    as_of: str
    vcpu_hour: float
    gb_hour: float
    spot_vcpu_hour: float
    spot_gb_hour: float
    storage_gb_hour: float  # ephemeral storage beyond the free 20 GB
    source: str = "https://aws.amazon.com/fargate/pricing/"


# AWS Fargate pricing page (https://aws.amazon.com/fargate/pricing/), us-east-1, Linux/x86,
# as listed in January 2025. On-demand rates have been stable for years; Spot rates float
# with supply and demand (the page shows the current ones): these Spot figures are a
# typical reading, about 67% off, and should be refreshed before quoting a budget.
FARGATE_PRICES = FargatePrices(
    region="us-east-1",
    as_of="2025-01",
    vcpu_hour=0.04048,
    gb_hour=0.004445,
    spot_vcpu_hour=0.01334053,
    spot_gb_hour=0.00146489,
    storage_gb_hour=0.000111,
)
FREE_EPHEMERAL_GB = 20


@dataclass(frozen=True)
class TaskSize:
    """A Fargate task size."""

    vcpu: float = 2.0
    memory_gib: float = 4.0
    ephemeral_gib: int = FREE_EPHEMERAL_GB

    @classmethod
    def of(cls, pool: Pool) -> TaskSize:
        """The task size a pool file deploys."""
        d = pool.deploy
        return cls(d.cpu / 1024, d.memory_mib / 1024, d.ephemeral_storage_gib)

    def hourly(self, prices: FargatePrices, *, spot: bool) -> float:
        """Price of one task-hour (Fargate bills memory per GB of the GiB configured)."""
        vcpu, gb = (
            (prices.spot_vcpu_hour, prices.spot_gb_hour)
            if spot
            else (prices.vcpu_hour, prices.gb_hour)
        )
        storage = max(0, self.ephemeral_gib - FREE_EPHEMERAL_GB) * prices.storage_gb_hour
        return self.vcpu * vcpu + self.memory_gib * gb + storage


@dataclass(frozen=True, kw_only=True)
class PoolEstimate:
    """One pool's work and what it costs."""

    pool: str
    files: int
    source_hours: float
    speed: float  # real-time factor per vCPU
    calibrated: bool  # False when ``speed`` is a default
    vcpu_hours: float
    local_hours: float  # wall hours on this machine, every core busy
    task: TaskSize
    task_hours: float  # Fargate task-hours (wall hours with one task)
    on_demand_usd: float
    spot_usd: float
    # A ladder pool's work and cost split by rung, largest first (empty for a file pool).
    rungs: tuple[RungEstimate, ...] = ()
    # Of ``vcpu_hours``, what a quality target adds: searches and scores (``quality_work``).
    quality_vcpu_hours: float = 0.0


@dataclass(frozen=True, kw_only=True)
class RungEstimate:
    """One rung of a ladder pool: the files that get it and its share of the work."""

    rung: str  # its short side: "720p"
    files: int
    vcpu_hours: float
    on_demand_usd: float
    spot_usd: float


@dataclass(frozen=True)
class Estimate:
    """Per-pool estimates, plus totals."""

    local_cpus: int
    prices: FargatePrices
    pools: Mapping[str, PoolEstimate] = field(default_factory=dict)

    @property
    def local_hours(self) -> float:
        """Wall hours to run every pool on this machine, one after another."""
        return sum(p.local_hours for p in self.pools.values())

    @property
    def on_demand_usd(self) -> float:
        """Fargate on-demand cost of every pool."""
        return sum(p.on_demand_usd for p in self.pools.values())

    @property
    def spot_usd(self) -> float:
        """Fargate Spot cost of every pool."""
        return sum(p.spot_usd for p in self.pools.values())


def pool_estimate(
    name: str,
    totals: PoolTotals,
    *,
    speed: float | None,
    task: TaskSize,
    prices: FargatePrices,
    local_cpus: int,
) -> PoolEstimate:
    """One pool's hours and cost from its source seconds and speed."""
    rtf, calibrated = speed_for(name, {name: speed} if speed else None)
    vcpu_s = totals.weighed_seconds / rtf
    task_hours = vcpu_s / task.vcpu / 3600
    return PoolEstimate(
        pool=name,
        files=totals.files,
        source_hours=totals.seconds / 3600,
        speed=rtf,
        calibrated=calibrated,
        vcpu_hours=vcpu_s / 3600,
        local_hours=vcpu_s / max(1, local_cpus) / 3600,
        task=task,
        task_hours=task_hours,
        on_demand_usd=task_hours * task.hourly(prices, spot=False),
        spot_usd=task_hours * task.hourly(prices, spot=True),
    )


def rung_work(plan: EncodePlan, duration_s: float | None = None) -> dict[str, float]:
    """A source's ladder rungs (``media.ladder.choose_rungs``), each with its encode work
    relative to the whole ladder of a 1920x1080 source at 24 frames a second, the one a
    ladder pool's speed is calibrated on: work follows the pixels encoded, so a 720p
    source's ladder costs about half a 1080p one's and its 240p rung a few percent of
    that, and the frames, at the ladder's rate (``ladder.constant_rate``, at most 60) for
    a source ``duration_s`` long (``scan.frame_share``)."""
    reference = sum(r.width * r.height for r in choose_rungs(*CALIBRATION_SIZE, Fraction(30)))
    frames = frame_share(plan, duration_s, rate=lambda fps: float(constant_rate(fps)))
    return {f"{r.short}p": r.width * r.height / reference * frames for r in _shown_rungs(plan)}


def _shown_rungs(plan: EncodePlan) -> tuple[Rung, ...]:
    """The ladder rungs of ``plan``'s picture as shown (its rotation applied)."""
    w, h = (plan.height, plan.width) if plan.rotation in (90, 270) else (plan.width, plan.height)
    return choose_rungs(w, h, Fraction(30))


@dataclass(frozen=True)
class JobWork:
    """One job's vCPU seconds by step: a quality search (or a per-title ladder's probes)
    before the encode, the encode, and the output's score after it."""

    encode: float
    search: float = 0.0
    score: float = 0.0

    @property
    def total(self) -> float:
        """The whole job's."""
        return self.search + self.encode + self.score

    def done(
        self, step: str | None, probe: int | None, percent: float, probe_done: float | None = None
    ) -> float:
        """The part of it a running job has done, by the step and the encode's ``percent``
        its worker reports: a search counts each probe before the one under way as one of
        ``SEARCH_PROBES``, and that one by ``probe_done``, its percent; a score in
        progress counts nothing of itself until it ends."""
        if step == SEARCHING:
            under_way = min(100.0, max(0.0, probe_done or 0.0)) / 100
            return self.search * min(1.0, (max(0, (probe or 1) - 1) + under_way) / SEARCH_PROBES)
        if step == VERIFYING:
            return self.search + self.encode
        return self.search + self.encode * min(100.0, max(0.0, percent)) / 100


def scored_share(plan: EncodePlan, pool: Pool) -> float:
    """The pixels an output of ``plan`` is scored at, against a 1920x1080 picture's: the
    output's own (a ladder's top rung), at most 4K's."""
    width, height = plan.width, plan.height
    if pool.ladder is not None:
        top = max(_shown_rungs(plan), key=lambda r: r.width * r.height)
        width, height = top.width, top.height
    return min(width * height, LARGEST_SCORED) / (CALIBRATION_SIZE[0] * CALIBRATION_SIZE[1])


def quality_work(duration_s: float, plan: EncodePlan, pool: Pool, encode_s: float) -> JobWork:
    """A job's work with its pool's quality target counted (pure): the output's score,
    and before the encode of ``encode_s`` vCPU seconds a CRF search's probes (each an
    encode of the samples ``crfsearch.sample_plan`` places, and its score) or a per-title
    ladder's. A pool without a target: the encode alone. HDR sources and pictures too
    small for VMAF, which are neither searched nor scored, are counted as if they were."""
    target = pool.quality
    if target is None:
        return JobWork(encode_s)
    # Scores, like encodes, go frame by frame: at the ladder's rate for a ladder.
    ladder_rate = (lambda fps: float(constant_rate(fps))) if pool.ladder is not None else float
    share = scored_share(plan, pool) * frame_share(plan, duration_s, rate=ladder_rate)
    score = duration_s * share / SCORE_SPEED
    search = 0.0
    if pool.ladder is not None:
        search = PER_TITLE_PROBE_SHARE * encode_s if pool.ladder.per_title else 0.0
    elif target.searches:
        samples = sample_plan(duration_s)
        sampled_s = duration_s if samples.whole else samples.seconds
        probe = sampled_s / duration_s * encode_s + sampled_s * share / PROBE_SCORE_SPEED
        search = SEARCH_PROBES * probe
    return JobWork(encode_s, search, score)


def job_work(
    entry: FileEntry,
    pool: Pool,
    speeds: Mapping[str, float] | None = None,
    primary: Pool | None = None,
) -> JobWork | None:
    """The vCPU seconds one job of ``entry`` in ``pool`` takes by this module's model:
    its source seconds over the pool's speed, weighed by the pixels it encodes
    (``scan.work_share``; a ladder's by its own rungs, ``rung_work``), and what a quality
    target adds (``quality_work``); none for a rendition that will be a copy of the
    ``primary`` pool's identical encode (``decide.same_encode``, as the worker decides
    it). None without a duration. What the ingest weighs its overall time left by: a
    two-hour film is not one job among a hundred clips."""
    if not entry.duration_s:
        return None
    plan = entry.decisions.get(pool.name)
    if primary is not None and primary.name != pool.name and plan is not None:
        theirs = entry.decisions.get(primary.name)
        if theirs is not None and same_encode(primary, pool, theirs, plan):
            return JobWork(0.0)
    rtf, _ = speed_for(pool.name, speeds)
    share = work_share(plan, entry.duration_s)
    if pool.ladder is not None and isinstance(plan, EncodePlan):
        share = sum(rung_work(plan, entry.duration_s).values())
    encode = entry.duration_s / rtf * share
    if not isinstance(plan, EncodePlan):
        return JobWork(encode)
    return quality_work(entry.duration_s, plan, pool, encode)


def ladder_estimate(
    name: str,
    entries: Sequence[FileEntry],
    *,
    speed: float | None,
    task: TaskSize,
    prices: FargatePrices,
    local_cpus: int,
) -> PoolEstimate:
    """A ladder pool's hours and cost, priced rung by rung from each file's own rungs."""
    rtf, calibrated = speed_for(name, {name: speed} if speed else None)
    work: dict[str, float] = {}  # rung -> vCPU seconds
    files: dict[str, int] = {}
    seconds = 0.0
    for e in entries:
        plan = e.decisions.get(name)
        if not isinstance(plan, EncodePlan):
            continue
        seconds += e.duration_s or 0.0
        for rung, share in rung_work(plan, e.duration_s).items():
            work[rung] = work.get(rung, 0.0) + (e.duration_s or 0.0) / rtf * share
            files[rung] = files.get(rung, 0) + 1
    hourly = task.hourly(prices, spot=False), task.hourly(prices, spot=True)

    def cost(vcpu_s: float) -> tuple[float, float]:
        hours = vcpu_s / task.vcpu / 3600
        return hours * hourly[0], hours * hourly[1]

    rungs = tuple(
        RungEstimate(
            rung=r,
            files=files[r],
            vcpu_hours=work[r] / 3600,
            on_demand_usd=cost(work[r])[0],
            spot_usd=cost(work[r])[1],
        )
        for r in sorted(work, key=lambda r: -int(r[:-1]))
    )
    vcpu_s = sum(work.values())
    task_hours = vcpu_s / task.vcpu / 3600
    return PoolEstimate(
        pool=name,
        files=sum(1 for e in entries if isinstance(e.decisions.get(name), EncodePlan)),
        source_hours=seconds / 3600,
        speed=rtf,
        calibrated=calibrated,
        vcpu_hours=vcpu_s / 3600,
        local_hours=vcpu_s / max(1, local_cpus) / 3600,
        task=task,
        task_hours=task_hours,
        on_demand_usd=cost(vcpu_s)[0],
        spot_usd=cost(vcpu_s)[1],
        rungs=rungs,
    )


def with_quality(est: PoolEstimate, vcpu_s: float, prices: FargatePrices) -> PoolEstimate:
    """``est`` with ``vcpu_s`` more work, a quality target's, on its hours and costs."""
    if vcpu_s <= 0:
        return est
    vcpu_h = est.vcpu_hours + vcpu_s / 3600
    task_h = vcpu_h / est.task.vcpu
    return dataclasses.replace(
        est,
        vcpu_hours=vcpu_h,
        local_hours=est.local_hours * vcpu_h / est.vcpu_hours if est.vcpu_hours else 0.0,
        task_hours=task_h,
        on_demand_usd=task_h * est.task.hourly(prices, spot=False),
        spot_usd=task_h * est.task.hourly(prices, spot=True),
        quality_vcpu_hours=vcpu_s / 3600,
    )


def quality_seconds(entries: Sequence[FileEntry], pool: Pool, speed: float | None) -> float:
    """The vCPU seconds ``pool``'s quality target adds to the encodes of ``entries``
    (``quality_work``): 0 for a pool without one."""
    if pool.quality is None:
        return 0.0
    speeds = {pool.name: speed} if speed else None
    works = (job_work(e, pool, speeds) for e in entries)
    return sum(w.total - w.encode for w in works if w is not None)


def estimate(
    report: ScanReport,
    speeds: Mapping[str, float],
    *,
    task: TaskSize | Mapping[str, TaskSize] | None = None,
    prices: FargatePrices = FARGATE_PRICES,
    local_cpus: int | None = None,
    ladders: frozenset[str] = frozenset(),
    pools: Mapping[str, Pool] | None = None,
) -> Estimate:
    """Encode hours and cost per pool for the files a scan selected to send; the pools in
    ``ladders`` are priced rung by rung. With the ``pools`` themselves, a pool's quality
    target is priced too: its searches and scores (``quality_work``)."""
    cpus = local_cpus or os.cpu_count() or 1
    out = {}
    for name, totals in report.totals.items():
        size = task.get(name, TaskSize()) if isinstance(task, Mapping) else task or TaskSize()
        if name in ladders:
            est = ladder_estimate(
                name,
                report.to_send,
                speed=speeds.get(name),
                task=size,
                prices=prices,
                local_cpus=cpus,
            )
        else:
            est = pool_estimate(
                name, totals, speed=speeds.get(name), task=size, prices=prices, local_cpus=cpus
            )
        pool = (pools or {}).get(name)
        if pool is not None:
            est = with_quality(est, quality_seconds(report.to_send, pool, speeds.get(name)), prices)
        out[name] = est
    return Estimate(cpus, prices, out)
