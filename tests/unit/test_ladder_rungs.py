"""The ladder's rungs, chosen from the picture as displayed: never upscaled, portrait by
its short side, the source's own size on top when it is not a standard one."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import pytest

from hevcq.errors import ConfigError
from hevcq.media.ffargs import DEINTERLACE, rgb_to_yuv, stated_colours, tone_map
from hevcq.media.ladder import (
    STANDARD_SIZES,
    av1_codec_string,
    choose_rungs,
    constant_rate,
    hevc_codec_string,
    ladder_args,
    ladder_rate,
    plan_ladder,
    rung_heights,
    source_colours,
)
from hevcq.media.model import AudioStream, MediaInfo, VideoStream

F30 = Fraction(30)


@pytest.mark.parametrize(
    ("short", "heights"),
    [
        (2160, (2160, 1440, 1080, 720, 480, 360, 240)),
        (4320, (2160, 1440, 1080, 720, 480, 360, 240)),  # 8K: the largest size on top
        (2880, (2160, 1440, 1080, 720, 480, 360, 240)),
        (1080, (1080, 720, 480, 360, 240)),
        (720, (720, 480, 360, 240)),
        (370, (360, 240)),  # close above a standard size: that size is the top
        (1000, (1000, 720, 480, 360, 240)),  # well above one: its own size on top
        (241, (240,)),
        (200, (200,)),  # below every standard size: the source's own size alone
        (201, (200,)),  # an odd size is made even, downwards
    ],
)
def test_rung_heights_never_exceed_the_source(short: int, heights: tuple[int, ...]) -> None:
    assert rung_heights(short) == heights
    assert max(rung_heights(short)) <= short


def test_a_landscape_720p_source_gets_the_standard_ladder() -> None:
    sizes = [(r.width, r.height) for r in choose_rungs(1280, 720, F30)]
    assert sizes == [(1280, 720), (854, 480), (640, 360), (426, 240)]


def test_a_portrait_phone_clip_gets_portrait_rungs_by_its_short_side() -> None:
    sizes = [(r.width, r.height) for r in choose_rungs(1080, 1920, F30)]
    assert sizes == [(1080, 1920), (720, 1280), (480, 854), (360, 640), (240, 426)]


def test_rates_grow_with_pixels_and_frame_rate() -> None:
    at30 = choose_rungs(1920, 1080, F30)
    at60 = choose_rungs(1920, 1080, Fraction(60))
    caps = [r.maxrate_kbps for r in at30]
    assert caps == sorted(caps, reverse=True)
    assert 5_000 <= caps[0] <= 8_000  # about Apple's 1080p30 H.264 rung
    assert [abs(r.maxrate_kbps - 2 * c) <= 1 for r, c in zip(at60, caps, strict=True)] == [True] * 5


@pytest.mark.parametrize(
    ("fps", "rate"),
    [
        (29.97, Fraction(30000, 1001)),
        (29.3, Fraction(30000, 1001)),  # a VFR phone clip's average
        (30.0, Fraction(30)),
        (24.0, Fraction(24)),
        (59.94, Fraction(60000, 1001)),
        (15.0, Fraction(15)),  # a screen recording stays at its own rate
        (14.985, Fraction(15000, 1001)),
        (12.5, Fraction(25, 2)),
        (10.0, Fraction(10)),
        (5.0, Fraction(10)),  # the lowest: a camera at 5 fps
        (120.0, Fraction(60)),  # slow motion plays at 60
        (None, Fraction(30)),
    ],
)
def test_variable_rate_sources_are_made_constant_at_the_nearest_common_rate(
    fps: float | None, rate: Fraction
) -> None:
    assert constant_rate(fps) == rate


def test_the_plan_follows_the_displayed_picture_and_carries_every_sound() -> None:
    info = MediaInfo(
        "mov",
        10.0,
        1000,
        video=(VideoStream(0, "h264", 1920, 1080, "yuv420p", 8, rotation=90, fps=29.8),),
        audio=(AudioStream(1, "aac"), AudioStream(2, "aac")),
    )
    plan = plan_ladder(info)
    assert plan is not None
    assert (plan.rungs[0].width, plan.rungs[0].height) == (1080, 1920)
    assert [a.index for a in plan.audio] == [1, 2]
    assert plan.gop_frames == 60
    assert plan_ladder(MediaInfo("mp4", 1.0, 10)) is None


@pytest.mark.parametrize(
    ("stated", "varies", "kbps"),
    [(0, False, 128), (160, False, 128), (96, False, 96), (13, False, 64), (13, True, 128)],
)
def test_the_ladders_sound_is_not_given_more_than_its_source_states(
    stated: int, varies: bool, kbps: int
) -> None:
    """An old phone's 12.2 kb/s speech was made 128 kb/s of AAC in every ladder; a sound
    whose shape changes states only its first stretch's rate, no limit for the rest."""
    sound = AudioStream(1, "amr_nb", 1, layout="mono", bit_rate_kbps=stated, varies=varies)
    video = VideoStream(0, "h264", 640, 360, "yuv420p", 8, fps=25.0)
    plan = plan_ladder(MediaInfo("mov", 10.0, 1000, video=(video,), audio=(sound,)))
    assert plan is not None
    assert plan.audio[0].kbps == kbps
    args = ladder_args("ffmpeg", Path("in.3gp"), Path("out"), plan)
    assert args[args.index("-b:a:0") + 1] == f"{kbps}k"


@pytest.mark.parametrize(
    ("coded", "sar", "rotation", "shown"),
    [
        ((720, 480), (32, 27), 0, (854, 480)),  # NTSC DVD, 16:9
        ((720, 576), (16, 15), 0, (768, 576)),  # PAL DVD, 4:3
        ((1440, 1080), (4, 3), 0, (1920, 1080)),  # HDV
        ((1440, 1080), (4, 3), 90, (1080, 1920)),  # stretched, then turned
        ((641, 361), (1, 1), 0, (641, 361)),  # square pixels: as coded, odd or not
    ],
)
def test_the_displayed_size_applies_the_pixel_aspect_then_the_rotation(
    coded: tuple[int, int], sar: tuple[int, int], rotation: int, shown: tuple[int, int]
) -> None:
    video = VideoStream(0, "h264", *coded, "yuv420p", 8, rotation, sar_num=sar[0], sar_den=sar[1])
    assert video.display_size == shown


def test_an_interlaced_sources_ladder_deinterlaces_before_anything_else() -> None:
    video = VideoStream(0, "mpeg2video", 1920, 1080, "yuv420p", 8, fps=25.0, interlaced=True)
    plan = plan_ladder(MediaInfo("mpegts", 10.0, 1000, video=(video,)))
    assert plan is not None
    assert plan.deinterlace
    graph = ladder_args("ffmpeg", Path("in.ts"), Path("out"), plan)
    chain = graph[graph.index("-filter_complex") + 1]
    assert chain.startswith(f"[0:0]{DEINTERLACE},fps=25,split=")
    progressive = dataclasses.replace(plan, deinterlace=False)
    assert "bwdif" not in " ".join(ladder_args("ffmpeg", Path("in.ts"), Path("out"), progressive))


def test_an_hdr_sources_ladder_is_tone_mapped_once_for_every_rung() -> None:
    video = VideoStream(0, "hevc", 1920, 1080, "yuv420p10le", 10, fps=30.0, interlaced=True)
    video = dataclasses.replace(video, hdr_transfer="arib-std-b67")
    plan = plan_ladder(MediaInfo("mov", 10.0, 1000, video=(video,)))
    assert plan is not None
    args = ladder_args("ffmpeg", Path("IMG.MOV"), Path("out"), plan)
    chain = args[args.index("-filter_complex") + 1]
    first = f"[0:0]{DEINTERLACE},{tone_map('arib-std-b67')},fps=30,split="
    assert chain.startswith(first)
    assert chain.count("zscale=tin=") == 1  # before the split


HD = "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709"
SD = "setparams=colorspace=smpte170m:color_primaries=smpte170m:color_trc=smpte170m"
NONE = (2, 2, 2)  # unspecified matrix, primaries and transfer


@pytest.mark.parametrize(
    ("coded", "rotation", "stated"),
    [
        ((1280, 720), 0, HD),
        ((1920, 1080), 90, HD),  # a phone's portrait clip, by its coded lines
        ((1080, 1920), 0, HD),
        ((1280, 718), 0, SD),
        ((1280, 544), 0, SD),
        ((720, 576), 0, SD),
        ((640, 480), 0, SD),
    ],
)
def test_an_unstated_source_gets_the_colours_chromium_assumes_for_its_coded_size(
    coded: tuple[int, int], rotation: int, stated: str
) -> None:
    video = VideoStream(0, "h264", *coded, "yuv420p", 8, rotation, fps=25.0, colours=NONE)
    assert source_colours(video) == stated
    plan = plan_ladder(MediaInfo("mp4", 10.0, 1000, video=(video,)))
    assert plan is not None
    chain = ladder_args("ffmpeg", Path("in.mp4"), Path("out"), plan)
    assert f"[0:0]{stated},fps=25,split=" in chain[chain.index("-filter_complex") + 1]


@pytest.mark.parametrize(
    ("colours", "lines", "stated"),
    [
        ((1, 1, 1), 480, ""),  # all three stated: as they are
        ((5, 5, 6), 1080, ""),
        ((1, 2, 2), 480, "setparams=color_primaries=bt709:color_trc=bt709"),  # the matrix's
        ((6, 2, 2), 1080, "setparams=color_primaries=smpte170m:color_trc=smpte170m"),
        ((5, 0, 3), 1080, "setparams=color_primaries=smpte170m:color_trc=smpte170m"),
        ((2, 1, 1), 480, "setparams=colorspace=smpte170m"),  # no matrix: by the size
        ((2, 1, 2), 720, "setparams=colorspace=bt709:color_trc=bt709"),
        ((9, 2, 2), 2160, ""),  # BT.2020's matrix: nothing guessed beside it
        ((3, 3, 3), 720, HD),  # reserved: stated as nothing
    ],
)
def test_what_a_source_leaves_unstated_is_stated_as_players_take_it(
    colours: tuple[int, int, int], lines: int, stated: str
) -> None:
    """Chromium shows a picture that states only some of the three as if it stated
    none: a 480-line rung stating a BT.709 matrix alone was shown as BT.601."""
    assert stated_colours(colours, lines) == stated


def test_only_a_yuv_sdr_source_has_colours_stated_for_it() -> None:
    video = VideoStream(0, "h264", 1920, 1080, "yuv420p", 8, fps=25.0)
    assert source_colours(video) == ""  # not read: cover art, or a test's own shape
    unstated = dataclasses.replace(video, colours=NONE)
    assert source_colours(dataclasses.replace(unstated, hdr_transfer="smpte2084")) == ""
    rgb = dataclasses.replace(unstated, pix_fmt="gbrp", rgb=True, colours=(0, 2, 2))
    assert source_colours(rgb) == ""  # made BT.709 and stated by its conversion
    plan = plan_ladder(MediaInfo("mp4", 10.0, 1000, video=(rgb,)))
    assert plan is not None
    chain = ladder_args("ffmpeg", Path("in.mp4"), Path("out"), plan)
    assert f"[0:0]{rgb_to_yuv()},fps=25,split=" in chain[chain.index("-filter_complex") + 1]


@pytest.mark.parametrize(
    ("av1c", "codecs"),
    [
        (bytes([0x81, 0x05, 0x0C, 0x00]), "av01.0.05M.08"),  # main, level 3.1, 8-bit
        (bytes([0x81, 0x08, 0x4C, 0x00]), "av01.0.08M.10"),  # 10-bit
        (bytes([0x81, 0x4D, 0x8C, 0x00]), "av01.2.13H.08"),  # professional, high tier
        (bytes([0x81, 0x4D, 0x6C, 0x00]), "av01.2.13M.12"),  # 12-bit
    ],
)
def test_av1_codecs_come_from_the_configuration_record(av1c: bytes, codecs: str) -> None:
    assert av1_codec_string(av1c) == codecs


def test_only_known_codec_groups_join_a_ladder() -> None:
    info = MediaInfo("mp4", 1.0, 10, video=(VideoStream(0, "h264", 640, 360, "yuv420p", 8),))
    plan = plan_ladder(info, ("av1", "h264"))
    assert plan is not None
    assert plan.groups == ("h264", "av1")
    hevc = plan_ladder(info, ("hevc",))
    assert hevc is not None
    assert hevc.groups == ("h264", "hevc")
    with pytest.raises(ConfigError, match="no ladder codec group 'vp8'"):
        plan_ladder(info, ("vp8",))
    with pytest.raises(ConfigError, match="no ladder codec group ''; known"):
        plan_ladder(info, ("",))


@pytest.mark.parametrize(
    ("hvcc", "codecs"),
    [
        # x265 main profile, level 3.1, progressive frame-only constraints
        (bytes.fromhex("01016000000090000000000" + "05d"), "hvc1.1.6.L93.90"),
        # main 10, high tier, level 5.1, Apple's example constraint byte
        (bytes.fromhex("01222000000" + "0b0000000000099"), "hvc1.2.4.H153.B0"),
    ],
)
def test_hevc_codecs_come_from_the_configuration_record(hvcc: bytes, codecs: str) -> None:
    assert hevc_codec_string(hvcc) == codecs


def test_no_rung_is_larger_than_a_stream_may_be() -> None:
    # An 8192x8192 picture's own size is over the top level of every codec (35.7 million
    # pixels): its ladder starts at the largest standard rung, 2160x2160.
    rungs = choose_rungs(8192, 8192, Fraction(25))
    assert (rungs[0].width, rungs[0].height) == (2160, 2160)
    assert choose_rungs(65536, 240, Fraction(25)) == ()


@pytest.mark.parametrize(
    ("width", "height", "top"),
    [
        (7680, 4320, (3840, 2160)),  # 8K UHD
        (8192, 4352, (4066, 2160)),  # 8K full frame, the top level's own size
        (4320, 7680, (2160, 3840)),  # an 8K portrait clip
        (5120, 2880, (3840, 2160)),  # a 5K screen recording
    ],
)
def test_a_source_above_4k_tops_out_at_the_2160_rung(
    width: int, height: int, top: tuple[int, int]
) -> None:
    # Its own size was the top rung: an 8K H.264 stream needs a level few decoders have,
    # and its per-title probes were scored at 8K.
    rungs = choose_rungs(width, height, Fraction(30))
    assert (rungs[0].width, rungs[0].height) == top
    assert [min(r.width, r.height) for r in rungs] == list(STANDARD_SIZES)


@pytest.mark.parametrize(
    ("average", "moving", "interlaced", "rate"),
    [
        (29.97, 29.97, False, Fraction(30000, 1001)),  # constant rate: as before
        (7.5, 30.0, False, Fraction(30)),  # frames only on change: the motion's rate
        (30.0, None, False, Fraction(30)),  # no times to read: the average
        (120.0, 120.0, False, Fraction(60)),  # never above 60
        (25.0, 50.0, True, Fraction(25)),  # fields as packets of their own are not frames
    ],
)
def test_a_ladder_is_made_at_the_rate_the_picture_moves_at_when_higher(
    monkeypatch: pytest.MonkeyPatch,
    average: float,
    moving: float | None,
    interlaced: bool,
    rate: Fraction,
) -> None:
    monkeypatch.setattr("hevcq.media.ladder.motion_rate", lambda src, index: moving)
    video = VideoStream(0, "h264", 1280, 720, "yuv420p", 8, fps=average, interlaced=interlaced)
    assert ladder_rate(Path("clip.mp4"), video) == rate
