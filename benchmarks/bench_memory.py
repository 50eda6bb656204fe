"""Worker peak memory while it processes a 1 GB source (the encode preset is not measured)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.clips import GiB, big_source
from benchmarks.farmrun import bench_farm
from benchmarks.harness import Figure, figure
from hevcq.limits import MiB

TARGET_MIB = 250
SAMPLE_EVERY_S = 0.05


def peak_hwm(pid: int) -> int | None:
    """The kernel's own peak resident set (VmHWM) of a live process, in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class Peaks:
    """Highest resident set seen for the worker and for its ffmpeg children."""

    worker: int = 0
    ffmpeg: int = 0


def _sample(pid: int, peaks: Peaks, stop: threading.Event) -> None:
    proc = psutil.Process(pid)
    while not stop.wait(SAMPLE_EVERY_S):
        try:
            peaks.worker = max(peaks.worker, peak_hwm(pid) or proc.memory_info().rss)
            for child in proc.children(recursive=True):
                rss = peak_hwm(child.pid) or child.memory_info().rss
                peaks.ffmpeg = max(peaks.ffmpeg, rss)
        except psutil.Error:
            continue  # a child exited between listing and reading: the next sample sees it


def run(quick: bool = False) -> list[Figure]:
    """Peak RSS of the worker process and of ffmpeg for one hevc job on a big source."""
    target, runs = (48 * MiB, 1) if quick else (GiB, 2)
    src = big_source(target)
    worker_mib, ffmpeg_mib = [], []
    for _ in range(runs):
        # A fresh worker per run: VmHWM is a lifetime peak.
        with bench_farm("hevc", preset="ultrafast") as farm:
            pid = farm.worker_pids()[0]
            peaks, stop = Peaks(), threading.Event()
            sampler = threading.Thread(target=_sample, args=(pid, peaks, stop), daemon=True)
            sampler.start()
            try:
                farm.run_job(src)
            finally:
                stop.set()
                sampler.join()
            peaks.worker = max(peaks.worker, peak_hwm(pid) or 0)
        worker_mib.append(peaks.worker / MiB)
        ffmpeg_mib.append(peaks.ffmpeg / MiB)
    size = f"{src.stat().st_size / MiB:.0f} MiB H.264 source, hevc pool with preset ultrafast"
    return [
        figure(
            "worker peak RSS, 1 GB source" if not quick else "worker peak RSS (quick)",
            "MiB",
            worker_mib,
            target=f"< {TARGET_MIB} MiB",
            met=lambda m: m < TARGET_MIB,
            notes=f"{size}; VmHWM of the worker process",
        ),
        figure(
            "ffmpeg peak RSS, same job",
            "MiB",
            ffmpeg_mib,
            notes=f"{size}; sampled every {SAMPLE_EVERY_S} s; not part of the target",
        ),
    ]
