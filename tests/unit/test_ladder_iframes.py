"""The I-frame playlists' parsing: ISO BMFF boxes walked, each fragment's keyframe found in
its moof and mdat, the ranges and durations an I-frame playlist lists, and the playlists
written and read back."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from hevcq.media.ladder import (
    Fragment,
    IFrame,
    TrackDefaults,
    find_box,
    fit_target_duration,
    fragments,
    iframe_playlist_text,
    iframes_of,
    iter_boxes,
    prepend_fragments,
    read_iframe_playlist,
    read_iframe_streams,
    read_master,
    split_init,
    target_duration,
    track_defaults,
    whole_seconds,
)

NON_SYNC = 0x0101_0000  # depends on others, sample_is_non_sync_sample
SYNC = 0x0200_0000  # depends on no other sample


def box(kind: str, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind.encode()) + body


def full(kind: str, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, bytes([version]) + flags.to_bytes(3, "big"), *payload)


def u32(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def init_segment(timescale: int = 12800, *, wide: bool = False) -> bytes:
    mdhd = (
        full("mdhd", 1, 0, bytes(16), u32(timescale), bytes(8), bytes(4))
        if wide
        else full("mdhd", 0, 0, u32(0, 0, timescale, 0), bytes(4))
    )
    trex = full("trex", 0, 0, u32(1, 1, 512, 100, NON_SYNC))
    moov = box("moov", box("trak", box("mdia", mdhd)), box("mvex", trex))
    return box("ftyp", b"iso6", bytes(4)) + moov


def fragment(sizes: list[int], flags: list[int], start: int) -> bytes:
    """A moof (default-base-is-moof, sample durations from the tfhd, sizes and flags per
    sample) and its mdat, as ffmpeg writes them."""

    def moof(data_offset: int) -> bytes:
        tfhd = full("tfhd", 0, 0x020008, u32(1, 512))
        tfdt = full("tfdt", 1, 0, struct.pack(">Q", start))
        samples = b"".join(u32(s, f) for s, f in zip(sizes, flags, strict=True))
        trun = full("trun", 0, 0x000601, u32(len(sizes)), struct.pack(">i", data_offset), samples)
        return box("moof", box("mfhd", u32(0, 1)), box("traf", tfhd, tfdt, trun))

    head = len(moof(0)) + 8  # the moof, then the mdat's header
    return moof(head) + box("mdat", bytes(sum(sizes)))


def test_boxes_are_walked_with_32_bit_64_bit_and_to_the_end_sizes() -> None:
    data = box("styp", b"msdh") + struct.pack(">I4sQ", 1, b"mdat", 20) + b"abcd"
    data += struct.pack(">I4s", 0, b"free") + b"rest"
    found = [(b.type, b.offset, b.size, b.header) for b in iter_boxes(data)]
    assert found == [("styp", 0, 12, 8), ("mdat", 12, 20, 16), ("free", 32, 12, 8)]


@pytest.mark.parametrize(
    "data",
    [
        box("moof", bytes(8))[:-1],  # cut inside the box
        box("moof") + b"\x00\x00",  # a header cut short
        struct.pack(">I4s", 4, b"moof"),  # smaller than its own header
    ],
)
def test_a_box_running_past_the_data_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="box"):
        list(iter_boxes(data))


def test_a_nested_box_is_found_by_its_path() -> None:
    data = init_segment()
    mdhd = find_box(data, ("moov", "trak", "mdia", "mdhd"))
    assert data[mdhd.offset + 4 : mdhd.offset + 8] == b"mdhd"
    with pytest.raises(ValueError, match="no moov/udta box"):
        find_box(data, ("moov", "udta"))


@pytest.mark.parametrize("wide", [False, True])
def test_the_track_defaults_come_from_mdhd_and_trex(wide: bool) -> None:
    assert track_defaults(init_segment(90000, wide=wide)) == TrackDefaults(
        90000, 512, 100, NON_SYNC
    )


def test_each_fragment_knows_where_its_first_sample_ends_and_whether_it_is_a_keyframe() -> None:
    first = fragment([1000, 200, 300], [SYNC, NON_SYNC, NON_SYNC], start=0)
    second = fragment([50, 60], [NON_SYNC, NON_SYNC], start=1536)
    styp = box("styp", b"msdh", bytes(4))
    found = fragments(styp + first + second, track_defaults(init_segment()))
    moof_size = len(first) - 8 - 1500
    assert found == [
        Fragment(
            len(styp), len(styp) + len(first), len(styp) + moof_size + 8 + 1000, 0, 1536, True
        ),
        Fragment(
            len(styp) + len(first),
            len(styp) + len(first) + len(second),
            len(styp) + len(first) + len(second) - 110 + 50,
            1536,
            1024,
            False,
        ),
    ]


def test_a_fragment_stating_nothing_of_its_samples_inherits_the_trex_defaults() -> None:
    tfhd = full("tfhd", 0, 0x020000, u32(1))  # default-base-is-moof only
    tfdt = full("tfdt", 0, 0, u32(7))
    trun = full("trun", 0, 0x000005, u32(2), struct.pack(">i", 0), u32(SYNC))
    moof = box("moof", box("traf", tfhd, tfdt, trun))
    # the data offset 0: the samples counted from the moof's first byte
    (found,) = fragments(moof + box("mdat", bytes(200)), track_defaults(init_segment()))
    assert (found.first_end, found.start, found.duration, found.keyframe) == (100, 7, 1024, True)


@pytest.mark.parametrize(
    ("version", "offsets", "first"),
    [
        (0, [1024, 0], 1024),  # unsigned: the first frame shown two frames late
        (1, [0, -512], 0),  # signed, as negative_cts_offsets writes it
        (1, [-512, 0], -512),
    ],
)
def test_the_first_samples_composition_offset_is_read_signed_in_version_1(
    version: int, offsets: list[int], first: int
) -> None:
    tfhd = full("tfhd", 0, 0x020008, u32(1, 512))
    tfdt = full("tfdt", 0, 0, u32(0))
    # data offset, then size, flags and composition offset per sample
    samples = b"".join(struct.pack(">IIi", 100, SYNC, o) for o in offsets)
    trun = full("trun", version, 0x000E01, u32(2), struct.pack(">i", 0), samples)
    moof = box("moof", box("traf", tfhd, tfdt, trun))
    (found,) = fragments(moof + box("mdat", bytes(200)), track_defaults(init_segment()))
    assert found.composition == first
    assert found.keyframe
    assert found.duration == 1024


def test_an_i_frame_lasts_until_the_next_keyframe_across_segments() -> None:
    a, b = Path("seg_00000.m4s"), Path("seg_00001.m4s")
    found = [
        (a, [Fragment(24, 1000, 300, 0, 100, True), Fragment(1000, 2000, 1100, 100, 100, True)]),
        (b, [Fragment(24, 900, 200, 200, 100, False), Fragment(900, 1500, 950, 300, 50, True)]),
    ]
    assert iframes_of(found, timescale=50) == [
        IFrame(2.0, a, 24, 276),
        IFrame(4.0, a, 1000, 100),  # through the fragment that holds no keyframe
        IFrame(1.0, b, 900, 50),  # the last: to the end of the rendition
    ]
    assert iframes_of([(a, [Fragment(24, 900, 200, 0, 100, False)])], 50) == []


def test_fragments_left_in_the_init_segment_go_to_the_head_of_the_first_segment() -> None:
    init = init_segment()
    stray = fragment([10], [SYNC], start=0)
    own, rest = split_init(init + stray)
    assert (own, rest) == (init, stray)
    assert split_init(init) == (init, b"")
    styp = box("styp", b"msdh")
    later = fragment([20], [SYNC], start=512)
    assert prepend_fragments(styp + later, stray) == styp + stray + later
    assert prepend_fragments(later, stray) == stray + later


def test_an_i_frame_playlist_reads_back_as_written(tmp_path: Path) -> None:
    seg = tmp_path / "seg_00000.m4s"
    frames = [IFrame(2.0, seg, 24, 8806), IFrame(1.0, seg, 157492, 11337)]
    text = iframe_playlist_text("init_0.mp4", frames)
    assert "#EXT-X-I-FRAMES-ONLY" in text
    assert "#EXT-X-VERSION:7" in text
    assert "#EXT-X-TARGETDURATION:2" in text
    assert "#EXT-X-BYTERANGE:8806@24\nseg_00000.m4s" in text
    (tmp_path / "iframes.m3u8").write_text(text)
    read = read_iframe_playlist(tmp_path / "iframes.m3u8")
    assert read.init == tmp_path / "init_0.mp4"
    assert read.frames == tuple(frames)
    assert read.target_s == 2
    assert read.duration_s == 3.0
    assert read.rates() == (11337 * 8, (8806 + 11337) * 8 // 3 + 1)


def test_a_byte_range_without_an_offset_follows_the_last_range_of_its_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "i.m3u8").write_text(
        '#EXTM3U\n#EXT-X-I-FRAMES-ONLY\n#EXT-X-MAP:URI="init.mp4"\n'
        "#EXTINF:2,\n#EXT-X-BYTERANGE:100@24\na.m4s\n"
        "#EXTINF:2,\n#EXT-X-BYTERANGE:50\na.m4s\n"
        "#EXTINF:2,\n#EXT-X-BYTERANGE:70\nb.m4s\n"
    )
    read = read_iframe_playlist(tmp_path / "i.m3u8")
    assert [(f.segment.name, f.offset, f.length) for f in read.frames] == [
        ("a.m4s", 24, 100),
        ("a.m4s", 124, 50),
        ("b.m4s", 0, 70),
    ]


def test_a_media_playlist_is_no_i_frame_playlist(tmp_path: Path) -> None:
    (tmp_path / "index.m3u8").write_text(
        '#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:6,\nseg_00000.m4s\n'
    )
    with pytest.raises(ValueError, match="no #EXT-X-I-FRAMES-ONLY"):
        read_iframe_playlist(tmp_path / "index.m3u8")


def test_the_master_keeps_i_frame_streams_apart_from_its_variants(tmp_path: Path) -> None:
    (tmp_path / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:7\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=900,AVERAGE-BANDWIDTH=800,CODECS="avc1.64001e,mp4a.40.2",'
        "RESOLUTION=640x360,FRAME-RATE=25.000\n0/index.m3u8\n"
        '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90,AVERAGE-BANDWIDTH=50,CODECS="avc1.64001e",'
        'RESOLUTION=640x360,URI="0/iframes.m3u8"\n'
    )
    variants, audio = read_master(tmp_path / "master.m3u8")
    assert [v.uri for v in variants] == ["0/index.m3u8"]
    assert audio is None
    (stream,) = read_iframe_streams(tmp_path / "master.m3u8")
    assert (stream.uri, stream.bandwidth, stream.average_bandwidth) == ("0/iframes.m3u8", 90, 50)
    assert (stream.codecs, stream.width, stream.height) == ("avc1.64001e", 640, 360)


def test_a_target_duration_is_the_longest_entry_as_written_rounded_with_halves_up() -> None:
    """RFC 8216 4.3.3.1 rounds an EXTINF to the nearest integer; a half goes up, where
    Python's ``round`` takes 2.5 to 2 and 3.5 to 4."""
    assert [whole_seconds(d) for d in (0.4, 0.5, 2.5, 3.5, 3.49, 6.0)] == [0, 1, 3, 4, 3, 6]
    # A duration summed a hair under 3.5 is written 3.500000, which a player rounds to 4.
    assert target_duration([6.0, 3.4999999999]) == 6
    assert target_duration([3.4999999999]) == 4
    assert target_duration([0.3]) == 1
    assert target_duration([]) == 1


def test_a_media_playlist_gets_the_target_its_extinfs_call_for(tmp_path: Path) -> None:
    playlist = tmp_path / "index.m3u8"
    head = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n"
    body = '#EXT-X-MAP:URI="init.mp4"\n#EXTINF:3.500000,\nseg_00000.m4s\n#EXT-X-ENDLIST\n'
    playlist.write_text(head.format(3) + body)
    fit_target_duration(playlist)
    assert playlist.read_text() == head.format(4) + body
    playlist.write_text(head.format(0) + body.replace("3.500000", "0.400000"))
    fit_target_duration(playlist)
    assert playlist.read_text().startswith(head.format(1))
