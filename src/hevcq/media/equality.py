"""When an output already in place counts as the new one: the same bytes, or the same streams."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av

from hevcq.limits import MiB
from hevcq.media.demuxers import open_input

_CHUNK = MiB

# One stream's identity: kind, codec, and a digest of its headers and packet payloads.
StreamDigest = tuple[str, str, str]


def same_bytes(a: Path, b: Path) -> bool:
    """True when two files hold the same bytes."""
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            ca, cb = fa.read(_CHUNK), fb.read(_CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def stream_digests(path: Path) -> list[StreamDigest] | None:
    """Each stream's kind, codec and digest of its codec headers and packet payloads, in
    file order; None when the file cannot be read as media."""
    try:
        with open_input(str(path)) as container:
            streams = list(container.streams)
            digests = [hashlib.sha256() for _ in streams]
            for n, st in enumerate(streams):
                cc = st.codec_context
                digests[n].update(bytes(cc.extradata or b"") if cc else b"")
            for packet in container.demux():
                if packet.size:  # demux() ends each stream with an empty flush packet
                    digests[packet.stream.index].update(bytes(packet))
            return [
                (st.type, st.codec_context.name if st.codec_context else "", d.hexdigest())
                for st, d in zip(streams, digests, strict=True)
            ]
    except (av.FFmpegError, OSError):
        return None


def same_media(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` are the same output: equal bytes, or else the same
    streams carrying the same payloads (what differs is container bookkeeping, such as
    Matroska's random UIDs or a muxer's version tag, which says nothing of the media)."""
    if same_bytes(a, b):
        return True
    digests = stream_digests(a)
    return digests is not None and digests == stream_digests(b)
