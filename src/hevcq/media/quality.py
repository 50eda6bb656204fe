"""Scoring an output against its source, both sides aligned first: VMAF (libvmaf) or
XPSNR (ffmpeg's ``xpsnr`` filter), whichever the pool's target is in.

Alignment is what makes a score mean something: both pictures upright (ffmpeg applies
each side's display rotation), the output scaled to the source's displayed size, both
starting at zero, and both resampled to one constant frame rate, so a variable-frame-rate
phone clip scores like a constant-rate one instead of being compared frame by frame out
of step. Both metrics are measured on the same aligned pictures (``aligned``).

VMAF: the model follows the picture: ``vmaf_v0.6.1`` up to 2560 px on the long side,
the 4K model above, the phone model only when asked; the NEG variant (no gain from
enhancement) is reported beside it. XPSNR: the luma value, pooled over the frames as the
filter pools it (``parse_xpsnr``). HDR sources are refused for both: the VMAF models are
trained on SDR, and XPSNR's perceptual weighting was fitted to SDR pictures.

A scoring failure raises ``ScoringError``, its own error: never a low score, never "no
suitable CRF".
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from hevcq.errors import FailureClass, HevcqError, InterruptedJob, StalledError
from hevcq.media.ffargs import Window, decoder_args, fit_picture, source_filters, window_args
from hevcq.media.ffmpeg import Watch, run_ffmpeg
from hevcq.media.ladder import constant_rate, source_colours
from hevcq.media.picshape import probe_main
from hevcq.pools import Metric

MODEL_HD = "vmaf_v0.6.1"
MODEL_4K = "vmaf_4k_v0.6.1"
MODEL_NEG = "vmaf_v0.6.1neg"
HD_MAX_LONG_SIDE = 2560
# The smallest picture libvmaf scores: a side under 18 pixels crashed it (SIGSEGV in the
# pinned build, measured 2026-11-28: 17x17, 64x16 and 16x64 crash; 18x18, 18x64 and
# 64x18 score), so a 16x16 clip under a VMAF target failed "killed by signal SIGSEGV".
# XPSNR scores any size.
VMAF_MIN_SIDE = 18
HDR_REASON = "HDR source: quality scores do not apply to HDR"
# The largest picture a score compares at: 2160 on the short side and 4096x2160 pixels
# (4K, the 4K model's own size). A larger source (8K) and its outputs are scaled down to
# it first. No model is trained above 4K, and libvmaf holds about 100 bytes per pixel
# compared: an 8K score took 4.4 GB, and a per-title ladder's probes of an 8K clip, scored
# at 8K in one run, 24 GB (ffmpeg was killed, and the job failed with "no log written").
MAX_SCORED_SHORT_SIDE = 2160
MAX_SCORED_PIXELS = 4096 * 2160
# What one libvmaf comparison holds while it runs, per pixel compared (measured with two
# threads: 210 MB at 1080p, 850 MB at 4K, each output more in a batch), and what a batch
# of probe scores may hold at once: probes are scored in as many runs as keep under it,
# so a 4K source's are scored one at a time (docs/cloud.md sizes the tasks).
VMAF_BYTES_PER_PIXEL = 110
BATCH_MEMORY_BYTES = 1536 * 2**20
# Transfer characteristics (ISO/IEC 23091-2) of HDR video: PQ and HLG.
# An output scored on its own (``hevcq quality``) must last as long as its source, give or
# take this (seconds, or this share of the source when more): scoring stops at the shorter
# side, so a cut or a different clip would score only what the two share.
LENGTH_TOLERANCE_S, LENGTH_TOLERANCE_SHARE = 0.5, 0.02
LOW_FRACTION = 0.01  # the "1 % low": the mean of the worst 1 % of frames
# XPSNR of identical pictures is infinite; scores are capped here (a pool's XPSNR target
# is at most this), so that an untouched frame neither breaks a mean nor a JSON result.
XPSNR_CEILING = 100.0
MODEL_XPSNR = "xpsnr_y"  # what a Score names for XPSNR: the luma value, filter-pooled
LABELS: dict[str, tuple[str, str]] = {"vmaf": ("VMAF", ""), "xpsnr": ("XPSNR", " dB")}


class ScoringError(HevcqError):
    """The quality could not be measured (not: the output scored low)."""

    failure_class = FailureClass.SCORING


@dataclass(frozen=True)
class Picture:
    """What scoring needs to know of one side."""

    width: int  # displayed in square pixels (sample aspect and rotation applied)
    height: int
    fps: float | None
    ten_bit: bool
    hdr: bool
    anamorphic: bool = False  # stored in non-square pixels: stretched to width x height
    interlaced: bool = False  # deinterlaced first, as every encode of it is
    rgb: bool = False  # made BT.709 YUV first, as every encode of it is (ffargs.rgb_to_yuv)
    alpha: bool = False  # laid over black first, as every encode of it is
    alpha_decoder: str = ""  # the decoder its alpha needs (VideoStream.alpha_decoder)
    # The filter stating what it leaves unstated of its colours, as players take it
    # (ladder.source_colours; "" when it states all three, or is RGB, made BT.709 first).
    colours: str = ""
    # Its stream index: the main video, which a graph names by index, as cover art may
    # come before it (an MP4 whose metadata precedes its tracks).
    index: int = 0
    # The coded size it is encoded at (EncodePlan.source_size), upright: frames of another
    # shape, where the picture changes partway, are fitted in as the encodes fit them.
    upright: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Score:
    """VMAF or XPSNR of an output against its source (``metric`` says which)."""

    model: str
    mean: float  # the pooled score: VMAF's mean, XPSNR's filter-pooled luma value (dB)
    low: float  # mean of the worst 1 % of frames
    neg_mean: float | None
    frames: int
    phone: float | None = None
    metric: Metric = "vmaf"


def shown(metric: str, value: float, digits: int | None = None) -> str:
    """A score as people read it: ``VMAF 93``, ``XPSNR 41.2 dB`` (``digits``: decimals;
    None: as few as the value needs)."""
    label, unit = LABELS[metric]
    number = f"{value:g}" if digits is None else f"{value:.{digits}f}"
    return f"{label} {number}{unit}"


def shown_under(metric: str, value: float, line: float, digits: int = 1) -> str:
    """A score under ``line`` as people read it, with as many decimals (``digits`` and up
    to three) as keep it reading under the line: 92.98 against a target of 93 reads
    ``VMAF 92.98``, never ``VMAF 93.0``."""
    for places in range(digits, 4):
        if round(value, places) < line:
            return shown(metric, value, places)
    return shown(metric, math.floor(value * 1000) / 1000, 3)


def model_for(width: int, height: int) -> str:
    """The VMAF model for a picture of this displayed size."""
    return MODEL_4K if max(width, height) > HD_MAX_LONG_SIDE else MODEL_HD


def low_mean(scores: list[float], fraction: float = LOW_FRACTION) -> float:
    """The mean of the worst ``fraction`` of ``scores`` (at least one)."""
    if not scores:
        raise ScoringError("no frame was scored")
    worst = sorted(scores)[: max(1, math.ceil(len(scores) * fraction))]
    return sum(worst) / len(worst)


def picture(path: Path) -> Picture:
    """Probe one side: displayed size, frame rate, bit depth and whether it is HDR."""
    try:
        info = probe_main(path)  # at the size it shows longest, as encoded
    except HevcqError as exc:
        raise ScoringError(f"{path.name}: {exc}") from exc
    video = info.main_video
    if video is None:
        raise ScoringError(f"{path.name}: no video stream")
    width, height = video.display_size
    return Picture(
        width,
        height,
        video.fps,
        video.bit_depth > 8,
        bool(video.hdr_transfer),
        anamorphic=not video.square_pixels,
        interlaced=video.interlaced,
        rgb=video.rgb,
        alpha=video.alpha,
        alpha_decoder=video.alpha_decoder,
        colours=source_colours(video),
        index=video.index,
        upright=video.upright_size,
    )


def scored_size(ref: Picture) -> tuple[int, int]:
    """The size a source displayed at ``ref``'s size is compared at (pure): its own, or
    scaled down, aspect kept, to ``MAX_SCORED_SHORT_SIDE`` and ``MAX_SCORED_PIXELS`` (an
    8K source: 3840x2160)."""
    short = min(ref.width, ref.height)
    if short <= 0:
        return ref.width, ref.height  # nothing to scale: the score says what is wrong
    k = min(MAX_SCORED_SHORT_SIDE / short, math.sqrt(MAX_SCORED_PIXELS / (ref.width * ref.height)))
    if k >= 1:
        return ref.width, ref.height
    return max(2, round(ref.width * k / 2) * 2), max(2, round(ref.height * k / 2) * 2)


def batch_size(size: tuple[int, int]) -> int:
    """How many outputs one scoring run compares at ``size`` (pure): as many as keep the
    run's libvmaf within ``BATCH_MEMORY_BYTES``, and at least one."""
    each = VMAF_BYTES_PER_PIXEL * size[0] * size[1]
    return max(1, BATCH_MEMORY_BYTES // each)


def _align(ref: Picture, rate: Fraction) -> str:
    """What both sides go through before scoring: start at zero, one clock, the source's
    constant frame rate, the source's pixel format family.

    The clock is Matroska's and WebM's millisecond, the coarsest an output is stored in:
    a frame the muxer moved onto it and the same frame of the source land on the same
    tick, so the frame-rate conversion picks the same frames on both sides. Without it a
    120 fps source scored at 60 had every other frame on the line between two of the
    score's frames, and the output's rounded times fell to the other side of it.
    """
    fmt = "yuv420p10le" if ref.ten_bit else "yuv420p"
    return f"setpts=PTS-STARTPTS,settb=1/1000,fps={rate},format={fmt}"


def _libvmaf(
    size: tuple[int, int], log: Path, *, phone: bool, neg: bool, threads: int, subsample: int
) -> str:
    models = [f"version={model_for(*size)}\\:name=vmaf"]
    if neg:
        models.append(f"version={MODEL_NEG}\\:name=vmaf_neg")
    if phone:
        models.append(f"version={MODEL_HD}\\:name=vmaf_phone\\:enable_transform=true")
    return (
        f"libvmaf=model='{'|'.join(models)}':log_fmt=json:log_path={log}"
        f":n_threads={threads}:shortest=1" + (f":n_subsample={subsample}" if subsample > 1 else "")
    )


def aligned(
    ref: Picture,
    rate: Fraction,
    size: tuple[int, int] | None = None,
    *,
    dist: int = 0,
    dist_colours: str = "",
    made_at: Fraction | None = None,
    from_zero: bool = False,
) -> str:
    """The graph's first part, for every metric: input 0 (the output scored) as ``[dist]``
    and input 1 (its source) as ``[ref]``, both upright, each stating the colours it
    leaves unstated as players take it (``Picture.colours``; ``dist_colours`` for the
    output), starting at zero, at one constant ``rate`` and one pixel format
    (``_align``), compared at ``size``: the source's
    displayed size unless told (the output scaled up to it), or a rendition's own smaller
    size (``compared_size``: the source brought down to it with the encodes' scaler).
    Each side's video is named by its stream index: ``dist`` for the output's, and
    ``ref.index`` for the source's.

    Stating the colours keeps ffmpeg from converting one side: where one side states
    BT.709 and the other nothing, the filter joining them converts the one that states
    nothing as if it were BT.601. An unstated 720p source against an encode of it stating
    the BT.709 players take the source for (as a ladder's rungs do) scored VMAF 53.6,
    and 98.1 with both sides stating it. Where two sides state different colours, the
    conversion stays: it is the change a viewer sees.

    ``made_at``: the output was made at that constant rate by ffmpeg's ``fps`` filter on
    the source's own timestamps (a ladder's rungs, per-title probes), and the source is
    brought to it the same way first (``_reference``, as is ``from_zero``)."""
    align = _align(ref, rate)
    width, height = size or scored_size(ref)
    source = _reference(ref, align, made_at, from_zero=from_zero)
    if (width, height) != scored_size(ref):
        source += f",scale={width}:{height}:flags=lanczos,setsar=1"
    first = f"[0:{dist}]{_stating(dist_colours)}{align},scale={width}:{height}:flags=bicubic[dist]"
    return f"{first};[1:{ref.index}]{source}[ref];"


def _stating(colours: str) -> str:
    """``colours`` (a filter, or "") as the head of a chain."""
    return f"{colours}," if colours else ""


def compared_size(ref: Picture, out: Picture, *, own_size: bool) -> tuple[int, int]:
    """The displayed size a score compares at (pure): the source's, or with ``own_size``
    an output's that is smaller (a rendition, scored as the picture it is: how well it
    holds the source at its size, not what the downscale itself leaves out, which no CRF
    can put back)."""
    at = scored_size(ref)
    if own_size and out.width * out.height < at[0] * at[1]:
        return out.width, out.height
    return at


def _reference(
    ref: Picture, align: str, made_at: Fraction | None = None, *, from_zero: bool = False
) -> str:
    """The source's chain: the encodes' first filters (an RGB source made BT.709 YUV, an
    interlaced one deinterlaced), then ``align``, then its displayed size: stretched to
    it when stored in non-square pixels (the output is scaled to that size too, so both
    are compared as the viewer sees them), and brought to it (as the encode brings it)
    where its picture changes size or format partway, a frame of another shape fitted in
    on black as the encodes fit it (``fit_picture``); a scale to the size a frame
    already has passes it through untouched. A source larger than 4K is brought down to
    ``scored_size`` by the same scale, with the same scaler as its outputs are.

    Given ``made_at``, the frames the output was made of are picked first, as a ladder
    picks them: ``fps`` on the source's own timestamps, before ``align`` moves them onto
    its millisecond clock. Picked after it, the rounding put other frames on the ticks:
    a 240 fps clip brought to 60 fps losslessly, as its ladder is, scored VMAF 88.3
    (its worst 1 % 56) against its source, and 98.8 picked the ladder's way.

    ``from_zero``: the output's frames also start where the source file starts, not
    where its video does, the time before its first frame filled with that frame. A
    ladder's rungs are made so (ffmpeg writes its HLS output at a constant rate from the
    input's zero), which keeps them in step with the audio when the source's video
    starts after its sound: 2 s late, 67 ms late (an MP4's B-frame delay without an edit
    list) or 23 ms late (as MPEG-TS recordings often are). Picked from the video's own start
    instead, every frame of the source was compared with the rung's frame that many
    frames earlier: VMAF 17, 24 and 38 where the rungs score 96."""
    filters = source_filters(
        deinterlace=ref.interlaced, rgb=ref.rgb, ten_bit=ref.ten_bit, alpha=ref.alpha
    )
    pick = f"fps={made_at}:start_time=0" if from_zero else f"fps={made_at}"
    picked = [pick] if made_at is not None else []
    chain = ",".join([*filters, *([ref.colours] if ref.colours else []), *picked, align])
    width, height = scored_size(ref)
    fit = fit_picture(width, height, first=ref.upright, flags="bicubic")
    if ref.anamorphic or (width, height) != (ref.width, ref.height):
        return chain + f",{fit},setsar=1"
    return chain + f",{fit}"


def xpsnr_graph(
    ref: Picture,
    rate: Fraction,
    stats: Path,
    size: tuple[int, int] | None = None,
    *,
    dist: int = 0,
    dist_colours: str = "",
    made_at: Fraction | None = None,
    from_zero: bool = False,
) -> str:
    """The filter graph of an XPSNR score (inputs, ``size``, ``dist``, ``dist_colours``,
    ``made_at`` and ``from_zero`` as ``aligned``), its per-frame values and their pooled
    value written to ``stats``."""
    head = aligned(
        ref,
        rate,
        size,
        dist=dist,
        dist_colours=dist_colours,
        made_at=made_at,
        from_zero=from_zero,
    )
    return head + f"[dist][ref]xpsnr=stats_file={stats}:shortest=1"


def no_score(path: Path, metric: Metric) -> str | None:
    """Why no ``metric`` score applies to ``path``'s video: it is HDR (PQ or HLG), which
    no score this module measures is fitted to, or its picture is smaller than VMAF
    measures (``VMAF_MIN_SIDE``). None when a score applies, and for a file that cannot be
    read (scoring it then says why)."""
    try:
        ref = picture(path)
    except ScoringError:
        return None
    if ref.hdr:
        return HDR_REASON
    if metric == "vmaf":
        return _too_small(scored_size(ref))
    return None


def _too_small(size: tuple[int, int]) -> str | None:
    """Why VMAF cannot score pictures of ``size`` (pure); None when it can."""
    if min(size) >= VMAF_MIN_SIDE:
        return None
    return (
        f"a {size[0]}x{size[1]} picture: VMAF measures pictures of"
        f" {VMAF_MIN_SIDE} pixels a side or more"
    )


def vmaf_graph(
    ref: Picture,
    rate: Fraction,
    log: Path,
    *,
    phone: bool,
    threads: int,
    subsample: int = 1,
    neg: bool = True,
    size: tuple[int, int] | None = None,
    dist: int = 0,
    dist_colours: str = "",
    made_at: Fraction | None = None,
    from_zero: bool = False,
) -> str:
    """The filter graph: input 0 is the output scored (its stream ``dist``, stating
    ``dist_colours``), input 1 its source, compared at ``size`` (``aligned``, as are
    ``made_at`` and ``from_zero``). With ``subsample`` above 1, libvmaf scores only
    every that many frames (a cheap estimate for probes; an output's own score uses
    every frame).
    ``neg``: the NEG model beside the score (its features cost about half again the
    score's own)."""
    at = size or scored_size(ref)
    vmaf = _libvmaf(at, log, phone=phone, neg=neg, threads=threads, subsample=subsample)
    head = aligned(
        ref,
        rate,
        at,
        dist=dist,
        dist_colours=dist_colours,
        made_at=made_at,
        from_zero=from_zero,
    )
    return head + f"[dist][ref]{vmaf}"


def batch_graph(
    ref: Picture,
    rate: Fraction,
    logs: Sequence[Path],
    *,
    threads: int,
    subsample: int,
    dist_colours: Sequence[str] = (),
    made_at: Fraction | None = None,
) -> str:
    """The filter graph scoring many outputs against one source in one run: inputs 0 to
    n - 1 are the outputs (each stating its ``dist_colours`` entry, as ``aligned``),
    input n the source, decoded once and split (``made_at`` as ``aligned``); VMAF only
    (no NEG, no phone model), one log per output."""
    n = len(logs)
    align = _align(ref, rate)
    width, height = scored_size(ref)
    refs = "".join(f"[ref{i}]" for i in range(n))
    chains = [f"[{n}:{ref.index}]{_reference(ref, align, made_at)},split={n}{refs}"]
    for i, log in enumerate(logs):
        vmaf = _libvmaf(
            (width, height),
            log,
            phone=False,
            neg=False,
            threads=threads,
            subsample=subsample,
        )
        stating = _stating(dist_colours[i] if i < len(dist_colours) else "")
        chains.append(
            f"[{i}:v]{stating}{align},scale={width}:{height}:flags=bicubic[dist{i}];"
            f"[dist{i}][ref{i}]{vmaf}"
        )
    return ";".join(chains)


def lengths_differ(source_s: float | None, output_s: float | None) -> bool:
    """Whether an output lasting ``output_s`` cannot be an encode of the whole source
    lasting ``source_s`` (pure); unknown lengths are not held against it."""
    if source_s is None or output_s is None:
        return False
    room = max(LENGTH_TOLERANCE_S, LENGTH_TOLERANCE_SHARE * source_s)
    return abs(source_s - output_s) > room


def score(
    ffmpeg: str,
    source: Path,
    output: Path,
    *,
    phone: bool = False,
    threads: int = 1,
    subsample: int = 1,
    neg: bool = True,
    own_size: bool = False,
    window: Window | None = None,
    made_at: Fraction | None = None,
    from_zero: bool = False,
    watch: Watch | None = None,
) -> Score:
    """VMAF of ``output`` against ``source``, both aligned; raises ``ScoringError``.
    ``subsample``: score every that many frames only; ``neg``: NEG beside it
    (``vmaf_graph``); ``own_size``: a smaller output compared at its own size
    (``compared_size``); ``window``: the output is of this stretch of the source alone
    (``window_args``); ``made_at``: the output was made at that constant rate, as a
    ladder's rungs are, and is compared at it, from the source file's zero with
    ``from_zero`` (``aligned``)."""
    ref, out = _sdr_sides(source, output, "the VMAF models are trained on SDR")
    rate = made_at or constant_rate(ref.fps)
    size = compared_size(ref, out, own_size=own_size)
    small = _too_small(size)
    if small is not None:
        raise ScoringError(f"{small}; not scored")
    with tempfile.TemporaryDirectory(prefix="hevcq-vmaf-") as tmp:
        log = Path(tmp) / "vmaf.json"
        graph = vmaf_graph(
            ref,
            rate,
            log,
            phone=phone,
            threads=threads,
            subsample=subsample,
            neg=neg,
            size=size,
            dist=out.index,
            dist_colours=out.colours,
            made_at=made_at,
            from_zero=from_zero,
        )
        _run_graph(ffmpeg, [output, source], graph, [log], ref, window=window, watch=watch)
        return parse_log(json.loads(log.read_text()), model_for(*size))


def score_batch(
    ffmpeg: str,
    source: Path,
    outputs: Sequence[Path],
    *,
    threads: int = 1,
    subsample: int = 1,
    window: Window | None = None,
    made_at: Fraction | None = None,
    watch: Watch | None = None,
) -> list[Score]:
    """VMAF of each of ``outputs`` against ``source`` (over ``window`` of it, and
    ``made_at``, as for ``score``), in as few ffmpeg runs as keep their memory bounded
    (``batch_size``), each decoding the source once (``batch_graph``); what probes need,
    so without NEG or the phone model. Raises ``ScoringError`` as ``score`` does."""
    if not outputs:
        return []
    ref = picture(source)
    outs = [picture(o) for o in outputs]
    if ref.hdr or any(o.hdr for o in outs):
        raise ScoringError("HDR video: the VMAF models are trained on SDR; not scored")
    rate = made_at or constant_rate(ref.fps)
    size = scored_size(ref)
    small = _too_small(size)
    if small is not None:
        raise ScoringError(f"{small}; not scored")
    model = model_for(*size)
    each = batch_size(size)
    scores: list[Score] = []
    with tempfile.TemporaryDirectory(prefix="hevcq-vmaf-") as tmp:
        for start in range(0, len(outputs), each):
            batch = outputs[start : start + each]
            logs = [Path(tmp) / f"vmaf-{start + i}.json" for i in range(len(batch))]
            graph = batch_graph(
                ref,
                rate,
                logs,
                threads=threads,
                subsample=subsample,
                dist_colours=[o.colours for o in outs[start : start + each]],
                made_at=made_at,
            )
            _run_graph(ffmpeg, [*batch, source], graph, logs, ref, window=window, watch=watch)
            scores += [parse_log(json.loads(log.read_text()), model) for log in logs]
    return scores


def xpsnr_score(
    ffmpeg: str,
    source: Path,
    output: Path,
    *,
    own_size: bool = False,
    window: Window | None = None,
    made_at: Fraction | None = None,
    from_zero: bool = False,
    watch: Watch | None = None,
) -> Score:
    """XPSNR of ``output`` against ``source``, aligned as for VMAF (``aligned``, and
    ``own_size``, ``window``, ``made_at`` and ``from_zero`` as for ``score``); raises
    ``ScoringError``.
    The filter runs in one thread: it is cheap beside the decodes."""
    ref, out = _sdr_sides(source, output, "XPSNR's weighting is fitted to SDR")
    rate = made_at or constant_rate(ref.fps)
    size = compared_size(ref, out, own_size=own_size)
    with tempfile.TemporaryDirectory(prefix="hevcq-xpsnr-") as tmp:
        stats = Path(tmp) / "xpsnr.log"
        graph = xpsnr_graph(
            ref,
            rate,
            stats,
            size,
            dist=out.index,
            dist_colours=out.colours,
            made_at=made_at,
            from_zero=from_zero,
        )
        _run_graph(ffmpeg, [output, source], graph, [stats], ref, window=window, watch=watch)
        return parse_xpsnr(stats.read_text(encoding="utf-8", errors="replace"))


def measure(
    ffmpeg: str,
    source: Path,
    output: Path,
    metric: Metric,
    *,
    phone: bool = False,
    threads: int = 1,
    neg: bool = True,
    own_size: bool = False,
    window: Window | None = None,
    made_at: Fraction | None = None,
    from_zero: bool = False,
    watch: Watch | None = None,
) -> Score:
    """The ``metric`` of ``output`` against ``source`` (``score`` or ``xpsnr_score``);
    ``neg``: VMAF's NEG beside the score; ``own_size``: a smaller output (a rendition)
    compared at its own size; ``window``: the output is of that stretch of the source;
    ``made_at``: the output was made at that constant rate, and with ``from_zero`` from
    the source file's zero (a ladder's rung); ``watch``: the job's stop and stall limit."""
    if metric == "xpsnr":
        return xpsnr_score(
            ffmpeg,
            source,
            output,
            own_size=own_size,
            window=window,
            made_at=made_at,
            from_zero=from_zero,
            watch=watch,
        )
    return score(
        ffmpeg,
        source,
        output,
        phone=phone,
        threads=threads,
        neg=neg,
        own_size=own_size,
        window=window,
        made_at=made_at,
        from_zero=from_zero,
        watch=watch,
    )


def _sdr_sides(source: Path, output: Path, why: str) -> tuple[Picture, Picture]:
    ref, out = picture(source), picture(output)
    if ref.hdr or out.hdr:
        raise ScoringError(f"HDR video: {why}; not scored")
    return ref, out


def _run_graph(
    ffmpeg: str,
    inputs: Sequence[Path],
    graph: str,
    logs: Sequence[Path],
    ref: Picture,
    *,
    window: Window | None = None,
    watch: Watch | None = None,
) -> None:
    """Run ``graph`` over ``inputs`` (in the order its input numbers name them; the source,
    ``ref``, last, read over ``window`` when given); a ``ScoringError`` unless ffmpeg
    succeeds and writes every one of ``logs``.

    ffmpeg runs as an encode does (``run_ffmpeg``), under ``watch``: a stop ends it, and
    so does a stall, but no clock does. A score once had an hour: the full-length score
    of a film longer than that, which runs at about the speed of its playing on two
    vCPUs, failed on every try, and the film with it."""
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    for n, path in enumerate(inputs):
        if n == len(inputs) - 1:
            args += decoder_args(ref.index, ref.alpha_decoder)  # as every encode reads it
            args += window_args(window)
        # A side whose picture changes size or format partway (a broadcast recording
        # going from SD to HD, two recordings spliced) would make ffmpeg build the whole
        # graph again from that frame: ``STARTPTS`` restarts at zero there, and a new
        # libvmaf writes a log of the frames after it only. Built once, the graph meets
        # such frames in its scalers, which every chain has (``aligned``, ``_reference``).
        args += ["-reinit_filter", "0", "-i", f"file:{path}"]
    args += ["-filter_complex", graph, "-progress", "pipe:1", "-nostats", "-f", "null", "-"]
    watch = watch or Watch()
    try:
        run_ffmpeg(args, on_progress=None, stop=watch.stop, stall_timeout_s=watch.stall_timeout_s)
    except (InterruptedJob, StalledError):
        raise
    except HevcqError as exc:
        raise ScoringError(f"scoring failed: {exc}") from exc
    if not all(log.is_file() for log in logs):
        raise ScoringError("scoring failed: no log written")


# One frame's line of the xpsnr filter's stats file, and the pooled line it ends with:
#   n:    1  XPSNR y: 37.1508  XPSNR u: 38.7122  XPSNR v: 38.4645
#   XPSNR average, 25 frames  y: 27.8445  u: 27.2963  v: 26.1517  (minimum: 26.1517)
# (a grey picture has no u and v; identical frames read "inf").
_XPSNR_FRAME = re.compile(r"^n:\s*\d+\s+XPSNR y:\s*(\S+)", re.MULTILINE)
_XPSNR_POOLED = re.compile(r"^XPSNR average, (\d+) frames\s+y:\s*(\S+)", re.MULTILINE)


def parse_xpsnr(text: str) -> Score:
    """A ``Score`` from the xpsnr filter's stats file: the luma XPSNR as the filter pools
    it, and the mean of the worst 1 % of frames' luma XPSNR, in dB, capped at
    ``XPSNR_CEILING``.

    The filter pools frames by their weighted distortion, not their dB: the mean of each
    frame's ``10^(-XPSNR/20)``, back in dB (``-20 log10`` of it), so a few bad frames
    pull the pooled value down more than a mean of dB would. Luma alone is the target:
    the filter's u and v values are reported by it and left out here, as PSNR targets
    usually leave chroma out.
    """
    pooled = _XPSNR_POOLED.search(text)
    try:
        frames = [min(float(v), XPSNR_CEILING) for v in _XPSNR_FRAME.findall(text)]
        mean = min(float(pooled.group(2)), XPSNR_CEILING) if pooled else math.nan
    except ValueError as exc:
        raise ScoringError(f"scoring failed: unreadable XPSNR stats ({exc})") from exc
    if pooled is None or int(pooled.group(1)) != len(frames):
        raise ScoringError("scoring failed: unreadable XPSNR stats (frames and pooled value)")
    if math.isnan(mean) or any(math.isnan(f) for f in frames):
        raise ScoringError("scoring failed: unreadable XPSNR stats (not a number)")
    return Score(
        model=MODEL_XPSNR,
        mean=mean,
        low=low_mean(frames),
        neg_mean=None,
        frames=len(frames),
        metric="xpsnr",
    )


def parse_log(doc: dict[str, Any], model: str) -> Score:
    """A ``Score`` from libvmaf's JSON log."""
    try:
        frames = [f["metrics"] for f in doc["frames"]]
        vmaf = [float(m["vmaf"]) for m in frames]
        pooled = doc["pooled_metrics"]
        neg = pooled.get("vmaf_neg", {}).get("mean")
        phone = pooled.get("vmaf_phone", {}).get("mean")
        return Score(
            model=model,
            mean=float(pooled["vmaf"]["mean"]),
            low=low_mean(vmaf),
            neg_mean=None if neg is None else float(neg),
            frames=len(vmaf),
            phone=None if phone is None else float(phone),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ScoringError(f"scoring failed: unreadable VMAF log ({exc})") from exc
