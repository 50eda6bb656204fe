"""Cover art taken out of a source, for an output that attaches it (Matroska).

Matroska keeps cover art as attachments (``cover.jpg``), which libavformat shows as a video
stream flagged as an attached picture; its muxer writes such a stream back as a second
video track, not as an attachment. So the picture's bytes are written to the job's scratch
folder first and attached from there (``ffargs.cover_args``), byte for byte as they were.
"""

from __future__ import annotations

from pathlib import Path

import av

from hevcq.errors import PermanentError
from hevcq.media.demuxers import open_input
from hevcq.media.ffargs import container_of, cover_file
from hevcq.media.model import EncodePlan


def attaches(plan: EncodePlan) -> bool:
    """Whether the plan's output attaches its covers from files (``extract`` first)."""
    return bool(plan.covers) and container_of(plan).covers == "attach"


def extract(src: Path, plan: EncodePlan, folder: Path) -> list[Path]:
    """Write each cover the plan attaches to ``folder`` (``ffargs.cover_file``); the files.

    Raises ``PermanentError`` when a cover stream holds no picture."""
    if not attaches(plan):
        return []
    wanted = {cover.index: n for n, cover in enumerate(plan.covers)}
    written: dict[int, Path] = {}
    try:
        with open_input(str(src)) as container:
            streams = [container.streams[index] for index in wanted]
            for packet in container.demux(streams):
                index = packet.stream.index
                if index in written or packet.size == 0:
                    continue
                path = cover_file(folder, wanted[index])
                path.write_bytes(bytes(packet))
                written[index] = path
                if len(written) == len(wanted):
                    break
    except av.FFmpegError as exc:
        raise PermanentError(f"cover art unreadable: {exc.strerror}") from exc
    missing = sorted(set(wanted) - set(written))
    if missing:
        raise PermanentError(f"cover art stream {missing[0]} holds no picture")
    return [written[index] for index in wanted]
