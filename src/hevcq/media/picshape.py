"""The size a picture has for most of its length, read from its keyframes
(``main_picture``).

A browser's recording (MediaRecorder) or a video call's (WebRTC) changes size as the
connection allows: it commonly starts small, 320x180 for its first second, and goes on at
1280x720. A broadcast recording may begin on the end of the programme before, at another
size. A container's header states the first size, and every encode, ladder and pool
choice followed it: such a recording came out 320x180 everywhere, and the `720p` pool
skipped it as smaller. VP8 and VP9 state each keyframe's size in its first bytes, so their
packets are read once (nothing decoded); an MPEG-TS or PS recording's keyframes are
decoded, at most one a second. The size shown longest is the one a plan is made at;
frames of other sizes are fitted to it (``ffargs.fit_picture``).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from hevcq.media.demuxers import open_input
from hevcq.media.model import KEYFRAME_SIZED_CODECS, MediaInfo
from hevcq.media.probe import probe, sample_aspect
from hevcq.media.splice import TS_DISCONT

CODECS = KEYFRAME_SIZED_CODECS  # the codecs whose keyframes' headers are read here
VP8_START = b"\x9d\x01\x2a"
VP9_SYNC = 0x498342
VP9_RGB = 7  # color_space CS_RGB
HEADER_BYTES = 32  # more than either header needs


def vp8_size(frame: bytes) -> tuple[int, int] | None:
    """A VP8 keyframe's width and height (its frame tag and start code, RFC 6386 9.1);
    None for an inter frame or what is not a keyframe header."""
    if len(frame) < 10 or frame[0] & 1 or frame[3:6] != VP8_START:
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


class _Bits:
    """Big-endian bits of ``data``, read from the first."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self._data[self._at >> 3]  # IndexError past the end: caught by the caller
            value = (value << 1) | ((byte >> (7 - (self._at & 7))) & 1)
            self._at += 1
        return value


def vp9_size(frame: bytes) -> tuple[int, int] | None:
    """A VP9 keyframe's width and height, from its uncompressed header (the VP9 bitstream
    specification, 6.2: frame marker, profile, frame type, sync code, colour config,
    frame size); None for any other frame or what is not such a header."""
    try:
        bits = _Bits(frame)
        if bits.read(2) != 2:  # frame_marker
            return None
        profile = bits.read(1) | (bits.read(1) << 1)
        if profile == 3:
            bits.read(1)  # reserved_zero
        if bits.read(1):  # show_existing_frame
            return None
        if bits.read(1) != 0:  # frame_type: 0 is a keyframe
            return None
        bits.read(2)  # show_frame, error_resilient_mode
        if bits.read(24) != VP9_SYNC:
            return None
        _colour_config(bits, profile)
        return bits.read(16) + 1, bits.read(16) + 1
    except IndexError:
        return None


def _colour_config(bits: _Bits, profile: int) -> None:
    """Read past a keyframe's colour config (the VP9 specification, 6.2.2)."""
    if profile >= 2:
        bits.read(1)  # ten_or_twelve_bit
    if bits.read(3) != VP9_RGB:
        bits.read(1)  # color_range
        if profile in (1, 3):
            bits.read(3)  # subsampling_x, subsampling_y, reserved_zero
    elif profile in (1, 3):
        bits.read(1)  # reserved_zero


# A picture's shape as read: width, height and pixel aspect (numerator, denominator;
# (0, 0): not read, a VP8/VP9 header states none).
Shape = tuple[int, int, int, int]


def _header(read: Callable[[bytes], tuple[int, int] | None]) -> Callable[[Any], Shape | None]:
    def shape(packet: Any) -> Shape | None:
        size = read(bytes(packet)[:HEADER_BYTES])
        return None if size is None else (*size, 0, 0)

    return shape


READERS = {"vp8": _header(vp8_size), "vp9": _header(vp9_size)}
DECODE_EVERY_S = 1.0


def main_picture(path: Path, info: MediaInfo) -> MediaInfo:
    """``info`` with its main video's size the one its keyframes show longest, and marked
    as read so (``VideoStream.sized_by_keyframes``): a VP8 or VP9 stream's keyframe
    headers, or an MPEG-TS/PS recording's keyframes decoded; ``info`` itself otherwise."""
    video = info.main_video
    if video is None or video.sized_by_keyframes:
        return info
    shown = shown_sizes(path, video.index, READERS.get(video.codec))
    if shown is None:
        return info
    shape = (video.width, video.height, video.sar_num, video.sar_den)
    if shown:
        # The longest shown; on a tie, the larger picture, then the first.
        shape, _ = max(shown.items(), key=lambda kv: (kv[1], kv[0][0] * kv[0][1]))
    width, height, sar_num, sar_den = shape
    if not sar_num:  # not read: the stream's
        sar_num, sar_den = video.sar_num, video.sar_den
    main = dataclasses.replace(
        video,
        width=width,
        height=height,
        sar_num=sar_num,
        sar_den=sar_den,
        sized_by_keyframes=True,
    )
    return dataclasses.replace(
        info, video=tuple(main if v.index == video.index else v for v in info.video)
    )


def probe_main(path: Path, *, below: int | None = None) -> MediaInfo:
    """``probe``, with a VP8/VP9 picture at the size it shows longest: what a client
    decides its pools from, as the worker will (a header states only the first size).

    With ``below``, only a picture whose header's shorter side is under it is read so
    (a library scan's rendition pools skip such a source as too small; a larger one they
    encode whatever sizes follow), so a library of HD WebM is not read through at scan."""
    info = probe(path)
    if below is not None and sized_enough(info, below):
        return info
    return main_picture(path, info)


def sized_enough(info: MediaInfo, below: int) -> bool:
    """Whether ``info``'s size is all a pool that skips pictures shorter than ``below``
    needs: read from the keyframes where the header's could mislead it (pure)."""
    video = info.main_video
    if video is None or video.codec not in CODECS or video.sized_by_keyframes:
        return True
    return min(video.display_size) >= below


def shown_sizes(
    path: Path, index: int, read: Callable[[Any], Shape | None] | None
) -> dict[Shape, float] | None:
    """For how many seconds stream ``index`` shows each size its keyframes state (each
    keyframe's from it to the next, the last's to the stream's last packet). Reads the
    file's packets once; damaged data ends the reading, and what was read by then is the
    answer.

    ``read`` takes a keyframe packet to its size from its first bytes (nothing decoded).
    Without one, an MPEG-TS or PS file's keyframes are decoded, at most one a second (a
    size changes where a recording does, and an all-keyframe stream would cost a decode
    per frame); any other file's answer is None: nothing read."""
    seen: list[tuple[float, Shape]] = []  # where a keyframe's shape was read
    last = 0.0
    try:
        with open_input(str(path)) as container:
            if read is None and not container.format.flags & TS_DISCONT:
                return None
            stream = container.streams[index]
            decoder = None if read is not None else _Decoder(stream)
            sent: float | None = None  # the last keyframe given to the decoder
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None or packet.time_base is None:
                    continue
                at = float(packet.pts * packet.time_base)
                last = max(last, at)
                if not packet.is_keyframe:
                    continue
                if decoder is None:
                    size = read(packet) if read is not None else None
                    seen += [(at, size)] if size is not None else []
                elif sent is None or at - sent >= DECODE_EVERY_S:
                    sent = at
                    seen += decoder.sizes(packet, at)
            if decoder is not None:
                seen += decoder.sizes(None, last)  # the frames it still holds
    except av.FFmpegError:
        pass
    return _durations(sorted(seen), last)


def _durations(seen: list[tuple[float, Shape]], last: float) -> dict[Shape, float]:
    """How long each size is shown, each from where it was seen to where the next one
    was (the last to ``last``): ``seen`` in order of time (pure)."""
    shown: dict[Shape, float] = {}
    ends = [at for at, _ in seen[1:]] + [last] if seen else []
    for (at, size), end in zip(seen, ends, strict=True):
        shown[size] = shown.get(size, 0.0) + max(0.0, end - at)
    return shown


class _Decoder:
    """Decodes the keyframes of ``stream`` it is given, every other frame skipped, in the
    calling thread. A decoder holds frames back to put them in order (H.264 with
    B-frames) and lets them out a packet or more later, so each size comes with its
    frame's time: its own, or, where it has none (the frames let out at the end), that of
    the keyframe it came from, in the order they were given."""

    def __init__(self, stream: Any) -> None:
        self._context = stream.codec_context
        self._context.skip_frame = "NONKEY"
        self._context.thread_count = 1
        self._sent: collections.deque[float] = collections.deque()

    def sizes(self, packet: Any, at: float) -> list[tuple[float, Shape]]:
        """The frames ``packet`` (None: the end) lets out, with their times."""
        if packet is not None:
            self._sent.append(at)
        out: list[tuple[float, Shape]] = []
        try:
            frames = self._context.decode(packet)
        except av.FFmpegError:
            # A damaged keyframe (a broadcast's reception): no frame of it to place, and
            # the next one tells.
            if packet is not None:
                self._sent.pop()
            return out
        for frame in frames:
            sent = self._sent.popleft() if self._sent else at
            own = frame.time
            when = own if own is not None and math.isfinite(own) else sent
            # A frame has no pixel aspect of its own here: the decoder's is that of the
            # parameter sets it read last, which a frame held back may predate by a
            # keyframe, at a change only.
            sar = sample_aspect(self._context.sample_aspect_ratio)
            out.append((when, (frame.width, frame.height, sar.numerator, sar.denominator)))
        return out
