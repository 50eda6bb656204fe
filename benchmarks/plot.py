"""The overhead at a glance: end-to-end seconds against clip duration, hevcq and bare ffmpeg."""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks.bench_farm import Series


def plot(series: Series, dest: Path) -> Path:
    """Write the PNG; medians as lines, min to max as error bars."""
    import matplotlib  # noqa: PLC0415 - optional (bench extra), only needed here

    matplotlib.use("Agg")  # no display on CI machines
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for label, runs, marker in (
        ("hevcq (embedded farm)", series.ours, "o"),
        ("bare ffmpeg, same arguments", series.bare, "s"),
    ):
        med = [statistics.median(r) for r in runs]
        low = [m - min(r) for m, r in zip(med, runs, strict=True)]
        high = [max(r) - m for m, r in zip(med, runs, strict=True)]
        ax.errorbar(series.durations, med, yerr=[low, high], marker=marker, capsize=3, label=label)
    ax.set_xlabel("clip duration (s)")
    ax.set_ylabel("end-to-end time (s)")
    ax.set_title(f"{series.pool} pool, {series.size} H.264 clips: upload to downloaded output")
    ax.grid(alpha=0.3)
    ax.legend()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(dest)
    plt.close(fig)
    return dest
