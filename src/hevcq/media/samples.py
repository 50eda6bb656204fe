"""Generated test media (real ffmpeg): clips of any shape, and the README's demo library."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from hevcq.media.ffmpeg import find_ffmpeg

# Which subtitle codec each container stores text subtitles as.
_TEXT_SUBTITLE_CODEC = {"mp4": "mov_text", "mov": "mov_text", "matroska": "srt"}
_CONTAINER_OF_SUFFIX = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def make_clip(
    path: Path,
    *,
    width: int,
    height: int,
    seconds: float,
    fps: int = 24,
    vcodec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    audio_streams: int = 1,
    audio_codec: str = "aac",
    subtitles: int = 0,
    attachments: int = 0,
    container: str | None = None,
    ffmpeg: str | None = None,
) -> Path:
    """Write a test clip: moving test pattern, sine tones, SubRip-made subtitles, fonts.

    ``rotation`` is stored as a display matrix over the unrotated coded picture, the way
    phones record portrait video. ``container`` defaults to what the suffix implies.
    """
    fmt = container or _CONTAINER_OF_SUFFIX.get(path.suffix.lower(), "mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hevcq-clip-") as scratch:
        inputs = _inputs(
            Path(scratch),
            width=width,
            height=height,
            seconds=seconds,
            fps=fps,
            rotation=rotation,
            audio_streams=audio_streams,
            subtitles=subtitles,
            attachments=attachments,
        )
        args = [find_ffmpeg(ffmpeg), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        args += inputs
        args += ["-map", "0:v"] + [a for i in range(audio_streams) for a in ("-map", f"{1 + i}:a")]
        args += [a for i in range(subtitles) for a in ("-map", f"{1 + audio_streams + i}:s")]
        args += _codec_args(vcodec, pix_fmt, audio_codec, fmt, subtitles)
        args += ["-t", str(seconds), "-f", fmt, f"file:{path}"]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not make {path.name}: {result.stderr.strip()[-500:]}")
    return path


def _inputs(
    scratch: Path,
    *,
    width: int,
    height: int,
    seconds: float,
    fps: int,
    rotation: int,
    audio_streams: int,
    subtitles: int,
    attachments: int,
) -> list[str]:
    # -display_rotation is counter-clockwise, as the display matrix PyAV reports back;
    # -noautorotate stops ffmpeg from turning the picture itself instead.
    args = ["-display_rotation", str(rotation), "-noautorotate"] if rotation else []
    args += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
    for n in range(audio_streams):
        tone = f"sine=frequency={440 * (n + 1)}:sample_rate=48000:duration={seconds}"
        args += ["-f", "lavfi", "-i", tone]
    for n in range(subtitles):
        srt = scratch / f"sub{n}.srt"
        srt.write_text(_srt(seconds, f"Subtitle track {n + 1}"), encoding="utf-8")
        args += ["-i", f"file:{srt}"]
    for n in range(attachments):
        font = scratch / f"font{n}.ttf"
        font.write_bytes(b"\x00\x01\x00\x00" + bytes(60))  # a placeholder, not a real font
        args += ["-attach", str(font), f"-metadata:s:t:{n}", "mimetype=font/ttf"]
    return args


# ffmpeg's own encoders of these refuse to run unless told to run experimental code.
_EXPERIMENTAL_ENCODERS = frozenset({"truehd", "mlp", "dca"})


def _codec_args(vcodec: str, pix_fmt: str, audio_codec: str, fmt: str, subtitles: int) -> list[str]:
    args = ["-c:v", vcodec, "-preset", "ultrafast", "-pix_fmt", pix_fmt]
    if vcodec == "libx265":
        args += ["-x265-params", "log-level=error"]
        if fmt in ("mp4", "mov"):
            args += ["-tag:v", "hvc1"]
    args += ["-c:a", audio_codec]
    if audio_codec in _EXPERIMENTAL_ENCODERS:
        args += ["-strict", "experimental"]
    if subtitles:
        args += ["-c:s", _TEXT_SUBTITLE_CODEC.get(fmt, "srt")]
    return args


def _srt(seconds: float, text: str) -> str:
    """One cue per half second, each saying which cue it is."""
    cues, start, n = [], 0.0, 1
    while start < seconds:
        end = min(start + 0.5, seconds)
        cues.append(f"{n}\n{_srt_time(start)} --> {_srt_time(end)}\n{text}, cue {n}\n")
        start, n = end, n + 1
    return "\n".join(cues)


def _srt_time(t: float) -> str:
    ms = round(t * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


SAMPLE_NAMES = (
    "holiday/beach.mp4",
    "phone/IMG_0042.MOV",
    "already/hevc-clip.mp4",
    "docs/not-a-video.mp4",
)


def make_sample_library(dest: Path, seconds: float = 3.0) -> list[Path]:
    """The README's demo library: a holiday clip, a portrait phone clip, HEVC, a non-video.

    Only names that are free are written: a file already there is kept as it is.
    """
    makers: dict[str, Callable[[Path], object]] = {
        "holiday/beach.mp4": lambda p: make_clip(p, width=1920, height=1080, seconds=seconds),
        # Phones store portrait video as landscape pixels plus a rotation matrix.
        "phone/IMG_0042.MOV": lambda p: make_clip(
            p, width=1920, height=1080, seconds=seconds, rotation=90, container="mov"
        ),
        "already/hevc-clip.mp4": lambda p: make_clip(
            p, width=1280, height=720, seconds=seconds, vcodec="libx265"
        ),
        "docs/not-a-video.mp4": _write_notes,
    }
    for name in SAMPLE_NAMES:
        if not (dest / name).exists():
            makers[name](dest / name)
    return [dest / name for name in SAMPLE_NAMES]


def _write_notes(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("These are meeting notes, not a video.\n", encoding="utf-8")


def foreign_files(dest: Path) -> list[Path]:
    """Files in ``dest`` that a sample library does not hold (its own folders aside)."""
    if not dest.is_dir():
        return []
    ours = {dest / name for name in SAMPLE_NAMES}
    return sorted(p for p in dest.rglob("*") if not p.is_dir() and p not in ours)
