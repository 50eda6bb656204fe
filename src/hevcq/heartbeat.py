"""Visibility heartbeat: a pure schedule plus a thin thread that follows it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from hevcq.errors import InterruptedJob, LostMessageError
from hevcq.queues import MAX_VISIBILITY_TIMEOUT_S

log = structlog.get_logger()


@dataclass(frozen=True)
class Wait:
    """Nothing to do until ``until`` (wall clock)."""

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


Action = Wait | Extend | Exhausted


def next_action(
    now: float,
    received_at: float,
    visible_until: float,
    timeout_s: int,
    step_s: int,
    *,
    budget_s: int = MAX_VISIBILITY_TIMEOUT_S,
) -> Action:
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
    """Runs ``extend`` on the ``next_action`` schedule until stopped.

    On a lost receipt or an exhausted budget it sets ``cancel`` (with ``reason``) so the
    job stops; the job code itself never sees the queue.
    """

    def __init__(
        self,
        *,
        extend: Callable[[int], None],
        received_at: float,
        timeout_s: int,
        step_s: int,
        cancel: threading.Event,
        on_beat: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        budget_s: int = MAX_VISIBILITY_TIMEOUT_S,
        max_sleep_s: float = 5.0,
    ) -> None:
        self._extend = extend
        self._max_sleep_s = max_sleep_s
        self._received_at = received_at
        self._visible_until = received_at + timeout_s
        self._timeout_s = timeout_s
        self._step_s = step_s
        self._budget_s = budget_s
        self._cancel = cancel
        self._on_beat = on_beat
        self._clock = clock
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self.failure: InterruptedJob | None = None
        self.extensions = 0

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _fail(self, failure: InterruptedJob, event: str, **kw: object) -> None:
        self.failure = failure
        log.warning(event, **kw)
        self._cancel.set()

    def tick(self) -> float | None:
        """One step of the schedule; returns seconds to sleep, or None when finished."""
        action = next_action(
            self._clock(),
            self._received_at,
            self._visible_until,
            self._timeout_s,
            self._step_s,
            budget_s=self._budget_s,
        )
        if isinstance(action, Wait):
            return max(0.0, action.until - self._clock())
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
            log.warning("heartbeat_extend_failed", error=str(exc))
            return 1.0
        self._visible_until = action.visible_until
        self.extensions += 1
        log.debug("heartbeat_extended", timeout_s=action.timeout_s)
        if self._on_beat is not None:
            try:
                self._on_beat()
            except InterruptedJob as exc:
                self._fail(exc, "heartbeat_lease_lost", error=str(exc))
                return None
        return 0.0

    def _run(self) -> None:
        while not self._stopped.is_set():
            delay = self.tick()
            if delay is None:
                return
            self._stopped.wait(min(delay, self._max_sleep_s))
