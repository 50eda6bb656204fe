"""AAC streams whose channels or sample rate change partway.

In MPEG-TS and MPEG-PS, AAC travels as ADTS: every frame starts with a header naming its
profile, sample rate and channel configuration, so a broadcast recording may switch from a
stereo advert to a 5.1 film, or a joined recording from 48 kHz to 44.1 kHz, and every
decoder follows. MP4 and Matroska hold AAC without those headers, under one configuration
for the whole stream, written from the first frame. A stream copied into them is therefore
wrong after its first change: a 5.1 stretch under a stereo configuration does not decode
at all (``channel element 1.0 is not allocated``, four seconds of silence in a file that
verified), and a 44.1 kHz stretch under 48 kHz decodes, 9 % fast and a semitone and a half
high, too short for its picture.

So a worker reads the ADTS headers of such a source's AAC streams once (demuxing only, no
decode: ``changing_aac``), and a stream whose headers change is marked ``varies`` with the
widest shape it takes: the most channels and the highest sample rate. Its plan encodes it
instead of copying it, to that shape (``EncodePlan.audio_shapes``): a stereo stretch is
laid into the front pair of a 5.1 film's layout, nothing is downmixed, and every stretch
plays at its own speed. See docs/decisions/0039-sound-that-changes-partway.md.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av

from hevcq.media.demuxers import open_input
from hevcq.media.model import AudioStream, MediaInfo
from hevcq.media.splice import TS_DISCONT  # a format whose streams may change partway

# ISO/IEC 14496-3 1.6.3.4: sampling_frequency_index; 13 and 14 are reserved, 15 escapes
# to an explicit rate, which ADTS cannot carry.
ADTS_RATES = (
    *(96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025),
    *(8000, 7350),
)
# channel_configuration: 1 to 6 are that many channels, 7 is 7.1 (eight); 0 leaves them
# to a program config element inside the frame, read here as "not said".
ADTS_CHANNELS = (0, 1, 2, 3, 4, 5, 6, 8)


@dataclasses.dataclass(frozen=True)
class AdtsShape:
    """What one ADTS header says: object type, sample rate and channels (0: not said)."""

    profile: int
    rate: int
    channels: int


def adts_shape(frame: bytes) -> AdtsShape | None:
    """The shape an ADTS frame's header declares, or None when it does not start with one."""
    if len(frame) < 7 or frame[0] != 0xFF or frame[1] & 0xF6 != 0xF0:  # syncword, layer 0
        return None
    rate_index = (frame[2] >> 2) & 0x0F
    if rate_index >= len(ADTS_RATES):
        return None
    channels = ADTS_CHANNELS[((frame[2] & 0x01) << 2) | (frame[3] >> 6)]
    return AdtsShape(profile=frame[2] >> 6, rate=ADTS_RATES[rate_index], channels=channels)


def widest(shapes: set[AdtsShape], stream: AudioStream) -> AudioStream:
    """``stream`` as one that varies, with the most channels and the highest rate it takes.

    Its probed values count too: they come from its first decoded frame, which knows what
    a header may not (the channels of a program config element; the doubled rate of
    HE-AAC, whose header gives its core rate).
    """
    channels = max([stream.channels, *(s.channels for s in shapes)])
    rate = max([stream.sample_rate, *(s.rate for s in shapes)])
    return dataclasses.replace(stream, channels=channels, sample_rate=rate, layout="", varies=True)


def changing_aac(path: Path, info: MediaInfo) -> MediaInfo:
    """``info`` with each AAC stream whose ADTS headers change partway marked ``varies``
    (``widest``); ``info`` itself for a file of another format or without such a stream.

    Reads the file's packets once, nothing decoded; damaged data ends the reading, and what
    was read by then is the answer.
    """
    aac = [a.index for a in info.audio if a.codec == "aac"]
    if not aac:
        return info
    seen: dict[int, set[AdtsShape]] = {i: set() for i in aac}
    try:
        with open_input(str(path)) as container:
            if not container.format.flags & TS_DISCONT:
                return info
            streams = [container.streams[i] for i in aac]
            for packet in container.demux(streams):
                if packet.size == 0:
                    continue
                shape = adts_shape(bytes(packet)[:7])
                if shape is not None:
                    seen[packet.stream.index].add(shape)
    except av.FFmpegError:
        pass
    changed = {i for i, shapes in seen.items() if len(shapes) > 1}
    if not changed:
        return info
    audio = tuple(widest(seen[a.index], a) if a.index in changed else a for a in info.audio)
    return dataclasses.replace(info, audio=audio)
