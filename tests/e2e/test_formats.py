"""Every codec and container pair the format table allows, encoded by the worker's own
runner from a clip with sound and subtitles, then probed and decoded back in full; and a
legacy pair that joins by adding itself to the table and nothing else."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import av
import pytest

from hevcq.errors import PermanentError
from hevcq.formats import CONTAINERS, VIDEO_CODECS, Container, VideoCodec, content_type
from hevcq.keys import done_key
from hevcq.ledger import JobKey
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.samples import make_clip
from hevcq.media.verify import decoded_seconds, sound_seconds
from hevcq.messages import JobResult
from hevcq.pools import Pool
from hevcq.worker.runner import JobContext, JobRunner, JobSpec
from tests.fakes import FakeStore

pytestmark = pytest.mark.e2e
KEY = "TODO/phone/clip.mp4"
VALID = [(c, b) for c in VIDEO_CODECS for b in CONTAINERS if c in CONTAINERS[b].video]
# What the output's audio and subtitles become in each container.
AUDIO = {"mp4": "aac", "mkv": "aac", "webm": "opus", "ogg": "vorbis"}
SUBTITLES = {"mp4": ["mov_text"], "mkv": ["srt"], "webm": ["webvtt"], "ogg": []}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("c") / "clip.mp4"
    # Opus/Vorbis-only containers must re-encode the AAC; mov_text must become WebVTT.
    # MPEG-4 Part 2 video: a source none of the pools' codecs would skip as already done.
    made = make_clip(path, width=192, height=108, seconds=0.6, fps=10, subtitles=1, vcodec="mpeg4")
    return made.read_bytes()


def encode(
    tmp_path: Path, clip: bytes, codec: str, container: str, audio: str | None = None
) -> Path:
    """Run the worker's job runner for a pool naming this pair (and ``audio``, the audio
    codec, when given); the output as a file."""
    result, store, out_key = run_job(tmp_path, clip, codec, container, audio)
    assert result.outcome == "done", result.reason
    assert out_key.endswith(f".{codec}{CONTAINERS[container].extension}")
    assert content_type(out_key) == CONTAINERS[container].content_type
    out = tmp_path / out_key.rsplit("/", 1)[-1]
    out.write_bytes(store.data[out_key])
    return out


def run_job(
    tmp_path: Path,
    clip: bytes,
    codec: str,
    container: str,
    audio: str | None = None,
    *,
    stores: list[FakeStore] | None = None,
) -> tuple[JobResult, FakeStore, str]:
    """The worker's job runner on ``clip`` for a pool naming this pair: its result, the
    store it wrote to (also appended to ``stores``) and the key of its output."""
    pool = Pool.model_validate(
        {
            "name": "fmt",
            "output_suffix": f".{codec}",
            "applies": {"source_codecs": ["mpeg4"]},
            "encode": {
                "codec": codec,
                "container": container,
                "crf": min(30, VIDEO_CODECS[codec].max_crf),
                "audio_codec": audio,
            },
        }
    )
    store = FakeStore()
    store.add(KEY, etag="e1", data=clip)
    if stores is not None:
        stores.append(store)
    out_key = done_key(KEY, "fmt", pool.output_suffix, extension=pool.fixed_extension)
    job = JobKey(KEY, "fmt", "e1", pool.settings_hash())
    spec = JobSpec(job, pool, "media", out_key, len(clip))
    runner = JobRunner(
        store, ffmpeg=find_ffmpeg(), work_dir=tmp_path / "w", worker_id="w", stall_timeout_s=60
    )
    return runner.run(spec, JobContext()), store, out_key


def streams(path: Path) -> tuple[str, str, list[str]]:
    with av.open(str(path)) as f:
        video = f.streams.video[0].codec_context.name
        audio = f.streams.audio[0].codec_context.name
        subs = [s.codec_context.name for s in f.streams.subtitles]
    return video, audio, subs


@pytest.mark.parametrize(("codec", "container"), VALID)
def test_every_allowed_pair_encodes_and_decodes_back(
    tmp_path: Path, clip: bytes, codec: str, container: str
) -> None:
    out = encode(tmp_path, clip, codec, container)
    video, audio, subs = streams(out)
    assert video in (codec, f"lib{codec}", "libdav1d")  # decoders name themselves
    assert audio == AUDIO[container]
    assert subs == SUBTITLES[container]
    assert decoded_seconds(out) > 0.4


def test_a_legacy_pair_needs_only_its_table_entries(
    tmp_path: Path, clip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Theora video and Vorbis audio in Ogg: two entries, no code anywhere else.
    monkeypatch.setitem(
        VIDEO_CODECS,
        "theora",
        VideoCodec(
            name="theora",
            label="Theora",
            encoder="libtheora",
            max_crf=10,
            presets=(),
            default_preset="",
            quality_option="-q:v",
        ),
    )
    monkeypatch.setitem(
        CONTAINERS,
        "ogg",
        Container(
            name="ogg",
            muxer="ogg",
            extension=".ogv",
            content_type="video/ogg",
            video=frozenset({"theora"}),
            audio_codecs=("vorbis", "opus"),
            audio_copy=frozenset({"vorbis", "opus", "flac"}),
            text_subtitles=None,
        ),
    )
    out = encode(tmp_path, clip, "theora", "ogg")
    assert streams(out) == ("theora", "vorbis", [])
    assert decoded_seconds(out) > 0.4


@pytest.mark.parametrize(
    ("container", "audio"),
    [("webm", "opus"), ("mkv", "vorbis"), ("mkv", "flac"), ("mp4", "opus"), ("mp4", "aac")],
)
def test_broadcast_surround_sound_is_encoded_in_every_audio_codec(
    tmp_path: Path, container: str, audio: str
) -> None:
    # 5.1 with side channels, the layout of AC-3, E-AC-3 and DTS surround, here as float
    # PCM in QuickTime (an editor's master), which every container re-encodes. libopus
    # refused that layout and the job failed ("Could not open encoder before EOF").
    graph = "sine=d=0.6,aformat=channel_layouts=5.1(side)"
    src = master(tmp_path / "film.mov", graph, "mov", "pcm_f32be")
    assert encoded_sound(tmp_path, src, container, audio) == (audio, 6)


@pytest.mark.parametrize(("container", "audio"), [("webm", "opus"), ("mp4", "aac")])
def test_encoded_surround_sound_is_given_the_rate_of_its_three_pairs(
    tmp_path: Path, container: str, audio: str
) -> None:
    # Six channels of unrelated noise, which no encoder can make cheaper than its rate.
    noise = ";".join(f"anoisesrc=d=0.6:seed={n}[n{n}]" for n in range(6))
    merged = "".join(f"[n{n}]" for n in range(6))
    graph = f"{noise};{merged}amerge=inputs=6,aformat=channel_layouts=5.1"
    src = master(tmp_path / "film.mov", graph, "mov", "pcm_s16le")
    out = encode(tmp_path, src.read_bytes(), "av1" if container == "webm" else "hevc",
                 container, audio)  # fmt: skip
    with av.open(str(out)) as f:
        assert f.streams.audio[0].codec_context.channels == 6
    # The pool's 160 kb/s is for a pair: three pairs are 480, where 160 was written before.
    assert 400 < audio_kbps(out) < 560


@pytest.mark.parametrize(("container", "audio"), [("webm", "opus"), ("mp4", "aac")])
def test_encoded_mono_sound_is_given_half_a_pair(
    tmp_path: Path, container: str, audio: str
) -> None:
    # A lecture's or a voice memo's one channel of PCM was encoded at the whole pair's
    # 160 kb/s, twice what one clean channel needs. Noise: the encoder spends its rate.
    src = master(tmp_path / "talk.mov", "anoisesrc=d=0.6", "mov", "pcm_s16le")
    out = encode(tmp_path, src.read_bytes(), "av1" if container == "webm" else "hevc",
                 container, audio)  # fmt: skip
    with av.open(str(out)) as f:
        assert f.streams.audio[0].codec_context.channels == 1
    assert 60 < audio_kbps(out) < 100  # 160 before


def test_sound_is_not_encoded_above_the_rate_its_source_states(tmp_path: Path) -> None:
    # MPEG-1 Layer II at 32 kb/s, as a TV card's or a Video CD's AVI may carry it, which
    # MP4 takes only re-encoded. Noise: the encoder spends all the rate it is given.
    src = tmp_path / "capture.avi"
    made = subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=s=192x108:r=10:d=2", "-f", "lavfi", "-i", "anoisesrc=d=2:r=48000",
         "-c:v", "mpeg4", "-c:a", "mp2", "-b:a", "32k", str(src)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = encode(tmp_path, src.read_bytes(), "hevc", "mp4", "aac")
    assert audio_kbps(out) < 45  # the pool's 160 kb/s before


def audio_kbps(path: Path) -> float:
    """The bit rate of a file's first audio stream, from its packets."""
    with av.open(str(path)) as f:
        sound = f.streams.audio[0]
        packets = [p for p in f.demux(sound) if p.size]
        seconds = sum(p.duration or 0 for p in packets) * float(sound.time_base or 0)
        return sum(p.size for p in packets) * 8 / seconds / 1000


def test_mp3_at_8_khz_is_encoded_for_an_mp4_output(tmp_path: Path) -> None:
    # A voice recorder's or an old camera's MP3 at an MPEG-2.5 rate: copied, the MP4
    # muxer refused it ("muxing mp3 at 8000hz is not standard") on every retry.
    src = master(tmp_path / "memo.avi", "sine=d=0.6:r=8000", "avi", "libmp3lame")
    out = encode(tmp_path, src.read_bytes(), "hevc", "mp4")
    assert streams(out)[1] == "aac"
    # Within one AAC frame, 0.128 s at 8 kHz: the encoder pads its last.
    assert sound_seconds(out) == {1: pytest.approx(sound_seconds(src)[1], abs=0.13)}


@pytest.mark.parametrize(("codec", "container"), [("hevc", "mp4"), ("av1", "webm")])
def test_sound_timed_far_past_what_it_holds_fails_the_job_with_the_reason(
    tmp_path: Path, codec: str, container: str
) -> None:
    # ffmpeg's AVI muxer writes G.726 a chunk per tick, and its demuxer reads each byte
    # as one: 8 s of a DVR's sound timed over 8,126 s. Every output copied those times
    # and was done, a file of 8 s of picture that says it lasts 2 h 15 min.
    src = master(tmp_path / "dvr.avi", "sine=d=2:r=8000", "avi", "g726")
    with av.open(str(src)) as f:
        sound: Any = f.streams.audio[0]
        last: Any = [p for p in f.demux(sound) if p.size][-1]
    # the fault this guards against is still in the pinned ffmpeg
    assert float((last.pts + last.duration) * sound.time_base) > 1000
    stores: list[FakeStore] = []
    with pytest.raises(
        PermanentError, match=r"source's sound is timed over \d{3,}\.\d\d s but holds 2\.\d\d s"
    ):
        run_job(tmp_path, src.read_bytes(), codec, container, stores=stores)
    assert stores[0].data.keys() == {KEY}  # no output written


def test_seven_one_sound_is_encoded_to_vorbis_at_its_rate(tmp_path: Path) -> None:
    # libvorbis writes nothing for 7.1 at a pair's 160 kb/s; at four pairs' 640 it does.
    # Float PCM: a Matroska output copies integer PCM as it is.
    src = master(tmp_path / "film.mov", "sine=d=0.6,aformat=channel_layouts=7.1", "mov",
                 "pcm_f32be")  # fmt: skip
    assert encoded_sound(tmp_path, src, "mkv", "vorbis") == ("vorbis", 8)


@pytest.mark.parametrize(
    ("codec", "container"), [("av1", "webm"), ("hevc", "mkv"), ("hevc", "mp4")]
)
def test_one_picture_beside_a_minute_of_sound_is_encoded_in_every_container(
    tmp_path: Path, codec: str, container: str
) -> None:
    """A podcast or a song uploaded as video: one picture, then sound for as long as it
    plays. In Matroska and WebM, verification read the picture as lasting the whole
    file's length (ffmpeg's demuxer gives each stream the file's duration) and rejected
    the output: ``video decodes for 0.04 s of 60.01 s``."""
    src = tmp_path / "podcast.mov"
    made = subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=s=192x108:r=25:d=0.04", "-f", "lavfi", "-i", "sine=d=60",
         "-c:v", "mpeg4", "-c:a", "pcm_s16le", str(src)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = encode(tmp_path, src.read_bytes(), codec, container)
    with av.open(str(out)) as f:
        assert sum(1 for _ in f.decode(video=0)) == 1
    assert sound_seconds(out) == {1: pytest.approx(60.0, abs=0.1)}


def master(dest: Path, sound: str, fmt: str, pcm: str) -> Path:
    """0.6 s of MPEG-4 Part 2 picture and PCM sound made by the lavfi graph ``sound``."""
    made = subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=s=192x108:r=10:d=0.6", "-f", "lavfi", "-i", sound,
         "-c:v", "mpeg4", "-c:a", pcm, "-f", fmt, str(dest)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return dest


def encoded_sound(tmp_path: Path, src: Path, container: str, audio: str) -> tuple[str, int]:
    """The audio codec and channel count of ``src`` encoded by a pool writing ``audio`` in
    ``container``, whose output is checked to decode."""
    out = encode(tmp_path, src.read_bytes(), "av1" if container == "webm" else "hevc", container,
                 audio)  # fmt: skip
    assert decoded_seconds(out) > 0.4
    with av.open(str(out)) as f:
        sound = f.streams.audio[0].codec_context
        return sound.name, sound.channels


# Sources whose sound no encoder took as it was, each as an editor, a recorder or a disc
# rip writes it: the input (a lavfi graph of 0.6 s), the container, and the channels each
# audio codec then holds.
AWKWARD_SOUND = {
    # Height channels (Dolby Atmos' bed layout), which AAC refused: remixed to 7.1.
    "7.1.4": ("sine=d=0.6,aformat=channel_layouts=7.1.4", "mov", {"aac": 8, "opus": 8}),
    # A custom channel order, as QuickTime lists speakers: probing it aborted the process.
    # AAC writes it as 3.1; Opus and Vorbis know no layout with one LFE beside three.
    "custom": (
        "sine=d=0.6,pan=FL+FR+LFE+FC|c0=c0|c1=c0|c2=c0|c3=c0",
        "mov",
        {"aac": 4, "opus": 3},
    ),
    # 11 channels that Matroska does not name: nothing could remix them, even to stereo.
    "11 unnamed": (
        "sine=d=0.6,pan=FL+FR+FC+LFE+BL+BR+FLC+FRC+BC+SL+SR|"
        + "|".join(f"c{i}=c0" for i in range(11)),
        "matroska",
        {"aac": 2, "opus": 2},
    ),
    # QuickTime's matrix stereo (Lt/Rt), which would be remixed to mono.
    "downmix": ("sine=d=0.6,pan=downmix|c0=c0|c1=c0", "mov", {"aac": 2, "opus": 2}),
}


@pytest.mark.parametrize("sound", sorted(AWKWARD_SOUND))
@pytest.mark.parametrize(("container", "audio"), [("webm", "opus"), ("mp4", "aac")])
def test_sound_in_any_channel_layout_is_encoded_in_every_audio_codec(
    tmp_path: Path, sound: str, container: str, audio: str
) -> None:
    graph, fmt, channels = AWKWARD_SOUND[sound]
    src = master(tmp_path / "master", graph, fmt, "pcm_s16le")
    assert encoded_sound(tmp_path, src, container, audio) == (audio, channels[audio])
