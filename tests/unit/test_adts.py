"""ADTS headers read (``hevcq.media.adts``), and what a plan does with a stream whose shape
changes partway."""

from __future__ import annotations

import dataclasses

import pytest

from hevcq.formats import AUDIO_LAYOUTS
from hevcq.media.adts import AdtsShape, adts_shape, widest
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
from hevcq.pools import load_farm
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
        (1, 3, 2, AdtsShape(1, 48000, 2)),  # AAC LC, 48 kHz, stereo
        (1, 4, 6, AdtsShape(1, 44100, 6)),  # 5.1
        (1, 3, 7, AdtsShape(1, 48000, 8)),  # 7.1
        (1, 12, 1, AdtsShape(1, 7350, 1)),
        (1, 3, 0, AdtsShape(1, 48000, 0)),  # a program config element says
    ],
)
def test_a_header_gives_its_shape(
    profile: int, rate_index: int, config: int, shape: AdtsShape
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


def test_the_widest_shape_counts_the_first_frame_too() -> None:
    # HE-AAC's header gives its core rate, half what it plays at; the probe read that.
    stream = AudioStream(1, "aac", channels=2, layout="stereo", sample_rate=48000)
    got = widest({AdtsShape(1, 24000, 2), AdtsShape(1, 24000, 6)}, stream)
    assert (got.channels, got.sample_rate, got.layout, got.varies) == (6, 48000, "", True)


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
    assert values(args, "-filter:a") == [AUDIO_FROM_ZERO if padded else AUDIO_IN_STEP]
    # A sound whose rate changes names the rate of its widest stretch.
    assert values(args, "-ar") == (["48000"] if varies else [])
