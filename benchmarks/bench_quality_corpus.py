"""The quality-target figures on a generated corpus: pure parts only so far.

This module holds the arithmetic that the corpus benchmark reports and the baseline it is
compared with; the corpus generator and the encode loop are not written yet, so the module
is not listed in ``benchmarks/__main__.py`` NAMES.

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
