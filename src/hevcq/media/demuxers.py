"""Which of libavformat's demuxers may read a source: every one that reads the file it is
given, none that reads files, devices or network addresses the file names.

A source is a stranger's bytes (an app user's upload, a file someone put in a library),
and libavformat picks its demuxer from its content, whatever its name. Some demuxers are
indirections: a concat script, a DASH manifest, an IMF composition or an SDP description
is a few lines of text naming *other* inputs, which the demuxer then opens. ffmpeg limits
what they may name (relative names for concat, "common multimedia extensions" for
manifests, no network once the top input is a file), but within that a manifest uploaded
as ``clip.mp4`` makes the encode read ``/home/someone/private.mp4`` from the worker's
disk, and the output (downloadable by whoever uploaded the manifest) shows it. A concat
script naming itself opens itself until the process runs out of file descriptors.

So every open of a source, in-process (PyAV) and by the ffmpeg binary, carries a
``format_whitelist`` of the demuxers that read only the bytes they are given: libavformat
refuses the file after probing it, before the demuxer reads anything it names
(``avformat_open_input``). The whitelist is every demuxer the library has minus
``INDIRECT``, so a container this rule did not think of still opens. Our own files
(samples, outputs, segments) are opened the same way; they are never indirections.
See docs/decisions/0034-sources-are-read-alone.md.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from io import RawIOBase
from typing import Any, BinaryIO

import av

# The demuxers that open other inputs than their own bytes, and what a file of each is.
INDIRECT: dict[str, str] = {
    "concat": "a concat script",
    "hls": "an HLS playlist",
    "dash": "a DASH manifest",
    "imf": "an IMF composition playlist",
    "webm_dash_manifest": "a WebM DASH manifest",
    "sdp": "a session description (SDP)",
    "rtp": "an RTP stream description",
    "rtsp": "an RTSP address",
    "image2": "an image sequence",
    "vobsub": "a VobSub index",
    "dvdvideo": "a DVD-Video folder",
    "avisynth": "an AviSynth script",
    "vapoursynth": "a VapourSynth script",
}

# How the text indirections begin, to name a refused file in its error (the refusal
# itself is the whitelist's: these only word the message).
_LOOKS_LIKE: tuple[tuple[re.Pattern[bytes], str], ...] = (
    (re.compile(rb"\A\s*ffconcat version"), "concat"),
    (re.compile(rb"\A(?:\xef\xbb\xbf)?\s*#EXTM3U"), "hls"),
    (re.compile(rb"<MPD[\s>]", re.IGNORECASE), "dash"),
    (re.compile(rb"<CompositionPlaylist[\s>]"), "imf"),
    (re.compile(rb"^c=IN IP[46] ", re.MULTILINE), "sdp"),
    (re.compile(rb"\A# VobSub index file"), "vobsub"),
)


@functools.cache
def pyav_allowed() -> str:
    """The whitelist for this process's libavformat (PyAV's): every demuxer it has (each
    as libavformat names it, aliases joined by commas: ``mov,mp4,m4a,3gp,3g2,mj2``) but
    the indirections."""
    names = set()
    for name in av.formats_available:
        try:
            if av.ContainerFormat(name, "r").is_input:
                names.add(name)
        except ValueError:
            continue  # a muxer only
    return ",".join(sorted(n for n in names if not set(n.split(",")) & INDIRECT.keys()))


def read_alone(args: Sequence[str]) -> list[str]:
    """An ffmpeg command line with the whitelist before each input read from a ``file:``
    path, so the binary reads every such input by itself, with a demuxer the probe
    could have used (PyAV's list: the binary then refuses nothing the probe accepted).
    Inputs of a named device or filter graph (``-f lavfi -i ...``) are left as they are."""
    out: list[str] = []
    for n, arg in enumerate(args):
        if arg == "-i" and n + 1 < len(args) and args[n + 1].startswith("file:"):
            out += ["-format_whitelist", pyav_allowed()]
        out.append(arg)
    return out


def refusal(head: bytes) -> str | None:
    """The one-line reason a file beginning with ``head`` is not read, when it is one of
    the indirections; None otherwise."""
    for pattern, name in _LOOKS_LIKE:
        if pattern.search(head[:4096]):
            return f"not a media file: {INDIRECT[name]}, which names other inputs (never followed)"
    return None


def open_input(file: str | BinaryIO | RawIOBase) -> Any:
    """``av.open`` of a file to read, by itself (the whitelist); metadata that is not
    valid UTF-8 is replaced, so broken tags never make a playable file unreadable. Its
    ``demux`` and ``decode`` read to the end of a file whose streams grow partway
    (``Input``)."""
    whitelist = {"format_whitelist": pyav_allowed()}
    return Input(av.open(file, metadata_errors="replace", container_options=whitelist))


class Input:
    """A PyAV input container, whose ``demux`` and ``decode`` end cleanly where streams
    appeared partway through the file; everything else is the container's.

    An MPEG-TS recording can list new streams partway (a broadcaster's programme map
    changing at a programme boundary: the picture and sound move to other PIDs). PyAV
    reads them and passes their packets by, but at the end, where it yields an empty packet
    per stream asked for (which drains each decoder), it walks every stream the file has
    by then against the list it made at the start, and raises ``IndexError`` at the first
    new one. The packets asked for are all out by then, their streams' empty ones too (in
    stream order, the new ones last): the read is whole. Left alone, the error reached
    people as ``internal error: IndexError: list index out of range`` on every try.
    """

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def __enter__(self) -> Input:
        return self

    def __exit__(self, *exc: object) -> None:
        self._container.close()

    def demux(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """The container's ``demux``, ending where it would raise past its streams (an
        ``IndexError`` before any packet, a stream asked for that is not there, is
        raised as it is)."""
        packets = self._container.demux(*args, **kwargs)
        started = False
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except IndexError:
                if started:
                    return
                raise
            started = True
            yield packet

    def decode(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Every frame of the streams asked for, as the container's ``decode`` gives them."""
        for packet in self.demux(*args, **kwargs):
            yield from packet.decode()
