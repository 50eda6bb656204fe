"""The worker loop: receive a message, decide it, settle it, until told to stop.

Three parts, each with one side of the work (the split of dramatiq's worker):
``worker.consumer.Consumer`` makes every queue call, ``worker.session.JobSession`` decides
what a message's jobs come to (claim, watch, take over) and ``worker.executor.JobExecutor``
runs a claimed job under its heartbeat and lease. This module wires them and keeps the
loop: task protection, idle and job limits, and what no message may do (kill the worker).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

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
        self.handled = 0

    def run(self) -> int:
        """The receive loop; returns the number of messages handled.

        Transient faults of the endpoint are waited out here; a ``FarmConfigError``
        (credentials refused, the farm's resources missing) ends the loop by propagating,
        after the message in hand went back untouched.
        """
        log.info("worker_started", pool=self.pool.name, worker=self.config.worker_id)
        idle_since = time.monotonic()
        outage = Outage("receive")
        while not self.stop.is_set() and not self._enough():
            if not self.protection.acquire():
                log.warning("task_protection_unavailable")  # take no new work meanwhile
                self.stop.wait(5)
                continue
            wait_s = 0.0
            try:
                msg, wait_s = self.consumer.receive(outage)
                if msg is None:
                    if self._idle_too_long(idle_since):
                        break
                    continue
                idle_since = time.monotonic()
                if self.stop.is_set():
                    self.consumer.settle(
                        msg, Settle(Verdict.RELEASE, reason="received while stopping")
                    )
                    break
                self._handle_safely(msg)
                self.handled += 1
            finally:
                self.protection.release()
                if wait_s:
                    self.stop.wait(wait_s)
        log.info("worker_stopped", pool=self.pool.name, handled=self.handled)
        return self.handled

    def _enough(self) -> bool:
        return self.config.max_jobs is not None and self.handled >= self.config.max_jobs

    def _idle_too_long(self, since: float) -> bool:
        limit = self.config.idle_exit_s
        return limit is not None and time.monotonic() - since >= limit

    def _handle_safely(self, msg: Received) -> None:
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
