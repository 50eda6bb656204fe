"""Posters from real clips: past a fade-in, upright, never enlarged, one line for a file
that is not a video."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import av
import pytest

from hevcq.errors import InterruptedJob, PermanentError
from hevcq.media.ffargs import stated_colours
from hevcq.media.ffmpeg import Watch, find_ffmpeg
from hevcq.media.poster import (
    DARKEST,
    JPEG_DECODE_S_PER_S,
    _sampled,
    grey_stats,
    jpeg_stall_s,
    make_poster,
    shown_grey,
)
from hevcq.media.probe import frame_colours
from hevcq.media.samples import make_clip
from tests.e2e.cutclips import cover_first, cut_short

pytestmark = pytest.mark.e2e


def _size(jpeg: Path) -> tuple[int, int]:
    with av.open(str(jpeg)) as f:
        ctx = f.streams.video[0].codec_context
        assert ctx.name == "mjpeg"
        return ctx.width, ctx.height


def test_a_clip_fading_in_from_black_gets_a_lit_frame(tmp_path: Path) -> None:
    src = tmp_path / "fade.mp4"
    subprocess.run(
        [
            find_ffmpeg(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=8,fade=in:st=0:d=4",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            str(src),
        ],
        check=True,
    )
    chosen = make_poster(find_ffmpeg(), src, tmp_path / "poster.jpg")
    assert chosen.mean >= DARKEST
    assert chosen.time_s >= 0.8  # never the first tenth
    assert _size(tmp_path / "poster.jpg") == (640, 360)


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("overlay.mov", ["-c:v", "png"]),
        # VP8 and VP9 keep the alpha beside each picture, which libvpx alone decodes
        ("sticker.webm", ["-c:v", "libvpx-vp9", "-b:v", "1M", "-auto-alt-ref", "0"]),
        ("sticker8.webm", ["-c:v", "libvpx", "-b:v", "1M", "-auto-alt-ref", "0"]),
        # HEVC with Alpha keeps it in a second layer, which the binary alone decodes
        ("layered.mov", ["-c:v", "libx265", "-tag:v", "hvc1", "-preset", "ultrafast"]),
    ],
)
def test_a_clip_that_starts_transparent_gets_a_frame_of_its_opaque_part(
    tmp_path: Path, name: str, codec: list[str]
) -> None:
    """Its first half hides a detailed pattern under an alpha of 0; laid over black, as the
    poster is, that half is black. Judged by its hidden colours, the poster was black."""
    src = tmp_path / name
    hidden = "testsrc2=s=320x240:r=10:d=2,format=rgba,colorchannelmixer=aa=0[a]"
    shown = "color=c=0x707070:s=320x240:r=10:d=2,drawbox=x=100:y=80:w=120:h=80:c=0x909090:t=fill"
    graph = f"{hidden};{shown},format=rgba[b];[a][b]concat=n=2:v=1:a=0,format=yuva420p"
    if name == "overlay.mov":
        graph = graph.replace("format=yuva420p", "format=rgba")
    subprocess.run(
        [find_ffmpeg(), "-loglevel", "error", "-filter_complex", graph, *codec, str(src)],
        check=True,
    )
    chosen = make_poster(find_ffmpeg(), src, tmp_path / "poster.jpg")
    assert chosen.time_s >= 2.0, chosen
    with av.open(str(tmp_path / "poster.jpg")) as f:
        grey = bytes(next(f.decode(video=0)).reformat(format="gray").planes[0])
    assert sum(grey) / len(grey) >= DARKEST


def test_a_portrait_phone_clip_gets_an_upright_poster_within_640(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "IMG.MOV", width=1280, height=720, seconds=2, rotation=90)
    make_poster(find_ffmpeg(), src, tmp_path / "poster.jpg")
    assert _size(tmp_path / "poster.jpg") == (360, 640)


def test_a_small_clip_is_not_enlarged(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "s.mp4", width=320, height=240, seconds=1)
    make_poster(find_ffmpeg(), src, tmp_path / "poster.jpg")
    assert _size(tmp_path / "poster.jpg") == (320, 240)


@pytest.mark.parametrize("size", ["2x2", "4x6"])
def test_a_picture_too_small_for_the_deinterlacer_still_gets_a_poster(
    tmp_path: Path, size: str
) -> None:
    """The deinterlacer refuses planes under 3 columns or 4 lines, even on progressive
    frames it would pass through: a 2x2 clip's ladder failed on its poster."""
    src = tmp_path / "tiny.mp4"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", f"color=c=red:s={size}:r=25", "-t", "1", "-c:v", "libx264"]
    subprocess.run([*args, "-pix_fmt", "yuv420p", str(src)], check=True)
    make_poster(find_ffmpeg(), src, tmp_path / "poster.jpg")
    assert _size(tmp_path / "poster.jpg") == tuple(int(n) for n in size.split("x"))


def test_a_clip_of_one_frame_gets_that_frame(tmp_path: Path) -> None:
    src = tmp_path / "still.mp4"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", "testsrc2=size=320x240", "-frames:v", "1", "-c:v", "libx264", str(src)]
    subprocess.run(args, check=True)
    chosen = make_poster(find_ffmpeg(), src, tmp_path / "poster.jpg")
    assert chosen.time_s < 0.1
    assert _size(tmp_path / "poster.jpg") == (320, 240)


def test_a_file_that_is_not_a_video_gets_no_poster(tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("meeting notes\n")
    with pytest.raises(PermanentError, match="not a media file"):
        make_poster(find_ffmpeg(), notes, tmp_path / "poster.jpg")
    assert not (tmp_path / "poster.jpg").exists()


def _grey_mean(jpeg: Path) -> float:
    with av.open(str(jpeg)) as f:
        frame = next(f.decode(video=0))
        plane = frame.reformat(width=64, height=36, format="gray").planes[0]
        rows = bytes(plane)
        pixels = b"".join(rows[y * plane.line_size : y * plane.line_size + 64] for y in range(36))
    return sum(pixels) / len(pixels)


def _recording(dest: Path, *, gop: int, clock_at: float = 0.0, bframes: int = 0) -> Path:
    """An MPEG-TS recording: 3 s of black, then 5 s of picture; keyframes ``gop`` frames
    apart, ``bframes`` B-frames between references; its clock starting at ``clock_at``
    seconds, as a broadcast's does."""
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error"]
    args += ["-f", "lavfi", "-i", "color=black:size=640x360:rate=25:duration=3"]
    args += ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=5"]
    args += ["-filter_complex", "[0][1]concat=n=2:v=1", "-c:v", "libx264", "-preset", "ultrafast"]
    args += ["-g", str(gop), "-bf", str(bframes)]
    args += ["-output_ts_offset", str(clock_at), "-f", "mpegts"]
    subprocess.run([*args, str(dest)], check=True)
    return dest


def test_a_recording_whose_clock_starts_late_gets_a_lit_frame(tmp_path: Path) -> None:
    # A transport stream's timestamps start where the broadcast's clock was: sampled on
    # that clock, every sample was the first (black) frame, and the JPEG, taken where
    # -ss counts from the file's start, was black too.
    src = _recording(tmp_path / "news.ts", gop=25, clock_at=1000.0)
    chosen = make_poster(find_ffmpeg(), src, tmp_path / "poster.jpg")
    assert chosen.mean >= DARKEST
    assert 3.0 <= chosen.time_s <= 8.0  # counted from the file's start
    assert _grey_mean(tmp_path / "poster.jpg") >= DARKEST


@pytest.mark.parametrize("bframes", [0, 3])
def test_a_recording_with_one_keyframe_gets_a_lit_poster(tmp_path: Path, bframes: int) -> None:
    # No index and one keyframe: a seek lands where nothing decodes. Every sample used to
    # be skipped past the first second, then ffmpeg's own seek wrote nothing and the
    # ladder job failed on its poster. With B-frames (as a camera's H.264 has), the keyframe
    # is decoded before its own time: a seek to that time landed one packet past it, so
    # the last try, from the start, decoded nothing either.
    src = _recording(tmp_path / "camera.ts", gop=1000, clock_at=1.4, bframes=bframes)
    chosen = make_poster(find_ffmpeg(), src, tmp_path / "poster.jpg")
    assert chosen.mean >= DARKEST
    assert chosen.time_s >= 3.0
    assert _grey_mean(tmp_path / "poster.jpg") >= DARKEST


def _one_keyframe(dest: Path, *, gop: int, fmt: str, bframes: int = 0) -> Path:
    """20 s of 25 fps picture fading in from black over all of it, keyframes ``gop``
    frames apart."""
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", "testsrc2=size=320x180:rate=25:duration=20,fade=in:st=0:d=20"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop), "-bf", str(bframes)]
    args += ["-x264-params", "scenecut=0", "-f", fmt]
    subprocess.run([*args, str(dest)], check=True)
    return dest


@pytest.mark.parametrize(
    ("name", "fmt", "bframes"),
    [("browser.mp4", "mp4", 0), ("browser.mkv", "matroska", 0), ("camera.ts", "mpegts", 3)],
)
def test_a_recording_with_one_keyframe_is_decoded_once_across_its_samples(
    tmp_path: Path, name: str, fmt: str, bframes: int
) -> None:
    # Each of the nine samples was decoded from the one keyframe: 4.5 times the video (a
    # 5-minute 1080p recording took 261 s for its poster). The decode now goes on from one
    # sample to the next; the frames, and the JPEG of the one chosen, are the same.
    src = _one_keyframe(tmp_path / name, gop=100_000, fmt=fmt, bframes=bframes)
    sampled = _sampled(src)
    up_to_last = 0.9 * 20 * 25  # packets up to the last sample
    # (and in the stream no seek lands on a keyframe in, the first sample's seek that
    # decoded nothing: two seconds of packets)
    assert up_to_last <= sampled.packets_decoded <= up_to_last + 2 * 25 + 20
    assert [round(c.time_s) for c in sampled.candidates] == list(range(2, 20, 2))
    dense = _sampled(_one_keyframe(tmp_path / f"dense.{fmt}", gop=25, fmt=fmt))
    for one, each in zip(sampled.candidates, dense.candidates, strict=True):
        assert one.mean == pytest.approx(each.mean, abs=3)
    chosen = make_poster(find_ffmpeg(), src, tmp_path / "poster.jpg")
    assert chosen.time_s == pytest.approx(18.0, abs=0.1)  # the brightest, fading in
    assert chosen.lead_s == pytest.approx(18.0, abs=0.5)  # its JPEG decodes from the start
    # The JPEG is the frame scored: a second off is about 6 grey levels off.
    assert _grey_mean(tmp_path / "poster.jpg") == pytest.approx(chosen.mean, abs=3)


def test_a_video_with_keyframes_close_together_is_still_sampled_by_seeking(
    tmp_path: Path,
) -> None:
    # Going on from the previous sample would decode a tenth of the video each time.
    src = _one_keyframe(tmp_path / "phone.mp4", gop=25, fmt="mp4")
    assert _sampled(src).packets_decoded <= 9 * 26


@pytest.mark.parametrize(("name", "encoder", "fmt"), [("cam01.h264", "libx264", "h264"),
                                                   ("cam02.hevc", "libx265", "hevc")])  # fmt: skip
def test_a_raw_elementary_stream_gets_a_poster(
    tmp_path: Path, name: str, encoder: str, fmt: str
) -> None:
    # A security camera's recording as a bare H.264 or HEVC stream: its demuxer refuses
    # every seek, so every sample failed and the hls job with it ("no frame decodes for
    # a poster"). Its frames are read in order; the binary times them as they were timed.
    src = tmp_path / name
    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=size=320x240:rate=25:duration=4,fade=in:st=0:d=4",
         "-c:v", encoder, "-preset", "ultrafast", "-f", fmt, str(src)],
        check=True,
    )  # fmt: skip
    chosen = make_poster(find_ffmpeg(), src, tmp_path / "poster.jpg")
    assert 0.4 <= chosen.time_s < 4
    assert chosen.mean >= DARKEST
    assert _size(tmp_path / "poster.jpg") == (320, 240)
    with av.open(str(tmp_path / "poster.jpg")) as f:
        mean, _ = grey_stats(shown_grey(next(f.decode(video=0))))
    # The JPEG is the frame scored, not an earlier, darker one of the fade.
    assert mean == pytest.approx(chosen.mean, abs=3)


def test_a_source_cut_short_gets_a_poster_from_what_is_there(tmp_path: Path) -> None:
    # Samples past the cut raise in the decoder; they are skipped, not the whole poster.
    src = cut_short(tmp_path, "upload.mp4", seconds=10.0, keep=0.6)
    chosen = make_poster(find_ffmpeg(), src, tmp_path / "poster.jpg")
    assert 1.0 <= chosen.time_s <= 6.0
    assert _grey_mean(tmp_path / "poster.jpg") >= DARKEST


def test_a_source_whose_cover_comes_first_gets_a_poster_of_its_video(tmp_path: Path) -> None:
    src = cover_first(tmp_path, "tagged.mp4")
    with av.open(str(src)) as container:  # the red cover is stream 0
        assert container.streams[0].disposition & av.stream.Disposition.attached_pic
    make_poster(find_ffmpeg(), src, tmp_path / "poster.jpg")
    assert _size(tmp_path / "poster.jpg") == (320, 180)  # the video's, not the cover's


def test_a_transparent_webm_is_sampled_with_the_colours_its_container_states(
    tmp_path: Path,
) -> None:
    """libvpx decodes the candidates of a VP9 with alpha; a decoder made apart from the
    stream knew only the bitstream's colours, and the poster lost the container's."""
    src = tmp_path / "tagged.webm"
    args = [find_ffmpeg(), "-loglevel", "error", "-f", "lavfi"]
    tagged = "setparams=color_primaries=bt470bg:color_trc=bt709"  # the container's alone
    args += ["-i", f"testsrc2=s=320x240:r=10:d=1,format=yuva420p,{tagged}"]
    args += ["-c:v", "libvpx-vp9", "-auto-alt-ref", "0"]
    subprocess.run([*args, str(src)], check=True)
    with av.open(str(src)) as f:
        own = next(f.decode(video=0))  # libavcodec's VP9: no alpha, the container's colours
    sampled = _sampled(src)
    assert sampled.alpha_decoder == "libvpx-vp9"
    assert sampled.colours == stated_colours(frame_colours(own), 240)


def test_the_jpegs_run_may_take_as_long_as_decoding_to_its_frame_needs() -> None:
    # It had a fixed 120 s: a browser's 20-minute recording with one keyframe, whose JPEG
    # decodes from the start to the frame chosen, failed its poster on every try.
    assert jpeg_stall_s(0.0, 300.0) == 300.0  # the worker's stall limit at least
    assert jpeg_stall_s(1800.0, 300.0) == JPEG_DECODE_S_PER_S * 1800.0
    assert JPEG_DECODE_S_PER_S * 240 > 26 * 15  # 240 s of 1080p took 26 s; 8K ~15x slower


def test_a_poster_stops_when_its_job_is_stopped(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "s.mp4", width=160, height=90, seconds=1)
    slow = tmp_path / "ffmpeg"
    slow.write_text("#!/bin/sh\nsleep 60\n")
    slow.chmod(0o755)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(InterruptedJob):
        make_poster(str(slow), src, tmp_path / "p.jpg", watch=Watch(stop))
    assert time.monotonic() - started < 10
