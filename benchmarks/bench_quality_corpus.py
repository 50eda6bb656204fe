"""The quality-target figures on a generated corpus: pure parts only so far.

This module holds the corpus spec and the ffmpeg arguments that write each source, the
arithmetic the benchmark reports, and the baseline it is compared with. The loop that
generates and caches the corpus, runs the searches and encodes, and reports the figures is
not written yet, so the module has no ``run`` and is not in ``benchmarks/__main__.py`` NAMES.

The baseline is ab-av1's ``crf-search`` as its README describes it, reimplemented here from
that description (no code of ab-av1 was read or copied):

- samples of 20 s, one per 12 minutes of input (``--sample-every 12m``), at least one;
- a full pass instead of samples when the samples would cover most of the file;
- a binary search between a minimum and maximum CRF, the next CRF interpolated between the
  nearest probes either side of the target VMAF; it stops when the two bracketing CRFs are
  adjacent, and answers the highest CRF whose VMAF reaches the target;
- predicted size = the samples' encoded percent of their input times the input size, and a
  result above ``max-encoded-percent`` (80) is refused.

Checked against the published descriptions: the README and ``crf-search --help`` text
(docs.rs/crate/ab-av1, "Interpolated binary search using sample-encode to find the best crf
value delivering --min-vmaf & --max-encoded-percent"; defaults min-vmaf 95,
max-encoded-percent 80, min-crf 10) and the v0.6.0 release notes (max-crf 46 for libx264 and
libx265, crf-increment 0.1 for them, a ``--thorough`` mode). Not reproduced here: the 0.1 CRF
increment (hevcq's pools use integer CRFs, so this baseline steps by 1), ``--thorough``, and
the exact full-pass threshold, which the descriptions do not state ("more than half" is this
module's reading). The sample count rule (one per 12 minutes, at least one) follows the
``--sample-every`` option's description.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SAMPLE_SECONDS = 20.0
SAMPLE_EVERY_SECONDS = 12 * 60.0
FULL_PASS_SHARE = 0.5  # "most of the file": more than half
MAX_ENCODED_PERCENT = 80.0


def baseline_samples(duration_s: float) -> int | None:
    """How many 20 s samples the baseline cuts; ``None`` when it encodes the whole file."""
    count = max(1, math.ceil(duration_s / SAMPLE_EVERY_SECONDS))
    if count * SAMPLE_SECONDS >= FULL_PASS_SHARE * duration_s:
        return None
    return count


@dataclass(frozen=True)
class Probe:
    """One probe of the baseline: a CRF, its VMAF, and the encoded percent of the input."""

    crf: int
    vmaf: float
    encoded_percent: float


def baseline_next_crf(probes: Sequence[Probe], target: float, lo: int, hi: int) -> int | None:
    """The next CRF to probe, or ``None`` when the bracket is closed.

    ``lo`` and ``hi`` are the search's CRF limits; a probe reaching the target raises the
    lower edge (a higher CRF may still pass), one falling short lowers the upper edge.
    """
    good = [p for p in probes if p.vmaf >= target]
    bad = [p for p in probes if p.vmaf < target]
    below = max(good, key=lambda p: p.crf) if good else None
    above = min(bad, key=lambda p: p.crf) if bad else None
    low = below.crf if below else lo - 1
    high = above.crf if above else hi + 1
    if high - low <= 1:
        return None
    if below and above and below.vmaf != above.vmaf:
        share = (below.vmaf - target) / (below.vmaf - above.vmaf)
        crf = round(below.crf + share * (above.crf - below.crf))
    else:
        crf = (low + high) // 2
    return min(max(crf, low + 1), high - 1)


def baseline_search(
    measure: Callable[[int], Probe], target: float, lo: int, hi: int
) -> Probe | None:
    """Probe until the bracket closes; the highest passing probe, or ``None`` if none does
    or if its encoded percent is above the limit."""
    probes: list[Probe] = []
    while (crf := baseline_next_crf(probes, target, lo, hi)) is not None:
        probes.append(measure(crf))
    good = [p for p in probes if p.vmaf >= target]
    if not good:
        return None
    best = max(good, key=lambda p: p.crf)
    return best if best.encoded_percent <= MAX_ENCODED_PERCENT else None


def predicted_bytes(encoded_percent: float, input_bytes: int) -> int:
    """The baseline's size prediction."""
    return round(encoded_percent / 100.0 * input_bytes)


def share_within_vmaf(finals: Sequence[float], target: float, tolerance: float = 1.0) -> float:
    """Share of files whose final VMAF is within ``tolerance`` of the target."""
    return sum(abs(v - target) <= tolerance for v in finals) / len(finals)


def share_within_size(pairs: Sequence[tuple[int, int]], tolerance: float = 0.10) -> float:
    """Share of (predicted, actual) byte pairs within ``tolerance`` of the actual."""
    return sum(abs(p - a) / a <= tolerance for p, a in pairs) / len(pairs)


def cpu_ratios(pairs: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Median and maximum of search CPU over final-encode CPU."""
    ratios = [s / e for s, e in pairs]
    return statistics.median(ratios), max(ratios)


def bytes_saved(rows: Sequence[tuple[int, float, int, float]]) -> tuple[float, int]:
    """Share of bytes saved against the fixed CRF, and on how many files, counting only the
    files where the searched output's VMAF is at least the fixed one's.

    Each row is (searched bytes, searched VMAF, fixed bytes, fixed VMAF).
    """
    kept = [(b, fb) for b, v, fb, fv in rows if v >= fv]
    if not kept:
        return 0.0, 0
    return 1.0 - sum(b for b, _ in kept) / sum(fb for _, fb in kept), len(kept)


@dataclass(frozen=True)
class Source:
    """One corpus file: its kind, length, and the lavfi graph that makes it."""

    name: str
    kind: str
    seconds: float
    graph: str
    pix_fmt: str = "yuv420p"
    rotation: int = 0
    vfr: bool = False


KINDS = ("screen", "static", "grain", "night", "sport", "phone-vfr", "portrait", "10-bit")


def corpus(quick: bool = False) -> list[Source]:
    """The corpus: four files of each kind at short lengths, and two of 10 minutes or more
    at 240p for the search-CPU figure; ``quick`` keeps one short file of four kinds."""
    size = "640x360"
    graphs = {
        "screen": f"testsrc2=s={size}:r=30,drawgrid=w=40:h=20:t=1:c=white@0.5",
        "static": f"smptebars=s={size}:r=30",
        "grain": f"testsrc2=s={size}:r=24,noise=alls=25:allf=t+u",
        "night": f"testsrc2=s={size}:r=30,eq=brightness=-0.35:contrast=0.5,noise=alls=12:allf=t",
        "sport": f"mandelbrot=s={size}:r=30",
        "phone-vfr": f"testsrc2=s={size}:r=30,noise=alls=6:allf=t",
        "portrait": "testsrc2=s=360x640:r=30",
        "10-bit": f"testsrc2=s={size}:r=30,noise=alls=8:allf=t",
    }
    out: list[Source] = []
    for kind in KINDS:
        for i, seconds in enumerate((10.0, 20.0, 30.0, 40.0)):
            out.append(
                Source(
                    name=f"{kind}-{i}",
                    kind=kind,
                    seconds=seconds,
                    graph=graphs[kind],
                    pix_fmt="yuv420p10le" if kind == "10-bit" else "yuv420p",
                    rotation=90 if kind == "portrait" else 0,
                    vfr=kind == "phone-vfr",
                )
            )
    out += [
        Source("long-screen", "screen", 600.0, "testsrc2=s=426x240:r=24"),
        Source("long-grain", "grain", 660.0, "testsrc2=s=426x240:r=24,noise=alls=20:allf=t"),
    ]
    if quick:
        return [s for s in out if s.name in {"screen-0", "grain-0", "portrait-0", "10-bit-0"}]
    return out


def source_args(src: Source, out: str) -> list[str]:
    """The ffmpeg arguments (after the binary) that write ``src`` as H.264 to ``out``."""
    graph = src.graph
    if src.vfr:
        # Drop frames in an uneven pattern so the timestamps are variable, as a phone writes.
        graph += ",select='not(eq(mod(n\\,7)\\,3))*not(eq(mod(n\\,11)\\,5))'"
    args = ["-y", "-f", "lavfi", "-i", graph, "-t", str(src.seconds)]
    if src.vfr:
        args += ["-fps_mode", "vfr"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", src.pix_fmt]
    if src.rotation:
        args = ["-display_rotation", str(src.rotation), "-noautorotate", *args]
    return [*args, out]
