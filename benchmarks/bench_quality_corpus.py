"""The quality-target figures on a generated corpus (issue 27, point 5).

Each corpus file (``corpus``: lavfi sources of eight kinds written as H.264, cached under
``benchmarks/.cache``) goes through the hevc pool (``workers/hevc.yaml``, CRF 26) three ways:
at its fixed CRF; through hevcq's CRF search (``find_crf``, as the worker's ``_search_crf``
calls it, without the probe cache) for VMAF 95 within 80 % of the source's size, then a
full encode at the CRF found; and through the baseline's search, then its full encode.
Every full encode is scored full-length (``quality.score``). The figures, for hevcq and the
baseline side by side: the share of files whose final VMAF is within 1.0 of 95, the share
whose predicted size is within 10 % of the actual one, search CPU over final-encode CPU on
the sources of 10 minutes or more, and bytes saved against the fixed CRF on the files whose
VMAF is at least the fixed encode's; and, beside that per-file comparison, bytes saved
against the one fixed CRF that reaches the target on every file the search encoded (the
lowest CRF it chose: what a fixed-CRF pool would need to promise the same quality
everywhere), each file encoded and scored at that CRF too. A file a search keeps as it
was (the target is not reached within the size limit) has no final encode and is left out
of that search's shares; how many were kept is in each figure's notes. ``--quick`` runs
the 10 s file of each kind; ``BENCH_CORPUS_FILES`` (a comma list of names or kinds) runs
part of the corpus.

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
``--sample-every`` option's description; where the samples sit is not described, and this
baseline spreads them evenly. Its probes encode with the pool's own arguments, as hevcq's do.
On a full pass its prediction is a full encode's size, so it is exact by construction.

ab-av1 itself is not run: it is a Rust crate, and this machine cannot reach the crate
registry to build it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.bench_ladder import _cpu_of
from benchmarks.clips import generated
from benchmarks.harness import Figure, figure
from hevcq.media.crfsearch import (
    Searcher,
    SearchResult,
    Unreachable,
    cut_sample,
    find_crf,
    probe_plan,
)
from hevcq.media.decide import decide
from hevcq.media.ffargs import build_args
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.model import EncodePlan, MediaInfo
from hevcq.media.probe import probe
from hevcq.media.quality import score
from hevcq.pools import TARGET_SIZE_PERCENT, Pool, load_pool

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


def guarantee_crf(crfs: Sequence[int]) -> int | None:
    """The CRF one fixed-CRF pool needs for every file to reach the target: the lowest of
    the CRFs the search found per file, since VMAF falls as the CRF rises."""
    return min(crfs) if crfs else None


@dataclass(frozen=True)
class Guarantee:
    """A search's outputs against one fixed CRF that promises the same target everywhere."""

    crf: int
    files: int
    searched_bytes: int
    fixed_bytes: int
    below_target: int  # files the fixed CRF still left under the target (0 if it holds)
    searched_min_vmaf: float
    fixed_min_vmaf: float

    @property
    def saved(self) -> float:
        """Share of the fixed CRF's bytes the search's outputs do without."""
        return 1.0 - self.searched_bytes / self.fixed_bytes


def guarantee(pairs: Sequence[tuple[Encoded, Encoded]], target: float) -> Guarantee:
    """The comparison over ``pairs``: per file, (the search's final encode, the same file
    at the guarantee CRF). Every pair's second encode is at one CRF."""
    [crf] = {fixed.crf for _, fixed in pairs}
    return Guarantee(
        crf=crf,
        files=len(pairs),
        searched_bytes=sum(s.bytes for s, _ in pairs),
        fixed_bytes=sum(f.bytes for _, f in pairs),
        below_target=sum(f.vmaf < target for _, f in pairs),
        searched_min_vmaf=min(s.vmaf for s, _ in pairs),
        fixed_min_vmaf=min(f.vmaf for _, f in pairs),
    )


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
    at 240p for the search-CPU figure; ``quick`` keeps the shortest file of each kind."""
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
        return [s for s in out if s.name.endswith("-0")]
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


def source_file(src: Source) -> Path:
    """The corpus file ``src``, generated once and cached (its name carries a hash of the
    arguments that make it, so a changed spec makes a new file)."""
    digest = hashlib.sha256(json.dumps(source_args(src, "out")).encode()).hexdigest()[:10]
    return generated("quality-corpus", f"{src.name}-{digest}.mp4", partial(_args, src))


def _args(src: Source, out: Path) -> list[str]:
    return source_args(src, f"file:{out}")


# --- the run -----------------------------------------------------------------------------

POOL_FILE = Path(__file__).resolve().parents[1] / "workers" / "hevc.yaml"
# The hevc pool names no quality target: 95 is the figure's target, and ab-av1's default
# --min-vmaf; the size limit is hevcq's own default for a search (``TARGET_SIZE_PERCENT``).
TARGET_VMAF = 95.0
BASELINE_CRFS = (10, 46)  # ab-av1's --min-crf default and its libx265 --max-crf
LONG_S = 600.0  # the search-CPU goal is for sources of 10 minutes or more
THREADS = 2


@dataclass(frozen=True)
class Encoded:
    """A full-length encode of one corpus file at one CRF, scored against the file."""

    crf: int
    bytes: int
    vmaf: float
    encode_cpu_s: float


@dataclass(frozen=True)
class Outcome:
    """One search on one file: the CRF it chose and its prediction (``crf`` None: it kept
    the original, ``reason`` says why), its CPU, and the final encode at that CRF."""

    crf: int | None
    predicted_bytes: int
    search_cpu_s: float
    final: Encoded | None
    reason: str = ""


@dataclass(frozen=True)
class Row:
    """One corpus file: the fixed-CRF pool's encode, and hevcq's and the baseline's."""

    name: str
    kind: str
    seconds: float
    input_bytes: int
    fixed: Encoded
    ours: Outcome
    baseline: Outcome


@dataclass(frozen=True)
class Summary:
    """One search's figures over some rows (``None``: no row to measure it on)."""

    files: int
    kept: int  # the search kept the original: nothing encoded, not in the shares below
    vmaf_within: float | None
    size_within: float | None
    long_cpu: tuple[float, ...]  # search CPU over final-encode CPU, sources of LONG_S or more
    saved: float | None
    saved_files: int


def summary(rows: Sequence[Row], side: Callable[[Row], Outcome]) -> Summary:
    """The figures of one search (``side`` picks it from each row) over ``rows``."""
    done = [(r, side(r)) for r in rows]
    encoded = [(r, o, o.final) for r, o in done if o.final is not None]
    if not encoded:
        return Summary(len(rows), len(rows), None, None, (), None, 0)
    vmafs = [f.vmaf for _, _, f in encoded]
    sizes = [(o.predicted_bytes, f.bytes) for _, o, f in encoded]
    long_cpu = [(o.search_cpu_s, f.encode_cpu_s) for r, o, f in encoded if r.seconds >= LONG_S]
    saved, saved_files = bytes_saved(
        [(f.bytes, f.vmaf, r.fixed.bytes, r.fixed.vmaf) for r, _, f in encoded]
    )
    return Summary(
        files=len(rows),
        kept=len(rows) - len(encoded),
        vmaf_within=share_within_vmaf(vmafs, TARGET_VMAF),
        size_within=share_within_size(sizes),
        long_cpu=tuple(s / e for s, e in long_cpu),
        saved=saved if saved_files else None,
        saved_files=saved_files,
    )


def by_kind(rows: Sequence[Row], side: Callable[[Row], Outcome]) -> dict[str, Summary]:
    """``summary`` of each kind's rows, in ``KINDS`` order."""
    return {
        k: summary([r for r in rows if r.kind == k], side)
        for k in KINDS
        if any(r.kind == k for r in rows)
    }


def baseline_spans(duration_s: float, count: int) -> list[tuple[float, float]]:
    """Where the baseline's ``count`` samples of ``SAMPLE_SECONDS`` sit: evenly spread,
    each centred in its equal share of the file."""
    share = duration_s / count
    return [
        (max(0.0, share * (i + 0.5) - SAMPLE_SECONDS / 2), SAMPLE_SECONDS) for i in range(count)
    ]


class _File:
    """One corpus file's encodes and searches; full-length encodes are kept by CRF, so
    the fixed pool's, a final one and a baseline full-pass probe at one CRF are made once
    (ffmpeg's output and its CPU are the same each time)."""

    def __init__(self, ffmpeg: str, src: Path, plan: EncodePlan, scratch: Path) -> None:
        self.ffmpeg, self.src, self.plan, self.scratch = ffmpeg, src, plan, scratch
        self.input_bytes = src.stat().st_size
        self._done: dict[int, Encoded] = {}

    def encode(self, crf: int) -> Encoded:
        """The whole file at ``crf`` with the pool's arguments, scored full-length."""
        if crf not in self._done:
            out = self.scratch / f"crf-{crf}.out"
            args = build_args(
                self.ffmpeg, self.src, out, replace(self.plan, crf=crf), threads=THREADS
            )
            cpu = _cpu_of(partial(subprocess.run, args, check=True, capture_output=True))
            vmaf = score(self.ffmpeg, self.src, out, threads=THREADS).mean
            self._done[crf] = Encoded(crf, out.stat().st_size, vmaf, cpu)
            out.unlink()
        return self._done[crf]

    def ours(self, info: MediaInfo) -> Outcome:
        """hevcq's search, as the worker runs it, then the final encode at its CRF."""
        searcher = Searcher(
            ffmpeg=self.ffmpeg, ffmpeg_version="", scratch=self.scratch, threads=THREADS
        )
        got: list[SearchResult | Unreachable] = []
        find = partial(
            find_crf,
            searcher,
            self.src,
            self.plan,
            info,
            source_id="",  # no cache: every probe is encoded and its CPU counted
            target=TARGET_VMAF,
            max_size_percent=TARGET_SIZE_PERCENT,
        )
        cpu = _cpu_of(lambda: got.append(find()))
        found = got[0]
        if isinstance(found, Unreachable):
            return Outcome(None, 0, cpu, None, found.reason)
        return Outcome(found.crf, found.predicted_bytes, cpu, self.encode(found.crf))

    def baseline(self, duration_s: float) -> Outcome:
        """The baseline's search, then its final encode."""
        count = baseline_samples(duration_s)
        measure = (
            self._whole if count is None else partial(self._sampled, self._cut(duration_s, count))
        )
        got: list[Probe | None] = []
        cpu = _cpu_of(lambda: got.append(baseline_search(measure, TARGET_VMAF, *BASELINE_CRFS)))
        best = got[0]
        if best is None:
            reason = f"VMAF {TARGET_VMAF:g} not reached within {MAX_ENCODED_PERCENT:g} %"
            return Outcome(None, 0, cpu, None, reason)
        predicted = predicted_bytes(best.encoded_percent, self.input_bytes)
        return Outcome(best.crf, predicted, cpu, self.encode(best.crf))

    def _whole(self, crf: int) -> Probe:
        done = self.encode(crf)
        return Probe(crf, done.vmaf, 100.0 * done.bytes / self.input_bytes)

    def _cut(self, duration_s: float, count: int) -> list[Path]:
        return [
            cut_sample(
                self.ffmpeg,
                self.src,
                span,
                self.plan.video_index,
                self.scratch / f"baseline-sample-{i}.mkv",
                stop=threading.Event(),
                stall_timeout_s=600.0,
            )
            for i, span in enumerate(baseline_spans(duration_s, count))
        ]

    def _sampled(self, samples: list[Path], crf: int) -> Probe:
        plan = probe_plan(self.plan, crf, whole=False)
        weighted, frames, encoded, cut = 0.0, 0, 0, 0
        for sample in samples:
            out = self.scratch / "baseline-probe.out"
            args = build_args(self.ffmpeg, sample, out, plan, threads=THREADS)
            subprocess.run(args, check=True, capture_output=True)
            got = score(self.ffmpeg, sample, out, threads=THREADS)
            weighted += got.mean * got.frames
            frames += got.frames
            encoded += out.stat().st_size
            cut += sample.stat().st_size
            out.unlink()
        return Probe(crf, weighted / frames, 100.0 * encoded / cut)


def _planned(pool: Pool, src: Source, path: Path) -> tuple[MediaInfo, EncodePlan]:
    """The corpus file ``src`` (at ``path``) probed, and the pool's plan for it."""
    info = probe(path)
    plan = decide(info, pool, path.name)
    assert isinstance(plan, EncodePlan), f"{src.name}: the {pool.name} pool skips it: {plan}"
    return info, plan


def measure_file(ffmpeg: str, pool: Pool, src: Source, path: Path, scratch: Path) -> Row:
    """Every search and encode of one corpus file."""
    info, plan = _planned(pool, src, path)
    f = _File(ffmpeg, path, plan, scratch)
    baseline = f.baseline(info.duration_s or src.seconds)  # first: nothing of it is reused
    ours = f.ours(info)
    return Row(src.name, src.kind, src.seconds, f.input_bytes, f.encode(plan.crf), ours, baseline)


def encode_at(ffmpeg: str, pool: Pool, src: Source, crf: int) -> Encoded:
    """The whole corpus file ``src`` at ``crf`` with the pool's arguments, scored."""
    path = source_file(src)
    _, plan = _planned(pool, src, path)
    with tempfile.TemporaryDirectory(prefix="hevcq-bench-corpus-") as tmp:
        return _File(ffmpeg, path, plan, Path(tmp)).encode(crf)


def guarantee_pass(
    found: Sequence[tuple[Source, Encoded]],
    encode: Callable[[Source, int], Encoded],
    target: float = TARGET_VMAF,
) -> Guarantee | None:
    """Each file a search encoded (``found``: the file and its final encode), encoded
    again at the guarantee CRF (``encode``; a final already at that CRF is reused), and
    the comparison; None when the search encoded nothing."""
    crf = guarantee_crf([final.crf for _, final in found])
    if crf is None:
        return None
    pairs = [(final, final if final.crf == crf else encode(src, crf)) for src, final in found]
    return guarantee(pairs, target)


SIDES: dict[str, Callable[[Row], Outcome]] = {
    "hevcq": lambda r: r.ours,
    "baseline": lambda r: r.baseline,
}


def figures(rows: Sequence[Row]) -> list[Figure]:
    """Each goal's figure for hevcq's search and the baseline's, judged against the goal."""
    figs: list[Figure] = []
    for label, side in SIDES.items():
        s = summary(rows, side)
        kinds = by_kind(rows, side)
        note = f"{s.files} files, {s.kept} kept as they were (not in the shares)"
        shares = (
            ("vmaf_within", f"final VMAF within 1.0 of {TARGET_VMAF:g}"),
            ("size_within", "predicted size within 10 % of actual"),
        )
        for field, what in shares:
            value = getattr(s, field)
            if value is None:
                continue
            figs.append(
                figure(
                    f"{label}: share of files with {what}",
                    "share",
                    [value],
                    target=">= 0.90",
                    met=lambda m: m >= 0.90,
                    notes=f"{note}; by kind: {kind_note(kinds, field)}",
                )
            )
        if s.long_cpu:
            judged = figure(
                f"{label}: search CPU over final-encode CPU, sources of 10 min or more",
                "x",
                list(s.long_cpu),
                target="<= 0.25 for each",
                notes=f"{len(s.long_cpu)} sources; CPU of this process and its children",
            )
            figs.append(replace(judged, met=max(s.long_cpu) <= 0.25))
        if s.saved is not None:
            figs.append(
                figure(
                    f"{label}: bytes saved against the fixed-CRF hevc pool at equal or better VMAF",
                    "share",
                    [s.saved],
                    target="> 0",
                    met=lambda m: m > 0,
                    notes=f"over the {s.saved_files} of {s.files} files whose VMAF is at least the"
                    f" fixed CRF's; by kind: {kind_note(kinds, 'saved')}",
                )
            )
    return figs


def guarantee_figure(label: str, g: Guarantee) -> Figure:
    """Bytes saved against the one fixed CRF that promises the target on every file: a
    reading of its own beside the per-file figure, so it carries no goal."""
    return figure(
        f"{label}: bytes saved against the one fixed CRF reaching VMAF {TARGET_VMAF:g} on"
        " every file it encoded",
        "share",
        [g.saved],
        notes=f"CRF {g.crf} on {g.files} files: {g.fixed_bytes} bytes against"
        f" {g.searched_bytes}; lowest VMAF {g.fixed_min_vmaf:.2f} fixed,"
        f" {g.searched_min_vmaf:.2f} searched; {g.below_target} fixed encodes under"
        f" {TARGET_VMAF:g}",
    )


def kind_note(kinds: dict[str, Summary], field: str) -> str:
    """One figure per kind, as ``kind value`` pairs (``-``: nothing to measure)."""
    parts = []
    for kind, s in kinds.items():
        value = getattr(s, field)
        parts.append(f"{kind} {'-' if value is None else f'{value:.2f}'}")
    return ", ".join(parts)


def selected(sources: Sequence[Source], only: str) -> list[Source]:
    """The sources named (by name or kind) in a comma list; all of them for an empty one."""
    names = {n.strip() for n in only.split(",") if n.strip()}
    return [s for s in sources if not names or s.name in names or s.kind in names]


def run_corpus(quick: bool = False) -> tuple[list[Figure], dict[str, Any]]:
    """The figures, and the per-file and per-kind detail for the JSON.

    ``BENCH_CORPUS_FILES`` (a comma list of file names or kinds) runs part of the corpus.
    """
    ffmpeg = find_ffmpeg()
    pool = load_pool(POOL_FILE)
    sources = selected(corpus(quick), os.environ.get("BENCH_CORPUS_FILES", ""))
    if not sources:
        raise ValueError("BENCH_CORPUS_FILES names no file or kind of the corpus")
    rows: list[Row] = []
    started = time.monotonic()
    for src in sources:
        path = source_file(src)
        with tempfile.TemporaryDirectory(prefix="hevcq-bench-corpus-") as tmp:
            rows.append(measure_file(ffmpeg, pool, src, path, Path(tmp)))
        elapsed = time.monotonic() - started
        print(f"   {src.name} done, {elapsed:.0f} s so far", file=sys.stderr, flush=True)
    # Encodes the corpus run already made, by file and CRF; the pass adds the rest.
    made = {
        (r.name, e.crf): e for r in rows for e in (r.fixed, r.ours.final, r.baseline.final) if e
    }

    def at(src: Source, crf: int) -> Encoded:
        if (src.name, crf) not in made:
            made[src.name, crf] = encode_at(ffmpeg, pool, src, crf)
        return made[src.name, crf]

    guarantees: dict[str, Guarantee] = {}
    for label, side in SIDES.items():
        found = [
            (src, o.final) for src, r in zip(sources, rows, strict=True) if (o := side(r)).final
        ]
        if (g := guarantee_pass(found, at)) is not None:
            guarantees[label] = g
    detail = {
        "target_vmaf": TARGET_VMAF,
        "max_size_percent": TARGET_SIZE_PERCENT,
        "pool": pool.name,
        "fixed_crf": pool.encode.crf,
        "files": len(rows),
        "rows": [dataclasses.asdict(r) for r in rows],
        "by_kind": {
            label: {k: dataclasses.asdict(s) for k, s in by_kind(rows, side).items()}
            for label, side in SIDES.items()
        },
        "guarantee": {label: dataclasses.asdict(g) for label, g in guarantees.items()},
    }
    extra = [guarantee_figure(label, g) for label, g in guarantees.items()]
    return figures(rows) + extra, detail
