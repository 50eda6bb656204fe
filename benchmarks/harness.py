"""Shared benchmark plumbing: repeated measurements, medians, side-by-side ratios."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    """One reported figure: a median over runs, with its spread and optional target."""

    name: str
    unit: str
    median: float
    min: float
    max: float
    runs: int
    target: str | None = None
    met: bool | None = None
    notes: str = ""
    samples: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def figure(
    name: str,
    unit: str,
    samples: list[float],
    *,
    target: str | None = None,
    met: Callable[[float], bool] | None = None,
    notes: str = "",
) -> Figure:
    """Summarise samples as a Figure; ``met`` judges the median against the target."""
    med = statistics.median(samples)
    return Figure(
        name=name,
        unit=unit,
        median=med,
        min=min(samples),
        max=max(samples),
        runs=len(samples),
        target=target,
        met=None if met is None else bool(met(med)),
        notes=notes,
        samples=list(samples),
    )


def timed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(
    ours: Callable[[], object], baseline: Callable[[], object], runs: int
) -> tuple[list[float], list[float], list[float]]:
    """Alternate ours and the baseline ``runs`` times; return both timings and the ratios."""
    ours_s, base_s = [], []
    for _ in range(runs):
        base_s.append(timed(baseline))
        ours_s.append(timed(ours))
    return ours_s, base_s, [o / b for o, b in zip(ours_s, base_s, strict=True)]


def read_events(log: Path) -> list[dict[str, Any]]:
    """The JSON events of a log file, skipping lines that are not JSON (a killed
    process's last line may be cut short)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
