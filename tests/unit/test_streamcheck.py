"""The pieces of verifying during the encode: NAL splitting, digests, tee paths, tags."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hevcq.errors import VerificationError
from hevcq.media.decide import tee_safe
from hevcq.media.ffargs import tee_escape
from hevcq.media.model import AudioStream, MediaInfo, SubtitleStream
from hevcq.media.streamcheck import (
    AnnexBSplitter,
    NalDigest,
    StreamCheck,
    hvcc_nals,
    length_prefixed_nals,
    nal_length_size,
)
from hevcq.media.verify import FileVideo, stream_decoded


def nal(kind: int, body: bytes) -> bytes:
    """A NAL unit of type ``kind`` (two-byte HEVC header)."""
    return bytes([kind << 1, 1]) + body


VPS, SPS, PPS = nal(32, b"vps"), nal(33, b"sps"), nal(34, b"pps")
SEI = nal(39, b"x265 settings")
SLICES = [nal(19, b"idr" * 50), nal(1, b"\x00\x00\x03\x01p"), nal(0, b"b" * 7), nal(1, b"q\x80")]


def annex_b(nals: list[bytes]) -> bytes:
    """An elementary stream with 4-byte start codes on the first NAL, 3-byte after."""
    out = b""
    for n, unit in enumerate(nals):
        out += (b"\x00\x00\x00\x01" if n == 0 else b"\x00\x00\x01") + unit
    return out


def split(data: bytes, chunk_sizes: list[int]) -> list[bytes]:
    got: list[bytes] = []
    splitter = AnnexBSplitter(got.append)
    at = 0
    for size in chunk_sizes:
        splitter.feed(data[at : at + size])
        at += size
    splitter.feed(data[at:])
    splitter.close()
    return got


def digest_of(nals: list[bytes]) -> tuple[int, str]:
    d = NalDigest()
    for unit in nals:
        d.add(unit)
    return d.count, d.hexdigest()


def test_splitting_finds_every_nal_whatever_the_chunk_boundaries() -> None:
    units = [VPS, SPS, PPS, SEI, *SLICES]
    data = annex_b(units)
    rng = random.Random(7)
    assert split(data, []) == units
    assert split(data, [1] * len(data)) == units  # a start code split across three feeds
    for _ in range(50):
        sizes = [rng.randint(1, 9) for _ in range(rng.randint(0, 40))]
        assert [u.rstrip(b"\x00") for u in split(data, sizes)] == units


def test_bytes_before_the_first_start_code_are_not_a_nal() -> None:
    assert split(b"\x12\x34" + annex_b([SPS]), [1, 1]) == [SPS]
    assert split(b"garbage without a start code", [3]) == []


def test_length_prefixed_samples_split_into_their_nals() -> None:
    sample = b"".join(len(u).to_bytes(4, "big") + u for u in SLICES)
    assert list(length_prefixed_nals(sample, 4)) == SLICES
    with pytest.raises(ValueError, match="runs past the end"):
        list(length_prefixed_nals(sample[:-1], 4))
    with pytest.raises(ValueError, match="inside a NAL length"):
        list(length_prefixed_nals(sample + b"\x00\x00", 4))


def hvcc(arrays: list[list[bytes]], length_size: int = 4) -> bytes:
    head = bytearray(23)
    head[0] = 1
    head[21] = 0xFC | (length_size - 1)
    head[22] = len(arrays)
    body = b""
    for units in arrays:
        body += bytes([(units[0][0] >> 1) & 0x3F]) + len(units).to_bytes(2, "big")
        body += b"".join(len(u).to_bytes(2, "big") + u for u in units)
    return bytes(head) + body


def test_hvcc_records_give_their_parameter_sets_and_length_size() -> None:
    record = hvcc([[VPS], [SPS], [PPS], [SEI]], length_size=2)
    assert nal_length_size(record) == 2
    assert list(hvcc_nals(record)) == [VPS, SPS, PPS, SEI]
    assert nal_length_size(annex_b([VPS, SPS])) is None  # Annex B extradata
    assert nal_length_size(None) is None
    with pytest.raises(ValueError, match="runs past the end"):
        list(hvcc_nals(record[:-3]))


def test_the_digest_is_the_slices_in_order_and_the_parameter_sets() -> None:
    stream = [VPS, SPS, PPS, SEI, SLICES[0], SLICES[1], VPS, SPS, PPS, *SLICES[2:]]
    file = [SEI, VPS, SPS, PPS, *SLICES]  # hvcC arrays first, no repeats, SEI elsewhere
    assert digest_of(stream) == digest_of(file)
    assert digest_of(stream)[0] == len(SLICES)
    assert digest_of([*file, b"\x00\x00"]) == digest_of(file)  # trailing zero bytes
    swapped = [VPS, SPS, PPS, SLICES[1], SLICES[0], *SLICES[2:]]
    assert digest_of(swapped) != digest_of(file)
    flipped = [VPS, SPS, PPS, SLICES[0][:-1] + b"X", *SLICES[1:]]
    assert digest_of(flipped) != digest_of(file)
    other_pps = [VPS, SPS, nal(34, b"ppz"), *SLICES]
    assert digest_of(other_pps) != digest_of(file)
    assert digest_of(file[:-1])[0] == len(SLICES) - 1


def video(check: StreamCheck, packets: int | None = None) -> FileVideo:
    return FileVideo(
        packets if packets is not None else check.frames, check.nals, check.digest, 3.0, 36, 3.0
    )


GOOD = StreamCheck(frames=36, nals=36, digest="abc", error=None)


def test_a_stream_check_stands_for_a_decode_only_when_the_file_is_that_stream() -> None:
    decoded = stream_decoded(GOOD, video(GOOD))
    assert (decoded.frames, decoded.span_s, decoded.declared_frames) == (36, 3.0, 36)
    with pytest.raises(VerificationError, match="not what was encoded and decoded"):
        stream_decoded(GOOD, FileVideo(36, 36, "abd", 3.0, 36, 3.0))
    with pytest.raises(VerificationError, match="35 NAL units in the file"):
        stream_decoded(GOOD, FileVideo(35, 35, "abc", 3.0, 36, 3.0))
    with pytest.raises(VerificationError, match=r"36 frames decoded .* the file holds 37"):
        stream_decoded(GOOD, video(GOOD, packets=37))
    broken = StreamCheck(frames=10, nals=36, digest="abc", error="Invalid data")
    with pytest.raises(VerificationError, match="does not decode: Invalid data"):
        stream_decoded(broken, video(GOOD))


def test_pictures_are_the_slices_that_start_one() -> None:
    # first_slice_segment_in_pic_flag is the first bit after the two-byte NAL header.
    first, more = nal(1, b"\x80rest"), nal(1, b"\x00rest")
    d = NalDigest()
    for unit in [VPS, SPS, PPS, SEI, nal(19, b"\xc0idr"), more, first, more, more, first]:
        d.add(unit)
    assert (d.count, d.pictures) == (6, 3)


def test_an_undecoded_stream_check_counts_pictures_against_packets() -> None:
    counted = StreamCheck(frames=36, nals=36, digest="abc", error=None, decoded=False)
    assert stream_decoded(counted, video(counted)).frames == 36
    with pytest.raises(VerificationError, match=r"36 pictures in the encoder's .* holds 37"):
        stream_decoded(counted, video(counted, packets=37))


@pytest.mark.parametrize(
    "name", ["plain", "a b", "pipe|in", "quote'd", "back\\slash", "[x]:y", " edge ", "tab\there"]
)
def test_tee_escape_protects_what_the_tee_parser_unquotes(name: str) -> None:
    escaped = tee_escape(Path("/scratch") / name)
    assert unquote_like_av_get_token(escaped) == f"/scratch/{name}"
    assert "|" not in escaped.replace("\\|", "")


def unquote_like_av_get_token(text: str) -> str:
    """What libavutil's av_get_token makes of a token ending at ``|``: backslash takes
    the next character as it is, quotes group, unescaped blanks at either end go."""
    out, quoted, at, kept = [], False, 0, 0
    while at < len(text) and text[at] in " \t\n\r":
        at += 1
    while at < len(text):
        ch = text[at]
        if ch == "\\" and at + 1 < len(text):
            out.append(text[at + 1])
            at += 2
            kept = len(out)
            continue
        if ch == "'":
            quoted = not quoted
        elif ch == "|" and not quoted:
            break
        else:
            out.append(ch)
            if ch not in " \t\n\r":
                kept = len(out)
        at += 1
    return "".join(out[:kept])


def info(audio: list[AudioStream], subs: list[SubtitleStream] | None = None) -> MediaInfo:
    return MediaInfo("mov,mp4", 3.0, 1000, audio=tuple(audio), subtitles=tuple(subs or ()))


@pytest.mark.parametrize(
    ("container", "stream", "mode", "safe"),
    [
        ("mp4", AudioStream(1, "aac", tag="mp4a"), "copy", True),
        ("mp4", AudioStream(1, "mp3", tag="mp4a"), "copy", True),
        ("mp4", AudioStream(1, "mp3", tag=".mp3"), "copy", False),  # QuickTime's mp3
        ("mp4", AudioStream(1, "mp3", tag="U"), "copy", False),  # AVI's number for mp3
        ("mp4", AudioStream(1, "aac", tag="\x0f"), "copy", False),  # MPEG-TS stream type
        ("mp4", AudioStream(1, "aac", tag=""), "copy", True),
        ("mp4", AudioStream(1, "pcm_s16le", tag="sowt"), "aac", True),  # encoded: new tag
        ("mp4", SubtitleStream(2, "mov_text", tag="text"), "copy", False),
        ("mp4", SubtitleStream(2, "mov_text", tag="tx3g"), "copy", True),
        ("matroska", AudioStream(1, "aac", tag=""), "copy", True),
        ("matroska", AudioStream(1, "mp3", tag="U"), "copy", False),
        ("matroska", AudioStream(1, "truehd", tag=""), "copy", False),  # 1/1200 s frames
        ("matroska", AudioStream(1, "mlp", tag=""), "copy", False),
        ("matroska", AudioStream(1, "truehd", tag=""), "libopus", True),  # encoded
    ],
)
def test_the_tee_is_used_only_when_plain_ffmpeg_would_write_the_same(
    container: str, stream: AudioStream | SubtitleStream, mode: str, safe: bool
) -> None:
    media = info([stream]) if isinstance(stream, AudioStream) else info([], [stream])
    assert tee_safe(media, container, [(stream.index, mode)]) is safe
