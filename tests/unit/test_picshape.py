"""Keyframe sizes read from VP8 and VP9 headers (``hevcq.media.picshape``), built here
bit by bit as the specifications lay them out."""

from __future__ import annotations

import pytest

from hevcq.media.picshape import _durations, vp8_size, vp9_size


def vp8_keyframe(width: int, height: int, *, inter: bool = False, scale: int = 0) -> bytes:
    tag = bytes([0x10 | int(inter), 0x02, 0x00])  # show_frame, first partition size
    size = (width | scale << 14).to_bytes(2, "little") + (height | scale << 14).to_bytes(
        2, "little"
    )
    return tag + b"\x9d\x01\x2a" + size + bytes(8)


def test_a_vp8_keyframe_says_its_size_and_an_inter_frame_nothing() -> None:
    assert vp8_size(vp8_keyframe(1280, 720)) == (1280, 720)
    assert vp8_size(vp8_keyframe(641, 361, scale=2)) == (641, 361)  # upscaling bits left out
    assert vp8_size(vp8_keyframe(1280, 720, inter=True)) is None
    assert vp8_size(vp8_keyframe(1280, 720)[:8]) is None
    assert vp8_size(b"\x10\x02\x00\x00\x00\x00" + bytes(10)) is None  # no start code


def vp9_header(
    width: int, height: int, *, profile: int = 0, key: bool = True, rgb: bool = False
) -> bytes:
    bits = "10" + str(profile & 1) + str(profile >> 1) + ("0" if profile == 3 else "")
    bits += "0" + ("0" if key else "1") + "10"  # show_existing, frame_type, show, resilient
    bits += f"{0x498342:024b}"
    bits += "0" if profile >= 2 else ""  # ten_or_twelve_bit
    if rgb:
        bits += "111" + ("0" if profile in (1, 3) else "")
    else:
        bits += "010" + "0" + ("000" if profile in (1, 3) else "")  # BT.709, range, sampling
    bits += f"{width - 1:016b}{height - 1:016b}"
    bits += "0" * (-len(bits) % 8) + "0" * 64
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


@pytest.mark.parametrize("profile", [0, 1, 2, 3])
@pytest.mark.parametrize("rgb", [False, True])
def test_a_vp9_keyframe_says_its_size_whatever_its_profile(profile: int, rgb: bool) -> None:
    assert vp9_size(vp9_header(1280, 720, profile=profile, rgb=rgb)) == (1280, 720)
    assert vp9_size(vp9_header(720, 1280, profile=profile, rgb=rgb)) == (720, 1280)


def test_a_vp9_inter_frame_or_a_broken_header_says_nothing() -> None:
    assert vp9_size(vp9_header(1280, 720, key=False)) is None
    assert vp9_size(vp9_header(1280, 720)[:6]) is None  # cut before the size
    assert vp9_size(b"\x00" * 16) is None  # no frame marker
    broken = bytearray(vp9_header(1280, 720))
    broken[1] ^= 0xFF  # the sync code
    assert vp9_size(bytes(broken)) is None


def test_each_size_is_shown_from_where_it_was_seen_to_the_next() -> None:
    sd, hd = (720, 576, 64, 45), (1920, 1080, 1, 1)
    # Seen in the order of the frames' own times, the last to the stream's last packet.
    assert _durations([(0.0, sd), (4.0, hd), (60.0, sd), (62.0, hd)], 100.0) == {
        sd: 6.0,
        hd: 94.0,
    }
    assert _durations([], 10.0) == {}
    assert _durations([(5.0, sd)], 2.0) == {sd: 0.0}  # seen after the last packet: none
