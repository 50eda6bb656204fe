"""A ladder's subtitle renditions: each text subtitle track of the source as WebVTT,
segmented with the picture (RFC 8216 3.5).

Each track is turned into one WebVTT file by ffmpeg on its own (a track ffmpeg cannot
turn, or one with no cue, is left out and the ladder made without it: subtitles never
cost a ladder its picture), then cut here at the video's segment boundaries. Every
segment holds each cue shown during it, a cue spanning a boundary in both, as the
specification requires, with its times as in the source: cue time 0 is media time 0
(``X-TIMESTAMP-MAP``), where the ladder's picture and sound start. Bitmap subtitles (a
Blu-ray's PGS, a DVD's or a broadcast's pictures) have no text to give and are left out.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from hevcq.errors import PermanentError
from hevcq.media.ffmpeg import run_ffmpeg

log = structlog.get_logger(__name__)

# Text subtitle codecs ffmpeg's WebVTT encoder takes (their styling is dropped).
TEXT_CODECS = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "text", "mov_text"})
SUBTITLE_GROUP = "subs"
PLAYLIST = "index.m3u8"
WHOLE = "whole.vtt"  # the track before it is cut; removed once it is
# Cue time 0 is media time 0: the ladder's picture and sound start at the source's zero.
HEADER = "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n"
_TIMING = re.compile(r"^\s*(\S+)\s+-->\s+(\S+)(.*)$")
EXTINF_TOLERANCE_S = 0.001


@dataclass(frozen=True)
class Cue:
    """One WebVTT cue: when it shows, its settings and its text."""

    start_s: float
    end_s: float
    settings: str
    text: str


def vtt_seconds(stamp: str) -> float:
    """Seconds of a WebVTT timestamp (``mm:ss.ttt`` or ``hh:mm:ss.ttt``); raises
    ``ValueError`` for anything else (pure)."""
    parts = stamp.split(":")
    if len(parts) not in (2, 3) or "." not in parts[-1]:
        raise ValueError(f"not a WebVTT timestamp: {stamp!r}")
    seconds = float(parts[-1])
    minutes = int(parts[-2])
    hours = int(parts[0]) if len(parts) == 3 else 0
    if not 0 <= seconds < 60 or not 0 <= minutes < 60 or hours < 0:
        raise ValueError(f"not a WebVTT timestamp: {stamp!r}")
    return hours * 3600 + minutes * 60 + seconds


def vtt_stamp(seconds: float) -> str:
    """A WebVTT timestamp of ``seconds`` (pure)."""
    ms = round(max(0.0, seconds) * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    return f"{hours:02d}:{minutes:02d}:{ms // 1000:02d}.{ms % 1000:03d}"


def parse_vtt(text: str) -> list[Cue]:
    """The cues of a WebVTT file; raises ``ValueError`` when it is not one (pure)."""
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    if not blocks or not blocks[0].startswith("WEBVTT"):
        raise ValueError("not a WebVTT file")
    cues = []
    for block in blocks[1:]:
        lines = block.strip("\n").split("\n")
        at = next((i for i, ln in enumerate(lines) if "-->" in ln), None)
        if at is None:
            continue  # a NOTE, STYLE or REGION block
        found = _TIMING.match(lines[at])
        if found is None:
            raise ValueError(f"not a cue timing: {lines[at]!r}")
        start, end = vtt_seconds(found.group(1)), vtt_seconds(found.group(2))
        body = "\n".join(ln for ln in lines[at + 1 :] if ln.strip())
        if body and end > start:
            cues.append(Cue(start, end, found.group(3).strip(), body))
    return cues


def segment_text(cues: Sequence[Cue], start_s: float, end_s: float) -> str:
    """The WebVTT segment of ``[start_s, end_s)``: every cue shown during it (pure)."""
    shown = [c for c in cues if c.start_s < end_s and c.end_s > start_s]
    blocks = [HEADER]
    for c in shown:
        timing = f"{vtt_stamp(c.start_s)} --> {vtt_stamp(c.end_s)}"
        blocks.append(f"{timing} {c.settings}".rstrip() + f"\n{c.text}\n")
    return "\n".join(blocks)


def playlist_text(extinfs: Sequence[float], target_s: int) -> str:
    """The media playlist of a subtitle rendition cut as the picture is (pure)."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target_s}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    for i, d in enumerate(extinfs):
        lines += [f"#EXTINF:{d:.6f},", f"seg_{i:05d}.vtt"]
    return "\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n"


def make_renditions(
    ffmpeg: str,
    src: Path,
    tracks: Sequence[tuple[int, Path]],
    *,
    extinfs: Sequence[float],
    target_s: int,
    stop: threading.Event,
    stall_timeout_s: float,
) -> list[bool]:
    """Write each source stream of ``tracks`` as a subtitle rendition in its folder, cut
    at the picture's segments (``extinfs``); for each, whether it was (False, and its
    folder gone, when it gives no cue).

    Every track is turned in one read of the source (a film with twenty subtitle
    languages is read once, not twenty times); when ffmpeg refuses that, each track is
    turned on its own, so a track it cannot turn costs that track alone."""
    for _, folder in tracks:
        folder.mkdir(parents=True, exist_ok=True)
    turned = set()
    try:
        _to_webvtt(ffmpeg, src, tracks, stop=stop, stall_timeout_s=stall_timeout_s)
        turned = {index for index, _ in tracks}
    except PermanentError:
        for one in tracks if len(tracks) > 1 else ():
            try:
                _to_webvtt(ffmpeg, src, [one], stop=stop, stall_timeout_s=stall_timeout_s)
                turned.add(one[0])
            except PermanentError as exc:
                log.warning("subtitles.left_out", stream=one[0], reason=str(exc)[:200])
    return [
        _cut(folder, index, extinfs, target_s) if index in turned else _discard(folder)
        for index, folder in tracks
    ]


def _to_webvtt(
    ffmpeg: str,
    src: Path,
    tracks: Sequence[tuple[int, Path]],
    *,
    stop: threading.Event,
    stall_timeout_s: float,
) -> None:
    """One ffmpeg that writes each track whole as WebVTT (``WHOLE`` in its folder).
    A refusal is a ``PermanentError``; a stop, a stall, a full disk or a signal is the
    job's, and raised as the encode's would be."""
    args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    args += ["-i", f"file:{src}", "-progress", "pipe:1", "-nostats"]
    for index, folder in tracks:
        args += ["-map", f"0:{index}", "-c:s", "webvtt", "-f", "webvtt", f"file:{folder / WHOLE}"]
    run_ffmpeg(args, on_progress=None, stop=stop, stall_timeout_s=stall_timeout_s)


def _cut(folder: Path, index: int, extinfs: Sequence[float], target_s: int) -> bool:
    """The whole track in ``folder`` cut into the rendition's segments and playlist."""
    whole = folder / WHOLE
    try:
        cues = parse_vtt(whole.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as exc:
        log.warning("subtitles.left_out", stream=index, reason=str(exc)[:200])
        cues = []
    if not cues:
        return _discard(folder)
    start = 0.0
    for i, d in enumerate(extinfs):
        text = segment_text(cues, start, start + d)
        (folder / f"seg_{i:05d}.vtt").write_text(text, encoding="utf-8")
        start += d
    (folder / PLAYLIST).write_text(playlist_text(extinfs, target_s), encoding="utf-8")
    whole.unlink()
    return True


def _discard(folder: Path) -> bool:
    """A rendition not made: its folder removed; False."""
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    return False


def rendition_problems(playlist: Path, extinfs: Sequence[float]) -> list[str]:
    """A subtitle rendition cut as the picture is, every segment a WebVTT file."""
    uri = f"{playlist.parent.name}/{playlist.name}"
    try:
        lines = playlist.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        return [f"subtitles: {uri}: {exc}"]
    held = [float(ln[8:].split(",")[0]) for ln in lines if ln.startswith("#EXTINF:")]
    names = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    if len(held) != len(extinfs) or any(
        abs(a - b) > EXTINF_TOLERANCE_S for a, b in zip(held, extinfs, strict=False)
    ):
        return [f"subtitles: {uri} is not cut as its picture is"]
    for name in names:
        try:
            parse_vtt((playlist.parent / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            return [f"subtitles: {uri}: {name}: {exc}"]
    return []
