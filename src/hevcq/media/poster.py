"""A poster for a video: a JPEG of a representative frame, as the viewer sees it.

Representative means neither black nor the first fade-in: frames are sampled across the
middle of the video (never its first tenth), each scored on a small grey copy by its
brightness and contrast, and the most detailed frame that is neither near black nor
blown out is kept. The JPEG comes from the pinned ffmpeg, rotation applied.

Times are counted from the file's start, as ``-ss`` counts them: an MPEG-TS recording's
clock starts wherever the broadcast's was. A seek that lands where nothing decodes (a
stream without an index and with keyframes far apart, such as a camera's transport
stream) is tried again from further back, down to the file's start.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from hevcq.errors import HevcqError, PermanentError
from hevcq.media.demuxers import open_input, read_alone
from hevcq.media.ffargs import decoder_args, source_filters, stated_colours
from hevcq.media.ffmpeg import Watch, find_ffmpeg, run_ffmpeg
from hevcq.media.probe import (
    alpha_decoder,
    frame_colours,
    has_alpha,
    hdr_transfer,
    is_rgb,
    layered_alpha,
    main_video_stream,
    packet_span_s,
)

# Seconds the JPEG's ffmpeg may take per second of video it decodes to reach its frame
# (``jpeg_stall_s``).
JPEG_DECODE_S_PER_S = 2.0
# Where frames are sampled, as fractions of the duration: past a fade-in, before credits.
SAMPLE_AT = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# A frame whose mean grey level (0-255) is outside this range is too dark or too bright.
DARKEST, BRIGHTEST = 40.0, 225.0
SCORE_W, SCORE_H = 64, 36
POSTER_WIDTH = 640  # neither side is larger
JPEG_QUALITY = 3  # ffmpeg's -q:v for mjpeg: 2 (best) .. 31
# A picture (width, height) the deinterlacer surely takes: it refuses planes under 3
# columns or 4 lines, and a 4:2:0 picture's chroma is half its size each way (rounded up).
MIN_DEINTERLACED = (6, 8)
# A JPEG's colours as every viewer reads them (JFIF): BT.601's matrix, full range. The
# conversion left to itself kept an HD source's BT.709 values, and browsers showed the
# poster of every HD video in other colours than the video (pure red 233 for 255).
JPEG_COLOURS = "out_color_matrix=bt601:out_range=pc"
POSTER = "poster.jpg"  # its name beside an output
# How far before a sampled time a seek is made when the one at it decodes nothing (None:
# from the file's start), and how far past the time a decode may run without a frame
# before the seek counts as landing where nothing decodes.
SEEK_BACK_S: tuple[float | None, ...] = (0.0, 10.0, 60.0, None)
GIVE_UP_AFTER_S = 2.0
START_MARGIN_S = 1.0  # how far before the video's first frame a seek to its start goes
# A stream no seek reaches is read in order from its start (``_sampled_in_order``): this
# far at most, a frame sampled this often.
IN_ORDER_S = 60.0
IN_ORDER_EVERY_S = 0.5


@dataclass(frozen=True)
class Candidate:
    """One sampled frame: its time and how it scores."""

    time_s: float  # from the file's start, as ``-ss`` counts
    mean: float
    contrast: float  # standard deviation of the grey levels
    seek_back_s: float | None = 0.0  # the ``SEEK_BACK_S`` from which it decoded
    # How many seconds before it that decode started: what the JPEG's decodes to reach it.
    lead_s: float = 0.0

    @property
    def usable(self) -> bool:
        """Neither near black nor blown out."""
        return DARKEST <= self.mean <= BRIGHTEST


def grey_stats(pixels: bytes) -> tuple[float, float]:
    """Mean and standard deviation of 8-bit grey levels."""
    n = len(pixels)
    if n == 0:
        return 0.0, 0.0
    mean = sum(pixels) / n
    var = sum((p - mean) ** 2 for p in pixels) / n
    return mean, math.sqrt(var)


def shown_grey(frame: Any) -> bytes:
    """A decoded frame's grey levels at ``SCORE_W`` x ``SCORE_H``, row by row, as the
    poster shows it: a transparent frame laid over black first, as its JPEG is. Scored
    on its colours alone, the frames of a clip that starts transparent were judged by
    what their alpha hid, and its poster came out black."""
    if not has_alpha(frame.format.name):
        grey = frame.reformat(width=SCORE_W, height=SCORE_H, format="gray")
        plane = grey.planes[0]
        rows, stride = bytes(plane), plane.line_size
        return b"".join(rows[y * stride : y * stride + SCORE_W] for y in range(SCORE_H))
    pair = frame.reformat(width=SCORE_W, height=SCORE_H, format="ya8").planes[0]
    rows, stride = bytes(pair), pair.line_size  # grey and alpha, byte by byte
    return bytes(
        rows[y * stride + 2 * x] * rows[y * stride + 2 * x + 1] // 255
        for y in range(SCORE_H)
        for x in range(SCORE_W)
    )


def choose(candidates: list[Candidate]) -> Candidate | None:
    """The most detailed usable frame; without one, the most detailed frame at all."""
    usable = [c for c in candidates if c.usable]
    pool = usable or candidates
    return max(pool, key=lambda c: (c.contrast, -abs(c.time_s)), default=None)


def sample(path: Path) -> list[Candidate]:
    """Score a frame at each of ``SAMPLE_AT`` of the video's duration."""
    return _sampled(path).candidates


@dataclass(frozen=True)
class _Sampled:
    """What sampling a video found: its candidates, and what its JPEG is made with."""

    candidates: list[Candidate]
    transfer: str  # its HDR transfer ("" for SDR)
    index: int  # its stream (the main video: not cover art, which may come first)
    colours: str  # what it leaves unstated of its colours, stated (ffargs.stated_colours)
    alpha: bool  # it has an alpha channel
    alpha_decoder: str  # the decoder that reads it (probe.alpha_decoder), or ""
    # Large enough for the deinterlacer (``MIN_DEINTERLACED``): a 2x2 clip's poster
    # failed on it, progressive or not.
    deinterlaceable: bool = True
    # Sampled in order from the start (``_sampled_in_order``): no seek reaches the
    # stream, and an input seek to 0 made the binary decode nothing.
    in_order: bool = False
    packets_decoded: int = 0  # what sampling cost: packets decoded across its samples


def _sampled(path: Path, length_s: float | None = None) -> _Sampled:
    """``sample``'s candidates, and what the video's JPEG needs to know of it;
    ``length_s``: the file's length where the caller's probe already measured it."""
    found: list[Candidate] = []
    colours, alpha = "", False
    packets_decoded = 0
    with ExitStack() as handles:
        container = handles.enter_context(open_input(str(path)))
        stream: Any = main_video_stream(container)
        if stream is None:
            raise PermanentError("no video stream")
        transfer = hdr_transfer(stream.codec_context)
        index = int(stream.index)  # read while the file is open: a closed one's is garbage
        ctx = stream.codec_context
        deinterlaceable = ctx.width >= MIN_DEINTERLACED[0] and ctx.height >= MIN_DEINTERLACED[1]
        side_alpha = alpha_decoder(stream)
        layered = layered_alpha(path, stream)  # HEVC with alpha: the binary decodes it
        origin = _origin_s(container, stream)  # where -ss counts from
        first = _stream_start_s(stream, origin)
        # A browser's recording states no length: every sample was its first frame.
        duration = _duration_s(container, stream) or length_s or packet_span_s(path) or 0.0
        frames = _Frames(
            container, stream, first, side_alpha,
            spare=lambda: handles.enter_context(open_input(str(path))),
        )  # fmt: skip
        for fraction in SAMPLE_AT:
            at = first + duration * fraction
            try:
                frame, back, lead = frames.frame_at(at)
            except av.FFmpegError:
                continue  # damaged there (or cut short before it): the other samples count
            if frame is None:
                continue
            if not found and not (transfer or is_rgb(frame.format.name)):
                colours = stated_colours(frame_colours(frame), stream.codec_context.height)
            alpha = alpha or has_alpha(frame.format.name)
            # The frame's own time, floored to the millisecond, so that the JPEG's seek
            # lands on it (a place past a clip's last frame would land on nothing).
            when = (at if frame.time is None else min(at, frame.time)) - origin
            when = math.floor(max(when, 0.0) * 1000) / 1000
            grey = _shown_grey_by_binary(path, index, when) if layered else None
            mean, contrast = grey_stats(grey or shown_grey(frame))
            found.append(Candidate(when, mean, contrast, back, lead))
        packets_decoded = frames.packets_decoded
    in_order = not found
    if in_order:
        found = _sampled_in_order(path, index)
    alpha = alpha or bool(side_alpha) or layered
    return _Sampled(
        found, transfer, index, colours, alpha, side_alpha, deinterlaceable, in_order,
        packets_decoded,
    )  # fmt: skip


def _sampled_in_order(path: Path, index: int) -> list[Candidate]:
    """Candidates for a stream no seek reaches: a raw H.264 or HEVC elementary stream (a
    security camera's ``.h264``), whose demuxer refuses every seek and whose frames carry
    no times. Its frames are decoded in order from the start, for no more than
    ``IN_ORDER_S`` seconds, one sampled every ``IN_ORDER_EVERY_S``, past the first tenth
    of what was read; each is timed by its place and the stream's rate, as the ffmpeg
    binary times such a stream. Nothing when nothing decodes."""
    frames: list[tuple[float, Any]] = []
    with open_input(str(path)) as container:
        stream: Any = container.streams[index]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        next_at, n = 0.0, 0
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    when = n / rate
                    n += 1
                    if when >= next_at:
                        frames.append((when, shown_grey(frame)))
                        next_at += IN_ORDER_EVERY_S
                if n / rate >= IN_ORDER_S:
                    break
        except av.FFmpegError:
            pass  # damaged further on: what decoded before counts
    read_s = n / rate
    return [
        Candidate(math.floor(when * 1000) / 1000, *grey_stats(grey), seek_back_s=None)
        for when, grey in frames
        if when >= read_s / 10 or len(frames) == 1
    ]


def _shown_grey_by_binary(path: Path, index: int, when_s: float) -> bytes | None:
    """``shown_grey`` of the frame ``when_s`` seconds into the file (as ``-ss`` counts),
    decoded by the ffmpeg binary: an HEVC with Alpha keeps its alpha in a second layer,
    which the libav PyAV carries does not decode. None when the binary gives no frame
    there (the caller then judges PyAV's frame by its colours)."""
    over_black = ",".join(source_filters(deinterlace=False, alpha=True))
    args = [find_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error"]
    args += ["-ss", f"{when_s:.3f}", "-i", f"file:{path}", "-map", f"0:{index}"]
    args += ["-frames:v", "1", "-vf", f"{over_black},scale={SCORE_W}:{SCORE_H},format=gray"]
    try:
        shown = read_alone([*args, "-f", "rawvideo", "-"])
        done = subprocess.run(shown, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError, HevcqError):
        return None
    size = SCORE_W * SCORE_H
    return done.stdout[:size] if done.returncode == 0 and len(done.stdout) >= size else None


def _origin_s(container: Any, stream: Any) -> float:
    """The time ``-ss`` counts from: the file's start (its earliest stream's)."""
    if container.start_time is not None:
        return float(container.start_time / av.time_base)
    return _stream_start_s(stream, 0.0)


def _stream_start_s(stream: Any, default: float) -> float:
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return default


def _duration_s(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration / av.time_base)
    return 0.0


@dataclass
class _Pass:
    """A decode going forward from one seek: kept from one sample to the next, so that a
    video with keyframes far apart is decoded once across its samples, not once from its
    keyframe for each (a browser's recording has one keyframe: its nine samples decoded
    it 4.5 times over)."""

    container: Any
    stream: Any
    packets: Iterator[Any]
    decode: Callable[[Any], Iterable[Any]]
    seek_to: float | None  # where its seek went, on the stream's clock (None: the start)
    start_s: float | None = None  # its first packet's time: where its decode starts
    read_to_s: float = -math.inf  # the latest packet time read
    ended: bool = False

    def back_at(self, at: float) -> float | None:
        """The ``SEEK_BACK_S``-like distance from which a frame at ``at`` of this pass
        decodes: back to where its seek went."""
        return None if self.seek_to is None else at - self.seek_to


class _Frames:
    """The frames at given times of one video stream, asked for in ascending order.

    Each is decoded from a seek just before it when that seek lands where a decode can
    start; else from further back (``SEEK_BACK_S``), down to the file's start. Where the
    previous frame's decode has already read past the place a seek would land, it goes
    on from there instead: never more decoding than a seek would cost, and a video with
    one keyframe is decoded once across all its samples. A second handle on the file
    (``spare``) tries seeks without losing the decode kept on the first.
    """

    def __init__(
        self, container: Any, stream: Any, first: float, decoder: str, spare: Callable[[], Any]
    ) -> None:
        self._free = [container]  # handles no kept decode is using
        self._index = int(stream.index)
        self._first = first
        self._decoder = decoder
        self._spare = spare  # opens another handle on the file
        self._live: _Pass | None = None
        self.packets_decoded = 0  # the work done, for the record

    def frame_at(self, at: float) -> tuple[Any, float | None, float]:
        """The first frame at or after ``at`` seconds (the stream's own clock), the
        ``SEEK_BACK_S`` from which a seek decodes it (``Candidate.seek_back_s``), and
        how many seconds before it that decode starts; the last frame before ``at``
        when the video ends first (a clip of a frame or two, a duration the container
        overstates); None only when nothing decodes even from the file's start."""
        try:
            return self._frame_at(at)
        except av.FFmpegError:
            self._drop_live()  # damaged there: the next sample seeks afresh
            raise

    def _frame_at(self, at: float) -> tuple[Any, float | None, float]:
        for back in SEEK_BACK_S:
            if back is not None and back > 0 and at - back <= self._first:
                continue  # the start itself is tried last
            # From the start: a second before it, as a seek lands on the packet whose
            # decode time reaches the target, and the first frame's decode time precedes
            # its own time when frames are reordered (B-frames): a seek to the first
            # frame's time lands one packet past the only keyframe of a camera's
            # transport stream.
            seek_to = self._first - START_MARGIN_S if back is None else at - back
            live = self._live
            if live is not None and live.read_to_s < at:
                start = self._decode_start(seek_to, at)
                if start is None and back is not None:
                    continue  # a seek there decodes nothing by the frame: further back
                if start is None or start <= live.read_to_s:
                    frame = self._on(live, at, give_up=False)
                    if frame is not None:
                        if start is not None:  # a seek there decodes it as well
                            return frame, back, at - start
                        return frame, live.back_at(at), at - (live.start_s or 0.0)
                    self._drop_live()
            attempt = self._seek(seek_to, from_start=back is None)
            frame = self._on(attempt, at, give_up=back is not None)
            if frame is not None:
                lead = at - (attempt.start_s if attempt.start_s is not None else seek_to)
                self._keep(attempt)
                return frame, back, max(0.0, lead)
            self._free.append(attempt.container)
        return None, None, 0.0

    def _decode_start(self, seek_to: float, at: float) -> float | None:
        """Where a decode from a seek to ``seek_to`` starts: the time of the first
        keyframe after where the seek lands, found by reading packets (not decoding them)
        on a handle the kept decode is not using. None when none comes by
        ``GIVE_UP_AFTER_S`` past ``at``: the seek lands where nothing decodes."""
        container = self._handle()
        stream = container.streams[self._index]
        tb = stream.time_base
        try:
            _seek(container, stream, seek_to)
            for packet in container.demux(stream):
                if packet.pts is None or not tb:
                    continue
                when = float(packet.pts * tb)
                if packet.is_keyframe:
                    return when
                if when > at + GIVE_UP_AFTER_S:
                    return None
            return None
        finally:
            self._free.append(container)

    def _seek(self, to: float, *, from_start: bool) -> _Pass:
        """A new decode from a seek to ``to``. Given a decoder's name (libvpx for a WebM
        whose VP8 or VP9 keeps its alpha beside the picture), a decoder of that name, new
        for each seek, decodes the packets: the stream's own gives the colours alone, so
        frames its alpha hides were judged by what they hid."""
        container = self._handle()
        stream = container.streams[self._index]
        _seek(container, stream, to)
        decode = _decoder_like(stream, self._decoder).decode if self._decoder else _decoded
        packets = iter(container.demux(stream))
        return _Pass(container, stream, packets, decode, None if from_start else to)

    def _on(self, run: _Pass, at: float, *, give_up: bool) -> Any:
        """Decode on in ``run``: the first frame at or after ``at``, else its last one.
        With ``give_up``, None once the packets are ``GIVE_UP_AFTER_S`` past ``at`` and
        nothing has decoded: the seek landed where nothing decodes."""
        tb = run.stream.time_base
        last = None
        for packet in run.packets:
            self.packets_decoded += 1
            when = float(packet.pts * tb) if packet.pts is not None and tb else None
            if when is not None:
                run.start_s = when if run.start_s is None else run.start_s
                run.read_to_s = max(run.read_to_s, when)
            for frame in run.decode(packet):
                if frame.time is not None and frame.time + 1e-6 >= at:
                    return frame
                last = frame
            if give_up and last is None and when is not None and when > at + GIVE_UP_AFTER_S:
                return None
        run.ended = True
        return last

    def _keep(self, run: _Pass) -> None:
        """Keep ``run``'s decode for the next frame (unless it reached the end)."""
        self._drop_live()
        if run.ended:
            self._free.append(run.container)
        else:
            self._live = run

    def _drop_live(self) -> None:
        if self._live is not None:
            self._free.append(self._live.container)
            self._live = None

    def _handle(self) -> Any:
        return self._free.pop() if self._free else self._spare()


def _seek(container: Any, stream: Any, to: float) -> None:
    tb = stream.time_base
    container.seek(int(to / tb) if tb else 0, stream=stream, backward=True, any_frame=False)


def _decoded(packet: Any) -> Iterable[Any]:
    return packet.decode()  # type: ignore[no-any-return]


def _decoder_like(stream: Any, name: str) -> Any:
    """A new decoder called ``name`` for ``stream``, with the colours its container
    states: a decoder made apart from the stream knows only what the bitstream says, and
    a VP8 picture says nothing of its colours."""
    ctx: Any = av.CodecContext.create(name, "r")
    own = stream.codec_context
    for attr in ("color_primaries", "color_trc", "colorspace", "color_range"):
        setattr(ctx, attr, getattr(own, attr))
    return ctx


def make_poster(
    ffmpeg: str,
    src: Path,
    dest: Path,
    *,
    watch: Watch | None = None,
    length_s: float | None = None,
) -> Candidate:
    """Write ``dest`` (JPEG) from the most representative frame of ``src``; which one.

    Raises ``PermanentError`` for a file with no decodable video. The JPEG's ffmpeg runs
    under ``watch`` (the job's stop), its stall limit at least ``JPEG_DECODE_S_PER_S``
    for each second it decodes before the frame (``jpeg_stall_s``). ``length_s``: the
    source's length as its probe found it, so that a file stating none is not read
    whole again to measure it.
    """
    try:
        sampled = _sampled(src, length_s)
        best = choose(sampled.candidates)
    except av.FFmpegError as exc:
        raise PermanentError(f"not a media file: {exc.strerror or exc}") from exc
    if best is None:
        raise PermanentError("no frame decodes for a poster")
    # Input seeking, from as far back as the frame was found from; the decode then runs on
    # to the frame (output seeking), which ffmpeg counts from where the input seek went.
    before = best.time_s if best.seek_back_s is None else min(best.seek_back_s, best.time_s)
    args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    args += [] if sampled.in_order else ["-ss", f"{best.time_s - before:.3f}"]
    args += [*decoder_args(sampled.index, sampled.alpha_decoder), "-i", f"file:{src}"]
    args += ["-map", f"0:{sampled.index}", "-ss", f"{before:.3f}", "-frames:v", "1"]
    # Within POSTER_WIDTH on both sides, aspect kept, never enlarged; rotation applied.
    # Interlaced frames are made progressive and non-square pixels stretched to the
    # displayed aspect first (a JPEG's own aspect field is ignored by browsers); both are
    # no-ops on a progressive, square-pixel frame.
    # An HDR picture is tone-mapped to SDR, as the ladder's rungs are: a JPEG is SDR. A
    # transparent one is laid over black, as its videos are: a JPEG has no alpha.
    box = f"w='min({POSTER_WIDTH},iw)':h='min({POSTER_WIDTH},ih)'"
    # (The deinterlacer passes progressive frames through untouched.)
    filters = source_filters(
        deinterlace=sampled.deinterlaceable, hdr_transfer=sampled.transfer, alpha=sampled.alpha
    )
    first = [*filters, sampled.colours]
    shown = ",".join([*filter(None, first), "scale=w='trunc(iw*sar/2)*2':h=ih", "setsar=1"])
    fit = f"scale={box}:force_original_aspect_ratio=decrease:flags=lanczos:{JPEG_COLOURS}"
    args += ["-vf", f"{shown},{fit}"]
    args += ["-q:v", str(JPEG_QUALITY), "-f", "image2", "-c:v", "mjpeg"]
    args += ["-progress", "pipe:1", "-nostats", f"file:{dest}"]
    watch = watch or Watch()
    stall_s = jpeg_stall_s(max(before, best.lead_s), watch.stall_timeout_s)
    try:
        run_ffmpeg(args, on_progress=None, stop=watch.stop, stall_timeout_s=stall_s)
    except PermanentError as exc:
        raise PermanentError(f"poster: {exc}") from exc
    if not dest.is_file():
        raise PermanentError("poster: ffmpeg failed: no output")
    return best


def jpeg_stall_s(decoded_s: float, stall_s: float) -> float:
    """How long the JPEG's ffmpeg may report no progress (pure): it reports none until
    its one frame is out, after decoding ``decoded_s`` seconds of video to reach it, from
    the keyframe before (a source with one keyframe: from its start). At least the
    worker's ``stall_s``.

    The run once had a fixed 120 s: a browser's recording of 20 minutes or more, with one
    keyframe, failed its poster on every try (ffmpeg decoded 240 s of a 1080p one in 26 s
    on two vCPUs; ``JPEG_DECODE_S_PER_S`` allows for 8K, about 15 times slower)."""
    return max(stall_s, JPEG_DECODE_S_PER_S * max(0.0, decoded_s))
