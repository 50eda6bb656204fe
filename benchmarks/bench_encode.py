"""Encode speed per pool on this machine: real-time factor per vCPU on typical content."""

from __future__ import annotations

from benchmarks.clips import content_clip
from benchmarks.harness import Figure, figure
from hevcq.library.calibrate import (
    CONTENT,
    DEFAULT_SPEEDS,
    combined_speed,
    cpus_available,
    encode_once,
)
from hevcq.pools import load_farm

POOLS = ("hevc", "1080p", "720p", "hls")  # hls: the whole ladder command


def run_speeds(quick: bool = False) -> tuple[list[Figure], dict[str, float]]:
    """Per-pool and per-content speed figures, and each pool's median speed for the cost table."""
    seconds, runs = (0.5, 1) if quick else (3.0, 3)
    cpus = cpus_available()
    farm = load_farm()
    clips = {kind: content_clip(kind, seconds) for kind in CONTENT}
    figs, speeds = [], {}
    for name in POOLS:
        per_kind: dict[str, list[float]] = {k: [] for k in clips}
        overall, cores = [], []
        for _ in range(runs):
            done = {k: encode_once(src, farm[name]) for k, src in clips.items()}
            for k, enc in done.items():
                per_kind[k].append(enc.speed(cpus))
            overall.append(combined_speed([(e.video_s, e.wall_s) for e in done.values()], cpus))
            cores.append(sum(e.cpu_s for e in done.values()) / sum(e.wall_s for e in done.values()))
        note = (
            f"{seconds:g} s 1080p clips, preset {farm[name].encode.preset}, "
            f"crf {farm[name].encode.crf}, {cpus} vCPUs; default {DEFAULT_SPEEDS.get(name)}"
        )
        for k, samples in per_kind.items():
            figs.append(
                figure(f"encode speed {name}, {k} content", "x realtime/vCPU", samples, notes=note)
            )
        fig = figure(
            f"encode speed {name}, all content",
            "x realtime/vCPU",
            overall,
            notes=note + "; total video seconds over total wall seconds",
        )
        figs.append(fig)
        figs.append(
            figure(
                f"encode {name}: cores kept busy",
                "cores",
                cores,
                notes="ffmpeg CPU seconds per wall second",
            )
        )
        speeds[name] = fig.median
    return figs, speeds


def run(quick: bool = False) -> list[Figure]:
    """Every encode-speed figure."""
    return run_speeds(quick)[0]
