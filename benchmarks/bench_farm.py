"""Worker overhead: jobs through the embedded farm against bare ffmpeg with the same arguments.

``run_overhead`` is the headline (both verify policies side by side, the long clip, the
fixed cost); ``run_all`` the rest (rendition pools, dispatch, the plot series).
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.clips import clip
from benchmarks.farmrun import BenchFarm, JobRun, bare_ffmpeg, bench_farm
from benchmarks.harness import Figure, figure
from hevcq.pools import VerifyPolicy

MILESTONE_RATIO = 1.10
GOAL_RATIO = 1.03  # the hevc job on the 10 s 1080p clip, verify: stream
LONG_GOAL_RATIO = 1.02  # the 720p pool on the 60 s 720p clip, verify: stream
POLICIES: tuple[VerifyPolicy, ...] = ("stream", "full")
BURST_WORKERS = 2
PHASES = (
    "upload_in_s",
    "dispatch_s",
    "download_s",
    "probe_s",
    "encode_s",
    "verify_s",
    "upload_s",
    "result_s",
    "download_out_s",
    "other_s",
)


@dataclass
class Plan:
    """Sizes and run counts; ``quick`` shrinks everything to a smoke test."""

    quick: bool
    runs: int = 3
    headline_runs: int = 7  # the hevc job the targets are set for: more runs, steadier median
    long_runs: int = 2  # the 60 s 720p clip: two jobs keep `make bench` near its budget;
    # `--runs N` asks for N of every overhead figure, this one included
    headline: tuple[int, int, float] = (1920, 1080, 10.0)
    long_clip: tuple[int, int, float] = (1280, 720, 60.0)
    fixed_runs: int = 5
    burst_jobs: int = 200
    burst_runs: int = 3
    durations: tuple[float, ...] = (1.0, 5.0, 10.0, 30.0)
    series_size: tuple[int, int] = (640, 360)

    @classmethod
    def make(cls, quick: bool, runs: int | None = None) -> Plan:
        """The full plan, or the smoke-test one; ``runs`` overrides the overhead repeats."""
        if not quick:
            plan = cls(quick=False)
            if runs:
                plan.headline_runs, plan.long_runs, plan.fixed_runs = runs, runs, runs
            return plan
        return cls(
            quick=True,
            runs=1,
            headline_runs=1,
            long_runs=0,
            headline=(320, 240, 2.0),
            fixed_runs=1,
            burst_jobs=10,
            burst_runs=1,
            durations=(1.0, 2.0),
            series_size=(320, 240),
        )


@dataclass
class Series:
    """End-to-end seconds against clip duration, for the plot."""

    size: str
    pool: str
    durations: list[float] = field(default_factory=list)
    ours: list[list[float]] = field(default_factory=list)
    bare: list[list[float]] = field(default_factory=list)


def bracketed_jobs(farm: BenchFarm, src: Path, runs: int) -> tuple[list[JobRun], list[float]]:
    """``runs`` farm jobs, each between two bare ffmpeg runs on the same source.

    Each job is paired with the mean of the bare runs just before and just after it,
    so a machine that drifts faster or slower during the run biases neither side.
    """
    jobs, bare = [], [bare_ffmpeg(src, farm.pool)]
    for _ in range(runs):
        jobs.append(farm.run_job(src))
        bare.append(bare_ffmpeg(src, farm.pool))
    return jobs, bracketing(bare)


def bracketing(bare: list[float]) -> list[float]:
    """The mean of each neighbouring pair of bare times: n + 1 runs give n references."""
    return [(a + b) / 2 for a, b in itertools.pairwise(bare)]


def interleaved_jobs(
    farms: Mapping[str, BenchFarm], src: Path, runs: int
) -> tuple[dict[str, list[JobRun]], dict[str, list[float]]]:
    """``runs`` jobs per farm, the farms taking turns, each job between two bare runs.

    Taking turns puts every farm through the same moments of a drifting machine, so
    their figures can be compared side by side.
    """
    pool = next(iter(farms.values())).pool
    jobs: dict[str, list[JobRun]] = {name: [] for name in farms}
    bare = [bare_ffmpeg(src, pool)]
    for _ in range(runs):
        for farm_jobs, farm in zip(jobs.values(), farms.values(), strict=True):
            farm_jobs.append(farm.run_job(src))
            bare.append(bare_ffmpeg(src, pool))
    refs = bracketing(bare)
    turns = len(farms)
    return jobs, {name: refs[n::turns] for n, name in enumerate(farms)}


def _warm(farm: BenchFarm) -> None:
    # The first job of a fresh worker pays one-off costs (imports, first S3 and PyAV
    # calls); a long-running worker does not, so it is left out of every figure.
    # 1080p so that every pool applies (renditions never upscale).
    farm.run_job(clip(1920, 1080, 0.5))


def ratio_figures(
    label: str, jobs: list[JobRun], bare: list[float], note: str, *, goal: float | None = None
) -> list[Figure]:
    """Farm seconds, bare seconds, and their ratio, against the milestone and ``goal`` if
    one is set."""
    ours = [j.total_s for j in jobs]
    ratios = [o / b for o, b in zip(ours, bare, strict=True)]
    if goal is None:
        return [
            figure(f"{label}: hevcq end to end", "s", ours, notes=note),
            figure(f"{label}: bare ffmpeg", "s", bare, notes=note),
            figure(f"{label}: ratio", "x", ratios, notes=note),
        ]
    return [
        figure(f"{label}: hevcq end to end", "s", ours, notes=note),
        figure(f"{label}: bare ffmpeg", "s", bare, notes=note),
        figure(
            f"{label}: ratio (milestone)",
            "x",
            ratios,
            target=f"<= {MILESTONE_RATIO}",
            met=lambda m: m <= MILESTONE_RATIO,
            notes=note,
        ),
        figure(
            f"{label}: ratio (goal)",
            "x",
            ratios,
            target=f"<= {goal}",
            met=lambda m: m <= goal,
            notes=note,
        ),
    ]


def breakdown_figures(label: str, jobs: list[JobRun]) -> list[Figure]:
    """Median seconds per phase of the farm jobs, from the worker's own timings."""
    rows = [j.breakdown() for j in jobs]
    out = []
    for phase in PHASES:
        samples = [r[phase] for r in rows if phase in r]
        if not samples:
            continue
        share = statistics.median(s / j.total_s for s, j in zip(samples, jobs, strict=False))
        out.append(
            figure(
                f"{label} breakdown: {phase.removesuffix('_s')}",
                "s",
                samples,
                notes=f"{share:.1%} of the end-to-end time",
            )
        )
    return out


def bench_pool(
    pool: str, src: Path, runs: int, label: str, *, goal: float | None = GOAL_RATIO
) -> tuple[list[Figure], list[JobRun]]:
    """Ratio figures for one pool on one source, in a farm running only that pool."""
    with bench_farm(pool) as farm:
        _warm(farm)
        jobs, bare = bracketed_jobs(farm, src, runs)
    note = f"{runs} jobs, each between two bare runs; one worker, pool {pool} only; real preset"
    return ratio_figures(label, jobs, bare, note, goal=goal), jobs


def bench_policies(src: Path, runs: int, label: str) -> list[Figure]:
    """The hevc pool under each verify policy, side by side: two farms taking turns."""
    with contextlib.ExitStack() as stack:
        farms: dict[str, BenchFarm] = {
            p: stack.enter_context(bench_farm("hevc", verify=p)) for p in POLICIES
        }
        for farm in farms.values():
            _warm(farm)
        jobs, bare = interleaved_jobs(farms, src, runs)
    figs = []
    for policy in POLICIES:
        note = (
            f"{runs} jobs, taking turns with verify: "
            f"{'full' if policy == 'stream' else 'stream'}, each between two bare runs; "
            "one worker per farm, pool hevc only; real preset"
        )
        name = f"{label}, verify: {policy}"
        goal = GOAL_RATIO if policy == "stream" else None
        figs += ratio_figures(name, jobs[policy], bare[policy], note, goal=goal)
        figs += breakdown_figures(name, jobs[policy])
    return figs


def bench_fixed(runs: int) -> list[Figure]:
    """Seconds the farm adds to a 1 s 320x240 clip (farm time minus bare ffmpeg time)."""
    src = clip(320, 240, 1.0)
    with bench_farm("hevc") as farm:
        _warm(farm)
        jobs, bare = bracketed_jobs(farm, src, runs)
    added = [j.total_s - b for j, b in zip(jobs, bare, strict=True)]
    note = (
        f"{runs} jobs, each between two bare runs, hevc pool (verify: stream); "
        "upload to downloaded output"
    )
    return [figure("fixed overhead, 1 s 320x240 clip", "s", added, notes=note)]


def bench_dispatch(jobs: int, runs: int) -> list[Figure]:
    """Jobs per minute two workers sustain on a burst of tiny jobs, and seconds per job."""
    src = clip(128, 96, 0.5)
    rates, added = [], []
    with bench_farm("hevc", workers=BURST_WORKERS) as farm:
        _warm(farm)
        for _ in range(runs):
            bare = statistics.median(bare_ffmpeg(src, "hevc") for _ in range(3))
            elapsed, _ = farm.burst(src, jobs)
            rates.append(jobs / elapsed * 60)
            # Each worker is busy for elapsed * workers / jobs per job; ffmpeg needs `bare`.
            added.append(elapsed * BURST_WORKERS / jobs - bare)
    note = f"{jobs} jobs of a 0.5 s 128x96 clip put straight into TODO/, {BURST_WORKERS} workers"
    return [
        figure(f"dispatch: {jobs}-job burst", "jobs/min", rates, notes=note),
        figure(
            "dispatch: seconds added per job",
            "s",
            added,
            notes=note + "; worker-seconds per job minus bare ffmpeg on the clip",
        ),
    ]


def duration_series(plan: Plan) -> tuple[list[Figure], Series]:
    """End-to-end time against clip duration, hevcq and bare ffmpeg, for the plot."""
    w, h = plan.series_size
    series = Series(size=f"{w}x{h}", pool="hevc")
    figs = []
    with bench_farm("hevc") as farm:
        _warm(farm)
        for seconds in plan.durations:
            jobs, bare = bracketed_jobs(farm, clip(w, h, seconds), plan.runs)
            series.durations.append(seconds)
            series.ours.append([j.total_s for j in jobs])
            series.bare.append(bare)
            ratios = [j.total_s / b for j, b in zip(jobs, bare, strict=True)]
            figs.append(
                figure(
                    f"{w}x{h} {seconds:g} s clip: ratio",
                    "x",
                    ratios,
                    notes=f"{plan.runs} bracketed jobs, hevc pool",
                )
            )
    return figs, series


def run_overhead(quick: bool = False, runs: int | None = None) -> list[Figure]:
    """The overhead figures: the hevc job under both verify policies, the 60 s 720p job,
    and the fixed cost of a job; ``runs`` overrides the repeats."""
    plan = Plan.make(quick, runs)
    w, h, s = plan.headline
    figs = bench_policies(clip(w, h, s), plan.headline_runs, f"hevc {s:g} s {w}x{h}")
    if plan.long_runs:
        lw, lh, ls = plan.long_clip
        label = f"720p {ls:g} s {lw}x{lh}, verify: stream"
        long_figs, long_jobs = bench_pool(
            "720p", clip(lw, lh, ls), plan.long_runs, label, goal=LONG_GOAL_RATIO
        )
        figs += long_figs + breakdown_figures(label, long_jobs)
    return figs + bench_fixed(plan.fixed_runs)


def run_all(quick: bool = False) -> tuple[list[Figure], Series]:
    """The other farm figures (rendition pools, dispatch) and the plot series."""
    plan = Plan.make(quick)
    w, h, s = plan.headline
    figs: list[Figure] = []
    if not plan.quick:  # the quick clip is smaller than 720p: both renditions would skip it
        src = clip(w, h, s)
        for pool in ("720p", "1080p"):
            figs += bench_pool(pool, src, plan.runs, f"{pool} {s:g} s {w}x{h}")[0]
    figs += bench_dispatch(plan.burst_jobs, plan.burst_runs)
    series_figs, series = duration_series(plan)
    return figs + series_figs, series


def run(quick: bool = False) -> list[Figure]:
    """Every farm figure (without the plot series)."""
    return run_all(quick)[0]
