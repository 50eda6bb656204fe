"""A library of many small files through the embedded farm: does a run slow as it goes?

``hevcq ingest`` runs as a user runs it, off a terminal, on ``FILES`` distinct one-second
clips (the hevc pool only), and each result line is timed as it is printed. What a run
does per job must not grow with the jobs it has done: the seconds per result over the
last third of the run against the first third (target <= 1.25). An ingest that read the
whole ledger on each turn of its loop made this 4.9 on 1,000 files (decision in
docs/benchmarks.md, "Ledger reads").
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import Figure, figure
from hevcq.media.samples import make_clip

FILES = 1000
QUICK_FILES = 90
GROWTH_TARGET = 1.25
RUN_TIMEOUT_S = 3600


def library(root: Path, files: int) -> Path:
    """``files`` distinct one-second clips (each its own size), 50 to a folder."""
    for i in range(files):
        make_clip(
            root / f"d{i // 50:02d}" / f"c{i:04d}.mp4",
            width=64 + 2 * (i % 32),
            height=48 + 2 * (i // 32 % 32),
            seconds=1.0,
        )
    return root


def result_times(lib: Path, work: Path) -> tuple[list[float], float]:
    """Seconds from the start at which each result line came; the run's wall time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))}
    env |= {"XDG_STATE_HOME": str(work / "state"), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "hevcq", "ingest", str(lib), "--out", str(work / "out")]
    cmd += ["--pools", "hevc", "--no-dashboard", "--timeout", str(RUN_TIMEOUT_S)]
    start, times = time.monotonic(), []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=work)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(("placed ", "failed ", "skipped ")) and " [hevc]" in line:
            times.append(time.monotonic() - start)
    if proc.wait() != 0:
        raise RuntimeError(f"ingest exited {proc.returncode}")
    return times, time.monotonic() - start


def run(quick: bool = False) -> list[Figure]:
    """One run (minutes): throughput, and the last third's pace against the first's."""
    files = QUICK_FILES if quick else FILES
    with tempfile.TemporaryDirectory(prefix="hevcq-many-") as tmp:
        work = Path(tmp)
        lib = library(work / "lib", files)
        times, wall = result_times(lib, work)
    if len(times) != files:
        raise RuntimeError(f"{len(times)} results for {files} files")
    gaps = [b - a for a, b in itertools.pairwise(times)]
    third = len(gaps) // 3
    first, last = statistics.mean(gaps[:third]), statistics.mean(gaps[-third:])
    return [
        figure(f"{files} small files: wall time", "s", [wall]),
        figure(f"{files} small files: results per minute", "/min", [60 * files / wall]),
        figure(f"{files} small files: first third", "s/result", [first]),
        figure(f"{files} small files: last third", "s/result", [last]),
        figure(
            f"{files} small files: last third / first third",
            "x",
            [last / first],
            target=f"<= {GROWTH_TARGET}",
            met=lambda v: v <= GROWTH_TARGET,
        ),
    ]
