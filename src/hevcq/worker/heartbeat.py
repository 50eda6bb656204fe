"""Visibility heartbeat: a pure schedule plus a thin thread that follows it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from hevcq.errors import InterruptedJob, LostMessageError
from hevcq.ledger import LeaseLostError
from hevcq.limits import MAX_VISIBILITY_TIMEOUT_S

log = structlog.get_logger()


@dataclass(frozen=True)
class Wait:
    """Nothing to do until ``until`` (monotonic clock)."""

    until: float


@dataclass(frozen=True)
class Extend:
    """Set the visibility timeout to ``timeout_s`` from now."""

    timeout_s: int
    visible_until: float


@dataclass(frozen=True)
class Exhausted:
    """The 12-hour budget from receipt cannot cover another heartbeat: stop and release."""

    left_s: float


Step = Wait | Extend | Exhausted


def next_action(
    now: float,
    received_at: float,
    visible_until: float,
    timeout_s: int,
    step_s: int,
    *,
    budget_s: int = MAX_VISIBILITY_TIMEOUT_S,
) -> Step:
    """Decide the heartbeat's next move.

    Extend when less than half a period of visibility is left (the lead), by ``step_s``
    seconds, trimmed to what is left of the budget counted from receipt. When what is left
    would not even reach past the next lead, the job cannot be protected any longer.
    """
    period = max(1, min(timeout_s, step_s))
    lead = period / 2
    if visible_until - now > lead:
        return Wait(until=visible_until - lead)
    left = received_at + budget_s - now
    if left <= lead:
        return Exhausted(left_s=max(0.0, left))
    timeout = int(min(step_s, left))
    return Extend(timeout_s=timeout, visible_until=now + timeout)


class Heartbeat:
    """Keeps a running job's message invisible and its ledger lease alive.

    Two duties, each in a thread of its own so that neither waits on the other (a renewal
    held up by a throttled ledger must not stop the queue's extensions), both on the
    monotonic clock (a wall-clock step changes nothing): ``extend`` on the ``next_action``
    schedule, and ``renew`` every ``renew_every_s``. ``lease_deadline`` says when the lease
    runs out unless renewed; the visibility thread stops the job then, even while a renewal
    still hangs, since a watcher may take the job over from that moment. A lost receipt, a
    lost or superseded lease, or an exhausted budget sets ``cancel`` (with ``failure``) so
    the job stops; the job code never sees the queue. Any other error is transient: logged
    once when it starts and once when it ends, and retried. No exception ends a thread.
    """

    def __init__(
        self,
        *,
        extend: Callable[[int], None],
        received_at: float,
        timeout_s: int,
        step_s: int,
        cancel: threading.Event,
        renew: Callable[[], None] | None = None,
        renew_every_s: float = 30.0,
        lease_deadline: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        budget_s: int = MAX_VISIBILITY_TIMEOUT_S,
        max_sleep_s: float = 5.0,
        retry_s: float = 1.0,
    ) -> None:
        self._extend = extend
        self._renew = renew
        self._renew_every_s = renew_every_s
        self._lease_deadline = lease_deadline
        self._max_sleep_s = max_sleep_s
        self._retry_s = retry_s
        self._received_at = received_at
        self._visible_until = received_at + timeout_s
        self._timeout_s = timeout_s
        self._step_s = step_s
        self._budget_s = budget_s
        self._cancel = cancel
        self._clock = clock
        self._next_renew = clock() + renew_every_s
        self._next_extend = 0.0
        self._troubled: set[str] = set()
        self._fail_lock = threading.Lock()
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._run,
                args=(self._visibility_step,),
                name="heartbeat-visibility",
                daemon=True,
            ),
            threading.Thread(
                target=self._run, args=(self._lease,), name="heartbeat-lease", daemon=True
            ),
        ]
        self.failure: InterruptedJob | None = None
        self.extensions = 0
        self.renewals = 0

    def __enter__(self) -> Heartbeat:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._threads[0].join()
        # A renewal may hang on the ledger (its client's own retries); the job does not
        # wait for it: the lease keeper refuses whatever comes after an expired lease.
        self._threads[1].join(self._max_sleep_s)

    def _fail(self, failure: InterruptedJob, event: str, **kw: object) -> None:
        with self._fail_lock:
            if self.failure is not None:  # the first failure is the job's
                return
            self.failure = failure
        log.warning(event, **kw)
        self._cancel.set()

    def _trouble(self, duty: str, exc: Exception) -> None:
        if duty not in self._troubled:  # one line when the trouble starts, not one per retry
            self._troubled.add(duty)
            log.warning(f"heartbeat_{duty}_failing", error=str(exc))

    def _fine(self, duty: str) -> None:
        if duty in self._troubled:
            self._troubled.discard(duty)
            log.info(f"heartbeat_{duty}_recovered")

    def _visibility_step(self, now: float) -> float | None:
        """The visibility duty and the lease's deadline; when next due, or None when finished."""
        due = self._visibility(now)
        if due is None or self._lease_deadline is None:
            return due
        deadline = self._lease_deadline()
        if now >= deadline:
            self._fail(
                LeaseLostError("the lease ran out before a renewal went through"),
                "heartbeat_lease_expired",
            )
            return None
        return min(due, deadline)

    def _visibility(self, now: float) -> float | None:
        """The visibility duty; returns when it is next due, or None when finished."""
        if now < self._next_extend:
            return self._next_extend
        action = next_action(
            now,
            self._received_at,
            self._visible_until,
            self._timeout_s,
            self._step_s,
            budget_s=self._budget_s,
        )
        if isinstance(action, Wait):
            return action.until
        if isinstance(action, Exhausted):
            self._fail(
                InterruptedJob("the 12-hour visibility budget is used up"),
                "visibility_budget_exhausted",
                left_s=round(action.left_s, 1),
            )
            return None
        try:
            self._extend(action.timeout_s)
        except LostMessageError as exc:
            self._fail(exc, "heartbeat_lost_message", error=str(exc))
            return None
        except Exception as exc:
            self._trouble("extend", exc)
            self._next_extend = now + self._retry_s
            return self._next_extend
        self._fine("extend")
        self._visible_until = action.visible_until
        self.extensions += 1
        log.debug("heartbeat_extended", timeout_s=action.timeout_s)
        return now

    def _lease(self, now: float) -> float | None:
        """The renewal duty; returns when it is next due, or None when finished."""
        if self._renew is None:
            return None
        if now < self._next_renew:
            return self._next_renew
        try:
            self._renew()
        except InterruptedJob as exc:
            self._fail(exc, "heartbeat_lease_lost", error=str(exc))
            return None
        except Exception as exc:
            self._trouble("renew", exc)
            self._next_renew = now + self._retry_s
            return self._next_renew
        self._fine("renew")
        self.renewals += 1
        self._next_renew = now + self._renew_every_s
        return self._next_renew

    def tick(self) -> float | None:
        """One step of both duties in turn; seconds to sleep, or None when finished."""
        due_extend = self._visibility_step(self._clock())
        if due_extend is None:
            return None
        due_renew = self._lease(self._clock()) if self._renew is not None else float("inf")
        if due_renew is None:
            return None
        return max(0.0, min(due_extend, due_renew) - self._clock())

    def _run(self, duty: Callable[[float], float | None]) -> None:
        while not self._stopped.is_set() and self.failure is None:
            try:
                due = duty(self._clock())
            except Exception as exc:  # a bug here must not leave the job unprotected silently
                log.exception("heartbeat_crashed", error=str(exc))
                due = self._clock() + self._retry_s
            if due is None:
                return
            self._stopped.wait(min(max(0.0, due - self._clock()), self._max_sleep_s))
