"""Decoding the encoded video while it is encoded, so that verifying it needs no second pass.

ffmpeg's tee muxer writes the encoder's video packets twice: into the output file, and
as a raw HEVC elementary stream into the scratch folder (``ffargs.build_args(stream=)``).
A ``StreamDecoder`` follows that growing stream from a background thread of the lowest
CPU priority, decoding every frame while x265 is still busy, so the decode mostly costs
CPU the encoder leaves idle instead of wall time after it. Once ffmpeg has exited, the
caller's thread takes over at normal priority and decodes what is left.

What this proves is tied to the output file by ``verify.file_video``: the NAL units in the
file's video packets must be, byte for byte and in order, those that were decoded
(parameter sets aside: the file keeps them in its sample description, the raw stream
in-band). So every frame of the output file has been decoded, as a full decode of the
file would, without reading the file's frames a second time.

With ``frames=N`` (the pool's ``verify: stream``), every picture is digested and counted
but only the first N frames are decoded: the proof that the file holds the encoder's own
stream stays, the decode of every frame goes (``verify.decode_ends`` decodes the start
of the file's last GOP).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import structlog

log = structlog.get_logger(__name__)

CHUNK = 64 * 1024  # small, so a starved background thread hands over quickly
POLL_S = 0.05  # how often the background thread looks for more of the growing stream
FIRST_NON_VCL = 32  # NAL unit types below this carry slices of coded pictures
FIRST_SLICE_FLAG = 0x80  # first_slice_segment_in_pic_flag: first bit after the NAL header
PARAMETER_SETS = frozenset({32, 33, 34})  # VPS, SPS, PPS
START_CODE = b"\x00\x00\x01"


class NalDigest:
    """A digest of coded pictures: every slice NAL unit in order, and the parameter sets.

    Other NAL units (SEI, access unit delimiters) are left out: the encoder's header
    SEI travels in the file's sample description but in-band in the raw stream. So are
    repeats of a parameter set: the raw stream repeats them at every keyframe.
    """

    def __init__(self) -> None:
        self._slices = hashlib.sha256()
        self._parameter_sets: set[bytes] = set()
        self.count = 0  # slice NAL units
        self.pictures = 0  # slice NAL units that start a coded picture

    def add(self, nal: bytes) -> None:
        """Take one NAL unit (trailing zero bytes, which belong to no NAL, dropped)."""
        nal = nal.rstrip(b"\x00")
        if not nal:
            return
        kind = (nal[0] >> 1) & 0x3F
        if kind < FIRST_NON_VCL:
            self._slices.update(len(nal).to_bytes(4, "big"))
            self._slices.update(nal)
            self.count += 1
            if len(nal) > 2 and nal[2] & FIRST_SLICE_FLAG:
                self.pictures += 1
        elif kind in PARAMETER_SETS:
            self._parameter_sets.add(nal)

    def hexdigest(self) -> str:
        """The digest so far."""
        total = hashlib.sha256(self._slices.digest())
        for nal in sorted(self._parameter_sets):
            total.update(hashlib.sha256(nal).digest())
        return total.hexdigest()


class AnnexBSplitter:
    """Splits an Annex B byte stream, fed in arbitrary chunks, into NAL units."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink
        self._buf = bytearray()
        self._scan = 0  # where the next start code search begins
        self._in_nal = False  # False until the first start code

    def feed(self, data: bytes) -> None:
        """Take more bytes; every NAL unit completed by them goes to the sink."""
        self._buf += data
        begin = 0
        while (found := self._buf.find(START_CODE, self._scan)) >= 0:
            if self._in_nal:
                self._sink(bytes(self._buf[begin:found]))
            self._in_nal = True
            begin = self._scan = found + len(START_CODE)
        if not self._in_nal:
            begin = max(0, len(self._buf) - 2)  # bytes before any start code are not NAL
        del self._buf[:begin]
        self._scan = max(0, len(self._buf) - 2)  # a start code may straddle two chunks

    def close(self) -> None:
        """End of stream: the last NAL unit goes to the sink."""
        if self._in_nal and self._buf:
            self._sink(bytes(self._buf))
        self._buf.clear()
        self._in_nal = False


def length_prefixed_nals(data: bytes, size: int) -> Iterator[bytes]:
    """The NAL units of one MP4/Matroska sample (``size``-byte big-endian lengths)."""
    at = 0
    while at < len(data):
        if at + size > len(data):
            raise ValueError("sample ends inside a NAL length field")
        length = int.from_bytes(data[at : at + size], "big")
        at += size
        if at + length > len(data):
            raise ValueError("NAL unit runs past the end of its sample")
        yield data[at : at + length]
        at += length


HVCC_HEADER = 23  # bytes of an hvcC record before its arrays of NAL units


def nal_length_size(extradata: bytes | None) -> int | None:
    """NAL length field size from an ``hvcC`` record; None when samples are Annex B."""
    if not extradata or len(extradata) < HVCC_HEADER or extradata[0] != 1:
        return None
    return (extradata[21] & 0x03) + 1


def hvcc_nals(extradata: bytes) -> Iterator[bytes]:
    """The NAL units (parameter sets, header SEI) stored in an ``hvcC`` record."""
    at = HVCC_HEADER
    for _ in range(extradata[HVCC_HEADER - 1]):
        if at + 3 > len(extradata):
            raise ValueError("hvcC record ends inside an array header")
        count = int.from_bytes(extradata[at + 1 : at + 3], "big")
        at += 3
        for _ in range(count):
            if at + 2 > len(extradata):
                raise ValueError("hvcC record ends inside a NAL length field")
            length = int.from_bytes(extradata[at : at + 2], "big")
            at += 2
            if at + length > len(extradata):
                raise ValueError("hvcC NAL unit runs past the end of the record")
            yield extradata[at : at + length]
            at += length


@dataclass(frozen=True)
class StreamCheck:
    """What reading and decoding (all of it, or its first frames) the encoder's stream found."""

    frames: int  # frames decoded; when not ``decoded`` in full, coded pictures counted
    nals: int  # NAL units digested (parameter sets aside)
    digest: str
    error: str | None  # the decoder's error, when the stream did not decode
    decoded: bool = True  # False: every picture counted, only the first ones decoded
    first_decoded: int = 0  # frames decoded from the start, when not decoded in full


class StreamDecoder:
    """Follows and decodes a raw HEVC stream that another process is still writing.

    ``start()`` before the encode; then exactly one of ``finish()`` (the encode
    succeeded: decode the rest and report) or ``abandon()`` (it failed or stopped).
    With ``frames`` set, every picture is digested and counted, and only the first
    ``frames`` (or a few more: the decoder's reorder delay) are decoded.
    """

    def __init__(self, path: Path, *, frames: int | None = None) -> None:
        self._path = path
        self._limit = frames
        self._file: Any = None
        self._digest = NalDigest()
        self._splitter = AnnexBSplitter(self._digest.add)
        self._codec: Any = av.CodecContext.create("hevc", "r")
        # One thread: frame threads would inherit the background thread's low
        # priority and starve the caller's thread when it takes over.
        self._codec.thread_type = "SLICE"
        self._codec.thread_count = 1
        # The in-loop filters (deblocking, SAO) only smooth pictures already decoded, with
        # parameters already parsed: they cannot fail, so skipping them loses no check
        # and saves an eighth of the decode.
        # explode: a damaged slice is an error, not a picture silently concealed.
        self._codec.options = {"skip_loop_filter": "all", "err_detect": "explode"}
        self._frames = 0
        self._error: str | None = None
        self._handover = threading.Event()
        self._thread = threading.Thread(target=self._background, name="stream-decoder", daemon=True)

    def start(self) -> None:
        """Begin following the stream in the background; call before the writer starts.

        A file already at the path would be read as the start of the new stream (the
        writer truncates it, but not before this thread may have read it), so it goes.
        """
        self._path.unlink(missing_ok=True)
        self._thread.start()

    def finish(self) -> StreamCheck:
        """The writer has exited: decode what is left in this thread, and report."""
        self._stop_background()
        if self._open():
            while chunk := self._file.read(CHUNK):
                self._feed(chunk)
        self._close_stream()
        digest = self._digest
        if self._limit is not None:
            return StreamCheck(
                digest.pictures,
                digest.count,
                digest.hexdigest(),
                self._error,
                decoded=False,
                first_decoded=self._frames,
            )
        return StreamCheck(self._frames, digest.count, digest.hexdigest(), self._error)

    def abandon(self) -> None:
        """Stop following the stream; nothing is reported."""
        self._stop_background()
        if self._file is not None:
            self._file.close()

    def _stop_background(self) -> None:
        self._handover.set()
        if self._thread.is_alive():
            self._thread.join()

    def _background(self) -> None:
        _lower_priority()
        try:
            while not self._handover.is_set():
                chunk = self._file.read(CHUNK) if self._open() else b""
                if chunk:
                    self._feed(chunk)
                else:
                    self._handover.wait(POLL_S)
        except Exception as exc:  # never let the thread die with the stream half read
            log.exception("stream_decoder_failed")
            self._error = self._error or f"stream check failed: {exc}"

    def _open(self) -> bool:
        if self._file is None:
            try:
                self._file = self._path.open("rb")
            except FileNotFoundError:
                return False
        return True

    def _decoding(self) -> bool:
        return self._error is None and (self._limit is None or self._frames < self._limit)

    def _feed(self, chunk: bytes) -> None:
        self._splitter.feed(chunk)
        if self._decoding():
            self._decode(chunk)

    def _decode(self, chunk: bytes | None) -> None:
        try:
            for packet in self._codec.parse(chunk):
                if not self._decoding():
                    return  # the first frames asked for are decoded: the rest is only read
                self._frames += len(self._codec.decode(packet))
            if chunk is None:
                self._frames += len(self._codec.decode(None))
        except av.FFmpegError as exc:
            self._error = exc.strerror or str(exc)

    def _close_stream(self) -> None:
        self._splitter.close()
        if self._decoding():
            self._decode(None)
        if self._file is not None:
            self._file.close()


def _lower_priority() -> None:
    # Linux applies both calls to the calling thread only. SCHED_IDLE runs the thread
    # only on CPU time nothing else wants; nice 19 is the fallback elsewhere.
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
