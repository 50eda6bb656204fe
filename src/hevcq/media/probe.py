"""Probing media files in-process with PyAV, from a file or through ranged reads: no ffprobe,
no subprocess per file (the one exception, an HEVC stream of more than one layer, is
``layered_alpha``'s)."""

from __future__ import annotations

import contextlib
import ctypes
import math
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from fractions import Fraction
from io import RawIOBase
from pathlib import Path
from typing import Any

import av
from av.sidedata.sidedata import Type as SideDataType
from av.stream import Disposition

from hevcq.errors import HevcqError, PermanentError
from hevcq.media.demuxers import open_input, read_alone, refusal
from hevcq.media.ffmpeg import ALPHA_DECODERS, find_ffmpeg
from hevcq.media.model import (
    BARE_STREAM_FORMATS,
    AudioStream,
    MediaInfo,
    SubtitleStream,
    VideoStream,
)
from hevcq.media.renditions import CAPTIONS, COMMENTARY, DESCRIPTION, MAIN

# Reading the rotation needs one decoded frame; a stream that yields none within this
# many packets is treated as unreadable instead of demuxing a hostile file to the end.
MAX_PACKETS_FOR_FIRST_FRAME = 500
# libavcodec's field orders that mean two interlaced fields (top or bottom first, coded
# and displayed in either order); 0 is unknown, 1 progressive.
INTERLACED_ORDERS = frozenset({2, 3, 4, 5})
# libavcodec's HDR transfer characteristics, by the names zscale knows them by.
HDR_TRANSFERS = {16: "smpte2084", 18: "arib-std-b67"}
# A sample aspect ratio beyond 1:4 or 4:1 is taken for a damaged header, not a picture.
MIN_SAR = Fraction(1, 4)
AV_TIME_BASE = 1_000_000  # container durations are in microseconds (libavutil/avutil.h)

# Leading bytes of the containers people actually store video in. When libav refuses a
# file, these tell a damaged video ("unreadable or truncated") from something that was
# never one ("not a media file"): an MP4 cut before its moov box fails exactly like a text file.
_ISO_BOX_TYPES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
_SIGNATURES = (
    b"\x1a\x45\xdf\xa3",
    b"RIFF",
    b"\x00\x00\x01\xba",
    b"FLV",
    b"OggS",
    b"\x30\x26\xb2\x75",
)
MPEG_TS_PACKET = 188
HEAD_BYTES = 4096  # read to say what a refused file is

# A still picture is not a video, whatever its name: a photo uploaded as "clip.mp4" (or a
# HEIC from a phone's camera roll) was made into a one-frame ladder and a 40 ms WebM.
# libavformat reads pictures with demuxers of their own ("jpeg_pipe", "png_pipe", ...,
# "gif", "apng") and HEIF/AVIF images with its MP4 demuxer; a file one of them reads
# whose picture stream holds a single picture is refused as one. An animated GIF, APNG
# or a video of one frame in a video container is still a video.
_PICTURE_DEMUXERS = frozenset({"gif", "apng", "ico", "jpegxl_anim"})
# Major brands of ISO-BMFF still images (ISO/IEC 23008-12 and the AVIF specification);
# "avis" and "msf1" are image sequences and stay videos.
_PICTURE_BRANDS = {"avif": "AVIF", "heic": "HEIC", "heix": "HEIC", "mif1": "HEIF"}
# What the one-line reason calls a picture, by its codec.
_PICTURE_NAMES = {
    "mjpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "webp": "WebP",
    "tiff": "TIFF",
    "bmp": "BMP",
    "apng": "PNG",
    "jpegxl": "JPEG XL",
}
# How picture files begin, to say what a file libavformat will not open is: a file named
# "*.jpg" is claimed by the image-sequence demuxer, which sources may not use
# (hevcq.media.demuxers.INDIRECT).
_PICTURE_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\xff\x0a", "JPEG XL"),
)
STILL_PICTURE = "not a video: a still picture ({})"
# VP8 and VP9 keep a transparent video's alpha beside each picture (in WebM, a block's
# BlockAdditional; the track says "alpha_mode=1"), and only libvpx's decoders read it
# (``ffmpeg.ALPHA_DECODERS``): libavcodec's own give the colours alone, so what the alpha
# hid (whatever colour the maker left there) showed in every output. Decoded by those, the
# source has its alpha and is laid over black like any other transparent source.
# HEVC keeps it in a second layer ("HEVC with Alpha", as Apple's tools export transparent
# video). The pinned ffmpeg decodes that layer and gives the frames their alpha; the libav
# PyAV carries does not, and gave the probe an opaque picture, so the encodes dropped the
# alpha and showed what it hid. A stream whose parameter set declares more than one layer
# (alpha, or the second eye of a spatial video) is asked of the ffmpeg binary instead:
# one frame, about 25 ms, and only for such streams.
HEVC_VPS = 32  # the video parameter set's NAL unit type
_SHOWN_FORMAT = re.compile(r"\bfmt:(\w+)")

ProbeFn = Callable[[Path], MediaInfo]  # ``probe``, or a test's stand-in


def picture_kind(head: bytes) -> str | None:
    """What picture format a file beginning with ``head`` is ("JPEG", "HEIC"); None when
    it does not begin like one."""
    for signature, name in _PICTURE_SIGNATURES:
        if head.startswith(signature):
            return name
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        return _PICTURE_BRANDS.get(head[8:12].decode("latin-1"))
    return None


def looks_like_media(head: bytes) -> bool:
    """Whether the first bytes of a file carry a known video container signature."""
    if head[4:8] in _ISO_BOX_TYPES or head.startswith(_SIGNATURES):
        return True
    return len(head) > MPEG_TS_PACKET and head[0] == head[MPEG_TS_PACKET] == 0x47


def _pixel_format(name: str | None) -> Any | None:
    """libav's description of a pixel format by its name; None when unknown."""
    try:
        return av.VideoFormat(name) if name else None
    except ValueError:
        return None


def bit_depth(pix_fmt: str | None) -> int:
    """Bits per luma sample of a pixel format name (8 when unknown)."""
    fmt = _pixel_format(pix_fmt)
    return int(fmt.components[0].bits) if fmt is not None and fmt.components else 8


def frame_colours(frame: Any) -> tuple[int, int, int]:
    """The colours a decoded frame states: its matrix, primaries and transfer as
    AVColorSpace, AVColorPrimaries and AVColorTransferCharacteristic numbers."""
    return int(frame.colorspace), int(frame.color_primaries), int(frame.color_trc)


def has_alpha(pix_fmt: str | None) -> bool:
    """Whether a pixel format carries an alpha channel (False when unknown)."""
    fmt = _pixel_format(pix_fmt)
    return fmt is not None and any(c.is_alpha for c in fmt.components)


def is_rgb(pix_fmt: str | None) -> bool:
    """Whether a pixel format stores RGB, or a palette of RGB colours, rather than YUV
    (False when unknown)."""
    fmt = _pixel_format(pix_fmt)
    return fmt is not None and bool(fmt.is_rgb or fmt.has_palette)


def normalise_rotation(degrees: float | None) -> int:
    """Any display-matrix angle (negative, 360, 89.99) as 0, 90, 180 or 270."""
    if degrees is None:
        return 0
    return (round(degrees / 90) * 90) % 360


def probe(path: Path) -> MediaInfo:
    """Describe a media file; ``PermanentError`` when it cannot be a usable source."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block its reader; a device never ends
        raise PermanentError("not a regular file")
    size = st.st_size
    if size == 0:
        raise PermanentError("empty file (0 bytes)")
    try:
        # Broken metadata must not make a playable file unreadable.
        container = open_input(str(path))
    except av.FFmpegError as exc:
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
        indirect = _indirection(exc, head)
        if indirect is not None:
            raise PermanentError(indirect) from exc
        picture = picture_kind(head)
        if picture is not None:
            raise PermanentError(STILL_PICTURE.format(picture)) from exc
        if looks_like_media(head):
            raise PermanentError(f"unreadable or truncated: {exc.strerror}") from exc
        raise PermanentError(f"not a media file: {exc.strerror}") from exc
    return _describe_open(container, size, path)


def probe_stream(stream: RawIOBase, size: int) -> MediaInfo:
    """``probe`` of a seekable file object (an object read through ranged requests)."""
    try:
        container = open_input(stream)
    except av.FFmpegError as exc:
        head = b""
        with contextlib.suppress(OSError, ValueError):  # a stream that cannot go back
            stream.seek(0)
            head = stream.read(HEAD_BYTES) or b""
        indirect = _indirection(exc, head)
        if indirect is not None:
            raise PermanentError(indirect) from exc
        picture = picture_kind(head)
        if picture is not None:
            raise PermanentError(STILL_PICTURE.format(picture)) from exc
        raise PermanentError(f"unreadable or not a media file: {exc.strerror}") from exc
    return _describe_open(container, size)


def _indirection(exc: av.FFmpegError, head: bytes) -> str | None:
    """Why a file libav would not read is refused, when it is a manifest, playlist or
    script (``demuxers.refusal``): refused by the whitelist (an argument error), or claimed
    by no demuxer at all (PyAV's DASH demuxer never claims a manifest). Not a failure on
    the way, such as running out of file descriptors, which keeps its own message."""
    if isinstance(exc, av.error.ArgumentError | av.error.InvalidDataError):
        return refusal(head)
    return None


def _describe_open(container: Any, size: int, path: Path | None = None) -> MediaInfo:
    """Describe an opened container and close it; a stream that fails to read is truncated."""
    with container:
        try:
            return _describe(container, size, path)
        except av.FFmpegError as exc:
            raise PermanentError(f"unreadable or truncated: {exc.strerror}") from exc


# PyAV 18 gives out an audio codec context's channel layout as a shallow copy that frees
# the layout's channel map when it goes, a map the codec context frees too. So reading
# ``.channels`` (or ``.layout``) of a stream in a custom channel order (a QuickTime file
# listing its speakers as FL+FR+LFE+FC, say) aborted the process on a double free: the
# ingest's scan, or the worker and the next worker to take the job. Freed before or after
# the codec context, the copy frees the map twice, so each copy read here is never freed
# (one reference more than anyone holds, kept even through the interpreter's exit), as
# PyAV before 18 never freed them at all: about 50 bytes per audio stream probed.
def _layout(cc: Any) -> tuple[int, str]:
    """An audio codec context's channel count and layout name ("5.1(side)", "downmix",
    "4 channels"), read without a double free (above)."""
    layout = cc.layout
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(layout))
    return int(layout.nb_channels), str(layout.name or "")


# The data codec a GoPro's telemetry track (``gpmd``: GPS, accelerometer, gyroscope) is
# read as, the only data codec an MP4 muxer writes from a source.
TELEMETRY_CODEC = "bin_data"


def _track_labels(stream: Any) -> dict[str, Any]:
    """What a sound track's container says of it (``AudioStream.language`` and on)."""
    meta = stream.metadata
    flags = stream.disposition
    role = MAIN
    if flags & (Disposition.visual_impaired | Disposition.descriptions):
        role = DESCRIPTION
    elif flags & Disposition.comment:
        role = COMMENTARY
    return {
        "language": meta.get("language", ""),
        "title": meta.get("title") or meta.get("name") or "",  # "name": an MP4 track's
        "role": role,
        "default": bool(flags & Disposition.default),
    }


def _subtitle(stream: Any) -> SubtitleStream:
    cc = stream.codec_context
    labels = _track_labels(stream)
    if stream.disposition & (Disposition.hearing_impaired | Disposition.captions):
        labels["role"] = CAPTIONS
    forced = bool(stream.disposition & Disposition.forced)
    return SubtitleStream(stream.index, cc.codec.canonical_name, _tag(cc), **labels, forced=forced)


def _describe(container: Any, size: int, path: Path | None) -> MediaInfo:
    video, audio, subtitles, attachments = [], [], [], 0
    for stream in container.streams:
        if stream.type == "attachment":
            attachments += 1
        elif stream.codec_context is None:
            continue  # data streams and codecs this libav cannot decode
        elif stream.type == "video":
            video.append(_video(container, stream, path))
        elif stream.type == "audio":
            cc = stream.codec_context
            channels, layout = _layout(cc)
            audio.append(
                AudioStream(
                    stream.index,
                    cc.codec.canonical_name,
                    channels,
                    _tag(cc),
                    layout,
                    int(cc.sample_rate or 0),
                    start_s=_start_after(container, stream),
                    bit_rate_kbps=math.ceil((cc.bit_rate or 0) / 1000),
                    **_track_labels(stream),
                )
            )
        elif stream.type == "subtitle":
            subtitles.append(_subtitle(stream))
    main = next((v for v in video if not v.attached_pic), None)
    if main is not None:
        picture = _still_picture(container, main)
        if picture is not None:
            raise PermanentError(STILL_PICTURE.format(picture))
    duration = _duration(container)
    bare = container.format.name in BARE_STREAM_FORMATS and duration is None
    measured = False
    if duration is None and not bare and path is not None:
        duration = packet_span_s(path)  # a browser's recording states none
        measured = duration is not None
    guess = length_guess(path) if bare and main and path else None
    return MediaInfo(
        format_name=container.format.name,
        duration_s=duration,
        duration_guess_s=guess,
        length_measured=measured,
        size_bytes=size,
        video=tuple(video),
        audio=tuple(audio),
        subtitles=tuple(subtitles),
        attachments=attachments,
        chapters=len(container.chapters()),
        telemetry=tuple(
            s.index for s in container.streams if s.type == "data" and s.name == TELEMETRY_CODEC
        ),
    )


# How much of such a stream is read for its length: all of a short one, the start of a
# long one (a rescan of unchanged files reads nothing: the catalog keeps the guess).
GUESS_BYTES = 8 * 1024 * 1024
# And at most this many frames: a hostile stream of tiny frames is read no further.
GUESS_FRAMES = 30_000
GUESSED_FPS = 25.0  # what ffmpeg takes a stream stating no frame rate for


def length_guess(path: Path) -> float | None:
    """A bare stream's length in seconds: its frames over the frame rate ffmpeg encodes it
    at (the one its stream states, or ``GUESSED_FPS``), exact when the whole stream fits
    in ``GUESS_BYTES``; beyond that the frames of its first ``GUESS_BYTES`` (or
    ``GUESS_FRAMES``) carried over the whole file by their bytes (a stream whose rate of
    bytes changes is guessed by its start). None when no frame reads."""
    frames, read, ended = 0, 0, True
    try:
        with open_input(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.guessed_rate or GUESSED_FPS)  # as ``_video`` reads it
            for packet in container.demux(stream):
                if packet.size:  # the demuxer's empty packet at the end is no frame
                    frames, read = frames + 1, read + packet.size
                if read >= GUESS_BYTES or frames >= GUESS_FRAMES:
                    ended = False
                    break
        size = path.stat().st_size
    except (av.FFmpegError, OSError, IndexError):
        return None
    if not frames:
        return None
    seconds = frames / fps
    return round(seconds if ended else seconds * size / read, 3)


# A file that states no length is measured by reading its packets: at most this many
# (about 20 s of reading; a 2-hour 60 fps recording with sound has under 800,000).
SPAN_PACKETS = 2_000_000


def packet_span_s(path: Path) -> float | None:
    """How long a file that states no length lasts: from its earliest packet's start to
    its latest one's end, read packet by packet (not decoded); what reads of a file
    damaged partway. None when no timed packet reads, or past ``SPAN_PACKETS``.

    A browser's recording (MediaRecorder's WebM) is written as it is recorded, and states
    neither its length nor an index. Its length unknown, its poster was its first frame
    (black, as a camera's first frames are), and nothing checked that an output of it
    was as long as it."""
    start, end, count = math.inf, -math.inf, 0
    try:
        with open_input(str(path)) as container:
            for packet in container.demux():
                count += 1
                if count > SPAN_PACKETS:
                    return None
                tb = packet.time_base
                if packet.pts is None or not tb:
                    continue
                at = float(packet.pts * tb)
                start = min(start, at)
                end = max(end, at + float((packet.duration or 0) * tb))
    except av.FFmpegError:
        pass  # damaged further on: what read before counts
    except (OSError, IndexError):
        return None
    return round(end - start, 6) if end > start else None


def _still_picture(container: Any, main: VideoStream) -> str | None:
    """What still picture an opened file is (``_PICTURE_DEMUXERS``): its kind ("JPEG"),
    or None when it is not a picture file or its picture stream holds more than one."""
    demuxer = str(container.format.name)
    brand = str(container.metadata.get("major_brand", "")).strip()
    if brand in _PICTURE_BRANDS:
        kind = _PICTURE_BRANDS[brand]
    elif demuxer.endswith("_pipe") or demuxer in _PICTURE_DEMUXERS:
        kind = _PICTURE_NAMES.get(main.codec, main.codec)
    else:
        return None
    stream = container.streams[main.index]
    with contextlib.suppress(av.FFmpegError):
        container.seek(0)  # _first_frame rewound already; a picture file is small
    pictures = 0
    try:
        for packet in container.demux(stream):
            pictures += 1 if packet.size else 0
            if pictures > 1:
                return None
    except av.FFmpegError:
        return None  # what is past the first picture is damaged: not a single picture
    return kind


def main_video_stream(container: Any) -> Any | None:
    """An opened file's main video stream: its first that is not cover art (which may
    come first: an MP4 whose metadata precedes its tracks), as ``MediaInfo.main_video``
    picks it; None when it has none."""
    return next(
        (
            s
            for s in container.streams.video
            if not s.disposition & av.stream.Disposition.attached_pic
        ),
        None,
    )


def _tag(codec_context: Any) -> str:
    """The stream's codec tag as text: a fourcc ("mp4a"), or "0x.." for a tag that is
    not one.

    MPEG-TS gives its stream type as the tag, and Blu-ray and AVCHD (a camcorder's
    ``.MTS``) use types from 0x80 up: LPCM 0x80, AC-3 0x81, PGS subtitles 0x90. PyAV
    reads a tag as ASCII and raises on those, which failed the whole file's probe. Such
    a tag is kept as its number, never empty: a stream with an unknown tag is never
    taken as tagless (``decide.tee_safe``).
    """
    try:
        return str(codec_context.codec_tag or "").strip("\x00")
    except UnicodeDecodeError as error:
        raw = error.object if isinstance(error.object, bytes) else b""
        return "0x" + raw[::-1].hex() if raw.strip(b"\x00") else ""


def _video(container: Any, stream: Any, path: Path | None) -> VideoStream:
    cc = stream.codec_context
    cover = bool(stream.disposition & av.stream.Disposition.attached_pic)
    pix_fmt, rotation, interlaced, spherical = cc.pix_fmt, 0, False, False
    colours: tuple[int, int, int] | None = None
    if not cover:
        frame = _first_frame(container, stream)
        rotation = normalise_rotation(frame.rotation)
        spherical = is_spherical(frame)
        pix_fmt = pix_fmt or frame.format.name
        interlaced = bool(frame.interlaced_frame) or int(cc.field_order or 0) in INTERLACED_ORDERS
        colours = frame_colours(frame)
    side_alpha = "" if cover else alpha_decoder(stream)
    rate: Fraction | None = stream.average_rate
    if container.format.name in BARE_STREAM_FORMATS:
        # A bare stream's demuxer gives its default of 25 as the average whatever the
        # stream states; ffmpeg reads and encodes it at the stated rate (guessed_rate).
        rate = stream.guessed_rate or rate
    sar = sample_aspect(stream.sample_aspect_ratio or cc.sample_aspect_ratio)
    return VideoStream(
        index=stream.index,
        codec=cc.codec.canonical_name,
        width=cc.width,
        height=cc.height,
        pix_fmt=pix_fmt or "",
        bit_depth=bit_depth(pix_fmt),
        rotation=rotation,
        fps=float(rate) if rate else None,
        attached_pic=cover,
        sar_num=sar.numerator,
        sar_den=sar.denominator,
        interlaced=interlaced,
        hdr_transfer=hdr_transfer(cc),
        rgb=is_rgb(pix_fmt),
        alpha=has_alpha(pix_fmt) or bool(side_alpha) or (not cover and layered_alpha(path, stream)),
        alpha_decoder=side_alpha,
        colours=colours,
        spherical=spherical,
        filename=_meta(stream, "filename") if cover else "",
        mimetype=_meta(stream, "mimetype") if cover else "",
    )


# AVSphericalProjection values the MP4 and Matroska muxers write: equirectangular, cubemap
# and equirectangular tiles. The others (half equirectangular, rectilinear, fisheye and
# Apple's immersive kinds) they leave out with a warning, so no output could keep them.
KEPT_PROJECTIONS = frozenset({0, 1, 2})


def is_spherical(frame: Any) -> bool:
    """Whether a decoded frame states a spherical mapping an output can keep (the
    stream's own, which the decoder puts on every frame)."""
    try:
        mapping = frame.side_data.get(SideDataType.SPHERICAL)
    except ValueError:
        # PyAV reads all of a frame's side data at once and fails on a kind it does not
        # know (a picture's EXIF from a TIFF or a camera's MJPEG): such a frame is taken
        # to state no mapping, as no 360-degree camera's video frame carries those.
        return False
    return mapping is not None and kept_projection(bytes(mapping))


def kept_projection(mapping: bytes) -> bool:
    """Whether an AVSphericalMapping (as its bytes: the projection first, a native int)
    names a projection the muxers write (pure)."""
    return len(mapping) >= 4 and int.from_bytes(mapping[:4], sys.byteorder) in KEPT_PROJECTIONS


def alpha_decoder(stream: Any) -> str:
    """The decoder that reads an opened video stream's alpha when it is kept beside the
    picture (``ALPHA_DECODERS``); "" when it has none there."""
    if _meta(stream, "alpha_mode") != "1":
        return ""
    return ALPHA_DECODERS.get(str(stream.codec_context.codec.canonical_name), "")


def hevc_layers(extradata: bytes | None) -> int:
    """How many layers an HEVC stream's video parameter set declares (pure): 1 for an
    ordinary stream, 2 for one with an alpha layer; 1 when no parameter set is found.
    ``extradata`` is an MP4/Matroska ``hvcC`` record or Annex B parameter sets (MPEG-TS)."""
    for nal in _hevc_nal_units(extradata or b""):
        if len(nal) >= 4 and (nal[0] >> 1) & 0x3F == HEVC_VPS:
            # After the NAL header: vps_video_parameter_set_id (4 bits), two flags, then
            # vps_max_layers_minus1 (6 bits), across the second and third payload bytes.
            return (((nal[2] & 0x03) << 4) | (nal[3] >> 4)) + 1
    return 1


def _hevc_nal_units(data: bytes) -> Iterator[bytes]:
    """The NAL units of an ``hvcC`` record (ISO/IEC 14496-15) or of Annex B bytes."""
    if len(data) >= 23 and data[0] == 1:  # hvcC: configurationVersion 1
        pos = 23
        for _ in range(data[22]):  # numOfArrays
            if pos + 3 > len(data):
                return
            count, pos = int.from_bytes(data[pos + 1 : pos + 3], "big"), pos + 3
            for _ in range(count):
                size = int.from_bytes(data[pos : pos + 2], "big")
                yield data[pos + 2 : pos + 2 + size]
                pos += 2 + size
        return
    yield from (chunk for chunk in data.split(b"\x00\x00\x01") if chunk)


def layered_alpha(path: Path | None, stream: Any) -> bool:
    """Whether an opened HEVC stream of the file ``path`` has an alpha layer, which only
    the ffmpeg binary decodes (``HEVC_VPS``, above); False for other streams, for a
    stream read without a path (a ranged probe), and when the binary cannot say."""
    cc = stream.codec_context
    if path is None or str(cc.codec.canonical_name) != "hevc":
        return False
    if hevc_layers(bytes(cc.extradata or b"")) < 2:
        return False
    shown_as = ["-map", f"0:{stream.index}", "-frames:v", "1", "-vf", "showinfo", "-f", "null"]
    try:
        args = [find_ffmpeg(), "-hide_banner", "-nostdin", "-i", f"file:{path}", *shown_as, "-"]
        done = subprocess.run(
            read_alone(args), capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError, HevcqError):
        return False
    shown = _SHOWN_FORMAT.search(done.stderr)
    return shown is not None and has_alpha(shown.group(1))


def _meta(stream: Any, key: str) -> str:
    """A stream's metadata value by its key in any case (Matroska tags read back upper
    case), "" when absent."""
    return next((str(v) for k, v in stream.metadata.items() if k.lower() == key), "")


def hdr_transfer(codec_context: Any) -> str:
    """A decoder context's HDR transfer by its zscale name ("" for SDR or unknown)."""
    return HDR_TRANSFERS.get(int(codec_context.color_trc or 0), "")


def sample_aspect(sar: Fraction | None) -> Fraction:
    """The sample aspect ratio as stored; square pixels when it is unset or absurd (a
    damaged header must not make a 100:1 picture)."""
    if not sar or not MIN_SAR <= sar <= 1 / MIN_SAR:
        return Fraction(1)
    return Fraction(sar)


def _first_frame(container: Any, stream: Any) -> Any:
    # The display matrix is exposed on decoded frames only (PyAV streams have no
    # side-data accessor), so decode exactly one frame, then rewind for the next stream.
    try:
        for count, packet in enumerate(container.demux(stream)):
            for frame in packet.decode():
                return frame
            if count == 0 and packet.size and packet.is_keyframe:
                frame = _drained(stream.codec_context, packet)
                if frame is not None:
                    return frame
            if count >= MAX_PACKETS_FOR_FIRST_FRAME:
                break
    finally:
        # Only a second video stream needs the rewind; it can still start mid-file.
        with contextlib.suppress(av.FFmpegError):
            container.seek(0)
    raise PermanentError(f"unreadable or truncated: no frame decodes in stream {stream.index}")


def _drained(codec_context: Any, keyframe: Any) -> Any:
    """The picture of a stream's first packet, a keyframe the decoder took but holds back;
    None when draining gives nothing (the keyframe is then fed again, as before).

    A decoder that reorders frames (HEVC with B-frames) keeps a decoded picture until it
    has seen the next few packets; draining it hands the picture out without decoding
    those. For a 1080p HEVC output that is one picture decoded instead of three (24
    against 60 ms of CPU).
    """
    frames = codec_context.decode(None)
    codec_context.flush_buffers()
    # Nothing out: feed it again, so the loop goes on from the next packet as before.
    frames = frames or keyframe.decode()
    return frames[0] if frames else None


def _start_after(container: Any, stream: Any) -> float:
    """Seconds from the file's start (its earliest stream's) to this stream's; 0 when
    either is unknown."""
    if stream.start_time is None or stream.time_base is None or container.start_time is None:
        return 0.0
    late = float(stream.start_time * stream.time_base) - container.start_time / AV_TIME_BASE
    return float(round(max(0.0, late), 6))


def _duration(container: Any) -> float | None:
    if container.duration and container.duration > 0:
        return float(container.duration / AV_TIME_BASE)
    spans = [
        float(s.duration * s.time_base)
        for s in container.streams
        if s.duration and s.time_base and s.duration > 0
    ]
    return max(spans, default=None)
