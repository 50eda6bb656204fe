"""Scratch folders of dead workers are swept; a stop bounds an upload in progress."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

import hevcq.worker.runner
from hevcq.errors import InterruptedJob
from hevcq.objects import ObjectInfo
from hevcq.worker.runner import sweep_scratch, until_cancelled


def test_folders_of_dead_workers_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    mine = tmp_path / f"job-{os.getpid()}-abc"
    gone = tmp_path / f"job-{dead}-def"
    legacy = tmp_path / "job-xyz"  # not named after a worker: maybe another program's
    other = tmp_path / "not-a-job"
    for d in (mine, gone, legacy, other):
        d.mkdir()
        (d / "source").write_bytes(b"x" * 1000)
    assert sweep_scratch(tmp_path) == [gone]
    assert mine.is_dir()
    assert legacy.is_dir()
    assert other.is_dir()


def test_a_stop_waits_for_the_write_in_flight_before_the_job_settles() -> None:
    # A job settled while its write is on its way lets that write land after the newer
    # version of its source ended without an output.
    cancel, ended = threading.Event(), threading.Event()

    def slow_upload() -> ObjectInfo:
        time.sleep(0.6)
        ended.set()
        return ObjectInfo("k", 1, "e")

    threading.Timer(0.1, cancel.set).start()
    with capture_logs() as logs, pytest.raises(InterruptedJob):
        until_cancelled(slow_upload, cancel)
    assert ended.is_set()
    assert [e["event"] for e in logs] == ["upload_ended_after_stop"]


def test_a_stop_abandons_an_upload_that_outlasts_the_drain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hevcq.worker.runner, "COMMIT_DRAIN_S", 0.3)
    cancel, release = threading.Event(), threading.Event()

    def hung_upload() -> ObjectInfo:
        release.wait(10)
        return ObjectInfo("k", 1, "e")

    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with capture_logs() as logs, pytest.raises(InterruptedJob):
        until_cancelled(hung_upload, cancel)
    assert time.monotonic() - started < 2
    assert [e["event"] for e in logs] == ["upload_abandoned"]
    release.set()


def test_a_commit_returns_when_it_is_done_not_at_the_next_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hevcq.worker.runner, "COMMIT_POLL_S", 30.0)
    started = time.monotonic()
    assert until_cancelled(lambda: ObjectInfo("k", 1, "e"), threading.Event()).etag == "e"
    assert time.monotonic() - started < 15


def test_a_finished_upload_returns_its_result_and_errors_pass_through() -> None:
    assert until_cancelled(lambda: ObjectInfo("k", 1, "e"), threading.Event()).etag == "e"

    def fails() -> ObjectInfo:
        raise OSError("disk")

    with pytest.raises(OSError, match="disk"):
        until_cancelled(fails, threading.Event())
