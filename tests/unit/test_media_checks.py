"""Pure helpers of probing and verification: signatures, rotation, bit depth, output checks."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

from hevcq.errors import PermanentError
from hevcq.media.model import AudioStream, Cover, EncodePlan, MediaInfo, VideoStream
from hevcq.media.probe import (
    _tag,
    bit_depth,
    has_alpha,
    hevc_layers,
    is_rgb,
    is_spherical,
    kept_projection,
    looks_like_media,
    normalise_rotation,
    picture_kind,
    probe,
)
from hevcq.media.verify import Decoded, decode_problems, shape_problems


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x00\x00\x00\x20ftypisom" + bytes(200), True),  # MP4 / MOV
        (b"\x00\x00\x00\x08mdat" + bytes(200), True),  # MP4 cut before its index
        (b"\x1a\x45\xdf\xa3" + bytes(200), True),  # Matroska / WebM
        (b"RIFF\x00\x00\x00\x00AVI " + bytes(200), True),
        (b"\x47" + bytes(187) + b"\x47", True),  # MPEG-TS: sync byte every 188 bytes
        (b"shopping list: milk, eggs\n" * 10, False),
        (b"%PDF-1.7\n" + bytes(200), False),
        (b"", False),
    ],
)
def test_container_signatures(head: bytes, expected: bool) -> None:
    assert looks_like_media(head) is expected


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),
        (b"\x89PNG\r\n\x1a\n" + bytes(20), "PNG"),
        (b"GIF89a" + bytes(20), "GIF"),
        (b"RIFF\x00\x10\x00\x00WEBPVP8 ", "WebP"),
        (b"II*\x00" + bytes(20), "TIFF"),
        (b"\x00\x00\x00\x18ftypheic" + bytes(20), "HEIC"),  # a phone's photo
        (b"\x00\x00\x00\x1cftypavif" + bytes(20), "AVIF"),
        (b"\x00\x00\x00\x1cftypmif1" + bytes(20), "HEIF"),
        # Videos and animations are not pictures.
        (b"\x00\x00\x00\x20ftypisom" + bytes(200), None),
        (b"\x00\x00\x00\x20ftypqt  " + bytes(200), None),
        (b"\x00\x00\x00\x20ftypavis" + bytes(200), None),  # an AVIF image sequence
        (b"RIFF\x00\x00\x00\x00AVI " + bytes(200), None),
        (b"\x1a\x45\xdf\xa3" + bytes(200), None),
        (b"", None),
    ],
)
def test_picture_signatures(head: bytes, kind: str | None) -> None:
    assert picture_kind(head) == kind


def _vps(max_layers_minus1: int) -> bytes:
    """An HEVC video parameter set's first bytes: NAL header (type 32), then id 0, both
    base-layer flags, and ``vps_max_layers_minus1``."""
    return bytes([0x40, 0x01, 0x0C | (max_layers_minus1 >> 4), (max_layers_minus1 & 0x0F) << 4])


def _hvcc(*nals: bytes) -> bytes:
    """An ``hvcC`` record holding ``nals``, one array each."""
    body = bytes([len(nals)])
    for nal in nals:
        body += bytes([0xA0 | (nal[0] >> 1 & 0x3F)]) + (1).to_bytes(2, "big")
        body += len(nal).to_bytes(2, "big") + nal
    return b"\x01" + bytes(21) + body


SPS = bytes([0x42, 0x01, 0x01, 0x01])  # a sequence parameter set's NAL header and more


@pytest.mark.parametrize(
    ("extradata", "layers"),
    [
        (_hvcc(_vps(0) + b"\xff\xff", SPS), 1),  # an ordinary stream, in MP4 or Matroska
        (_hvcc(SPS, _vps(1) + b"\xff\xff"), 2),  # with an alpha layer
        (b"\x00\x00\x00\x01" + _vps(1) + b"\xff\xff\x00\x00\x01" + SPS, 2),  # MPEG-TS
        (b"\x00\x00\x01" + _vps(0) + b"\xff", 1),
        (_hvcc(SPS), 1),  # no parameter set: taken as one layer
        (b"", 1),
        (None, 1),
        (b"\x01" + bytes(21) + b"\x05\xa0", 1),  # cut short
    ],
)
def test_hevc_layers_from_the_video_parameter_set(extradata: bytes | None, layers: int) -> None:
    assert hevc_layers(extradata) == layers


@pytest.mark.parametrize(
    ("degrees", "expected"),
    [
        (None, 0),
        (0.0, 0),
        (90.0, 90),
        (-90.0, 270),
        (180.0, 180),
        (-180.0, 180),
        (270.0, 270),
        (360.0, 0),
        (89.99, 90),
        (-270.0, 90),
    ],
)
def test_rotation_is_normalised(degrees: float | None, expected: int) -> None:
    assert normalise_rotation(degrees) == expected


@pytest.mark.parametrize(
    ("pix_fmt", "expected"),
    [
        ("yuv420p", 8),
        ("yuvj420p", 8),
        ("yuv420p10le", 10),
        ("p010le", 10),
        ("yuv422p12le", 12),
        (None, 8),
        ("", 8),
        ("not-a-format", 8),
    ],
)
def test_bit_depth_from_pixel_format(pix_fmt: str | None, expected: int) -> None:
    assert bit_depth(pix_fmt) == expected


@pytest.mark.parametrize(
    ("pix_fmt", "rgb"),
    [
        ("rgb24", True),  # PNG, QuickTime Animation, uncompressed
        ("bgra", True),  # a GIF as ffmpeg decodes it
        ("pal8", True),  # a palette of RGB colours
        ("gbrp", True),  # H.264 4:4:4 in RGB (libx264rgb)
        ("gbrp10le", True),
        ("rgb48le", True),
        ("yuv420p", False),
        ("yuvj420p", False),
        ("yuva444p10le", False),  # ProRes 4444
        ("gray", False),  # luma alone: no matrix to choose
        ("", False),
        (None, False),
        ("no-such-format", False),
    ],
)
def test_which_pixel_formats_are_rgb(pix_fmt: str | None, rgb: bool) -> None:
    assert is_rgb(pix_fmt) is rgb


PLAN = EncodePlan(
    pool="hevc",
    container="mp4",
    video_index=0,
    width=1920,
    height=1080,
    rotation=90,
    ten_bit=False,
    crf=26,
    preset="medium",
    audio=((1, "copy"),),
)
GOOD_VIDEO = VideoStream(0, "hevc", 1920, 1080, "yuv420p", 8, 90, 24.0)


def output(**changes: object) -> MediaInfo:
    video = dataclasses.replace(GOOD_VIDEO, **changes)  # type: ignore[arg-type]
    return MediaInfo("mov", 10.0, 1, (video,), (AudioStream(1, "aac"),))


def test_a_matching_output_has_no_problems() -> None:
    assert shape_problems(output(), PLAN) == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"codec": "h264"}, "video codec is h264, not hevc"),
        ({"width": 1080, "height": 1920}, "coded size 1080x1920, planned 1920x1080"),
        ({"rotation": 0}, "rotation 0, planned 90"),
        ({"bit_depth": 10, "pix_fmt": "yuv420p10le"}, "10-bit video (yuv420p10le), planned 8-bit"),
    ],
)
def test_each_shape_difference_is_named(changes: dict[str, object], problem: str) -> None:
    assert shape_problems(output(**changes), PLAN) == [problem]


def test_a_lost_audio_stream_is_a_problem() -> None:
    info = dataclasses.replace(output(), audio=())
    assert shape_problems(info, PLAN) == ["0 audio streams, planned 1"]


def test_a_lost_cover_is_a_problem() -> None:
    cover = Cover(2, "mjpeg", "cover.jpg", "image/jpeg")
    planned = dataclasses.replace(PLAN, covers=(cover,))
    assert shape_problems(output(), planned) == ["0 cover pictures, planned 1"]
    picture = VideoStream(2, "mjpeg", 600, 600, "yuvj420p", 8, attached_pic=True)
    kept = dataclasses.replace(output(), video=(GOOD_VIDEO, picture))
    assert shape_problems(kept, planned) == []


def test_no_video_is_a_problem() -> None:
    info = dataclasses.replace(output(), video=())
    assert shape_problems(info, PLAN) == ["output has no video stream"]


@pytest.mark.parametrize(
    ("decoded", "problems"),
    [
        (Decoded(240, 10.0, 240, 10.0), []),
        (Decoded(240, 10.0, 0, None), []),  # Matroska: nothing declared, nothing to compare
        (Decoded(0, 0.0, 240, 10.0), ["no video frame decodes"]),
        (Decoded(200, 10.0, 240, None), ["only 200 of 240 frames decode"]),
        (Decoded(120, 5.0, 0, 10.0), ["video decodes for 5.00 s of 10.00 s"]),
        (Decoded(236, 9.8, 240, 10.0), ["only 236 of 240 frames decode"]),
    ],
)
def test_decode_problems(decoded: Decoded, problems: list[str]) -> None:
    assert decode_problems(decoded) == problems


def test_a_file_that_is_not_a_regular_file_is_named_so(tmp_path: Path) -> None:
    """A FIFO was called an "empty file (0 bytes)"; one with a writer would block probing."""
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    with pytest.raises(PermanentError, match="not a regular file"):
        probe(fifo)
    with pytest.raises(PermanentError, match="not a regular file"):
        probe(Path("/dev/zero"))


class _Tagged:
    """A codec context whose tag PyAV reads as ASCII, raising on a byte over 0x7F."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    @property
    def codec_tag(self) -> str:
        return self.raw.decode("ascii")


@pytest.mark.parametrize(
    ("raw", "tag"),
    [
        (b"mp4a", "mp4a"),
        (b"\x00\x00\x00\x00", ""),
        (b"\x1b\x00\x00\x00", "\x1b"),  # MPEG-TS H.264: ASCII, kept as PyAV gives it
        (b"\x80\x00\x00\x00", "0x00000080"),  # Blu-ray LPCM
        (b"\x81\x00\x00\x00", "0x00000081"),  # AVCHD's AC-3
        (b"\x90\x00\x00\x00", "0x00000090"),  # PGS subtitles
    ],
)
def test_a_tag_that_is_not_ascii_is_kept_as_its_number(raw: bytes, tag: str) -> None:
    """Never empty: a stream with a tag the tee does not know is not copied through it."""
    assert _tag(_Tagged(raw)) == tag


@pytest.mark.parametrize(
    ("pix_fmt", "alpha"),
    [
        ("rgba", True),  # PNG
        ("argb", True),  # QuickTime Animation
        ("bgra", True),  # a GIF as ffmpeg decodes it
        ("yuva444p10le", True),  # ProRes 4444
        ("ya8", True),  # grey with alpha
        ("rgb24", False),
        ("yuv420p", False),
        ("pal8", False),
        ("", False),
        (None, False),
        ("no-such-format", False),
    ],
)
def test_which_pixel_formats_carry_alpha(pix_fmt: str | None, alpha: bool) -> None:
    assert has_alpha(pix_fmt) is alpha


@pytest.mark.parametrize(
    ("projection", "kept"),
    [(0, True), (1, True), (2, True), (3, False), (4, False), (5, False), (6, False)],
)
def test_only_projections_the_muxers_write_are_kept(projection: int, kept: bool) -> None:
    # equirectangular, cubemap and tiles are; half equirectangular, rectilinear, fisheye
    # and Apple's immersive kind would make verification refuse every output of them.
    mapping = projection.to_bytes(4, sys.byteorder) + bytes(32)
    assert kept_projection(mapping) is kept
    assert not kept_projection(b"")


def test_a_frame_whose_side_data_pyav_cannot_read_states_no_mapping() -> None:
    # PyAV builds all of a frame's side data at once and raised on a kind it does not
    # know (a TIFF's EXIF): every probe of such a file failed with that error.
    class Frame:
        @property
        def side_data(self) -> object:
            raise ValueError("31 is not a valid Type")

    assert is_spherical(Frame()) is False
