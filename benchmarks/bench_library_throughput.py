"""A whole library through ``hevcq ingest`` on the embedded farm, against bare ffmpeg running
the same plans back to back on the same machine.

Bare ffmpeg gets every encode the default pools would make (``decide`` + ``build_args``,
the worker's own argument lists), one after the other, each encode once: an encode two
pools share runs once, as the farm makes it once. The two take turns, pair after pair, and
the figure is the median of the pairs' ratios. The breakdown comes from the run's own logs:
how long 0, 1 or more encodes ran at once (each core's busy and idle time), the wait before
the first encode, the tail after the last one, and how long each result took to be placed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.farmrun import _epoch
from benchmarks.harness import Figure, figure, read_events
from hevcq.cores import default_slots, machine_cores
from hevcq.errors import HevcqError
from hevcq.media.decide import decide
from hevcq.media.ffargs import build_args
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.model import Skip
from hevcq.media.probe import probe
from hevcq.media.samples import make_clip, make_sample_library
from hevcq.pools import Pool, load_farm

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).resolve().parent / ".cache" / "throughput"
TARGET_RATIO = 1.05
INGEST_TIMEOUT_S = 3600


@dataclass(frozen=True)
class Library:
    """A library to ingest: its folder and what it is called in the figures."""

    name: str
    root: Path


def sample_library(seconds: float) -> Library:
    """The README's demo library (``hevcq sample``)."""
    root = CACHE / f"sample-{seconds:g}s"
    make_sample_library(root, seconds=seconds)
    return Library("sample library", root)


def mixed_library(seconds: float, scale: float = 1.0) -> Library:
    """Ten files: 1080p and 720p landscape, portrait phone clips, already-HEVC sources."""
    root = CACHE / f"mixed-{seconds:g}s-{scale:g}"

    def size(w: int, h: int) -> tuple[int, int]:
        return int(w * scale) // 2 * 2, int(h * scale) // 2 * 2

    shapes: list[tuple[str, tuple[int, int], dict[str, object]]] = [
        ("trip/day1.mp4", size(1920, 1080), {}),
        ("trip/day2.mp4", size(1920, 1080), {}),
        ("trip/drone.mp4", size(1920, 1080), {"fps": 30}),
        ("talks/keynote.mp4", size(1280, 720), {}),
        ("talks/panel.mp4", size(1280, 720), {"fps": 30}),
        ("phone/IMG_0001.MOV", size(1920, 1080), {"rotation": 90, "container": "mov"}),
        ("phone/IMG_0002.MOV", size(1920, 1080), {"rotation": 90, "container": "mov"}),
        ("phone/IMG_0003.MOV", size(1280, 720), {"rotation": 90, "container": "mov"}),
        ("done/already-1080.mp4", size(1920, 1080), {"vcodec": "libx265"}),
        ("done/already-720.mp4", size(1280, 720), {"vcodec": "libx265"}),
    ]
    for rel, (w, h), extra in shapes:
        path = root / rel
        if not path.exists():
            make_clip(path, width=w, height=h, seconds=seconds, **extra)  # type: ignore[arg-type]
    return Library("mixed library", root)


def bare_plans(lib: Library, pools: dict[str, Pool], out: Path) -> list[list[str]]:
    """Every encode the pools would make of the library, each distinct encode once."""
    ffmpeg = find_ffmpeg()
    plans: dict[tuple[str, ...], list[str]] = {}
    for src in sorted(p for p in lib.root.rglob("*") if p.is_file()):
        try:
            info = probe(src)
        except HevcqError:  # not a video: the farm encodes none of it either
            continue
        for pool in pools.values():
            plan = decide(info, pool, src.name)
            if isinstance(plan, Skip):
                continue
            dst = out / f"{len(plans):03d}{pool.output_suffix}.mp4"
            args = build_args(ffmpeg, src, dst, plan)
            same = tuple(a for a in args if a != str(dst))  # one encode, two pools
            plans.setdefault(same, args)
    return list(plans.values())


def bare_run(plans: list[list[str]]) -> float:
    """Seconds for bare ffmpeg to run every plan, one after the other."""
    start = time.perf_counter()
    for args in plans:
        Path(args[-1]).unlink(missing_ok=True)
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, timeout=INGEST_TIMEOUT_S)
    return time.perf_counter() - start


@dataclass
class IngestRun:
    """One ``hevcq ingest`` of a library, timed, with what its logs tell."""

    wall_s: float
    started_at: float
    logs: Path
    encodes: list[tuple[float, float]] = field(default_factory=list)
    placements: list[float] = field(default_factory=list)
    uploaded_at: list[float] = field(default_factory=list)
    placed_at: list[float] = field(default_factory=list)
    cores: list[tuple[float, float]] = field(default_factory=list)  # (busy, idle) s per core

    def read(self) -> IngestRun:
        """The encodes' intervals and each result's placement time, from the run's logs."""
        started: dict[tuple[str, str], float] = {}
        for log in sorted(self.logs.glob("worker-*.log")):
            for e in read_events(log):
                job = (str(e.get("pool")), str(e.get("key")))
                if e.get("event") == "transcode_started":
                    started[job] = _epoch(e["timestamp"])
                elif e.get("event") == "transcode_finished" and job in started:
                    self.encodes.append((started.pop(job), _epoch(e["timestamp"])))
        received: dict[tuple[str, str], float] = {}
        for e in read_events(self.logs / "ingest.log"):
            job = (str(e.get("pool")), str(e.get("rel")))
            if e.get("event") == "uploaded":
                self.uploaded_at.append(_epoch(e["timestamp"]))
            elif e.get("event") == "result_received":
                received[job] = _epoch(e["timestamp"])
            elif e.get("event") == "output_fetched" and job in received:
                self.placed_at.append(_epoch(e["timestamp"]))
                self.placements.append(self.placed_at[-1] - received.pop(job))
        return self

    @property
    def uploading_after_first_encode_s(self) -> float:
        """How long uploads went on after the first encode started (0: none overlapped)."""
        if not self.encodes or not self.uploaded_at:
            return 0.0
        return max(0.0, max(self.uploaded_at) - min(s for s, _ in self.encodes))

    @property
    def placed_during_encodes(self) -> float:
        """The share of results placed while some encode was running."""
        if not self.placed_at:
            return 0.0
        during = [t for t in self.placed_at if any(s <= t <= f for s, f in self.encodes)]
        return len(during) / len(self.placed_at)

    def concurrency(self) -> dict[int, float]:
        """Seconds of the run during which exactly N encodes ran, for each N."""
        edges = sorted([(s, 1) for s, _ in self.encodes] + [(f, -1) for _, f in self.encodes])
        out: dict[int, float] = {}
        running, last = 0, self.started_at
        for t, step in edges:
            out[running] = out.get(running, 0.0) + max(0.0, t - last)
            running, last = running + step, t
        end = self.started_at + self.wall_s
        out[running] = out.get(running, 0.0) + max(0.0, end - last)
        return out

    @property
    def first_encode_s(self) -> float:
        """From the command's start to its first encode."""
        return min(s for s, _ in self.encodes) - self.started_at if self.encodes else 0.0

    @property
    def tail_s(self) -> float:
        """From the last encode's end to the command's end."""
        if not self.encodes:
            return self.wall_s
        return self.started_at + self.wall_s - max(f for _, f in self.encodes)


def cpu_times(stat: Path = Path("/proc/stat")) -> dict[str, tuple[float, float]]:
    """Busy and idle seconds of each core since boot (Linux ``/proc/stat``; empty elsewhere).

    Busy is everything but idle and iowait: the whole machine's work, not only the farm's.
    """
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out = {}
    for line in lines:
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        ticks = [int(f) for f in fields]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        out[name] = ((sum(ticks[:8]) - idle) / tick, idle / tick)
    return out


def per_core(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> list[tuple[float, float]]:
    """Each core's busy and idle seconds between two ``cpu_times`` readings, by core number."""
    names = sorted((n for n in after if n in before), key=lambda n: int(n[3:]))
    return [(after[n][0] - before[n][0], after[n][1] - before[n][1]) for n in names]


def ingest_run(lib: Library, home: Path, slots: int | None = None) -> IngestRun:
    """One ``hevcq ingest`` on a fresh embedded farm, with its own state and output;
    ``slots``: ``HEVCQ_SLOTS`` (default: the farm's own choice from the cores)."""
    out = home / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))}
    env |= {"HOME": str(home), "XDG_STATE_HOME": str(home / "state"), "HEVCQ_LOG_LEVEL": "info"}
    if slots is not None:
        env["HEVCQ_SLOTS"] = str(slots)
    cmd = [sys.executable, "-m", "hevcq", "ingest", str(lib.root), "--out", str(out)]
    started = time.time()
    before = cpu_times()
    t0 = time.perf_counter()
    done = subprocess.run(
        cmd,
        check=False,
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=INGEST_TIMEOUT_S,
    )
    wall = time.perf_counter() - t0
    after = cpu_times()
    if done.returncode not in (0, 1):  # 1: a file that is not a video failed, as planned
        raise RuntimeError(f"ingest failed ({done.returncode}): {done.stderr[-2000:]}")
    [logs] = (home / "state" / "hevcq" / "runs").glob("*/logs")
    run = IngestRun(wall, started, logs).read()
    run.cores = per_core(before, after)
    return run


def bench_library(lib: Library, pairs: int, slots: int | None = None) -> list[Figure]:
    """``pairs`` turns of bare ffmpeg and ``hevcq ingest`` on ``lib``, side by side;
    ``slots``: the ingest's ``HEVCQ_SLOTS`` (default: derived from the cores)."""
    pools = load_farm(REPO / "workers")
    cores = machine_cores()
    chosen = slots or default_slots(cores)
    ours, bare, runs = [], [], []
    with tempfile.TemporaryDirectory(prefix="hevcq-throughput-") as tmp:
        plans = bare_plans(lib, pools, Path(tmp))
        for n in range(pairs):
            bare.append(bare_run(plans))
            run = ingest_run(lib, Path(tmp) / f"run{n}", slots)
            ours.append(run.wall_s)
            runs.append(run)
    label = f"{lib.name}, {len(plans)} encodes, {chosen} slot{'s' if chosen != 1 else ''}"
    ratios = [o / b for o, b in zip(ours, bare, strict=True)]
    figs = [
        figure(
            f"ingest / bare ffmpeg back to back, {label}",
            "ratio",
            ratios,
            target=f"<= {TARGET_RATIO}",
            met=lambda r: r <= TARGET_RATIO,
            notes=f"medians of {pairs} pairs taken in turn; default pools; {cores} cores",
        ),
        figure(f"hevcq ingest, {label}", "s", ours),
        figure(f"bare ffmpeg back to back, {label}", "s", bare),
    ]
    figs += breakdown(label, runs, cores)
    return figs


def breakdown(label: str, runs: list[IngestRun], cores: int) -> list[Figure]:
    """Where an ingest's time went: encodes at once, the start, the tail, placement."""
    figs = []
    for n in range(cores + 1):
        figs.append(
            figure(
                f"seconds with {n} encode{'s' if n != 1 else ''} running, {label}",
                "s",
                [r.concurrency().get(n, 0.0) for r in runs],
            )
        )
    for n in range(min((len(r.cores) for r in runs), default=0)):
        figs += [
            figure(f"core {n} busy, {label}", "s", [r.cores[n][0] for r in runs]),
            figure(f"core {n} idle, {label}", "s", [r.cores[n][1] for r in runs]),
        ]
    busy = [sum(k * s for k, s in r.concurrency().items()) for r in runs]
    idle = [cores * r.wall_s - b for r, b in zip(runs, busy, strict=True)]
    figs += [
        figure(f"core-seconds busy encoding, {label}", "s", busy),
        figure(f"core-seconds idle, {label}", "s", [max(0.0, i) for i in idle]),
        figure(f"start to the first encode, {label}", "s", [r.first_encode_s for r in runs]),
        figure(f"tail after the last encode, {label}", "s", [r.tail_s for r in runs]),
        figure(
            f"uploads going on after the first encode started, {label}",
            "s",
            [r.uploading_after_first_encode_s for r in runs],
        ),
        figure(
            f"results placed while an encode ran, {label}",
            "%",
            [100 * r.placed_during_encodes for r in runs],
        ),
        figure(
            f"result to placed, per result, {label}",
            "s",
            [p for r in runs for p in r.placements] or [0.0],
        ),
    ]
    return figs


def run(quick: bool = False) -> list[Figure]:
    """The sample library and a mixed one, three pairs each; ``quick``: one short pair.

    ``BENCH_THROUGHPUT_SLOTS=1,2`` runs the mixed library again with each of those
    ``HEVCQ_SLOTS`` (default: none, the farm's own choice only).
    """
    extra = [int(n) for n in os.environ.get("BENCH_THROUGHPUT_SLOTS", "").split(",") if n]
    if quick:
        figs = bench_library(sample_library(1.0), 1) + bench_library(mixed_library(1.0, 0.5), 1)
        for slots in extra:
            figs += bench_library(mixed_library(1.0, 0.5), 1, slots)
        return figs
    # The sample library as `hevcq sample` makes it; the mixed one with 2 s clips keeps
    # three pairs of both near 15 minutes on 2 vCPUs.
    figs = bench_library(sample_library(3.0), 3) + bench_library(mixed_library(2.0), 3)
    for slots in extra:
        figs += bench_library(mixed_library(2.0), 3, slots)
    return figs
