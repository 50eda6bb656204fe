"""Choosing the CRF for a pool's quality target: encode a few samples of the source at a
few CRFs, score each against the sample it was made from, and keep the highest CRF (the
smallest output) whose score (VMAF or XPSNR, the target's metric) still reaches the
target; its predicted size must fit the pool's size limit, or the source keeps its
original.

The parts, each testable alone:

- ``sample_plan``: where the samples are (pure): ``ceil(duration / 12 min)`` samples of
  20 s, at least 3 for sources over 2 minutes, spread evenly and snapped to keyframes;
  the whole file when the samples would cover 85 % of it anyway.
- ``cut_sample``: a sample is cut by stream copy, ``-ss`` before ``-i`` (see its docstring
  for why not a lossless intermediate). Where keyframes are too sparse to cut samples at
  their places (``SamplePlan.displaced``), each probe reads its places from the source
  itself instead, decoded from the keyframe before each (``SamplePlan.seek``).
- ``search``: the bracket search on integer CRFs (pure), at most 6 probes.
- ``find_crf``: the above on a real file, every probe cached on disk by what decides its
  result, so a re-run, or a second pool with the same plan, encodes nothing.

A scoring failure raises ``ScoringError`` out of all of this: it is never read as a CRF
that did not reach the target.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from hevcq.cores import machine_cores
from hevcq.errors import PermanentError
from hevcq.formats import VIDEO_CODECS
from hevcq.media.demuxers import open_input
from hevcq.media.ffargs import Window, audio_kbps, build_args
from hevcq.media.ffmpeg import Watch, run_ffmpeg
from hevcq.media.ladder import check_decoder
from hevcq.media.model import EncodePlan, MediaInfo
from hevcq.media.probe import AV_TIME_BASE
from hevcq.media.progress import Progress
from hevcq.media.quality import ScoringError, measure, shown, shown_under
from hevcq.pools import Metric

MAX_PROBES = 6
# Of a probe's CPU, the share its encodes take; scoring takes the rest. Measured on a
# 10-minute source: 33.1 s encoding against 15.1 s scoring for three probes
# (docs/benchmarks.md, "Quality targets on a corpus").
PROBE_ENCODE_SHARE = 0.7
CRF_FLOOR = 10  # the lowest CRF tried: below it the output is near lossless and huge
# The search works on the distance to a perfect score, ln(100 + CEILING_SLACK - VMAF),
# which grows about linearly with the CRF where VMAF itself bends (it flattens out as it
# nears 100): x265's and x264's distance grows by about 15 % per CRF step around VMAF
# 85-95, the slope assumed until two probes on one side measure it.
CEILING_SLACK = 0.5
DEFAULT_SLOPE = 0.15
FLAT_SLOPE = 0.01  # less than this per step: the curve is flat there, step out faster
# XPSNR is in dB, already about linear in the CRF (as PSNR is: a CRF step is a fixed
# ratio of quantiser step): the search works on the dB themselves. About 0.67 dB per CRF
# step on the end-to-end test clip; 0.5 is assumed until two probes measure it.
XPSNR_SLOPE = 0.5
XPSNR_FLAT_SLOPE = 0.05
# Bumped when what a cached probe means changes (how samples are cut or scored). 2: an
# MP4 or QuickTime source's samples are cut to MP4 (``sample_format``). 3: a Matroska
# sample starts at its own keyframe, not the one before (``seek_slack_s``). 4: a damaged
# source is told apart before any probe is measured (``refuse_damaged``), so none is kept.
# 5: a source whose timestamps jump is put on one clock first (``splice.straighten``), and
# a picture that changes size or format partway is scored whole (``quality._run_graph``).
# 6: an AVI source is copied whole before it is cut (``_UNSEEKABLE``): its cuts ran from
# the wrong place. 7: both sides of a score share a millisecond clock (``quality._align``):
# a probe in Matroska of a 120 fps source scored low. 8: a scan keeps the picture's span,
# and samples of a file whose picture ends early are placed within it.
CACHE_VERSION = 8
# A picture ending this long before its file is its own length (``SourceScan.picture``);
# closer than that, the file's length stands (sound a few frames longer is common).
PICTURE_SHORTER_S = 1.0
# ``-ss`` just past a keyframe: seeking lands on the keyframe at or before the time asked,
# so a start rounded a hair below its keyframe would otherwise seek a whole GOP back.
SEEK_SLACK_S = 0.001
# What ffmpeg takes off a seek's time, in any container but MP4 and QuickTime, when the
# video has B-frames (``seek_slack_s``).
DTS_SEEK_MARGIN_S = 3 / 23


@dataclass(frozen=True)
class SampleRules:
    """How many samples, how long, and when the whole file is used instead."""

    length_s: float = 20.0
    every_s: float = 12 * 60.0  # one sample per this much of the source
    min_count: int = 3
    min_count_above_s: float = 120.0  # sources longer than this take at least min_count
    whole_share: float = 0.85  # samples that would cover this share: use the whole file
    # A sample ends at the first keyframe after its length, unless that would make it
    # longer than this many lengths (sparse keyframes): then it ends mid-GOP.
    max_stretch: float = 2.0


Span = tuple[float, float]  # (start, length) in seconds from the file's start


@dataclass(frozen=True)
class SamplePlan:
    """The samples a search encodes: ``whole`` uses the source itself. ``displaced``: a
    sample could not start near the place it was planned for (``sample_plan``), and
    ``planned`` holds the spans as they were placed. ``seek``: the spans are read from
    the source itself, each decoded from the keyframe before it (``ffargs.window_args``),
    not cut from it."""

    whole: bool
    spans: tuple[Span, ...] = ()
    displaced: bool = False
    planned: tuple[Span, ...] = ()
    seek: bool = False

    @property
    def seconds(self) -> float:
        """Seconds of source the samples cover (0 for the whole file: not known here)."""
        return sum(length for _, length in self.spans)


def sample_plan(
    duration_s: float | None,
    keyframes: Sequence[float] | None = None,
    rules: SampleRules = SampleRules(),
) -> SamplePlan:
    """Where to take samples of a source of this length (pure).

    ``ceil(duration / every_s)`` samples of ``length_s``, at least ``min_count`` for
    sources over ``min_count_above_s``, centred at even intervals (never at the very start
    or end, where intros, credits and black frames are unlike the rest). With the
    source's ``keyframes`` (seconds from the start, any order), each sample starts on the
    keyframe at or before its place, which is where a stream copy starts anyway, and ends
    on the first keyframe after its length, so that it holds whole GOPs; samples that come
    to overlap are merged. When the samples would cover ``whole_share`` of the source (or
    its length is unknown), the whole file is used: cutting would save little and could
    only make the prediction worse.

    A sample whose snapped span no longer holds the middle of the span planned for it
    stands for a place it does not show: with keyframes a minute or more apart (a
    browser's or a screen recorder's), every sample of a minute-long clip snapped to its
    first keyframe, and a search on a still opening chose CRF 42 for the noisy scene that
    followed. Such a plan says ``displaced`` and keeps the spans as placed in
    ``planned``: the search reads those by seeking (``find_crf``); a per-title ladder
    first places its samples by the keyframes it has (``pertitle.stratified_spans``).
    """
    if not duration_s or duration_s <= 0:
        return SamplePlan(whole=True)
    count = math.ceil(duration_s / rules.every_s)
    if duration_s > rules.min_count_above_s:
        count = max(count, rules.min_count)
    if count * rules.length_s >= rules.whole_share * duration_s:
        return SamplePlan(whole=True)
    spans = [_placed(duration_s, i, count, rules.length_s) for i in range(count)]
    displaced = False
    if keyframes:
        marks = sorted(set(keyframes))
        planned, spans = spans, [_snapped(span, marks, duration_s, rules) for span in spans]
        displaced = any(
            not begin <= start + length / 2 <= begin + got
            for (start, length), (begin, got) in zip(planned, spans, strict=True)
        )
    merged = _merged(spans)
    if sum(length for _, length in merged) >= rules.whole_share * duration_s:
        return SamplePlan(whole=True)
    rounded = _rounded(merged)
    if not displaced:
        return SamplePlan(whole=False, spans=rounded)
    return SamplePlan(whole=False, spans=rounded, displaced=True, planned=_rounded(planned))


def _rounded(spans: Sequence[Span]) -> tuple[Span, ...]:
    return tuple((round(s, 3), round(n, 3)) for s, n in spans)


def _placed(duration_s: float, i: int, count: int, length_s: float) -> Span:
    centre = duration_s * (i + 1) / (count + 1)
    start = min(max(0.0, centre - length_s / 2), duration_s - length_s)
    return start, length_s


def _snapped(span: Span, marks: list[float], duration_s: float, rules: SampleRules) -> Span:
    start, length = span
    at = bisect.bisect_right(marks, start + SEEK_SLACK_S) - 1
    begin = marks[at] if at >= 0 else 0.0
    after = bisect.bisect_left(marks, begin + length)
    end = marks[after] if after < len(marks) else duration_s
    if end - begin > rules.max_stretch * length:
        end = min(begin + length, duration_s)
    return begin, end - begin


def _merged(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for start, length in sorted(spans):
        if out and start < out[-1][0] + out[-1][1]:
            prev_start, prev_length = out[-1]
            end = max(prev_start + prev_length, start + length)
            out[-1] = (prev_start, end - prev_start)
        else:
            out.append((start, length))
    return out


# --- the search --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """How the search reads a metric: ``distance`` of a score from a perfect one grows
    about linearly with the CRF; ``slope`` is the growth per CRF step assumed before two
    probes measure it, ``flat`` the growth below which the curve counts as flat."""

    distance: Callable[[float], float]
    slope: float
    flat: float


def _vmaf_distance(vmaf: float) -> float:
    return math.log(100.0 + CEILING_SLACK - min(vmaf, 100.0))


def _xpsnr_distance(xpsnr: float) -> float:
    return -xpsnr


SCALES: dict[str, Scale] = {
    "vmaf": Scale(_vmaf_distance, DEFAULT_SLOPE, FLAT_SLOPE),
    "xpsnr": Scale(_xpsnr_distance, XPSNR_SLOPE, XPSNR_FLAT_SLOPE),
}


@dataclass(frozen=True)
class ProbeResult:
    """One CRF tried: its score on the samples (in the search's metric) and the whole
    output's predicted size."""

    crf: int
    score: float
    predicted_bytes: int = 0
    cached: bool = False  # read from the cache: nothing was encoded for it


@dataclass(frozen=True)
class Bracket:
    """What a search found: ``crf`` is the highest CRF known to reach the target (None:
    none did), ``probes`` every CRF tried, in order."""

    crf: int | None
    probes: tuple[ProbeResult, ...]

    @property
    def chosen(self) -> ProbeResult | None:
        """The probe of the CRF found."""
        return next((p for p in self.probes if p.crf == self.crf), None)


def search(
    probe: Callable[[int], ProbeResult],
    target: float,
    lo: int,
    hi: int,
    *,
    start: int | None = None,
    max_probes: int = MAX_PROBES,
    metric: Metric = "vmaf",
    too_big: Callable[[ProbeResult], bool] | None = None,
) -> Bracket:
    """The highest CRF in ``lo..hi`` whose score in ``metric`` reaches ``target``, in at
    most ``max_probes`` calls of ``probe`` (pure apart from them).

    The score falls as the CRF rises, so the answer sits between the highest CRF that passed
    and the lowest that failed. The first probe is ``start`` (the pool's own CRF, a good
    guess); until both sides are known, the next steps out along the slope measured by
    the last two probes on that side (the metric's ``Scale.slope`` with one, doubling the
    step where the curve is flat); once bracketed, it interpolates linearly to where the curve
    crosses the target, never on a CRF already bracketed. It stops when the bracket is
    one step wide, at ``lo`` failing or ``hi`` passing, or when the probes are spent; the
    answer is then the highest passing CRF below every failing one, so a noisy curve
    gives a CRF that was measured to pass, never an extrapolated one.

    ``too_big`` ends the search at a probe that fails the target and is already larger
    than allowed: every CRF that could pass lies below it and comes out larger still, so
    no further probe can change the outcome (the source keeps its original).
    """
    lo, hi = min(lo, hi), max(lo, hi)
    first = (lo + hi) // 2 if start is None else min(max(start, lo), hi)
    probes: list[ProbeResult] = []
    crf: int | None = first
    while crf is not None and len(probes) < max_probes:
        probes.append(probe(crf))
        if too_big is not None and probes[-1].score < target and too_big(probes[-1]):
            break
        crf = next_crf(probes, target, lo, hi, metric)
        if crf is not None and any(p.crf == crf for p in probes):
            break  # nothing new to learn (a non-monotone curve)
    passing, _ = _bracket(probes, target)
    return Bracket(passing.crf if passing else None, tuple(probes))


def _bracket(
    probes: Sequence[ProbeResult], target: float
) -> tuple[ProbeResult | None, ProbeResult | None]:
    """The highest passing probe below every failing one, and the lowest failing one."""
    failing = [p for p in probes if p.score < target]
    low_fail = min(failing, key=lambda p: p.crf, default=None)
    passing = [
        p for p in probes if p.score >= target and (low_fail is None or p.crf < low_fail.crf)
    ]
    return max(passing, key=lambda p: p.crf, default=None), low_fail


def next_crf(
    probes: Sequence[ProbeResult], target: float, lo: int, hi: int, metric: Metric = "vmaf"
) -> int | None:
    """The CRF to try after ``probes``; None when the answer is known (pure)."""
    scale = SCALES[metric]
    good, bad = _bracket(probes, target)
    if good is not None and bad is not None:
        if bad.crf - good.crf <= 1:
            return None
        d = scale.distance
        y_good, y_bad, y_target = d(good.score), d(bad.score), d(target)
        at = good.crf + (y_target - y_good) * (bad.crf - good.crf) / (y_bad - y_good)
        return min(max(round(at), good.crf + 1), bad.crf - 1)
    if good is not None:
        if good.crf >= hi:
            return None
        side = [p for p in probes if p.score >= target]
        return min(good.crf + _step(good, side, target, scale), hi)
    if bad is None or bad.crf <= lo:
        return None
    side = [p for p in probes if p.score < target]
    return max(bad.crf - _step(bad, side, target, scale), lo)


def _step(edge: ProbeResult, side: Sequence[ProbeResult], target: float, scale: Scale) -> int:
    """How far past ``edge`` to look for the target, from the slope of the two probes
    nearest it on its side of the target (all on one side: none is bracketed yet)."""
    others = sorted((p for p in side if p.crf != edge.crf), key=lambda p: abs(p.crf - edge.crf))
    d = scale.distance
    gap = abs(d(edge.score) - d(target))
    if not others:
        return max(1, round(gap / scale.slope))
    near = others[0]
    span = abs(edge.crf - near.crf)
    # the distance to a perfect score gained per CRF step
    slope = (d(edge.score) - d(near.score)) / (edge.crf - near.crf)
    if slope < scale.flat:
        return 2 * span  # flat (or noisy) here: step out twice as far as last time
    return max(1, round(gap / slope))


# --- predicting the size -----------------------------------------------------------------


def predict_bytes(
    sample_video_bytes: int,
    sample_video_s: float,
    duration_s: float,
    other_bytes: int,
) -> int:
    """The whole output's size from its samples.

    Assumes: the samples' video bit rate is the whole video's (they are spread evenly
    through it, so a source that changes its character along its length predicts worse
    with fewer samples); the rest of the output is ``other_bytes`` (``kept_bytes``); and
    the container's own bytes are added by the caller (``Measured.header_bytes``).
    The rate is video bytes per second of sample, times the source's duration: the
    samples' share of the source's bytes would be wrong wherever the source's own bit
    rate varies, and wrong again by the audio a video-only sample leaves out.
    """
    if sample_video_s <= 0:
        return other_bytes
    return round(sample_video_bytes / sample_video_s * duration_s) + other_bytes


def kept_bytes(
    plan: EncodePlan,
    stream_bytes: dict[int, int],
    duration_s: float,
    stream_s: dict[int, float] | None = None,
) -> int:
    """What an output holds beside its video: each audio stream copied at its size in the
    source, or re-encoded at its bit rate (``ffargs.audio_kbps``) for as long as it lasts
    (``stream_s``, where the scan read it, else ``duration_s``); subtitles, cover art and
    further video streams copied at their size in the source. Attachments (fonts) are
    left out: a few hundred kilobytes in the rare file with any."""
    total = 0
    lengths = stream_s or {}
    for index, mode in plan.audio:
        if mode == "copy":
            total += stream_bytes.get(index, 0)
        else:
            seconds = lengths.get(index, duration_s)
            total += round(audio_kbps(plan, index) * 1000 / 8 * seconds)
    total += sum(stream_bytes.get(index, 0) for index, _ in plan.subtitles)
    total += sum(stream_bytes.get(cover.index, 0) for cover in plan.covers)  # as they are
    total += sum(stream_bytes.get(index, 0) for index in plan.extra_video)  # likewise
    return total


# --- the source, its samples, one probe --------------------------------------------------


@dataclass(frozen=True)
class SourceScan:
    """One pass over the source's packets (nothing decoded): where its main video's
    keyframes are, and how many bytes each stream holds."""

    keyframes: tuple[float, ...]
    stream_bytes: dict[int, int]
    # The main video's bytes from each keyframe to the next (aligned with ``keyframes``):
    # how much the source spent on each stretch, a measure of how hard it is to encode.
    # Empty when not read (a scan cached by an older release).
    gop_bytes: tuple[int, ...] = ()
    # When the main video's first frame starts and its last one ends (seconds from the
    # file's start); None when its packets carry no times.
    video_span: Span | None = None
    # How long each stream lasts, from its first packet's start to its last one's end,
    # for streams whose packets carry times: a file's declared length may be a subtitle's
    # (a cue left at 20 minutes on a 6 s clip), which is no measure of its sound.
    stream_s: dict[int, float] = field(default_factory=dict)

    def picture(self, duration_s: float) -> Span:
        """Where the picture lies in a file lasting ``duration_s`` (0: unknown), as
        (start, length): the whole file, unless the picture ends well before it (sound
        that runs on after a short clip, a still with a long sound track), then the
        picture's own span."""
        if self.video_span is not None and duration_s:
            start, end = self.video_span
            if end <= duration_s - PICTURE_SHORTER_S:
                return start, end - start
        return 0.0, duration_s


def picture_samples(
    scan: SourceScan, duration_s: float | None, rules: SampleRules
) -> tuple[SamplePlan, Span]:
    """``sample_plan`` over the picture (``SourceScan.picture``), in seconds from the
    file's start, and the picture's span (pure)."""
    start, picture = scan.picture(duration_s or 0.0)
    if not picture:
        return sample_plan(duration_s, scan.keyframes, rules), (start, picture)
    plan = sample_plan(picture, [k - start for k in scan.keyframes], rules)
    if start and not plan.whole:
        spans = tuple((round(s + start, 3), n) for s, n in plan.spans)
        planned = tuple((round(s + start, 3), n) for s, n in plan.planned)
        plan = dataclasses.replace(plan, spans=spans, planned=planned)
    return plan, (start, picture)


def scan_source(path: Path, video_index: int) -> SourceScan:
    """Read every packet's header once: keyframe times of ``video_index`` (seconds from
    the file's start, as ``-ss`` counts), the bytes of each stream, and the main video's
    bytes between consecutive keyframes."""
    sizes: dict[int, int] = {}
    gops = GopBytes()
    spans: dict[int, Span] = {}  # (first start, last end) of each stream's packets
    try:
        with open_input(str(path)) as f:
            origin = (f.start_time or 0) / AV_TIME_BASE
            for packet in f.demux():
                if not packet.size:
                    continue  # a demuxer's flush packet
                index = packet.stream.index
                sizes[index] = sizes.get(index, 0) + packet.size
                t = None
                if packet.pts is not None and packet.time_base is not None:
                    t = float(packet.pts * packet.time_base) - origin
                    end = t + float((packet.duration or 0) * packet.time_base)
                    was = spans.get(index)
                    spans[index] = (t, end) if was is None else (min(was[0], t), max(was[1], end))
                if index == video_index:
                    gops.add(packet.size, keyframe_at=t if packet.is_keyframe else None)
    except av.FFmpegError as exc:
        raise PermanentError(f"unreadable or truncated: {exc.strerror or exc}") from exc
    keyframes, per_gop = gops.result()
    lengths = {i: round(end - start, 3) for i, (start, end) in spans.items()}
    return SourceScan(keyframes, sizes, per_gop, spans.get(video_index), lengths)


class GopBytes:
    """The video's bytes from each keyframe to the next, counted packet by packet in the
    order they are stored (decode order), without keeping the packets: a packet belongs to
    the last keyframe before it in that order, packets before the first one to the first.
    Keyframes at the same time are one."""

    def __init__(self) -> None:
        self._gops: dict[float, int] = {}
        self._current: float | None = None
        self._before_first = 0

    def add(self, size: int, *, keyframe_at: float | None = None) -> None:
        """One packet of ``size`` bytes; ``keyframe_at``: its time, if it is a keyframe."""
        if keyframe_at is not None:
            self._current = keyframe_at
            self._gops.setdefault(keyframe_at, 0)
        if self._current is None:
            self._before_first += size
        else:
            self._gops[self._current] += size

    def result(self) -> tuple[tuple[float, ...], tuple[int, ...]]:
        """The keyframe times, in order, and the bytes of each one's stretch."""
        keyframes = tuple(sorted(self._gops))
        per_gop = [self._gops[t] for t in keyframes]
        if per_gop:
            per_gop[0] += self._before_first
        return keyframes, tuple(per_gop)


# Sources whose samples are cut to MP4 rather than Matroska (names of ffmpeg's demuxer).
_MP4_FAMILY = frozenset({"mov", "mp4"})
# Containers whose index gives keyframes' presentation times (``seek_slack_s``).
_PTS_INDEXED = frozenset({"matroska", "webm"})
# Containers whose index takes a seek to the keyframe before a time, which reading a
# window in place needs (``SamplePlan.seek``): the others are copied first. MPEG-TS and
# program streams are searched by timestamp and landed mid-GOP: with one keyframe in a
# recording, a window 6 s in decoded to nothing.
_KEYFRAME_INDEXED = _MP4_FAMILY | _PTS_INDEXED
# Containers ffmpeg cannot seek in to cut a sample (demuxer names): see ``cut_samples``.
# FLV has no index. AVI has one, but a seek into it landed nowhere near the keyframe asked
# ("could not seek to position 0.041", then a copy from the file's start), and its
# packets carry no presentation times to cut by.
_UNSEEKABLE = frozenset({"flv", "live_flv", "avi"})
# Video codecs an MP4 file holds. A QuickTime source's other codecs (ProRes, DNxHD, DV,
# Animation...) are cut to QuickTime, the same muxer with the same clock.
_MP4_CODECS = frozenset({"h264", "hevc", "av1", "vp9", "mpeg4", "mpeg2video", "mjpeg"})


def sample_format(src: Path, video_index: int | None = None) -> str:
    """The container a sample of ``src`` (its video stream ``video_index``, by default the
    first) is cut into: MP4 for an MP4 or QuickTime source, so that the sample keeps the
    source's clock (its timescale, and with it the frame rate the encoder is told), or
    QuickTime when MP4 cannot hold its codec (a ProRes master); else Matroska, which takes
    any codec.

    A Matroska sample counts time in 1 ms ticks. A phone clip's uneven frame times do not
    fit on the rate guessed from those, and the encoder's rate control follows that rate:
    a dropped-frame clip's probes predicted 9.5 % more bytes than its full encode made, and
    0.9 VMAF too much; cut to MP4, 1.2 % fewer and 0.07 too much.
    """
    try:
        with open_input(str(src)) as f:
            names = set(f.format.name.split(","))
            videos = [s for s in f.streams.video if video_index in (None, s.index)]
            # the codec, not the decoder PyAV reads it with (libdav1d for AV1)
            codec = videos[0].codec_context.codec.canonical_name if videos else ""
    except av.FFmpegError:
        return "matroska"  # the cut itself says what is wrong with it
    if not names & _MP4_FAMILY:
        return "matroska"
    return "mp4" if codec in _MP4_CODECS else "mov"


def cut_sample(
    ffmpeg: str,
    src: Path,
    span: Span,
    video_index: int,
    dst: Path,
    *,
    stop: threading.Event,
    stall_timeout_s: float,
    fmt: str | None = None,
    slack: float | None = None,
) -> Path:
    """Copy the source's main video over ``span`` into ``dst`` (in ``fmt``, by default
    ``sample_format``, seeking ``slack`` past its start, by default ``seek_slack_s``: a
    caller cutting many samples of one source passes both once read), unchanged.

    Stream copy with ``-ss`` before ``-i``: ffmpeg seeks to the keyframe at or before the
    start and copies packets from there, so a span that starts on a keyframe (as
    ``sample_plan`` places them) is cut exactly, in milliseconds, with no decoding and a
    sample no bigger than that stretch of the source. Decoding the span into a lossless
    intermediate instead would give the encoder the very same pictures, at the cost of a
    decode and a file several times the source's size for every sample (FFV1 at 1080p is
    about 20 times a typical H.264). What a copy can get wrong (a GOP open at the cut,
    timestamps that do not start at zero, a variable frame rate) affects both sides of a
    probe alike: the copied sample is both what is encoded and what the encode is scored
    against, and scoring aligns the two sides' timing.
    """
    start, length = span
    # genpts: an MPEG program stream leaves some packets without a presentation time,
    # which no muxer takes; it is filled in from the decode times (the others have one).
    head = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-fflags", "+genpts"]
    slack = seek_slack_s(src) if slack is None else slack
    seek = ["-ss", f"{start + slack:.3f}", "-t", f"{length - slack - SEEK_SLACK_S:.3f}"]
    source = ["-i", f"file:{src}", "-map", f"0:{video_index}", "-c", "copy"]
    tail = ["-avoid_negative_ts", "make_zero", "-f", fmt or sample_format(src)]
    tail += ["-progress", "pipe:1", "-nostats", f"file:{dst}"]
    args = [*head, *seek, *source, *tail]
    run_ffmpeg(args, on_progress=None, stop=stop, stall_timeout_s=stall_timeout_s, output=dst)
    if not holds_video(dst):
        raise PermanentError(f"no video could be cut from the source at {start:.3f} s")
    return dst


def seek_slack_s(src: Path) -> float:
    """How far past a keyframe's time ``-ss`` must ask for ffmpeg to seek to that
    keyframe in ``src``, not the one before it.

    ffmpeg seeks every container but MP4 and QuickTime ``DTS_SEEK_MARGIN_S`` before the
    time asked when the video has B-frames, to make up for decode times that run ahead of
    presentation times. That suits an MPEG stream, searched by decode time, but Matroska
    finds keyframes by their presentation times in its index: asked for a keyframe's
    time, it landed on the keyframe before, and a sample of a source with keyframes 10 s
    apart ran 10 s longer than planned.
    """
    if _container_names(src) & _PTS_INDEXED:
        return SEEK_SLACK_S + DTS_SEEK_MARGIN_S
    return SEEK_SLACK_S


def seeks_by_keyframe(src: Path) -> bool:
    """Whether ffmpeg seeks in ``src`` by an index of its keyframes, which reading a
    window in place needs (``ffargs.window_args``); else its video is read from a copy
    (``video_copy``)."""
    return bool(_container_names(src) & _KEYFRAME_INDEXED)


def video_copy(
    ffmpeg: str,
    src: Path,
    video_index: int,
    dst: Path,
    *,
    stop: threading.Event,
    stall_timeout_s: float,
) -> Path:
    """Copy the main video of ``src`` whole, unchanged, into Matroska at ``dst`` (its
    stream 0), presentation times filled in where the source has none: one pass over the
    file, nothing decoded, and a file ffmpeg seeks in by its index."""
    args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-fflags", "+genpts"]
    args += ["-i", f"file:{src}", "-map", f"0:{video_index}", "-c", "copy", "-f", "matroska"]
    args += ["-progress", "pipe:1", "-nostats", f"file:{dst}"]
    try:
        run_ffmpeg(args, on_progress=None, stop=stop, stall_timeout_s=stall_timeout_s)
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    return dst


def cut_samples(
    ffmpeg: str,
    src: Path,
    spans: Sequence[Span],
    video_index: int,
    scratch: Path,
    *,
    prefix: str,
    stop: threading.Event,
    stall_timeout_s: float,
) -> list[Path]:
    """Cut each of ``spans`` of ``src`` into ``scratch/<prefix>-<n>`` (``cut_sample``);
    when one cannot be cut, none is left behind.

    A source in a container ffmpeg cannot seek in (FLV: with no index, a seek starts
    from the file's start and the sample runs from there; AVI, ``_UNSEEKABLE``) is first
    copied whole into Matroska beside them, which can, and removed once they are cut: one
    pass over the file, no decoding. Its timestamps are the source's (presentation times
    filled in from the decode times where the container has none, as PyAV reads them for
    the keyframe scan), so the spans hold.
    """
    made: list[Path] = []
    copy = scratch / f"{prefix}-seekable"
    try:
        fmt = sample_format(src, video_index)
        cut_from = src
        if _container_names(src) & _UNSEEKABLE:
            args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
            args += ["-fflags", "+genpts"]  # AVI's packets have decode times only
            args += ["-i", f"file:{src}", "-map", "0", "-c", "copy", "-f", "matroska"]
            args += ["-progress", "pipe:1", "-nostats", f"file:{copy}"]
            run_ffmpeg(args, on_progress=None, stop=stop, stall_timeout_s=stall_timeout_s)
            cut_from = copy
        slack = seek_slack_s(cut_from)
        for n, span in enumerate(spans):
            made.append(scratch / f"{prefix}-{n}")
            cut_sample(
                ffmpeg,
                cut_from,
                span,
                video_index,
                made[-1],
                stop=stop,
                stall_timeout_s=stall_timeout_s,
                fmt=fmt,
                slack=slack,
            )
    except BaseException:
        for path in made:
            path.unlink(missing_ok=True)
        raise
    finally:
        copy.unlink(missing_ok=True)
    return made


class DamagedSource(ScoringError):
    """The source's video does not decode cleanly where it would be scored. Its damaged
    frames are the decoder's repairs, and those differ from one decode to the next: with
    frame threads, between two decodes of the same file, so a score against them measures
    the repair, not the encode (a damaged clip scored 67 to 89 at one CRF)."""


def first_damage_s(
    path: Path, video_index: int, spans: Sequence[Span] = (), keyframes: Sequence[float] = ()
) -> float | None:
    """Seconds from the start of ``path`` to the first frame of its video stream
    ``video_index`` that does not decode cleanly (``ladder.check_decoder``: one thread, a
    damaged slice an error, not repaired), within ``spans`` (all of it without);
    None when every frame there does.

    Each span is decoded from the keyframe before its own (``keyframes``, as
    ``scan_source`` gives them), so that the frames after its keyframe have what they
    refer to: in an open-GOP stream they may refer back past it (an x264 sample cut on
    its own reported an error at its first P-frame), which is the cut's doing, not damage.
    Read from the file's start, the frames before its first keyframe are not damage either:
    a broadcast recording starts wherever the recorder tuned in, mid-GOP, and no decoder
    shows those frames, so neither the encode nor a score ever sees them.
    """
    with open_input(str(path)) as f:
        origin = (f.start_time or 0) / AV_TIME_BASE
        stream: Any = f.streams[video_index]
        ctx = check_decoder(stream)
        tb = stream.time_base
        for start, length in spans or [(0.0, math.inf)]:
            before = [k for k in keyframes if k < start - SEEK_SLACK_S]
            if spans:
                at = (before[-1] if before else 0.0) + origin
                try:
                    f.seek(int(at / tb), stream=stream, backward=True, any_frame=False)
                except (av.FFmpegError, OSError):
                    return None  # a stream that cannot seek (raw H.264): not checked
                ctx.flush_buffers()
            keyed = False  # a seek lands on a keyframe; the file's start may not be one
            for packet in f.demux(stream):
                if not packet.size:
                    continue
                keyed = keyed or packet.is_keyframe
                ts = packet.pts if packet.pts is not None else packet.dts
                t = float(ts * tb) - origin if ts is not None else None
                if t is not None and t > start + length:
                    break
                try:
                    ctx.decode(packet)
                except av.FFmpegError:
                    if keyed and (t is None or t >= start - SEEK_SLACK_S):
                        return max(0.0, t or start)
    return None


def refuse_damaged(
    src: Path, video_index: int, spans: Sequence[Span], keyframes: Sequence[float]
) -> None:
    """Raise ``DamagedSource`` when the video of ``src`` does not decode cleanly within
    ``spans`` (all of it when there are none), naming where."""
    at = first_damage_s(src, video_index, spans, keyframes)
    if at is not None:
        raise DamagedSource(f"its video does not decode cleanly at {at:.1f} s")


def _container_names(src: Path) -> set[str]:
    try:
        with open_input(str(src)) as f:
            return set(f.format.name.split(","))
    except av.FFmpegError:
        return set()


def holds_video(path: Path) -> bool:
    """Whether ``path`` opens and has a video packet."""
    try:
        with open_input(str(path)) as f:
            stream = next(iter(f.streams.video), None)
            return stream is not None and any(p.size for p in f.demux(stream))
    except av.FFmpegError:
        return False


def video_size(path: Path) -> tuple[int, float]:
    """Bytes and seconds of a file's first video stream, from its packets."""
    with open_input(str(path)) as f:
        stream = f.streams.video[0]
        total, first, end = 0, math.inf, -math.inf
        for packet in f.demux(stream):
            if not packet.size or packet.pts is None:
                continue
            total += packet.size
            t = float(packet.pts * packet.time_base)
            first = min(first, t)
            end = max(end, t + float((packet.duration or 0) * packet.time_base))
    return total, max(0.0, end - first) if total else 0.0


# --- the search on a real file, cached ---------------------------------------------------


@dataclass(frozen=True)
class SearchResult:
    """The CRF found, what it predicts for the whole output, and every probe."""

    crf: int
    predicted_score: float  # in the search's metric
    predicted_bytes: int
    predicted_percent: float  # of the source's size
    probes: tuple[ProbeResult, ...]
    cached: bool  # every probe came from the cache: nothing was encoded


def over_the_limit(
    made_bytes: int,
    source_bytes: int,
    *,
    crf: int,
    predicted_bytes: int,
    target: float,
    max_size_percent: float | None,
    metric: Metric = "vmaf",
) -> str | None:
    """Why a full encode at the CRF a search chose breaks the size limit the search kept
    to (pure): its samples predicted it within, and the whole came out larger (a source
    whose samples are not like the rest of it). None when it is within, or there is no
    limit. The limit holds for what is made, not for what was predicted."""
    if max_size_percent is None or source_bytes <= 0:
        return None
    made = 100.0 * made_bytes / source_bytes
    if made <= max_size_percent:
        return None
    predicted = 100.0 * predicted_bytes / source_bytes
    return (
        f"{shown(metric, target)} not reached within {max_size_percent:g} % of the source size"
        f" (CRF {crf} came to {made:.0f} % in the full encode; its samples predicted"
        f" {predicted:.0f} %)"
    )


@dataclass(frozen=True)
class Unreachable:
    """No CRF reaches the target within the size limit; ``reason`` says which failed."""

    reason: str
    probes: tuple[ProbeResult, ...]
    cached: bool


@dataclass(frozen=True)
class Searcher:
    """What a search runs with: the ffmpeg, its version, threads, a way to stop."""

    ffmpeg: str
    ffmpeg_version: str
    scratch: Path  # the job's folder: samples and probe encodes, removed as it is
    cache_dir: Path | None = None  # None: nothing is cached
    threads: int | None = None  # the encode's, as the full encode gets them
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    stall_timeout_s: float = 300.0
    rules: SampleRules = SampleRules()
    # Told each probe's number (1, 2, ...) as it starts: a running job shows it.
    on_probe: Callable[[int], None] = lambda _n: None
    # Told how much of the probe under way is done, in percent (``_Prober._measure``):
    # a library's time left weighs it.
    on_probe_progress: Callable[[float], None] = lambda _pct: None


def crf_range(plan: EncodePlan) -> tuple[int, int]:
    """The CRFs a search may choose from for the plan's codec."""
    return CRF_FLOOR, VIDEO_CODECS[plan.codec].max_crf


def find_crf(
    run: Searcher,
    src: Path,
    plan: EncodePlan,
    info: MediaInfo,
    *,
    source_id: str,
    target: float,
    max_size_percent: float | None = None,
    metric: Metric = "vmaf",
    own_size: bool = False,
) -> SearchResult | Unreachable:
    """Search the CRF for ``plan`` on ``src`` (its probe is ``info``) that reaches
    ``target`` in ``metric`` (with ``own_size``, a smaller output, a rendition, scored at
    its own size: ``quality.compared_size``).

    ``source_id`` names the source's content (the worker passes the source object's
    ETag); with ``run.cache_dir`` set, each probe's measurement is kept there under a
    hash of that, the samples, the probe's ffmpeg arguments (without paths), the metric
    and the ffmpeg version: everything that decides it, and nothing else (not the target, which
    only decides which probes are asked for), so the same plan on the same source, for
    this pool or another, never encodes the same probe twice. Raises ``ScoringError``
    when a probe cannot be scored (``DamagedSource`` when the source's video does not
    decode cleanly where it is sampled), and ffmpeg's errors when one cannot be encoded.
    """
    cache = _Cache(run.cache_dir, source_id)
    scan = cache.scan(src, plan.video_index)
    duration = info.duration_s or 0.0
    # Samples are placed, and the video's bytes predicted, over the picture: a 5 s clip
    # with a minute of sound was sampled where it had no picture and predicted at 12 times
    # its size.
    samples, (_, picture) = picture_samples(scan, info.duration_s, run.rules)
    if samples.displaced:
        # Keyframes too sparse to cut samples that stand for their places: the places
        # are read from the source, each decoded from the keyframe before it. A probe
        # decodes more than it encodes, and decoding costs a small part of encoding; the
        # whole file, which these sources were searched on before, costs a full encode.
        samples = SamplePlan(whole=False, spans=samples.planned, seek=True)
    prober = _Prober(
        run,
        src,
        plan,
        samples,
        cache,
        metric=metric,
        own_size=own_size,
        keyframes=scan.keyframes,
        whole_s=picture or info.duration_s or info.duration_guess_s,
    )

    started = 0

    def probe(crf: int) -> ProbeResult:
        nonlocal started
        started += 1
        run.on_probe(started)
        got = prober(crf)
        # Searched whole, the probe's own length is the video's: the container's length
        # may be longer (audio that runs on past the picture) or unknown (sample_plan).
        length = got.video_s if samples.whole else picture or got.video_s
        # Re-encoded sound at the plan's rate for as long as it lasts: its own length as
        # the scan read it; else the container's, or the picture's where it declares none
        # (a recording written live, as OBS and browsers do, which left it out of the
        # prediction). Not the container's before its own: a subtitle cue left at 20
        # minutes on a 6 s clip predicted 20 minutes of Opus, 973 % of the source.
        other = kept_bytes(plan, scan.stream_bytes, duration or length, scan.stream_s)
        size = predict_bytes(got.video_bytes, got.video_s, length, other)
        return ProbeResult(crf, got.score, size + got.header_bytes, got.cached)

    def percent_of_source(p: ProbeResult) -> float:
        return 100.0 * p.predicted_bytes / info.size_bytes if info.size_bytes else 0.0

    def too_big(p: ProbeResult) -> bool:
        return max_size_percent is not None and percent_of_source(p) > max_size_percent

    lo, hi = crf_range(plan)
    try:
        found = search(probe, target, lo, hi, start=plan.crf, metric=metric, too_big=too_big)
    finally:
        prober.close()
    cached = all(p.cached for p in found.probes)
    chosen = found.chosen
    over = [p for p in found.probes if p.score < target and too_big(p)]
    if chosen is None and over:
        # Failing the target already too large: a CRF low enough to reach it is larger still.
        first = over[0]
        reason = (
            f"{shown(metric, target)} not reached within {max_size_percent:g} % of the source size"
            f" (CRF {first.crf} scores {shown_under(metric, first.score, target)}"
            f" at {percent_of_source(first):.0f} % already)"
        )
        return Unreachable(reason, found.probes, cached)
    if chosen is None:
        lowest = min(found.probes, key=lambda p: p.crf)
        reason = (
            f"{shown(metric, target)} not reached at CRF {lowest.crf} or above"
            f" ({shown_under(metric, lowest.score, target)} there)"
        )
        return Unreachable(reason, found.probes, cached)
    percent = percent_of_source(chosen)
    if max_size_percent is not None and percent > max_size_percent:
        reason = (
            f"{shown(metric, target)} not reached within {max_size_percent:g} % of the source size"
            f" (CRF {chosen.crf} reaches it at {percent:.0f} %)"
        )
        return Unreachable(reason, found.probes, cached)
    return SearchResult(
        crf=chosen.crf,
        predicted_score=chosen.score,
        predicted_bytes=chosen.predicted_bytes,
        predicted_percent=round(percent, 2),
        probes=found.probes,
        cached=cached,
    )


@dataclass(frozen=True)
class Measured:
    """One probe as measured (and as cached): its score over every sample's frames (in the
    search's metric), and the encoded video's bytes and seconds."""

    score: float
    frames: int
    video_bytes: int
    video_s: float
    cached: bool = False
    # The container's own bytes in the first sample's probe file (its size less its video:
    # the header, the encoder's parameter sets, the index). A few kilobytes that the video
    # rate leaves out: a quarter of a five-frame clip's output, nothing on a long one.
    header_bytes: int = 0


# The path stand-ins in the arguments a probe is keyed by.
_KEY_SOURCE, _KEY_OUTPUT = Path("sample"), Path("probe")


def probe_plan(plan: EncodePlan, crf: int, *, whole: bool) -> EncodePlan:
    """The plan a probe encodes: the pool's at ``crf``, its video only (a cut sample holds
    nothing else, its video at index 0; the whole source keeps its indexes)."""
    return dataclasses.replace(
        plan,
        crf=crf,
        video_index=plan.video_index if whole else 0,
        audio=(),
        subtitles=(),
        telemetry=(),
        attachments=False,
        covers=(),
        extra_video=(),
    )


def probe_key(
    source_id: str,
    samples: SamplePlan,
    args: Sequence[str],
    ffmpeg_version: str,
    metric: Metric = "vmaf",
    *,
    own_size: bool = False,
) -> str:
    """The cache key of one probe: a hash of everything its measurement depends on."""
    material: dict[str, Any] = {
        "version": CACHE_VERSION,
        "source": source_id,
        "samples": "whole" if samples.whole else [list(span) for span in samples.spans],
        "args": list(args),
        "ffmpeg": ffmpeg_version,
    }
    if samples.seek:
        material["read"] = "seek"  # the spans' own frames, not whole GOPs around them
    if metric != "vmaf":
        # VMAF probes keep the keys they had before other metrics existed, so caches
        # already filled stay valid; any other metric is keyed apart from them.
        material["metric"] = metric
    if own_size:
        material["scored_at"] = "own size"  # the same encode scores higher at its size
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class _Prober:
    """Measures a CRF on the samples: from the cache, else by encoding and scoring them
    (the samples are cut the first time one is needed)."""

    def __init__(
        self,
        run: Searcher,
        src: Path,
        plan: EncodePlan,
        samples: SamplePlan,
        cache: _Cache,
        *,
        metric: Metric,
        own_size: bool = False,
        keyframes: Sequence[float] = (),
        whole_s: float | None = None,
    ) -> None:
        """``whole_s``: how long the source plays, what a probe of the whole file encodes
        (its progress is counted against it; None: only each sample's end counts)."""
        self._run, self._src, self._plan = run, src, plan
        self._samples, self._cache, self._metric = samples, cache, metric
        self._own_size, self._keyframes = own_size, keyframes
        self._whole_s = whole_s
        self._cut: list[Path] | None = None
        self._checked = False  # the source was checked for damage (``refuse_damaged``)
        # Windows are read in place from a container whose index finds keyframes, else
        # from a copy of the video alone (``video_copy``).
        self._copy_first = samples.seek and not seeks_by_keyframe(src)

    def key_args(self, crf: int) -> list[str]:
        """The probe's ffmpeg arguments with the binary and paths left out."""
        plan = probe_plan(self._plan, crf, whole=self._in_place)
        args = build_args("ffmpeg", _KEY_SOURCE, _KEY_OUTPUT, plan, threads=self._run.threads)
        return args[1:]

    @property
    def _in_place(self) -> bool:
        """The probes read the source itself (whole, or over windows), with its own
        stream indexes."""
        return self._samples.whole or (self._samples.seek and not self._copy_first)

    def __call__(self, crf: int) -> Measured:
        key = probe_key(
            self._cache.source_id,
            self._samples,
            self.key_args(crf),
            self._run.ffmpeg_version,
            self._metric,
            own_size=self._own_size,
        )
        found = self._cache.probe(key)
        if found is not None:
            return found
        measured = self._measure(crf)
        self._cache.keep_probe(key, measured)
        return measured

    def close(self) -> None:
        """Remove the cut samples: the full encode needs the room."""
        for sample in self._cut or ():
            sample.unlink(missing_ok=True)

    def _inputs(self) -> list[tuple[Path, Window | None]]:
        """What each probe encodes: the source, its windows, or its samples, cut the
        first time; the source is first checked for damage where it is sampled
        (``refuse_damaged``)."""
        run = self._run
        if not self._checked:
            spans = self._samples.spans
            refuse_damaged(self._src, self._plan.video_index, spans, self._keyframes)
            self._checked = True
        if self._samples.whole:
            return [(self._src, None)]
        if self._samples.seek:
            source = self._src
            if self._copy_first:
                if self._cut is None:
                    copy = run.scratch / "crf-sample-seekable"
                    self._cut = [
                        video_copy(
                            run.ffmpeg,
                            self._src,
                            self._plan.video_index,
                            copy,
                            stop=run.stop,
                            stall_timeout_s=run.stall_timeout_s,
                        )
                    ]
                source = self._cut[0]
            return [(source, span) for span in self._samples.spans]
        if self._cut is None:
            self._cut = cut_samples(
                run.ffmpeg,
                self._src,
                self._samples.spans,
                self._plan.video_index,
                run.scratch,
                prefix="crf-sample",
                stop=run.stop,
                stall_timeout_s=run.stall_timeout_s,
            )
        return [(sample, None) for sample in self._cut]

    def _lengths(self) -> list[float | None]:
        """Seconds of source each of the probe's inputs encodes (as ``_inputs`` lists
        them); None where not known."""
        if self._samples.whole:
            return [self._whole_s]
        return [length for _, length in self._samples.spans]

    def _measure(self, crf: int) -> Measured:
        run = self._run
        plan = probe_plan(self._plan, crf, whole=self._in_place)
        weighted, frames, total, seconds, header = 0.0, 0, 0, 0.0, None
        inputs = self._inputs()
        lengths = self._lengths()
        for n, (sample, window) in enumerate(inputs):
            out = run.scratch / "crf-probe"
            args = build_args(run.ffmpeg, sample, out, plan, threads=run.threads, window=window)
            progress = _probe_progress(run.on_probe_progress, n, len(inputs), lengths[n])
            run_ffmpeg(
                args, on_progress=progress, stop=run.stop, stall_timeout_s=run.stall_timeout_s
            )
            threads = run.threads or machine_cores()
            # The search reads the score alone: NEG, reported beside an output's own
            # score, would add about half again to every probe's scoring.
            got = measure(
                run.ffmpeg,
                sample,
                out,
                self._metric,
                threads=threads,
                neg=False,
                own_size=self._own_size,
                window=window,
                watch=Watch(run.stop, run.stall_timeout_s),
            )
            size, span = video_size(out)
            if header is None:
                header = max(0, out.stat().st_size - size)
            out.unlink()
            weighted += got.mean * got.frames
            frames += got.frames
            total += size
            seconds += span
            run.on_probe_progress(100.0 * (n + 1) / len(inputs))
        return Measured(
            round(weighted / frames, 4), frames, total, round(seconds, 4), header_bytes=header or 0
        )


def _probe_progress(
    tell: Callable[[float], None], n: int, count: int, length_s: float | None
) -> Callable[[Progress], None]:
    """What hears the encode of input ``n`` of a probe's ``count``, lasting ``length_s``:
    it tells the probe's percent done, the inputs before it whole and this one's encode
    by its progress, as ``PROBE_ENCODE_SHARE`` of its part (its score is the rest, told
    when it ends)."""

    def heard(p: Progress) -> None:
        if not length_s or p.out_time_s is None:
            return
        encoded = min(1.0, p.out_time_s / length_s)
        tell(100.0 * (n + encoded * PROBE_ENCODE_SHARE) / count)

    return heard


class _Cache:
    """Small JSON files under a folder, one per probe and one per source scan, written
    whole or not at all (workers sharing the folder may write the same one at once).
    A file that cannot be read is a miss; nothing is cached without a source id."""

    def __init__(self, folder: Path | None, source_id: str) -> None:
        self.folder = folder if source_id else None
        self.source_id = source_id

    def scan(self, src: Path, video_index: int) -> SourceScan:
        """The source's scan, read once per source and kept."""
        material = f"scan:{CACHE_VERSION}:{self.source_id}:{video_index}"
        key = hashlib.sha256(material.encode()).hexdigest()
        doc = self._read(key)
        if doc is not None:
            try:
                sizes = {int(k): int(v) for k, v in doc["stream_bytes"].items()}
                span = doc.get("video_span")
                lengths = {int(k): float(v) for k, v in doc.get("stream_s", {}).items()}
                return SourceScan(
                    tuple(float(t) for t in doc["keyframes"]),
                    sizes,
                    video_span=(float(span[0]), float(span[1])) if span else None,
                    stream_s=lengths,
                )
            except (KeyError, TypeError, ValueError, AttributeError, IndexError):
                pass
        scan = scan_source(src, video_index)
        doc = {
            "keyframes": list(scan.keyframes),
            "stream_bytes": scan.stream_bytes,
            "stream_s": scan.stream_s,
        }
        if scan.video_span is not None:
            doc["video_span"] = list(scan.video_span)
        self._write(key, doc)
        return scan

    def probe(self, key: str) -> Measured | None:
        """A cached probe, or None."""
        doc = self._read(key)
        if doc is None:
            return None
        try:
            return Measured(
                # "vmaf": the field's name before other metrics existed
                score=float(doc["score"] if "score" in doc else doc["vmaf"]),
                frames=int(doc["frames"]),
                video_bytes=int(doc["video_bytes"]),
                video_s=float(doc["video_s"]),
                cached=True,
                # Absent from a probe cached by an older release, which still reads (its
                # prediction leaves the header out, as it did then).
                header_bytes=int(doc.get("header_bytes", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def keep_probe(self, key: str, measured: Measured) -> None:
        """Store a probe's measurement."""
        doc = dataclasses.asdict(measured)
        doc.pop("cached")
        self._write(key, doc)

    def _path(self, key: str) -> Path | None:
        return None if self.folder is None else self.folder / f"{key}.json"

    def _read(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        if path is None:
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def _write(self, key: str, doc: dict[str, Any]) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
        part.write_text(json.dumps(doc, sort_keys=True), encoding="utf-8")
        part.replace(path)
