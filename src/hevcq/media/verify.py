"""Proving an encoded output is what was planned: shape, length, and that it decodes.

How much is decoded follows the pool's ``verify`` policy (``hevcq.pools``), through the
``StreamCheck`` the encode step hands over:
- no ``StreamCheck`` (the tee was not used): every frame of the file is decoded here;
- a decoded one (``verify: full``): every frame was decoded during the encode, and the
  file's video is proved to be that stream;
- a partly decoded one (``verify: stream``): the file's video is proved to be the
  encoder's own stream (digest, parameter sets, one picture per packet), whose first
  frames were decoded during the encode; here the file's first keyframe and the start of
  its last GOP are decoded (``decode_ends``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import structlog

from hevcq.errors import PermanentError, VerificationError
from hevcq.media.demuxers import open_input
from hevcq.media.model import EncodePlan, MediaInfo
from hevcq.media.probe import main_video_stream, probe
from hevcq.media.splice import spliced_video_span
from hevcq.media.streamcheck import (
    FIRST_NON_VCL,
    AnnexBSplitter,
    NalDigest,
    StreamCheck,
    hvcc_nals,
    length_prefixed_nals,
    nal_length_size,
)

log = structlog.get_logger(__name__)

DURATION_TOLERANCE_S = 0.5  # output against source, and a replacement against its original
# Decoded video may end a little before the container duration (audio often runs a few
# frames longer); more than this means frames are missing, i.e. a truncated file.
DECODE_SHORTFALL_S = 1.0
# verify: stream decodes each end GOP from its keyframe up to this many frames: a GOP can
# be the whole file (x265 keyint 250, no scene cut), and decoding it all is the cost the
# policy exists to avoid. Eight frames are the keyframe and the first mini-GOP leaning on
# it (x265 bframes=4): 0.06 s at 1080p on 2 vCPUs, where 240 frames take 1 s. The first
# GOP's are decoded from the encoder's stream during the encode, at idle priority; from
# the file, its first keyframe (with the sample description's parameter sets: 0.015 s)
# and the start of its last GOP.
END_FRAMES = 8
RASL = frozenset({8, 9})  # leading pictures a decoder starting at a CRA keyframe drops
# explode: a damaged slice is an error, not a picture silently concealed.
DECODER_OPTIONS = {"skip_loop_filter": "all", "err_detect": "explode"}
# A sound stream holding less sound than this share of the time its packets span is timed
# wrongly (``raise_if_sound_mistimed``); sound with gaps a recorder left holds far more.
SOUND_HELD_AT_LEAST = 0.5


@dataclass(frozen=True)
class Decoded:
    """What decoding a video stream to the end found."""

    frames: int
    span_s: float  # first frame start to last frame end
    declared_frames: int  # from the container index; 0 when it has none (Matroska)
    declared_span_s: float | None  # the stream's own declared duration, if any


@dataclass(frozen=True)
class EndsDecoded:
    """What decoding the ends of a file found (frames expected and decoded)."""

    expected: int
    frames: int
    keyframes: int  # in the whole file


@dataclass(frozen=True)
class FileVideo:
    """The video packets of an output file, read without decoding them."""

    packets: int
    nals: int
    digest: str  # see streamcheck.NalDigest
    span_s: float  # first packet start to last packet end
    declared_frames: int
    declared_span_s: float | None


def verify_output(
    path: Path,
    plan: EncodePlan,
    source: MediaInfo,
    *,
    source_path: Path | None = None,
    stream: StreamCheck | None = None,
) -> MediaInfo:
    """Probe the output and prove it decodes; raise ``VerificationError`` if not.

    ``stream`` is what reading the encoder's video stream during the encode found; the
    file's packets are then checked to be that stream, and decoded only as far as the
    stream was not (see the module docstring). Without it, every frame of the file's
    video is decoded here. With ``source_path``, an output short
    because the source itself is short raises ``PermanentError("source appears
    truncated: ...")`` instead.
    """
    try:
        info = probe(path)
    except PermanentError as exc:
        raise VerificationError(f"output is unreadable: {exc}") from exc
    problems = shape_problems(info, plan)
    video = info.main_video
    if video is not None:
        try:
            problems += _video_problems(path, video.index, stream)
        except av.FFmpegError as exc:
            raise VerificationError(f"output video does not decode: {exc.strerror}") from exc
        except ValueError as exc:
            raise VerificationError(f"output video packets are malformed: {exc}") from exc
    played = as_played(source, source_path)
    short = _shortfall(info, played)
    if short is not None:
        raise_if_source_truncated(source, source_path, info.duration_s or 0.0)
        # A subtitle that runs on past the picture and sound counts in a file's length in
        # one container and not in another: what plays must last the same.
        if played is not source or not _plays_as_long(path, source_path):
            problems.append(
                f"output lasts {info.duration_s:.2f} s, source {played.duration_s:.2f} s"
            )
        elif short < 0:
            raise_if_sound_mistimed(path)
    if problems:
        raise VerificationError("output rejected: " + "; ".join(problems))
    return info


def _video_problems(path: Path, index: int, stream: StreamCheck | None) -> list[str]:
    if stream is None:
        decoded = decode_video(path, index)
        log.info("output_decoded", how="file, every frame", frames_decoded=decoded.frames)
        return decode_problems(decoded)
    decoded = stream_decoded(stream, file_video(path, index))
    if stream.decoded:
        log.info("output_decoded", how="stream, every frame", frames_decoded=decoded.frames)
        return decode_problems(decoded)
    ends = decode_ends(path, index, first=1)
    log.info(
        "output_decoded",
        how="stream, first frames; file, ends",
        frames_decoded=stream.first_decoded + ends.frames,
        file_frames_decoded=ends.frames,
        frames=decoded.frames,
        keyframes=ends.keyframes,
    )
    return decode_problems(decoded) + ends_problems(ends)


def shape_problems(info: MediaInfo, plan: EncodePlan) -> list[str]:
    """What differs between the probed output and the plan (empty when nothing)."""
    video = info.main_video
    if video is None:
        return ["output has no video stream"]
    problems = []
    if video.codec != plan.codec:
        problems.append(f"video codec is {video.codec}, not {plan.codec}")
    if (video.width, video.height) != (plan.width, plan.height):
        coded, planned = f"{video.width}x{video.height}", f"{plan.width}x{plan.height}"
        problems.append(f"coded size {coded}, planned {planned}")
    if video.rotation != plan.rotation:
        problems.append(f"rotation {video.rotation}, planned {plan.rotation}")
    if plan.spherical and not video.spherical:
        problems.append("its source's spherical (360-degree) mapping is missing")
    depth = 10 if plan.ten_bit else 8
    if video.bit_depth != depth:
        problems.append(f"{video.bit_depth}-bit video ({video.pix_fmt}), planned {depth}-bit")
    if len(info.audio) != len(plan.audio):
        problems.append(f"{len(info.audio)} audio streams, planned {len(plan.audio)}")
    return problems + _count_problems(info, plan)


def _count_problems(info: MediaInfo, plan: EncodePlan) -> list[str]:
    """Streams the output holds more or fewer of than the plan maps."""
    problems = []
    if len(info.telemetry) != len(plan.telemetry):
        problems.append(f"{len(info.telemetry)} telemetry streams, planned {len(plan.telemetry)}")
    pictures = sum(not v.attached_pic for v in info.video)
    if pictures != 1 + len(plan.extra_video):
        problems.append(f"{pictures} video streams, planned {1 + len(plan.extra_video)}")
    covers = sum(v.attached_pic for v in info.video)
    if covers != len(plan.covers):
        problems.append(f"{covers} cover pictures, planned {len(plan.covers)}")
    return problems


def decode_problems(decoded: Decoded) -> list[str]:
    """Frames missing compared with what the output's own index declares."""
    if decoded.frames == 0:
        return ["no video frame decodes"]
    problems = []
    if decoded.declared_frames and decoded.frames < decoded.declared_frames:
        problems.append(f"only {decoded.frames} of {decoded.declared_frames} frames decode")
    declared = decoded.declared_span_s
    if declared is not None and declared - decoded.span_s > DURATION_TOLERANCE_S:
        problems.append(f"video decodes for {decoded.span_s:.2f} s of {declared:.2f} s")
    return problems


def decoded_seconds(path: Path) -> float:
    """Decode every frame of a file's main video stream; the seconds of video decoded.

    Raises ``VerificationError`` when there is no video, or it does not decode.
    """
    try:
        decoded = decode_video(path)
    except av.FFmpegError as exc:
        raise VerificationError(f"does not decode: {exc}") from exc
    if decoded.frames == 0:
        raise VerificationError("no video frame decodes")
    return decoded.span_s


def sound_seconds(path: Path) -> dict[int, float]:
    """Decode every audio stream of a file; the seconds of sound each gives, by stream
    index. A frame that does not decode adds nothing: a damaged frame of a
    broadcast recording costs its 21 ms, and a stretch copied under a configuration it
    does not have (``hevcq.media.soundshape``) costs all of its length. Raises
    ``VerificationError`` when the file does not read."""
    return _tally(path, "audio", _seconds_of_sound)


def subtitle_packets(path: Path) -> dict[int, int]:
    """How many packets each subtitle stream of a file carries, by stream index (demuxing
    only); empty when the file does not read. A broadcast recording lists a DVB subtitle
    stream whether or not the programme has subtitles, and often it carries nothing."""
    try:
        counts = _tally(path, "subtitles", lambda packet: 1.0 if packet.size else 0.0)
    except VerificationError:
        return {}
    return {index: int(n) for index, n in counts.items()}


def _seconds_of_sound(packet: Any) -> float:
    """The seconds of sound a packet decodes to; 0 when it does not decode."""
    try:
        frames = packet.decode()
    except av.FFmpegError:
        return 0.0
    return float(sum(f.samples / f.sample_rate for f in frames if f.sample_rate))


def _tally(path: Path, kind: str, count: Callable[[Any], float]) -> dict[int, float]:
    """``count`` summed over the packets of each stream of one kind ("audio",
    "subtitles"), by stream index; raises ``VerificationError`` when the file does not
    read."""
    totals: dict[int, float] = {}
    try:
        with open_input(str(path)) as container:
            streams = list(getattr(container.streams, kind))
            totals = dict.fromkeys((s.index for s in streams), 0.0)
            for packet in container.demux(streams) if streams else ():
                totals[packet.stream.index] += count(packet)
    except av.FFmpegError as exc:
        raise VerificationError(f"does not read: {exc}") from exc
    return totals


def decode_video(path: Path, index: int | None = None) -> Decoded:
    """Decode every frame of one video stream (threaded), by default the first that is not
    cover art; raises ``av.FFmpegError``, or ``VerificationError`` when there is none."""
    with open_input(str(path)) as container:
        stream: Any = container.streams[index] if index is not None else _main_video(container)
        stream.thread_type = "AUTO"
        stream.codec_context.options = DECODER_OPTIONS  # see StreamDecoder
        frames, span = 0, _Span()
        for frame in container.decode(stream):
            frames += 1
            span.add(frame)
        return Decoded(frames, span.seconds, int(stream.frames or 0), _declared_span(stream))


def _main_video(container: Any) -> Any:
    stream = main_video_stream(container)
    if stream is None:
        raise VerificationError("no video stream to decode")
    return stream


class _Span:
    """First start to last end of frames or packets (``pts``, ``duration``, ``time_base``)."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None

    def add(self, item: Any) -> None:
        if item.pts is None or item.time_base is None:
            return
        t0 = float(item.pts * item.time_base)
        t1 = t0 + float((item.duration or 0) * item.time_base)
        self.start = t0 if self.start is None else min(self.start, t0)
        self.end = t1 if self.end is None else max(self.end, t1)

    @property
    def seconds(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return self.end - self.start


def stream_decoded(stream: StreamCheck, video: FileVideo) -> Decoded:
    """The file's video as decoded during the encode; raises if it is not that stream."""
    if stream.error is not None:
        raise VerificationError(f"output video does not decode: {stream.error}")
    if (stream.nals, stream.digest) != (video.nals, video.digest):
        raise VerificationError(
            f"output file's video is not what was encoded and decoded "
            f"({video.nals} NAL units in the file, {stream.nals} in the encoder's stream)"
        )
    if stream.frames != video.packets:
        counted = "frames decoded from" if stream.decoded else "pictures in"
        raise VerificationError(
            f"{stream.frames} {counted} the encoder's stream, the file holds {video.packets}"
        )
    return Decoded(stream.frames, video.span_s, video.declared_frames, video.declared_span_s)


def decode_ends(
    path: Path, index: int, *, first: int = END_FRAMES, last: int = END_FRAMES
) -> EndsDecoded:
    """Decode the first ``first`` and, when there is more than one GOP, the first ``last``
    packets of the last GOP of one video stream; raises ``av.FFmpegError``.

    Packets are fed in decode order, so each picture's references are among those fed.
    """
    head: list[Any] = []
    tail: list[Any] = []
    keyframes = 0
    with open_input(str(path)) as container:
        stream: Any = container.streams[index]
        extradata = stream.codec_context.extradata
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            if packet.is_keyframe:
                keyframes += 1
                tail = []
            if len(head) < first:
                head.append(packet)
            if keyframes and len(tail) < last:
                tail.append(packet)
        ends = [head] if keyframes <= 1 or not tail else [head, tail]
        size = nal_length_size(extradata)
        expected = sum(len(p) - _leading(p, size) for p in ends)
        frames = sum(_decode_packets(extradata, p) for p in ends)
    return EndsDecoded(expected, frames, keyframes)


def ends_problems(ends: EndsDecoded) -> list[str]:
    """Frames of the first and last GOP that did not decode."""
    if ends.frames < ends.expected:
        return [f"only {ends.frames} of {ends.expected} frames of the first and last GOP decode"]
    return []


def _decode_packets(extradata: bytes | None, packets: list[Any]) -> int:
    codec: Any = av.CodecContext.create("hevc", "r")
    codec.extradata = extradata
    codec.thread_type = "AUTO"
    codec.options = DECODER_OPTIONS
    frames = sum(len(codec.decode(p)) for p in packets)
    return frames + len(codec.decode(None))


def _leading(packets: list[Any], size: int | None) -> int:
    """Packets a decoder starting at this GOP's keyframe drops (RASL pictures)."""
    count = 0
    for packet in packets:
        data = bytes(packet)
        nals = length_prefixed_nals(data, size) if size else _annexb_nals(data)
        kinds = [(n[0] >> 1) & 0x3F for n in nals if n]
        count += any(k in RASL for k in kinds if k < FIRST_NON_VCL)
    return count


def _annexb_nals(data: bytes) -> list[bytes]:
    nals: list[bytes] = []
    splitter = AnnexBSplitter(nals.append)
    splitter.feed(data)
    splitter.close()
    return nals


def file_video(path: Path, index: int) -> FileVideo:
    """Digest the NAL units of one video stream's packets, demuxing only."""
    digest = NalDigest()
    packets, span = 0, _Span()
    with open_input(str(path)) as container:
        stream: Any = container.streams[index]
        extradata = stream.codec_context.extradata or b""
        size = nal_length_size(extradata)
        splitter = AnnexBSplitter(digest.add)
        if size is None:
            splitter.feed(extradata)
        else:
            for nal in hvcc_nals(extradata):
                digest.add(nal)
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            packets += 1
            if size is None:
                splitter.feed(bytes(packet))
            else:
                for nal in length_prefixed_nals(bytes(packet), size):
                    digest.add(nal)
            span.add(packet)
        splitter.close()
        return FileVideo(
            packets,
            digest.count,
            digest.hexdigest(),
            span.seconds,
            int(stream.frames or 0),
            _declared_span(stream),
        )


def _declared_span(stream: Any) -> float | None:
    # Matroska has no per-stream duration field; ffmpeg's muxer writes a DURATION tag
    # instead, which is where the stream ends: a video that starts after the audio (2 s
    # into a recording) spans that much less. Its demuxer then gives every stream the
    # file's duration as its own, so the tag comes first: a podcast's one picture beside
    # an hour of sound declares the 0.04 s the picture lasts, not the hour.
    end = _tagged_end(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
    if end is not None:
        start = stream.start_time
        return end - float(start * stream.time_base) if start and stream.time_base else end
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _tagged_end(tag: str | None) -> float | None:
    """A DURATION tag's ``HH:MM:SS.fraction`` in seconds; None when it is not one."""
    if not tag or tag.count(":") != 2:
        return None
    hours, minutes, seconds = tag.split(":")
    try:
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _shortfall(info: MediaInfo, source: MediaInfo) -> float | None:
    if info.duration_s is None or source.duration_s is None:
        return None
    gap = source.duration_s - info.duration_s
    return gap if abs(gap) > DURATION_TOLERANCE_S else None


def as_played(source: MediaInfo, source_path: Path | None) -> MediaInfo:
    """``source`` with the length it plays for when its timestamps jump.

    A header's length is the span of the file's timestamps, which says nothing once they
    jump: two recordings concatenated into one MPEG-TS file restart their clock halfway,
    and ffmpeg reads on across the jump (``spliced_video_span``).
    """
    video = source.main_video
    if source_path is None or video is None:
        return source
    span = spliced_video_span(source_path, video.index)
    return source if span is None else dataclasses.replace(source, duration_s=span)


def raise_if_source_truncated(source: MediaInfo, source_path: Path | None, output_s: float) -> None:
    """Raise ``PermanentError`` when an output lasting ``output_s`` is short because the
    source itself is: its video packets end before the length its header declares."""
    # ffmpeg treats a source cut short (interrupted upload, copy from a dying disk) as a
    # normal end of input: it logs an error but exits 0, so a clean exit does not prove
    # the source was whole. The source's header still declares the full length, so the
    # output comes out short. If the source's own video packets end early too, every
    # retry would make the same short output: that is the source's fault, permanently.
    # If the source reads to its declared end, the short output is ours: retryable.
    # ``source`` is as its header says (not ``as_played``): an output of a source whose
    # timestamps jump, shorter than what the header declares, is the case this reads.
    video = source.main_video
    if source_path is None or video is None or source.duration_s is None:
        return
    if output_s >= source.duration_s - DURATION_TOLERANCE_S:
        return
    declared = source.duration_s - DURATION_TOLERANCE_S
    readable = readable_video_end(source_path, video.index)
    # Cut short, every stream ends early; a subtitle that runs on past the picture reads
    # to the declared end, and the file is whole.
    if readable is not None and readable < declared and not _reaches(source_path, declared):
        raise PermanentError(
            f"source appears truncated: declares {source.duration_s:.2f} s "
            f"but its video ends at {readable:.2f} s"
        )


def raise_if_sound_mistimed(path: Path) -> None:
    """Raise ``PermanentError`` when a sound stream of ``path`` is timed over far more
    time than the sound it holds.

    Called for an output that is longer than its source's header says and plays as long
    as the source's packets: the times came from the source. ffmpeg reads an AVI whose
    G.726 sound is written a chunk per tick (ffmpeg's own AVI muxer writes it so) as if
    each byte were a tick: 8 s of sound timed over 8,126 s, 1,024 times too far apart.
    Every output copied those times and was done: 8 s of picture in a file that says it
    lasts 2 h 15 min, with the sound in bursts out of step. No retry changes that, so the
    job fails with the reason, and the original is kept as it is.

    Sound legitimately outlasting its picture (one picture beside a song) holds as much
    sound as its times span, and passes.
    """
    spans = _sound_spans(path)
    timed = [i for i, span in spans.items() if span > DURATION_TOLERANCE_S]
    if not timed:
        return
    held = sound_seconds(path)
    for index in timed:
        span, sound = spans[index], held.get(index, 0.0)
        if span - sound > DURATION_TOLERANCE_S and sound < span * SOUND_HELD_AT_LEAST:
            raise PermanentError(
                f"source's sound is timed over {span:.2f} s but holds {sound:.2f} s: "
                "its timestamps are wrong"
            )


def _sound_spans(path: Path) -> dict[int, float]:
    """Seconds from each audio stream's first packet to the end of its last (demuxed,
    nothing decoded); empty when the file does not read."""
    firsts: dict[int, float] = {}
    ends: dict[int, float] = {}
    try:
        with open_input(str(path)) as container:
            streams = list(container.streams.audio)
            for packet in container.demux(streams) if streams else ():
                if packet.pts is None or packet.time_base is None or packet.size == 0:
                    continue
                start = float(packet.pts * packet.time_base)
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                index = packet.stream.index
                firsts[index] = min(firsts.get(index, start), start)
                ends[index] = max(ends.get(index, end), end)
    except av.FFmpegError:
        return {}
    return {i: ends[i] - firsts[i] for i in firsts}


@dataclass(frozen=True)
class PacketEnds:
    """How far a file's packets read, in seconds from the file's start: its picture and
    sound (video that is not cover art, and audio), and its streams of any kind."""

    picture_and_sound: float | None
    any_stream: float | None


def packet_ends(path: Path) -> PacketEnds:
    """Where a file's packets end, read to the end or to the first damaged one (demuxed,
    nothing decoded)."""
    playing: set[int] = set()
    ends: list[float | None] = [None, None]
    try:
        with open_input(str(path)) as container:
            origin = (container.start_time or 0) / av.time_base
            for stream in container.streams:
                cover = stream.disposition & av.stream.Disposition.attached_pic
                if stream.type == "audio" or (stream.type == "video" and not cover):
                    playing.add(stream.index)
            for packet in container.demux():
                if packet.pts is None or packet.size == 0 or packet.time_base is None:
                    continue
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base) - origin
                for n, counts in enumerate((packet.stream.index in playing, True)):
                    current = ends[n]
                    if counts and (current is None or end > current):
                        ends[n] = end
    except av.FFmpegError:
        pass  # damaged data ends the readable part; what was read so far is the answer
    return PacketEnds(*ends)


def _plays_as_long(output: Path, source: Path | None) -> bool:
    """Whether ``output``'s picture and sound last as long as ``source``'s, within the
    tolerance (their lengths as files differ by something else: subtitles)."""
    if source is None:
        return False
    mine, theirs = packet_ends(output).picture_and_sound, packet_ends(source).picture_and_sound
    return mine is not None and theirs is not None and abs(mine - theirs) <= DURATION_TOLERANCE_S


def _reaches(path: Path, seconds: float) -> bool:
    """Whether some stream of the file reads as far as ``seconds``."""
    end = packet_ends(path).any_stream
    return end is not None and end >= seconds


def readable_video_end(path: Path, index: int) -> float | None:
    """How far (seconds from the stream start) a video stream's packets can be read.

    Demuxing without decoding is enough to find where the data stops, and is fast.
    """
    end, start = None, None
    try:
        with open_input(str(path)) as container:
            stream = container.streams[index]
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                t0 = float(packet.pts * packet.time_base)
                start = t0 if start is None else min(start, t0)
                t1 = t0 + float((packet.duration or 0) * packet.time_base)
                end = t1 if end is None else max(end, t1)
    except av.FFmpegError:
        pass  # damaged data ends the readable part; what was read so far is the answer
    if start is None or end is None:
        return None
    return end - start
