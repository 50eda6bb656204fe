"""Per-title ladders (``hevcq.media.pertitle``) against Apple's fixed ladder at the same
top-rung quality.

For each content kind: Apple's fixed H.264 ladder (``bench_ladder.APPLE_KBPS`` at the
rungs the source allows) is encoded and its top rung scored with VMAF against the source;
that score is the per-title target. Both top rungs are scored as the probes are, by
``quality.score`` at the source's size (a per-title top rung may be smaller than the
source: scored at its own size it would look far better than it plays full screen).
The per-title ladder is then probed for it, encoded and checked (``check_ladder``).
Figures: total segment bytes per-title over Apple's, the top rungs' VMAF gap (per-title
minus Apple's), and the probes' CPU over the per-title ladder's own encode CPU (ffmpeg's
command alone; both measured as CPU seconds of this process and its children).
``BENCH_PERTITLE_KINDS`` (a comma list of ``CONTENT_KINDS``) runs part of them.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
from functools import partial
from pathlib import Path

from benchmarks.bench_ladder import _apple, _bytes, _cpu_of, _fixed_rate_args
from benchmarks.clips import NATURAL_KINDS, content_clip, mixed_clip, natural_clip
from benchmarks.harness import Figure, figure
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.ladder import (
    MASTER,
    Rung,
    check_ladder,
    ladder_args,
    plan_ladder,
    read_master,
    read_media_playlist,
    write_master,
)
from hevcq.media.pertitle import Pick, Prober, per_title_rungs
from hevcq.media.probe import probe
from hevcq.media.quality import score

# Two classes on their own, then scenes of static, moderate and high content in turn
# (``clips.mixed_clip``): complexity that changes from scene to scene, as a real video's
# does, where a fixed bitrate spends as much on a still scene as on a busy one. Last, a
# still picture alone (a slide, a title card): cheap at every size, one rung. Then
# camera-like content (``clips.natural_clip``): a slow pan across a landscape and a figure
# before a still background, each with a sensor's light grain.
CONTENT_KINDS = ("moderate", "high", "mixed", "static", *NATURAL_KINDS)


def _source(kind: str, seconds: float, size: tuple[int, int]) -> Path:
    if kind == "mixed":
        return mixed_clip(seconds, *size)
    if kind in NATURAL_KINDS:
        return natural_clip(kind, seconds, *size)
    return content_clip(kind, seconds, *size)


def _top_vmaf(ffmpeg: str, src: Path, ladder: Path, tmp: Path) -> float:
    """VMAF of a ladder's top rung against the source, at the source's size."""
    variants, _ = read_master(ladder / MASTER)
    top = max(variants, key=lambda v: v.width * v.height)
    media = read_media_playlist(ladder / top.uri)
    joined = tmp / f"{ladder.name}-top.mp4"
    with joined.open("wb") as f:
        f.write(media.init.read_bytes())
        for _, seg in media.segments:
            f.write(seg.read_bytes())
    return score(ffmpeg, src, joined, threads=2).mean


def run(quick: bool = False) -> list[Figure]:
    """Bytes, quality and probe-cost figures of per-title ladders."""
    ffmpeg = find_ffmpeg()
    seconds, size = (20.0, (640, 360)) if quick else (60.0, (1280, 720))
    figs: list[Figure] = []
    only = [k for k in os.environ.get("BENCH_PERTITLE_KINDS", "").split(",") if k]
    kinds = only or (CONTENT_KINDS[:1] if quick else CONTENT_KINDS)
    for kind in kinds:
        src = _source(kind, seconds, size)
        info = probe(src)
        plan = plan_ladder(info)
        assert plan is not None
        with tempfile.TemporaryDirectory(prefix="hevcq-bench-pertitle-") as t:
            tmp = Path(t)
            apple_dir, ours_dir = tmp / "apple", tmp / "ours"
            apple_dir.mkdir()
            ours_dir.mkdir()
            apple_plan = dataclasses.replace(plan, rungs=_apple(plan.rungs))
            fixed = _fixed_rate_args(
                ladder_args(ffmpeg, src, apple_dir, apple_plan), apple_plan.rungs
            )
            subprocess.run(fixed, check=True, capture_output=True)
            write_master(apple_dir, apple_plan)
            target = _top_vmaf(ffmpeg, src, apple_dir, tmp)
            got: list[tuple[tuple[Rung, ...], list[Pick]]] = []
            prober = Prober(ffmpeg, tmp)
            find = partial(per_title_rungs, prober, src, info, target)
            probe_cpu = _cpu_of(lambda: got.append(find()))  # noqa: B023 (called at once)
            rungs, picks = got[0]
            ours = plan_ladder(info, rungs=rungs)
            assert ours is not None
            args = ladder_args(ffmpeg, src, ours_dir, ours)
            encode_cpu = _cpu_of(partial(subprocess.run, args, check=True, capture_output=True))
            write_master(ours_dir, ours)
            problems = check_ladder(ours_dir)
            if problems:
                raise AssertionError(f"per-title ladder rejected: {problems}")
            ours_bytes, apple_bytes = _bytes(ours_dir), _bytes(apple_dir)
            bytes_ratio = ours_bytes / apple_bytes
            gap = _top_vmaf(ffmpeg, src, ours_dir, tmp) - target
        chosen = ", ".join(f"{p.short}p CRF {p.crf} ~{p.kbps:.0f} kb/s" for p in picks)
        note = (
            f"{seconds:g} s {size[0]}x{size[1]} {kind} content; Apple top-rung VMAF "
            f"{target:.2f} is the target; per-title rungs: {chosen}; "
            f"bytes {ours_bytes} vs {apple_bytes}"
        )
        figs += [
            figure(
                f"per-title ladder bytes vs Apple's, {kind}",
                "x",
                [bytes_ratio],
                target="<= 0.80",
                met=lambda m: m <= 0.80,
                notes=note + "; segment bytes of every rung",
            ),
            figure(
                f"per-title top-rung VMAF minus Apple's, {kind}",
                "VMAF",
                [gap],
                target="within 0.5",
                met=lambda m: abs(m) <= 0.5,
                notes=note,
            ),
            figure(
                f"per-title probe CPU vs ladder encode CPU, {kind}",
                "x",
                [probe_cpu / encode_cpu],
                target="<= 0.30",
                met=lambda m: m <= 0.30,
                notes=note + f"; probes {probe_cpu:.1f} s, encode {encode_cpu:.1f} s CPU",
            ),
        ]
    return figs
