"""Sound in MPEG-TS whose channels or sample rate change partway
(``hevcq.media.soundshape``): a broadcast recording's stereo advert before its 5.1 film, a
recording joined to one made at 44.1 kHz. Copied into MP4 or Matroska, an AAC stream sits
under the configuration of its first frame: the 5.1 stretch did not decode (four seconds
of silence in an output that verified), and the 44.1 kHz stretch played fast and short.
The worker encodes it instead, to its widest shape, as it does any such stream it
encodes; ``fetch --replace`` refuses an output whose sound comes up short; a ladder pads
its sound from zero only where it starts late and holds its shape. And a listed audio
stream with no packets, which failed every file pool, is left out."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from hevcq.errors import VerificationError
from hevcq.library.quarantine import ReplaceRefused, verify_replacement
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.ladder import (
    MASTER,
    build_ladder,
    check_ladder,
    read_master,
    read_media_playlist,
    sound_held_s,
)
from hevcq.media.probe import probe
from hevcq.media.soundshape import changing_sound
from hevcq.media.verify import sound_seconds
from hevcq.pools import Pool
from tests.e2e.cutclips import late
from tests.e2e.test_crfsearch import run_job

pytestmark = pytest.mark.e2e

STEREO = "-ac", "2"
SURROUND = "-af", "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0"


def _ffmpeg(*args: str) -> None:
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _part(
    path: Path, at: float, seconds: float, rate: int, *audio: str, codec: str = "aac"
) -> bytes:
    """A stretch of an MPEG-TS recording from ``at`` s on its clock, its sound as asked."""
    _ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=160x90:rate=25:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}:duration={seconds}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-g", "25", *audio),
        *("-c:a", codec, "-output_ts_offset", str(at), "-f", "mpegts", str(path)),
    )
    return path.read_bytes()


@pytest.fixture(scope="module")
def surround(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s in stereo, 3 s in 5.1, 2 s in stereo, on one clock."""
    folder = tmp_path_factory.mktemp("surround")
    joined = folder / "recording.ts"
    joined.write_bytes(
        _part(folder / "a.ts", 0, 2, 48000, *STEREO)
        + _part(folder / "b.ts", 2, 3, 48000, *SURROUND)
        + _part(folder / "c.ts", 5, 2, 48000, *STEREO)
    )
    return joined


@pytest.fixture(scope="module")
def rates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s at 48 kHz, then 8 s at 44.1 kHz."""
    folder = tmp_path_factory.mktemp("rates")
    joined = folder / "recording.ts"
    joined.write_bytes(
        _part(folder / "a.ts", 0, 2, 48000, *STEREO) + _part(folder / "b.ts", 2, 8, 44100, *STEREO)
    )
    return joined


def _sound(path: Path) -> tuple[set[int], set[int], float]:
    """Channel counts and sample rates of a file's decoded sound, and its seconds."""
    channels, rates, seconds = set(), set(), 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            channels.add(frame.layout.nb_channels)
            rates.add(frame.sample_rate)
            seconds += frame.samples / frame.sample_rate
    return channels, rates, seconds


def _pool(container: str = "mp4", codec: str = "hevc", suffix: str = "") -> Pool:
    """A pool encoding to ``codec`` in ``container``; with ``suffix``, one whose outputs
    sit beside their sources, which need not be smaller."""
    preset = "12" if codec == "av1" else "ultrafast"
    return Pool.model_validate(
        {
            "name": "q",
            "output_suffix": suffix,
            "applies": {"source_codecs": ["h264"]},
            "encode": {"codec": codec, "container": container, "preset": preset},
        }
    )


def _output(tmp_path: Path, source: Path, pool: Pool) -> Path:
    """The output a worker makes of ``source`` in ``pool``, which must be done."""
    result, _, store = run_job(tmp_path, source, pool)
    assert result.outcome == "done", result.reason
    out = tmp_path / f"out.{pool.encode.container}"
    out.write_bytes(store.data[result.output_key])
    return out


def test_a_stream_whose_shape_changes_is_marked_with_its_widest(
    surround: Path, rates: Path
) -> None:
    [stream] = changing_sound(surround, probe(surround)).audio
    assert (stream.varies, stream.channels, stream.sample_rate) == (True, 6, 48000)
    assert probe(surround).audio[0].channels == 2  # what its first frame says
    [stream] = changing_sound(rates, probe(rates)).audio
    assert (stream.varies, stream.channels, stream.sample_rate) == (True, 2, 48000)


def test_a_stream_that_keeps_its_shape_is_left_alone(tmp_path: Path, surround: Path) -> None:
    steady = tmp_path / "steady.ts"
    steady.write_bytes(_part(tmp_path / "a.ts", 0, 2, 48000, *STEREO))
    info = probe(steady)
    assert changing_sound(steady, info) == info
    # Only MPEG-TS and PS carry ADTS; any other file is not read.
    remuxed = tmp_path / "remuxed.mkv"
    _ffmpeg("-i", str(surround), "-c", "copy", str(remuxed))
    info = probe(remuxed)
    assert changing_sound(remuxed, info) == info


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_a_file_pool_encodes_changing_sound_whole_at_its_widest(
    tmp_path: Path, surround: Path, container: str
) -> None:
    out = _output(tmp_path, surround, _pool(container))
    channels, rates, seconds = _sound(out)
    # Copied, the 5.1 stretch did not decode: 4 s of the 7 s, all of it stereo.
    assert (channels, rates) == ({6}, {48000})
    assert seconds == pytest.approx(7.0, abs=0.15)
    verify_replacement(out, surround, allow_larger=True)


def test_a_file_pool_plays_a_stretch_at_another_rate_at_its_own_speed(
    tmp_path: Path, rates: Path
) -> None:
    out = _output(tmp_path, rates, _pool())
    channels, got, seconds = _sound(out)
    # Copied, the 44.1 kHz stretch played as 48 kHz: 9.35 s of sound for 10 s of picture.
    assert (channels, got) == ({2}, {48000})
    assert seconds == pytest.approx(10.0, abs=0.15)


@pytest.mark.parametrize("source", ["surround", "rates"])
def test_an_output_whose_copied_sound_comes_up_short_may_not_replace_its_original(
    tmp_path: Path, source: str, request: pytest.FixtureRequest
) -> None:
    original: Path = request.getfixturevalue(source)
    copied = tmp_path / "copied.mp4"
    _ffmpeg(
        *("-i", str(original), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "40"),
        *("-c:a", "copy", str(copied)),
    )
    assert sound_seconds(copied)[1] < sound_seconds(original)[1] - 0.5
    with pytest.raises(ReplaceRefused, match=r"audio stream 1 decodes to .* of sound where"):
        verify_replacement(copied, original, allow_larger=True)


def _ladder_sound_s(hls: Path) -> float:
    """Seconds of sound a ladder's audio rendition decodes to."""
    _, audio_uri = read_master(hls / MASTER)
    assert audio_uri
    return sound_held_s(read_media_playlist(hls / audio_uri))


def test_a_ladders_sound_that_changes_shape_keeps_its_length_and_its_place(
    tmp_path: Path, surround: Path
) -> None:
    """ffmpeg builds its audio filter graph again at each change; ``first_pts=0`` in the
    new graph padded from zero up to the change: 2 s of silence at the move to 5.1, 5 s at
    the move back, and the sound 7 s behind its picture at the end."""
    info = changing_sound(surround, probe(surround))
    build_ladder(find_ffmpeg(), surround, tmp_path / "hls", info)
    assert _ladder_sound_s(tmp_path / "hls") == pytest.approx(7.0, abs=0.15)


def test_a_ladder_whose_sound_holds_silence_not_in_its_source_fails_its_check(
    tmp_path: Path, surround: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hevcq.media.ladder.from_zero", lambda stream: True)
    info = changing_sound(surround, probe(surround))
    with pytest.raises(
        VerificationError,
        match=r"audio-span: .* holds 1[34]\.\d\d s of sound, its source lasts 7\.0",
    ):
        build_ladder(find_ffmpeg(), surround, tmp_path / "hls", info)
    assert check_ladder(tmp_path / "hls") == []  # the other checks cannot see it


@pytest.fixture(scope="module")
def silent_language(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A broadcast recording listing two audio streams, the first of which carries no
    packet (a second language or audio description silent in this programme)."""
    folder = tmp_path_factory.mktemp("silent")
    heard = folder / "heard.ts"
    heard.write_bytes(_part(folder / "a.ts", 0, 3, 48000, *STEREO))
    out = folder / "recording.ts"
    with av.open(str(heard)) as src, av.open(str(out), "w", format="mpegts") as dst:
        video = dst.add_stream_from_template(src.streams.video[0])
        dst.add_stream("mp2", rate=48000)  # listed, never written to
        audio = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux():
            if packet.dts is None:
                continue
            packet.stream = video if packet.stream.type == "video" else audio
            dst.mux(packet)
    return out


def test_an_audio_stream_without_packets_is_left_out_and_the_rest_encoded(
    tmp_path: Path, silent_language: Path
) -> None:
    """Mapped, it failed every file pool's encode on every try: ``[mp4] sample rate not
    set``, and the av1 pool's with ``Neither number of channels nor channel layout``."""
    [silent, heard] = probe(silent_language).audio
    assert (silent.known, heard.known) == (False, True)
    out = _output(tmp_path, silent_language, _pool())
    assert _sound(out)[2] == pytest.approx(3.0, abs=0.1)
    verify_replacement(out, silent_language, allow_larger=True)
    # A ladder's sound is the first stream that has one.
    build_ladder(find_ffmpeg(), silent_language, tmp_path / "hls", probe(silent_language))
    assert _ladder_sound_s(tmp_path / "hls") == pytest.approx(3.0, abs=0.1)


@pytest.fixture(scope="module")
def broadcast(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AC-3 recording, 2 s in 2.0, then 3 s in 5.1, on one clock, its sound starting
    0.5 s after its picture, as a recording cut at any moment may."""
    folder = tmp_path_factory.mktemp("broadcast")
    joined = folder / "joined.ts"
    joined.write_bytes(
        _part(folder / "a.ts", 0, 2, 48000, *STEREO, codec="ac3")
        + _part(folder / "b.ts", 2, 3, 48000, *SURROUND, codec="ac3")
    )
    return late(joined, folder / "recording.ts", sound_s=0.5)


def test_ac3_that_changes_shape_is_copied_as_it_is_and_encoded_at_its_widest(
    tmp_path: Path, broadcast: Path
) -> None:
    [stream] = changing_sound(broadcast, probe(broadcast)).audio
    assert (stream.codec, stream.varies, stream.channels) == ("ac3", True, 6)
    out = _output(tmp_path / "copy", broadcast, _pool())
    # Each AC-3 frame says its own shape, in MP4 too: copied, it decodes whole.
    channels, rates, seconds = _sound(out)
    assert (channels, rates) == ({2, 6}, {48000})
    assert seconds == pytest.approx(5.0, abs=0.1)
    # Its 160x90 picture is tiny beside the 5.1 sound's 480 kb/s (its three pairs), so an
    # output that must be smaller than the source would keep the source instead.
    out = _output(tmp_path / "opus", broadcast, _pool("webm", "av1", suffix=".av1"))
    # Encoded, every stretch takes the widest shape: before, the 5.1 film came out in
    # the stereo of the stretch before it.
    assert _sound(out)[:2] == ({6}, {48000})


def test_a_ladder_of_a_late_sound_that_changes_shape_is_not_padded_twice(
    tmp_path: Path, broadcast: Path
) -> None:
    """Padded from zero, the sound got 2.5 s of silence at the move to 5.1 and its ladder
    failed ``audio-span``; it now starts with its picture, 0.5 s early."""
    info = changing_sound(broadcast, probe(broadcast))
    build_ladder(find_ffmpeg(), broadcast, tmp_path / "hls", info)
    assert _ladder_sound_s(tmp_path / "hls") == pytest.approx(5.0, abs=0.15)


def test_a_few_damaged_headers_do_not_change_a_streams_shape(tmp_path: Path) -> None:
    """Three frames of a stereo recording whose headers say 5.1, as damage in a broadcast
    recording may leave them: the stream keeps its shape, and is copied."""
    recording = tmp_path / "recording.ts"
    data = bytearray(_part(tmp_path / "a.ts", 0, 3, 48000, *STEREO))
    at, damaged = 0, 0
    while damaged < 3:
        at = data.index(b"\xff\xf1\x4c", at + 1)  # ADTS, AAC LC, 48 kHz, stereo
        data[at + 2] = 0x4D  # channel configuration 6: 5.1
        damaged += 1
    recording.write_bytes(bytes(data))
    info = probe(recording)
    assert changing_sound(recording, info) == info
