"""``demuxers.Input``: a read of a file whose streams grow partway ends cleanly; any other
``IndexError`` is not hidden."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hevcq.media.demuxers import Input


class FakeContainer:
    """PyAV 18's input container as it reads a file that listed a stream partway: its
    packets, then the error its end raises past the streams it listed at the start."""

    def __init__(self, packets: list[str]) -> None:
        self.packets = packets
        self.closed = False
        self.streams = ["video", "audio"]

    def demux(self, *args: Any, **kwargs: Any) -> Iterator[str]:
        yield from self.packets
        raise IndexError("list index out of range")

    def close(self) -> None:
        self.closed = True


class FakePacket(str):
    def decode(self) -> list[str]:
        return [f"frame of {self}"]


def test_the_read_ends_where_pyav_runs_past_its_streams() -> None:
    fake = FakeContainer(["p1", "p2", "flush"])
    with Input(fake) as container:
        assert list(container.demux()) == ["p1", "p2", "flush"]
        assert container.streams == ["video", "audio"]  # the rest is the container's
    assert fake.closed


def test_frames_are_decoded_from_every_packet_read() -> None:
    fake = FakeContainer([FakePacket("p1"), FakePacket("p2")])
    assert list(Input(fake).decode()) == ["frame of p1", "frame of p2"]


def test_an_index_error_before_any_packet_is_raised() -> None:
    # A stream asked for that is not there, not the end of a read.
    with pytest.raises(IndexError):
        list(Input(FakeContainer([])).demux())
