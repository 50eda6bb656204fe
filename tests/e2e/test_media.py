"""The media core with the real ffmpeg and PyAV, on tiny generated clips."""

from __future__ import annotations

import dataclasses
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypedDict

import av
import pytest

from hevcq.errors import (
    ConfigError,
    InterruptedJob,
    PermanentError,
    VerificationError,
)
from hevcq.library.quarantine import ReplaceRefused, verify_replacement
from hevcq.media import probe as probing
from hevcq.media.decide import decide
from hevcq.media.ffargs import build_args
from hevcq.media.ffmpeg import PopenProcess, find_ffmpeg, run_ffmpeg
from hevcq.media.model import EncodePlan, MediaInfo, Skip
from hevcq.media.probe import _first_frame, probe
from hevcq.media.progress import Progress
from hevcq.media.samples import make_clip, make_sample_library
from hevcq.media.streamcheck import StreamCheck, StreamDecoder
from hevcq.media.verify import verify_output
from hevcq.pools import load_farm, load_pool
from tests.e2e.bitmapsubs import write_pgs
from tests.e2e.test_ladder import subtitled_past_the_end

pytestmark = pytest.mark.e2e

FARM = load_farm()


class ClipSize(TypedDict):
    """The size arguments of make_clip."""

    width: int
    height: int
    seconds: float
    fps: int


TINY: ClipSize = {"width": 160, "height": 120, "seconds": 0.5, "fps": 12}


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    try:
        return find_ffmpeg()
    except ConfigError:
        if os.environ.get("CI"):
            raise
        pytest.skip("no ffmpeg on this machine")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


def plan_for(src: Path, pool: str) -> EncodePlan:
    """The pool's plan for ``src``, with the fastest preset for speed."""
    plan = decide(probe(src), FARM[pool], src.name)
    assert isinstance(plan, EncodePlan), plan
    return dataclasses.replace(plan, preset="ultrafast")


def encode_teed(
    ffmpeg: str, src: Path, plan: EncodePlan, dst: Path, stream: Path, *, frames: int | None = None
) -> tuple[StreamCheck, list[Progress]]:
    """ffmpeg writing ``dst`` and the raw video copy while it is decoded (all of it, or its
    first ``frames``), as a worker does."""
    seen: list[Progress] = []
    decoder = StreamDecoder(stream, frames=frames)
    decoder.start()
    try:
        run_ffmpeg(
            build_args(ffmpeg, src, dst, plan, threads=2, stream=stream),
            on_progress=seen.append,
            stop=threading.Event(),
            stall_timeout_s=60,
            output=dst,
        )
    except BaseException:
        decoder.abandon()
        raise
    return decoder.finish(), seen


def encode(
    ffmpeg: str, src: Path, pool: str, out_dir: Path
) -> tuple[EncodePlan, MediaInfo, Path, list[Progress]]:
    """probe -> decide -> ffmpeg -> verify, as a worker does."""
    plan = plan_for(src, pool)
    dst = out_dir / f"out-{pool}-{src.stem}.tmp"
    if not plan.tee_safe:  # a copied stream's tag needs plain ffmpeg; decoded afterwards
        seen: list[Progress] = []
        run_ffmpeg(
            build_args(ffmpeg, src, dst, plan, threads=2),
            on_progress=seen.append,
            stop=threading.Event(),
            stall_timeout_s=60,
        )
        return plan, verify_output(dst, plan, probe(src), source_path=src), dst, seen
    check, seen = encode_teed(ffmpeg, src, plan, dst, out_dir / f"out-{pool}-{src.stem}.hevc")
    return plan, verify_output(dst, plan, probe(src), source_path=src, stream=check), dst, seen


def content(path: Path) -> list[object]:
    """Everything a file holds but its container's bookkeeping: every stream's
    parameters, metadata and packets, and the file's metadata and chapters."""
    with av.open(str(path)) as container:
        out: list[object] = [
            container.format.name,
            dict(container.metadata),
            list(container.chapters()),
        ]
        for st in container.streams:
            cc = st.codec_context
            out.append(
                (
                    st.type,
                    cc.name if cc else None,
                    cc.codec_tag if cc else None,
                    bytes(cc.extradata or b"") if cc else None,
                    dict(st.metadata),
                    int(st.disposition),
                    st.time_base,
                )
            )
        out += [
            (p.stream.index, p.pts, p.dts, p.duration, p.is_keyframe, bytes(p))
            for p in container.demux()
        ]
    return out


def top_level_boxes(path: Path) -> Iterator[str]:
    """ISO-BMFF box types at the top of an MP4, in file order."""
    with path.open("rb") as fh:
        while header := fh.read(8):
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", fh.read(8))[0] - 8
            yield kind.decode("latin-1")
            if size == 0:
                return
            fh.seek(size - 8, os.SEEK_CUR)


# ---- probing -------------------------------------------------------------------------


def test_probe_zero_byte_file(media: Path) -> None:
    empty = media / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(PermanentError, match=r"empty file \(0 bytes\)"):
        probe(empty)


def test_probe_text_file_with_video_extension(media: Path) -> None:
    text = media / "notes.mp4"
    text.write_text("shopping list: milk, eggs\n" * 20)
    with pytest.raises(PermanentError, match="not a media file"):
        probe(text)


def test_probe_mp4_cut_before_its_index(ffmpeg: str, media: Path) -> None:
    whole = make_clip(media / "whole.mp4", **TINY, ffmpeg=ffmpeg)  # moov written last
    cut = media / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(PermanentError, match="unreadable or truncated"):
        probe(cut)


@pytest.mark.parametrize(("name", "encoder"), [("cam.h264", "libx264"), ("cam.hevc", "libx265")])
def test_a_bare_streams_length_is_guessed_from_its_frames_never_stated(
    ffmpeg: str, media: Path, monkeypatch: pytest.MonkeyPatch, name: str, encoder: str
) -> None:
    # 12 s at the 10 frames a second the stream states, a keyframe every second.
    src = media / name
    args = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10"]
    args += ["-t", "12", "-c:v", encoder, "-preset", "ultrafast", "-g", "10", str(src)]
    subprocess.run(args, check=True)
    info = probe(src)
    # Its rate is the stated one ffmpeg encodes at, not the demuxer's default of 25 (a
    # ladder of such a camera's stream was made at 25 frames a second, each frame shown
    # two or three times).
    assert info.main_video is not None
    assert info.main_video.fps == 10.0
    # The length stays unknown to every check (an output's length is compared with it):
    # the guess is for planning only.
    assert info.duration_s is None
    assert info.duration_guess_s == 12.0  # every frame counted: the file is small
    # A long stream is guessed by its start: here its first third.
    monkeypatch.setattr(probing, "GUESS_BYTES", src.stat().st_size // 3)
    guess = probe(src).duration_guess_s
    assert guess is not None
    assert abs(guess - 12.0) < 1.2, guess
    # A stream of frames too small to fill the bytes is read no further than its first
    # frames: 4 s of a still picture, then 6 s of noise, read for its first 40 frames,
    # all still, is guessed far longer than it is.
    still = media / f"still-{name}"
    args = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "color=gray:size=160x90:rate=10"]
    args += ["-vf", "noise=alls=90:allf=t:enable='gte(t,4)'", "-t", "10", "-c:v", encoder]
    subprocess.run([*args, "-preset", "ultrafast", "-g", "10", str(still)], check=True)
    monkeypatch.setattr(probing, "GUESS_BYTES", 8 << 20)
    assert probe(still).duration_guess_s == 10.0
    monkeypatch.setattr(probing, "GUESS_FRAMES", 40)
    guess = probe(still).duration_guess_s
    assert guess is not None
    assert guess > 20.0, guess
    # A file in a container states its length, and nothing is guessed.
    boxed = media / f"{name}.mp4"
    subprocess.run(
        [ffmpeg, "-v", "error", "-y", "-i", str(src), "-c", "copy", str(boxed)], check=True
    )
    assert probe(boxed).duration_s == pytest.approx(12.0, abs=0.2)
    assert probe(boxed).duration_guess_s is None


def test_audio_only_file_has_no_video_and_every_pool_skips_it(ffmpeg: str, media: Path) -> None:
    clip = make_clip(media / "voice.mp4", **TINY, ffmpeg=ffmpeg)
    audio_only = media / "voice.m4a"
    with av.open(str(clip)) as src, av.open(str(audio_only), "w", format="ipod") as dst:
        out = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    info = probe(audio_only)
    assert info.video == ()
    assert [a.codec for a in info.audio] == ["aac"]
    assert {decide(info, pool, "voice.m4a") for pool in FARM.values()} == {Skip("no video stream")}


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_probe_reads_rotation_and_coded_size(ffmpeg: str, media: Path, rotation: int) -> None:
    clip = make_clip(media / f"rot{rotation}.mp4", **TINY, rotation=rotation, ffmpeg=ffmpeg)
    video = probe(clip).main_video
    assert video is not None
    assert (video.width, video.height, video.rotation) == (160, 120, rotation)
    assert video.fps == 12.0


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_the_first_frame_drained_from_its_keyframe_is_the_frame_the_decoder_gives_first(
    ffmpeg: str, media: Path, codec: str
) -> None:
    # B-frames make the decoder hold pictures back; the drained keyframe is still frame 0.
    clip = make_clip(
        media / f"bframes-{codec}.mp4", **TINY, vcodec=codec, rotation=90, ffmpeg=ffmpeg
    )
    with av.open(str(clip)) as c:
        drained = _first_frame(c, c.streams.video[0])
    with av.open(str(clip)) as c:
        fed = next(f for p in c.demux(c.streams.video[0]) for f in p.decode())
    assert (drained.pts, drained.rotation) == (fed.pts, fed.rotation)
    assert [bytes(p) for p in drained.planes] == [bytes(p) for p in fed.planes]


def test_probe_reads_ten_bit(ffmpeg: str, media: Path) -> None:
    clip = make_clip(media / "ten.mp4", **TINY, pix_fmt="yuv420p10le", ffmpeg=ffmpeg)
    video = probe(clip).main_video
    assert video is not None
    assert (video.pix_fmt, video.bit_depth) == ("yuv420p10le", 10)


def test_probe_from_many_threads_agrees_with_serial(ffmpeg: str, media: Path) -> None:
    clips = [
        make_clip(media / f"par{n}.mp4", **TINY, rotation=90 * n, ffmpeg=ffmpeg) for n in range(4)
    ]
    serial = [probe(c) for c in clips]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(probe, clips * 4))
    assert parallel == serial * 4


# ---- encode and verify ---------------------------------------------------------------


def test_hevc_pool_keeps_rotation_size_and_plays_on_apple(ffmpeg: str, media: Path) -> None:
    src = make_clip(media / "IMG_1.MOV", **TINY, rotation=90, container="mov", ffmpeg=ffmpeg)
    _, out, dst, seen = encode(ffmpeg, src, "hevc", media)
    video = out.main_video
    assert video is not None
    assert (video.codec, video.width, video.height, video.rotation) == ("hevc", 160, 120, 90)
    assert video.fps == 12.0
    with av.open(str(dst)) as container:
        assert container.streams.video[0].codec_context.codec_tag == "hvc1"
    boxes = list(top_level_boxes(dst))
    assert boxes.index("moov") < boxes.index("mdat")  # faststart
    assert seen
    assert seen[-1].done


def test_ten_bit_source_stays_main10(ffmpeg: str, media: Path) -> None:
    src = make_clip(media / "graded.mp4", **TINY, pix_fmt="yuv420p10le", ffmpeg=ffmpeg)
    _, out, dst, _ = encode(ffmpeg, src, "hevc", media)
    assert out.main_video is not None
    assert out.main_video.pix_fmt == "yuv420p10le"
    with av.open(str(dst)) as container:
        assert container.streams.video[0].codec_context.profile == "Main 10"


def test_mkv_keeps_two_audio_streams_subtitles_and_attachment(ffmpeg: str, media: Path) -> None:
    src = make_clip(
        media / "film.mkv",
        **TINY,
        audio_streams=2,
        audio_codec="pcm_s16le",
        subtitles=1,
        attachments=1,
        ffmpeg=ffmpeg,
    )
    plan, out, _, _ = encode(ffmpeg, src, "hevc", media)
    assert plan.container == "matroska"
    assert [a.codec for a in out.audio] == ["pcm_s16le", "pcm_s16le"]  # copied, not re-encoded
    assert [s.codec for s in out.subtitles] == ["subrip"]
    assert out.attachments == 1


@pytest.mark.parametrize(("name", "audio"), [("named.mp4", "aac"), ("named.mov", "pcm_s16le")])
def test_an_mp4_tracks_names_and_languages_are_kept(
    ffmpeg: str, media: Path, name: str, audio: str
) -> None:
    """An MP4's track name ("Commentary") reads as "name" and its muxer writes it from
    "title": copied or encoded, every output lost it."""
    src = media / name
    made = subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=s=160x90:r=10:d=1",
         "-f", "lavfi", "-i", "sine=d=1", "-f", "lavfi", "-i", "sine=f=880:d=1",
         "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset", "ultrafast",
         "-c:a", audio, "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra",
         "-metadata:s:a:1", "title=Commentary du réalisateur", str(src)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert [a.title for a in probe(src).audio] == ["", "Commentary du réalisateur"]
    plan, out, _, _ = encode(ffmpeg, src, "hevc", media)
    assert plan.container == "mp4"
    assert [(a.language, a.title) for a in out.audio] == [
        ("eng", ""),
        ("fra", "Commentary du réalisateur"),
    ]


def test_mov_with_pcm_and_mov_text_becomes_mp4_with_aac(ffmpeg: str, media: Path) -> None:
    src = make_clip(
        media / "camera.mov",
        **TINY,
        audio_codec="pcm_s16le",
        subtitles=1,
        container="mov",
        ffmpeg=ffmpeg,
    )
    plan, out, _, _ = encode(ffmpeg, src, "hevc", media)
    assert plan.container == "mp4"
    assert [a.codec for a in out.audio] == ["aac"]
    assert [s.codec for s in out.subtitles] == ["mov_text"]


@pytest.mark.parametrize(("pool", "coded"), [("720p", (1280, 720)), ("1080p", (1920, 1080))])
def test_renditions_of_a_portrait_phone_clip(
    ffmpeg: str, media: Path, pool: str, coded: tuple[int, int]
) -> None:
    src = media / "IMG_0042.MOV"
    if not src.exists():  # full HD is what the renditions need; two frames keep it quick
        make_clip(
            src,
            width=1920,
            height=1080,
            seconds=0.25,
            fps=8,
            rotation=90,
            container="mov",
            ffmpeg=ffmpeg,
        )
    plan, out, _, _ = encode(ffmpeg, src, pool, media)
    video = out.main_video
    assert video is not None
    assert (video.width, video.height) == coded
    assert video.rotation == 90
    assert video.display_size == (coded[1], coded[0])  # portrait: the target is the width
    assert plan.scale == (pool == "720p")


def test_verification_rejects_corrupted_and_cut_outputs(ffmpeg: str, media: Path) -> None:
    src = make_clip(media / "long.mp4", width=160, height=120, seconds=3, fps=12, ffmpeg=ffmpeg)
    plan, _, good, _ = encode(ffmpeg, src, "hevc", media)
    source = probe(src)
    data = good.read_bytes()
    corrupted, cut = media / "corrupted.tmp", media / "cut.tmp"
    middle = len(data) // 2
    corrupted.write_bytes(data[:middle] + b"\xff" * 4096 + data[middle + 4096 :])
    cut.write_bytes(data[: len(data) * 2 // 3])
    # The source itself is whole, so a bad output is ours to retry, never permanent.
    with pytest.raises(VerificationError, match="does not decode"):
        verify_output(corrupted, plan, source, source_path=src)
    with pytest.raises(VerificationError, match=r"only \d+ of 36 frames decode"):
        verify_output(cut, plan, source, source_path=src)
    assert verify_output(good, plan, source, source_path=src).duration_s == pytest.approx(3.0)


def test_verification_rejects_a_plan_mismatch(ffmpeg: str, media: Path) -> None:
    src = make_clip(media / "plain.mp4", **TINY, ffmpeg=ffmpeg)
    plan, _, dst, _ = encode(ffmpeg, src, "hevc", media)
    wrong = dataclasses.replace(plan, rotation=90, ten_bit=True)
    with pytest.raises(VerificationError, match="rotation 0, planned 90") as info:
        verify_output(dst, wrong, probe(src))
    assert "8-bit" in str(info.value)


def test_stream_check_rejects_a_file_whose_video_is_not_the_decoded_stream(
    ffmpeg: str, media: Path
) -> None:
    src = make_clip(media / "long.mp4", width=160, height=120, seconds=3, fps=12, ffmpeg=ffmpeg)
    plan, source = plan_for(src, "hevc"), probe(src)
    good = media / "teed.tmp"
    check, _ = encode_teed(ffmpeg, src, plan, good, media / "teed.hevc")
    assert check.error is None
    assert check.frames == 36
    data = bytearray(good.read_bytes())
    with av.open(str(good)) as container:  # a byte inside the last video sample
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
        last = packets[-1]
        assert last.pos is not None
        flip = last.pos + last.size // 2
    data[flip] ^= 0x01
    flipped = media / "flipped.tmp"
    flipped.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="not what was encoded and decoded"):
        verify_output(flipped, plan, source, source_path=src, stream=check)
    other, _ = encode_teed(
        ffmpeg, src, dataclasses.replace(plan, crf=40), media / "crf40.tmp", media / "crf40.hevc"
    )
    with pytest.raises(VerificationError, match="not what was encoded and decoded"):
        verify_output(good, plan, source, source_path=src, stream=other)
    failed = dataclasses.replace(check, error="Invalid data found when processing input")
    with pytest.raises(VerificationError, match="does not decode: Invalid data"):
        verify_output(good, plan, source, source_path=src, stream=failed)
    assert verify_output(good, plan, source, source_path=src, stream=check).duration_s == (
        pytest.approx(3.0)
    )


def test_stream_decoder_reports_a_stream_that_does_not_decode(ffmpeg: str, media: Path) -> None:
    src = make_clip(media / "long.mp4", width=160, height=120, seconds=3, fps=12, ffmpeg=ffmpeg)
    stream = media / "garbled.hevc"
    check, _ = encode_teed(ffmpeg, src, plan_for(src, "hevc"), media / "garbled.tmp", stream)
    assert check.error is None
    data = stream.read_bytes()
    middle = len(data) // 2
    stream.write_bytes(data[:middle] + b"\xff" * 4096 + data[middle + 4096 :])
    decoder = StreamDecoder(stream)
    decoder.start()
    garbled = decoder.finish()
    assert garbled.error is not None or garbled.frames < check.frames
    assert garbled.digest != check.digest


def test_stream_decoder_follows_a_stream_that_is_still_being_written(
    ffmpeg: str, media: Path
) -> None:
    src = make_clip(media / "long.mp4", width=160, height=120, seconds=3, fps=12, ffmpeg=ffmpeg)
    whole = media / "whole.hevc"
    expected, _ = encode_teed(ffmpeg, src, plan_for(src, "hevc"), media / "whole.tmp", whole)
    data = whole.read_bytes()
    growing = media / "growing.hevc"
    growing.write_bytes(data[: len(data) // 2][::-1])  # left over: must not be read
    decoder = StreamDecoder(growing)
    decoder.start()  # before the writer starts, as the worker does

    def write_slowly() -> None:
        with growing.open("wb") as fh:
            for at in range(0, len(data), 1000):  # pieces that end inside NAL units
                fh.write(data[at : at + 1000])
                fh.flush()
                threading.Event().wait(0.005)

    writer = threading.Thread(target=write_slowly)
    writer.start()
    writer.join()
    assert decoder.finish() == expected
    assert not any(t.name == "stream-decoder" for t in threading.enumerate())


def test_stream_decoder_without_a_stream_reports_nothing_decoded(tmp_path: Path) -> None:
    decoder = StreamDecoder(tmp_path / "never-written.hevc")
    decoder.start()
    check = decoder.finish()
    assert (check.frames, check.nals, check.error) == (0, 0, None)
    abandoned = StreamDecoder(tmp_path / "never-written.hevc")
    abandoned.start()
    abandoned.abandon()
    assert not any(t.name == "stream-decoder" for t in threading.enumerate())


@pytest.mark.parametrize(
    ("name", "pool", "clip"),
    [
        ("phone.mov", "hevc", {"rotation": 90, "container": "mov"}),
        ("graded.mp4", "hevc", {"pix_fmt": "yuv420p10le"}),
        (
            "film.mkv",
            "hevc",
            {"audio_streams": 2, "audio_codec": "pcm_s16le", "subtitles": 1, "attachments": 1},
        ),
        (
            "camera.mov",
            "720p",
            {
                "audio_codec": "pcm_s16le",
                "container": "mov",
                "width": 1920,
                "height": 1080,
                "seconds": 0.25,
                "fps": 8,
            },
        ),
        ("talk.mp4", "hevc", {"audio_streams": 2, "subtitles": 1}),
    ],
)
def test_the_teed_output_is_what_a_plain_encode_makes(
    ffmpeg: str, tmp_path: Path, name: str, pool: str, clip: dict[str, object]
) -> None:
    src = make_clip(tmp_path / name, **{**TINY, **clip}, ffmpeg=ffmpeg)  # type: ignore[arg-type]
    plan = plan_for(src, pool)
    assert plan.tee_safe
    plain, teed = tmp_path / "plain.tmp", tmp_path / "teed.tmp"
    run_ffmpeg(
        build_args(ffmpeg, src, plain, plan, threads=2),
        on_progress=None,
        stop=threading.Event(),
        stall_timeout_s=60,
    )
    check, _ = encode_teed(ffmpeg, src, plan, teed, tmp_path / "teed.hevc")
    assert check.error is None
    assert content(plain) == content(teed)
    # bitexact: two encodes of one source are the same bytes, Matroska's IDs included.
    assert plain.read_bytes() == teed.read_bytes()


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_chapters_and_stream_languages_survive_the_worker_path(
    ffmpeg: str, tmp_path: Path, ext: str
) -> None:
    base = make_clip(tmp_path / f"base.{ext}", **TINY, audio_streams=2, ffmpeg=ffmpeg)
    chapters = tmp_path / "chapters.txt"
    chapters.write_text(
        ";FFMETADATA1\ntitle=Film\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\n"
        "END=250\ntitle=One\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=250\nEND=500\n"
        "title=Two\n"
    )
    tagged = {}
    for name, extra in (("languages", []), ("chapters", ["-i", f"file:{chapters}"])):
        tagged[name] = tmp_path / f"{name}.{ext}"
        maps = ["-map_metadata", "1", "-map_chapters", "1"] if extra else []
        run_ffmpeg(
            [
                ffmpeg,
                "-v",
                "error",
                "-y",
                "-i",
                f"file:{base}",
                *extra,
                "-map",
                "0",
                *maps,
                "-c",
                "copy",
                "-metadata:s:a:0",
                "language=fra",
                "-metadata:s:a:1",
                "language=eng",
                f"file:{tagged[name]}",
            ],
            on_progress=None,
            stop=threading.Event(),
            stall_timeout_s=60,
        )
    plan, _, out, _ = encode(ffmpeg, tagged["languages"], "hevc", tmp_path)
    assert plan.tee_safe
    with av.open(str(out)) as container:
        assert [a.language for a in container.streams.audio] == ["fra", "eng"]
    plan, _, out, _ = encode(ffmpeg, tagged["chapters"], "hevc", tmp_path)
    assert not plan.tee_safe  # the tee muxer drops chapters: the plain path keeps them
    with av.open(str(out)) as container:
        assert [c["metadata"]["title"] for c in container.chapters()] == ["One", "Two"]
        assert container.metadata["title"] == "Film"
        assert [a.language for a in container.streams.audio] == ["fra", "eng"]


@pytest.mark.parametrize(
    ("name", "audio_codec", "tee_safe"),
    [
        ("phone.mov", "aac", True),
        ("voice.mov", "libmp3lame", False),
        ("old.avi", "libmp3lame", False),
        ("broadcast.ts", "aac", False),
        ("subs.mov", "aac", False),
    ],
)
def test_copied_streams_with_foreign_tags_take_the_plain_path_and_still_verify(
    ffmpeg: str, tmp_path: Path, name: str, audio_codec: str, tee_safe: bool
) -> None:
    container = name.rsplit(".", 1)[1].replace("ts", "mpegts")
    subtitles = 1 if name == "subs.mov" else 0  # mov_text tagged "text" in QuickTime
    src = make_clip(
        tmp_path / name,
        **TINY,
        audio_codec=audio_codec,
        container=container,
        subtitles=subtitles,
        ffmpeg=ffmpeg,
    )
    plan, out, _, _ = encode(ffmpeg, src, "hevc", tmp_path)
    assert plan.tee_safe is tee_safe
    assert plan.audio[0][1] == "copy"
    assert len(out.audio) == 1


def test_a_custom_channel_order_is_probed_without_aborting_the_process(tmp_path: Path) -> None:
    """PyAV 18 frees a custom-order layout's channel map twice when its channel count is
    read: the process that probed such a file (the ingest, a worker) died on exit or
    sooner, "double free or corruption". Probed in a process of its own, many times."""
    src = tmp_path / "speakers.mov"  # QuickTime listing its speakers in its own order
    made = subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=s=160x120:r=12:d=1", "-f", "lavfi",
         "-i", "sine=d=1,pan=FL+FR+LFE+FC|c0=c0|c1=c0|c2=c0|c3=c0",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le", str(src)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    code = (
        "import gc, sys\n"
        "from pathlib import Path\n"
        "from hevcq.media.probe import probe\n"
        "for _ in range(20):\n"
        "    audio = probe(Path(sys.argv[1])).audio\n"
        "    gc.collect()\n"
        "print(audio[0].channels, audio[0].layout)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(src)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["4", "4", "channels", "(FL+FR+LFE+FC)"]


def test_truehd_copied_into_matroska_keeps_its_length(ffmpeg: str, tmp_path: Path) -> None:
    """A Blu-ray remux: TrueHD frames last 1/1200 s, under Matroska's millisecond tick.
    Through the tee the copied track came out 20 % longer and every attempt failed."""
    src = make_clip(
        tmp_path / "bluray.mkv",
        width=160,
        height=120,
        seconds=3,
        fps=12,
        audio_codec="truehd",
        ffmpeg=ffmpeg,
    )
    plan, out, dst, _ = encode(ffmpeg, src, "hevc", tmp_path)
    assert plan.audio == ((1, "copy"),)
    assert not plan.tee_safe
    assert out.duration_s == pytest.approx(3.0, abs=0.05)
    with av.open(str(dst)) as container:
        audio = container.streams.audio[0]
        tick = audio.time_base or 1
        ends = [
            float((p.pts + (p.duration or 0)) * tick)
            for p in container.demux(audio)
            if p.pts is not None
        ]
    assert audio.codec_context.name == "truehd"
    assert max(ends) == pytest.approx(3.0, abs=0.05)


def _m2ts(ffmpeg: str, dst: Path, seconds: int, *more: str) -> Path:
    """A Blu-ray style M2TS of a 320x240 test picture at 23.976 fps and a tone; ``more``
    adds inputs, maps and the sound's and subtitles' codecs."""
    made = subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", f"testsrc2=s=320x240:r=24000/1001:d={seconds}", "-f", "lavfi",
         "-i", f"sine=d={seconds}", *more, "-c:v", "libx264", "-preset", "ultrafast",
         "-mpegts_m2ts_mode", "1", "-f", "mpegts", str(dst)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return dst


def test_a_blu_ray_stream_type_is_probed_and_the_file_encoded(ffmpeg: str, tmp_path: Path) -> None:
    """An AVCHD camcorder's or a Blu-ray's M2TS: MPEG-TS gives a stream's type as its
    codec tag, and Blu-ray's LPCM is type 0x80 (AC-3 0x81, PGS subtitles 0x90). PyAV reads
    a tag as ASCII and raised on it: the probe failed and the file with it."""
    src = _m2ts(ffmpeg, tmp_path / "00001.m2ts", 2, "-c:a", "pcm_bluray", "-ac", "2")
    info = probe(src)
    assert [(a.codec, a.tag) for a in info.audio] == [("pcm_bluray", "0x00000080")]
    plan, out, dst, _ = encode(ffmpeg, src, "hevc", tmp_path)
    assert plan.audio == ((1, "aac"),)
    assert out.duration_s == pytest.approx(2.0, abs=0.1)
    assert [a.codec for a in probe(dst).audio] == ["aac"]


def test_a_blu_rays_subtitles_stay_in_matroska_and_an_mp4_without_them_replaces_nothing(
    ffmpeg: str, tmp_path: Path
) -> None:
    """PGS subtitles (stream type 0x90 in an M2TS) are probed; an MP4 output leaves them
    out, so it may sit beside the original but never take its place. In Matroska they are
    kept, and the output may replace the original."""
    sup = write_pgs(tmp_path / "captions.sup", 320, 240, 3)
    src = _m2ts(
        ffmpeg, tmp_path / "00001.m2ts", 3, "-i", str(sup), "-map", "0:v", "-map", "1:a",
        "-map", "2:s", "-c:a", "ac3", "-c:s", "copy",
    )  # fmt: skip
    info = probe(src)
    assert [(s.codec, s.tag) for s in info.subtitles] == [("hdmv_pgs_subtitle", "0x00000090")]
    plan, _, dst, _ = encode(ffmpeg, src, "hevc", tmp_path)
    assert plan.container == "mp4"
    assert plan.subtitles == ()
    with pytest.raises(ReplaceRefused, match="0 of the original's 1 subtitle streams"):
        verify_replacement(dst, src, allow_larger=True)

    rip = tmp_path / "rip.mkv"  # the same disc remuxed, as rippers write it
    copied = subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(src), "-map", "0",
         "-c", "copy", str(rip)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    plan, _, kept, _ = encode(ffmpeg, rip, "hevc", tmp_path)
    assert plan.container == "matroska"
    assert len(plan.subtitles) == 1
    assert [s.codec for s in probe(kept).subtitles] == ["hdmv_pgs_subtitle"]
    verify_replacement(kept, rip, allow_larger=True)


def test_a_scratch_folder_with_hostile_characters_is_safe_in_the_tee(
    ffmpeg: str, tmp_path: Path
) -> None:
    src = make_clip(tmp_path / "in.mp4", **TINY, ffmpeg=ffmpeg)
    scratch = tmp_path / "a|b 'c' [d]:e\\f "
    scratch.mkdir()
    plan = plan_for(src, "hevc")
    check, _ = encode_teed(ffmpeg, src, plan, scratch / "output", scratch / "stream.hevc")
    assert sorted(p.name for p in scratch.iterdir()) == ["output", "stream.hevc"]
    assert verify_output(scratch / "output", plan, probe(src), stream=check).main_video


def test_truncated_source_is_a_permanent_failure(ffmpeg: str, media: Path) -> None:
    whole = media / "upload.mp4"
    make_clip(whole, width=160, height=120, seconds=3, fps=12, ffmpeg=ffmpeg)
    fast = media / "upload-faststart.mp4"  # index first, as phones and web uploads have it
    faststart = {"movflags": "faststart"}
    with av.open(str(whole)) as src, av.open(str(fast), "w", options=faststart) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    truncated = media / "upload-cut.mp4"
    truncated.write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    assert probe(truncated).duration_s == pytest.approx(3.0, abs=0.1)  # header says 3 s
    with pytest.raises(PermanentError, match="source appears truncated"):
        encode(ffmpeg, truncated, "hevc", media)


# ---- the runner with a real process --------------------------------------------------


def test_sigterm_stops_a_real_ffmpeg_and_its_group_is_gone(ffmpeg: str) -> None:
    started: list[PopenProcess] = []

    def spawn(args: list[str]) -> PopenProcess:
        started.append(PopenProcess(args))
        return started[-1]

    stop = threading.Event()
    endless = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=12",
        "-f",
        "null",
        "-progress",
        "pipe:1",
        "-",
    ]

    def on_progress(p: Progress) -> None:
        if (p.frame or 0) >= 3:
            stop.set()

    with pytest.raises(InterruptedJob):
        run_ffmpeg(
            endless,
            on_progress=on_progress,
            stop=stop,
            stall_timeout_s=30,
            term_grace_s=2.0,
            spawn=spawn,
            poll_interval_s=0.05,
        )
    assert len(started) == 1
    with pytest.raises(ProcessLookupError):
        os.killpg(started[0].pid, 0)  # no process of the group is left, zombie or not


def test_real_ffmpeg_failure_is_permanent_and_says_why(ffmpeg: str, media: Path) -> None:
    text = media / "fake.mkv"
    text.write_text("not a video")
    with pytest.raises(PermanentError, match="Invalid data found"):
        run_ffmpeg(
            [ffmpeg, "-nostdin", "-loglevel", "error", "-i", f"file:{text}", "-f", "null", "-"],
            on_progress=None,
            stop=threading.Event(),
            stall_timeout_s=30,
        )


# ---- the demo library ----------------------------------------------------------------


def test_sample_library_has_the_shapes_the_readme_promises(ffmpeg: str, tmp_path: Path) -> None:
    files = make_sample_library(tmp_path, seconds=0.25)
    names = sorted(str(p.relative_to(tmp_path)) for p in files)
    assert names == [
        "already/hevc-clip.mp4",
        "docs/not-a-video.mp4",
        "holiday/beach.mp4",
        "phone/IMG_0042.MOV",
    ]
    beach = probe(tmp_path / "holiday/beach.mp4")
    phone = probe(tmp_path / "phone/IMG_0042.MOV")
    hevc = probe(tmp_path / "already/hevc-clip.mp4")
    assert beach.main_video is not None
    assert beach.main_video.display_size == (1920, 1080)
    assert [a.codec for a in beach.audio] == ["aac"]
    assert phone.main_video is not None
    assert phone.main_video.display_size == (1080, 1920)
    assert hevc.main_video is not None
    assert (hevc.main_video.codec, hevc.main_video.width) == ("hevc", 1280)
    assert decide(hevc, FARM["hevc"], "hevc-clip.mp4") == Skip("already HEVC")
    with pytest.raises(PermanentError, match="not a media file"):
        probe(tmp_path / "docs/not-a-video.mp4")


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as f:
        stream = f.streams.video[0]
        return [frame.time for frame in f.decode(stream) if frame.time is not None]


def test_a_variable_rate_matroska_source_keeps_every_frame_time(
    ffmpeg: str, media: Path, tmp_path: Path
) -> None:
    # A phone's timing in Matroska's 1 ms ticks: a 30 fps grid with frames dropped
    # unevenly, so the average rate divides none of the timestamps. An encoder timed by
    # that rate rounded frames onto each other (a quarter of them here) and shifted others.
    phone, src = tmp_path / "phone.mp4", tmp_path / "phone.mkv"
    drop = "select='not(eq(mod(n\\,7)\\,3))*not(eq(mod(n\\,11)\\,5))'"
    args = [ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"]
    args += [f"testsrc2=s=320x180:r=30,{drop}", "-t", "10", "-fps_mode", "vfr"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", f"file:{phone}"]
    remux = [ffmpeg, "-hide_banner", "-loglevel", "error", "-i", f"file:{phone}", "-c", "copy"]
    for step in (args, [*remux, f"file:{src}"]):
        run_ffmpeg(step, on_progress=None, stop=threading.Event(), stall_timeout_s=60)
    _, _, dst, _ = encode(ffmpeg, src, "hevc", tmp_path)
    before, after = frame_times(src), frame_times(dst)
    assert len(after) == len(before) > 200
    assert len(set(after)) == len(after)  # no two frames at one time
    offset = before[0] - after[0]
    assert max(abs(b - a - offset) for b, a in zip(before, after, strict=True)) < 0.0015


def test_a_subtitle_past_the_picture_counts_in_one_containers_length_not_anothers(
    ffmpeg: str, media: Path
) -> None:
    """An MP4 whose subtitle runs 1.5 s past its picture lasts 2 s; its WebM copy, which
    keeps the subtitle, lasts 3.5 s. What plays is as long: the output stands."""
    src = subtitled_past_the_end(media / "talk-past.mp4")
    av1 = load_pool(Path(__file__).parents[2] / "workers" / "optional" / "av1.yaml")
    plan = decide(probe(src), av1, src.name)
    assert isinstance(plan, EncodePlan)
    plan = dataclasses.replace(plan, preset="12")
    dst = media / "talk-past.webm"
    run_ffmpeg(
        build_args(ffmpeg, src, dst, plan, threads=2),
        on_progress=None,
        stop=threading.Event(),
        stall_timeout_s=60,
    )
    out = verify_output(dst, plan, probe(src), source_path=src)
    assert out.duration_s == pytest.approx(3.5, abs=0.1)
