"""`hevcq ingest` exit codes: 1 only for failed jobs, other codes for the other stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from hevcq.cli.app import (
    EXIT_CANNOT_PLACE,
    EXIT_CONFIG,
    EXIT_FAILED_JOBS,
    EXIT_INTERRUPTED,
    EXIT_TIMED_OUT,
)
from hevcq.cli.library import exit_code
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
