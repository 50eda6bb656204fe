"""Riding out an unreachable or failing endpoint: back off, and say so once, not per retry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import structlog

from hevcq.backoff import retry_delay
from hevcq.errors import Classify, FarmConfigError, unclassified

log = structlog.get_logger()

T = TypeVar("T")

# Waits between tries while the endpoint is down: doubling from 2 s, capped at 15 s, so a
# worker is back at most about 15 s after its endpoint (each try is cheap).
RETRY_BASE_S = 2.0
RETRY_CAP_S = 15.0
MIN_WAIT_S = 1.0


class Outage:
    """Whether calls to the endpoint fail, logging one line when that changes.

    ``failed`` logs ``endpoint_unreachable`` on the first failure of a run of failures and
    returns how long to wait before trying again; ``recovered`` logs ``endpoint_recovered``
    once, when a call succeeds after failures.
    """

    def __init__(self, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self._clock = clock
        self.failures = 0
        self._since: float | None = None

    @property
    def down(self) -> bool:
        """True between a failure and the next success."""
        return self._since is not None

    def failed(self, error: BaseException) -> float:
        """Note a failure; the seconds to wait before the next try (capped, jittered)."""
        self.failures += 1
        if self._since is None:
            self._since = self._clock()
            log.warning("endpoint_unreachable", during=self.what, error=str(error)[:500])
        delay = retry_delay(self.failures, base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S)
        return max(MIN_WAIT_S, float(delay))

    def recovered(self) -> None:
        """Note a success."""
        if self._since is None:
            return
        down_s = self._clock() - self._since
        log.info(
            "endpoint_recovered", during=self.what, down_s=round(down_s, 1), failures=self.failures
        )
        self._since = None
        self.failures = 0


def until_reachable(
    call: Callable[[], T], stop: threading.Event, what: str, classify: Classify = unclassified
) -> T | None:
    """``call()``, tried again through transient faults until it succeeds or ``stop`` is set.

    A ``FarmConfigError`` (credentials refused, a resource missing) is raised at once:
    waiting does not fix a wrong deployment. Returns None when stopped while waiting.
    """
    outage = Outage(what)
    while not stop.is_set():
        try:
            result = call()
        except Exception as exc:
            err = classify(exc, what)
            if isinstance(err, FarmConfigError):
                if err is exc:
                    raise
                raise err from exc
            stop.wait(outage.failed(err))
            continue
        outage.recovered()
        return result
    return None
