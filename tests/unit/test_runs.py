"""Run folders: one per ingest under the state dir, only the newest few kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hevcq.library.runs import RUNS, new_run_folder, prune


def test_a_new_run_prunes_all_but_the_newest(tmp_path: Path) -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    made = [new_run_folder(tmp_path, keep=3, now=start + timedelta(minutes=i)) for i in range(5)]
    left = sorted((tmp_path / RUNS).iterdir())
    assert left == made[-3:]
    assert all(p.parent == tmp_path / RUNS for p in made)


def test_prune_leaves_a_short_list_alone(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert prune(tmp_path, keep=5) == []
    assert prune(tmp_path / "missing", keep=1) == []
    assert (tmp_path / "a").is_dir()
