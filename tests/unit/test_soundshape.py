"""Frame headers read (``hevcq.media.soundshape``), and what a plan does with a stream whose
shape changes partway."""

from __future__ import annotations

import dataclasses

import pytest

from hevcq.formats import AUDIO_LAYOUTS
from hevcq.media.decide import decide
from hevcq.media.ffargs import build_args
from hevcq.media.ladder import (
    AUDIO_FROM_ZERO,
    AUDIO_IN_STEP,
    from_zero,
    ladder_args,
    plan_ladder,
)
from hevcq.media.model import AudioStream, EncodePlan
from hevcq.media.soundshape import (
    FrameShape,
    ac3_shape,
    adts_shape,
    mpeg_audio_shape,
    widest,
)
from hevcq.pools import Pool, load_farm
from tests.unit.media_shapes import clip
from tests.unit.test_ffargs import DST, SRC, values


def header(profile: int, rate_index: int, channel_config: int) -> bytes:
    """The first bytes of an ADTS frame (MPEG-4, no CRC) with these fields."""
    return bytes(
        [
            0xFF,
            0xF1,
            (profile << 6) | (rate_index << 2) | (channel_config >> 2),
            (channel_config & 0x03) << 6,
            0x00,
            0x1F,
            0xFC,
        ]
    )


@pytest.mark.parametrize(
    ("profile", "rate_index", "config", "shape"),
    [
        (1, 3, 2, FrameShape(1, 48000, 2)),  # AAC LC, 48 kHz, stereo
        (1, 4, 6, FrameShape(1, 44100, 6)),  # 5.1
        (1, 3, 7, FrameShape(1, 48000, 8)),  # 7.1
        (1, 12, 1, FrameShape(1, 7350, 1)),
        (1, 3, 0, FrameShape(1, 48000, 0)),  # a program config element says
    ],
)
def test_a_header_gives_its_shape(
    profile: int, rate_index: int, config: int, shape: FrameShape
) -> None:
    assert adts_shape(header(profile, rate_index, config)) == shape


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        header(1, 3, 2)[:6],  # too short for a header
        b"\x00" + header(1, 3, 2)[1:],  # no syncword
        header(1, 3, 2)[:1] + b"\xf3" + header(1, 3, 2)[2:],  # layer 1: not ADTS
        header(1, 13, 2),  # a reserved rate
    ],
)
def test_what_is_not_a_header_says_nothing(frame: bytes) -> None:
    assert adts_shape(frame) is None


def ac3(fscod: int, bsid: int, acmod: int, lfe: int) -> bytes:
    """The first bytes of an AC-3 sync frame: the mix levels its mode has, set, then lfeon."""
    bits = acmod << 13
    at = 12
    for present in (acmod & 1 and acmod != 1, acmod & 4, acmod == 2):
        if present:
            bits |= 0b11 << (at - 1)  # a field of two bits, ones, to be skipped
            at -= 2
    bits |= lfe << at
    return bytes([0x0B, 0x77, 0, 0, fscod << 6 | 0x14, bsid << 3 | 0]) + bits.to_bytes(2, "big")


def eac3(fscod: int, fscod2: int, acmod: int, lfe: int) -> bytes:
    """The first bytes of an E-AC-3 independent frame."""
    head = [0x0B, 0x77, 0x00, 0xFF, fscod << 6 | fscod2 << 4 | acmod << 1 | lfe, 16 << 3]
    return bytes([*head, 0, 0])


@pytest.mark.parametrize(
    ("frame", "shape"),
    [
        (ac3(0, 8, 7, 1), FrameShape(8, 48000, 6)),  # 3/2 with LFE: 5.1
        (ac3(0, 8, 2, 0), FrameShape(8, 48000, 2)),  # 2/0: dsurmod before lfeon
        (ac3(1, 8, 2, 1), FrameShape(8, 44100, 3)),
        (ac3(0, 6, 1, 0), FrameShape(6, 48000, 1)),  # 1/0: no mix levels
        (ac3(2, 8, 3, 1), FrameShape(8, 32000, 4)),  # 3/0: cmixlev only
        (ac3(0, 8, 4, 1), FrameShape(8, 48000, 4)),  # 2/1: surmixlev only
        (eac3(0, 0, 7, 1), FrameShape(16, 48000, 6)),
        (eac3(3, 0, 2, 0), FrameShape(16, 24000, 2)),  # fscod2: half rates
        (bytes([0xFF, 0xFD, 0x84, 0xC4]), FrameShape(3, 48000, 1)),  # MPEG-1, mono
        (bytes([0xFF, 0xFD, 0x80, 0x04]), FrameShape(3, 44100, 2)),  # stereo
        (bytes([0xFF, 0xF5, 0x88, 0x44]), FrameShape(2, 16000, 2)),  # MPEG-2 joint stereo
    ],
)
def test_ac3_and_mpeg_audio_headers_give_their_shape(frame: bytes, shape: FrameShape) -> None:
    read = ac3_shape if frame[0] == 0x0B else mpeg_audio_shape
    assert read(frame) == shape


@pytest.mark.parametrize(
    "frame",
    [
        ac3(3, 8, 2, 0)[:8],  # a reserved rate
        eac3(3, 3, 2, 0),  # a reserved half rate
        bytes([0x0B, 0x77, 0x40, 0xFF, 0x04, 16 << 3, 0, 0]),  # E-AC-3 dependent substream
        b"\x0b\x77\x00",  # too short
        bytes([0xFF, 0xED, 0x84, 0xC4]),  # MPEG version bits 01: reserved
        bytes([0xFF, 0xFD, 0x8C, 0xC4]),  # a reserved rate
    ],
)
def test_a_broken_ac3_or_mpeg_header_says_nothing(frame: bytes) -> None:
    read = ac3_shape if frame[0] == 0x0B else mpeg_audio_shape
    assert read(frame) is None


def test_the_widest_shape_counts_the_first_frame_too() -> None:
    # HE-AAC's header gives its core rate, half what it plays at; the probe read that.
    stream = AudioStream(1, "aac", channels=2, layout="stereo", sample_rate=48000)
    got = widest({FrameShape(1, 24000, 2), FrameShape(1, 24000, 6)}, stream)
    assert (got.channels, got.sample_rate, got.layout, got.varies) == (6, 48000, "", True)


def test_ac3_that_varies_is_still_copied_and_encoded_to_its_widest_shape() -> None:
    # Each AC-3 frame says its shape in MP4 too; Opus in WebM takes the widest.
    ac3_varies = AudioStream(1, "ac3", channels=6, sample_rate=48000, varies=True)
    info = dataclasses.replace(clip(1280, 720), audio=(ac3_varies,))
    copied = decide(info, load_farm()["hevc"], "a.ts")
    assert isinstance(copied, EncodePlan)
    assert (copied.audio, copied.audio_shapes) == (((1, "copy"),), ())
    webm = Pool.model_validate(
        {
            "name": "av1",
            "applies": {"source_codecs": ["h264"]},
            "encode": {"codec": "av1", "container": "webm", "preset": "8"},
        }
    )
    encoded = decide(info, webm, "a.ts")
    assert isinstance(encoded, EncodePlan)
    assert (encoded.audio, encoded.audio_shapes) == (((1, "libopus"),), ((1, 6, 48000),))


def test_a_stream_that_varies_is_encoded_to_its_widest_shape_never_copied() -> None:
    pool = load_farm()["hevc"]
    info = clip(1280, 720, audio=("aac", "aac"))
    varies = dataclasses.replace(info.audio[1], channels=6, sample_rate=48000, varies=True)
    plan = decide(dataclasses.replace(info, audio=(info.audio[0], varies)), pool, "a.ts")
    assert isinstance(plan, EncodePlan)
    assert plan.audio == ((1, "copy"), (2, "aac"))
    assert plan.audio_shapes == ((2, 6, 48000),)
    args = build_args("ffmpeg", SRC, DST, plan)
    assert values(args, "-c:a:0") == ["copy"]
    assert values(args, "-filter:a:1") == [
        f"aformat=channel_layouts=6c:sample_rates=48000,aformat=channel_layouts={AUDIO_LAYOUTS['aac']}"
    ]


@pytest.mark.parametrize(
    ("start_s", "varies", "padded"),
    [
        (0.0, False, False),  # nearly every sound: the same either way
        (0.0005, False, False),  # a rounding
        (0.7, False, True),  # a sound after its picture: silence before it
        (0.7, True, False),  # padded again at each change: starts with the picture
        (0.0, True, False),
    ],
)
def test_a_ladders_sound_is_padded_from_zero_only_where_it_starts_late_and_holds_its_shape(
    start_s: float, varies: bool, padded: bool
) -> None:
    stream = AudioStream(1, "aac", sample_rate=48000, varies=varies, start_s=start_s)
    assert from_zero(stream) is padded
    info = dataclasses.replace(clip(640, 360), audio=(stream,))
    plan = plan_ladder(info, (), None)
    assert plan is not None
    args = ladder_args("ffmpeg", SRC, DST, plan)
    assert values(args, "-filter:a:0") == [AUDIO_FROM_ZERO if padded else AUDIO_IN_STEP]
    # A sound whose rate changes names the rate of its widest stretch.
    assert values(args, "-ar:a:0") == (["48000"] if varies else [])
