"""Whether an output already in place counts as the new one (no ffmpeg binary: PyAV muxes)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from hevcq.library.quarantine import OutputExists, place_output
from hevcq.media.equality import same_bytes, same_media, stream_digests


def mux(path: Path, payloads: list[bytes]) -> Path:
    """A Matroska file of one video stream whose packets are ``payloads``."""
    with av.open(str(path), "w", format="matroska") as out:
        st = out.add_stream("mpeg4", rate=10)
        st.width, st.height, st.pix_fmt = 16, 16, "yuv420p"
        st.time_base = Fraction(1, 10)
        for n, data in enumerate(payloads):
            packet = av.Packet(data)
            packet.stream, packet.pts, packet.dts = st, n, n
            packet.time_base = st.time_base
            out.mux(packet)
    return path


FRAMES = [bytes([n]) * 64 for n in range(1, 6)]


def test_matroska_written_twice_differs_in_bytes_but_not_in_streams(tmp_path: Path) -> None:
    a, b = mux(tmp_path / "a.mkv", FRAMES), mux(tmp_path / "b.mkv", FRAMES)
    assert not same_bytes(a, b)  # random segment UIDs
    assert stream_digests(a) == stream_digests(b)
    assert same_media(a, b)


def test_other_payloads_are_other_media(tmp_path: Path) -> None:
    a = mux(tmp_path / "a.mkv", FRAMES)
    assert not same_media(a, mux(tmp_path / "b.mkv", [*FRAMES[:-1], b"\x00" * 64]))
    assert not same_media(a, mux(tmp_path / "c.mkv", FRAMES[:-1]))


@pytest.mark.parametrize("other", [b"", b"not media at all, just words"])
def test_a_file_that_is_not_media_is_never_the_same(tmp_path: Path, other: bytes) -> None:
    a = mux(tmp_path / "a.mkv", FRAMES)
    (tmp_path / "b.mkv").write_bytes(other)
    assert stream_digests(tmp_path / "b.mkv") is None
    assert not same_media(a, tmp_path / "b.mkv")


def test_placing_over_an_equal_output_keeps_it_and_a_different_one_is_refused(
    tmp_path: Path,
) -> None:
    (tmp_path / "out").mkdir()
    dest = mux(tmp_path / "out" / "a.mkv", FRAMES)
    before = dest.read_bytes()
    again = mux(tmp_path / "again.mkv", FRAMES)
    assert place_output(again, dest) == dest
    assert dest.read_bytes() == before  # kept, not rewritten, no second copy
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.mkv"]
    with pytest.raises(OutputExists):
        place_output(mux(tmp_path / "other.mkv", FRAMES[:2]), dest)
