"""Sources damaged the way real ones are, for the tests of what is made from them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hevcq.media.ffmpeg import find_ffmpeg


def cut_short(tmp_path: Path, name: str, seconds: float = 10.0, keep: float = 0.6) -> Path:
    """An MP4 with its index first (as cameras and web uploads write it), cut off after
    ``keep`` of its bytes: an interrupted copy. Its header still declares ``seconds``."""
    whole = tmp_path / f"whole-{name}"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"]
    args += [f"testsrc2=size=320x180:rate=24:duration={seconds}", "-c:v", "libx264"]
    args += ["-preset", "ultrafast", "-movflags", "+faststart", str(whole)]
    subprocess.run(args, check=True)
    data = whole.read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[: int(len(data) * keep)])
    return cut


def cover_first(tmp_path: Path, name: str, seconds: float = 3.0) -> Path:
    """An MP4 with sound and a cover whose metadata (``udta``, where the cover lives)
    precedes its tracks in the index, as some taggers write it: the cover is then the
    file's stream 0, before its video. The red cover is larger than the video."""
    cover = tmp_path / f"cover-{name}.jpg"
    run = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"]
    subprocess.run([*run, "color=red:size=480x720", "-frames:v", "1", str(cover)], check=True)
    tagged = tmp_path / f"tagged-{name}"
    args = [*run, f"testsrc2=size=320x180:rate=24:duration={seconds}", "-f", "lavfi"]
    args += ["-i", f"sine=duration={seconds}", "-i", str(cover), "-map", "0", "-map", "1"]
    args += ["-map", "2", "-c:v:0", "libx264", "-preset", "ultrafast", "-c:a", "aac"]
    args += ["-c:v:1", "copy", "-disposition:v:1", "attached_pic", str(tagged)]
    subprocess.run(args, check=True)
    data = tagged.read_bytes()
    moov = _atom(data, 0, len(data), b"moov")
    start, size = moov
    kids = _atoms(data, start + 8, start + size)
    first = [k for k in kids if k[0] == b"mvhd"] + [k for k in kids if k[0] == b"udta"]
    order = first + [k for k in kids if k not in first]
    body = b"".join(data[at : at + length] for _, at, length in order)
    # The index follows the media here, so moving boxes inside it moves no sample.
    assert start > _atom(data, 0, len(data), b"mdat")[0]
    dest = tmp_path / name
    dest.write_bytes(data[: start + 8] + body + data[start + size :])
    return dest


def _atoms(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    found, at = [], start
    while at < end:
        length = int.from_bytes(data[at : at + 4], "big")
        found.append((data[at + 4 : at + 8], at, length))
        at += length
    return found


def _atom(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int]:
    return next((at, length) for k, at, length in _atoms(data, start, end) if k == kind)


def late(clip: Path, out: Path, *, picture_s: float = 0.0, sound_s: float = 0.0) -> Path:
    """``clip`` remuxed, nothing encoded, with its picture and its sound starting that
    many seconds after the file does: a picture after its sound (a recording whose first
    frame comes late, an MP4's B-frame delay without an edit list, an MPEG-TS recording)
    or a sound after its picture."""
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-itsoffset", str(picture_s), "-i", str(clip)]
    args += ["-itsoffset", str(sound_s), "-i", str(clip)]
    args += ["-map", "0:v", "-map", "1:a", "-c", "copy", str(out)]
    subprocess.run(args, check=True)
    return out
