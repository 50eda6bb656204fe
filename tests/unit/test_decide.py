"""decide(): every source shape against every pool of the real farm definition."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hevcq.formats import CONTAINERS, Container
from hevcq.media.decide import (
    audio_plan,
    cover_plan,
    decide,
    expected_frames,
    fit_short_side,
    saves_nothing,
    subtitle_plan,
)
from hevcq.media.ffargs import build_args
from hevcq.media.model import (
    AudioStream,
    EncodePlan,
    MediaInfo,
    Skip,
    SubtitleStream,
    VideoStream,
)
from hevcq.pools import Pool, load_farm
from tests.unit.media_shapes import MKV, SHAPES, clip

# The pools that make one file; a ladder pool's decision is its ladder's (test_ladder_pool).
FARM = {name: p for name, p in load_farm().items() if p.ladder is None}

# (shape, pool) -> "skip: <text the reason must contain>" or (coded width, height, filter)
Expected = str | tuple[int, int, str]
EXPECTED: dict[str, dict[str, Expected]] = {
    "landscape_1080": {
        "hevc": (1920, 1080, ""),
        "720p": (1280, 720, "scale"),
        "1080p": (1920, 1080, ""),
    },
    "portrait_rot90": {
        "hevc": (1920, 1080, ""),
        "720p": (1280, 720, "scale"),
        "1080p": (1920, 1080, ""),
    },
    "upside_down_rot180": {
        "hevc": (1920, 1080, ""),
        "720p": (1280, 720, "scale"),
        "1080p": (1920, 1080, ""),
    },
    "portrait_rot270": {
        "hevc": (1920, 1080, ""),
        "720p": (1280, 720, "scale"),
        "1080p": (1920, 1080, ""),
    },
    "portrait_coded": {
        "hevc": (1080, 1920, ""),
        "720p": (720, 1280, "scale"),
        "1080p": (1080, 1920, ""),
    },
    "odd_size_big": {
        "hevc": (1920, 1080, "crop"),
        "720p": (1280, 720, "scale"),
        "1080p": (1920, 1080, "scale"),
    },
    "odd_size_small": {
        "hevc": (320, 240, "crop"),
        "720p": "skip: 321x241, smaller than 720p",
        "1080p": "skip: 321x241, smaller than 1080p",
    },
    "ten_bit": {
        "hevc": (3840, 2160, ""),
        "720p": (1280, 720, "scale"),
        "1080p": (1920, 1080, "scale"),
    },
    "pcm_audio_mov": {
        "hevc": (1920, 1080, ""),
        "720p": (1280, 720, "scale"),
        "1080p": (1920, 1080, ""),
    },
    "mkv_2audio_srt_attachment": {
        "hevc": (1920, 800, ""),
        "720p": (1728, 720, "scale"),
        "1080p": "skip: source is 1920x800, smaller than 1080p",
    },
    "mp4_cover": {
        "hevc": (1280, 720, ""),
        "720p": (1280, 720, ""),
        "1080p": "skip: smaller than 1080p",
    },
    "mkv_font_and_covers": {
        "hevc": (1920, 1080, ""),
        "720p": (1280, 720, "scale"),
        "1080p": (1920, 1080, ""),
    },
    "mp4_gif_cover": {
        "hevc": (1280, 720, ""),
        "720p": (1280, 720, ""),
        "1080p": "skip: smaller than 1080p",
    },
    "mp4_mov_text": {
        "hevc": (1280, 720, ""),
        "720p": (1280, 720, ""),
        "1080p": "skip: smaller than 1080p",
    },
    "mp4_mixed_subs": {
        "hevc": (1920, 1080, ""),
        "720p": (1280, 720, "scale"),
        "1080p": (1920, 1080, ""),
    },
    "already_hevc": {
        "hevc": "skip: already HEVC",
        "720p": "skip: already HEVC at 1280x720",
        "1080p": "skip: 1280x720, smaller than 1080p",
    },
    "vp9_webm": {
        "hevc": "skip: source codec vp9 is not handled by pool hevc",
        "720p": (1280, 720, "scale"),
        "1080p": (1920, 1080, ""),
    },
    "no_video": {
        "hevc": "skip: no video stream",
        "720p": "skip: no video stream",
        "1080p": "skip: no video stream",
    },
    "cover_art_only": {
        "hevc": "skip: no video stream",
        "720p": "skip: no video stream",
        "1080p": "skip: no video stream",
    },
    "smaller_than_targets": {
        "hevc": (640, 360, ""),
        "720p": "skip: 640x360, smaller than 720p",
        "1080p": "skip: 640x360, smaller than 1080p",
    },
    "equal_720": {
        "hevc": (1280, 720, ""),
        "720p": (1280, 720, ""),
        "1080p": "skip: 1280x720, smaller than 1080p",
    },
    "equal_1080_portrait": {
        "hevc": (1920, 1080, ""),
        "720p": (1280, 720, "scale"),
        "1080p": (1920, 1080, ""),
    },
}

CASES = [(shape, pool) for shape in SHAPES for pool in sorted(FARM)]
ENCODE_CASES = [(s, p) for s, p in CASES if not isinstance(EXPECTED[s][p], str)]


@pytest.mark.parametrize(
    ("container", "covers"),
    [
        # MP4 names none of its covers, and GIF is not a picture its muxer writes as one.
        ("mp4", [("png", "cover.png", "image/png"), ("mjpeg", "cover2.jpg", "image/jpeg")]),
        # A Matroska attachment needs a name: the source's, or one made up.
        (
            "mkv",
            [
                ("png", "cover.png", "image/png"),
                ("mjpeg", "cover2.jpg", "image/jpeg"),
                ("gif", "cover3.gif", "image/gif"),
            ],
        ),
        ("webm", []),  # WebM holds no attachments
    ],
)
def test_cover_art_is_kept_where_the_container_holds_it(
    container: str, covers: list[tuple[str, str, str]]
) -> None:
    info = clip(1280, 720, covers=(("png", ""), ("mjpeg", ""), ("gif", "")), format_name=MKV)
    planned = cover_plan(info.video, CONTAINERS[container])
    assert [(c.codec, c.filename, c.mimetype) for c in planned] == covers
    assert [c.index for c in planned] == [2, 3, 4][: len(covers)]


def test_a_covers_name_and_type_are_kept_and_the_tee_is_not_used() -> None:
    info = clip(1280, 720, covers=(("mjpeg", "folder.jpg"),), format_name=MKV)
    plan = decide(info, FARM["hevc"], "gig.mkv")
    assert isinstance(plan, EncodePlan)
    assert [(c.index, c.filename, c.mimetype) for c in plan.covers] == [
        (2, "folder.jpg", "image/jpeg")
    ]
    assert plan.tee_safe is False  # the tee's raw copy would take the picture stream too


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("folder.jpg", "folder.jpg"),
        ("../../.ssh/authorized_keys", "authorized_keys"),  # a name, never a path
        ("C:\\Users\\me\\cover.jpg", "cover.jpg"),
        ("bad\nname\x00.jpg", "badname.jpg"),
        ("..", "cover.jpg"),
        ("", "cover.jpg"),
        ("é" * 300, "é" * 127),  # 254 bytes: within 255, whole characters
        ("x" * 10_000_000 + ".jpg", "x" * 255),  # at once, however long
    ],
)
def test_a_cover_keeps_its_name_as_a_bounded_name_not_a_path(given: str, kept: str) -> None:
    info = clip(1280, 720, covers=(("mjpeg", given),), format_name=MKV)
    [cover] = cover_plan(info.video, CONTAINERS["mkv"])
    assert cover.filename == kept


@pytest.mark.parametrize(
    ("given", "kept"),
    [("image/png", "image/png"), ("text/x; rm -rf /", "image/jpeg"), ("x" * 200, "image/jpeg")],
)
def test_a_covers_mime_type_is_kept_only_when_it_is_one(given: str, kept: str) -> None:
    picture = VideoStream(2, "mjpeg", 600, 600, "", 8, attached_pic=True, mimetype=given)
    [cover] = cover_plan((picture,), CONTAINERS["mkv"])
    assert cover.mimetype == kept


def _dashcam(cabin: str = "h264") -> MediaInfo:
    """A dual dashcam's recording: the road at 1920x1080, the cabin as a second track,
    its cover last."""
    road = VideoStream(0, "h264", 1920, 1080, "yuv420p", 8, fps=30.0)
    inside = VideoStream(1, cabin, 1280, 720, "yuv420p", 8, fps=30.0)
    cover = VideoStream(3, "png", 600, 600, "", 8, attached_pic=True)
    return MediaInfo("mov,mp4,m4a,3gp,3g2,mj2", 60.0, 10**8, (road, inside, cover),
                     (AudioStream(2, "aac"),))  # fmt: skip


def test_a_second_video_stream_is_copied_after_the_main_one_in_an_output_of_its_size() -> None:
    # It was left out: the cabin camera's picture was gone from the output, which could
    # never stand in for the original.
    plan = decide(_dashcam(), FARM["hevc"], "2026_0101_120000_F.MP4")
    assert isinstance(plan, EncodePlan)
    assert plan.extra_video == (1,)
    assert plan.tee_safe is False  # the tee's raw copy would take the copied picture too
    args = build_args("ffmpeg", Path("in.mp4"), Path("out.mp4"), plan)
    maps = [args[i + 1] for i, a in enumerate(args) if a == "-map"]
    assert maps == ["0:0", "0:1", "0:2", "0:3"]  # main, the copy, sound, cover
    assert args[args.index("0:1") + 1 : args.index("0:1") + 3] == ["-c:v:1", "copy"]
    assert "-c:v:2" in args  # the cover is the third video stream
    assert args[args.index("-c:v:2") + 1] == "copy"
    assert args[args.index("-disposition:v:2") + 1] == "attached_pic"


def test_a_rendition_or_a_container_that_cannot_hold_it_leaves_a_second_video_out() -> None:
    smaller = decide(_dashcam(), FARM["720p"], "trip.mp4")
    assert isinstance(smaller, EncodePlan)
    assert smaller.scale
    assert smaller.extra_video == ()
    vp8 = decide(_dashcam(cabin="vp8"), FARM["hevc"], "trip.mp4")  # MP4 holds no VP8
    assert isinstance(vp8, EncodePlan)
    assert vp8.extra_video == ()


def test_the_table_covers_every_shape_and_pool() -> None:
    assert set(FARM) == {"hevc", "720p", "1080p"}
    assert {(s, p) for s, pools in EXPECTED.items() for p in pools} == set(CASES)


@pytest.mark.parametrize(
    ("width", "height", "codec", "rotation", "expected"),
    [
        (1280, 718, "hevc", 0, "skip: smaller than 720p"),
        (1280, 720, "hevc", 0, "skip: already HEVC at 1280x720, the 720p size"),
        (1280, 720, "hevc", 90, "skip: already HEVC at 720x1280, the 720p size"),
        (1282, 722, "hevc", 0, "encode"),
        # Not HEVC yet: the rendition is the only HEVC copy unless another pool makes one.
        (1280, 720, "h264", 0, "encode"),
    ],
)
def test_a_rendition_the_size_of_an_hevc_source_is_not_made(
    width: int, height: int, codec: str, rotation: int, expected: str
) -> None:
    decision = decide(clip(width, height, codec=codec, rotation=rotation), FARM["720p"], "a.mp4")
    if expected == "encode":
        assert isinstance(decision, EncodePlan)
    else:
        assert isinstance(decision, Skip)
        assert expected.removeprefix("skip: ") in decision.reason


@pytest.mark.parametrize(("shape", "pool"), CASES)
def test_decision_per_shape_and_pool(shape: str, pool: str) -> None:
    name, info = SHAPES[shape]
    decision = decide(info, FARM[pool], name)
    expected = EXPECTED[shape][pool]
    if isinstance(expected, str):
        assert isinstance(decision, Skip)
        assert expected.removeprefix("skip: ") in decision.reason
        return
    assert isinstance(decision, EncodePlan)
    width, height, video_filter = expected
    assert (decision.width, decision.height) == (width, height)
    assert decision.scale == (video_filter == "scale")
    assert decision.crop == (video_filter == "crop")
    assert decision.width % 2 == 0
    assert decision.height % 2 == 0


@pytest.mark.parametrize(("shape", "pool"), ENCODE_CASES)
def test_plans_carry_source_facts_and_pool_settings(shape: str, pool: str) -> None:
    name, info = SHAPES[shape]
    decision = decide(info, FARM[pool], name)
    assert isinstance(decision, EncodePlan)
    video = info.main_video
    assert video is not None
    assert decision.pool == pool
    assert decision.rotation == video.rotation
    assert decision.ten_bit == (video.bit_depth == 10)
    assert decision.crf == FARM[pool].encode.crf
    assert decision.audio_bitrate_kbps == FARM[pool].encode.audio_bitrate_kbps
    assert decision.expected_duration_s == info.duration_s
    assert decision.expected_frames == 300  # 12.5 s at 24 fps
    assert [i for i, _ in decision.audio] == [a.index for a in info.audio]
    assert decision.container == ("matroska" if name.endswith((".mkv", ".webm")) else "mp4")


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_rendition_targets_the_short_display_side(rotation: int) -> None:
    plan = decide(clip(1920, 1080, rotation=rotation), FARM["720p"], "a.mp4")
    assert isinstance(plan, EncodePlan)
    display = (plan.height, plan.width) if rotation in (90, 270) else (plan.width, plan.height)
    assert min(display) == 720
    assert plan.rotation == rotation


@pytest.mark.parametrize(
    ("size", "target", "expected"),
    [
        ((1920, 1080), 720, (1280, 720)),
        ((1080, 1920), 720, (720, 1280)),
        ((1440, 1080), 720, (960, 720)),  # 4:3
        ((1080, 1080), 720, (720, 720)),
        ((4096, 2160), 1080, (2048, 1080)),
        ((1918, 1080), 720, (1278, 720)),  # 1278.67 rounds to the nearest even width
        ((1920, 1080), 1080, (1920, 1080)),
    ],
)
def test_fit_short_side(size: tuple[int, int], target: int, expected: tuple[int, int]) -> None:
    assert fit_short_side(*size, target) == expected


@pytest.mark.parametrize(
    ("codec", "container", "mode"),
    [
        ("aac", "mp4", "copy"),
        ("mp3", "mp4", "copy"),
        ("ac3", "mp4", "copy"),
        ("eac3", "mp4", "copy"),
        ("alac", "mp4", "copy"),
        ("opus", "mp4", "copy"),
        ("pcm_s16le", "mp4", "aac"),
        ("dts", "mp4", "aac"),
        ("truehd", "mp4", "aac"),
        ("flac", "mp4", "aac"),
        ("dts", "matroska", "copy"),
        ("flac", "matroska", "copy"),
        ("pcm_s24le", "matroska", "copy"),
        ("vorbis", "matroska", "copy"),
        ("qdm2", "matroska", "aac"),
    ],
)
def test_audio_copy_or_aac(codec: str, container: str, mode: str) -> None:
    info = clip(640, 360, audio=(codec,))
    assert audio_plan(info.audio, _box(container)) == ((1, mode),)


@pytest.mark.parametrize(
    ("rate", "container", "mode"),
    [
        (8000, "mp4", "aac"),  # MPEG-2.5: the MP4 muxer refuses it as "not standard"
        (11025, "mp4", "aac"),
        (12000, "mp4", "aac"),
        (16000, "mp4", "copy"),  # MPEG-2
        (44100, "mp4", "copy"),
        (0, "mp4", "copy"),  # not read: as before
        (8000, "matroska", "copy"),
    ],
)
def test_mp3_below_16_khz_is_encoded_for_mp4(rate: int, container: str, mode: str) -> None:
    info = clip(640, 360, audio=("mp3",))
    info = dataclasses.replace(info, audio=(dataclasses.replace(info.audio[0], sample_rate=rate),))
    assert audio_plan(info.audio, _box(container)) == ((1, mode),)


def test_mp4_subtitles_text_converted_mov_text_copied_bitmaps_dropped() -> None:
    subs = tuple(
        SubtitleStream(i, c)
        for i, c in enumerate(
            ["subrip", "ass", "webvtt", "mov_text", "dvd_subtitle", "hdmv_pgs_subtitle"]
        )
    )
    assert subtitle_plan(subs, _box("mp4")) == (
        (0, "mov_text"),
        (1, "mov_text"),
        (2, "mov_text"),
        (3, "copy"),
    )
    # Matroska keeps every stream, mov_text (which it cannot carry) as SubRip.
    mkv = tuple((i, "srt" if c == "mov_text" else "copy") for i, c in enumerate(_codecs(subs)))
    assert subtitle_plan(subs, _box("matroska")) == mkv
    assert subtitle_plan(subs, _box("webm")) == (
        (0, "webvtt"),
        (1, "webvtt"),
        (2, "copy"),
        (3, "webvtt"),
    )


def _codecs(subs: tuple[SubtitleStream, ...]) -> list[str]:
    return [s.codec for s in subs]


def _box(muxer: str) -> Container:
    return next(c for c in CONTAINERS.values() if c.muxer == muxer)


def test_mkv_keeps_subtitles_and_attachments() -> None:
    name, info = SHAPES["mkv_2audio_srt_attachment"]
    plan = decide(info, FARM["hevc"], name)
    assert isinstance(plan, EncodePlan)
    assert plan.audio == ((1, "copy"), (2, "copy"))
    assert plan.subtitles == ((3, "copy"),)
    assert plan.attachments is True


def test_mp4_output_of_mkv_never_plans_attachments() -> None:
    info = clip(640, 360, attachments=2, subtitles=("subrip",))
    plan = decide(info, FARM["hevc"], "renamed.mp4")
    assert isinstance(plan, EncodePlan)
    assert plan.attachments is False
    assert plan.subtitles == ((2, "mov_text"),)


def test_pool_without_subtitles_drops_them_and_attachments() -> None:
    pool = _with_encode(FARM["hevc"], keep_subtitles=False)
    name, info = SHAPES["mkv_2audio_srt_attachment"]
    plan = decide(info, pool, name)
    assert isinstance(plan, EncodePlan)
    assert plan.subtitles == ()
    assert plan.attachments is False


def test_pool_x265_params_are_copied_not_shared() -> None:
    pool = _with_encode(FARM["hevc"], x265_params={"aq-mode": "3"})
    plan = decide(clip(640, 360), pool, "a.mp4")
    assert isinstance(plan, EncodePlan)
    assert plan.x265_params == {"aq-mode": "3"}
    plan.x265_params["aq-mode"] = "1"
    assert pool.encode.x265_params == {"aq-mode": "3"}


def test_cover_art_is_not_the_main_video() -> None:
    info = clip(1280, 720)
    cover = dataclasses.replace(info.video[0], index=9, attached_pic=True, codec="mjpeg")
    info = dataclasses.replace(info, video=(cover, info.video[0]))
    plan = decide(info, FARM["hevc"], "a.mp4")
    assert isinstance(plan, EncodePlan)
    assert plan.video_index == 0


def _with_encode(pool: Pool, **changes: object) -> Pool:
    encode = pool.encode.model_copy(update=changes)
    return pool.model_copy(update={"encode": encode})


@pytest.mark.parametrize(
    ("pool", "out_bytes", "in_bytes", "expected"),
    [
        ("hevc", 101, 100, True),
        ("hevc", 100, 100, True),  # equal saves nothing either
        ("hevc", 99, 100, False),
        ("720p", 500, 100, False),  # a rendition is another size on purpose
    ],
)
def test_an_output_that_saves_nothing(pool: str, out_bytes: int, in_bytes: int, expected) -> None:
    assert saves_nothing(FARM[pool], out_bytes, in_bytes) is expected


@pytest.mark.parametrize(
    ("duration", "fps", "expected"),
    [
        (10.0, 29.97, 300),
        (0.01, 24.0, 1),
        (None, 24.0, None),
        (10.0, None, None),
        (0.0, 24.0, None),
    ],
)
def test_expected_frames(duration: float | None, fps: float | None, expected: int | None) -> None:
    assert expected_frames(duration, fps) == expected


@pytest.mark.parametrize(
    ("size", "pool", "outcome"),
    [
        # A few kilobytes of one colour at 8192x8192 took x265 to 4.2 GB: more than a
        # worker's task has, and more than any codec's top level allows.
        ((8192, 8192), "hevc", "picture 8192x8192 is larger than any video stream may hold"),
        ((8192, 8192), "720p", (720, 720)),
        ((8192, 8192), "1080p", (1080, 1080)),
        # 8K full frame is the top level's own size, and an 8K UHD source its width.
        ((8192, 4352), "hevc", (8192, 4352)),
        ((7680, 4320), "hevc", (7680, 4320)),
        ((20000, 1080), "hevc", "picture 20000x1080 is larger than any video stream may hold"),
    ],
)
def test_a_picture_larger_than_a_stream_may_be_is_encoded_only_smaller(
    size: tuple[int, int], pool: str, outcome: str | tuple[int, int]
) -> None:
    got = decide(clip(*size), FARM[pool], "big.mp4")
    if isinstance(outcome, str):
        assert isinstance(got, Skip)
        assert got.reason.startswith(outcome)
    else:
        assert isinstance(got, EncodePlan)
        assert (got.width, got.height) == outcome


def test_a_ladder_of_a_huge_picture_tops_out_where_streams_do() -> None:
    hls = load_farm()["hls"]
    assert isinstance(decide(clip(8192, 8192), hls, "big.mp4"), EncodePlan)
    # So wide that even the 240-pixel rung is wider than any stream: no ladder at all.
    assert isinstance(decide(clip(65536, 240), hls, "wide.mp4"), Skip)


@pytest.mark.parametrize(
    ("size", "codec", "outcome"),
    [
        ((2, 2), "hevc", "picture too small: 2x2, where HEVC needs at least 16x16"),
        ((15, 100), "hevc", "picture too small: 15x100, where HEVC needs at least 16x16"),
        ((17, 17), "hevc", (16, 16)),  # evened down to what x265 still takes
        ((16, 16), "hevc", (16, 16)),
        ((2, 2), "av1", "picture too small: 2x2, where AV1 needs at least 4x4"),
        ((4, 4), "av1", (4, 4)),
        ((2, 2), "h264", (2, 2)),
        ((1, 1), "h264", "picture too small: 1x1, where H.264 needs at least 2x2"),
        ((1, 64), "vp9", "picture too small: 1x64, where VP9 needs at least 2x2"),
    ],
)
def test_a_picture_smaller_than_the_encoder_takes_is_skipped_with_the_reason(
    size: tuple[int, int], codec: str, outcome: str | tuple[int, int]
) -> None:
    """x265 refused a 2x2 clip ("Image size is too small") on every attempt; each codec's
    smallest side is in its table entry (``formats.VideoCodec.min_side``)."""
    hevc = FARM["hevc"]
    encode = hevc.encode.model_copy(update={"codec": codec, "container": "mkv"})
    applies = hevc.applies.model_copy(update={"source_codecs": ("mpeg4",)})
    pool = hevc.model_copy(update={"encode": encode, "applies": applies})
    got = decide(clip(*size, codec="mpeg4"), pool, "tiny.mkv")
    if isinstance(outcome, str):
        assert isinstance(got, Skip)
        assert got.reason == outcome
    else:
        assert isinstance(got, EncodePlan), got
        assert (got.width, got.height) == outcome


@pytest.mark.parametrize(
    ("groups", "size", "outcome"),
    [
        ((), (2, 2), None),  # H.264 rungs alone take it
        (("hevc",), (2, 2), "picture too small: 2x2, where HEVC needs at least 16x16"),
        (("av1",), (2, 2), "picture too small: 2x2, where AV1 needs at least 4x4"),
        (("hevc", "av1"), (64, 36), None),
    ],
)
def test_a_ladder_is_skipped_when_a_group_cannot_encode_its_smallest_rung(
    groups: tuple[str, ...], size: tuple[int, int], outcome: str | None
) -> None:
    hls = load_farm()["hls"]
    assert hls.ladder is not None
    pool = hls.model_copy(update={"ladder": hls.ladder.model_copy(update={"groups": groups})})
    got = decide(clip(*size), pool, "tiny.mp4")
    if outcome is None:
        assert isinstance(got, EncodePlan), got
    else:
        assert isinstance(got, Skip)
        assert got.reason == outcome


@pytest.mark.parametrize(("container", "kept"), [("mp4", (3,)), ("mkv", ())])
def test_a_gopros_telemetry_is_copied_where_the_container_holds_it(
    container: str, kept: tuple[int, ...]
) -> None:
    info = dataclasses.replace(clip(1920, 1080), telemetry=(3,))
    pool = Pool.model_validate(
        {
            "name": "t",
            "applies": {"source_codecs": ["h264"]},
            "encode": {"container": container},
        }
    )
    plan = decide(info, pool, "GX010001.MP4")
    assert isinstance(plan, EncodePlan)
    assert plan.telemetry == kept
    args = build_args("ffmpeg", Path("/s"), Path("/o"), plan)
    assert ("-c:d:0" in args) == bool(kept)
    # Copied data streams take the plain path, which writes them as ffmpeg does.
    assert not plan.tee_safe or not kept


def test_a_skip_names_a_pools_codecs_only_when_they_are_few() -> None:
    """The hls pool takes over thirty codecs: named in full, a WMV9 or RealVideo file's
    reason filled several lines of the summary for each pool."""
    info = dataclasses.replace(
        clip(640, 360), video=(dataclasses.replace(clip(640, 360).video[0], codec="rv40"),)
    )
    ladder = load_farm()["hls"]
    assert len(ladder.applies.source_codecs) > 8
    skip = decide(info, ladder, "old.rmvb")
    assert isinstance(skip, Skip)
    assert skip.reason == (
        f"source codec rv40 is not handled by pool hls (it takes"
        f" {len(ladder.applies.source_codecs)} codecs, listed in its file's"
        " applies.source_codecs)"
    )
    assert decide(info, FARM["hevc"], "old.rmvb") == Skip(
        "source codec rv40 is not handled by pool hevc (h264)"
    )
