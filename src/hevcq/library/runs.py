"""Run folders of the embedded farm in the state dir: one per ingest, the newest few kept."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from hevcq.private import DIR_MODE, private_dir

RUNS = "runs"


def prune(runs: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` run folders (names sort by start time)."""
    folders = sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    gone = folders[: max(0, len(folders) - keep)]
    for old in gone:
        shutil.rmtree(old, ignore_errors=True)
    return gone


def new_run_folder(state: Path, keep: int, now: datetime | None = None) -> Path:
    """A new folder for this run's logs under ``state/runs``; older runs beyond ``keep`` go."""
    runs = private_dir(state) / RUNS
    private_dir(runs)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%fZ")
    here = runs / f"{stamp}-{os.getpid()}"
    here.mkdir(mode=DIR_MODE)
    prune(runs, keep)
    return here
