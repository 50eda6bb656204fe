"""The library-throughput benchmark's breakdown: encodes at once, the start and the tail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from benchmarks.bench_library_throughput import IngestRun, cpu_times, per_core


def test_the_breakdown_counts_seconds_by_encodes_running_at_once() -> None:
    run = IngestRun(wall_s=100.0, started_at=1000.0, logs=Path("unused"))
    # Two encodes overlap from 1020 to 1030; the last ends at 1090, ten seconds before the end.
    run.encodes = [(1010.0, 1030.0), (1020.0, 1050.0), (1060.0, 1090.0)]
    at_once = run.concurrency()
    assert at_once == pytest.approx({0: 30.0, 1: 60.0, 2: 10.0})
    assert sum(at_once.values()) == pytest.approx(run.wall_s)
    assert run.first_encode_s == pytest.approx(10.0)
    assert run.tail_s == pytest.approx(10.0)


def test_a_run_without_encodes_is_all_tail() -> None:
    run = IngestRun(wall_s=5.0, started_at=0.0, logs=Path("unused"))
    assert run.concurrency() == {0: 5.0}
    assert (run.first_encode_s, run.tail_s) == (0.0, 5.0)


def test_the_overlap_of_uploads_and_placements_with_encodes_is_measured() -> None:
    run = IngestRun(wall_s=100.0, started_at=1000.0, logs=Path("unused"))
    run.encodes = [(1010.0, 1030.0), (1040.0, 1050.0)]
    run.uploaded_at = [1005.0, 1008.0, 1025.0]  # the last upload ends 15 s into the encodes
    run.placed_at = [1031.0, 1045.0, 1060.0, 1020.0]  # two of four while an encode ran
    assert run.uploading_after_first_encode_s == pytest.approx(15.0)
    assert run.placed_during_encodes == pytest.approx(0.5)
    run.uploaded_at = [1001.0]
    assert run.uploading_after_first_encode_s == 0.0


def test_each_cores_busy_and_idle_time_comes_from_proc_stat(tmp_path: Path) -> None:
    tick = os.sysconf("SC_CLK_TCK")
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal
    stat.write_text(
        f"cpu  0 0 0 0 0 0 0 0\ncpu0 {tick} 0 0 {2 * tick} {tick} 0 0 0\n"
        f"cpu1 0 0 {3 * tick} {tick} 0 0 0 0\nintr 5\n"
    )
    before = cpu_times(stat)
    stat.write_text(
        f"cpu  0 0 0 0 0 0 0 0\ncpu0 {3 * tick} 0 0 {2 * tick} {tick} 0 0 0\n"
        f"cpu1 0 0 {3 * tick} {5 * tick} 0 0 0 0\n"
    )
    after = cpu_times(stat)
    assert before["cpu0"] == (1.0, 3.0)  # iowait counts as idle
    assert per_core(before, after) == [(2.0, 0.0), (0.0, 4.0)]
    assert cpu_times(tmp_path / "missing") == {}
