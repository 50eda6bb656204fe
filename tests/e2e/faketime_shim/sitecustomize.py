"""Loaded only into worker processes that run under libfaketime (``tests/e2e/test_clocks.py``).

libfaketime 0.9.10, the version Debian 12 ships, mishandles
``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...)`` when the monotonic clock is left
alone: it shifts the absolute monotonic deadline by the fake wall-clock offset, and the
kernel answers EINVAL for a deadline before boot (wolfcw/libfaketime#426). Python 3.11's
``time.sleep`` is exactly that call, so under the library any sleep in the worker (a
``subprocess`` wait with a timeout, a retry's back-off) would raise ``OSError`` depending
on how long the machine has been up. That is the tool's fault, not the worker's: here the
sleep waits on ``select`` instead, a relative timeout libfaketime passes through unchanged.
The wall clock, the thing the tests skew, is untouched.
"""

from __future__ import annotations

import operator
import select
import time
from typing import SupportsIndex


def _sleep(secs: float | SupportsIndex, /) -> None:
    seconds = secs if isinstance(secs, float) else float(operator.index(secs))
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
