"""The embedded farm's worker processes: restarted when they die, never in a loop."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hevcq.farm import embedded
from hevcq.farm.embedded import WorkerProcs, WorkersCannotStart, last_line

pytestmark = pytest.mark.e2e


def _procs(tmp_path: Path) -> WorkerProcs:
    # A setting the ingest's own checks pass on, standing for any reason a worker refuses
    # to start (here: an ffmpeg that is not there).
    env = {"HEVCQ_BUCKET": "b", "HEVCQ_FFMPEG": str(tmp_path / "ffmpeg")}
    return WorkerProcs(env=env, log_dir=tmp_path / "logs", pools=["hevc"], slots=1)


def _supervised(procs: WorkerProcs, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        procs.supervise()
        time.sleep(0.1)


def test_workers_that_exit_as_they_start_stop_the_run_with_their_reason(tmp_path: Path) -> None:
    # They were restarted for ever, and the ingest waited for results that never came.
    procs = _procs(tmp_path)
    procs.start()
    try:
        with pytest.raises(WorkersCannotStart, match="ffmpeg binary not found") as err:
            _supervised(procs, 90.0)
    finally:
        procs.stop(grace_s=0)
    assert str(tmp_path / "logs" / "worker-0.log") in str(err.value)
    assert "\n" not in str(err.value)


def test_a_worker_that_ran_a_while_before_it_died_is_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "QUICK_EXIT_S", 0.0)  # every exit comes after a while
    procs = _procs(tmp_path)
    log = tmp_path / "logs" / "worker-0.log"
    procs.start()
    first = procs.pids()
    try:
        # More exits than stop a quick-exiting farm; none stops this one. The wait is on
        # the exits seen, not a fixed time: on a loaded machine each start takes seconds.
        deadline = time.monotonic() + 90.0
        while _starts(log) <= embedded.QUICK_EXITS_TO_STOP and time.monotonic() < deadline:
            _supervised(procs, 0.5)
    finally:
        procs.stop(grace_s=0)
    assert procs.pids() != first
    assert _starts(log) > embedded.QUICK_EXITS_TO_STOP


def _starts(log: Path) -> int:
    return log.read_text().count("ffmpeg binary not found") if log.exists() else 0


def test_the_reason_is_the_logs_last_error_line(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text('{"event": "starting"}\nerror: no encoder libx265\n{"event": "exit"}\n\n')
    assert last_line(log) == "error: no encoder libx265"
    log.write_text("something else\n")
    assert last_line(log) == "something else"
    assert last_line(tmp_path / "missing.log") == ""
