"""`hevcq ingest` exit codes: 1 only for failed jobs, other codes for the other stops."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from hevcq.cli.app import (
    EXIT_CANNOT_PLACE,
    EXIT_CONFIG,
    EXIT_FAILED_JOBS,
    EXIT_INTERRUPTED,
    EXIT_TIMED_OUT,
    disk_full,
)
from hevcq.cli.library import exit_code, scratch_problem
from hevcq.library.roundtrip import RoundTrip
from hevcq.library.scan import ScanReport
from hevcq.library.walk import Problem


def _rt(
    *,
    failed: bool = False,
    timed_out: bool = False,
    interrupted: bool = False,
    halted: str | None = None,
    by_workers: bool = False,
) -> RoundTrip:
    problems = (Problem("bad.mp4", "unreadable", "cannot read"),) if failed else ()
    report = ScanReport(Path("/lib"), (), problems, {}, 0, 0, 0.0)
    return RoundTrip(
        report,
        timed_out=timed_out,
        interrupted=interrupted,
        halted=halted,
        halted_by_workers=by_workers,
    )


@pytest.mark.parametrize(
    ("rt", "code"),
    [
        (_rt(), 0),
        (_rt(failed=True), EXIT_FAILED_JOBS),
        (_rt(timed_out=True), EXIT_TIMED_OUT),
        (_rt(failed=True, timed_out=True), EXIT_TIMED_OUT),
        (_rt(failed=True, interrupted=True), EXIT_INTERRUPTED),
        (_rt(halted="no space left in /out/hevc"), EXIT_CANNOT_PLACE),
        (_rt(failed=True, interrupted=True, halted="read-only"), EXIT_CANNOT_PLACE),
        (_rt(halted="the local workers exit as they start", by_workers=True), EXIT_CONFIG),
    ],
)
def test_exit_code(rt: RoundTrip, code: int) -> None:
    assert exit_code(rt) == code
    assert (code == EXIT_FAILED_JOBS) == (
        rt.failed and not rt.timed_out and not rt.interrupted and not rt.halted
    )


def test_sources_too_big_for_the_one_scratch_disk_are_named_with_the_largest() -> None:
    gib = 1024**3
    work = Path("/scratch")
    assert scratch_problem([("a.mp4", 1 * gib), ("b.mp4", 2 * gib)], 10 * gib, work) is None
    one = scratch_problem([("a.mp4", 1 * gib), ("b.mp4", 4 * gib)], 10 * gib, work)
    assert one is not None
    assert one.startswith("1 file needs more scratch space than /scratch has free (10.0 GiB)")
    assert "b.mp4 needs 13.7 GiB" in one
    assert "leave it out" in one
    two = scratch_problem([("a.mp4", 3 * gib), ("b.mp4", 4 * gib)], 10 * gib, work)
    assert two is not None
    assert two.startswith("2 files need")
    assert "b.mp4 needs" in two
    assert "leave them out" in two


LOG = "/state/runs/x/logs/ingest.log"


@pytest.mark.parametrize(
    ("exc", "says"),
    [
        (sqlite3.OperationalError("database or disk is full"), "the library's catalog"),
        (
            OSError(errno.ENOSPC, "No space left on device", "/state/runs/x/logs/ingest.log"),
            "/state/runs/x/logs/ingest.log",
        ),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "a file hevcq writes"),
    ],
)
def test_a_full_disk_outside_the_outputs_is_a_line_saying_where(
    exc: BaseException, says: str
) -> None:
    line = disk_full(exc)
    assert line is not None
    assert line.startswith(f"no space left on the disk of {says} (hevcq's state folder is ")
    assert line.endswith("free some space, then run the same command again")


@pytest.mark.parametrize(
    "exc",
    [
        sqlite3.OperationalError("no such table: files"),
        OSError(errno.EIO, "I/O error"),
        ValueError("x"),
    ],
)
def test_other_errors_stay_internal(exc: BaseException) -> None:
    assert disk_full(exc) is None
