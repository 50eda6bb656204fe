"""Audio streams whose channels or sample rate change partway.

In MPEG-TS and MPEG-PS every frame of the common broadcast codecs names its own shape: AAC
travels as ADTS, with a header giving its profile, rate and channel configuration; AC-3,
E-AC-3 and MPEG audio (MP2, MP3) frames carry theirs in their own headers. So a broadcast
recording may switch from a stereo advert to a 5.1 film, or a joined recording from 48 kHz
to 44.1 kHz, and every decoder follows. Two things do not:

- MP4 and Matroska hold AAC without ADTS headers, under one configuration for the whole
  stream, written from the first frame. A stream copied into them is wrong after its
  first change: a 5.1 stretch under a stereo configuration does not decode at all
  (``channel element 1.0 is not allocated``, four seconds of silence in a file that
  verified), and a 44.1 kHz stretch under 48 kHz decodes, 9 % fast and a semitone and a
  half high, too short for its picture. AC-3 and MPEG audio copied stay right: their
  frames still say what they are.
- An encode brings every stretch to the shape of the first, unless told otherwise: a 5.1
  film after a stereo advert came out stereo.

So a worker reads the frame headers of such a source's audio streams once (demuxing only,
no decode: ``changing_sound``), and a stream whose headers change is marked ``varies``
with the widest shape it takes: the most channels and the highest sample rate. A plan
encodes such an AAC stream instead of copying it, and encodes any such stream to that
shape (``EncodePlan.audio_shapes``): a stereo stretch is laid into the front pair of a 5.1
film's layout, nothing is downmixed, and every stretch plays at its own speed. See
docs/decisions/0039-sound-that-changes-partway.md.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import av

from hevcq.formats import CONFIGURED_ONCE
from hevcq.media.demuxers import open_input
from hevcq.media.model import AudioStream, MediaInfo
from hevcq.media.splice import TS_DISCONT  # a format whose streams may change partway


@dataclasses.dataclass(frozen=True)
class FrameShape:
    """What one frame header says: its kind (a profile, a mode), sample rate and channels
    (0: not said)."""

    kind: int
    rate: int
    channels: int


# ISO/IEC 14496-3 1.6.3.4: sampling_frequency_index; 13 and 14 are reserved, 15 escapes
# to an explicit rate, which ADTS cannot carry.
ADTS_RATES = (
    *(96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025),
    *(8000, 7350),
)
# channel_configuration: 1 to 6 are that many channels, 7 is 7.1 (eight); 0 leaves them
# to a program config element inside the frame, read here as "not said".
ADTS_CHANNELS = (0, 1, 2, 3, 4, 5, 6, 8)


def adts_shape(frame: bytes) -> FrameShape | None:
    """The shape an ADTS frame's header declares, or None when it does not start with one."""
    if len(frame) < 7 or frame[0] != 0xFF or frame[1] & 0xF6 != 0xF0:  # syncword, layer 0
        return None
    rate_index = (frame[2] >> 2) & 0x0F
    if rate_index >= len(ADTS_RATES):
        return None
    channels = ADTS_CHANNELS[((frame[2] & 0x01) << 2) | (frame[3] >> 6)]
    return FrameShape(kind=frame[2] >> 6, rate=ADTS_RATES[rate_index], channels=channels)


# ATSC A/52: fscod; E-AC-3's fscod 3 takes its rate from fscod2, at half these.
AC3_RATES = (48000, 44100, 32000)
# acmod: the full-range channels of each coding mode (1+1, 1/0, 2/0, 3/0, 2/1, 3/1, 2/2, 3/2)
AC3_CHANNELS = (2, 1, 2, 3, 3, 4, 4, 5)


def ac3_shape(frame: bytes) -> FrameShape | None:
    """The shape an AC-3 or E-AC-3 sync frame declares (its independent substream's), or
    None when it does not start with one."""
    if len(frame) < 8 or frame[0] != 0x0B or frame[1] != 0x77:
        return None
    bsid = frame[5] >> 3
    if bsid > 10:  # E-AC-3 (A/52 annex E): fscod, fscod2 or numblkscod, acmod, lfeon
        if frame[2] >> 6 == 1:
            return None  # a dependent substream: channels added to the independent one
        fscod, fscod2 = frame[4] >> 6, (frame[4] >> 4) & 0x03
        if fscod == 3 and fscod2 == 3:
            return None
        rate = AC3_RATES[fscod2] // 2 if fscod == 3 else AC3_RATES[fscod]
        acmod, lfe = (frame[4] >> 1) & 0x07, frame[4] & 0x01
        return FrameShape(kind=16, rate=rate, channels=AC3_CHANNELS[acmod] + lfe)
    fscod = frame[4] >> 6
    if fscod == 3:
        return None
    bits = int.from_bytes(frame[6:8], "big")  # acmod, the mix levels it has, then lfeon
    acmod = bits >> 13
    skip = 2 * sum((acmod & 1 and acmod != 1, bool(acmod & 4), acmod == 2))
    lfe = (bits >> (12 - skip)) & 0x01
    return FrameShape(kind=bsid, rate=AC3_RATES[fscod], channels=AC3_CHANNELS[acmod] + lfe)


# ISO/IEC 11172-3 and 13818-3: the rates of MPEG-1, MPEG-2 and MPEG-2.5 by version bits.
MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mpeg_audio_shape(frame: bytes) -> FrameShape | None:
    """The shape an MPEG audio frame (MP1, MP2, MP3) header declares, or None when it does
    not start with one."""
    if len(frame) < 4 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
        return None
    version, rate_index = (frame[1] >> 3) & 0x03, (frame[2] >> 2) & 0x03
    if version not in MPEG_RATES or rate_index == 3:
        return None
    mono = frame[3] >> 6 == 3
    return FrameShape(kind=version, rate=MPEG_RATES[version][rate_index], channels=1 if mono else 2)


# The codecs whose frames are read, and how; the first bytes of a packet are its header.
HEADERS: dict[str, Callable[[bytes], FrameShape | None]] = {
    "aac": adts_shape,
    "ac3": ac3_shape,
    "eac3": ac3_shape,
    "mp1": mpeg_audio_shape,
    "mp2": mpeg_audio_shape,
    "mp3": mpeg_audio_shape,
}
HEADER_BYTES = 8
# Frames of one shape it takes for a stream to count as taking it: an advert or a film
# lasts thousands, and a damaged frame of a broadcast recording whose header still
# syncs says anything (8 channels of a stereo stream, a reserved rate).
MIN_FRAMES = 24


def widest(shapes: set[FrameShape], stream: AudioStream) -> AudioStream:
    """``stream`` as one that varies, with the most channels and the highest rate it takes.

    Its probed values count too: they come from its first decoded frame, which knows what
    a header may not (the channels of a program config element; the doubled rate of
    HE-AAC, whose header gives its core rate).
    """
    channels = max([stream.channels, *(s.channels for s in shapes)])
    rate = max([stream.sample_rate, *(s.rate for s in shapes)])
    return dataclasses.replace(stream, channels=channels, sample_rate=rate, layout="", varies=True)


def changing_sound(path: Path, info: MediaInfo) -> MediaInfo:
    """``info`` with each audio stream whose frame headers change partway marked
    ``varies`` (``widest``); ``info`` itself for a file of another format or without
    such a stream.

    Reads the file's packets once, nothing decoded; damaged data ends the reading, and what
    was read by then is the answer. A shape counts once ``MIN_FRAMES`` frames have it.
    """
    read = {a.index: HEADERS[a.codec] for a in info.audio if a.known and a.codec in HEADERS}
    if not read:
        return info
    seen: dict[int, Counter[FrameShape]] = {i: Counter() for i in read}
    try:
        with open_input(str(path)) as container:
            if not container.format.flags & TS_DISCONT:
                return info
            for packet in container.demux([container.streams[i] for i in read]):
                if packet.size == 0:
                    continue
                index = packet.stream.index
                shape = read[index](bytes(packet)[:HEADER_BYTES])
                if shape is not None:
                    seen[index][shape] += 1
    except av.FFmpegError:
        pass
    codecs = {a.index: a.codec for a in info.audio}
    taken = {i: {s for s, n in counts.items() if n >= MIN_FRAMES} for i, counts in seen.items()}
    changed = {i for i, shapes in taken.items() if len({_shape(codecs[i], s) for s in shapes}) > 1}
    if not changed:
        return info
    audio = tuple(widest(taken[a.index], a) if a.index in changed else a for a in info.audio)
    return dataclasses.replace(info, audio=audio)


def _shape(codec: str, frame: FrameShape) -> tuple[int, ...]:
    """What of a frame's header counts as its stream's shape: its rate and channels, and
    for a codec whose configuration is written once its profile too, which that names."""
    if codec in CONFIGURED_ONCE:
        return frame.kind, frame.rate, frame.channels
    return frame.rate, frame.channels
