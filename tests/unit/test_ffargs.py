"""build_args(): the ffmpeg command for every plan the real pools make from every shape."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hevcq.errors import ConfigError
from hevcq.formats import AUDIO_LAYOUTS, FIRST_PAIR, encoded_audio_kbps, first_pair_only
from hevcq.media.decide import decide
from hevcq.media.ffargs import (
    DEINTERLACE,
    FLATTEN_ALPHA,
    build_args,
    fit_picture,
    rgb_to_yuv,
    source_filters,
    tone_map,
)
from hevcq.media.model import AudioStream, EncodePlan
from hevcq.pools import load_farm
from tests.unit.media_shapes import SHAPES, clip

FARM = load_farm()
SRC = Path("/scratch/in-7f3a")
DST = Path("/scratch/out-7f3a")


def _plans() -> dict[str, EncodePlan]:
    plans = {}
    for shape, (name, info) in SHAPES.items():
        for pool_name, pool in sorted(FARM.items()):
            decision = decide(info, pool, name)
            if isinstance(decision, EncodePlan):
                plans[f"{shape}-{pool_name}"] = decision
    return plans


PLANS = _plans()


def values(args: list[str], flag: str) -> list[str]:
    """Every value that follows ``flag`` in an argument list."""
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


def test_every_pool_produces_plans() -> None:
    assert {p.pool for p in PLANS.values()} == set(FARM)


@pytest.mark.parametrize("key", sorted(PLANS))
def test_input_output_and_housekeeping(key: str) -> None:
    args = build_args("/opt/ffmpeg", SRC, DST, PLANS[key])
    assert all(isinstance(a, str) for a in args)
    assert args[0] == "/opt/ffmpeg"
    assert args[-1] == f"file:{DST}"
    i = args.index("-i")
    assert args[i - 1] == "-noautorotate"
    assert args[i + 1] == f"file:{SRC}"
    for flag in ("-hide_banner", "-nostdin", "-y", "-nostats"):
        assert flag in args[:-1]
    assert values(args, "-progress") == ["pipe:1"]
    assert values(args, "-loglevel") == ["error"]
    assert values(args, "-map_metadata") == ["0"]
    assert "-r" not in args
    assert values(args, "-fps_mode:v:0") == ["passthrough"]


@pytest.mark.parametrize("key", sorted(PLANS))
def test_every_planned_stream_is_mapped_explicitly_in_order(key: str) -> None:
    plan = PLANS[key]
    args = build_args("ffmpeg", SRC, DST, plan)
    expected = [f"0:{plan.video_index}"]
    expected += [f"0:{i}" for i, _ in plan.audio] + [f"0:{i}" for i, _ in plan.subtitles]
    expected += ["0:t"] if plan.attachments else []
    if plan.container == "mp4":  # cover art as streams; Matroska attaches it (below)
        expected += [f"0:{c.index}" for c in plan.covers]
    assert values(args, "-map") == expected


@pytest.mark.parametrize("key", sorted(PLANS))
def test_video_encoder_settings(key: str) -> None:
    plan = PLANS[key]
    args = build_args("ffmpeg", SRC, DST, plan)
    assert values(args, "-c:v:0") == ["libx265"]
    assert values(args, "-crf") == [str(plan.crf)]
    assert values(args, "-preset") == [plan.preset]
    expected_fmt = ("yuv420p10le", "main10") if plan.ten_bit else ("yuv420p", "main")
    assert (values(args, "-pix_fmt:v:0")[0], values(args, "-profile:v:0")[0]) == expected_fmt
    assert "log-level=error" in values(args, "-x265-params")[0].split(":")
    (vf,) = values(args, "-filter:v:0")
    # Every frame is brought to the output's size (tests/e2e/test_changing_picture.py: for
    # frames of the first size, the bytes of a plain scale or crop, or of no filter).
    assert vf.endswith(f",pad={plan.width}:{plan.height}:-1:-1:eval=frame")
    assert ("lanczos" in vf, vf.startswith("crop=")) == (plan.scale, plan.crop)


@pytest.mark.parametrize(("scale", "crop"), [(True, False), (False, True), (False, False)])
def test_an_interlaced_source_is_deinterlaced_before_it_is_scaled_or_cropped(
    scale: bool, crop: bool
) -> None:
    plan = dataclasses.replace(next(iter(PLANS.values())), deinterlace=True, scale=scale, crop=crop)
    vf = values(build_args("ffmpeg", SRC, DST, plan), "-filter:v:0")
    assert len(vf) == 1
    assert vf[0].split(",")[0] == DEINTERLACE
    assert ("lanczos" in vf[0], "crop=" in vf[0]) == (scale, crop)


@pytest.mark.parametrize(("ten_bit", "fmt"), [(False, "yuv444p"), (True, "yuv444p10le")])
@pytest.mark.parametrize("deinterlace", [False, True])
def test_an_rgb_source_is_made_bt709_yuv_first_and_its_frames_say_so(
    ten_bit: bool, fmt: str, deinterlace: bool
) -> None:
    """Left to ffmpeg, RGB became YUV by BT.601's matrix and nothing was tagged."""
    first = next(p for p in PLANS.values() if p.scale)
    plan = dataclasses.replace(first, rgb=True, ten_bit=ten_bit, deinterlace=deinterlace)
    (vf,) = values(build_args("ffmpeg", SRC, DST, plan), "-filter:v:0")
    assert vf.startswith(rgb_to_yuv(ten_bit=ten_bit) + ",")
    assert "scale=out_color_matrix=bt709:out_range=tv" in vf
    assert f"format={fmt}," in vf
    tags = "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"
    assert tags in vf
    assert (DEINTERLACE in vf) == deinterlace
    assert vf.index("out_color_matrix") < vf.index("lanczos")  # before the size changes


def test_a_transparent_source_is_laid_over_black_before_anything_else() -> None:
    plan = dataclasses.replace(next(iter(PLANS.values())), alpha=True, rgb=True)
    (vf,) = values(build_args("ffmpeg", SRC, DST, plan), "-filter:v:0")
    assert vf.startswith(f"{FLATTEN_ALPHA},{rgb_to_yuv()}")
    assert source_filters(deinterlace=True, alpha=True) == [FLATTEN_ALPHA, DEINTERLACE]


def test_a_yuv_source_gets_no_conversion_and_an_hdr_one_goes_to_the_tone_map_as_it_is() -> None:
    plan = next(p for p in PLANS.values() if not (p.scale or p.crop or p.deinterlace))
    size = (plan.width, plan.height)
    # Only what brings a picture that changes partway to its first size, with the scaler
    # ffmpeg would otherwise put before the encoder, to the same bytes.
    assert values(build_args("ffmpeg", SRC, DST, plan), "-filter:v:0") == [
        fit_picture(*size, first=size, flags="bicubic", chroma="left")
    ]
    assert source_filters(deinterlace=False) == []
    hdr = source_filters(deinterlace=False, hdr_transfer="smpte2084", rgb=True)
    assert hdr == [tone_map("smpte2084")]  # its first zscale reads RGB itself


@pytest.mark.parametrize("key", sorted(PLANS))
def test_container_flags(key: str) -> None:
    plan = PLANS[key]
    args = build_args("ffmpeg", SRC, DST, plan)
    if plan.container == "mp4":
        assert values(args, "-f") == ["mp4"]
        assert values(args, "-tag:v:0") == ["hvc1"]
        # A cover lives in iTunes-style metadata, which use_metadata_tags would replace.
        flags = "+faststart" if plan.covers else "+faststart+use_metadata_tags"
        assert values(args, "-movflags") == [flags]
    else:
        assert values(args, "-f") == ["matroska"]
        assert values(args, "-tag:v:0") == []
        assert values(args, "-movflags") == []


@pytest.mark.parametrize("key", sorted(PLANS))
@pytest.mark.parametrize("teed", [False, True])
def test_outputs_are_bitexact_so_a_rerun_makes_the_same_bytes(key: str, teed: bool) -> None:
    stream = Path("/scratch/stream.hevc") if teed else None
    args = build_args("ffmpeg", SRC, DST, PLANS[key], stream=stream)
    assert values(args, "-fflags") == ["+bitexact"]  # the tee hands it on to its outputs
    [flags] = values(args, "-flags")  # one for every encoder: a second would override it
    assert "+bitexact" in flags
    assert ("+global_header" in flags) is teed


@pytest.mark.parametrize("key", sorted(PLANS))
def test_audio_and_subtitle_codecs_per_output_stream(key: str) -> None:
    plan = PLANS[key]
    args = build_args("ffmpeg", SRC, DST, plan)
    for n, (_, mode) in enumerate(plan.audio):
        assert values(args, f"-c:a:{n}") == [mode]
        bitrate = [f"{plan.audio_bitrate_kbps}k"] if mode == "aac" else []
        assert values(args, f"-b:a:{n}") == bitrate
        # Every encoder gets the layouts it writes; a layout on the list passes as it is.
        layouts = (
            [f"aformat=channel_layouts={AUDIO_LAYOUTS[mode]}"] if mode in AUDIO_LAYOUTS else []
        )
        assert values(args, f"-filter:a:{n}") == layouts
    for n, (_, mode) in enumerate(plan.subtitles):
        assert values(args, f"-c:s:{n}") == [mode]
    assert values(args, "-c:t") == (["copy"] if plan.attachments else [])


@pytest.mark.parametrize(("mode", "audio_codec"), [("aac", "aac"), ("libopus", "opus")])
def test_a_stream_without_a_layout_to_remix_is_cut_to_its_first_pair_first(
    mode: str, audio_codec: str
) -> None:
    base = PLANS["landscape_1080-hevc"]
    plan = dataclasses.replace(
        base, audio=((1, mode), (2, mode)), audio_first_pair=(2,), audio_bitrate_kbps=128
    )
    args = build_args("ffmpeg", SRC, DST, plan)
    assert values(args, "-filter:a:0") == [f"aformat=channel_layouts={AUDIO_LAYOUTS[mode]}"]
    assert values(args, "-filter:a:1") == [
        f"{FIRST_PAIR},aformat=channel_layouts={AUDIO_LAYOUTS[mode]}"
    ]


@pytest.mark.parametrize(
    ("channels", "layout", "first_pair"),
    [
        (2, "stereo", False),
        (2, "2 channels", False),  # unnamed: the default layout, stereo
        (2, "", False),
        (2, "downmix", True),  # QuickTime's matrix stereo: swresample would make it mono
        (2, "binaural", True),  # swresample cannot remix it at all
        (6, "5.1(side)", False),
        (8, "8 channels", False),
        (10, "5.1.4", False),  # counts with a default layout remix to the encoder's own
        (16, "16 channels", False),
        (9, "9 channels", True),  # no default layout for 9, 11, 20: nothing to remix from
        (11, "11 channels", True),
        (20, "", True),
    ],
)
def test_which_streams_are_cut_to_their_first_pair(
    channels: int, layout: str, first_pair: bool
) -> None:
    assert first_pair_only(channels, layout) is first_pair


@pytest.mark.parametrize(
    ("channels", "kbps"),
    [(1, 80), (2, 160), (3, 320), (4, 320), (6, 480), (8, 640), (12, 640), (24, 640)],
)
def test_a_pools_audio_rate_is_for_each_pair_of_channels(channels: int, kbps: int) -> None:
    # A 5.1 film's six channels are three pairs; wider sound is written as 7.1 at most;
    # one channel is half a pair.
    assert encoded_audio_kbps(160, channels) == kbps
    assert encoded_audio_kbps(160, channels, source_kbps=0) == kbps  # 0: none stated


@pytest.mark.parametrize(("pair_kbps", "kbps"), [(160, 80), (128, 64), (48, 32), (24, 24)])
def test_mono_is_half_a_pair_but_never_below_what_one_channel_needs(
    pair_kbps: int, kbps: int
) -> None:
    # A pool set as low as 48 kb/s a pair still gives one channel 32; one set lower
    # than that asked for it.
    assert encoded_audio_kbps(pair_kbps, 1) == kbps


@pytest.mark.parametrize(
    ("channels", "source_kbps", "kbps"),
    [
        (1, 13, 32),  # a phone's AMR speech: the least for one channel
        (2, 13, 64),
        (1, 64, 64),  # 8 kHz 8-bit PCM, a 2004 camera's
        (1, 768, 80),  # 16-bit PCM mono, a lecture's: half a pair
        (2, 96, 96),  # WMA
        (2, 192, 160),  # MPEG audio above the pool's rate: the pool's
        (6, 448, 448),  # AC-3 5.1: its own, below three pairs' 480
        (6, 1509, 480),  # DTS 5.1
        (6, 4608, 480),  # 24-bit PCM 5.1
        (6, 100, 192),  # the least for six channels
    ],
)
def test_no_stream_is_encoded_above_the_rate_its_source_states(
    channels: int, source_kbps: int, kbps: int
) -> None:
    assert encoded_audio_kbps(160, channels, source_kbps) == kbps


def test_surround_sound_that_is_encoded_gets_the_rate_of_its_pairs() -> None:
    """A 5.1 or 7.1 stream the container cannot take (PCM from an editor or a camera,
    DTS or TrueHD in MP4) was encoded at the pool's stereo rate: 160 kb/s across eight
    channels, 20 kb/s each. A copied stream, a stereo one and a stream cut to its first
    pair keep the pool's rate."""
    streams = (
        AudioStream(1, "pcm_s24le", channels=8, layout="7.1", bit_rate_kbps=9216),
        AudioStream(2, "dts", channels=6, layout="5.1(side)", bit_rate_kbps=1509),
        AudioStream(3, "ac3", channels=6, layout="5.1(side)", bit_rate_kbps=448),  # copied
        AudioStream(4, "pcm_s16le", channels=2, layout="stereo", bit_rate_kbps=1536),
        AudioStream(5, "pcm_s16le", channels=11, bit_rate_kbps=8448),  # no layout: a pair
        AudioStream(6, "pcm_s16le", channels=1, layout="mono", bit_rate_kbps=768),
        AudioStream(7, "truehd", channels=8, layout="7.1"),  # states no rate
    )
    info = dataclasses.replace(clip(1920, 1080), audio=streams)
    plan = decide(info, FARM["hevc"], "film.mov")
    assert isinstance(plan, EncodePlan)
    assert plan.audio_rates == ((1, 640), (2, 480), (6, 80), (7, 640))
    args = build_args("ffmpeg", SRC, DST, plan)
    rates = [values(args, f"-b:a:{n}") for n in range(len(streams))]
    assert rates == [["640k"], ["480k"], [], ["160k"], ["160k"], ["80k"], ["640k"]]


def test_sound_is_not_encoded_above_its_own_rate_unless_its_shape_changes() -> None:
    """A phone's AMR speech (12.2 kb/s) was given the pool's rate, as much of it as the
    encoder takes: more bytes than its picture in a small 3GP, for nothing heard. A
    stream whose shape changes states the rate of its first stretch only, which is no
    limit for a wider one later."""
    streams = (
        AudioStream(1, "amr_nb", channels=1, layout="mono", bit_rate_kbps=13),
        AudioStream(2, "mp2", channels=2, layout="stereo", bit_rate_kbps=96),
        AudioStream(3, "mp2", channels=6, bit_rate_kbps=192, varies=True),
    )
    info = dataclasses.replace(clip(1920, 1080), audio=streams)
    plan = decide(info, FARM["hevc"], "phone.3gp")
    assert isinstance(plan, EncodePlan)
    assert plan.audio_rates == ((1, 32), (2, 96), (3, 480))


def test_mp4_keeps_cover_art_as_copied_attached_pictures() -> None:
    plan = PLANS["mp4_cover-hevc"]
    args = build_args("ffmpeg", SRC, DST, plan)
    assert values(args, "-map")[-1] == "0:2"  # after the video (0) and the audio (1)
    assert values(args, "-c:v:1") == ["copy"]
    assert values(args, "-disposition:v:1") == ["attached_pic"]
    assert "-attach" not in args
    # Every option of the encoded video names it: for all video streams, a filter or a
    # tag would reach the copied picture too (ffmpeg refuses to filter a copied stream).
    for flag in ("-c:v", "-vf", "-pix_fmt", "-profile:v", "-tag:v", "-fps_mode:v"):
        assert flag not in args


def test_an_mp4_output_drops_a_cover_it_cannot_hold() -> None:
    plan = PLANS["mp4_gif_cover-hevc"]
    assert plan.covers == ()
    assert "-disposition:v:1" not in build_args("ffmpeg", SRC, DST, plan)


def test_matroska_attaches_cover_art_after_the_attachments_it_copies() -> None:
    plan = PLANS["mkv_font_and_covers-hevc"]
    assert plan.attachments
    assert plan.source_attachments == 1
    args = build_args("ffmpeg", SRC, DST, plan, covers=Path("/scratch/job"))
    assert values(args, "-attach") == ["file:/scratch/job/cover-0", "file:/scratch/job/cover-1"]
    # The copied font is the output's attachment 0; the covers are 1 and 2.
    assert values(args, "-metadata:s:t:1") == ["mimetype=image/png", "filename=cover.png"]
    assert values(args, "-metadata:s:t:2") == ["mimetype=image/jpeg", "filename=cover_land.jpg"]
    assert "-disposition:v:1" not in args
    # By default the covers are looked for beside the output.
    default = build_args("ffmpeg", SRC, DST, plan)
    assert values(default, "-attach")[0] == f"file:{DST.parent / 'cover-0'}"


def test_portrait_phone_clip_exact_command() -> None:
    plan = PLANS["portrait_rot90-720p"]
    assert build_args("ffmpeg", SRC, DST, plan) == [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-noautorotate",
        "-i",
        f"file:{SRC}",
        "-map_metadata",
        "0",
        "-map",
        "0:0",
        "-filter:v:0",
        fit_picture(1280, 720, first=(1920, 1080)),
        "-c:v:0",
        "libx265",
        "-preset",
        "medium",
        "-crf",
        "28",
        "-pix_fmt:v:0",
        "yuv420p",
        "-profile:v:0",
        "main",
        "-x265-params",
        "log-level=error",
        "-fps_mode:v:0",
        "passthrough",
        "-enc_time_base:v:0",
        "filter",
        "-map",
        "0:1",
        "-c:a:0",
        "copy",
        "-tag:v:0",
        "hvc1",
        "-fflags",
        "+bitexact",
        "-flags",
        "+bitexact",
        "-movflags",
        "+faststart+use_metadata_tags",
        "-f",
        "mp4",
        "-progress",
        "pipe:1",
        "-nostats",
        f"file:{DST}",
    ]


def test_pcm_audio_is_encoded_to_aac_at_the_pool_bitrate() -> None:
    args = build_args("ffmpeg", SRC, DST, PLANS["pcm_audio_mov-720p"])
    assert values(args, "-c:a:0") == ["aac"]
    assert values(args, "-b:a:0") == ["128k"]


def test_threads_limit_decoder_and_x265_pool() -> None:
    args = build_args("ffmpeg", SRC, DST, PLANS["landscape_1080-hevc"], threads=2)
    assert args.index("-threads") < args.index("-i")
    assert values(args, "-threads") == ["2"]
    assert "pools=2" in values(args, "-x265-params")[0].split(":")


def test_pool_params_are_merged_and_log_level_stays_error() -> None:
    plan = dataclasses.replace(
        PLANS["landscape_1080-hevc"], x265_params={"aq-mode": "3", "log-level": "full"}
    )
    params = values(build_args("ffmpeg", SRC, DST, plan), "-x265-params")[0]
    assert params == "aq-mode=3:log-level=error"


@pytest.mark.parametrize("params", [{"bad:key": "1"}, {"key": "a:b"}, {"": "1"}, {"k=v": "1"}])
def test_params_that_break_the_x265_syntax_are_rejected(params: dict[str, str]) -> None:
    plan = dataclasses.replace(PLANS["landscape_1080-hevc"], x265_params=params)
    with pytest.raises(ConfigError, match="x265_params"):
        build_args("ffmpeg", SRC, DST, plan)


def test_hostile_file_names_stay_single_arguments() -> None:
    src = Path("/lib/-y; rm -rf ~ $(x).mp4")
    args = build_args("ffmpeg", src, DST, PLANS["landscape_1080-hevc"])
    assert values(args, "-i") == [f"file:{src}"]


def test_a_window_is_read_by_input_options_before_the_source() -> None:
    """A sample read in place: seek and length are the source's input options, so ffmpeg
    decodes from the keyframe before the start and keeps the window's frames alone."""
    plan = PLANS[sorted(PLANS)[0]]
    args = build_args("ffmpeg", SRC, DST, plan, window=(125.5, 20.0))
    i = args.index("-i")
    assert args[i - 4 : i] == ["-ss", "125.500", "-t", "20.000"]
    assert build_args("ffmpeg", SRC, DST, plan) == [
        a for n, a in enumerate(args) if not i - 4 <= n < i
    ]
