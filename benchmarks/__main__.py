"""Run every benchmark: ``python -m benchmarks [--quick] [--only NAME[,NAME]] [--runs N]
[--out DIR]``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.harness import Figure
from hevcq.library.calibrate import DEFAULT_SPEEDS, cpus_available
from hevcq.media.ffmpeg import find_ffmpeg

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NAMES = (
    "library",
    "upload",
    "overhead",
    "farm",
    "encode",
    "memory",
    "cost",
    "library_scale",
    "library_throughput",
    "many_files",
    "startup",
    "ladder",
    "pertitle",
    "quality_corpus",
    "poster",
)


def machine() -> dict[str, Any]:
    """What the figures were measured on, including how busy the machine already was."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ffmpeg = find_ffmpeg()
    version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=False)
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": model,
        "cpus": cpus_available(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "ffmpeg": (version.stdout.splitlines() or [""])[0],
        "loadavg_at_start": os.getloadavg(),
    }


def git_commit() -> str:
    """The checkout's commit, marked dirty when it has local changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=HERE, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def _figures(module: str, quick: bool) -> list[Figure]:
    # Imported only when selected: a benchmark's own dependencies load with it.
    return list(importlib.import_module(f"benchmarks.{module}").run(quick=quick))


class Run:
    """One `make bench`: figures per benchmark, extra sections, errors, timings."""

    def __init__(self, quick: bool, only: set[str], runs: int | None = None) -> None:
        self.quick, self.only, self.runs = quick, only, runs
        self.figures: dict[str, list[Figure]] = {}
        self.sections: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self.machine = machine()  # before the run: the load average says how busy it was

    def step(self, name: str, fn: Callable[[], list[Figure]]) -> None:
        """Run one benchmark; a failure is recorded and the others still run."""
        if name not in self.only:
            return
        print(f"== {name}", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            self.figures[name] = fn()
        except Exception as exc:  # every failure is reported in the JSON and the exit status
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        self.seconds[name] = round(time.monotonic() - start, 1)

    def run(self, out: Path) -> None:
        """Every selected benchmark, in an order that lets cost use the measured speeds."""
        self.step("library", lambda: _figures("bench_library", self.quick))
        self.step("upload", lambda: _figures("bench_upload", self.quick))
        self.step("overhead", self._overhead)
        self.step("farm", lambda: self._farm(out))
        speeds: dict[str, list[float]] = {k: [v] for k, v in DEFAULT_SPEEDS.items()}
        self.step("encode", lambda: self._encode(speeds))
        self.step("memory", lambda: _figures("bench_memory", self.quick))
        self.step("cost", lambda: self._cost(speeds))
        self.step("library_scale", lambda: _figures("bench_library_scale", self.quick))
        self.step("library_throughput", lambda: _figures("bench_library_throughput", self.quick))
        self.step("many_files", lambda: _figures("bench_many_files", self.quick))
        self.step("startup", lambda: _figures("bench_startup", self.quick))
        self.step("ladder", lambda: _figures("bench_ladder", self.quick))
        self.step("pertitle", lambda: _figures("bench_pertitle", self.quick))
        self.step("quality_corpus", self._quality_corpus)
        self.step("poster", lambda: _figures("bench_poster", self.quick))

    def _overhead(self) -> list[Figure]:
        from benchmarks import bench_farm  # noqa: PLC0415

        return bench_farm.run_overhead(self.quick, self.runs)

    def _farm(self, out: Path) -> list[Figure]:
        from benchmarks import bench_farm  # noqa: PLC0415

        figs, series = bench_farm.run_all(self.quick)
        self.sections["plot_series"] = asdict(series)
        try:
            from benchmarks.plot import plot  # noqa: PLC0415

            self.sections["plot"] = str(plot(series, out / "overhead.png"))
        except ImportError as exc:
            self.errors["plot"] = f"matplotlib missing ({exc}): pip install -e '.[bench]'"
        return figs

    def _encode(self, speeds: dict[str, list[float]]) -> list[Figure]:
        from benchmarks import bench_encode  # noqa: PLC0415

        figs, _ = bench_encode.run_speeds(self.quick)
        speeds.clear()
        for f in figs:
            if f.name.startswith("encode speed ") and f.name.endswith(", all content"):
                speeds[f.name.split()[2].rstrip(",")] = f.samples
        self.sections["speeds_source"] = "measured in this run"
        return figs

    def _cost(self, speeds: dict[str, list[float]]) -> list[Figure]:
        from benchmarks import bench_cost  # noqa: PLC0415

        self.sections.setdefault("speeds_source", "hevcq.library.calibrate.DEFAULT_SPEEDS")
        figs, table = bench_cost.run_costs(speeds)
        self.sections["cost"] = table
        return figs

    def _quality_corpus(self) -> list[Figure]:
        from benchmarks import bench_quality_corpus  # noqa: PLC0415

        figs, detail = bench_quality_corpus.run_corpus(self.quick)
        self.sections["quality_corpus"] = detail
        return figs

    def document(self, started: datetime) -> dict[str, Any]:
        """The JSON written to results/latest.json."""
        return {
            "date": started.isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "quick": self.quick,
            "runs": self.runs,
            "machine": self.machine | {"loadavg_at_end": os.getloadavg()},
            "seconds": self.seconds,
            "figures": {k: [f.as_dict() for f in v] for k, v in self.figures.items()},
            "errors": self.errors,
            **self.sections,
        }


def table(figures: dict[str, list[Figure]]) -> Table:
    """A readable table of every figure."""
    t = Table(title="hevcq benchmarks (median of runs; min..max)")
    for col in ("bench", "figure", "median", "min..max", "runs", "target", "met"):
        t.add_column(col, overflow="fold")
    for bench, figs in figures.items():
        for f in figs:
            met = "" if f.met is None else ("yes" if f.met else "NO")
            t.add_row(
                bench,
                f.name,
                f"{f.median:.4g} {f.unit}",
                f"{f.min:.4g}..{f.max:.4g}",
                str(f.runs),
                f.target or "",
                met,
            )
    return t


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit status 1 when a benchmark failed to run (not when a target is missed)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes and one run: a smoke test")
    ap.add_argument("--only", default=",".join(NAMES), help=f"comma list of {', '.join(NAMES)}")
    ap.add_argument("--runs", type=int, help="repeats of each overhead figure (7; 60 s clip: 2)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for latest.json and PNG")
    args = ap.parse_args(argv)
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    unknown = only - set(NAMES)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    started = datetime.now(UTC)
    run = Run(args.quick, only, args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    run.run(args.out)
    doc = run.document(started)
    path = args.out / "latest.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    Console(width=160).print(table(run.figures))
    print(f"wrote {path}" + (f" and {doc['plot']}" if "plot" in doc else ""))
    for name, err in run.errors.items():
        print(f"FAILED {name}: {err}", file=sys.stderr)
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
