"""Sources whose timestamps jump: recordings concatenated or spliced into one MPEG-TS or
MPEG-PS file, or a broadcast whose clock was reset.

Such a file's header gives the span of its timestamps as its length, which says nothing
once the clock has jumped: two 4 s recordings concatenated declare 4 s. ffmpeg reads on
across a jump, so an encode of the file is whole and as long as the file plays; but a
length checked against the header, a sample cut at a time, and a score that lines the two
sides up by time are all wrong (a quality pool scored such an output 18, and its samples
predicted 40 % of its size). So a worker first remuxes such a source, stream copy, to
MPEG-TS on one continuous clock, the way ffmpeg reads it (``straighten``), and then works
on that, as on any other source.
"""

from __future__ import annotations

import threading
from pathlib import Path

import av
import structlog

from hevcq.errors import PermanentError
from hevcq.media.demuxers import open_input
from hevcq.media.ffmpeg import run_ffmpeg
from hevcq.media.probe import main_video_stream

log = structlog.get_logger(__name__)

# A format whose timestamps may jump (AVFMT_TS_DISCONT: MPEG-TS, MPEG-PS), and how far one
# must jump for ffmpeg to read on across it (fftools' ``ts_discontinuity_detect``, with
# its default ``dts_delta_threshold``).
TS_DISCONT = 0x0200
DISCONT_JUMP_S = 10.0
DISCONT_BACK_S = 0.1


def spliced_video_span(path: Path, index: int) -> float | None:
    """How long a video stream plays when its timestamps jump, read as ffmpeg reads it;
    None for a format whose timestamps never jump, or a stream whose do not.

    In a format that allows jumps (MPEG-TS and PS: recordings concatenated or spliced, a
    broadcast's clock reset), ffmpeg takes a packet more than ``DISCONT_JUMP_S`` away from
    the time it expects, or ``DISCONT_BACK_S`` behind the one before, as a new stretch that
    continues where the stream was (fftools' ``ts_discontinuity_detect``). Demuxing only.
    """
    starts: list[float] = []
    ends: list[float] = []
    jumped = False
    try:
        with open_input(str(path)) as container:
            if not container.format.flags & TS_DISCONT:
                return None
            stream = container.streams[index]
            offset, last, expected = 0.0, None, None
            for packet in container.demux(stream):
                stamp = packet.dts if packet.dts is not None else packet.pts
                if stamp is None or packet.size == 0:
                    continue
                tb = packet.time_base
                at = float(stamp * tb) + offset
                if (
                    expected is not None
                    and last is not None
                    and (abs(at - expected) > DISCONT_JUMP_S or at + DISCONT_BACK_S < last)
                ):
                    offset -= at - expected
                    at, jumped = expected, True
                duration = float((packet.duration or 0) * tb)
                last, expected = at, at + duration
                shown = at if packet.pts is None else float(packet.pts * tb) + offset
                starts.append(shown)
                ends.append(shown + duration)
    except av.FFmpegError:
        pass  # damaged data ends the readable part; what was read so far is the answer
    if not jumped or not starts:
        return None
    return max(ends) - min(starts)


# Bytes of a file after its picture's last packet that may still be nothing new (the rest
# of the last packets, transport packet headers, padding, a sound running on): beyond
# both, the picture goes on in streams an encode does not read.
MOVED_MIN_BYTES = 64 * 1024
MOVED_MIN_SHARE = 0.01


def moved_picture(path: Path) -> int:
    """Bytes at the end of an MPEG-TS or PS file in which its picture goes on in streams
    no encode reads; 0 for a file of another format, or one whose picture stays put.

    A broadcaster may change a programme map at a programme boundary, moving the picture
    and sound to other PIDs. The file then either lists new streams partway, which ffmpeg
    does not read (it maps the streams it reads when it opens a file, and PyAV reads
    only those too), or lists a second picture stream that starts where the first ends,
    and an encode reads the first. Either way an output lacks the picture from where it
    moved: measured as the bytes after the last packet of every listed stream, or before
    the main picture's first packet or after its last that another picture stream fills.
    """
    begins: dict[int, int] = {}
    ends: dict[int, int] = {}
    try:
        with open_input(str(path)) as container:
            if not container.format.flags & TS_DISCONT:
                return 0
            found = main_video_stream(container)
            main = None if found is None else int(found.index)  # read while it is open
            pictures = [
                s.index
                for s in container.streams.video
                if not s.disposition & av.stream.Disposition.attached_pic
            ]
            for packet in container.demux():
                if packet.pos is not None and packet.pos >= 0 and packet.size:
                    index, pos = packet.stream.index, int(packet.pos)
                    begins.setdefault(index, pos)
                    ends[index] = max(ends.get(index, 0), pos + int(packet.size))
    except av.FFmpegError:
        return 0  # damaged data ends the readable part; the probe says what is wrong
    if not ends or main is None:
        return 0  # no packet says where it lies: nothing to measure by
    unlisted = path.stat().st_size - max(ends.values())
    others = [i for i in pictures if i != main and i in ends]
    if main not in ends or not others:
        return max(0, unlisted)
    before = begins[main] - min(begins[i] for i in others)  # the main one starts late
    after = max(ends[i] for i in others) - ends[main]  # the main one stops early
    return max(0, unlisted, before, after)


def refuse_moved_picture(path: Path) -> None:
    """Raise ``PermanentError`` when an MPEG-TS or PS file's picture goes on in streams no
    encode reads (``moved_picture``) for more than padding would."""
    moved = moved_picture(path)
    if moved > max(MOVED_MIN_BYTES, MOVED_MIN_SHARE * path.stat().st_size):
        raise PermanentError(
            f"its streams change partway: {moved / 2**20:.1f} MiB of it hold its picture in"
            " other streams than its first (a broadcast's programme map changing), which no"
            " encode reads, so an output would lack that part"
        )


def straighten(ffmpeg: str, src: Path, *, stop: threading.Event, stall_timeout_s: float) -> bool:
    """Remux ``src`` in place onto one continuous clock when its video's timestamps jump
    (``spliced_video_span``); whether it did.

    Stream copy of every stream to MPEG-TS, the container such a source comes in, so the
    streams and their order stay as they were. A source the remux cannot take (a stream
    MPEG-TS cannot carry) is kept as it is: its encode is whole all the same, and a check
    of its length says what is wrong. A stop, a stall or a full disk are raised as usual.
    """
    try:
        with open_input(str(src)) as container:
            video = [s.index for s in container.streams.video]
    except av.FFmpegError:
        return False  # the probe that follows says what is wrong with it
    if not video or spliced_video_span(src, video[0]) is None:
        return False
    straight = src.with_name(src.name + ".straight")
    args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    args += ["-i", f"file:{src}", "-map", "0", "-c", "copy", "-f", "mpegts"]
    args += ["-progress", "pipe:1", "-nostats", f"file:{straight}"]
    try:
        run_ffmpeg(args, on_progress=None, stop=stop, stall_timeout_s=stall_timeout_s)
    except PermanentError as exc:
        straight.unlink(missing_ok=True)
        log.warning("source_not_straightened", reason=str(exc))
        return False
    except BaseException:
        straight.unlink(missing_ok=True)
        raise
    straight.replace(src)
    log.info("source_straightened", why="its timestamps jump")
    return True
