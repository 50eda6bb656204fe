"""What a poster costs on a recording with one keyframe (as a browser's recorder and
many cameras write), against decoding that recording once.

A poster samples nine frames, from 10 % to 90 % of the video. Each used to be decoded
from the keyframe before it: with one keyframe, 4.5 decodes of the whole recording. The
samples now share one decode where that is cheaper than seeking (``poster._Frames``), so
sampling costs about the 0.9 of the video its last sample lies in.

Figures, each the median of runs taken in turn with the baseline (one decode of every
frame with PyAV, as sampling decodes):

- sampling / one decode, target <= 1.2 (each sample from the keyframe: about 4.5);
- the whole poster (sampling, then the pinned ffmpeg's JPEG, which decodes from the
  keyframe to the frame chosen) / one decode, reported;
- sampling / one decode on the same picture with a keyframe every second, reported: the
  samples are still found by seeking, a small fraction of one decode.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from benchmarks.harness import Figure, figure, side_by_side
from hevcq.media.demuxers import open_input
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.poster import _sampled, make_poster

TARGET = 1.2


def _recording(dest: Path, *, seconds: float, size: str, gop: int) -> Path:
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", f"testsrc2=size={size}:rate=30:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-g", str(gop)]
    args += ["-x264-params", "scenecut=0", "-pix_fmt", "yuv420p", str(dest)]
    subprocess.run(args, check=True)
    return dest


def _decode_once(path: Path) -> None:
    with open_input(str(path)) as container:
        for _ in container.decode(video=0):
            pass


def run(quick: bool = False) -> list[Figure]:
    """Poster cost against one decode (ratios)."""
    seconds, size, runs = (20.0, "1280x720", 1) if quick else (60.0, "1920x1080", 3)
    with tempfile.TemporaryDirectory(prefix="hevcq-bench-poster-") as tmp:
        folder = Path(tmp)
        one = _recording(folder / "one.mp4", seconds=seconds, size=size, gop=1_000_000)
        dense = _recording(folder / "dense.mp4", seconds=seconds, size=size, gop=30)
        jpeg = folder / "poster.jpg"
        sampled, decoded, ratios = side_by_side(
            lambda: _sampled(one), lambda: _decode_once(one), runs
        )
        _, _, whole_ratios = side_by_side(
            lambda: make_poster(find_ffmpeg(), one, jpeg), lambda: _decode_once(one), runs
        )
        _, _, seek_ratios = side_by_side(lambda: _sampled(dense), lambda: _decode_once(dense), runs)
    label = f"{seconds:.0f} s of {size} H.264 with one keyframe"
    return [
        figure(f"poster sampling, {label}", "s", sampled),
        figure(f"one decode, {label}", "s", decoded),
        figure(
            f"poster sampling / one decode, {label}",
            "x",
            ratios,
            target=f"<= {TARGET}",
            met=lambda r: r <= TARGET,
            notes="each sample from the keyframe before it: about 4.5",
        ),
        figure(f"whole poster (with its JPEG) / one decode, {label}", "x", whole_ratios),
        figure(
            "poster sampling / one decode, the same with a keyframe a second",
            "x",
            seek_ratios,
            notes="still found by seeking",
        ),
    ]
