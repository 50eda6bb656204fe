"""Upload speed and CLI memory: `hevcq ingest` against the embedded endpoint, in its own process.

The endpoint (moto's server, as in the embedded farm, without workers) runs in this process
and keeps every object in memory; the uploading CLI runs in a child process, so its peak
RSS is its own. Both are reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.harness import Figure, figure
from hevcq.farm.embedded import EmbeddedFarm
from hevcq.limits import MiB
from hevcq.media.samples import make_clip
from hevcq.pools import load_farm
from hevcq.topology import EMBEDDED_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef
from hevcq.settings import Settings

CACHE = Path(__file__).resolve().parent / ".cache" / "upload"
RUNS = 3
MEMORY_TARGET_MB = 200
SMALL_FILE_BYTES = 256 << 10


def _base_clip() -> bytes:
    """A tiny faststart H.264 MP4 (header first, so padding after it is never read)."""
    path = CACHE / "base.mp4"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE.parent / ".gitignore").write_text("*\n")  # generated media never reaches git
        make_clip(path, width=320, height=240, seconds=1.0)
        subprocess.run(  # make_clip writes moov last; move it first for a cheap probe
            [
                _ffmpeg(),
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(path),
                "-c",
                "copy",
                "-movflags",
                "+faststart",
                str(path.with_suffix(".fs.mp4")),
            ],
            check=True,
            timeout=60,
        )
        path.with_suffix(".fs.mp4").replace(path)
    return path.read_bytes()


def _ffmpeg() -> str:
    from hevcq.media.ffmpeg import find_ffmpeg  # noqa: PLC0415

    return find_ffmpeg()


def _padded(dest: Path, size: int, seed: int) -> None:
    """A valid MP4 of ``size`` bytes: the clip, then a ``free`` box of incompressible bytes."""
    head = _base_clip()
    pad = size - len(head)
    with dest.open("wb") as fh:
        fh.write(head)
        fh.write((pad).to_bytes(4, "big") + b"free" + seed.to_bytes(8, "big"))
        left = pad - 16
        block = os.urandom(8 * MiB)
        while left > 0:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n


def library(name: str, files: int, size: int) -> Path:
    """``files`` distinct videos of ``size`` bytes each, made once and cached."""
    root = CACHE / name
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for i in range(files):
        folder = root / f"d{i // 100:02}"
        folder.mkdir(parents=True, exist_ok=True)
        _padded(folder / f"v{i:04}.mp4", size, i)
    done.write_text("")
    return root


@dataclass(frozen=True)
class Run:
    """One measured CLI run."""

    wall_s: float
    upload_s: float  # from the plan to the last upload, from the CLI's own log
    peak_rss_mb: float


def _stamp(line: dict[str, object]) -> float:
    return datetime.fromisoformat(str(line["timestamp"])).timestamp()


def _upload_seconds(stderr: str) -> float:
    events = [json.loads(ln) for ln in stderr.splitlines() if ln.startswith("{")]
    start = next(_stamp(e) for e in events if e.get("event") == "ingest_planned")
    end = max(_stamp(e) for e in events if e.get("event") == "uploaded")
    return max(end - start, 1e-6)


def _ingest_once(farm: EmbeddedFarm, root: Path, expect: int) -> Run:
    """Run `hevcq ingest` (no wait) in a child process, sampling its peak RSS."""
    with tempfile.TemporaryDirectory(prefix="hevcq-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))}
        env |= {
            "AWS_ENDPOINT_URL": farm.endpoint,
            **farm.credentials.env(),
            "AWS_DEFAULT_REGION": "us-east-1",
            "HEVCQ_BUCKET": EMBEDDED_BUCKET,
            "HEVCQ_LOG_FORMAT": "json",
            "XDG_STATE_HOME": tmp,
            "HOME": tmp,  # a fresh state store: everything is new
        }
        err = Path(tmp) / "stderr.log"
        started = time.perf_counter()
        with err.open("w") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hevcq", "ingest", str(root)],
                env=env,
                cwd=tmp,
                stdout=subprocess.DEVNULL,
                stderr=fh,
            )
            peak = _watch_peak(proc)
        wall = time.perf_counter() - started
        stderr = err.read_text()
    if proc.returncode != 0 or stderr.count('"event": "uploaded"') != expect:
        raise RuntimeError(f"upload run failed ({proc.returncode}): {stderr[-2000:]}")
    _empty_bucket(farm)
    return Run(wall, _upload_seconds(stderr), peak)


def _watch_peak(proc: subprocess.Popen[bytes]) -> float:
    """The child's VmHWM in MB, sampled until it exits.

    Not ru_maxrss from wait4: Linux carries the parent's high-water mark over exec, and
    the parent here holds every uploaded object (moto keeps them in memory).
    VmHWM is itself a high-water mark, so sampling only misses the last few milliseconds.
    """
    status = Path(f"/proc/{proc.pid}/status")
    peak = 0.0
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, ValueError):
            pass  # exiting between poll() and the read
        time.sleep(0.02)
    return peak


def _empty_bucket(farm: EmbeddedFarm) -> None:
    """Delete what a run uploaded, so the next run sends everything again."""
    assert farm.clients is not None
    s3 = farm.clients.s3
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=EMBEDDED_BUCKET):
        keys: list[ObjectIdentifierTypeDef] = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=EMBEDDED_BUCKET, Delete={"Objects": keys})


def _server_peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_case(
    farm: EmbeddedFarm, label: str, root: Path, *, files: int, size: int, runs: int
) -> list[Figure]:
    """Throughput and CLI peak memory for one library."""
    total = files * size
    results = [_ingest_once(farm, root, files) for _ in range(runs)]
    note = f"{files} x {size / MiB:g} MiB, {runs} runs, {os.cpu_count()} CPUs"
    mem_target = {"target": f"< {MEMORY_TARGET_MB} MB", "met": lambda m: m < MEMORY_TARGET_MB}
    return [
        figure(
            f"upload {label}",
            "MB/s",
            [total / r.upload_s / 1e6 for r in results],
            notes=note + "; upload phase from the CLI's log",
        ),
        figure(
            f"ingest {label}, whole command",
            "MB/s",
            [total / r.wall_s / 1e6 for r in results],
            notes=note + "; includes interpreter start, scan and probe",
        ),
        figure(
            f"CLI peak RSS, {label}",
            "MB",
            [r.peak_rss_mb for r in results],
            notes=note + "; the uploading process only",
            **(mem_target if files == 1 else {}),  # type: ignore[arg-type]
        ),
    ]


def run(quick: bool = False) -> list[Figure]:
    """Upload figures; ``quick`` shrinks the files for a smoke test."""
    big, small_files = (256 * MiB, 100) if quick else (1024 * MiB, 500)
    runs = 1 if quick else RUNS
    big_lib = library(f"one-{big // MiB}M", 1, big)
    small_lib = library(f"many-{small_files}", small_files, SMALL_FILE_BYTES)
    settings = Settings(log_level="warning")
    with tempfile.TemporaryDirectory() as state:
        farm = EmbeddedFarm(settings, load_farm(), Path(state), slots=0)
        with farm:
            figs = bench_case(
                farm, f"one {big // MiB} MiB file", big_lib, files=1, size=big, runs=runs
            )
            figs += bench_case(
                farm,
                f"{small_files} small files",
                small_lib,
                files=small_files,
                size=SMALL_FILE_BYTES,
                runs=runs,
            )
            server = _server_peak_mb()
    note = "this benchmark's own process, which serves the endpoint"
    figs.append(
        figure("endpoint peak RSS (moto keeps objects in memory)", "MB", [server], notes=note)
    )
    return figs
