"""Library scale on the embedded farm: memory and temporary disk against library size.

``hevcq ingest`` runs as a user runs it, on libraries of large high-bitrate sources
(lossless-noise 720p H.264; pools at ``preset: ultrafast``, and a 1080p pool that skips
every file). Sampled while it runs: peak RSS of the ingest, of the endpoint and of each
worker; temporary disk (every file under the run's TMPDIR, open-but-deleted ones
included); the download time per GiB as the workers log it; the time to the first output.
Targets: a 4 GiB source with ingest peak RSS < 1 GiB; peaks the same within 10% for a
4 GiB and a 16 GiB library of the same file sizes; a source reaches a worker in time
linear in its size (1.5 GiB in < 30 s, i.e. < 20 s/GiB).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from benchmarks.bench_memory import peak_hwm
from benchmarks.clips import GiB, big_source
from benchmarks.farmrun import pool_dir
from benchmarks.harness import Figure, figure, read_events
from hevcq.limits import MiB

SAMPLE_EVERY_S = 0.2
RUN_TIMEOUT_S = 3 * 3600
INGEST_RSS_TARGET = GiB
DOWNLOAD_S_PER_GIB_TARGET = 20.0
# name -> (bytes per file, files)
CASES = {
    "single 4 GiB source": (4 * GiB, 1),
    "library 4 GiB (8 x 512 MiB)": (512 * MiB, 8),
    "library 16 GiB (32 x 512 MiB)": (512 * MiB, 32),
}
QUICK_CASES = {
    "single 256 MiB source": (256 * MiB, 1),
    "library 256 MiB (4 x 64 MiB)": (64 * MiB, 4),
    "library 1 GiB (16 x 64 MiB)": (64 * MiB, 16),
}


@dataclass
class Sample:
    """Peaks seen during one run, in bytes and seconds."""

    ingest: int = 0
    endpoint: int = 0
    worker: int = 0
    temp_disk: int = 0
    first_output_s: float | None = None
    download_s_per_gib: list[float] = field(default_factory=list)
    wall_s: float = 0.0


def _role(proc: psutil.Process) -> str:
    cmd = " ".join(proc.cmdline())
    if "hevcq.emulator.endpoint" in cmd:
        return "endpoint"
    if " worker " in f"{cmd} ":
        return "worker"
    return "other"


def _temp_bytes(tmp: Path, procs: list[psutil.Process]) -> int:
    """Disk held under ``tmp``: named files plus files open but already deleted."""
    seen: dict[tuple[int, int], int] = {}
    for path in tmp.rglob("*"):
        try:
            st = path.lstat()
        except OSError:
            continue
        seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    for proc in procs:
        try:
            fds = list(Path(f"/proc/{proc.pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if not str(fd.readlink()).startswith(str(tmp)):
                    continue
                st = fd.stat()
            except OSError:
                continue
            seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return sum(seen.values())


def _sample(ingest: psutil.Process, tmp: Path, out: Path, s: Sample, stop: threading.Event) -> None:
    start = time.monotonic()
    while not stop.wait(SAMPLE_EVERY_S):
        try:
            s.ingest = max(s.ingest, peak_hwm(ingest.pid) or 0)
            children = ingest.children(recursive=True)
            for child in children:
                role = _role(child)
                if role in ("endpoint", "worker"):
                    setattr(s, role, max(getattr(s, role), peak_hwm(child.pid) or 0))
            s.temp_disk = max(s.temp_disk, _temp_bytes(tmp, [ingest, *children]))
        except psutil.Error:
            continue  # a process ended between listing and reading it
        if s.first_output_s is None and any(p.is_file() for p in out.rglob("*")):
            s.first_output_s = time.monotonic() - start


def library(root: Path, size: int, files: int) -> Path:
    """``files`` distinct sources of ``size`` bytes (one source, each copy's tail unique)."""
    src = big_source(size)
    root.mkdir(parents=True)
    if files == 1:
        os.link(src, root / "source-000.mp4")
        return root
    for i in range(files):
        dest = root / f"source-{i:03d}.mp4"
        shutil.copyfile(src, dest)
        with dest.open("ab") as f:
            f.write(f"\0hevcq-bench-{i}".encode())  # players ignore bytes after the last box
    return root


def run_case(size: int, files: int, workdir: Path) -> Sample:
    """One ``hevcq ingest`` of a generated library, sampled."""
    lib = library(workdir / "library", size, files)
    pools = pool_dir(workdir / "pools", "hevc", preset="ultrafast")
    pool_dir(pools, "1080p", preset="ultrafast")
    tmp, out, state = workdir / "tmp", workdir / "out", workdir / "state"
    tmp.mkdir()
    env = os.environ | {
        "TMPDIR": str(tmp),
        "XDG_STATE_HOME": str(state),
        "HEVCQ_WORKERS_DIR": str(pools),
        "HEVCQ_WORK_DIR": str(tmp / "work"),
        "HEVCQ_LOG_FORMAT": "console",
        "COLUMNS": "160",
    }
    env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    s, stop = Sample(), threading.Event()
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hevcq", "ingest", str(lib), "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sampler = threading.Thread(
        target=_sample, args=(psutil.Process(proc.pid), tmp, out, s, stop), daemon=True
    )
    sampler.start()
    try:
        output, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        stop.set()
        sampler.join()
        if proc.poll() is None:
            proc.kill()
    s.wall_s = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"ingest exited {proc.returncode}:\n{output[-3000:]}")
    # The embedded farm keeps its worker logs in a folder under TMPDIR.
    for log in [*state.rglob("worker-*.log"), *tmp.rglob("worker-*.log")]:
        for e in read_events(log):
            if e.get("event") == "job_timings" and "download_s" in e:
                s.download_s_per_gib.append(e["download_s"] / ((size + 32) / GiB))
    return s


def run(quick: bool = False) -> list[Figure]:
    """Every case once (each takes minutes): the figures and their targets."""
    cases = QUICK_CASES if quick else CASES
    only = os.environ.get("BENCH_SCALE_CASES")  # e.g. "single,library 4" to pick cases
    if only:
        cases = {k: v for k, v in cases.items() if any(w in k for w in only.split(","))}
    figs: list[Figure] = []
    peaks: dict[str, Sample] = {}
    for name, (size, files) in cases.items():
        with tempfile.TemporaryDirectory(prefix="hevcq-scale-") as work:
            print(f"   {name}", file=sys.stderr, flush=True)
            s = run_case(size, files, Path(work))
        peaks[name] = s
        figs += _figures(name, s)
    figs += _scaling(peaks)
    return figs


def _figures(name: str, s: Sample) -> list[Figure]:
    figs = [
        figure(
            f"{name}: ingest peak RSS",
            "MiB",
            [s.ingest / MiB],
            target="< 1024 MiB",
            met=lambda v: v < INGEST_RSS_TARGET / MiB,
        ),
        figure(f"{name}: endpoint peak RSS", "MiB", [s.endpoint / MiB]),
        figure(f"{name}: worker peak RSS", "MiB", [s.worker / MiB]),
        figure(f"{name}: peak temp disk", "MiB", [s.temp_disk / MiB]),
        figure(f"{name}: wall time", "s", [s.wall_s]),
    ]
    if s.first_output_s is not None:
        figs.append(figure(f"{name}: time to first output", "s", [s.first_output_s]))
    if s.download_s_per_gib:
        figs.append(
            figure(
                f"{name}: source to worker",
                "s/GiB",
                s.download_s_per_gib,
                target=f"< {DOWNLOAD_S_PER_GIB_TARGET:g} s/GiB",
                met=lambda v: v < DOWNLOAD_S_PER_GIB_TARGET,
            )
        )
    return figs


def _scaling(peaks: dict[str, Sample]) -> list[Figure]:
    """The larger library against the smaller one of the same file size (ratio, 1 = flat)."""
    libs = [n for n in peaks if n.startswith("library")]
    if len(libs) < 2:
        return []
    small, large = peaks[libs[0]], peaks[libs[-1]]
    out = []
    for what in ("ingest", "endpoint", "worker", "temp_disk"):
        a, b = getattr(small, what), getattr(large, what)
        if a:
            out.append(
                figure(
                    f"{libs[-1]} / {libs[0]}: {what.replace('_', ' ')} peak",
                    "x",
                    [b / a],
                    target="<= 1.10",
                    met=lambda v: v <= 1.10,
                )
            )
    return out
