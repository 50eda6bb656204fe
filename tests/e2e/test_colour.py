"""RGB sources (GIFs, screen recordings, lossless captures): made YUV with BT.709's matrix
and tagged so in every pool, and scored in the colours their outputs have (decision 0036).

Pure red is Y 63 in BT.709's video range and Y 81 in BT.601's. Before, an RGB source was
converted by BT.601's matrix and tagged nothing, and players show an untagged HD picture
as BT.709: every saturated colour came out wrong.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from statistics import median

import av
import pytest

from hevcq.media.decide import decide
from hevcq.media.ffargs import build_args
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.ladder import MASTER, build_ladder, read_master, read_media_playlist
from hevcq.media.model import EncodePlan
from hevcq.media.poster import make_poster
from hevcq.media.probe import probe
from hevcq.media.quality import score
from hevcq.pools import load_farm, load_pool
from tests.conftest import WORKERS_DIR

pytestmark = pytest.mark.e2e

RED_BT709 = 63  # 16 + 219 x 0.2126
RED_BT601 = 81  # 16 + 219 x 0.299
BT709, VIDEO_RANGE = 1, 1  # AVColorSpace/Primaries/TRC and AVColorRange numbers
BT470BG, SMPTE170M = 5, 6
# Rewrites an H.264 stream's colour description to "unspecified", as many encoders leave it.
UNSTATED = "h264_metadata=matrix_coefficients=2:colour_primaries=2:transfer_characteristics=2"

# (file name, ffmpeg arguments): each stores its picture as RGB.
RGB_SOURCES = [
    ("screen.mp4", ["-c:v", "libx264rgb", "-qp", "0"]),  # H.264 in RGB, lossless
    ("screen.mov", ["-c:v", "qtrle"]),  # QuickTime Animation
    ("anim.gif", ["-c:v", "gif"]),
]


def make(dest: Path, source: str, codec: list[str], size: str = "640x360") -> Path:
    """A 1 s clip of ``source`` (a lavfi source, made RGB) encoded with ``codec``."""
    args = [find_ffmpeg(), "-loglevel", "error", "-f", "lavfi"]
    sep = ":" if "=" in source else "="
    args += ["-i", f"{source}{sep}size={size}:rate=25:duration=1,format=rgb24"]
    subprocess.run([*args, *codec, str(dest)], check=True)
    return dest


def first_frame(path: Path) -> tuple[int, tuple[int, int, int, int]]:
    """The median luma of ``path``'s first picture, and its colour tags: matrix, range,
    primaries, transfer."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        plane = frame.planes[0]
        data, stride = bytes(plane), plane.line_size
        luma = int(
            median(
                v for y in range(frame.height) for v in data[y * stride : y * stride + frame.width]
            )
        )
        tags = (frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc)
        return luma, tuple(int(t) for t in tags)  # type: ignore[return-value]


def rung_starts(ladder: Path) -> list[Path]:
    """Each video rung's init segment and first media segment joined, one file a rung."""
    variants, _ = read_master(ladder / MASTER)
    joined = []
    for n, variant in enumerate(variants):
        media = read_media_playlist(ladder / variant.uri)
        path = ladder / f"start-{n}.mp4"
        path.write_bytes(media.init.read_bytes() + media.segments[0][1].read_bytes())
        joined.append(path)
    return joined


@pytest.mark.parametrize(("name", "codec"), RGB_SOURCES)
def test_every_rung_of_an_rgb_source_shows_bt709_colours(
    tmp_path: Path, name: str, codec: list[str]
) -> None:
    src = make(tmp_path / name, "color=c=red", codec)
    assert probe(src).main_video.rgb
    build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))
    starts = rung_starts(tmp_path / "hls")
    assert len(starts) == 2  # 360 and 240
    for rung in starts:
        luma, tags = first_frame(rung)
        assert abs(luma - RED_BT709) <= 1, (rung, luma)
        assert tags == (BT709, VIDEO_RANGE, BT709, BT709)


def test_a_yuv_source_keeps_its_own_colours(tmp_path: Path) -> None:
    """Only RGB is converted: a BT.601 source stays BT.601, tagged as it was."""
    src = tmp_path / "dvd.mp4"
    args = [find_ffmpeg(), "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", "color=c=red:size=720x576:rate=25:duration=1,format=rgb24"]
    args += ["-vf", "scale=out_color_matrix=bt601:out_range=tv,format=yuv420p"]
    args += ["-c:v", "libx264", "-bsf:v"]
    args += ["h264_metadata=colour_primaries=5:transfer_characteristics=6:matrix_coefficients=5"]
    subprocess.run([*args, str(src)], check=True)
    build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))
    for rung in rung_starts(tmp_path / "hls"):
        luma, tags = first_frame(rung)
        assert abs(luma - RED_BT601) <= 1
        assert tags == (BT470BG, VIDEO_RANGE, BT470BG, SMPTE170M)


@pytest.mark.parametrize(
    ("size", "matrix", "red", "tags"),
    [
        ("1280x720", "bt709", RED_BT709, (BT709, VIDEO_RANGE, BT709, BT709)),
        ("640x480", "bt601", RED_BT601, (SMPTE170M, VIDEO_RANGE, SMPTE170M, SMPTE170M)),
    ],
)
def test_a_source_that_states_no_colours_has_those_players_assume_stated_on_every_rung(
    tmp_path: Path, size: str, matrix: str, red: int, tags: tuple[int, int, int, int]
) -> None:
    """Players take each rung by its own size: unstated, an HD source's SD rungs were
    shown as BT.601 and its HD ones as BT.709 (tests/e2e/test_colour_browser.py)."""
    src = tmp_path / "unstated.mp4"
    args = [find_ffmpeg(), "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", f"color=c=red:size={size}:rate=25:duration=1,format=rgb24"]
    args += ["-vf", f"scale=out_color_matrix={matrix}:out_range=tv,format=yuv420p"]
    args += ["-c:v", "libx264", "-bsf:v", UNSTATED]
    subprocess.run([*args, str(src)], check=True)
    assert probe(src).main_video.colours == (2, 2, 2)
    build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))
    starts = rung_starts(tmp_path / "hls")
    assert len(starts) == (4 if size == "1280x720" else 3)  # from 720 or 480 down to 240
    for rung in starts:
        luma, stated = first_frame(rung)
        assert abs(luma - red) <= 1  # the picture itself is left as it is
        assert stated == tags


def encode(src: Path, pool_name: str, dst: Path, **change: object) -> Path:
    """``src`` encoded as the pool plans it (with ``change`` made to the plan)."""
    farm = load_farm()
    pool = farm.get(pool_name) or load_pool(WORKERS_DIR / "optional" / f"{pool_name}.yaml")
    plan = decide(probe(src), pool, src.name)
    assert isinstance(plan, EncodePlan), plan
    plan = dataclasses.replace(plan, **change)  # type: ignore[arg-type]
    subprocess.run(build_args(find_ffmpeg(), src, dst, plan), check=True)
    return dst


@pytest.mark.parametrize(
    ("pool", "name", "codec", "out"),
    [
        ("hevc", "screen.mp4", ["-c:v", "libx264rgb", "-qp", "0"], "out.mkv"),
        ("av1", "screen.mov", ["-c:v", "qtrle"], "out.webm"),
        ("av1", "anim.gif", ["-c:v", "gif"], "out.webm"),
    ],
)
def test_a_file_pool_makes_an_rgb_source_bt709(
    tmp_path: Path, pool: str, name: str, codec: list[str], out: str
) -> None:
    src = make(tmp_path / name, "color=c=red", codec)
    luma, tags = first_frame(encode(src, pool, tmp_path / out))
    assert abs(luma - RED_BT709) <= 1
    assert tags == (BT709, VIDEO_RANGE, BT709, BT709)


def test_an_rgb_source_is_scored_in_the_colours_its_outputs_have(tmp_path: Path) -> None:
    """The score converts the source as the encode does. Converted by BT.601's matrix
    instead, the same picture scores points lower: the score sees the colours."""
    src = make(tmp_path / "screen.mp4", "testsrc2", ["-c:v", "libx264rgb", "-qp", "0"])
    ours = score(find_ffmpeg(), src, encode(src, "hevc", tmp_path / "a.mkv"), neg=False)
    assert ours.mean >= 95
    old = encode(src, "hevc", tmp_path / "b.mkv", rgb=False)  # left to ffmpeg: BT.601
    assert first_frame(old)[1][0] != BT709
    assert score(find_ffmpeg(), src, old, neg=False).mean <= ours.mean - 3


# (file name, the picture's size, its ffmpeg arguments): red in every way a source holds it.
RED_SOURCES = [
    ("phone.mp4", "1280x720", ["-vf", "scale=out_color_matrix=bt709:out_range=tv"]),
    ("dvd.mp4", "720x480", ["-vf", "scale=out_color_matrix=bt601:out_range=tv"]),
    ("unstated-hd.mp4", "1280x720", ["-vf", "scale=out_color_matrix=bt709", "-bsf:v", UNSTATED]),
    ("unstated-sd.mp4", "640x480", ["-vf", "scale=out_color_matrix=bt601", "-bsf:v", UNSTATED]),
    ("screen.mov", "1280x720", ["-c:v", "qtrle"]),
]


def red_source(dest: Path, size: str, codec: list[str]) -> Path:
    """A 1 s clip of pure red, held as ``codec`` says (H.264 unless it names another)."""
    args = [find_ffmpeg(), "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", f"color=c=red:size={size}:rate=25:duration=1,format=rgb24"]
    if "-c:v" not in codec:
        codec = [*codec[:1], codec[1] + ",format=yuv420p", *codec[2:], "-c:v", "libx264"]
    subprocess.run([*args, *codec, str(dest)], check=True)
    return dest


@pytest.mark.parametrize(("name", "size", "codec"), RED_SOURCES)
def test_a_poster_holds_the_colours_of_its_video(
    tmp_path: Path, name: str, size: str, codec: list[str]
) -> None:
    """A JPEG is read with BT.601's matrix: the poster of a BT.709 video showed pure red
    as (233, 0, 2) where the video shows (255, 1, 3)."""
    src = red_source(tmp_path / name, size, codec)
    poster = tmp_path / "poster.jpg"
    make_poster(find_ffmpeg(), src, poster)
    with av.open(str(poster)) as container:
        frame = next(container.decode(video=0))
        plane = frame.reformat(format="rgb24").planes[0]
        at = frame.height // 2 * plane.line_size + frame.width // 2 * 3
        red, green, blue = bytes(plane)[at : at + 3]  # the centre pixel
    assert red >= 250, (red, green, blue)
    assert green <= 6
    assert blue <= 6


# A picture whose left half is opaque red and right half transparent; the transparent
# pixels keep a colour of their own (magenta in PNG and QuickTime Animation, the
# transparent index's in a GIF), which an alpha merely dropped left on show.
HALF_TRANSPARENT = (
    "color=c=magenta@0.0:size=640x360:rate=10:duration=1,format=rgba[back];"
    "color=c=red:size=320x360:rate=10:duration=1,format=rgba[left];"
    "[back][left]overlay=format=auto,format=rgba"
)
VPX_ALPHA = ["-pix_fmt", "yuva420p", "-b:v", "2M"]
HEVC_ALPHA = ["-pix_fmt", "yuva420p", "-c:v", "libx265", "-tag:v", "hvc1"]
HEVC_ALPHA += ["-x265-params", "log-level=error"]
# (file name, the graph's tail and the codec): each keeps the alpha its own way.
TRANSPARENT_SOURCES = [
    ("sticker.mov", "", ["-c:v", "png"]),
    ("screen.mov", "", ["-c:v", "qtrle"]),
    (
        "sticker.gif",
        ",split[a][b];[a]palettegen=reserve_transparent=1[p];[b][p]paletteuse=alpha_threshold=128",
        ["-c:v", "gif"],
    ),
    ("title.mov", "", ["-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le"]),
    # VP9 and VP8 keep the alpha beside the picture, which only libvpx's decoders read.
    ("sticker.webm", "", [*VPX_ALPHA, "-c:v", "libvpx-vp9", "-deadline", "realtime"]),
    ("overlay.webm", "", [*VPX_ALPHA, "-c:v", "libvpx", "-auto-alt-ref", "0"]),
    # HEVC with Alpha (as Apple's tools export it): a second layer, which only the ffmpeg
    # binary decodes.
    ("title-hevc.mov", "", [*HEVC_ALPHA]),
]
BLACK = (16, 128, 128)  # Y, Cb, Cr in the video range


def transparent_source(dest: Path, tail: str, codec: list[str]) -> Path:
    args = [find_ffmpeg(), "-loglevel", "error", "-filter_complex", HALF_TRANSPARENT + tail]
    subprocess.run([*args, *codec, str(dest)], check=True)
    return dest


def halves(path: Path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The Y, Cb and Cr of ``path``'s first picture at the middle of its left half and of
    its right half."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).reformat(format="yuv444p")
        y, planes = frame.height // 2, [(bytes(p), p.line_size) for p in frame.planes]
        return tuple(
            tuple(data[y * stride + x] for data, stride in planes)
            for x in (frame.width // 4, frame.width * 3 // 4)
        )  # type: ignore[return-value]


@pytest.mark.parametrize(("name", "tail", "codec"), TRANSPARENT_SOURCES)
def test_a_transparent_source_shows_black_where_it_is_transparent(
    tmp_path: Path, name: str, tail: str, codec: list[str]
) -> None:
    src = transparent_source(tmp_path / name, tail, codec)
    assert probe(src).main_video.alpha
    build_ladder(find_ffmpeg(), src, tmp_path / "hls", probe(src))
    outputs = [rung_starts(tmp_path / "hls")[0], encode(src, "av1", tmp_path / "out.webm")]
    for out in outputs:
        left, right = halves(out)
        assert abs(left[0] - (RED_BT709 if probe(src).main_video.rgb else RED_BT601)) <= 2
        assert all(abs(a - b) <= 3 for a, b in zip(right, BLACK, strict=True)), (out, right)
    poster = tmp_path / "poster.jpg"
    make_poster(find_ffmpeg(), src, poster)
    with av.open(str(poster)) as container:
        frame = next(container.decode(video=0)).reformat(format="rgb24")
        plane = frame.planes[0]
        at = frame.height // 2 * plane.line_size + frame.width * 3 // 4 * 3
        assert max(bytes(plane)[at : at + 3]) <= 8  # black


@pytest.mark.parametrize(
    ("name", "codec"),
    [(n, c) for n, _, c in TRANSPARENT_SOURCES if n in ("sticker.mov", "sticker.webm")],
)
def test_a_transparent_source_is_scored_as_its_outputs_show_it(
    tmp_path: Path, name: str, codec: list[str]
) -> None:
    """Dropped rather than laid over black, the alpha shows magenta, and the score sees
    it: the reference is laid over black as the encode is."""
    src = transparent_source(tmp_path / name, "", codec)
    ours = score(find_ffmpeg(), src, encode(src, "av1", tmp_path / "a.webm"), neg=False)
    assert ours.mean >= 93
    dropped = encode(src, "av1", tmp_path / "b.webm", alpha=False, alpha_decoder="")
    assert score(find_ffmpeg(), src, dropped, neg=False).mean <= ours.mean - 10
