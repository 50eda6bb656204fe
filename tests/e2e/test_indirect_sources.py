"""A source is read by itself, never as directions to other inputs
(``hevcq.media.demuxers``).

The attacker uploads a few lines of text as ``clip.mp4``: a DASH manifest, a concat script
or an HLS playlist naming a video elsewhere on the worker's disk (another user's, the
library owner's). libavformat picks its demuxer from the content, so without the
whitelist the ffmpeg binary follows the manifest and the output, which the uploader can
fetch, shows the private video; PyAV's probe takes a concat script of two files for a
video of both. Each test here fails without the whitelist.
"""

from __future__ import annotations

import resource
import subprocess
import threading
from pathlib import Path

import av
import pytest

from hevcq.errors import PermanentError
from hevcq.media.demuxers import INDIRECT, pyav_allowed, read_alone
from hevcq.media.ffmpeg import find_ffmpeg, run_ffmpeg
from hevcq.media.probe import probe

pytestmark = pytest.mark.e2e

PRIVATE_SIZE = (176, 144)  # a size no source here has, to recognise the private video


def _ffmpeg(*args: str) -> None:
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Someone else's video on the worker's disk."""
    path = tmp_path_factory.mktemp("someone-else") / "private.mp4"
    w, h = PRIVATE_SIZE
    _ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=25:duration=2"),
        *("-c:v", "libx264", "-preset", "ultrafast", str(path)),
    )
    return path


def _manifest(private: Path) -> str:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S"
     profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" minBufferTime="PT2S">
 <Period>
  <AdaptationSet mimeType="video/mp4">
   <Representation id="1" bandwidth="100000" width="176" height="144" codecs="avc1.64000b">
    <BaseURL>{private}</BaseURL>
   </Representation>
  </AdaptationSet>
 </Period>
</MPD>
"""


def test_a_dash_manifest_never_makes_ffmpeg_read_the_video_it_names(
    tmp_path: Path, private: Path
) -> None:
    upload = tmp_path / "source"  # as a worker names the object it downloaded
    upload.write_text(_manifest(private))
    out = tmp_path / "output.mp4"
    args = [find_ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    args += ["-i", f"file:{upload}", "-map", "0", "-c", "copy", f"file:{out}"]
    with pytest.raises(PermanentError) as refused:
        run_ffmpeg(args, on_progress=None, stop=threading.Event(), stall_timeout_s=30)
    if out.exists():
        with av.open(str(out)) as c:
            shown = [(s.codec_context.width, s.codec_context.height) for s in c.streams.video]
        assert PRIVATE_SIZE not in shown, "the output shows the video the manifest named"
    # One line, and not the kilobytes of the whitelist itself.
    assert "whitelist" in str(refused.value)
    assert len(str(refused.value)) < 600


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("clip.mp4", "ffconcat version 1.0\nfile private.mp4\nfile private.mp4\n", "concat"),
        ("clip.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nprivate.mp4\n", "hls"),
        ("clip.mp4", "dash", "dash"),
    ],
    ids=["concat", "hls", "dash"],
)
def test_a_probe_refuses_a_file_that_names_other_inputs_in_one_line(
    tmp_path: Path, private: Path, name: str, text: str, kind: str
) -> None:
    beside = tmp_path / "private.mp4"  # where a relative name resolves
    beside.write_bytes(private.read_bytes())
    path = tmp_path / name
    path.write_text(_manifest(beside) if text == "dash" else text)
    with pytest.raises(PermanentError) as refused:
        probe(path)
    assert str(refused.value) == (
        f"not a media file: {INDIRECT[kind]}, which names other inputs (never followed)"
    )


def test_a_concat_script_naming_itself_is_refused_before_it_opens_anything(
    tmp_path: Path,
) -> None:
    path = tmp_path / "source"
    path.write_text("ffconcat version 1.0\nfile source\nfile source\n")
    # Followed, it opens itself until the process has no descriptor left: a worker's
    # heartbeat and its other slots would fail with it. Refused, it opens the file once.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
        with pytest.raises(PermanentError) as refused:
            probe(path)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert "a concat script" in str(refused.value)
    assert "Too many open files" not in str(refused.value)


def test_containers_people_store_video_in_still_open(tmp_path: Path) -> None:
    allowed = set(pyav_allowed().split(","))
    for name in ("mov", "mp4", "matroska", "webm", "mpegts", "mpeg", "avi", "flv", "asf"):
        assert name in allowed, name
    assert not allowed & INDIRECT.keys()
    clip = tmp_path / "clip.mkv"
    _ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=1"),
        *("-c:v", "libx264", "-preset", "ultrafast", str(clip)),
    )
    assert probe(clip).main_video is not None


def test_the_whitelist_goes_before_every_file_input_and_no_other() -> None:
    args = ["ffmpeg", "-ss", "1", "-i", "file:/a", "-f", "lavfi", "-i", "sine", "-i", "file:/b"]
    got = read_alone(args)
    wl = pyav_allowed()
    assert got == [
        *("ffmpeg", "-ss", "1", "-format_whitelist", wl, "-i", "file:/a"),
        *("-f", "lavfi", "-i", "sine", "-format_whitelist", wl, "-i", "file:/b"),
    ]
