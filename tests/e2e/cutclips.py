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
