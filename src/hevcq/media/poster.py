"""A poster for a video: a JPEG of a representative frame, as the viewer sees it.

Representative means neither black nor the first fade-in: frames are sampled across the
middle of the video (never its first tenth), each scored on a small grey copy by its
brightness and contrast, and the most detailed frame that is neither near black nor
blown out is kept. The JPEG comes from the pinned ffmpeg, rotation applied.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from hevcq.errors import PermanentError
from hevcq.media.ffargs import source_filters
from hevcq.media.probe import hdr_transfer

# Where frames are sampled, as fractions of the duration: past a fade-in, before credits.
SAMPLE_AT = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# A frame whose mean grey level (0-255) is outside this range is too dark or too bright.
DARKEST, BRIGHTEST = 40.0, 225.0
SCORE_W, SCORE_H = 64, 36
POSTER_WIDTH = 640  # neither side is larger
JPEG_QUALITY = 3  # ffmpeg's -q:v for mjpeg: 2 (best) .. 31
POSTER = "poster.jpg"  # its name beside an output


@dataclass(frozen=True)
class Candidate:
    """One sampled frame: its time and how it scores."""

    time_s: float
    mean: float
    contrast: float  # standard deviation of the grey levels

    @property
    def usable(self) -> bool:
        """Neither near black nor blown out."""
        return DARKEST <= self.mean <= BRIGHTEST


def grey_stats(pixels: bytes) -> tuple[float, float]:
    """Mean and standard deviation of 8-bit grey levels."""
    n = len(pixels)
    if n == 0:
        return 0.0, 0.0
    mean = sum(pixels) / n
    var = sum((p - mean) ** 2 for p in pixels) / n
    return mean, math.sqrt(var)


def choose(candidates: list[Candidate]) -> Candidate | None:
    """The most detailed usable frame; without one, the most detailed frame at all."""
    usable = [c for c in candidates if c.usable]
    pool = usable or candidates
    return max(pool, key=lambda c: (c.contrast, -abs(c.time_s)), default=None)


def sample(path: Path) -> list[Candidate]:
    """Score a frame at each of ``SAMPLE_AT`` of the video's duration."""
    return _sampled(path)[0]


def _sampled(path: Path) -> tuple[list[Candidate], str]:
    """``sample``'s candidates, and the video's HDR transfer ("" for SDR)."""
    found = []
    with av.open(str(path), metadata_errors="replace") as container:
        stream: Any = next(iter(container.streams.video), None)
        if stream is None:
            raise PermanentError("no video stream")
        transfer = hdr_transfer(stream.codec_context)
        duration = _duration_s(container, stream)
        for fraction in SAMPLE_AT:
            at = duration * fraction
            frame = _frame_at(container, stream, at)
            if frame is None:
                continue
            grey = frame.reformat(width=SCORE_W, height=SCORE_H, format="gray")
            plane = grey.planes[0]
            rows = bytes(plane)
            pixels = b"".join(
                rows[y * plane.line_size : y * plane.line_size + SCORE_W] for y in range(SCORE_H)
            )
            mean, contrast = grey_stats(pixels)
            # The frame's own time, floored to the millisecond, so that the JPEG's seek
            # lands on it (a place past a clip's last frame would land on nothing).
            when = at if frame.time is None else min(at, frame.time)
            found.append(Candidate(math.floor(max(when, 0.0) * 1000) / 1000, mean, contrast))
    return found, transfer


def _duration_s(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration / av.time_base)
    return 0.0


def _frame_at(container: Any, stream: Any, at: float) -> Any:
    """The first frame at or after ``at`` seconds; the last frame before it when the
    video ends first (a clip of a frame or two, a duration the container overstates);
    None only when nothing decodes from there."""
    target = int(at / stream.time_base) if stream.time_base else 0
    container.seek(target, stream=stream, backward=True, any_frame=False)
    last = None
    for frame in container.decode(stream):
        if frame.time is not None and frame.time + 1e-6 >= at:
            return frame
        last = frame
    return last


def make_poster(ffmpeg: str, src: Path, dest: Path) -> Candidate:
    """Write ``dest`` (JPEG) from the most representative frame of ``src``; which one.

    Raises ``PermanentError`` for a file with no decodable video.
    """
    try:
        candidates, transfer = _sampled(src)
        best = choose(candidates)
    except av.FFmpegError as exc:
        raise PermanentError(f"not a media file: {exc.strerror or exc}") from exc
    if best is None:
        raise PermanentError("no frame decodes for a poster")
    args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    args += ["-ss", f"{best.time_s:.3f}", "-i", f"file:{src}", "-frames:v", "1"]
    # Within POSTER_WIDTH on both sides, aspect kept, never enlarged; rotation applied.
    # Interlaced frames are made progressive and non-square pixels stretched to the
    # displayed aspect first (a JPEG's own aspect field is ignored by browsers); both are
    # no-ops on a progressive, square-pixel frame.
    # An HDR picture is tone-mapped to SDR, as the ladder's rungs are: a JPEG is SDR.
    box = f"w='min({POSTER_WIDTH},iw)':h='min({POSTER_WIDTH},ih)'"
    # (The deinterlacer passes progressive frames through untouched.)
    first = source_filters(deinterlace=True, hdr_transfer=transfer)
    shown = ",".join([*first, "scale=w='trunc(iw*sar/2)*2':h=ih", "setsar=1"])
    args += ["-vf", f"{shown},scale={box}:force_original_aspect_ratio=decrease:flags=lanczos"]
    args += ["-q:v", str(JPEG_QUALITY), "-f", "image2", "-c:v", "mjpeg", f"file:{dest}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not dest.is_file():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PermanentError(f"poster: ffmpeg failed: {tail}")
    return best
