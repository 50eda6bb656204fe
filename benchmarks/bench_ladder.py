"""The HLS ladder: its CPU cost against bare ffmpeg running the same one command, and its
size and top-rung quality against Apple's fixed ladder at the same rungs.

- **Cost**: ``build_ladder`` (encode, measure the segments, write the master, decode every
  segment of every rung to check it) against the identical ffmpeg argument list run bare,
  taking turns; CPU seconds of this process and its children, medians over the runs.
- **Size**: the same rungs encoded at the H.264 bitrates of Apple's HLS authoring
  specification (the fixed ladder) against ours (CRF with a peak cap per rung); total bytes
  of the segments, and the VMAF (libvmaf, ``vmaf_v0.6.1``) of each top rung against the
  source, so fewer bytes are never bought with quality unseen.

``BENCH_LADDER_PRESET`` (an x264 preset) runs all three at a pool's ``ladder.preset``
instead of the default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from benchmarks.clips import content_clip
from benchmarks.harness import Figure, figure
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.ladder import (
    MASTER,
    Rung,
    build_ladder,
    ladder_args,
    plan_ladder,
    read_master,
    read_media_playlist,
    write_master,
)
from hevcq.media.probe import probe

# Apple's HLS authoring specification, H.264 at 30 fps: the bitrate of its rung nearest
# each of our heights (kb/s).
APPLE_KBPS = {2160: 16800, 1440: 11600, 1080: 6000, 720: 3000, 480: 1100, 360: 365, 240: 145}
CONTENT_KINDS = ("moderate", "high")


def _cpu_s() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _cpu_of(fn: Callable[[], object]) -> float:
    start = _cpu_s()
    fn()
    return _cpu_s() - start


def _apple(plan_rungs: tuple[Rung, ...]) -> tuple[Rung, ...]:
    """The same rungs, capped at Apple's fixed bitrate for their size."""
    return tuple(
        Rung(r.width, r.height, APPLE_KBPS.get(r.short, APPLE_KBPS[240])) for r in plan_rungs
    )


def _fixed_rate_args(args: list[str], rungs: tuple[Rung, ...]) -> list[str]:
    """Our ladder command with each rung at a fixed bitrate instead of a capped CRF."""
    out: list[str] = []
    pairs = iter(range(len(args)))
    for i in pairs:
        if args[i].startswith("-crf"):
            next(pairs)  # and its value
            continue
        out.append(args[i])
    at = out.index("-pix_fmt")
    rates = []
    for n, r in enumerate(rungs):
        rates += [f"-b:v:{n}", f"{r.maxrate_kbps}k"]
    return [*out[:at], *rates, *out[at:]]


def _bytes(ladder: Path) -> int:
    variants, _ = read_master(ladder / MASTER)
    total = 0
    for v in variants:
        media = read_media_playlist(ladder / v.uri)
        total += sum(p.stat().st_size for _, p in media.segments)
    return total


def _vmaf_top(ffmpeg: str, src: Path, ladder: Path, tmp: Path) -> float:
    """VMAF of the top rung against the source (both at the top rung's size)."""
    variants, _ = read_master(ladder / MASTER)
    top = max(variants, key=lambda v: v.width * v.height)
    media = read_media_playlist(ladder / top.uri)
    joined = tmp / "top.mp4"
    with joined.open("wb") as f:
        f.write(media.init.read_bytes())
        for _, seg in media.segments:
            f.write(seg.read_bytes())
    log = tmp / "vmaf.json"
    graph = (
        f"[0:v]scale={top.width}:{top.height}:flags=bicubic,setpts=PTS-STARTPTS[ref];"
        "[1:v]setpts=PTS-STARTPTS[dist];"
        f"[dist][ref]libvmaf=model=version=vmaf_v0.6.1:log_fmt=json:log_path={log}"
    )
    inputs = ["-i", str(src), "-i", str(joined)]
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", *inputs, "-lavfi", graph, "-f", "null", "-"],
        check=True,
        capture_output=True,
    )
    return float(json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"])


def run(quick: bool = False) -> list[Figure]:
    """Cost, size and quality figures of the ladder."""
    ffmpeg = find_ffmpeg()
    seconds, runs, size = (4.0, 1, (1280, 720)) if quick else (12.0, 3, (1920, 1080))
    figs: list[Figure] = []
    preset = os.environ.get("BENCH_LADDER_PRESET") or None
    for kind in CONTENT_KINDS[:1] if quick else CONTENT_KINDS:
        src = content_clip(kind, seconds, *size)
        info = probe(src)
        plan = plan_ladder(info, preset=preset)
        assert plan is not None
        ratios, ours_cpu, bare_cpu, sizes, vmafs = [], [], [], [], []
        with tempfile.TemporaryDirectory(prefix="hevcq-bench-ladder-") as t:
            # Untimed: the first encode of a run cost 2-4 % more CPU than the next ones
            # (measured 2026-11-27), which counted against whichever went first.
            subprocess.run(ladder_args(ffmpeg, src, Path(t), plan), check=True, capture_output=True)
        for run in range(runs):
            with tempfile.TemporaryDirectory(prefix="hevcq-bench-ladder-") as t:
                tmp = Path(t)
                bare_dir, ours_dir, apple_dir = tmp / "bare", tmp / "ours", tmp / "apple"
                for d in (bare_dir, apple_dir):
                    d.mkdir()
                bare_args = ladder_args(ffmpeg, src, bare_dir, plan)
                timed: dict[str, Callable[[], object]] = {
                    "bare": partial(subprocess.run, bare_args, check=True, capture_output=True),
                    "ours": partial(build_ladder, ffmpeg, src, ours_dir, info, preset=preset),
                }
                order = ("bare", "ours") if run % 2 == 0 else ("ours", "bare")  # taking turns
                cpu = {name: _cpu_of(timed[name]) for name in order}
                bare, ours = cpu["bare"], cpu["ours"]
                ratios.append(ours / bare)
                ours_cpu.append(ours)
                bare_cpu.append(bare)
                apple_plan = dataclasses.replace(plan, rungs=_apple(plan.rungs))
                apple_args = ladder_args(ffmpeg, src, apple_dir, apple_plan)
                fixed = _fixed_rate_args(apple_args, apple_plan.rungs)
                subprocess.run(fixed, check=True, capture_output=True)
                write_master(apple_dir, apple_plan)
                sizes.append(_bytes(ours_dir) / _bytes(apple_dir))
                gap = _vmaf_top(ffmpeg, src, ours_dir, tmp) - _vmaf_top(ffmpeg, src, apple_dir, tmp)
                vmafs.append(gap)
                shutil.rmtree(tmp, ignore_errors=True)
        rungs = "/".join(str(r.short) for r in plan.rungs)
        note = f"{seconds:g} s {size[0]}x{size[1]} {kind} content, rungs {rungs}, {plan.preset}"
        figs += [
            figure(
                f"ladder CPU vs bare ffmpeg, {kind}",
                "x",
                ratios,
                target="<= 1.05",
                met=lambda m: m <= 1.05,
                notes=note + "; ours includes the full decode of every rung (the check)",
            ),
            figure(f"ladder CPU seconds, {kind}", "s", ours_cpu, notes=note),
            figure(f"bare ffmpeg CPU seconds, {kind}", "s", bare_cpu, notes=note),
            figure(
                f"ladder bytes vs Apple's fixed ladder, {kind}",
                "x",
                sizes,
                notes=note + "; segment bytes of every rung",
            ),
            figure(
                f"top-rung VMAF, ours minus Apple's, {kind}",
                "VMAF",
                vmafs,
                notes=note + "; vmaf_v0.6.1 against the source",
            ),
        ]
    return figs
