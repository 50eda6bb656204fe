"""Sources from cameras, DVDs and broadcast: non-square pixels, interlaced fields, HDR.

A DVD's 720x480 is shown at 16:9 (pixels 32:27 wide) and an HDV camera's 1440x1080 at
1920x1080; a TV recording or a camcorder's 1080i holds two fields per frame, taken a
field apart in time; a phone records HDR (HLG, or PQ as HDR10). Every output is shown as
the viewer would see the source: a ladder in square pixels at the displayed aspect, a
poster likewise, every pool's frames progressive, ladders and posters of HDR in SDR.
Scoring compares both sides the same way.
"""

from __future__ import annotations

import itertools
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import pytest

from hevcq.library.catalog import info_from_json, info_to_json
from hevcq.media.decide import decide
from hevcq.media.ffargs import build_args
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.ladder import (
    MASTER,
    build_ladder,
    check_ladder,
    read_master,
    read_media_playlist,
)
from hevcq.media.model import EncodePlan
from hevcq.media.poster import make_poster
from hevcq.media.probe import probe
from hevcq.media.quality import score
from hevcq.pools import load_pool

POOLS = Path(__file__).resolve().parents[2] / "workers"


def _make(path: Path, graph: str, seconds: float, *extra: str) -> Path:
    args = [find_ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    args += ["-f", "lavfi", "-i", graph, "-t", str(seconds)]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *extra]
    subprocess.run([*args, f"file:{path}"], check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def dvd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """720x480 NTSC DVD video shown at 16:9."""
    out = tmp_path_factory.mktemp("dvd") / "VTS_01_1.mp4"
    return _make(out, "testsrc2=s=720x480:r=30000/1001,setsar=32/27", 2)


@pytest.fixture(scope="module")
def combed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Interlaced 640x360 whose picture flashes between white and black every other field
    (white, black, black, white, ...): the two fields of each frame are always far apart,
    so a frame left woven is a stack of stripes, and each field differs from the last
    field of its parity, so a deinterlacer sees motion, not a striped still."""
    out = tmp_path_factory.mktemp("interlaced") / "recording.mp4"
    flash = "if(mod(floor((N+1)/2)\\,2)\\,16\\,235)"
    fields = f"color=c=black:s=640x360:r=50,geq=lum='{flash}':cb=128:cr=128"
    return _make(out, f"{fields},interlace=scan=tff", 1, "-flags", "+ilme+ildct")


@pytest.fixture(scope="module", params=["smpte2084", "arib-std-b67"])
def hdr(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-bit HEVC clip in BT.2020 with an HDR transfer (PQ, then HLG), its picture a flat
    grey at code value 505 of 1023: 92 nits in PQ."""
    transfer = request.param
    out = tmp_path_factory.mktemp("hdr") / f"IMG_{transfer}.mp4"
    args = [find_ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-f"]
    args += ["lavfi", "-i", "color=c=0x808080:s=640x360:r=30", "-t", "1"]
    args += ["-vf", "format=yuv420p10le", "-c:v", "libx265", "-preset", "ultrafast"]
    tags = f"colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc"
    args += ["-x265-params", f"log-level=error:{tags}", f"file:{out}"]
    subprocess.run(args, check=True, capture_output=True)
    return out


def _luma(frame: av.VideoFrame) -> float:
    """Mean 8-bit luma of the first rows (of a flat picture: of all of it)."""
    plane = frame.planes[0]
    data = bytes(plane)[: plane.line_size * 8]
    return sum(data) / len(data)


def _comb(frame: av.VideoFrame) -> float:
    """Mean luma difference between neighbouring rows: about 220 for woven stripes of
    white and black, near 0 for a flat picture."""
    plane = frame.planes[0]
    data, stride = bytes(plane), plane.line_size
    rows = [data[y * stride : y * stride + frame.width : 8] for y in range(frame.height)]
    diffs = [abs(a - b) for r0, r1 in itertools.pairwise(rows) for a, b in zip(r0, r1, strict=True)]
    return sum(diffs) / len(diffs)


def _joined(hls: Path, variant: int, dest: Path) -> Path:
    """The ``variant``-th rung of a ladder as one playable file."""
    uri = read_master(hls / MASTER)[0][variant].uri
    media = read_media_playlist(hls / uri)
    parts = [media.init, *(path for _, path in media.segments)]
    dest.write_bytes(b"".join(p.read_bytes() for p in parts))
    return dest


def _frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as f:
        return list(f.decode(f.streams.video[0]))


def test_a_dvd_is_probed_at_the_size_it_is_shown_and_the_catalog_keeps_it(dvd: Path) -> None:
    info = probe(dvd)
    video = info.main_video
    assert video is not None
    assert (video.sar_num, video.sar_den, video.width, video.height) == (32, 27, 720, 480)
    assert video.display_size == (854, 480)
    assert info_from_json(info_to_json(info)) == info


def test_media_info_stored_before_pixel_aspects_were_read_is_probed_again(dvd: Path) -> None:
    text = info_to_json(probe(dvd)).replace('"sar_num":32,', "")
    with pytest.raises(ValueError, match="stale"):
        info_from_json(text)


def test_a_dvds_ladder_is_square_pixels_at_16_by_9(dvd: Path, tmp_path: Path) -> None:
    variants = build_ladder(find_ffmpeg(), dvd, tmp_path / "hls", probe(dvd))
    assert [(v.width, v.height) for v in variants] == [(854, 480), (640, 360), (428, 240)]
    for v in read_master(tmp_path / "hls" / MASTER)[0]:
        with av.open(str(read_media_playlist(tmp_path / "hls" / v.uri).init)) as f:
            stream = f.streams.video[0]
            assert (stream.width, stream.height) == (v.width, v.height)
            assert stream.sample_aspect_ratio in (None, 1)
    assert check_ladder(tmp_path / "hls") == []


def test_a_dvds_poster_has_the_displayed_aspect(dvd: Path, tmp_path: Path) -> None:
    make_poster(find_ffmpeg(), dvd, tmp_path / "poster.jpg")
    with av.open(str(tmp_path / "poster.jpg")) as f:
        stream = f.streams.video[0]
        assert stream.width == 640
        assert abs(stream.width / stream.height - 16 / 9) < 0.01  # not 640x426, a 3:2 squeeze


def test_a_dvd_scores_against_its_hevc_copy_and_its_top_rung(dvd: Path, tmp_path: Path) -> None:
    ffmpeg = find_ffmpeg()
    plan = decide(probe(dvd), load_pool(POOLS / "hevc.yaml"), dvd.name)
    assert isinstance(plan, EncodePlan)
    copy = tmp_path / "copy.mp4"
    subprocess.run(build_args(ffmpeg, dvd, copy, plan), check=True, capture_output=True)
    with av.open(str(copy)) as f:
        assert f.streams.video[0].sample_aspect_ratio == Fraction(32, 27)  # stored as it came
    assert score(ffmpeg, dvd, copy, neg=False).mean > 85
    build_ladder(ffmpeg, dvd, tmp_path / "hls", probe(dvd))
    top = _joined(tmp_path / "hls", 0, tmp_path / "top.mp4")
    assert score(ffmpeg, dvd, top, neg=False).mean > 85


def test_an_interlaced_source_is_probed_as_such(combed: Path) -> None:
    video = probe(combed).main_video
    assert video is not None
    assert video.interlaced
    assert _comb(_frames(combed)[0]) > 150  # the source itself: woven stripes


@pytest.mark.parametrize("pool", ["hevc.yaml", "optional/av1.yaml"])
def test_an_interlaced_source_comes_out_progressive_from_a_file_pool(
    combed: Path, tmp_path: Path, pool: str
) -> None:
    plan = decide(probe(combed), load_pool(POOLS / pool), combed.name)
    assert isinstance(plan, EncodePlan)
    assert plan.deinterlace
    out = tmp_path / f"out.{'webm' if plan.container == 'webm' else 'mp4'}"
    subprocess.run(build_args(find_ffmpeg(), combed, out, plan), check=True, capture_output=True)
    frames = _frames(out)
    assert len(frames) == len(_frames(combed))  # a frame per frame, not one per field
    assert max(_comb(f) for f in frames) < 20


def test_an_interlaced_source_comes_out_progressive_in_every_rung(
    combed: Path, tmp_path: Path
) -> None:
    build_ladder(find_ffmpeg(), combed, tmp_path / "hls", probe(combed))
    for rung in (0, 1):
        joined = _joined(tmp_path / "hls", rung, tmp_path / f"rung{rung}.mp4")
        assert max(_comb(f) for f in _frames(joined)) < 20


def test_an_interlaced_source_is_scored_against_its_progressive_output(
    combed: Path, tmp_path: Path
) -> None:
    ffmpeg = find_ffmpeg()
    plan = decide(probe(combed), load_pool(POOLS / "hevc.yaml"), combed.name)
    assert isinstance(plan, EncodePlan)
    out = tmp_path / "out.mp4"
    subprocess.run(build_args(ffmpeg, combed, out, plan), check=True, capture_output=True)
    # Scored against the woven stripes, the flat output would score near nothing.
    assert score(ffmpeg, combed, out, neg=False).mean > 90


def test_an_hdr_clip_is_probed_with_its_transfer(hdr: Path) -> None:
    video = probe(hdr).main_video
    assert video is not None
    assert video.hdr_transfer == hdr.stem.removeprefix("IMG_")
    text = info_to_json(probe(hdr)).replace(f'"hdr_transfer":"{video.hdr_transfer}"', '"x":1')
    with pytest.raises(ValueError, match="stale"):
        info_from_json(text)


def test_an_hdr_clips_ladder_is_sdr_in_every_rung(hdr: Path, tmp_path: Path) -> None:
    variants = build_ladder(find_ffmpeg(), hdr, tmp_path / "hls", probe(hdr))
    assert check_ladder(tmp_path / "hls") == []
    for n in range(len(variants)):
        rung = _joined(tmp_path / "hls", n, tmp_path / f"rung{n}.mp4")
        with av.open(str(rung)) as f:
            ctx = f.streams.video[0].codec_context
            assert (ctx.color_trc, ctx.color_primaries, ctx.colorspace) == (1, 1, 1)  # BT.709
            # Tone-mapped (PQ 177, HLG 148): left as it was, the grey reads as 105 of 255.
            assert _luma(next(f.decode(f.streams.video[0]))) > 130


def test_an_hdr_clips_poster_is_sdr(hdr: Path, tmp_path: Path) -> None:
    make_poster(find_ffmpeg(), hdr, tmp_path / "poster.jpg")
    # Full range (a JPEG): tone-mapped PQ 213, HLG 186; left as it was, 128.
    assert _luma(_frames(tmp_path / "poster.jpg")[0]) > 160
