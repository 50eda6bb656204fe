"""Encode speed on this machine: short real encodes per pool, saved for the estimates."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hevcq.errors import ConfigError, HevcqError
from hevcq.media.decide import decide
from hevcq.media.ffargs import build_args
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.ladder import build_ladder
from hevcq.media.model import Skip
from hevcq.media.probe import probe
from hevcq.pools import Pool
from hevcq.private import open_private
from hevcq.settings import state_dir

SPEEDS_FILE = "speeds.json"
CALIBRATION_SIZE = (1920, 1080)  # renditions only apply to sources at least this large
CALIBRATION_FPS = 24

# Typical content, as lavfi sources: a still test card (slides, paused screens), a
# moving pattern with a clock (ordinary footage) and a zooming fractal with film grain
# (sport, handheld, grainy film: every pixel changes every frame).
CONTENT = {
    "static": "smptehdbars=size={w}x{h}:rate={fps}",
    "moderate": "testsrc2=size={w}x{h}:rate={fps}",
    "high": "mandelbrot=size={w}x{h}:rate={fps},noise=alls=12:allf=t+u",
}

# Real-time factor per vCPU (seconds of video encoded per wall second, divided by the
# vCPUs used) when nothing was calibrated. Measured by `make bench` (bench_encode) on
# 2025-11-21: 3 s 1080p H.264 clips of the three CONTENT classes above, each pool's real
# settings from workers/*.yaml (libx265 "medium"), the static ffmpeg 9 that imageio-ffmpeg
# ships, a 2-vCPU Intel Xeon cloud VM shared with other work; per pool, total video
# seconds over total wall seconds, median of 3 runs (hevc 0.325, 1080p 0.296, 720p 0.576),
# rounded down. The hevc pool keeps each source's own size, and phone libraries are largely
# 4K (four times the pixels of the 1080p clips measured), so its default stays at 0.1.
# Short clips flatter x265 a little and other CPUs differ by up to a factor of two:
# run `hevcq calibrate` for figures about your machine.
# The ladder (H.264 at veryfast, every rung of a 1080p source from one decode, then the check
# that decodes every rung in one thread): bench_encode on 2026-11-25, same clips and
# machine, taking turns with the 720p pool, 3 runs: 0.625 against 0.941, so 0.66 of the
# 720p pool's speed (0.80 for the ffmpeg command alone: the check is 7 % of the CPU but runs
# on one core). 0.55 x 0.66 = 0.36, rounded down to 0.35.
DEFAULT_SPEEDS: Mapping[str, float] = {"hevc": 0.1, "1080p": 0.28, "720p": 0.55, "hls": 0.35}
FALLBACK_SPEED = 0.1


def cpus_available() -> int:
    """CPUs this process may run on (what ffmpeg's threads spread over)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def speed_per_vcpu(video_s: float, wall_s: float, cpus: int) -> float:
    """Seconds of video encoded per wall second, per vCPU used."""
    if video_s <= 0 or wall_s <= 0 or cpus <= 0:
        raise ValueError("video_s, wall_s and cpus must be positive")
    return video_s / wall_s / cpus


def combined_speed(samples: Sequence[tuple[float, float]], cpus: int) -> float:
    """One pool's speed over several clips: total video seconds over total wall seconds."""
    return speed_per_vcpu(sum(v for v, _ in samples), sum(w for _, w in samples), cpus)


@dataclass(frozen=True)
class Encoded:
    """One timed encode."""

    pool: str
    video_s: float
    wall_s: float
    cpu_s: float  # user + system seconds of ffmpeg (and of a ladder's check)

    def speed(self, cpus: int) -> float:
        """Real-time factor per vCPU."""
        return speed_per_vcpu(self.video_s, self.wall_s, cpus)


def make_content(
    dest: Path,
    kind: str,
    seconds: float,
    *,
    size: tuple[int, int] = CALIBRATION_SIZE,
    ffmpeg: str | None = None,
) -> Path:
    """Write a high-quality H.264 + AAC clip of one CONTENT class."""
    w, h = size
    video = CONTENT[kind].format(w=w, h=h, fps=CALIBRATION_FPS)
    quiet = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    args = [find_ffmpeg(ffmpeg), *quiet, *content_args(video, seconds, dest)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigError(f"ffmpeg could not generate a {kind} clip: {done.stderr[-300:]}")
    return dest


def content_args(video: str, seconds: float, dest: Path) -> list[str]:
    """ffmpeg's arguments (after the binary and its global options) that write the lavfi
    graph ``video`` with a tone, ``seconds`` long, as a high-quality H.264 + AAC MP4."""
    return [
        "-f",
        "lavfi",
        "-i",
        video,
        "-f",
        "lavfi",
        "-i",
        f"sine=duration={seconds}",
        "-t",
        str(seconds),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "18",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-f",
        "mp4",
        f"file:{dest}",
    ]


def _cpu_s(who: int) -> float:
    used = resource.getrusage(who)
    return used.ru_utime + used.ru_stime


def encode_once(src: Path, pool: Pool, *, ffmpeg: str | None = None) -> Encoded:
    """Encode ``src`` with the pool's own argument list and time it.

    A ladder pool is timed as its jobs run it: the one command for every rung, then the
    measuring and the check that decodes every rung (``build_ladder``), which is about
    7 % of its CPU; a per-title ladder's probes are not part of it.
    """
    info = probe(src)
    plan = decide(info, pool, src.name)
    if isinstance(plan, Skip):
        raise ConfigError(f"pool {pool.name} does not apply to {src.name}: {plan.reason}")
    exe = find_ffmpeg(ffmpeg)
    with tempfile.TemporaryDirectory(prefix="hevcq-calibrate-") as tmp:
        before = _cpu_s(resource.RUSAGE_CHILDREN) + _cpu_s(resource.RUSAGE_SELF)
        start = time.perf_counter()
        if pool.ladder is not None:
            try:
                build_ladder(
                    exe,
                    src,
                    Path(tmp) / "ladder",
                    info,
                    groups=pool.ladder.groups,
                    preset=pool.ladder.preset,
                )
            except HevcqError as exc:
                raise ConfigError(f"calibration encode failed for {pool.name}: {exc}") from exc
        else:
            args = build_args(exe, src, Path(tmp) / "output", plan)
            done = subprocess.run(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
            )
            if done.returncode != 0:
                raise ConfigError(
                    f"calibration encode failed for {pool.name}: {done.stderr[-300:]}"
                )
        wall = time.perf_counter() - start
        cpu = _cpu_s(resource.RUSAGE_CHILDREN) + _cpu_s(resource.RUSAGE_SELF) - before
    return Encoded(pool.name, info.duration_s or 0.0, wall, cpu)


def calibrate(
    pools: Mapping[str, Pool] | Iterable[Pool],
    *,
    seconds: float = 2.0,
    ffmpeg: str | None = None,
    contents: Sequence[str] = tuple(CONTENT),
) -> dict[str, float]:
    """Real-time factor per vCPU of each pool, from short encodes of generated clips."""
    chosen = list(pools.values()) if isinstance(pools, Mapping) else list(pools)
    cpus = cpus_available()
    speeds = {}
    with tempfile.TemporaryDirectory(prefix="hevcq-calibrate-") as tmp:
        clips = [make_content(Path(tmp) / f"{k}.mp4", k, seconds, ffmpeg=ffmpeg) for k in contents]
        for pool in chosen:
            runs = [encode_once(c, pool, ffmpeg=ffmpeg) for c in clips]
            speeds[pool.name] = combined_speed([(r.video_s, r.wall_s) for r in runs], cpus)
    return speeds


class _SpeedsFile(BaseModel):
    """The saved calibration (our own shape: unknown fields are an error)."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    measured_at: str
    cpus: int
    speeds: dict[str, float] = Field(default_factory=dict)
    settings: dict[str, str] = Field(default_factory=dict)  # pool -> settings hash measured


def speeds_path(state: Path | None = None) -> Path:
    """Where the calibration is kept: the user's hevcq state folder."""
    return (state or state_dir()) / SPEEDS_FILE


def save_speeds(
    path: Path, speeds: Mapping[str, float], pools: Mapping[str, Pool] | None = None
) -> None:
    """Write speeds atomically; with ``pools``, remember the settings they were measured with."""
    doc = _SpeedsFile(
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        cpus=cpus_available(),
        speeds={k: float(v) for k, v in speeds.items() if v > 0},
        settings={n: p.settings_hash() for n, p in (pools or {}).items() if n in speeds},
    )
    tmp = path.with_name(f".{path.name}.tmp")
    with open_private(tmp, "w") as f:
        f.write(json.dumps(doc.model_dump(), indent=2) + "\n")
    tmp.replace(path)


def load_speeds(path: Path, pools: Mapping[str, Pool] | None = None) -> dict[str, float] | None:
    """Saved speeds, or None without a usable file.

    With ``pools``, a speed measured under other encode settings (a changed preset or
    CRF) is dropped: it no longer says how fast that pool is.
    """
    try:
        doc = _SpeedsFile.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None
    speeds = {k: v for k, v in doc.speeds.items() if v > 0}
    if pools is not None:
        speeds = {
            k: v
            for k, v in speeds.items()
            if k in pools and doc.settings.get(k) in (None, pools[k].settings_hash())
        }
    return speeds


def speed_for(pool: str, calibrated: Mapping[str, float] | None) -> tuple[float, bool]:
    """The speed to plan with and whether it was measured here (else the default)."""
    if calibrated and calibrated.get(pool, 0) > 0:
        return calibrated[pool], True
    return DEFAULT_SPEEDS.get(pool, FALLBACK_SPEED), False
