"""A worker's stop, as a running job sees it: how long the job may still take.

A job that will finish within the grace period (``HEVCQ_SHUTDOWN_GRACE_S``, under the 120 s
Fargate allows) is left to finish; any other is cancelled at once, and its message goes
back for another worker.
"""

from __future__ import annotations

import threading
import time

import structlog

from hevcq.pace import time_left_s
from hevcq.worker.runner import JobContext

log = structlog.get_logger()


def watch_shutdown(
    ctx: JobContext,
    done: threading.Event,
    progress: list[float],
    stop: threading.Event,
    grace_s: float,
) -> None:
    """On stop, give the job at most the grace period to finish; then cancel it.

    An encode that will finish within the grace is left to finish; an upload under way
    gets the grace too, and is then stopped: the job still waits for the write in flight
    to end before it settles (``runner.until_cancelled``).
    """
    started = time.monotonic()
    # Wait on the job's own event so that a finished job releases the watcher at once
    # (it is joined after every job); the stop flag is checked between waits.
    while not done.wait(0.2):
        if stop.is_set():
            break
    if done.is_set():
        return
    grace = grace_s
    if ctx.phase == "encode":
        elapsed = time.monotonic() - started
        pct = progress[-1] if progress else 0.0
        left_s = time_left_s(elapsed, pct)
        remaining = float("inf") if left_s is None else left_s
        left = None if left_s is None else round(left_s)
        log.info(
            "shutdown_requested",
            phase=ctx.phase,
            progress=round(pct, 1),
            encode_left_s=left,
            grace_s=grace,
        )
        if remaining > grace:
            ctx.cancel.set()
            return
    else:
        log.info("shutdown_requested", phase=ctx.phase, grace_s=grace)
    if not done.wait(grace):
        log.info("shutdown_grace_over", phase=ctx.phase)
        ctx.cancel.set()
