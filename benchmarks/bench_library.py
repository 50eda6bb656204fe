"""Library scan speed: a first scan against one probe process per file, and a rescan."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg

from benchmarks.harness import Figure, figure, side_by_side, timed
from hevcq.library.catalog import Catalog
from hevcq.library.scan import ScanOptions, scan
from hevcq.pools import Pool, load_farm

CACHE = Path(__file__).resolve().parent / ".cache"
WORKERS = 8
RUNS = 3
FILES_PER_DIR = 100
# Tiny distinct sources; every corpus file is one of them plus unique trailing bytes, so
# fingerprints differ while probing still sees a valid (faststart) MP4 or MOV.
SOURCES = (
    ("a.mp4", "testsrc2", "libx264"),
    ("b.mov", "smptebars", "libx264"),
    ("c.mp4", "rgbtestsrc", "mpeg4"),
    ("d.mkv", "testsrc", "libx264"),
)


def _ffmpeg() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _sources() -> list[Path]:
    folder = CACHE / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")  # generated corpora never reach git
    out = []
    for name, pattern, codec in SOURCES:
        path = folder / name
        if not path.exists():
            subprocess.run(
                [
                    _ffmpeg(),
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    f"{pattern}=size=96x64:rate=10:duration=0.5",
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=duration=0.5",
                    "-c:v",
                    codec,
                    "-c:a",
                    "aac",
                    "-b:a",
                    "32k",
                    "-movflags",
                    "+faststart",
                    str(path),
                ],
                check=True,
                timeout=120,
            )
        out.append(path)
    return out


def corpus(count: int) -> Path:
    """``count`` distinct small video files under the cache (made once, then reused)."""
    root = CACHE / f"library-{count}"
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    sources = [p.read_bytes() for p in _sources()]
    suffixes = [Path(name).suffix for name, _, _ in SOURCES]
    for i in range(count):
        k = i % len(sources)
        folder = root / f"d{i // FILES_PER_DIR:03}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05}{suffixes[k]}").write_bytes(sources[k] + i.to_bytes(8, "little"))
    done.write_text("")
    return root


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _baseline(files: list[Path]) -> None:
    """One ffmpeg process per file, as a probe-by-subprocess scanner would do."""
    ffmpeg = _ffmpeg()

    def one(path: Path) -> None:
        # No ffprobe here: "ffmpeg -i" prints the same stream summary and exits 1.
        subprocess.run(
            [ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, check=False, timeout=60
        )

    with ThreadPoolExecutor(WORKERS) as ex:
        list(ex.map(one, files))


def _first_scan(root: Path, pools: tuple[Pool, ...]) -> None:
    with tempfile.TemporaryDirectory() as tmp, Catalog(Path(tmp) / "s.sqlite3") as store:
        report = scan(root, pools, store, ScanOptions(), workers=WORKERS)
    if report.problems or not report.entries:
        raise RuntimeError(f"benchmark corpus did not scan cleanly: {report.problems[:3]}")


def bench_first_scan(count: int, runs: int) -> list[Figure]:
    """Files per second of a first scan, ours against one process per file."""
    root = corpus(count)
    files = _files(root)
    pools = tuple(load_farm().values())
    ours, base, _ = side_by_side(lambda: _first_scan(root, pools), lambda: _baseline(files), runs)
    ours_rate = [len(files) / s for s in ours]
    base_rate = [len(files) / s for s in base]
    speedup = [b / o for o, b in zip(ours, base, strict=True)]
    note = f"{len(files)} files, {WORKERS} threads each side, {os.cpu_count()} CPUs"
    return [
        figure(f"first scan ({len(files)} files)", "files/s", ours_rate, notes=note),
        figure(
            f"one ffmpeg process per file ({len(files)} files)", "files/s", base_rate, notes=note
        ),
        figure(
            "first scan speed-up over a process per file",
            "x",
            speedup,
            target=">= 4x",
            met=lambda m: m >= 4,
            notes=note,
        ),
    ]


def bench_rescan(count: int, runs: int) -> list[Figure]:
    """Seconds to rescan ``count`` unchanged files (the state store fast path)."""
    root = corpus(count)
    pools = tuple(load_farm().values())
    with Catalog(CACHE / f"rescan-{count}.sqlite3") as store:
        warm = scan(root, pools, store, workers=WORKERS)  # brings the store up to date
        samples = [timed(lambda: scan(root, pools, store, workers=WORKERS)) for _ in range(runs)]
        again = scan(root, pools, store, workers=WORKERS)
    if again.probed or again.reused != len(warm.entries):
        raise RuntimeError("rescan probed files: the fast path is broken")
    return [
        figure(
            f"rescan ({count} unchanged files)",
            "s",
            samples,
            target="< 2 s",
            met=lambda m: m < 2.0,
            notes=f"{again.reused} files answered from the store",
        ),
    ]


def run(quick: bool = False) -> list[Figure]:
    """Every library figure; ``quick`` shrinks the corpora for a smoke test."""
    first, rescan = (200, 1000) if quick else (2000, 10000)
    return bench_first_scan(first, RUNS) + bench_rescan(rescan, RUNS)
