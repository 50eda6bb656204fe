"""A real ladder from the pinned ffmpeg, and each of its checks shown to fail on a ladder
broken in that one way."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from hevcq.errors import PermanentError, VerificationError
from hevcq.media.decide import decide
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.ladder import (
    MASTER,
    SEGMENT_S,
    MediaPlaylist,
    build_ladder,
    check_ladder,
    decode_rendition,
    fragments,
    open_fragmented,
    read_iframe_playlist,
    read_iframe_streams,
    read_master,
    read_media_playlist,
    split_init,
    track_defaults,
)
from hevcq.media.model import Skip
from hevcq.media.probe import probe
from hevcq.media.samples import make_clip
from hevcq.pools import load_farm, load_pool
from tests.e2e.cutclips import cut_short, late

pytestmark = pytest.mark.e2e
SECONDS = 13  # two whole segments and a short last one


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("ladder")
    src = make_clip(tmp / "src.mp4", width=640, height=360, seconds=SECONDS, fps=25)
    build_ladder(find_ffmpeg(), src, tmp / "hls", probe(src))
    return tmp / "hls"


def copy_of(ladder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(ladder, tmp_path / "hls"))


def test_a_ladder_has_every_rung_measured_and_aligned(ladder: Path) -> None:
    variants, audio = read_master(ladder / MASTER)
    assert [(v.width, v.height) for v in variants] == [(640, 360), (426, 240)]
    assert audio == "2/index.m3u8"
    for v in variants:
        assert v.codecs.startswith("avc1.64")  # H.264 High
        assert v.codecs.endswith(",mp4a.40.2")  # AAC-LC
        assert v.frame_rate == "25.000"
        assert v.bandwidth >= v.average_bandwidth > 0
        media = read_media_playlist(ladder / v.uri)
        assert [round(d, 3) for d, _ in media.segments] == [6.0, 6.0, 1.0]
        assert media.target_s == SEGMENT_S
    text = (ladder / MASTER).read_text()
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in text
    assert not (ladder / "ffmpeg-master.m3u8").exists()
    assert check_ladder(ladder) == []


def test_every_rung_has_an_i_frame_playlist_of_its_keyframes(ladder: Path) -> None:
    variants, _ = read_master(ladder / MASTER)
    streams = read_iframe_streams(ladder / MASTER)
    assert [s.uri for s in streams] == ["0/iframes.m3u8", "1/iframes.m3u8"]
    text = (ladder / MASTER).read_text()
    # after the variants, as Apple's examples list them
    assert text.index("#EXT-X-I-FRAME-STREAM-INF") > text.index(variants[-1].uri)
    for v, s in zip(variants, streams, strict=True):
        assert s.codecs == v.codecs.split(",")[0]  # the video alone: trick play fetches no audio
        assert (s.width, s.height) == (v.width, v.height)
        assert 0 < s.average_bandwidth <= s.bandwidth < v.bandwidth
        media = read_media_playlist(ladder / v.uri)
        iframes = read_iframe_playlist(ladder / s.uri)
        assert "#EXT-X-VERSION:7" in (ladder / s.uri).read_text()
        assert iframes.init == media.init
        assert split_init(media.init.read_bytes())[1] == b""  # no fragment left in the init
        # an IDR every 2 s, three to a 6 s segment, each in a fragment of its own
        assert [round(f.duration_s, 3) for f in iframes.frames] == [2.0] * 6 + [1.0]
        assert [f.segment.name for f in iframes.frames] == [
            *["seg_00000.m4s"] * 3,
            *["seg_00001.m4s"] * 3,
            "seg_00002.m4s",
        ]
        for f in iframes.frames:
            data = f.segment.read_bytes()
            assert data[f.offset + 4 : f.offset + 8] == b"moof"
            assert f.offset + f.length < len(data)  # the keyframe, not the rest of its GOP


def test_a_portrait_silent_phone_clip_gets_portrait_rungs_and_no_audio(tmp_path: Path) -> None:
    src = make_clip(
        tmp_path / "IMG.MOV", width=640, height=360, seconds=3, rotation=90, audio_streams=0
    )
    variants = build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))
    assert [(v.width, v.height) for v in variants] == [(360, 640), (240, 426)]
    assert all("mp4a" not in v.codecs for v in variants)
    assert "TYPE=AUDIO" not in (tmp_path / "hls" / MASTER).read_text()
    assert check_ladder(tmp_path / "hls") == []


def test_a_clip_shorter_than_half_a_second_has_a_target_duration_of_a_second(
    tmp_path: Path,
) -> None:
    """ffmpeg rounds its segments' longest duration (0.4 s) down to a target of 0."""
    src = make_clip(tmp_path / "blink.mp4", width=640, height=360, seconds=0.4)
    build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))
    for playlist in sorted((tmp_path / "hls").glob("*/*.m3u8")):
        assert "#EXT-X-TARGETDURATION:1\n" in playlist.read_text(), playlist
    assert check_ladder(tmp_path / "hls") == []


@pytest.mark.parametrize("seconds", [3.5, 4.5])
def test_a_clip_of_a_whole_and_a_half_seconds_has_the_target_its_segment_rounds_to(
    tmp_path: Path, seconds: float
) -> None:
    """105 frames at 30 fps: ffmpeg wrote ``#EXTINF:3.500000`` under a target of 3 (it
    rounds the duration it summed, a hair under 3.5), and the ladder of every such clip
    failed its own ``segment-duration`` check; 4.5 s passed it only by Python's rounding
    of halves to even, with a playlist a validator refuses."""
    src = make_clip(tmp_path / "clip.mp4", width=320, height=180, seconds=seconds, fps=30)
    build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))
    text = (tmp_path / "hls" / "0" / "index.m3u8").read_text()
    assert f"#EXTINF:{seconds:.6f}," in text
    assert f"#EXT-X-TARGETDURATION:{int(seconds) + 1}\n" in text
    assert check_ladder(tmp_path / "hls") == []


@pytest.mark.parametrize(
    ("sound", "lasts"),
    [
        ("late", 4.7),  # the sound starts 0.7 s after the picture
        ("gap", 4.0),  # a second of it missing
    ],
)
def test_a_ladders_sound_keeps_its_place_beside_the_picture(
    tmp_path: Path, sound: str, lasts: float
) -> None:
    """A fragmented MP4 keeps no start offset or gap of a track: the sound was moved to
    the picture's start (4.02 s of it from 0 where it runs to 4.7) or closed up over its
    gap, out of step from there on. Silence now fills both (``ladder.AUDIO_FROM_ZERO``)."""
    clip = make_clip(tmp_path / "clip.mp4", width=640, height=360, seconds=4, fps=30)
    src = tmp_path / "src.mkv"
    if sound == "late":
        late(clip, src, sound_s=0.7)
    else:
        gap = ["-c:v", "copy", "-af", "aselect='not(between(t,1,2))'", str(src)]
        subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(clip), *gap], check=True)
    build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))
    text = (tmp_path / "hls" / "2" / "index.m3u8").read_text()  # rungs 360p, 240p, then sound
    spans = [float(m) for m in re.findall(r"#EXTINF:([0-9.]+),", text)]
    assert sum(spans) == pytest.approx(lasts, abs=0.1)
    assert check_ladder(tmp_path / "hls") == []


@pytest.mark.parametrize(
    ("source_hz", "ladder_hz"), [(8000, 48000), (96000, 48000), (44100, 44100)]
)
def test_a_ladders_audio_is_at_a_rate_players_are_built_for(
    tmp_path: Path, source_hz: int, ladder_hz: int
) -> None:
    src = tmp_path / "voice.mov"
    subprocess.run(
        [
            *(find_ffmpeg(), "-loglevel", "error", "-f", "lavfi", "-i"),
            "testsrc2=size=320x240:rate=25:duration=2",
            *("-f", "lavfi", "-i", f"sine=duration=2:sample_rate={source_hz}"),
            *("-c:v", "libx264", "-c:a", "pcm_s16le", str(src)),
        ],
        check=True,
    )
    assert probe(src).audio[0].sample_rate == source_hz
    build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))
    audio = read_media_playlist(tmp_path / "hls" / "1" / "index.m3u8")
    assert probe(audio.init).audio[0].sample_rate == ladder_hz
    assert check_ladder(tmp_path / "hls") == []


def test_eleven_unnamed_channels_become_the_ladders_stereo_pair(tmp_path: Path) -> None:
    # A multitrack recorder's 11 channels in Matroska, which names no layout: swresample
    # cannot remix them at all, even to stereo, and the ladder failed.
    src = tmp_path / "stage.mkv"
    made = subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=s=320x180:r=12:d=2", "-f", "lavfi",
         "-i", "sine=d=2,pan=FL+FR+FC+LFE+BL+BR+FLC+FRC+BC+SL+SR|"
         + "|".join(f"c{i}=c0" for i in range(11)),
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le", str(src)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert probe(src).audio[0].channels == 11
    build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))
    assert check_ladder(tmp_path / "hls") == []
    _, audio_uri = read_master(tmp_path / "hls" / MASTER)
    assert audio_uri is not None
    init = read_media_playlist(tmp_path / "hls" / audio_uri).init
    with av.open(str(init)) as f:
        assert f.streams.audio[0].codec_context.channels == 2


def test_a_screen_recording_that_writes_frames_on_change_keeps_its_motion_smooth(
    tmp_path: Path,
) -> None:
    # 30 fps while something moves (the first 2 s of every 6), one frame a second while
    # the screen is still: 11 frames a second on average, and its ladder was made at 10,
    # so a scroll recorded at 30 played at 10.
    src = tmp_path / "screen.mp4"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", "testsrc2=size=320x180:rate=30:duration=12"]
    args += ["-vf", "select='lt(mod(t,6),2)+eq(mod(n,30),0)'", "-fps_mode", "vfr"]
    subprocess.run([*args, "-c:v", "libx264", "-preset", "ultrafast", str(src)], check=True)
    info = probe(src)
    assert info.main_video is not None
    assert info.main_video.fps is not None
    assert info.main_video.fps < 12
    variants = build_ladder(find_ffmpeg(), src, tmp_path / "hls", info)
    assert {v.frame_rate for v in variants} == {"30.000"}
    assert check_ladder(tmp_path / "hls") == []


def test_a_source_without_video_has_no_ladder(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "a.mp4", width=64, height=64, seconds=1)
    info = probe(src)
    silent = type(info)(info.format_name, info.duration_s, info.size_bytes, audio=info.audio)
    with pytest.raises(PermanentError, match="no video stream"):
        build_ladder(find_ffmpeg(), src, tmp_path / "hls", silent)


def _edit(path: Path, pattern: str, repl: str) -> None:
    text = path.read_text()
    changed = re.sub(pattern, repl, text, count=1)
    assert changed != text
    path.write_text(changed)


def test_a_declared_bandwidth_far_from_the_measured_one_fails(ladder: Path, tmp_path) -> None:
    hls = copy_of(ladder, tmp_path)
    _edit(hls / MASTER, r"BANDWIDTH=(\d+)", "BANDWIDTH=1000")
    problems = check_ladder(hls)
    assert any(p.startswith("bandwidth: 0/index.m3u8 declares peak 1000") for p in problems)


def test_codecs_other_than_the_init_segments_hold_fail(ladder: Path, tmp_path) -> None:
    hls = copy_of(ladder, tmp_path)
    _edit(hls / MASTER, r'CODECS="avc1\.[0-9a-f]+', 'CODECS="avc1.42e01e')
    assert any(p.startswith("codecs: 0/index.m3u8 declares avc1.42e01e") for p in check_ladder(hls))


def test_a_segment_longer_than_the_target_fails(ladder: Path, tmp_path) -> None:
    hls = copy_of(ladder, tmp_path)
    _edit(hls / "1" / "index.m3u8", r"#EXTINF:6\.0+,", "#EXTINF:7.9,")
    assert any(p.startswith("segment-duration: 1/seg_") for p in check_ladder(hls))


def test_a_truncated_segment_fails_to_decode(ladder: Path, tmp_path) -> None:
    hls = copy_of(ladder, tmp_path)
    seg = hls / "0" / "seg_00001.m4s"
    seg.write_bytes(seg.read_bytes()[: seg.stat().st_size // 3])
    problems = check_ladder(hls)
    assert any(p.startswith("decode: 0/index.m3u8") for p in problems), problems


def test_rungs_whose_segments_start_at_other_times_fail(ladder: Path, tmp_path) -> None:
    hls = copy_of(ladder, tmp_path)
    # One rung's second segment replaced by its first: the IDR times no longer line up.
    first, second = hls / "1" / "seg_00000.m4s", hls / "1" / "seg_00001.m4s"
    second.write_bytes(first.read_bytes())
    problems = check_ladder(hls)
    assert any(p.startswith("idr-alignment: 1/index.m3u8") for p in problems), problems


def _move_second_iframe(hls: Path, by: int) -> str:
    """Move the second I-frame range of rung 0 by ``by`` bytes; its new place."""
    path = hls / "0" / "iframes.m3u8"
    ranges = list(re.finditer(r"#EXT-X-BYTERANGE:(\d+)@(\d+)", path.read_text()))
    moved = int(ranges[1].group(2)) + by
    text = path.read_text()
    start, end = ranges[1].span(2)
    path.write_text(text[:start] + str(moved) + text[end:])
    return f"seg_00000.m4s@{moved}"


def test_an_i_frame_range_off_its_moof_fails(ladder: Path, tmp_path) -> None:
    hls = copy_of(ladder, tmp_path)
    where = _move_second_iframe(hls, 3)
    problems = check_ladder(hls)
    assert f"iframes: 0/iframes.m3u8: {where} does not begin at a moof box" in problems, problems


def test_an_i_frame_range_past_its_file_fails(ladder: Path, tmp_path) -> None:
    hls = copy_of(ladder, tmp_path)
    where = _move_second_iframe(hls, 10_000_000)
    problems = check_ladder(hls)
    assert any(p.startswith(f"iframes: 0/iframes.m3u8: {where} length") for p in problems)


def _first_sample_from_the_second(data: bytearray, moof: int) -> int:
    """Make the first sample of the fragment whose moof starts at ``moof`` the bytes of its
    second sample, a delta frame (the trun's data offset moved past the keyframe, the first
    size the second's); where that first sample now ends."""
    trun = data.index(b"trun", moof) - 4
    flags = int.from_bytes(data[trun + 9 : trun + 12], "big")
    assert flags & 0x1, "no data offset"
    assert flags & 0x200, "no sample sizes"
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    # header, version/flags, count, data offset, first-sample flags: then the samples
    size_at = trun + 20 + (4 if flags & 0x4 else 0) + 4 * fields.index(0x200)
    first = int.from_bytes(data[size_at : size_at + 4], "big")
    second_at = size_at + 4 * len(fields)
    second = int.from_bytes(data[second_at : second_at + 4], "big")
    offset = int.from_bytes(data[trun + 16 : trun + 20], "big", signed=True)
    data[trun + 16 : trun + 20] = (offset + first).to_bytes(4, "big", signed=True)
    data[size_at : size_at + 4] = second.to_bytes(4, "big")
    return moof + offset + first + second


def test_an_i_frame_that_is_no_keyframe_fails(ladder: Path, tmp_path) -> None:
    hls = copy_of(ladder, tmp_path)
    playlist = hls / "0" / "iframes.m3u8"
    frame = read_iframe_playlist(playlist).frames[1]
    data = bytearray(frame.segment.read_bytes())
    end = _first_sample_from_the_second(data, frame.offset)
    frame.segment.write_bytes(bytes(data))
    old = f"#EXT-X-BYTERANGE:{frame.length}@{frame.offset}"
    playlist.write_text(
        playlist.read_text().replace(old, f"#EXT-X-BYTERANGE:{end - frame.offset}@{frame.offset}")
    )
    problems = check_ladder(hls)
    where = f"seg_00000.m4s@{frame.offset}"
    assert f"iframes: 0/iframes.m3u8: {where} does not decode as a keyframe" in problems, problems


def test_a_master_without_a_rungs_i_frame_stream_fails(ladder: Path, tmp_path) -> None:
    hls = copy_of(ladder, tmp_path)
    _edit(hls / MASTER, r"#EXT-X-I-FRAME-STREAM-INF:[^\n]*1/iframes\.m3u8\"\n", "")
    problems = check_ladder(hls)
    assert problems == ["iframes: 1/index.m3u8 has no I-frame stream in the master playlist"]


def test_a_ladder_failing_a_check_is_refused_with_the_check_name(
    ladder: Path, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hevcq.media.ladder as lad  # noqa: PLC0415 - the module whose check is forced

    monkeypatch.setattr(lad, "check_ladder", lambda _d, **_: ["bandwidth: x", "codecs: y"])
    src = make_clip(tmp_path / "s.mp4", width=320, height=240, seconds=1)
    with pytest.raises(VerificationError, match=r"^ladder rejected: bandwidth: x \(and 1 more\)$"):
        build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))


def test_the_ladder_command_checks_and_refuses_in_one_line(ladder: Path, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "src.mp4", width=320, height=240, seconds=2)
    out = tmp_path / "out"
    done = _hevcq("ladder", str(src), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "320x240" in done.stdout
    assert "audio  Audio (default)" in done.stdout  # its one sound, no language stated
    assert check_ladder(out) == []
    assert (out / "poster.jpg").stat().st_size > 0
    again = _hevcq("ladder", str(src), "--out", str(out))  # never over an earlier ladder
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n")
    bad = _hevcq("ladder", str(notes), "--out", str(tmp_path / "other"))
    for refused in (again, bad):
        assert refused.returncode == 2
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "Traceback" not in refused.stderr
    assert "not an empty folder" in again.stderr
    assert "not a media file" in bad.stderr


@pytest.mark.parametrize("folder", ["new", "empty"])
def test_a_ladder_that_fails_leaves_its_folder_as_it_was(tmp_path: Path, folder: str) -> None:
    # The source is cut short: every rung is encoded, the master playlist written, then the
    # ladder is refused. A folder holding that master looked like a ladder to serve.
    src = cut_short(tmp_path, "upload.mp4")
    out = tmp_path / "out"
    if folder == "empty":
        out.mkdir()
    refused = _hevcq("ladder", str(src), "--out", str(out))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "source appears truncated" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    if folder == "new":
        assert not out.exists()
    else:
        assert list(out.iterdir()) == []


def test_a_ladder_stopped_half_made_leaves_no_folder(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "src.mp4", width=1280, height=720, seconds=20)
    out = tmp_path / "out"
    # As a terminal's Ctrl-C: SIGINT to the whole process group (ffmpeg included).
    proc = subprocess.Popen(
        [sys.executable, "-m", "hevcq", "ladder", str(src), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    try:
        deadline = time.monotonic() + 60
        while not (out.is_dir() and any(out.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert out.is_dir(), "the ladder never started"
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert not out.exists()


def _hevcq(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, "-m", "hevcq", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_hevc_and_av1_groups_follow_the_h264_group_with_codecs_from_their_init(
    tmp_path: Path,
) -> None:
    src = make_clip(tmp_path / "src.mp4", width=320, height=240, seconds=3)
    groups = ("av1", "hevc")
    variants = build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src), groups=groups)
    # H.264 first, then the groups as asked
    assert [v.codecs.split(",")[0][:4] for v in variants] == ["avc1", "av01", "hvc1"]
    assert variants[1].codecs.startswith("av01.0.")  # main profile
    assert variants[1].codecs.endswith("M.08,mp4a.40.2")  # main tier, 8-bit, AAC-LC
    assert variants[2].codecs.startswith("hvc1.1.6.L")  # Main profile, main tier
    assert check_ladder(tmp_path / "hls") == []  # the HEVC rung decodes in full here
    iframes = read_iframe_streams(tmp_path / "hls" / MASTER)
    assert [s.codecs[:4] for s in iframes] == ["avc1", "av01", "hvc1"]
    # x265's B-frames too: the first frame is shown at its decode time, zero.
    for v in variants:
        assert _first_shown(read_media_playlist(tmp_path / "hls" / v.uri)) == (0, 0)


def _first_shown(media: MediaPlaylist) -> tuple[int, int]:
    """A rendition's first decode time and its first sample's composition offset, as a
    player that ignores edit lists reads them."""
    first = fragments(media.segments[0][1].read_bytes(), track_defaults(media.init.read_bytes()))
    return first[0].start, first[0].composition


def test_every_track_is_shown_from_zero_without_an_edit_list(ladder: Path) -> None:
    # hls.js reads tfdt and trun and ignores edit lists: video with B-frames shown two
    # frames after its decode time put the picture 80 ms behind the sound on page loads
    # where the audio came first, and left the stream 80 ms longer than its last frame.
    variants, audio = read_master(ladder / MASTER)
    assert audio is not None
    for uri in [v.uri for v in variants] + [audio]:
        assert _first_shown(read_media_playlist(ladder / uri)) == (0, 0), uri


def test_rungs_that_reorder_to_other_depths_still_line_up(tmp_path: Path) -> None:
    # x264 reorders deeper at 1080p than at 720p and below. Segment starts are the times
    # a player shows them (tfdt plus composition offset), not libavformat's timestamps,
    # which shift each track by its own depth once composition offsets are negative.
    from benchmarks.clips import content_clip  # noqa: PLC0415 - the benchmark's own source

    src = content_clip("moderate", 0.5)
    variants = build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))
    assert [v.height for v in variants][:2] == [1080, 720]
    starts = {
        decode_rendition(read_media_playlist(tmp_path / "hls" / v.uri)).starts for v in variants
    }
    assert starts == {(0.0,)}


def test_a_rung_shown_after_its_decode_time_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hevcq.media.ladder as lad  # noqa: PLC0415 - the module whose muxer flags are forced

    monkeypatch.setattr(lad, "SEGMENT_MOVFLAGS", "frag_keyframe+skip_sidx")  # no negative CTS
    src = make_clip(tmp_path / "s.mp4", width=320, height=240, seconds=2, fps=25)
    with pytest.raises(
        VerificationError,
        match=r"^ladder rejected: presentation-start: 0/index.m3u8: its first frame is shown"
        r" 0\.080 s after its decode time",
    ):
        build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))


def test_every_frame_of_a_rendition_decodes_segment_by_segment_without_a_probe_decode(
    ladder: Path,
) -> None:
    media = read_media_playlist(ladder / "0" / "index.m3u8")
    decoded = decode_rendition(media)
    assert decoded.frames == SECONDS * 25
    first = decoded.starts[0]
    assert first is not None
    assert [round(s - first, 3) for s in decoded.starts if s is not None] == [0.0, 6.0, 12.0]
    data = media.init.read_bytes() + media.segments[0][1].read_bytes()
    with open_fragmented(data) as f:
        assert f.streams.video[0].codec_context.pix_fmt is None  # no frame decoded to probe
    with av.open(io.BytesIO(data)) as f:
        assert f.streams.video[0].codec_context.pix_fmt == "yuv420p"  # a probe that decodes


def test_a_source_cut_short_fails_as_such_not_as_a_short_ladder(tmp_path: Path) -> None:
    # ffmpeg ends a cut-short source as if it were whole: every rung came out 6 s long, the
    # checks passed, and the ladder counted as the video.
    src = cut_short(tmp_path, "upload.mp4")
    with pytest.raises(PermanentError, match=r"source appears truncated: declares 10\.00 s"):
        build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))


# Older sources an app's users upload, each as its kind of file holds it: (file name, the
# size that codec takes, its ffmpeg arguments). The hls and av1 pools take every one.
LEGACY_SOURCES = [
    ("camera.avi", "320x240", ["-c:v", "mjpeg", "-c:a", "pcm_s16le"]),
    ("tape.avi", "720x576", ["-c:v", "dvvideo", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le"]),
    ("disc.mpg", "352x288", ["-c:v", "mpeg1video", "-c:a", "mp2", "-f", "vcd"]),
    ("old.wmv", "320x240", ["-c:v", "wmv2", "-c:a", "wmav2"]),
    ("old7.wmv", "320x240", ["-c:v", "wmv1", "-c:a", "wmav2"]),
    ("divx.avi", "320x240", ["-c:v", "msmpeg4", "-c:a", "mp2"]),
    ("divx2.avi", "320x240", ["-c:v", "msmpeg4v2", "-c:a", "mp2"]),
    ("phone.3gp", "176x144", ["-c:v", "h263", "-c:a", "aac", "-ar", "16000"]),
    ("phone2.mov", "320x240", ["-c:v", "h263p", "-c:a", "aac"]),  # read back as h263
    ("flash.flv", "320x240", ["-c:v", "flv", "-c:a", "aac"]),
    ("free.mkv", "320x240", ["-c:v", "libtheora", "-c:a", "libvorbis"]),
    ("sorenson.mov", "320x240", ["-c:v", "svq1", "-c:a", "pcm_s16le"]),
    ("cinepak.avi", "320x240", ["-c:v", "cinepak", "-c:a", "pcm_s16le"]),  # RGB
    # Animations and screen recordings, RGB: no sound in a GIF or an APNG.
    ("anim.gif", "320x240", ["-c:v", "gif", "-an"]),
    ("anim.apng", "320x240", ["-c:v", "apng", "-an"]),  # its file says no duration
    ("screen.mov", "320x240", ["-c:v", "qtrle", "-c:a", "pcm_s16le"]),
    ("frames.mov", "320x240", ["-c:v", "png", "-c:a", "aac"]),
    # Editors' masters: 4:2:2, 10-bit for CineForm and v210.
    ("edit.mov", "320x240", ["-c:v", "dnxhd", "-profile:v", "dnxhr_lb", "-pix_fmt", "yuv422p"]),
    ("cineform.mov", "320x240", ["-c:v", "cfhd", "-c:a", "pcm_s16le"]),
    ("master.mov", "320x240", ["-c:v", "v210", "-c:a", "pcm_s24le"]),
    # Lossless captures, and uncompressed RGB.
    ("capture.avi", "320x240", ["-c:v", "utvideo", "-c:a", "pcm_s16le"]),
    ("archive.mkv", "320x240", ["-c:v", "ffv1", "-c:a", "flac"]),
    ("capture2.avi", "320x240", ["-c:v", "huffyuv", "-c:a", "pcm_s16le"]),
    ("capture3.avi", "320x240", ["-c:v", "ffvhuff", "-c:a", "pcm_s16le"]),
    ("raw.avi", "320x240", ["-c:v", "rawvideo", "-pix_fmt", "bgr24", "-c:a", "pcm_s16le"]),
]


@pytest.mark.parametrize(("name", "size", "codec"), LEGACY_SOURCES)
def test_an_older_kind_of_source_is_taken_and_made_into_a_checked_ladder(
    tmp_path: Path, name: str, size: str, codec: list[str]
) -> None:
    src = tmp_path / name
    args = [find_ffmpeg(), "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", f"testsrc2=size={size}:rate=25:duration=1"]
    args += ["-f", "lavfi", "-i", "sine=duration=1:sample_rate=44100"]
    subprocess.run([*args, *codec, "-shortest", str(src)], check=True)
    info = probe(src)
    farm = load_farm()
    optional = load_pool(Path(__file__).parents[2] / "workers" / "optional" / "av1.yaml")
    for pool in (farm["hls"], optional):
        assert not isinstance(decide(info, pool, name), Skip), (pool.name, info.main_video)
    variants = build_ladder(find_ffmpeg(), src, tmp_path / "hls", info)  # checked, or raises
    assert variants
    assert (tmp_path / "hls" / MASTER).is_file()


def subtitled_past_the_end(dest: Path) -> Path:
    """A 2 s clip with sound whose one subtitle runs from 1 s to 3.5 s: as long as the
    file in Matroska, in MP4 the file's length leaves it out."""
    cue = dest.with_suffix(".srt")
    cue.write_text("1\n00:00:01,000 --> 00:00:03,500\nThe last line\n", encoding="utf-8")
    args = [find_ffmpeg(), "-loglevel", "error", "-f", "lavfi", "-i"]
    args += ["testsrc2=size=320x240:rate=25:duration=2", "-f", "lavfi", "-i", "sine=duration=2"]
    args += ["-i", str(cue), "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264"]
    args += ["-preset", "ultrafast", "-c:a", "aac"]
    args += ["-c:s", "mov_text" if dest.suffix == ".mp4" else "srt", str(dest)]
    subprocess.run(args, check=True)
    return dest


def test_a_subtitle_that_runs_past_the_picture_is_no_sign_of_a_cut_source(tmp_path) -> None:
    """Its Matroska file lasts 3.5 s and its picture 2 s: the ladder (no subtitles) was
    refused as made from a source cut short."""
    src = subtitled_past_the_end(tmp_path / "talk.mkv")
    assert probe(src).duration_s == pytest.approx(3.5, abs=0.05)
    assert build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))


def test_a_source_cut_short_is_still_named_so_whatever_its_subtitles(tmp_path) -> None:
    whole = subtitled_past_the_end(tmp_path / "whole.mkv")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(PermanentError, match="source appears truncated"):
        build_ladder(find_ffmpeg(), cut, tmp_path / "hls", probe(cut))
