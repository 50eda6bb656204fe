"""Proving an encoded output is what was planned: shape, length, and every frame decodes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from hevcq.errors import PermanentError, VerificationError
from hevcq.media.model import EncodePlan, MediaInfo
from hevcq.media.probe import probe
from hevcq.media.streamcheck import (
    AnnexBSplitter,
    NalDigest,
    StreamCheck,
    hvcc_nals,
    length_prefixed_nals,
    nal_length_size,
)

DURATION_TOLERANCE_S = 0.5


@dataclass(frozen=True)
class Decoded:
    """What decoding a video stream to the end found."""

    frames: int
    span_s: float  # first frame start to last frame end
    declared_frames: int  # from the container index; 0 when it has none (Matroska)
    declared_span_s: float | None  # the stream's own declared duration, if any


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
    """Probe the output and prove every frame decodes; raise ``VerificationError`` if not.

    ``stream`` is what decoding the encoder's video stream during the encode found; the
    file's packets are then checked to be that stream, instead of decoding them again.
    Without it, the file's video is decoded here. With ``source_path``, an output short
    because the source itself is short raises ``PermanentError("source appears
    truncated: ...")`` instead.
    """
    try:
        info = probe(path)
    except PermanentError as exc:
        raise VerificationError(f"output is unreadable: {exc}") from exc
    problems = shape_problems(info, plan, source)
    video = info.main_video
    if video is not None:
        try:
            if stream is None:
                decoded = decode_video(path, video.index)
            else:
                decoded = stream_decoded(stream, file_video(path, video.index))
        except av.FFmpegError as exc:
            raise VerificationError(f"output video does not decode: {exc.strerror}") from exc
        except ValueError as exc:
            raise VerificationError(f"output video packets are malformed: {exc}") from exc
        problems += decode_problems(decoded)
    short = _shortfall(info, source)
    if short is not None:
        _raise_if_source_truncated(source, source_path, info.duration_s or 0.0)
        problems.append(f"output lasts {info.duration_s:.2f} s, source {source.duration_s:.2f} s")
    if problems:
        raise VerificationError("output rejected: " + "; ".join(problems))
    return info


def shape_problems(info: MediaInfo, plan: EncodePlan, source: MediaInfo) -> list[str]:
    """What differs between the probed output and the plan (empty when nothing)."""
    video = info.main_video
    if video is None:
        return ["output has no video stream"]
    problems = []
    if video.codec != "hevc":
        problems.append(f"video codec is {video.codec}, not hevc")
    if (video.width, video.height) != (plan.width, plan.height):
        coded, planned = f"{video.width}x{video.height}", f"{plan.width}x{plan.height}"
        problems.append(f"coded size {coded}, planned {planned}")
    if video.rotation != plan.rotation:
        problems.append(f"rotation {video.rotation}, planned {plan.rotation}")
    depth = 10 if plan.ten_bit else 8
    if video.bit_depth != depth:
        problems.append(f"{video.bit_depth}-bit video ({video.pix_fmt}), planned {depth}-bit")
    if len(info.audio) != len(source.audio):
        problems.append(f"{len(info.audio)} audio streams, source has {len(source.audio)}")
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


def decode_video(path: Path, index: int) -> Decoded:
    """Decode every frame of one video stream (threaded); raises ``av.FFmpegError``."""
    with av.open(str(path), metadata_errors="replace") as container:
        stream: Any = container.streams[index]
        stream.thread_type = "AUTO"
        stream.codec_context.options = {"skip_loop_filter": "all"}  # see StreamDecoder
        frames, span = 0, _Span()
        for frame in container.decode(stream):
            frames += 1
            span.add(frame)
        return Decoded(frames, span.seconds, int(stream.frames or 0), _declared_span(stream))


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
        raise VerificationError(
            f"{stream.frames} frames decoded from the encoder's stream, "
            f"the file holds {video.packets}"
        )
    return Decoded(stream.frames, video.span_s, video.declared_frames, video.declared_span_s)


def file_video(path: Path, index: int) -> FileVideo:
    """Digest the NAL units of one video stream's packets, demuxing only."""
    digest = NalDigest()
    packets, span = 0, _Span()
    with av.open(str(path), metadata_errors="replace") as container:
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
        return FileVideo(packets, digest.count, digest.hexdigest(), span.seconds,
                         int(stream.frames or 0), _declared_span(stream))  # fmt: skip


def _declared_span(stream: Any) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    # Matroska has no per-stream duration field; ffmpeg writes a DURATION tag instead.
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
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


def _raise_if_source_truncated(
    source: MediaInfo, source_path: Path | None, output_s: float
) -> None:
    # ffmpeg treats a source cut short (interrupted upload, copy from a dying disk) as a
    # normal end of input: it logs an error but exits 0, so a clean exit does not prove
    # the source was whole. The source's header still declares the full length, so the
    # output comes out short. If the source's own video packets end early too, every
    # retry would make the same short output: that is the source's fault, permanently.
    # If the source reads to its declared end, the short output is ours: retryable.
    video = source.main_video
    if source_path is None or video is None or source.duration_s is None:
        return
    if output_s >= source.duration_s - DURATION_TOLERANCE_S:
        return
    readable = readable_video_end(source_path, video.index)
    if readable is not None and readable < source.duration_s - DURATION_TOLERANCE_S:
        raise PermanentError(
            f"source appears truncated: declares {source.duration_s:.2f} s "
            f"but its video ends at {readable:.2f} s"
        )


def readable_video_end(path: Path, index: int) -> float | None:
    """How far (seconds from the stream start) a video stream's packets can be read.

    Demuxing without decoding is enough to find where the data stops, and is fast.
    """
    end, start = None, None
    try:
        with av.open(str(path), metadata_errors="replace") as container:
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
