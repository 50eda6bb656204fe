"""Per-title ladders: the rungs and bitrates of a source's HLS ladder from its own
rate-quality curves instead of a fixed table.

A few short samples of the source (as many as ``crfsearch.sample_plan`` says, with rules
of their own: probes must stay cheap; one for each unlike scene when that is more,
``sample_count``; placed by ``stratified_spans`` from the easiest to
the hardest stretches of the source; cut by ``cut_samples``) are encoded at every rung
size the fixed ladder allows (``ladder.rung_heights``, never above the source) at
``PROBE_CRFS``, with the ladder's own H.264 settings, and each probe is scored with VMAF
against the sample at the source's size (``quality.score``, which scales the probe up to
it). That gives, per size, a curve of bit rate against VMAF. A source coded at very few
bits per pixel (``TOP_FIRST_BELOW_BPP``) is probed at its largest size first; when that
alone reaches the target for less than ``FLOOR_KBPS`` (a still picture), the ladder is
that one rung and the other sizes are not probed (``one_rung_suffices``).

The parts, the pure ones tested on their own:

- ``curve_points``: each size's curve filled in at every integer CRF near the probes
  (the rate interpolated on its logarithm, VMAF on its distance to 100, both about linear
  in the CRF).
- ``frontier``: the points no other point beats (cheaper and as good), across all
  sizes: at each rate, the size and CRF that look best. A size dominated by another at
  every rate has no point on it. ``upper_hull``, the upper convex hull in (log bit rate,
  VMAF), has its vertices among them, but is too sparse to pick from where two sizes'
  curves cross (``frontier``'s docstring).
- ``pick_rungs``: the top rung is the cheapest frontier point that reaches the target;
  each rung below is the frontier point nearest ``RATE_STEP`` times the rate above it, no
  larger than it, until the fixed ladder's number of rungs or ``FLOOR_KBPS``. Each rung
  carries its CRF and a peak cap ``CAP_FACTOR`` over its measured rate, never under
  ``MIN_CAP_KBPS``.
- ``probe_points`` / ``per_title_rungs``: the above on a real file.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path

from hevcq.media.crfsearch import (
    CEILING_SLACK,
    SamplePlan,
    SampleRules,
    Span,
    cut_samples,
    picture_samples,
    scan_source,
    seeks_by_keyframe,
    video_copy,
    video_size,
)
from hevcq.media.ffargs import Window, decoder_args, fit_picture, source_filters, window_args
from hevcq.media.ffmpeg import Watch, run_ffmpeg
from hevcq.media.ladder import (
    PRESET,
    Rung,
    choose_rungs,
    ladder_rate,
    source_colours,
)
from hevcq.media.model import MediaInfo
from hevcq.media.quality import score_batch

# The CRFs every size is probed at; the curve between and a little beyond them is
# interpolated (``EXTEND_CRF`` steps past either end).
PROBE_CRFS = (20, 28)
EXTEND_CRF = 8
CRF_MIN, CRF_MAX = 12, 40
# Each rung below the top aims at this share of the rate above it (Apple's fixed H.264
# ladder steps by 0.33 to 0.4 below 720p).
RATE_STEP = 0.4
# A rung cheaper than this streams anywhere: no rung is added below one this cheap.
FLOOR_KBPS = 150
# Two rungs closer than this in rate are one rung.
MIN_STEP = 0.8
# A rung's peak cap over its measured average rate: the quality comes from the CRF, the
# cap only stops a scene from bursting far past what the rung's bandwidth class streams.
CAP_FACTOR = 2.0
# No cap is set below this: a peak this low streams anywhere, and x264's rate control
# under a tight cap lowers the quality of frames far smaller than the buffer. A still
# 720p source at CRF 15 (18 kb/s) scored VMAF 97.40 uncapped, 96.73 capped at 64 kb/s,
# 97.27 at 150 and 97.40 at 256 (docs/benchmarks.md, per-title ladders).
MIN_CAP_KBPS = 256
# Probe samples: 1.5 s every 30 s of source (5 % of it), at least one; libvmaf scores
# every PROBE_SUBSAMPLE-th frame. Measured side by side (docs/benchmarks.md, decision
# 0025): one 2 s sample a minute mispredicted a drifting clip's top rung by 4.8 VMAF;
# two 2 s samples a minute by 3.0, at 0.34 of the encode's CPU; two of 1.5 s by 1.0, at
# 0.21-0.26; four of 0.75 s overshot by 2.0 (a keyframe opens every short sample, a
# quarter of the frames scored), at up to 0.32. Where they fall is ``stratified_spans``:
# by the source's own bit rate, not by the clock.
PROBE_RULES = SampleRules(
    length_s=1.5, every_s=30.0, min_count=1, min_count_above_s=0.0, whole_share=0.85
)
# Stretches whose source bit rates are within this factor of their band's lowest rank as
# equally hard (``stratified_spans``).
RATE_BIN = 1.25
# A source that holds unlike scenes gets a sample for each (``sample_count``): stretches
# whose bit rates are within CLASS_FACTOR of their class's lowest are one kind of picture,
# and a class counts when it holds MIN_CLASS_SHARE of the running time. The extra samples
# stop at MAX_SAMPLED_SHARE of the running time, 1.5 times what the clock's rule takes
# (5 %), which keeps the probes within 30 % of the ladder's encode.
CLASS_FACTOR = 2.0
MIN_CLASS_SHARE = 0.15
MAX_SAMPLED_SHARE = 0.075
# The largest size is probed on its own first (``probe_points``) only for a source coded
# at under this many bits per pixel per frame (``source_bpp``): a still picture, the only
# kind whose ladder is one rung, takes a few thousandths at most, at any quality (the
# benchmark's SMPTE bars: 0.0004), busy video tens of times more (a test pattern squeezed
# to 1.2 Mb/s at 720p24: 0.054). For a busy source the split is only a second pass over
# its samples: 8 % more probe CPU at 1.2 Mb/s, 10 % at 21 Mb/s, for nothing.
TOP_FIRST_BELOW_BPP = 0.02
# Odd on purpose: an even step lines up with x264's frame-type pattern and scores mostly
# one kind of frame (every 4th frame of a noisy clip scored 3.4 points above all of them;
# every 3rd, 5th or 7th within 0.3).
PROBE_SUBSAMPLE = 5


@dataclass(frozen=True)
class Point:
    """One measurement (or interpolation) of a size at a CRF: its video rate and VMAF."""

    short: int  # the rung's short side
    crf: int
    kbps: float
    vmaf: float


@dataclass(frozen=True)
class Pick:
    """A rung chosen on the frontier: its size, the CRF to encode it at, its expected rate
    and VMAF, and the peak cap it is encoded with."""

    short: int
    crf: int
    kbps: float
    vmaf: float
    maxrate_kbps: int


def _distance(vmaf: float) -> float:
    # crfsearch's scale: the distance to a perfect score grows about linearly with the CRF.
    return math.log(100.0 + CEILING_SLACK - min(vmaf, 100.0))


def _from_distance(d: float) -> float:
    return min(100.0, 100.0 + CEILING_SLACK - math.exp(d))


def curve_points(probes: Iterable[Point], extend: int = EXTEND_CRF) -> list[Point]:
    """Each size's probes filled in at every integer CRF from ``extend`` below its lowest
    probe to ``extend`` above its highest (within ``CRF_MIN``..``CRF_MAX``), piecewise
    linear in the CRF on log rate and on VMAF's distance to 100 (pure). A size probed at
    one CRF keeps that one point."""
    by_size: dict[int, list[Point]] = {}
    for p in probes:
        by_size.setdefault(p.short, []).append(p)
    out: list[Point] = []
    for short, found in by_size.items():
        pts = sorted({p.crf: p for p in found}.values(), key=lambda p: p.crf)
        if len(pts) == 1:
            out += pts
            continue
        lo = max(CRF_MIN, pts[0].crf - extend)
        hi = min(CRF_MAX, pts[-1].crf + extend)
        for crf in range(lo, hi + 1):
            # the segment holding crf, or the end one for crfs outside the probes
            i = next((k for k in range(len(pts) - 1) if crf <= pts[k + 1].crf), len(pts) - 2)
            a, b = pts[i], pts[i + 1]
            t = (crf - a.crf) / (b.crf - a.crf)
            log_rate = math.log(a.kbps) + t * (math.log(b.kbps) - math.log(a.kbps))
            d = _distance(a.vmaf) + t * (_distance(b.vmaf) - _distance(a.vmaf))
            out.append(Point(short, crf, round(math.exp(log_rate), 3), round(_from_distance(d), 4)))
    return out


def upper_hull(points: Iterable[Point]) -> list[Point]:
    """The upper convex hull of ``points`` in (log kb/s, VMAF), cheapest first, cut where
    VMAF stops rising (pure): the points no mix of others beats at their rate. Every
    vertex is on the ``frontier``; rungs are picked on the frontier, not here."""
    pts = sorted((p for p in points if p.kbps > 0), key=lambda p: (math.log(p.kbps), p.vmaf))
    hull: list[Point] = []
    for p in pts:
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], p) >= 0:
            hull.pop()
        hull.append(p)
    # the upper hull runs from the cheapest point to the most expensive; keep its rising
    # part, from the best point at the cheapest rate to the best point overall
    best = max(range(len(hull)), key=lambda k: (hull[k].vmaf, -hull[k].kbps), default=-1)
    rising = hull[: best + 1]
    while len(rising) >= 2 and rising[1].vmaf <= rising[0].vmaf:
        rising.pop(0)  # a cheaper point as good: the first was beaten
    return rising


def frontier(points: Iterable[Point]) -> list[Point]:
    """The points no other point beats, cheapest first (pure): each has a higher VMAF
    than every cheaper point. Rungs are picked on it: the convex hull's vertices are among
    them, but where two sizes' curves cross, the hull spans the crossing with one straight
    edge and has no point in between that anything can be encoded at (on a noisy 720p
    source, the hull's cheapest point above VMAF 67 scored 84)."""
    out: list[Point] = []
    for p in sorted(points, key=lambda p: (p.kbps, -p.vmaf)):
        if p.kbps > 0 and (not out or p.vmaf > out[-1].vmaf):
            out.append(p)
    return out


def _cross(o: Point, a: Point, b: Point) -> float:
    """Positive when o -> a -> b turns left (a lies under the line o-b)."""
    ox, ax, bx = math.log(o.kbps), math.log(a.kbps), math.log(b.kbps)
    return (ax - ox) * (b.vmaf - o.vmaf) - (a.vmaf - o.vmaf) * (bx - ox)


def pick_rungs(
    frontier_points: Sequence[Point],
    target_vmaf: float,
    *,
    source_short: int,
    max_rungs: int,
    step: float = RATE_STEP,
    floor_kbps: float = FLOOR_KBPS,
    cap_factor: float = CAP_FACTOR,
) -> list[Pick]:
    """The rungs of a ladder on ``frontier_points`` (``frontier``), largest first (pure).

    The top rung is the cheapest point reaching ``target_vmaf`` (the best point when
    none does), among sizes not above ``source_short``. Below it, each rung is the
    point nearest (in log rate) ``step`` times the rate of the rung above, with a short
    side no larger than that rung's and a rate at most ``MIN_STEP`` of it; rungs stop at
    ``max_rungs``, when the rung above is already under ``floor_kbps``, or when the
    frontier has nothing cheaper. A flat source, cheap at every size, so gets fewer rungs.
    """
    usable = [p for p in frontier_points if p.short <= source_short]
    if not usable or max_rungs < 1:
        return []
    reaching = [p for p in usable if p.vmaf >= target_vmaf]
    top = (
        min(reaching, key=lambda p: p.kbps)
        if reaching
        else max(usable, key=lambda p: (p.vmaf, -p.kbps))
    )
    chosen = [top]
    while len(chosen) < max_rungs and chosen[-1].kbps >= floor_kbps:
        last = chosen[-1]
        want = math.log(last.kbps * step)
        below = [p for p in usable if p.short <= last.short and p.kbps <= MIN_STEP * last.kbps]
        if not below:
            break
        chosen.append(min(below, key=lambda p: abs(math.log(p.kbps) - want)))
    return [
        Pick(p.short, p.crf, p.kbps, p.vmaf, max(MIN_CAP_KBPS, math.ceil(p.kbps * cap_factor)))
        for p in chosen
    ]


def predicted_video_bytes(picks: Sequence[Pick], duration_s: float) -> int:
    """The bytes the probes predict for the video of these rungs over ``duration_s``
    (pure): each rung at the rate its curve gave it."""
    return round(sum(p.kbps for p in picks) * 1000 / 8 * max(0.0, duration_s))


def rungs_of(picks: Sequence[Pick], width: int, height: int, fps: Fraction) -> tuple[Rung, ...]:
    """The ladder's rungs of these picks for a source displayed at ``width`` x ``height``:
    each at its pick's size (the source's aspect and orientation), CRF and cap."""
    sizes = {r.short: r for r in choose_rungs(width, height, fps)}
    return tuple(
        Rung(sizes[p.short].width, sizes[p.short].height, p.maxrate_kbps, crf=p.crf) for p in picks
    )


# --- probing a real file -----------------------------------------------------------------


@dataclass(frozen=True)
class Prober:
    """What probing runs with."""

    ffmpeg: str
    scratch: Path  # samples and probe encodes go here, and are removed
    threads: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    stall_timeout_s: float = 300.0
    crfs: tuple[int, ...] = PROBE_CRFS
    rules: SampleRules = PROBE_RULES
    subsample: int = PROBE_SUBSAMPLE
    top_first_below_bpp: float = TOP_FIRST_BELOW_BPP
    preset: str = PRESET  # the ladder's x264 preset: the probes predict its encode
    # Told as each probe command starts (1, 2, ...: one sample at some sizes and every
    # CRF): a running job shows it, as a CRF search's probes.
    on_probe: Callable[[int], None] = lambda _n: None


def stratified_spans(
    duration_s: float,
    keyframes: Sequence[float],
    gop_bytes: Sequence[int],
    count: int,
    rules: SampleRules,
) -> tuple[Span, ...]:
    """``count`` samples that stand for the source's stretches from the easiest to the
    hardest (pure); empty when the source has too few keyframes to choose from.

    Each stretch from a keyframe to the next is ranked by the source's own bit rate there,
    which is high where the picture is hard to encode (the source was encoded at some
    quality, whatever it was); rates within a band (from its lowest rate to ``RATE_BIN``
    times it) rank by time. Walking the ranking with each stretch weighted by its length, sample
    ``k`` starts on the keyframe of the stretch at the ``(k + 1/2) / count`` point, so
    each sample stands for an equal share of the running time, and together they span its
    complexity. Samples placed by time alone see whatever the clock lands on: on a video of
    a still, a busy and a noisy scene, two samples a minute both fell in easy scenes and
    the ladder's top rung came out 10 VMAF below its target.
    """
    stretches = _stretches(duration_s, keyframes, gop_bytes)
    if count < 1 or len(stretches) < max(2, count):
        return ()
    # Rates in one band rank as equal, in time order: what an encoder spends wanders by a
    # few per cent on even content, and ranking by that noise would place the samples
    # anywhere (the first at the very start, where intros and fades are unlike the rest);
    # ranked by time instead, an even source is sampled evenly. A band runs from its
    # lowest rate up to RATE_BIN times it.
    bands: list[list[tuple[float, float, int]]] = []
    for g in sorted(stretches, key=lambda g: g[2] / g[1]):
        if bands and max(g[2], 1) / g[1] <= RATE_BIN * max(bands[-1][0][2], 1) / bands[-1][0][1]:
            bands[-1].append(g)
        else:
            bands.append([g])
    ranked = [g for band in bands for g in sorted(band)]
    total = sum(length for _, length, _ in ranked)
    chosen: list[int] = []
    for k in range(count):
        point, walked, at = total * (k + 0.5) / count, 0.0, len(ranked) - 1
        for i, (_, length, _) in enumerate(ranked):
            walked += length
            if walked >= point:
                at = i
                break
        while at in chosen and at + 1 < len(ranked):
            at += 1  # a long stretch holding two points: the next harder one
        chosen.append(at)
    spans = sorted(
        (ranked[i][0], min(rules.length_s, duration_s - ranked[i][0])) for i in set(chosen)
    )
    return tuple((round(start, 3), round(length, 3)) for start, length in spans)


def _stretches(
    duration_s: float, keyframes: Sequence[float], gop_bytes: Sequence[int]
) -> list[tuple[float, float, int]]:
    """(start, length, bytes) of each stretch from a keyframe to the next (pure)."""
    return [
        (start, end - start, size)
        for start, end, size in zip(
            keyframes, [*keyframes[1:], duration_s], gop_bytes, strict=False
        )
        if end > start
    ]


def scene_classes(duration_s: float, keyframes: Sequence[float], gop_bytes: Sequence[int]) -> int:
    """How many unlike kinds of picture the source holds, judged by its own bit rate (pure):
    its stretches sorted by rate, a class runs from its lowest rate up to ``CLASS_FACTOR``
    times it, and counts when it holds ``MIN_CLASS_SHARE`` of the running time."""
    stretches = _stretches(duration_s, keyframes, gop_bytes)
    total = sum(length for _, length, _ in stretches)
    if total <= 0:
        return 0
    classes: list[list[float]] = []  # [lowest rate, running time]
    for _, length, size in sorted(stretches, key=lambda g: g[2] / g[1]):
        rate = max(size, 1) / length
        if classes and rate <= CLASS_FACTOR * classes[-1][0]:
            classes[-1][1] += length
        else:
            classes.append([rate, length])
    return sum(1 for _, length in classes if length >= MIN_CLASS_SHARE * total)


def sample_count(
    clock: int,
    duration_s: float,
    keyframes: Sequence[float],
    gop_bytes: Sequence[int],
    rules: SampleRules = PROBE_RULES,
) -> int:
    """How many samples the probes take (pure): the clock's ``clock`` (one every
    ``rules.every_s``), or one per kind of picture (``scene_classes``) when the source
    holds more, up to ``MAX_SAMPLED_SHARE`` of its running time.

    Two samples a minute cannot stand for a minute of a still, a busy and a noisy scene:
    whichever two they hit, the third is missing from the curve, and the per-title top
    rung missed its target by 1.7 VMAF (docs/benchmarks.md). A source of one kind of
    picture keeps the clock's count, and its probes cost what they did.
    """
    room = int(MAX_SAMPLED_SHARE * duration_s / rules.length_s) if rules.length_s > 0 else 0
    return max(clock, min(scene_classes(duration_s, keyframes, gop_bytes), room))


def probe_args(
    ffmpeg: str,
    sample: Path,
    outs: Sequence[tuple[Rung, int, Path]],
    fps: Fraction,
    *,
    stream: str = "0:v:0",
    threads: int | None = None,
    deinterlace: bool = False,
    rgb: bool = False,
    alpha: bool = False,
    alpha_decoder: str = "",
    colours: str = "",
    preset: str = PRESET,
    window: Window | None = None,
    source_size: tuple[int, int] = (0, 0),
) -> list[str]:
    """One ffmpeg command encoding ``sample`` (``window`` of it, when given) once per
    ``(rung size, CRF, path)`` of ``outs``, from one decode of the sample, with the
    ladder's H.264 settings (frame rate, scaler, preset, profile, GOP) and no cap: the cap
    is derived from what these measure. Each size is scaled once and split between its
    CRFs. ``colours``: the filter stating what the source leaves unstated of its colours,
    as the ladder's rungs state it (``ladder.source_colours``), so that a probe is scored
    in the colours its rung will be shown in. ``source_size``: the source's size the
    plan is made at, upright (``LadderPlan.source_size``), scaled as the ladder scales
    it."""
    gop = str(max(1, round(fps * 2)))
    args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    if threads:
        args += ["-threads", str(threads)]
    # ``stream`` is "0:<spec>"; the decoder option names the same stream of the input.
    args += decoder_args(stream.split(":", 1)[1], alpha_decoder)
    args += [*window_args(window), "-i", f"file:{sample}", "-progress", "pipe:1", "-nostats"]
    sizes: dict[tuple[int, int], list[int]] = {}
    for i, (r, _, _) in enumerate(outs):
        sizes.setdefault((r.width, r.height), []).append(i)
    filters = source_filters(deinterlace=deinterlace, rgb=rgb, alpha=alpha)
    first = "".join(f"{f}," for f in [*filters, colours] if f)  # as the ladder
    chains = [
        f"[{stream}]{first}fps={fps},split={len(sizes)}"
        + "".join(f"[s{k}]" for k in range(len(sizes)))
    ]
    for k, ((width, height), members) in enumerate(sizes.items()):
        chains.append(
            f"[s{k}]{fit_picture(width, height, first=source_size)},setsar=1,split={len(members)}"
            + "".join(f"[v{i}]" for i in members)
        )
    args += ["-filter_complex", ";".join(chains)]
    for i, (_, crf, out) in enumerate(outs):
        args += ["-map", f"[v{i}]", "-c:v", "libx264", "-preset", preset, "-crf", str(crf)]
        args += ["-profile:v", "high", "-pix_fmt", "yuv420p", "-g", gop, "-keyint_min", gop]
        args += ["-x264-params", "open-gop=0:scenecut=0", "-an", "-f", "matroska", f"file:{out}"]
    return args


def one_rung_suffices(points: Sequence[Point], target_vmaf: float, *, max_rungs: int) -> bool:
    """Whether the largest size's probes alone settle the ladder (pure): the cheapest
    point reaching ``target_vmaf`` costs under ``FLOOR_KBPS``, so the ladder is that one
    rung and no rung goes below it. A smaller size could only reach the target for less
    than that, which no viewer's bandwidth needs."""
    if not points:
        return False
    top = max(p.short for p in points)
    picks = pick_rungs(
        frontier(curve_points(points)), target_vmaf, source_short=top, max_rungs=max_rungs
    )
    return len(picks) == 1 and picks[0].vmaf >= target_vmaf and picks[0].kbps < FLOOR_KBPS


def source_bpp(
    video_bytes: int, duration_s: float | None, pixels: int, fps: Fraction
) -> float | None:
    """Bits per pixel per frame the source's video was coded at (pure); None when a
    figure is missing."""
    if video_bytes <= 0 or not duration_s or pixels <= 0 or fps <= 0:
        return None
    return video_bytes * 8 / duration_s / (pixels * float(fps))


def probe_points(
    run: Prober,
    src: Path,
    info: MediaInfo,
    target_vmaf: float | None = None,
    *,
    fps: Fraction | None = None,
) -> list[Point]:
    """Encode and score the probes of ``src``: every rung size at every CRF of
    ``run.crfs`` on the samples; one measured point per size and CRF (VMAF weighted by
    each sample's frames, rate over all samples' video).

    Given ``target_vmaf``, a source coded at under ``run.top_first_below_bpp`` bits per
    pixel is probed at its largest size first, and at the smaller ones only when that does not
    settle the ladder on its own (``one_rung_suffices``): a still or simple picture,
    cheap at the top, is then probed at one size, a third of the work. ``fps``: the
    ladder's rate when the caller has read it (``ladder_rate``, which reads the file).
    """
    video = info.main_video
    if video is None:
        return []
    width, height = video.display_size
    fps = fps or ladder_rate(src, video)
    rungs = choose_rungs(width, height, fps)
    # Samples start on keyframes, as a stream copy does anyway (else a sparse-GOP source
    # would make each one a whole GOP long), chosen by how hard each stretch is.
    # Over the picture, where it ends well before the file (``SourceScan.picture``).
    scanned = scan_source(src, video.index)
    plan, (start, picture) = picture_samples(scanned, info.duration_s, run.rules)
    if not plan.whole and picture:
        end = start + picture
        count = sample_count(len(plan.spans), end, scanned.keyframes, scanned.gop_bytes, run.rules)
        spans = stratified_spans(end, scanned.keyframes, scanned.gop_bytes, count, run.rules)
        if spans:
            plan = SamplePlan(whole=False, spans=spans)
        elif plan.displaced:
            # Too few keyframes to place samples that stand for the rest: each is read
            # where it was planned, decoded from the keyframe before it (as crfsearch's).
            plan = SamplePlan(whole=False, spans=plan.planned, seek=True)
    samples: list[Path] = []
    try:
        inputs, stream = _probe_inputs(run, src, video.index, plan, samples)
        # (short, crf) -> [weighted vmaf, frames, bytes, seconds]
        sums: dict[tuple[int, int], list[float]] = {}
        measure = partial(
            _measure,
            run=run,
            inputs=inputs,
            stream=stream,
            fps=fps,
            interlaced=video.interlaced,
            rgb=video.rgb,
            alpha=video.alpha,
            alpha_decoder=video.alpha_decoder,
            colours=source_colours(video),
            source_size=video.upright_size,
            sums=sums,
            started=itertools.count(1),
        )
        bpp = source_bpp(sum(scanned.gop_bytes), picture, video.width * video.height, fps)
        if target_vmaf is None or bpp is None or bpp >= run.top_first_below_bpp:
            measure(rungs)
        else:
            measure(rungs[:1])
            if not one_rung_suffices(_points(sums), target_vmaf, max_rungs=len(rungs)):
                measure(rungs[1:])
    finally:
        for s in samples:
            s.unlink(missing_ok=True)
    return _points(sums)


def _probe_inputs(
    run: Prober, src: Path, video_index: int, plan: SamplePlan, made: list[Path]
) -> tuple[list[tuple[Path, Window | None]], str]:
    """What the probes read, as ``_measure`` takes it (each file and the window of it to
    read), and the video stream they read of it; every file made for them is added to
    ``made`` (the caller removes them): the source whole, its windows (in place, or in a
    copy of its video when its container has no keyframe index to seek by), or its cut
    samples."""
    if plan.whole:
        return [(src, None)], f"0:{video_index}"
    if plan.seek:
        if seeks_by_keyframe(src):
            return [(src, span) for span in plan.spans], f"0:{video_index}"
        copy = run.scratch / "pertitle-sample-seekable"
        made.append(copy)
        video_copy(
            run.ffmpeg, src, video_index, copy, stop=run.stop, stall_timeout_s=run.stall_timeout_s
        )
        return [(copy, span) for span in plan.spans], "0:0"
    made += cut_samples(
        run.ffmpeg,
        src,
        plan.spans,
        video_index,
        run.scratch,
        prefix="pertitle-sample",
        stop=run.stop,
        stall_timeout_s=run.stall_timeout_s,
    )
    return [(sample, None) for sample in made], "0:0"


def _points(sums: dict[tuple[int, int], list[float]]) -> list[Point]:
    return [
        Point(short, crf, round(b * 8 / s / 1000, 3), round(v / f, 4))
        for (short, crf), (v, f, b, s) in sorted(sums.items())
        if f and s > 0
    ]


def _measure(
    rungs: Sequence[Rung],
    *,
    run: Prober,
    inputs: Sequence[tuple[Path, Window | None]],
    stream: str,
    fps: Fraction,
    interlaced: bool,
    rgb: bool,
    alpha: bool,
    alpha_decoder: str,
    colours: str,
    source_size: tuple[int, int],
    sums: dict[tuple[int, int], list[float]],
    started: Iterator[int],
) -> None:
    """Encode each of ``inputs`` (a file, and the window of it to read, if any) at every
    size of ``rungs`` and CRF of ``run.crfs`` in one command, score the probes in one run,
    and add them to ``sums``."""
    if not rungs:
        return
    for sample, window in inputs:
        run.on_probe(next(started))
        outs = [
            (r, crf, run.scratch / f"pertitle-probe-{r.short}-{crf}.mkv")
            for r in rungs
            for crf in run.crfs
        ]
        try:
            args = probe_args(
                run.ffmpeg,
                sample,
                outs,
                fps,
                stream=stream,
                threads=run.threads,
                deinterlace=interlaced,
                rgb=rgb,
                alpha=alpha,
                alpha_decoder=alpha_decoder,
                colours=colours,
                preset=run.preset,
                window=window,
                source_size=source_size,
            )
            run_ffmpeg(args, on_progress=None, stop=run.stop, stall_timeout_s=run.stall_timeout_s)
            scores = score_batch(
                run.ffmpeg,
                sample,
                [out for _, _, out in outs],
                threads=run.threads or 1,
                subsample=run.subsample,
                window=window,
                made_at=fps,  # as the probes' frames were picked (``quality.aligned``)
                watch=Watch(run.stop, run.stall_timeout_s),
            )
            for (r, crf, out), got in zip(outs, scores, strict=True):
                size, seconds = video_size(out)
                acc = sums.setdefault((r.short, crf), [0.0, 0.0, 0.0, 0.0])
                acc[0] += got.mean * got.frames
                acc[1] += got.frames
                acc[2] += size
                acc[3] += seconds
        finally:
            for _, _, out in outs:
                out.unlink(missing_ok=True)


def per_title_rungs(
    run: Prober, src: Path, info: MediaInfo, target_vmaf: float
) -> tuple[tuple[Rung, ...], list[Pick]]:
    """The rungs of ``src``'s per-title ladder for ``target_vmaf`` (each with its CRF and
    cap), and the picks they came from; no rungs when it has no video."""
    video = info.main_video
    if video is None:
        return (), []
    width, height = video.display_size
    fps = ladder_rate(src, video)
    fixed = choose_rungs(width, height, fps)
    points = probe_points(run, src, info, target_vmaf, fps=fps)
    picks = pick_rungs(
        frontier(curve_points(points)),
        target_vmaf,
        source_short=fixed[0].short,
        max_rungs=len(fixed),
    )
    return rungs_of(picks, width, height, fps), picks
