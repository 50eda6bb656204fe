"""A still picture is refused as one, whatever its name; animations and videos of one
frame are still videos (``hevcq.media.probe``).

Before, a photo uploaded as ``clip.mp4`` was read by libavformat's picture demuxers and
made into a one-frame HLS ladder and a 40 ms WebM, and the same photo named ``.jpg`` was
refused as "not a media file: Invalid argument".
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from hevcq.errors import PermanentError
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.probe import probe

pytestmark = pytest.mark.e2e

# name: (extra ffmpeg output arguments, what the reason calls it)
STILLS = {
    "photo.jpg": ([], "JPEG"),
    "drawing.png": ([], "PNG"),
    "still.gif": ([], "GIF"),
    "photo.webp": (["-c:v", "libwebp"], "WebP"),
    "scan.tiff": ([], "TIFF"),
    "paint.bmp": ([], "BMP"),
    "photo.avif": (["-c:v", "libaom-av1", "-still-picture", "1", "-cpu-used", "8"], "AVIF"),
}


def make_picture(dest: Path, name: str, extra: Sequence[str] = (), frames: int = 1) -> Path:
    """``frames`` pictures of a test pattern written as ``dest/name`` (its format by its
    suffix, ``extra`` output options)."""
    out = dest / name
    pattern = ["-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=10"]
    subprocess.run(
        [find_ffmpeg(), *pattern, "-frames:v", str(frames), *extra, str(out)], check=True
    )
    return out


@pytest.fixture(scope="module")
def stills(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dest = tmp_path_factory.mktemp("stills")
    return {name: make_picture(dest, name, extra) for name, (extra, _) in STILLS.items()}


@pytest.mark.parametrize("name", sorted(STILLS))
def test_a_still_picture_is_not_a_video_under_its_own_name(
    stills: dict[str, Path], name: str
) -> None:
    with pytest.raises(PermanentError) as refused:
        probe(stills[name])
    assert str(refused.value) == f"not a video: a still picture ({STILLS[name][1]})"


@pytest.mark.parametrize("name", sorted(STILLS))
def test_a_still_picture_named_as_a_video_is_not_one(
    stills: dict[str, Path], name: str, tmp_path: Path
) -> None:
    disguised = tmp_path / "clip.mp4"
    shutil.copyfile(stills[name], disguised)
    with pytest.raises(PermanentError) as refused:
        probe(disguised)
    assert str(refused.value) == f"not a video: a still picture ({STILLS[name][1]})"


@pytest.mark.parametrize(
    ("name", "extra", "frames"),
    [
        ("animation.gif", [], 5),
        ("animation.apng", ["-f", "apng"], 5),
        ("two.gif", [], 2),
        # One frame in a video container is a video someone made (a title card).
        ("one-frame.mp4", ["-c:v", "libx264"], 1),
    ],
)
def test_animations_and_one_frame_videos_are_videos(
    tmp_path: Path, name: str, extra: list[str], frames: int
) -> None:
    info = probe(make_picture(tmp_path, name, extra, frames))
    assert info.main_video is not None
