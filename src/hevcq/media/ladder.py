"""An HLS ladder from one source: CMAF (fMP4) segments of every rung from one ffmpeg
command, a master playlist written from what the segments measure, and the checks a ladder
passes before it counts.

The rungs come from the picture as the viewer sees it (rotation applied, so a portrait
phone clip gets portrait rungs by its short side), never above the source. Every rung has
an IDR frame every ``GOP_S`` seconds at the same timestamps, closed GOPs, and segments of
``SEGMENT_S`` seconds, so a player switches rungs at any segment. Variable-frame-rate phone
sources are made constant-rate. The master playlist's CODECS come from the init segments,
and BANDWIDTH / AVERAGE-BANDWIDTH from the segments' own sizes, never from settings.

Each GOP is a movie fragment of its own, so every IDR begins a ``moof``: each video rung
also has an I-frame playlist (trick play, scrubbing thumbnails) of byte ranges into its
segments, found by walking the fragments' boxes and checked by decoding each range.
"""

from __future__ import annotations

import io
import itertools
import math
import re
import statistics
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from hevcq.errors import ConfigError, PermanentError, VerificationError
from hevcq.formats import FIRST_PAIR, encoded_audio_kbps, first_pair_only, picture_fits
from hevcq.media.captions import (
    SUBTITLE_GROUP,
    TEXT_CODECS,
    make_renditions,
    rendition_problems,
)
from hevcq.media.demuxers import open_input
from hevcq.media.ffargs import (
    decoder_args,
    fit_picture,
    source_filters,
    spherical_scale,
    stated_colours,
)
from hevcq.media.ffmpeg import run_ffmpeg
from hevcq.media.model import AudioStream, MediaInfo, VideoStream
from hevcq.media.progress import Progress
from hevcq.media.renditions import FALLBACK_NAME, Label, Track, labels, subtitle_labels
from hevcq.media.verify import (
    DECODER_OPTIONS,
    DURATION_TOLERANCE_S,
    raise_if_source_truncated,
)

# Rung heights (the short side), largest first.
STANDARD_SIZES = (2160, 1440, 1080, 720, 480, 360, 240)
SEGMENT_S = 6
GOP_S = 2
# A source whose short side is at least this much above the standard rung below it also
# gets its own size as the top rung (a 1000p source: 1000, 720, ...; a 370p one: 360, 240).
OWN_SIZE_MARGIN = 1.10
# Peak rate cap of a rung: bits per pixel per frame (about Apple's H.264 ladder: 720p30 at
# 2.8 Mb/s, 1080p30 at 6.2 Mb/s, 360p30 at 0.7 Mb/s). The quality comes from the CRF; the
# cap keeps a rung within what its bandwidth class can stream.
CAP_BITS_PER_PIXEL = 0.1
CRF = 23
PRESET = "veryfast"
# The AV1 group: SVT-AV1 at a preset a farm can afford, a CRF near H.264's CRF 23 in look.
AV1_CRF = 38
AV1_PRESET = "8"
HEVC_CRF = 27
GROUPS = ("h264", "hevc", "av1")
AUDIO_KBPS = 128
# The sample rates a ladder's AAC keeps; audio at any other (8 kHz from a voice recorder
# or an old phone, 96 kHz from a camera's PCM) is resampled to the first. Streaming
# players and their hardware decoders are built for these two, and AAC at 96 kHz spends
# its bits on what no one hears.
AUDIO_RATES = (48000, 44100)
# Frame rates a ladder (and a score) is made at: the nearest to the source's average. The
# low ones are those of screen recordings, security cameras and time-lapses, which would
# otherwise be padded with repeated frames up to 24.
COMMON_RATES = tuple(
    Fraction(n, d)
    for n, d in (
        (10, 1),
        (12, 1),
        (25, 2),
        (15000, 1001),
        (15, 1),
        (20, 1),
        (24000, 1001),
        (24, 1),
        (25, 1),
        (30000, 1001),
        (30, 1),
        (50, 1),
        (60000, 1001),
        (60, 1),
    )
)
# The frames ``motion_rate`` reads from a source's start: ten seconds at 30 fps.
MOTION_FRAMES = 300
# Apple's rule for VOD: measured peak and average within 10 % of what the playlist declares.
BANDWIDTH_TOLERANCE = 0.10
# An I-frame playlist spans its rendition: its EXTINFs come from the fragments' sample
# durations, the rendition's from the muxer's timestamps; they agree within a few frames.
IFRAME_SPAN_TOLERANCE_S = 0.1
MASTER = "master.m3u8"
_FFMPEG_MASTER = "ffmpeg-master.m3u8"
AUDIO_GROUP = "aud"
IFRAMES = "iframes.m3u8"
SEGMENT_MOVFLAGS = "frag_keyframe+skip_sidx+negative_cts_offsets"
# The names an AV1 decoder goes by in PyAV; dav1d is the fastest of them.
AV1_DECODERS = ("av1", "libdav1d", "libaom-av1")
DAV1D = "libdav1d"


@dataclass(frozen=True)
class Rung:
    """One rendition: its picture size as displayed, and its peak rate cap; ``crf``, when
    set (a per-title ladder, ``hevcq.media.pertitle``), is its own H.264 CRF instead of
    the plan's."""

    width: int
    height: int
    maxrate_kbps: int
    crf: int | None = None

    @property
    def short(self) -> int:
        """The short side: the rung's name (720 for 1280x720 and for 720x1280)."""
        return min(self.width, self.height)


# The label of a ladder's only sound when nothing is known of it.
ONLY_AUDIO = Label(FALLBACK_NAME, default=True)


@dataclass(frozen=True)
class LadderAudio:
    """One audio rendition: a sound track of the source as AAC stereo."""

    index: int  # the source's stream
    label: Label = ONLY_AUDIO  # what the master says of it
    first_pair: bool = False  # cut to two channels first (formats.FIRST_PAIR)
    rate: int = 0  # the rate it is resampled to (``AUDIO_RATES``); 0: kept
    kbps: int = AUDIO_KBPS  # its stereo's bit rate (``ladder_audio_kbps``)
    from_zero: bool = False  # silence before a sound that starts late (AUDIO_FROM_ZERO)


@dataclass(frozen=True)
class LadderSubtitle:
    """One subtitle rendition: a text subtitle track of the source as WebVTT."""

    index: int  # the source's stream
    label: Label  # what the master says of it


@dataclass(frozen=True)
class LadderPlan:
    """Everything the ladder's ffmpeg command needs."""

    rungs: tuple[Rung, ...]
    fps: Fraction
    video_index: int
    # Every sound track the probe found a shape for, in source order, the default first
    # (``ladder_audio``); none: a silent ladder.
    audio: tuple[LadderAudio, ...]
    crf: int = CRF
    preset: str = PRESET
    # Codec groups beside H.264, which every browser plays and is always first: "av1".
    extra_groups: tuple[str, ...] = ()
    deinterlace: bool = False  # an interlaced source (ffargs.DEINTERLACE first)
    hdr_transfer: str = ""  # an HDR source's transfer: tone-mapped to SDR (ffargs.tone_map)
    rgb: bool = False  # an RGB source: made BT.709 YUV first and tagged so (ffargs.rgb_to_yuv)
    alpha: bool = False  # a source with an alpha channel: laid over black first
    alpha_decoder: str = ""  # the decoder its alpha needs (VideoStream.alpha_decoder)
    stated_colours: str = ""  # what the source leaves unstated (``source_colours``)
    # The source's size the plan is made at (EncodePlan.source_size), turned upright:
    # frames of another shape are fitted into the rungs (ffargs.fit_picture). (0, 0): unknown.
    source_size: tuple[int, int] = (0, 0)
    spherical: bool = False  # a 360-degree source: its top rung says so
    # Every text subtitle track, in source order (``hevcq.media.captions``).
    subtitles: tuple[LadderSubtitle, ...] = ()

    @property
    def groups(self) -> tuple[str, ...]:
        """The codec groups in the order the master playlist lists them."""
        return ("h264", *(g for g in self.extra_groups if g != "h264"))

    @property
    def gop_frames(self) -> int:
        """Frames between IDRs."""
        return max(1, round(self.fps * GOP_S))


def _even(n: float) -> int:
    """The nearest even size (4:2:0 needs even sides)."""
    return max(2, round(n / 2) * 2)


def rung_heights(short: int) -> tuple[int, ...]:
    """The short sides of the rungs of a source whose short side is ``short``: the
    standard sizes not above it, topped by its own (even) size when that is not one and
    lies between two of them (or below them all). A source above the largest (8K) tops
    out at it: 2160 is the largest rung of Apple's authoring specification, and the
    largest picture phones, TVs and browsers decode H.264 and HEVC at in hardware."""
    below = [s for s in STANDARD_SIZES if s <= short]
    if below and below[0] == STANDARD_SIZES[0]:
        return tuple(below)
    if not below or short >= below[0] * OWN_SIZE_MARGIN:
        return (max(2, short - short % 2), *below)
    return tuple(below)


def choose_rungs(width: int, height: int, fps: Fraction) -> tuple[Rung, ...]:
    """The rungs of a source displayed at ``width`` x ``height``, largest first, each
    keeping the source's aspect and orientation (``rung_heights``); none larger than a
    stream may be (``formats.picture_fits``)."""
    short, long = sorted((width, height))
    rungs = []
    for target in rung_heights(short):
        other = _even(long * target / short)
        w, h = (target, other) if width <= height else (other, target)
        if not picture_fits(w, h):
            continue
        cap = round(w * h * float(fps) * CAP_BITS_PER_PIXEL / 1000)
        rungs.append(Rung(w, h, max(cap, 64)))
    return tuple(rungs)


def constant_rate(fps: float | None) -> Fraction:
    """The constant frame rate a ladder of a source averaging ``fps`` is made at."""
    if not fps or fps <= 0:
        return Fraction(30)
    return min(COMMON_RATES, key=lambda r: abs(float(r) - fps))


def motion_rate(src: Path, video_index: int) -> float | None:
    """The frame rate ``src``'s picture moves at: one over the median gap between the
    presentation times of its first ``MOTION_FRAMES`` frames (packet headers only, nothing
    decoded); None when fewer than two frames carry times or the file cannot be read.

    It is the average rate for a constant-rate source and for a phone's variable one, and
    above it where a recorder writes a frame only when the picture changes: a screen
    recording idle between scrolls averages a few frames a second, and its scrolls run
    at 30 or 60.
    """
    times: list[float] = []
    try:
        with open_input(str(src)) as f:
            for packet in f.demux(f.streams[video_index]):
                if packet.pts is not None and packet.size:
                    times.append(float(packet.pts * packet.time_base))
                    if len(times) >= MOTION_FRAMES:
                        break
    except (av.FFmpegError, IndexError):
        return None
    times.sort()
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    return 1.0 / statistics.median(gaps) if gaps else None


def ladder_rate(src: Path, video: VideoStream) -> Fraction:
    """The constant frame rate a ladder of ``video`` in ``src`` is made at: the common rate
    nearest its average, or nearest the rate its picture moves at (``motion_rate``) where
    that is higher, so a scroll in a screen recording plays as smoothly as it was
    recorded. An interlaced source keeps its average: it may store each field as a packet
    of its own, which the gaps between packets would take for frames at twice the rate
    (its ladder is deinterlaced to one frame per frame)."""
    moving = 0.0 if video.interlaced else motion_rate(src, video.index) or 0.0
    return constant_rate(max(video.fps or 0.0, moving) or None)


def source_colours(video: VideoStream) -> str:
    """The filter that states on every rung what ``video`` leaves unstated of its colours
    (``ffargs.stated_colours``); "" for an RGB or HDR source, made BT.709 and stated by
    its conversion either way.

    A player takes each rung by the rung's own size: an unstated 1080p source's 480p
    rung was shown as BT.601 where its 1080p rung was shown as BT.709, so the picture
    changed colour as the player changed rungs (pure red 233 against 255 in Chromium)."""
    if video.colours is None or video.rgb or video.hdr_transfer:
        return ""
    return stated_colours(video.colours, video.height)


def plan_ladder(
    info: MediaInfo,
    groups: tuple[str, ...] = (),
    rungs: tuple[Rung, ...] | None = None,
    *,
    fps: Fraction | None = None,
    preset: str | None = None,
) -> LadderPlan | None:
    """The ladder plan of a probed source, with these codec groups beside H.264; None
    when it has no video. ``rungs``: chosen for this source (``hevcq.media.pertitle``)
    instead of ``choose_rungs``; ``fps``: its rate (``ladder_rate``) instead of the one
    nearest its average; ``preset``: the x264 and x265 preset instead of ``PRESET``."""
    video = info.main_video
    if video is None:
        return None
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        named = ", ".join(repr(g) for g in unknown)
        raise ConfigError(f"no ladder codec group {named}; known: {', '.join(GROUPS)}")
    width, height = video.display_size
    fps = fps or constant_rate(video.fps)
    if not rungs:
        rungs = choose_rungs(width, height, fps)
    return LadderPlan(
        rungs,
        fps,
        video.index,
        ladder_audio(info),
        preset=preset or PRESET,
        extra_groups=tuple(groups),
        deinterlace=video.interlaced,
        hdr_transfer=video.hdr_transfer,
        rgb=video.rgb,
        alpha=video.alpha,
        alpha_decoder=video.alpha_decoder,
        stated_colours=source_colours(video),
        source_size=video.upright_size,
        spherical=video.spherical,
        subtitles=ladder_subtitles(info),
    )


def ladder_subtitles(info: MediaInfo) -> tuple[LadderSubtitle, ...]:
    """A ladder's subtitle renditions: every text subtitle track (bitmap ones have no
    text for WebVTT), named as ``renditions.subtitle_labels`` says."""
    text = [s for s in info.subtitles if s.codec in TEXT_CODECS]
    tracks = [Track(s.language, s.title, s.role, s.default, s.forced) for s in text]
    return tuple(
        LadderSubtitle(s.index, label)
        for s, label in zip(text, subtitle_labels(tracks), strict=True)
    )


def ladder_audio(info: MediaInfo) -> tuple[LadderAudio, ...]:
    """A ladder's audio renditions: every sound track whose shape the probe found (one
    with none has no packet to encode: a broadcast's listed, silent second language), in
    source order with the default one first (``hevcq.media.renditions``), as players
    that take the first rendition take the default."""
    heard = [a for a in info.audio if a.known]
    tracks = [Track(a.language, a.title, a.role, a.default) for a in heard]
    made = [
        LadderAudio(
            a.index,
            label,
            first_pair=first_pair_only(a.channels, a.layout),
            rate=_ladder_audio_rate(a),
            kbps=ladder_audio_kbps(a),
            from_zero=from_zero(a),
        )
        for a, label in zip(heard, labels(tracks), strict=True)
    ]
    return tuple(sorted(made, key=lambda a: not a.label.default))


def ladder_audio_kbps(stream: AudioStream) -> int:
    """The bit rate of a ladder's stereo: ``AUDIO_KBPS``, or less where the source's own
    sound states less (``formats.encoded_audio_kbps``: an old phone's 12.2 kb/s speech
    gets 64, a pair's least), unless its shape changes partway."""
    return encoded_audio_kbps(AUDIO_KBPS, 2, stream.limiting_kbps)


def _ladder_audio_rate(stream: AudioStream) -> int:
    """``audio_rate``, and for a sound whose rate changes partway the rate of its widest
    stretch, named, so every stretch comes out at it."""
    kept = audio_rate(stream.sample_rate)
    return (kept or stream.sample_rate) if stream.varies else kept


def from_zero(stream: AudioStream) -> bool:
    """Whether a ladder's sound is padded with silence from the input's zero
    (``AUDIO_FROM_ZERO``): where it starts late, and its shape holds throughout (pure).

    ffmpeg builds an audio filter graph again where its input's channels or rate change,
    and ``first_pts=0`` in the new graph pads from zero up to the change: a broadcast
    recording's move from stereo to 5.1 at 4 s put 4 s of silence there, and its sound
    fell 4 s behind the picture from then on. Without it, ``async=1`` still fills a gap,
    and a sound that starts with the file, as nearly all do, comes out the same. A sound
    that both starts late and changes shape starts with the picture (``start_s`` early).
    """
    return stream.start_s > LATE_SOUND_S and not stream.varies


# A sound starting less than this after its file is taken to start with it: a rounding.
LATE_SOUND_S = 0.001


def audio_rate(source_hz: int) -> int:
    """The rate a ladder resamples audio of ``source_hz`` to; 0 to keep it (pure): one of
    ``AUDIO_RATES`` is kept, as is a rate not read."""
    return 0 if source_hz in (0, *AUDIO_RATES) else AUDIO_RATES[0]


# The sound from the input's zero, as the picture is (the HLS output is constant-rate
# from there, its first frame held until the picture starts): silence before a sound that
# starts late and in a gap of it, nothing before zero. A fragmented MP4 keeps no start
# offset or gap of a track: a sound starting 0.7 s after the picture was moved to the
# picture's start, out of step by 0.7 s for its whole length.
AUDIO_FROM_ZERO = "aresample=async=1:first_pts=0"
AUDIO_IN_STEP = "aresample=async=1"  # gaps filled, from where the sound starts


def ladder_args(
    ffmpeg: str, src: Path, out_dir: Path, plan: LadderPlan, *, threads: int | None = None
) -> list[str]:
    """The one ffmpeg command that writes every rendition's segments and playlist under
    ``out_dir/<n>/``: each codec group's rungs in turn (H.264 first), then each audio
    rendition, when there is sound, the default first."""
    groups = plan.groups
    n = len(plan.rungs) * len(groups)
    args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    if threads:
        args += ["-threads", str(threads)]
    args += [*decoder_args(plan.video_index, plan.alpha_decoder), "-i", f"file:{src}"]
    # fps first: every rung gets the same frames at the same timestamps (VFR made CFR).
    # Rungs are square-pixel sizes of the displayed picture (an anamorphic source is
    # stretched to its display aspect), each with its sample aspect ratio set to 1:1; a
    # picture that changes shape partway is fitted in, not stretched (fit_picture).
    # A transparent source is laid over black, an RGB one made BT.709 YUV, an interlaced
    # one deinterlaced and an HDR one tone-mapped to SDR before that, once for every
    # rung; what a source leaves unstated of its colours is stated as players take it.
    filters = source_filters(
        deinterlace=plan.deinterlace,
        hdr_transfer=plan.hdr_transfer,
        rgb=plan.rgb,
        alpha=plan.alpha,
    )
    first = "".join(f"{f}," for f in [*filters, plan.stated_colours] if f)
    chains = [
        f"[0:{plan.video_index}]{first}fps={plan.fps},split={n}"
        + "".join(f"[s{i}]" for i in range(n))
    ]
    rungs = [r for _ in groups for r in plan.rungs]
    chains += [f"[s{i}]{_rung_scale(i, r, plan)},setsar=1[v{i}]" for i, r in enumerate(rungs)]
    args += ["-filter_complex", ";".join(chains)]
    for i in range(n):
        args += ["-map", f"[v{i}]"]
    gop = str(plan.gop_frames)
    # IDR every GOP_S seconds at the same timestamps in every rung, closed GOPs, no extra
    # keyframes at scene cuts: segment starts line up across each group.
    args += ["-pix_fmt", "yuv420p", "-g", gop, "-keyint_min", gop, "-sc_threshold", "0"]
    args += ["-force_key_frames", f"expr:gte(t,n_forced*{GOP_S})"]
    for g, codec in enumerate(groups):
        for j, r in enumerate(plan.rungs):
            args += _rung_args(g * len(plan.rungs) + j, codec, r, plan)
    streams = [f"v:{i},agroup:{AUDIO_GROUP}" if plan.audio else f"v:{i}" for i in range(n)]
    for j, a in enumerate(plan.audio):
        args += ["-map", f"0:{a.index}", f"-c:a:{j}", "aac", f"-b:a:{j}", f"{a.kbps}k"]
        args += [f"-ac:a:{j}", "2"]
        if a.rate:
            args += [f"-ar:a:{j}", str(a.rate)]
        pair = [FIRST_PAIR] if a.first_pair else []
        start = AUDIO_FROM_ZERO if a.from_zero else AUDIO_IN_STEP
        args += [f"-filter:a:{j}", ",".join([*pair, start])]
        default = ",default:yes" if a.label.default else ""
        streams.append(f"a:{j},agroup:{AUDIO_GROUP}{default}")
    if plan.spherical:
        # The segments' muxer writes the mapping (formats.py). ffmpeg gives it to the
        # first output stream made from the input alone: the top rung (_rung_scale).
        args += ["-strict", "unofficial"]
    args += ["-f", "hls", "-hls_time", str(SEGMENT_S), "-hls_playlist_type", "vod"]
    args += ["-hls_segment_type", "fmp4", "-hls_flags", "independent_segments"]
    # A fragment (moof + mdat) per GOP, so each IDR begins one and an I-frame playlist can
    # point at it; no sidx, which would index each fragment as if it were the segment.
    # Negative composition offsets (trun version 1): a rung with B-frames shows its first
    # frame at its first decode time, as the audio does, instead of two frames later with
    # an edit list to take them back. hls.js ignores edit lists and took its zero from
    # whichever track loaded first, so the video landed 80 ms late on some page loads, out
    # of sync, and the stream ended on a stall (the ``presentation-start`` check).
    args += ["-hls_segment_options", f"movflags=+{SEGMENT_MOVFLAGS}"]
    args += ["-hls_segment_filename", str(out_dir / "%v" / "seg_%05d.m4s")]
    args += ["-hls_fmp4_init_filename", "init.mp4", "-master_pl_name", _FFMPEG_MASTER]
    args += ["-var_stream_map", " ".join(streams)]
    args += ["-progress", "pipe:1", "-nostats", str(out_dir / "%v" / "index.m3u8")]
    return args


def _rung_scale(k: int, rung: Rung, plan: LadderPlan) -> str:
    """The filter that brings the source's frames to output stream ``k``'s rung."""
    if plan.spherical and k == 0:
        # The one stream ffmpeg gives a 360-degree source's mapping to: kept through the
        # scale (ffargs.spherical_scale), the top rung says what the picture is.
        return spherical_scale(rung.width, rung.height)
    return fit_picture(rung.width, rung.height, first=plan.source_size)


def _rung_args(k: int, codec: str, rung: Rung, plan: LadderPlan) -> list[str]:
    """The encoder options of output video stream ``k``: one rung of one codec group."""
    cap = [
        f"-maxrate:v:{k}",
        f"{rung.maxrate_kbps}k",
        f"-bufsize:v:{k}",
        f"{2 * rung.maxrate_kbps}k",
    ]
    # A per-title rung's CRF is measured for H.264: the HEVC and AV1 groups keep their
    # fixed CRFs at the per-title sizes (and caps, which only bound their peaks).
    if codec == "hevc":
        # x265: closed GOPs, keyframes only where forced; hvc1 (parameter sets in the
        # sample entry) is what Apple's players need.
        params = (
            f"keyint={plan.gop_frames}:min-keyint={plan.gop_frames}:scenecut=0:open-gop=0"
            ":log-level=error"
        )
        return [
            f"-c:v:{k}",
            "libx265",
            f"-preset:v:{k}",
            plan.preset,
            f"-crf:v:{k}",
            str(HEVC_CRF),
            f"-x265-params:v:{k}",
            params,
            f"-tag:v:{k}",
            "hvc1",
            *cap,
        ]
    if codec == "av1":
        # SVT-AV1: closed GOPs (irefresh-type=2), keyframes only where forced.
        params = f"keyint={plan.gop_frames}:irefresh-type=2:scd=0"
        return [
            f"-c:v:{k}",
            "libsvtav1",
            f"-preset:v:{k}",
            AV1_PRESET,
            f"-crf:v:{k}",
            str(AV1_CRF),
            f"-svtav1-params:v:{k}",
            params,
            *cap,
        ]
    return [
        f"-c:v:{k}",
        "libx264",
        f"-preset:v:{k}",
        plan.preset,
        f"-crf:v:{k}",
        str(plan.crf if rung.crf is None else rung.crf),
        f"-profile:v:{k}",
        "high",
        f"-x264-params:v:{k}",
        "open-gop=0:scenecut=0",
        *cap,
    ]


# --- Reading what ffmpeg wrote ------------------------------------------------------------


@dataclass(frozen=True)
class MediaPlaylist:
    """One rendition's playlist: its target duration, init segment and segments."""

    path: Path
    target_s: int
    init: Path
    segments: tuple[tuple[float, Path], ...]  # (EXTINF seconds, file)

    @property
    def duration_s(self) -> float:
        """The rendition's length, from its EXTINFs."""
        return sum(d for d, _ in self.segments)

    def rates(self) -> tuple[int, int]:
        """Peak and average bits per second, measured from the segment files."""
        bits = [(p.stat().st_size * 8, d) for d, p in self.segments]
        peak = max((b / d for b, d in bits if d > 0), default=0.0)
        total = sum(d for _, d in bits)
        return math.ceil(peak), math.ceil(sum(b for b, _ in bits) / total) if total else 0


def _playlist(path: Path) -> tuple[list[str], int, Path | None]:
    """A media or I-frame playlist's non-empty lines, its target duration and its init
    segment (``#EXT-X-MAP``, resolved against the playlist's folder)."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    target, init = 0, None
    for line in lines:
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MAP:"):
            found = re.search(r'URI="([^"]+)"', line)
            init = path.parent / found.group(1) if found else None
    return lines, target, init


def _extinf(line: str) -> float:
    """The duration an ``#EXTINF:`` line gives."""
    return float(line.split(":", 1)[1].split(",", 1)[0])


def read_media_playlist(path: Path) -> MediaPlaylist:
    """Parse a media playlist ffmpeg's HLS muxer wrote (or a ladder holds)."""
    lines, target, init = _playlist(path)
    segments: list[tuple[float, Path]] = []
    extinf = None
    for line in lines:
        if line.startswith("#EXTINF:"):
            extinf = _extinf(line)
        elif not line.startswith("#") and extinf is not None:
            segments.append((extinf, path.parent / line))
            extinf = None
    if init is None or not segments:
        raise ValueError(f"{path.name}: no init segment or no segments")
    return MediaPlaylist(path, target, init, tuple(segments))


def video_codec_string(init: Path) -> tuple[str, int, int]:
    """The RFC 6381 CODECS value of an init segment's video (from its avcC or av1C
    record), and its width and height."""
    with open_input(str(init)) as f:
        ctx: Any = f.streams.video[0].codec_context
        extra = bytes(ctx.extradata or b"")
        name = ctx.name
        width, height = ctx.width, ctx.height
    if name == "h264" and len(extra) >= 4:
        # avcC: version, profile_idc, constraint flags, level_idc.
        return f"avc1.{extra[1]:02x}{extra[2]:02x}{extra[3]:02x}", width, height
    if name in AV1_DECODERS and len(extra) >= 3 and extra[0] == 0x81:
        return av1_codec_string(extra), width, height
    if name == "hevc" and len(extra) >= 13 and extra[0] == 1:
        return hevc_codec_string(extra), width, height
    raise ValueError(f"{init.name}: not an H.264, HEVC or AV1 init segment ({name})")


def hevc_codec_string(hvcc: bytes) -> str:
    """``hvc1.<space><profile>.<compatibility>.<tier><level>.<constraints>`` from an
    HEVCDecoderConfigurationRecord (ISO/IEC 14496-15, annex E): the compatibility flags
    bit-reversed in hex, the constraint bytes in hex without trailing zero bytes."""
    space = ("", "A", "B", "C")[hvcc[1] >> 6]
    tier = "H" if hvcc[1] & 0x20 else "L"
    profile = hvcc[1] & 0x1F
    compat = int(f"{int.from_bytes(hvcc[2:6], 'big'):032b}"[::-1], 2)
    constraints = list(hvcc[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [f"hvc1.{space}{profile}", f"{compat:X}", f"{tier}{hvcc[12]}"]
    parts += [f"{b:02X}" for b in constraints]
    return ".".join(parts)


def av1_codec_string(av1c: bytes) -> str:
    """``av01.P.LLT.DD`` from an AV1CodecConfigurationRecord (AV1-ISOBMFF, Codecs
    Parameter String): profile, level index, tier, bit depth."""
    profile, level = av1c[1] >> 5, av1c[1] & 0x1F
    tier = "H" if av1c[2] & 0x80 else "M"
    high, twelve = bool(av1c[2] & 0x40), bool(av1c[2] & 0x20)
    depth = 12 if high and twelve else 10 if high else 8
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


def audio_codec_string(init: Path) -> str:
    """The CODECS value of an init segment's AAC audio (``mp4a.40.<object type>``)."""
    with open_input(str(init)) as f:
        ctx: Any = f.streams.audio[0].codec_context
        extra = bytes(ctx.extradata or b"")
        if ctx.name != "aac" or not extra:
            raise ValueError(f"{init.name}: not an AAC init segment ({ctx.name})")
        return f"mp4a.40.{extra[0] >> 3}"


# --- Fragments and I-frame playlists ------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """One ISO BMFF box: its four-character type, where it starts, its whole size and the
    size of its header (8, or 16 with a 64-bit size)."""

    type: str
    offset: int
    size: int
    header: int

    @property
    def end(self) -> int:
        """Just past the box."""
        return self.offset + self.size

    @property
    def body(self) -> int:
        """Where its payload (or its first child) starts."""
        return self.offset + self.header


def iter_boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes laid end to end in ``data[start:end]`` (ISO/IEC 14496-12, 4.2): a 32-bit
    size, the type, a 64-bit size when the first is 1, the rest of the data when it is 0.

    Raises ``ValueError`` for a box that runs past the end or is smaller than its header.
    """
    end = len(data) if end is None else end
    at = start
    while at < end:
        if at + 8 > end:
            raise ValueError(f"a box header cut short at byte {at}")
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            if at + 16 > end:
                raise ValueError(f"a 64-bit box size cut short at byte {at}")
            size, header = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise ValueError(f"box {kind.decode('latin-1')!r} at byte {at} runs past its end")
        yield Box(kind.decode("latin-1"), at, size, header)
        at += size


def find_box(data: bytes, path: tuple[str, ...], start: int = 0, end: int | None = None) -> Box:
    """The first box at ``path`` (``("moov", "trak", "mdia", "mdhd")``) in ``data[start:end]``;
    ``ValueError`` when there is none."""
    found = None
    for kind in path:
        found = next((b for b in iter_boxes(data, start, end) if b.type == kind), None)
        if found is None:
            raise ValueError(f"no {'/'.join(path)} box")
        start, end = found.body, found.end
    if found is None:
        raise ValueError("no box path")
    return found


@dataclass(frozen=True)
class TrackDefaults:
    """An init segment's track: its timescale and the sample defaults of its ``trex``
    (what a fragment that states neither inherits)."""

    timescale: int
    duration: int = 0
    size: int = 0
    flags: int = 0


def track_defaults(init: bytes) -> TrackDefaults:
    """The first track's timescale (``mdhd``) and fragment defaults (``trex``) of an
    init segment."""
    mdhd = find_box(init, ("moov", "trak", "mdia", "mdhd"))
    version = init[mdhd.body]
    timescale = struct.unpack_from(">I", init, mdhd.body + (20 if version == 1 else 12))[0]
    try:
        trex = find_box(init, ("moov", "mvex", "trex"))
    except ValueError:
        return TrackDefaults(timescale)
    # version/flags, track_ID, sample description index, then the three defaults.
    duration, size, flags = struct.unpack_from(">III", init, trex.body + 12)
    return TrackDefaults(timescale, duration, size, flags)


@dataclass(frozen=True)
class Fragment:
    """One movie fragment of a segment file: a ``moof`` and the ``mdat`` after it."""

    offset: int  # of the moof
    end: int  # just past the mdat
    first_end: int  # just past the bytes of the fragment's first sample
    start: int  # the first sample's decode time, in the track's timescale
    duration: int  # of all its samples, in the track's timescale
    keyframe: bool  # its first sample is a sync sample
    # The first sample's composition offset, in the track's timescale: how long after its
    # decode time it is shown, before any edit list.
    composition: int = 0


@dataclass(frozen=True)
class _Run:
    first: tuple[int, int, int]  # offset, size and flags of the run's first sample
    duration: int
    composition: int = 0  # the first sample's composition offset


def _sync(flags: int) -> bool:
    # sample_is_non_sync_sample (ISO/IEC 14496-12, 8.8.3.1) is bit 16 of the sample flags.
    return not flags & 0x10000


def _track_run(data: bytes, at: int, base: int, dflt: TrackDefaults) -> _Run:
    """A ``trun`` box's first sample (where its bytes lie, how many, its flags) and the
    duration of all its samples; ``at`` is the box's payload, ``base`` its data offset's
    origin, ``dflt`` the durations, sizes and flags its samples inherit."""
    version = data[at]
    flags = int.from_bytes(data[at + 1 : at + 4], "big")
    count = struct.unpack_from(">I", data, at + 4)[0]
    at += 8
    offset = base
    if flags & 0x1:
        offset += struct.unpack_from(">i", data, at)[0]
        at += 4
    first_flags = dflt.flags
    if flags & 0x4:
        first_flags = struct.unpack_from(">I", data, at)[0]
        at += 4
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    total, first, composition = 0, (offset, dflt.size, first_flags), 0
    for n in range(count):
        sample = dict(zip(fields, struct.unpack_from(f">{len(fields)}I", data, at), strict=True))
        at += 4 * len(fields)
        total += sample.get(0x100, dflt.duration)
        if n == 0:
            flags0 = first_flags if flags & 0x4 else sample.get(0x400, dflt.flags)
            first = (offset, sample.get(0x200, dflt.size), flags0)
            composition = sample.get(0x800, 0)
            if version == 1 and composition >= 1 << 31:  # signed in version 1
                composition -= 1 << 32
    return _Run(first, total, composition)


def _fragment(data: bytes, moof: Box, mdat: Box, dflt: TrackDefaults) -> Fragment:
    """A fragment from its ``moof`` and ``mdat`` (the first track fragment only: a ladder's
    segments hold one track each)."""
    traf = find_box(data, ("traf",), moof.body, moof.end)
    tfhd = find_box(data, ("tfhd",), traf.body, traf.end)
    tf_flags = int.from_bytes(data[tfhd.body + 1 : tfhd.body + 4], "big")
    at = tfhd.body + 8
    # Without a base-data-offset, data offsets count from the moof (default-base-is-moof,
    # or the first track fragment of a moof without that flag).
    base = moof.offset
    if tf_flags & 0x01:
        base = struct.unpack_from(">Q", data, at)[0]
        at += 8
    at += 4 if tf_flags & 0x02 else 0  # sample description index
    values = {}
    for bit in (0x08, 0x10, 0x20):
        if tf_flags & bit:
            values[bit] = struct.unpack_from(">I", data, at)[0]
            at += 4
    dflt = TrackDefaults(
        dflt.timescale,
        values.get(0x08, dflt.duration),
        values.get(0x10, dflt.size),
        values.get(0x20, dflt.flags),
    )
    tfdt = find_box(data, ("tfdt",), traf.body, traf.end)
    wide = data[tfdt.body] == 1
    start = struct.unpack_from(">Q" if wide else ">I", data, tfdt.body + 4)[0]
    runs = [
        _track_run(data, box.body, base, dflt)
        for box in iter_boxes(data, traf.body, traf.end)
        if box.type == "trun"
    ]
    if not runs:
        raise ValueError(f"the fragment at byte {moof.offset} has no samples")
    offset, size, flags = runs[0].first
    return Fragment(
        moof.offset,
        mdat.end,
        offset + size,
        start,
        sum(r.duration for r in runs),
        _sync(flags),
        runs[0].composition,
    )


def fragments(segment: bytes, defaults: TrackDefaults) -> list[Fragment]:
    """The fragments of a CMAF segment file, in order: each ``moof`` with the ``mdat``
    that follows it."""
    found, moof = [], None
    for box in iter_boxes(segment):
        if box.type == "moof":
            moof = box
        elif box.type == "mdat" and moof is not None:
            found.append(_fragment(segment, moof, box, defaults))
            moof = None
    return found


def split_init(init: bytes) -> tuple[bytes, bytes]:
    """An init segment's own boxes (up to the end of its ``moov``) and what follows them.

    ffmpeg's HLS muxer writes everything its MP4 muxer flushed before the first segment
    ends into the init segment; with a fragment per GOP, that is the first segment's
    fragments, which belong at the head of the first segment.
    """
    moov = find_box(init, ("moov",))
    return init[: moov.end], init[moov.end :]


def prepend_fragments(segment: bytes, head: bytes) -> bytes:
    """``segment`` with ``head`` placed after its ``styp`` (if it has one)."""
    first = next(iter_boxes(segment), None)
    at = first.end if first is not None and first.type == "styp" else 0
    return segment[:at] + head + segment[at:]


def whole_seconds(extinf: float) -> int:
    """A duration as RFC 8216 4.3.3.1 compares it with a target duration (pure): rounded
    to the nearest integer, halves up (Python's ``round`` takes 2.5 to 2 and 3.5 to 4).
    Given the duration as a playlist writes it (``#EXTINF:3.500000``), which is what a
    player or a validator reads."""
    return math.floor(extinf + 0.5)


def target_duration(durations: Iterable[float]) -> int:
    """The target duration of a playlist whose entries last ``durations`` (pure): the
    longest, as written to six decimals and rounded (``whole_seconds``), and at least 1 s
    (0 is valid by the letter of RFC 8216, but a target a player may divide by or poll
    at)."""
    return max([1, *(whole_seconds(float(f"{d:.6f}")) for d in durations)])


def fit_target_duration(playlist: Path) -> None:
    """Give a media playlist ffmpeg wrote the target duration its EXTINFs call for
    (``target_duration``). ffmpeg rounds the duration it summed in floating point, a hair
    under the one it writes: a single segment of 105 frames at 30 fps it wrote as
    ``#EXTINF:3.500000`` under a target of 3, which rounds to 4, so the ladder of every
    3.5 s or 5.5 s clip failed its own ``segment-duration`` check (and one of 4.5 s,
    under a target of 4, passed it only by Python's rounding of halves to even)."""
    text = playlist.read_text(encoding="utf-8")
    lines = text.splitlines()
    target = target_duration(_extinf(ln) for ln in lines if ln.startswith("#EXTINF:"))
    fixed = re.sub(
        r"^#EXT-X-TARGETDURATION:\d+$", f"#EXT-X-TARGETDURATION:{target}", text, flags=re.M
    )
    if fixed != text:
        playlist.write_text(fixed, encoding="utf-8")


def settle_first_segment(media: MediaPlaylist) -> None:
    """Move fragments ffmpeg left in a rendition's init segment to its first segment
    (see ``split_init``); a rendition whose init segment holds none is left alone."""
    own, stray = split_init(media.init.read_bytes())
    if not stray:
        return
    first = media.segments[0][1]
    first.write_bytes(prepend_fragments(first.read_bytes(), stray))
    media.init.write_bytes(own)


@dataclass(frozen=True)
class IFrame:
    """One entry of an I-frame playlist: a keyframe's byte range in a segment file and
    the time until the next keyframe."""

    duration_s: float
    segment: Path
    offset: int
    length: int


def iframes_of(found: list[tuple[Path, list[Fragment]]], timescale: int) -> list[IFrame]:
    """The I-frame entries of a rendition from its segment files' fragments, in order.

    Each keyframe's range runs from its fragment's ``moof`` to the end of the keyframe's
    own bytes in the ``mdat``: the moof, the mdat header and the I-frame, what Apple's HLS
    authoring spec asks of an fMP4 I-frame. The whole fragment would also carry the rest
    of its GOP, frames a trick-play player fetches and never shows.
    """
    keys = [(seg, f) for seg, frags in found for f in frags if f.keyframe]
    every = [f for _, frags in found for f in frags]
    if not keys:
        return []
    end = every[-1].start + every[-1].duration
    starts = [f.start for _, f in keys[1:]] + [end]
    return [
        IFrame((nxt - f.start) / timescale, seg, f.offset, f.first_end - f.offset)
        for (seg, f), nxt in zip(keys, starts, strict=True)
    ]


def rendition_iframes(media: MediaPlaylist) -> list[IFrame]:
    """The I-frame entries of a video rendition, from its segment files."""
    defaults = track_defaults(media.init.read_bytes())
    found = [(seg, fragments(seg.read_bytes(), defaults)) for _, seg in media.segments]
    return iframes_of(found, defaults.timescale)


def iframe_playlist_text(init: str, frames: list[IFrame]) -> str:
    """An I-frame playlist of ``frames`` (each named relative to the playlist) after the
    init segment ``init``: version 7 like the rest of the ladder (an EXT-X-MAP in an
    I-frames-only playlist needs 5, BYTERANGE 4)."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target_duration(f.duration_s for f in frames)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-I-FRAMES-ONLY",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{init}"',
    ]
    for f in frames:
        lines.append(f"#EXTINF:{f.duration_s:.6f},")
        lines.append(f"#EXT-X-BYTERANGE:{f.length}@{f.offset}")
        lines.append(f.segment.name)
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class IFramePlaylist:
    """An I-frame playlist as read: its init segment and entries."""

    path: Path
    target_s: int
    init: Path
    frames: tuple[IFrame, ...]

    @property
    def duration_s(self) -> float:
        """What its entries span, from their EXTINFs."""
        return sum(f.duration_s for f in self.frames)

    def rates(self) -> tuple[int, int]:
        """Peak and average bits per second of its ranges over their EXTINFs."""
        peak = max(
            (f.length * 8 / f.duration_s for f in self.frames if f.duration_s > 0), default=0.0
        )
        total = self.duration_s
        bits = sum(f.length * 8 for f in self.frames)
        return math.ceil(peak), math.ceil(bits / total) if total else 0


def read_iframe_playlist(path: Path) -> IFramePlaylist:
    """Parse an I-frame playlist; ``ValueError`` when it is not one or lists nothing.

    A BYTERANGE without an offset continues where the previous range of the same file
    ended (RFC 8216, 4.3.2.2).
    """
    lines, target, init = _playlist(path)
    if "#EXT-X-I-FRAMES-ONLY" not in lines:
        raise ValueError(f"{path.name}: no #EXT-X-I-FRAMES-ONLY")
    frames: list[IFrame] = []
    extinf, byterange = None, None
    ends: dict[str, int] = {}
    for line in lines:
        if line.startswith("#EXTINF:"):
            extinf = _extinf(line)
        elif line.startswith("#EXT-X-BYTERANGE:"):
            byterange = line.split(":", 1)[1]
        elif not line.startswith("#") and extinf is not None and byterange is not None:
            length, _, at = byterange.partition("@")
            offset = int(at) if at else ends.get(line, 0)
            frames.append(IFrame(extinf, path.parent / line, offset, int(length)))
            ends[line] = offset + int(length)
            extinf = byterange = None
    if init is None or not frames:
        raise ValueError(f"{path.name}: no init segment or no I-frames")
    return IFramePlaylist(path, target, init, tuple(frames))


@dataclass(frozen=True)
class Variant:
    """A master playlist entry as written or read."""

    uri: str
    bandwidth: int
    average_bandwidth: int
    codecs: str
    width: int
    height: int
    frame_rate: str


@dataclass(frozen=True)
class IFrameStream:
    """A master playlist's I-frame stream (``EXT-X-I-FRAME-STREAM-INF``) as written or read."""

    uri: str
    bandwidth: int
    average_bandwidth: int
    codecs: str
    width: int
    height: int


def write_iframe_playlist(media: MediaPlaylist) -> Path:
    """Write the I-frame playlist of a video rendition beside its media playlist; its path."""
    path = media.path.parent / IFRAMES
    frames = rendition_iframes(media)
    if not frames:
        raise ValueError(f"{media.path.parent.name}: no fragment begins with a keyframe")
    path.write_text(iframe_playlist_text(media.init.name, frames), encoding="utf-8")
    return path


def write_master(
    out_dir: Path, plan: LadderPlan, subtitles: Sequence[tuple[LadderSubtitle, str]] = ()
) -> list[Variant]:
    """Write ``master.m3u8`` from what the segments and init segments hold; the variants.

    Before measuring, each rendition's first segment takes back the fragments ffmpeg left
    in its init segment (``split_init``), and each video rendition gets its I-frame
    playlist. Each variant's BANDWIDTH is its video's peak plus the highest audio
    rendition's peak (what a player may stream at once, whichever sound it plays),
    AVERAGE-BANDWIDTH likewise for the averages, and its CODECS name every audio codec
    of the group; an I-frame stream's are its keyframe ranges' alone (a player in trick
    play fetches no audio).
    """
    n = len(plan.rungs) * len(plan.groups)  # video renditions; the audio ones follow
    for i in range(n + len(plan.audio)):
        fit_target_duration(out_dir / str(i) / "index.m3u8")
        settle_first_segment(read_media_playlist(out_dir / str(i) / "index.m3u8"))
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    a_peak = a_avg = 0
    a_codecs: list[str] = []
    for j, a in enumerate(plan.audio):
        media = read_media_playlist(out_dir / str(n + j) / "index.m3u8")
        peak, avg = media.rates()
        a_peak, a_avg = max(a_peak, peak), max(a_avg, avg)
        codec = audio_codec_string(media.init)
        a_codecs += [] if codec in a_codecs else [codec]
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",{a.label.attributes()},'
            f'CHANNELS="2",URI="{n + j}/index.m3u8"'
        )
    a_codec = "".join(f",{c}" for c in a_codecs)
    for sub, uri in subtitles:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{SUBTITLE_GROUP}",{sub.label.attributes()},'
            f'URI="{uri}"'
        )
    variants, iframe_lines = [], []
    for i in range(n):
        media = read_media_playlist(out_dir / str(i) / "index.m3u8")
        codec, width, height = video_codec_string(media.init)
        peak, avg = media.rates()
        v = Variant(
            f"{i}/index.m3u8",
            peak + a_peak,
            avg + a_avg,
            codec + a_codec,
            width,
            height,
            f"{float(plan.fps):.3f}",
        )
        variants.append(v)
        group = f',AUDIO="{AUDIO_GROUP}"' if plan.audio else ""
        group += f',SUBTITLES="{SUBTITLE_GROUP}"' if subtitles else ""
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={v.bandwidth},AVERAGE-BANDWIDTH={v.average_bandwidth},"
            f'CODECS="{v.codecs}",RESOLUTION={v.width}x{v.height},FRAME-RATE={v.frame_rate}{group}'
        )
        lines.append(v.uri)
        iframes = read_iframe_playlist(write_iframe_playlist(media))
        i_peak, i_avg = iframes.rates()
        iframe_lines.append(
            f"#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={i_peak},AVERAGE-BANDWIDTH={i_avg},"
            f'CODECS="{codec}",RESOLUTION={width}x{height},URI="{i}/{IFRAMES}"'
        )
    (out_dir / MASTER).write_text("\n".join(lines + iframe_lines) + "\n", encoding="utf-8")
    (out_dir / _FFMPEG_MASTER).unlink(missing_ok=True)
    return variants


def h264_video_bytes(out_dir: Path) -> int:
    """The bytes of a ladder's H.264 rungs, each rung's init segment and segments (its
    master's ``avc1`` variants): what a per-title ladder's probes predict."""
    variants, _ = read_master(out_dir / MASTER)
    total = 0
    for v in variants:
        if v.codecs.startswith("avc1"):
            media = read_media_playlist(out_dir / v.uri)
            total += media.init.stat().st_size
            total += sum(seg.stat().st_size for _, seg in media.segments)
    return total


def read_master(path: Path) -> tuple[list[Variant], str | None]:
    """The variants of a master playlist and its first audio rendition's URI (the
    default; None: none; ``read_renditions`` reads them all). I-frame streams are
    not variants (``read_iframe_streams``)."""
    variants, pending = [], None
    audio = next((r.uri for r in read_renditions(path)), None)
    for line in (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()):
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = _attributes(line.split(":", 1)[1])
        elif line and not line.startswith("#") and pending is not None:
            width, height = (int(x) for x in pending["RESOLUTION"].split("x"))
            variants.append(
                Variant(
                    line,
                    int(pending["BANDWIDTH"]),
                    int(pending.get("AVERAGE-BANDWIDTH", "0")),
                    pending.get("CODECS", ""),
                    width,
                    height,
                    pending.get("FRAME-RATE", ""),
                )
            )
            pending = None
    return variants, audio


@dataclass(frozen=True)
class Rendition:
    """An ``EXT-X-MEDIA`` rendition of a master playlist: audio or subtitles."""

    uri: str
    attributes: dict[str, str]


def read_renditions(path: Path, kind: str = "AUDIO") -> list[Rendition]:
    """The renditions of a master playlist of one TYPE ("AUDIO", "SUBTITLES"), in its
    order."""
    found = []
    for line in (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()):
        if line.startswith("#EXT-X-MEDIA:"):
            attributes = _attributes(line.split(":", 1)[1])
            if attributes.get("TYPE") == kind:
                found.append(Rendition(attributes.get("URI", ""), attributes))
    return found


def read_iframe_streams(path: Path) -> list[IFrameStream]:
    """The I-frame streams of a master playlist: each tag carries its own URI."""
    streams = []
    for line in (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()):
        if line.startswith("#EXT-X-I-FRAME-STREAM-INF:"):
            attrs = _attributes(line.split(":", 1)[1])
            width, height = (int(x) for x in attrs["RESOLUTION"].split("x"))
            streams.append(
                IFrameStream(
                    attrs["URI"],
                    int(attrs["BANDWIDTH"]),
                    int(attrs.get("AVERAGE-BANDWIDTH", "0")),
                    attrs.get("CODECS", ""),
                    width,
                    height,
                )
            )
    return streams


def _attributes(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', text)}


# --- The checks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RungDecode:
    """What decoding a rendition segment by segment found."""

    frames: int
    starts: tuple[float | None, ...]  # each segment's first video timestamp, None: no IDR
    late_s: float = 0.0  # the first frame's composition offset: shown this long after decode


def decode_rendition(media: MediaPlaylist) -> RungDecode:
    """Decode every frame of a video rendition, each segment on its own after its init
    segment (so each must start with an IDR and decode independently).

    A segment's start is the time a player shows its first frame: its ``tfdt`` plus the
    first sample's composition offset. libavformat's timestamps would not do: it shifts a
    track with negative composition offsets by that track's own reordering depth, which
    differs between rungs of one codec (x264 reorders deeper at 1080p).
    """
    frames, late_s = 0, 0.0
    starts: list[float | None] = []
    init = media.init.read_bytes()
    defaults = track_defaults(init)
    for _, seg in media.segments:
        data = seg.read_bytes()
        with open_fragmented(init + data) as f:
            stream: Any = f.streams.video[0]
            decoder = check_decoder(stream)
            idr: bool | None = None
            for packet in f.demux(stream):
                if packet.size == 0:
                    continue
                if idr is None:
                    idr = bool(packet.is_keyframe)
                frames += len(decoder.decode(packet))
            frames += len(decoder.decode(None))  # the decoder's delay
        found = fragments(data, defaults)
        if found and not starts:
            late_s = found[0].composition / defaults.timescale
        first = None
        if idr and found:
            first = round((found[0].start + found[0].composition) / defaults.timescale, 4)
        starts.append(first)
    return RungDecode(frames, tuple(starts), late_s)


def sound_held_s(media: MediaPlaylist) -> float:
    """Seconds of sound an audio rendition's segments decode to, each segment after its
    init segment: what a player plays, whatever the EXTINFs and sample durations say (a
    rendition padded twice over declared 12.06 s in both and held 24.2 s of sound)."""
    init = media.init.read_bytes()
    seconds = 0.0
    for _, seg in media.segments:
        with open_fragmented(init + seg.read_bytes()) as f:
            stream: Any = f.streams.audio[0]
            for packet in f.demux(stream):
                for frame in packet.decode():
                    seconds += frame.samples / frame.sample_rate if frame.sample_rate else 0.0
    return seconds


def open_fragmented(data: bytes) -> Any:
    """libavformat on an init segment and fragments of its track held in memory.

    The stream's parameters are in the init segment, so the probe reads no sample and,
    with every frame skipped, decodes none: left to itself it decodes a keyframe only to
    throw it away (4 ms at 1080p, once per segment and once per I-frame range).
    """
    return av.open(
        io.BytesIO(data),
        mode="r",
        format="mp4",
        options={"skip_frame": "all"},
        container_options={"probesize": "32"},
    )


def check_decoder(stream: Any) -> Any:
    """The decoder a check runs on a stream ``open_fragmented`` opened: every frame
    decoded (the probe's frame skipping stays with the probe), in one thread, with the
    file verification's options (``verify.DECODER_OPTIONS``), AV1 through dav1d.

    One thread because frame or slice threads shorten the wall time but add CPU seconds
    (2 % on a 1080p H.264 rung, up to 25 % on the small ones and on dav1d's), and a
    ladder's cost is counted in CPU seconds.
    """
    ctx: Any = stream.codec_context
    if ctx.name in AV1_DECODERS and ctx.name != DAV1D and DAV1D in av.codecs_available:
        dav1d: Any = av.CodecContext.create(DAV1D, "r")
        dav1d.extradata = ctx.extradata
        ctx = dav1d
    ctx.thread_type = "SLICE"
    ctx.thread_count = 1
    ctx.skip_frame = "DEFAULT"
    ctx.options = dict(DECODER_OPTIONS)
    return ctx


@dataclass(frozen=True)
class _Audio:
    peak: int = 0
    average: int = 0
    codec: str = ""


def check_ladder(out_dir: Path, *, length_s: float | None = None) -> list[str]:
    """Every reason the ladder under ``out_dir`` must not count (empty: it passes);
    ``length_s``: how long its source plays, when known.

    Each problem starts with the check's name: ``master``, ``decode``, ``idr-alignment``,
    ``presentation-start``, ``segment-duration``, ``bandwidth``, ``codecs``, ``resolution``,
    ``iframes``, ``audio-span``, ``subtitles``. Every audio rendition is measured: a variant's rates
    count the highest, its CODECS each codec.
    """
    try:
        variants, _ = read_master(out_dir / MASTER)
        renditions = read_renditions(out_dir / MASTER)
        captions = read_renditions(out_dir / MASTER, "SUBTITLES")
        iframe_streams = read_iframe_streams(out_dir / MASTER)
    except (OSError, ValueError, KeyError) as exc:
        return [f"master: unreadable: {exc}"]
    if not variants:
        return ["master: no variants"]
    problems = _rendition_problems(renditions)
    peaks, averages, codecs, sounds = [0], [0], [], []
    for r in renditions:
        try:
            media = read_media_playlist(out_dir / r.uri)
            peak, average = media.rates()
            codec = audio_codec_string(media.init)
            sounds.append((r.uri, sound_held_s(media) if length_s is not None else 0.0))
        except (OSError, ValueError, av.FFmpegError) as exc:
            return [f"decode: {r.uri}: {exc}"]
        peaks.append(peak)
        averages.append(average)
        codecs += [] if codec in codecs else [codec]
        problems += _duration_problems(media)
    audio = _Audio(max(peaks), max(averages), ",".join(codecs))
    decodes = []
    picture_s = 0.0
    for v in variants:
        try:
            media = read_media_playlist(out_dir / v.uri)
            decoded = decode_rendition(media)
            problems += _variant_problems(v, media, audio)
            problems += _start_problems(v.uri, decoded)
        except (OSError, ValueError, av.FFmpegError) as exc:
            problems.append(f"decode: {v.uri}: {exc}")
            continue
        decodes.append((v, decoded))
        picture_s = max(picture_s, media.duration_s)
    if length_s is not None:
        for uri, sound_s in sounds:
            problems += _audio_span_problems(uri, sound_s, max(picture_s, length_s))
    problems += _subtitle_problems(out_dir, captions, decodes)
    problems += _iframe_stream_problems(out_dir, variants, iframe_streams)
    return problems + _alignment_problems(decodes)


def _subtitle_problems(
    out_dir: Path, captions: list[Rendition], decodes: list[tuple[Variant, RungDecode]]
) -> list[str]:
    """Each subtitle rendition cut as the first rung is, every segment WebVTT."""
    if not captions or not decodes:
        return []
    cut = [d for d, _ in read_media_playlist(out_dir / decodes[0][0].uri).segments]
    return [p for r in captions for p in rendition_problems(out_dir / r.uri, cut)]


def _rendition_problems(renditions: list[Rendition]) -> list[str]:
    """The audio group as the HLS specification requires it: one default rendition, no
    two with one NAME, and each with a URI of its own."""
    if not renditions:
        return []
    problems = []
    defaults = sum(r.attributes.get("DEFAULT") == "YES" for r in renditions)
    if defaults != 1:
        problems.append(f"master: {defaults} default audio renditions, not 1")
    names = [r.attributes.get("NAME", "") for r in renditions]
    if "" in names or len({n.casefold() for n in names}) != len(names):
        problems.append(f"master: audio rendition names missing or repeated: {names}")
    uris = [r.uri for r in renditions]
    if "" in uris or len(set(uris)) != len(uris):
        problems.append(f"master: audio rendition URIs missing or repeated: {uris}")
    return problems


def _audio_span_problems(uri: str, sound_s: float, longest_s: float) -> list[str]:
    """The sound holds no more than its source lasts, or its picture where that is longer
    (a source whose header says less than it holds).

    More, and it holds silence that is not in the source, with everything after the
    silence out of step with the picture: an audio filter graph built again partway with
    a start offset in it (``from_zero``) pads from zero up to where it was built. Its
    playlist and its sample durations do not show it: its sound is decoded and counted
    (``sound_held_s``).
    """
    if sound_s <= longest_s + DURATION_TOLERANCE_S:
        return []
    return [
        f"audio-span: {uri} holds {sound_s:.2f} s of sound, its source lasts {longest_s:.2f} s:"
        " silence that is not in the source, and the sound out of step after it"
    ]


def _variant_problems(v: Variant, media: MediaPlaylist, audio: _Audio) -> list[str]:
    """What a variant declares against what its files hold."""
    problems = _duration_problems(media)
    codec, width, height = video_codec_string(media.init)
    expected = codec + (f",{audio.codec}" if audio.codec else "")
    if v.codecs != expected:
        problems.append(f"codecs: {v.uri} declares {v.codecs}, its init segments hold {expected}")
    if (v.width, v.height) != (width, height):
        held = f"{width}x{height}"
        problems.append(f"resolution: {v.uri} declares {v.width}x{v.height}, holds {held}")
    peak, avg = media.rates()
    problems += _rate_problems(v.uri, "peak", v.bandwidth, peak + audio.peak)
    problems += _rate_problems(v.uri, "average", v.average_bandwidth, avg + audio.average)
    return problems


def _start_problems(uri: str, decoded: RungDecode) -> list[str]:
    """A video rendition shows its first frame at its first decode time.

    Players that ignore edit lists (hls.js, which reads only ``tfdt`` and ``trun``) place
    each track by its own first presentation time. A first frame shown two B-frames after
    its decode time, with an edit list to take that back, puts the video that much after
    the audio whenever the audio loads first.
    """
    if decoded.late_s == 0:
        return []
    return [
        f"presentation-start: {uri}: its first frame is shown {decoded.late_s:.3f} s"
        " after its decode time (an edit list that hls.js ignores)"
    ]


def _alignment_problems(decodes: list[tuple[Variant, RungDecode]]) -> list[str]:
    """Every rung decodes the same frames as the first, and starts its segments with IDR
    frames at the same timestamps as the first rung of its codec group (encoders of other
    codecs delay their first picture differently)."""
    if not decodes:
        return []
    problems = []
    first_v, first = decodes[0]
    leaders: dict[str, tuple[Variant, RungDecode]] = {}
    for v, d in decodes:
        if d.frames == 0:
            problems.append(f"decode: {v.uri}: no frame decodes")
        elif d.frames != first.frames:
            problems.append(
                f"decode: {v.uri} decodes {d.frames} frames, {first_v.uri} {first.frames}"
            )
        lead_v, lead = leaders.setdefault(v.codecs.split(".", 1)[0], (v, d))
        if None in d.starts:
            problems.append(f"idr-alignment: {v.uri}: a segment does not start with an IDR frame")
        elif d.starts != lead.starts:
            problems.append(
                f"idr-alignment: {v.uri} segments start at other times than {lead_v.uri}'s"
            )
    return problems


def _iframe_stream_problems(
    out_dir: Path, variants: list[Variant], streams: list[IFrameStream]
) -> list[str]:
    """Every video variant has an I-frame stream in its own folder, and each holds what the
    master playlist declares of it."""
    problems = []
    beside = {Path(s.uri).parent: s for s in streams}
    for v in variants:
        stream = beside.get(Path(v.uri).parent)
        if stream is None:
            problems.append(f"iframes: {v.uri} has no I-frame stream in the master playlist")
            continue
        try:
            media = read_media_playlist(out_dir / v.uri)
            iframes = read_iframe_playlist(out_dir / stream.uri)
            problems += _iframe_problems(stream, iframes, media)
        except (OSError, ValueError) as exc:
            problems.append(f"iframes: {stream.uri}: {exc}")
    return problems


def _iframe_problems(
    stream: IFrameStream, iframes: IFramePlaylist, media: MediaPlaylist
) -> list[str]:
    """An I-frame playlist against its rendition and what the master declares: the same
    init segment, the same span, and every range a keyframe (``iframe_range_problem``)."""
    uri = stream.uri
    if iframes.init != media.init:
        return [f"iframes: {uri} maps {iframes.init.name}, its rendition {media.init.name}"]
    problems = []
    if abs(iframes.duration_s - media.duration_s) > IFRAME_SPAN_TOLERANCE_S:
        problems.append(
            f"iframes: {uri} spans {iframes.duration_s:.3f} s, "
            f"its rendition {media.duration_s:.3f} s"
        )
    problems += [
        f"iframes: {uri}: an I-frame lasts {f.duration_s:.3f} s, target {iframes.target_s} s"
        for f in iframes.frames
        if whole_seconds(f.duration_s) > iframes.target_s
    ]
    init = media.init.read_bytes()
    problems += [
        f"iframes: {uri}: {problem}"
        for f in iframes.frames
        if (problem := iframe_range_problem(init, f))
    ]
    codec, width, height = video_codec_string(media.init)
    if stream.codecs != codec:
        problems.append(f"codecs: {uri} declares {stream.codecs}, its init segment holds {codec}")
    if (stream.width, stream.height) != (width, height):
        held = f"{width}x{height}"
        problems.append(f"resolution: {uri} declares {stream.width}x{stream.height}, holds {held}")
    peak, avg = iframes.rates()
    problems += _rate_problems(uri, "peak", stream.bandwidth, peak)
    problems += _rate_problems(uri, "average", stream.average_bandwidth, avg)
    return problems


def iframe_range_problem(init: bytes, frame: IFrame) -> str | None:
    """Why one I-frame entry is not a keyframe a player can fetch on its own (None: it is):
    its range must lie inside its file, begin at a ``moof`` box, and, after the init
    segment, decode to a keyframe."""
    where = f"{frame.segment.name}@{frame.offset}"
    size = frame.segment.stat().st_size
    if frame.offset < 0 or frame.length < 8 or frame.offset + frame.length > size:
        return f"{where} length {frame.length} lies outside the file ({size} bytes)"
    with frame.segment.open("rb") as f:
        f.seek(frame.offset)
        data = f.read(frame.length)
    if data[4:8] != b"moof":
        return f"{where} does not begin at a moof box"
    try:
        keyframe = decodes_as_keyframe(init, data)
    except av.FFmpegError as exc:
        return f"{where} does not decode: {exc}"
    return None if keyframe else f"{where} does not decode as a keyframe"


def decodes_as_keyframe(init: bytes, data: bytes) -> bool:
    """Whether the first frame of ``data`` (fragments of the track ``init`` describes, the
    last one possibly cut after its first sample) is a keyframe that decodes on its own."""
    with open_fragmented(init + data) as f:
        stream: Any = f.streams.video[0]
        decoder = check_decoder(stream)
        for packet in f.demux(stream):
            if packet.size == 0:
                continue
            if not packet.is_keyframe:
                return False
            frames = [*decoder.decode(packet), *decoder.decode(None)]
            return bool(frames) and bool(frames[0].key_frame)
    return False


def _duration_problems(media: MediaPlaylist) -> list[str]:
    # RFC 8216 4.3.3.1: each EXTINF, rounded to the nearest integer, at most the target.
    name = media.path.parent.name
    return [
        f"segment-duration: {name}/{seg.name} lasts {d:.3f} s, target {media.target_s} s"
        for d, seg in media.segments
        if whole_seconds(d) > media.target_s or media.target_s > SEGMENT_S
    ]


def _rate_problems(uri: str, what: str, declared: int, measured: int) -> list[str]:
    if measured and abs(declared - measured) > BANDWIDTH_TOLERANCE * measured:
        return [f"bandwidth: {uri} declares {what} {declared} b/s, measures {measured} b/s"]
    return []


def _make_subtitles(
    ffmpeg: str,
    src: Path,
    out_dir: Path,
    plan: LadderPlan,
    *,
    stop: threading.Event,
    stall_timeout_s: float,
) -> list[tuple[LadderSubtitle, str]]:
    """Each planned subtitle rendition that gives a cue, written in its folder after the
    audio ones and cut as the first rung is; with its URI."""
    if not plan.subtitles:
        return []
    first = out_dir / "0" / "index.m3u8"
    fit_target_duration(first)
    rung = read_media_playlist(first)
    cut = [d for d, _ in rung.segments]
    start = len(plan.rungs) * len(plan.groups) + len(plan.audio)
    folders = [out_dir / str(start + k) for k in range(len(plan.subtitles))]
    made = make_renditions(
        ffmpeg,
        src,
        [(sub.index, folder) for sub, folder in zip(plan.subtitles, folders, strict=True)],
        extinfs=cut,
        target_s=rung.target_s,
        stop=stop,
        stall_timeout_s=stall_timeout_s,
    )
    return [
        (sub, f"{folder.name}/index.m3u8")
        for sub, folder, ok in zip(plan.subtitles, folders, made, strict=True)
        if ok
    ]


def ladder_duration_s(out_dir: Path, plan: LadderPlan) -> float:
    """How long the ladder in ``out_dir`` lasts: its longest rendition's EXTINFs (a
    source's audio may run on past its video, as its declared length does)."""
    count = len(plan.rungs) * len(plan.groups) + len(plan.audio)
    return max(
        (read_media_playlist(out_dir / str(i) / "index.m3u8").duration_s for i in range(count)),
        default=0.0,
    )


def build_ladder(
    ffmpeg: str,
    src: Path,
    out_dir: Path,
    info: MediaInfo,
    *,
    threads: int | None = None,
    stop: threading.Event | None = None,
    stall_timeout_s: float = 300.0,
    groups: tuple[str, ...] = (),
    rungs: tuple[Rung, ...] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_check: Callable[[], None] | None = None,
    preset: str | None = None,
) -> list[Variant]:
    """Encode, measure and check the ladder of ``src`` into the empty folder ``out_dir``,
    with these codec groups (``GROUPS``) beside H.264, at ``rungs`` when given (a
    per-title ladder), else at the fixed ladder's. ``on_progress`` hears the encode's
    progress; ``on_check`` is called when the encode is done and the checks begin;
    ``preset``: the H.264 and HEVC groups' preset (``LadderPlan.preset``).

    Raises ``PermanentError`` when the source has no video or is cut short (its packets
    end before the length its header declares, so every rung would too), and
    ``VerificationError`` naming the first failed check when the ladder does not pass
    them all.
    """
    video = info.main_video
    rate = ladder_rate(src, video) if video is not None else None
    plan = plan_ladder(info, groups, rungs, fps=rate, preset=preset)
    if plan is None:
        raise PermanentError("no video stream")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ladder_args(ffmpeg, src, out_dir, plan, threads=threads)
    run_ffmpeg(
        args,
        on_progress=on_progress,
        stop=stop or threading.Event(),
        stall_timeout_s=stall_timeout_s,
        output=out_dir,
    )
    if on_check is not None:
        on_check()
    # ffmpeg ends a source cut short as if it were whole, exit 0 and every rung short.
    raise_if_source_truncated(info, src, ladder_duration_s(out_dir, plan))
    subtitles = _make_subtitles(
        ffmpeg, src, out_dir, plan, stop=stop or threading.Event(), stall_timeout_s=stall_timeout_s
    )
    variants = write_master(out_dir, plan, subtitles)
    problems = check_ladder(out_dir, length_s=info.duration_s)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VerificationError(f"ladder rejected: {problems[0]}{more}")
    return variants
