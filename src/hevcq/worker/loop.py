"""The worker loop: receive a message, decide it, settle it, until told to stop.

Three parts, each with one side of the work (the split of dramatiq's worker):
``worker.consumer.Consumer`` makes every queue call, ``worker.session.JobSession`` decides
what a message's jobs come to (claim, watch, take over) and ``worker.executor.JobExecutor``
runs a claimed job under its heartbeat and lease. A ``Worker`` wires them for one pool;
a ``Loop`` runs one or more of them in one process, one job at a time, choosing which
pool's queue to take the next message from, and keeps what every loop needs: task
protection, idle and job limits, and what no message may do (kill the worker).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

import structlog

from hevcq.backoff import retry_delay
from hevcq.errors import Classify, FarmConfigError, RetryableError, unclassified
from hevcq.ledger import Ledger
from hevcq.messages import JobResult, Publisher
from hevcq.objects import ObjectStore
from hevcq.pools import Pool
from hevcq.queue import Queue, Received
from hevcq.worker.config import WorkerConfig
from hevcq.worker.consumer import Consumer
from hevcq.worker.executor import JobExecutor
from hevcq.worker.outage import Outage
from hevcq.worker.protection import NoProtection, TaskProtection
from hevcq.worker.runner import Runner
from hevcq.worker.session import JobSession
from hevcq.worker.settle import Settle, Verdict
from hevcq.worker.shared import CopyAtCommit, SharedEncode

log = structlog.get_logger()

# How visible messages in a pool's queue are counted (None: cannot tell now).
Backlog = Callable[[Pool], int | None]
# How long a backlog reading stands before the queue is asked again.
BACKLOG_FRESH_S = 5.0
# A poll for a pool the backlog says has work: it returns at once when a message is there,
# and one second lets SQS ask all its servers rather than sample some (a 0 s poll may not).
BUSY_POLL_S = 1


class Worker:
    """Consumes one pool's queue until ``stop`` is set (or ``max_jobs`` are handled)."""

    def __init__(
        self,
        *,
        pool: Pool,
        queue: Queue,
        ledger: Ledger,
        runner: Runner,
        store: ObjectStore,
        publisher: Publisher,
        config: WorkerConfig,
        stop: threading.Event,
        protection: TaskProtection | None = None,
        clock: Callable[[], float] = time.monotonic,
        emit_metrics: Callable[[JobResult], None] | None = None,
        classify: Classify = unclassified,
        shared: SharedEncode | None = None,
        copies: CopyAtCommit | None = None,
    ) -> None:
        self.pool = pool
        self.config = config
        self.stop = stop
        self.protection = protection or NoProtection()
        self._classify = classify
        self.consumer = Consumer(queue, poll_wait_s=config.poll_wait_s, classify=classify)
        self.executor = JobExecutor(
            pool=pool,
            ledger=ledger,
            runner=runner,
            store=store,
            publisher=publisher,
            config=config,
            stop=stop,
            extend=self.consumer.extend,
            protection=self.protection,
            clock=clock,
            emit_metrics=emit_metrics,
            shared=shared,
            copies=copies,
        )
        self.session = JobSession(
            pool=pool,
            ledger=ledger,
            store=store,
            publisher=publisher,
            config=config,
            stop=stop,
            extend=self.consumer.extend,
            execute=self.executor.run,
            clock=clock,
        )

    def run(self) -> int:
        """The receive loop over this pool's queue; returns the number of messages handled."""
        return Loop([self]).run()

    def handle_safely(self, msg: Received) -> None:
        """``handle``, except that nothing a message does ends the worker but a misconfigured
        farm (``FarmConfigError``, raised after the message went back untouched)."""
        # Nothing one message does may kill the worker, except a farm that is misconfigured:
        # then the message goes back untouched and the error stops the loop.
        try:
            self.handle(msg)
        except Exception as exc:
            err = self._classify(exc, "handling the message")
            if isinstance(err, FarmConfigError):
                self.consumer.settle(
                    msg, Settle(Verdict.RELEASE, reason=f"farm misconfigured: {err}")
                )
                if err is exc:
                    raise
                raise err from exc
            delay = retry_delay(msg.receive_count)
            if isinstance(err, RetryableError):  # an endpoint fault: expected, no traceback
                log.warning("message_deferred", reason=str(err), delay_s=delay)
            else:
                log.exception("message_handling_crashed", error=str(exc))
            self.consumer.settle(msg, Settle(Verdict.RELEASE, delay_s=delay, reason=str(err)))

    def handle(self, msg: Received) -> Settle:
        """Settle one message: parse, run each announced object's job, then act on the queue."""
        structlog.contextvars.bind_contextvars(message_id=msg.message_id, pool=self.pool.name)
        try:
            settle = self.session.decide(msg)
            self.consumer.settle(msg, settle)
            return settle
        finally:
            structlog.contextvars.unbind_contextvars("message_id", "pool", "key", "etag")


class Loop:
    """One worker process's receive loop over the queues of one or more pools.

    Each turn takes one message and handles it through its pool's ``Worker`` (one job at a
    time: a process is one encode slot). With several pools, the next message comes from
    the pool whose turn it is: pools whose queues hold visible messages come first, and
    among them the one this process served longest ago, so a pool with work is never
    starved by a longer queue and the process never waits while any queue has work.
    When no queue has any, it long-polls them in turn, each for its share of the
    configured wait. All lanes share the stop event, the task protection and the config.
    """

    def __init__(
        self,
        lanes: Sequence[Worker],
        *,
        backlog: Backlog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not lanes:
            raise ValueError("a worker needs at least one pool")
        first = lanes[0]
        if any(lane.protection is not first.protection for lane in lanes):
            # The task has one scale-in protection: the loop sets it, every job renews it.
            raise ValueError("the pools of one worker must share its task protection")
        self.lanes = list(lanes)
        self.config = first.config
        self.stop = first.stop
        self.protection = first.protection
        self._backlog = backlog
        self._clock = clock
        self._served: dict[str, float] = {lane.pool.name: -math.inf for lane in self.lanes}
        self._readings: dict[str, tuple[float, int | None]] = {}
        self._idle_turn = 0
        self.handled = 0

    @property
    def pools(self) -> list[str]:
        """The pools this loop serves, in the order given."""
        return [lane.pool.name for lane in self.lanes]

    def run(self) -> int:
        """The receive loop; returns the number of messages handled.

        Transient faults of the endpoint are waited out here; a ``FarmConfigError``
        (credentials refused, the farm's resources missing) ends the loop by propagating,
        after the message in hand went back untouched.
        """
        names = self.pools
        named = {"pool": names[0]} if len(names) == 1 else {"pools": names}
        log.info("worker_started", **named, worker=self.config.worker_id)
        idle_since = time.monotonic()
        outage = Outage("receive")
        while not self.stop.is_set() and not self._enough():
            if not self.protection.acquire():
                log.warning("task_protection_unavailable")  # take no new work meanwhile
                self.stop.wait(5)
                continue
            wait_s = 0.0
            try:
                lane, msg, wait_s = self._receive(outage)
                if lane is None or msg is None:
                    if self._idle_too_long(idle_since):
                        break
                    continue
                idle_since = time.monotonic()
                if self.stop.is_set():
                    lane.consumer.settle(
                        msg, Settle(Verdict.RELEASE, reason="received while stopping")
                    )
                    break
                self._served[lane.pool.name] = self._clock()
                lane.handle_safely(msg)
                self.handled += 1
            finally:
                self.protection.release()
                if wait_s:
                    self.stop.wait(wait_s)
        log.info("worker_stopped", **named, handled=self.handled)
        return self.handled

    def order(self) -> list[Worker]:
        """The lanes in the order their queues are asked: pools with visible messages
        first (unknown counts as having some), the one served longest ago first."""

        def key(lane: Worker) -> tuple[bool, float]:
            waiting = self._visible(lane)
            return (waiting == 0, self._served[lane.pool.name])

        return sorted(self.lanes, key=key)

    def _visible(self, lane: Worker) -> int | None:
        if self._backlog is None or len(self.lanes) == 1:
            return None
        name = lane.pool.name
        now = self._clock()
        at, value = self._readings.get(name, (-math.inf, None))
        if now - at >= BACKLOG_FRESH_S:
            try:
                value = self._backlog(lane.pool)
            except Exception as exc:  # a count is a hint: polling the queue still works
                log.debug("backlog_unreadable", pool=name, error=str(exc)[:200])
                value = None
            self._readings[name] = (now, value)
        return value

    def _receive(self, outage: Outage) -> tuple[Worker | None, Received | None, float]:
        if len(self.lanes) == 1:
            lane = self.lanes[0]
            msg, wait_s = lane.consumer.receive(outage)
            return lane, msg, wait_s
        order = self.order()
        for lane in order:
            if self.stop.is_set():
                return None, None, 0.0  # a stop is not kept waiting by the other queues
            if self._visible(lane) == 0:
                continue
            msg, wait_s = lane.consumer.receive(outage, BUSY_POLL_S)
            if wait_s or msg is not None:
                return lane, msg, wait_s
            self._readings.pop(lane.pool.name, None)  # it had none after all: ask again
        # Nothing anywhere: wait on each queue in turn for its share of the long poll.
        if self.stop.is_set():
            return None, None, 0.0
        lane = self.lanes[self._idle_turn % len(self.lanes)]
        self._idle_turn += 1
        share = max(BUSY_POLL_S, lane.consumer.poll_wait_s // len(self.lanes))
        msg, wait_s = lane.consumer.receive(outage, share)
        if msg is not None:
            self._readings.pop(lane.pool.name, None)
        return lane, msg, wait_s

    def _enough(self) -> bool:
        return self.config.max_jobs is not None and self.handled >= self.config.max_jobs

    def _idle_too_long(self, since: float) -> bool:
        limit = self.config.idle_exit_s
        return limit is not None and time.monotonic() - since >= limit
