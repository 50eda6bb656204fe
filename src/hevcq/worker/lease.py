"""Both sides of a ledger lease: the holder keeps it alive, a taker watches it go stale.

Neither side compares clocks with the other. The holder proves it is alive by changing the
item's record version number (``rvn``); a taker watches the ``rvn`` on its own monotonic
clock and may take the job only after it stayed the same for a whole lease.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from hevcq.errors import InterruptedJob, SupersededJob
from hevcq.ledger import RENEWALS_PER_LEASE, Lease, LeaseLostError, Ledger, LedgerItem, State

log = structlog.get_logger()

OBSERVE_POLL_MAX_S = 5.0


class LeaseKeeper:
    """The holder's current lease, shared by the heartbeat thread and the job's thread.

    ``renew`` is the heartbeat's proof of life; ``check`` renews at once (before a commit).
    A lease that could not be renewed for a whole ``lease_s`` on our own clock, counted
    from the start of the last renewal that went through, is lost for good: a taker may
    have seen it stale by then, so even a renewal that answers late does not revive it.
    """

    def __init__(
        self, ledger: Ledger, lease: Lease, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ledger = ledger
        self._lease = lease
        self._clock = clock
        self._lock = threading.Lock()  # one ledger write at a time: each names the last rvn
        self._renewed_at = clock()
        self._lost = False
        self.progress: dict[str, float | str] = {}

    @property
    def lease(self) -> Lease:
        """The lease as last written (read without waiting on a renewal under way)."""
        return self._lease

    @property
    def renew_every_s(self) -> float:
        """How often the holder renews."""
        return self._lease.lease_s / RENEWALS_PER_LEASE

    def expires_at(self) -> float:
        """When the lease runs out on our clock unless a renewal goes through first."""
        return self._renewed_at + self._lease.lease_s

    def _ensure_held(self) -> None:
        if not self._lost and self._clock() >= self.expires_at():
            self._lost = True
        if self._lost:
            raise LeaseLostError(f"the lease could not be renewed for {self._lease.lease_s:.0f} s")

    def renew(self) -> None:
        """Renew once; raises LeaseLostError, SupersededJob, or a transient error.

        A renewal under way (the heartbeat's, hanging on a throttled ledger) is waited for
        no longer than the lease lasts: then the lease is lost either way.
        """
        if not self._lock.acquire(timeout=max(0.0, self.expires_at() - self._clock())):
            self._lost = True
            raise LeaseLostError("the lease ran out while another renewal was under way")
        try:
            self._ensure_held()
            started = self._clock()
            lease = self._ledger.renew(self._lease, dict(self.progress))
            self._ensure_held()  # an answer after the lease ran out proves nothing
            # Counted from the start: the write may have landed at any moment of the call.
            self._lease, self._renewed_at = lease, started
        finally:
            self._lock.release()
        if lease.superseded_by:
            raise SupersededJob(f"a newer version of {lease.job.key} was uploaded")

    check = renew

    def finish(self, state: State, fields: Mapping[str, object]) -> None:
        """Record the final state under the lease."""
        with self._lock:
            if self._lost:
                raise LeaseLostError("the lease ran out before the job's record")
            self._ledger.finish(self._lease, state, fields)

    def release(self, state: State, fields: Mapping[str, object], *, failed: bool) -> None:
        """Give the job back under the lease."""
        with self._lock:
            if self._lost:
                raise LeaseLostError("the lease ran out before the job was given back")
            self._ledger.release(self._lease, state, fields, failed=failed)


@dataclass(frozen=True)
class Alive:
    """The holder changed the record version: it is alive."""

    item: LedgerItem


@dataclass(frozen=True)
class Left:
    """The job is no longer running under that holder (finished, released, replaced)."""


@dataclass(frozen=True)
class Stale:
    """The record version stayed the same for a whole lease: the job may be taken over."""

    item: LedgerItem


@dataclass(frozen=True)
class Watching:
    """Keep watching; look again in ``wait_s``."""

    wait_s: float


Observation = Alive | Left | Stale


def observe_step(
    seen: LedgerItem, since: float, now: float, item: LedgerItem | None
) -> Observation | Watching:
    """One look at the item (a pure function of what was seen and the observer's own clock)."""
    if item is None or item.state is not State.RUNNING or item.worker != seen.worker:
        return Left()
    if item.rvn != seen.rvn or item.etag != seen.etag:
        return Alive(item)
    left = since + seen.lease_s - now
    if left <= 0:
        return Stale(item)
    poll = min(OBSERVE_POLL_MAX_S, max(0.5, seen.lease_s / (2 * RENEWALS_PER_LEASE)))
    return Watching(min(poll, left))


def observe(
    ledger: Ledger,
    seen: LedgerItem,
    *,
    stop: threading.Event,
    cancel: threading.Event,
    clock: Callable[[], float] = time.monotonic,
    max_wait_s: float = OBSERVE_POLL_MAX_S,
) -> Observation | None:
    """Watch a held job until its holder shows life, leaves, or its lease goes stale.

    Returns None when ``stop`` or ``cancel`` is set first. Read errors are retried: an
    observer loses nothing by waiting.
    """
    since = clock()
    log.info("lease_watch_started", holder=seen.worker, lease_s=seen.lease_s)
    wait_s = 0.0
    while not (stop.wait(wait_s) or cancel.is_set()):
        try:
            item = ledger.get(seen.key, seen.pool)
        except InterruptedJob:
            raise
        except Exception as exc:  # a transient read failure: look again shortly
            log.debug("lease_watch_read_failed", error=str(exc))
            wait_s = 1.0
            continue
        step = observe_step(seen, since, clock(), item)
        if not isinstance(step, Watching):
            log.info("lease_watch_ended", outcome=type(step).__name__.lower())
            return step
        wait_s = min(step.wait_s, max_wait_s)
    return None
