"""The worker loop: receive a message, claim its job, run it under a heartbeat, settle it.

Receiving is not running: this module holds the receipt and talks to the queue and the
ledger; ``jobs.JobRunner`` does the work and never sees either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

import structlog

from hevcq.aws import classify, retry_transient
from hevcq.backoff import retry_delay
from hevcq.errors import (
    FailureClass,
    FarmConfigError,
    HevcqError,
    InterruptedJob,
    LostMessageError,
    PermanentError,
    RetryableError,
)
from hevcq.events import S3TestEvent, SourceObject, parse_records
from hevcq.farm import Pool
from hevcq.heartbeat import Heartbeat
from hevcq.jobs import JobContext, JobSpec, Runner, job_result
from hevcq.keys import done_key
from hevcq.ledger import (
    AlreadyFinished,
    HeldElsewhere,
    JobKey,
    LeaseLostError,
    Ledger,
    State,
)
from hevcq.messages import JobResult, Outcome
from hevcq.metrics import job_metrics_line
from hevcq.outage import Outage
from hevcq.protection import NoProtection, TaskProtection
from hevcq.publish import Publisher
from hevcq.queues import Queue, Received
from hevcq.store import BlobStore

log = structlog.get_logger()


def print_metrics(result: JobResult) -> None:
    """One CloudWatch embedded-metric-format line on stdout; the log driver ships it."""
    print(job_metrics_line(result), flush=True)


class Verdict(Enum):
    """What to do with a message once its jobs are settled (worst wins)."""

    ACK = 0
    DEAD = 1
    RELEASE = 2
    LOST = 3  # the message is no longer ours: touch nothing


@dataclass(frozen=True)
class Settle:
    """A verdict with its details."""

    verdict: Verdict
    delay_s: int = 0
    failure_class: FailureClass | None = None
    reason: str = ""


ACK = Settle(Verdict.ACK)
LOST = Settle(Verdict.LOST)
NOTHING_TO_DO = Settle(Verdict.ACK, reason="no ObjectCreated record in the message")


@dataclass(frozen=True)
class WorkerConfig:
    """Tunables of one worker."""

    worker_id: str
    bucket: str
    poll_wait_s: int = 20
    lease_s: int = 240
    shutdown_grace_s: float = 60.0
    max_jobs: int | None = None
    idle_exit_s: float | None = None  # burst mode: exit after this long with no message
    heartbeat_max_sleep_s: float = 5.0


class Worker:
    """Consumes one pool's queue until ``stop`` is set (or ``max_jobs`` are handled)."""

    def __init__(
        self,
        *,
        pool: Pool,
        queue: Queue,
        ledger: Ledger,
        runner: Runner,
        store: BlobStore,
        publisher: Publisher,
        config: WorkerConfig,
        stop: threading.Event,
        protection: TaskProtection | None = None,
        clock: Callable[[], float] = time.time,
        emit_metrics: Callable[[JobResult], None] | None = None,
    ) -> None:
        self.pool = pool
        self._queue = queue
        self._ledger = ledger
        self._runner = runner
        self._store = store
        self._publisher = publisher
        self.config = config
        self.stop = stop
        self._protection = protection or NoProtection()
        self._clock = clock
        self._emit_metrics = emit_metrics or print_metrics
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
            if not self._protection.acquire():
                log.warning("task_protection_unavailable")  # take no new work meanwhile
                self.stop.wait(5)
                continue
            wait_s = 0.0
            try:
                msg, wait_s = self._receive(outage)
                if msg is None:
                    if self._idle_too_long(idle_since):
                        break
                    continue
                idle_since = time.monotonic()
                if self.stop.is_set():
                    self._apply(msg, Settle(Verdict.RELEASE, reason="received while stopping"))
                    break
                self._handle_safely(msg)
                self.handled += 1
            finally:
                self._protection.release()
                if wait_s:
                    self.stop.wait(wait_s)
        log.info("worker_stopped", pool=self.pool.name, handled=self.handled)
        return self.handled

    def _receive(self, outage: Outage) -> tuple[Received | None, float]:
        """One long poll; on a transient fault, no message and how long to wait."""
        try:
            msg = self._queue.receive(self.config.poll_wait_s)
        except Exception as exc:
            err = classify(exc, "receive")
            if isinstance(err, FarmConfigError):
                if err is exc:
                    raise
                raise err from exc
            return None, outage.failed(err)
        outage.recovered()
        return msg, 0.0

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
            err = classify(exc, "handling the message")
            if isinstance(err, FarmConfigError):
                self._apply(msg, Settle(Verdict.RELEASE, reason=f"farm misconfigured: {err}"))
                if err is exc:
                    raise
                raise err from exc
            delay = retry_delay(msg.receive_count)
            if isinstance(err, RetryableError):  # an endpoint fault: expected, no traceback
                log.warning("message_deferred", reason=str(err), delay_s=delay)
            else:
                log.exception("message_handling_crashed", error=str(exc))
            self._apply(msg, Settle(Verdict.RELEASE, delay_s=delay, reason=str(err)))

    def handle(self, msg: Received) -> Settle:
        """Settle one message: parse, run each announced object's job, then act on the queue."""
        structlog.contextvars.bind_contextvars(message_id=msg.message_id, pool=self.pool.name)
        try:
            return self._handle(msg)
        finally:
            structlog.contextvars.unbind_contextvars("message_id", "pool", "key", "etag")

    def _handle(self, msg: Received) -> Settle:
        try:
            parsed = parse_records(msg.body)
        except PermanentError as exc:
            log.warning("message_malformed", reason=str(exc), body_bytes=len(msg.body))
            settle = Settle(Verdict.DEAD, failure_class=FailureClass.PERMANENT, reason=str(exc))
            self._bind_settle_context(None, None)
            self._apply(msg, settle)
            return settle
        if isinstance(parsed, S3TestEvent):
            log.info("test_event_ignored", bucket=parsed.bucket,
                     reason="S3 sends a test event when notifications are set up")  # fmt: skip
            settle = Settle(Verdict.ACK, reason="test event")
            self._bind_settle_context(None, None)
        else:
            for rec in parsed.ignored:
                log.info("event_ignored", event_name=rec.event_name, key=rec.key,
                         reason=rec.reason)  # fmt: skip
            settles = [self._object(msg, obj) for obj in parsed.objects]
            settle = max(settles, key=lambda s: s.verdict.value) if settles else NOTHING_TO_DO
            if parsed.objects:
                self._bind_settle_context(parsed.objects[0].key, parsed.objects[0].etag)
            else:
                self._bind_settle_context(parsed.ignored[0].key if parsed.ignored else None, None)
        self._apply(msg, settle)
        return settle

    def _bind_settle_context(self, key: str | None, etag: str | None) -> None:
        """Name the message's object on the settle lines (``_object`` unbinds its own)."""
        structlog.contextvars.bind_contextvars(pool=self.pool.name, key=key, etag=etag)

    def _apply(self, msg: Received, settle: Settle) -> None:
        """Act on the queue. A transient fault is retried for a while, then left: the message
        comes back when its visibility runs out. Only a ``FarmConfigError`` is raised."""
        if settle.verdict is not Verdict.LOST:
            try:
                self._act(msg, settle)
            except FarmConfigError:
                raise
            except Exception as exc:
                log.warning("settle_failed", verdict=settle.verdict.name.lower(),
                            error=str(exc)[:500])  # fmt: skip
                return
        log.info("message_settled", verdict=settle.verdict.name.lower(), delay_s=settle.delay_s,
                 reason=settle.reason or None)  # fmt: skip

    @retry_transient
    def _act(self, msg: Received, settle: Settle) -> None:
        try:
            if settle.verdict is Verdict.ACK:
                self._queue.delete(msg)
            elif settle.verdict is Verdict.DEAD:
                self._queue.dead_letter(
                    msg, settle.failure_class or FailureClass.PERMANENT, settle.reason
                )
            elif settle.verdict is Verdict.RELEASE:
                self._queue.release(msg, settle.delay_s)
        except HevcqError:
            raise
        except Exception as exc:
            raise classify(exc, f"{settle.verdict.name.lower()} message") from exc

    def _object(self, msg: Received, obj: SourceObject) -> Settle:
        structlog.contextvars.bind_contextvars(key=obj.key, pool=self.pool.name)
        try:
            return self._object_inner(msg, obj)
        finally:
            structlog.contextvars.unbind_contextvars("key", "pool", "job_id")

    def _object_inner(self, msg: Received, obj: SourceObject) -> Settle:
        if obj.bucket != self.config.bucket:
            reason = f"object from a bucket this farm does not own: {obj.bucket!r}"
            return Settle(Verdict.DEAD, failure_class=FailureClass.PERMANENT, reason=reason)
        try:
            output_key = done_key(obj.key, self.pool.name, self.pool.output_suffix)
            current = self._store.head(obj.key)
        except PermanentError as exc:
            return Settle(Verdict.DEAD, failure_class=FailureClass.PERMANENT, reason=str(exc))
        except RetryableError as exc:
            return Settle(Verdict.RELEASE, delay_s=retry_delay(msg.receive_count), reason=str(exc))
        if current is None:
            log.info("source_gone", reason="the source no longer exists")
            return ACK
        if obj.etag and current.etag != obj.etag:
            log.info("source_superseded", reason="a newer upload replaced this source")
            return ACK
        job = JobKey(obj.key, self.pool.name, current.etag, self.pool.settings_hash())
        structlog.contextvars.bind_contextvars(job_id=job.job_id)
        spec = JobSpec(job, self.pool, self.config.bucket, output_key, current.size)
        return self._claim_and_run(msg, spec)

    def _claim_and_run(self, msg: Received, spec: JobSpec) -> Settle:
        me = self.config.worker_id
        claim = self._ledger.claim(spec.job, me, msg.message_id, self.config.lease_s)
        if isinstance(claim, AlreadyFinished):
            # No work, but say so again: whoever re-sent the file is waiting for a result.
            log.info("job_already_finished", state=claim.state.value)
            outcome: Outcome = "done" if claim.state is State.DONE else "skipped"
            self._publisher.publish(
                job_result(
                    spec, outcome, self.config.worker_id,
                    output_key=claim.output_key, reason=claim.reason,
                )
            )  # fmt: skip
            return ACK
        if isinstance(claim, HeldElsewhere):
            if claim.message_id and claim.message_id != msg.message_id:
                # A duplicate event: the holder has its own message, which comes back if it dies.
                log.info("duplicate_event_dropped", holder=claim.worker)
                return ACK
            log.info("job_held_elsewhere", holder=claim.worker, lease_left_s=claim.lease_left_s)
            return Settle(Verdict.RELEASE, delay_s=int(claim.lease_left_s) + 5)
        log.info("job_claimed", attempt=claim.attempt, receive_count=msg.receive_count)
        return self._run_claimed(msg, spec)

    def _run_claimed(self, msg: Received, spec: JobSpec) -> Settle:
        ctx = JobContext()
        progress: list[float] = []
        ctx.on_progress = progress.append
        q = self.pool.queue

        def renew() -> None:
            pct = progress[-1] if progress else None
            self._ledger.renew(spec.job, self.config.worker_id, self.config.lease_s, pct)
            self._protection.renew()

        beat = Heartbeat(
            extend=lambda t: self._queue.extend(msg, t),
            received_at=msg.received_at,
            timeout_s=q.visibility_timeout_s,
            step_s=q.visibility_timeout_s,
            cancel=ctx.cancel,
            on_beat=renew,
            clock=self._clock,
            max_sleep_s=self.config.heartbeat_max_sleep_s,
        )
        done = threading.Event()
        watcher = threading.Thread(
            target=self._watch_shutdown, args=(ctx, done, progress), daemon=True
        )
        watcher.start()
        try:
            with beat:
                result = self._runner.run(spec, ctx)
        except Exception as exc:  # every failure is settled; see _settle_failure
            return self._settle_failure(msg, spec, exc, beat.failure)
        finally:
            done.set()
            watcher.join()
        if beat.failure is not None:
            return self._interrupted(spec, beat.failure)
        return self._succeeded(spec, result)

    def _settle_failure(
        self, msg: Received, spec: JobSpec, exc: Exception, beat_failure: InterruptedJob | None
    ) -> Settle:
        """Map a job's exception to its failure class and what happens to the message."""
        # Once the heartbeat lost the message or the lease, whatever the job raised while
        # being stopped is moot: the job belongs to someone else now.
        if beat_failure is not None or isinstance(exc, InterruptedJob):
            return self._interrupted(spec, beat_failure or exc)  # type: ignore[arg-type]
        if isinstance(exc, FarmConfigError):  # not the job's fault: see _handle_safely
            self._give_back_quietly(spec, exc)
            raise exc
        if isinstance(exc, RetryableError):
            return self._failed(msg, spec, exc.failure_class, str(exc), final=False, exc=exc)
        if isinstance(exc, HevcqError):
            return self._failed(msg, spec, FailureClass.PERMANENT, str(exc), final=True)
        log.exception("job_crashed", error=str(exc))
        reason = f"internal error: {type(exc).__name__}: {exc}"
        return self._failed(msg, spec, FailureClass.TRANSIENT, reason, final=False)

    def _give_back_quietly(self, spec: JobSpec, exc: FarmConfigError) -> None:
        """Free the lease, if the ledger still answers, so that a fixed farm starts at once."""
        try:
            self._ledger.release(
                spec.job, self.config.worker_id, State.INTERRUPTED, {"reason": str(exc)}
            )
        except Exception as err:
            log.warning("lease_release_failed", error=str(err)[:500])

    def _watch_shutdown(
        self, ctx: JobContext, done: threading.Event, progress: list[float]
    ) -> None:
        """On stop, let a job that will finish within the grace finish; cancel the rest."""
        started = time.monotonic()
        # Wait on the job's own event so that a finished job releases the watcher at once
        # (it is joined after every job); the stop flag is checked between waits.
        while not done.wait(0.2):
            if self.stop.is_set():
                break
        if done.is_set():
            return
        elapsed = time.monotonic() - started
        pct = progress[-1] if progress else 0.0
        remaining = elapsed * (100 - pct) / pct if pct > 0 else float("inf")
        grace = self.config.shutdown_grace_s
        left = round(remaining) if remaining != float("inf") else None
        log.info("shutdown_requested", progress=round(pct, 1), estimated_left_s=left)
        if remaining <= grace and done.wait(grace):
            return
        ctx.cancel.set()

    def _settle_ledger(self, spec: JobSpec, state: State, fields: Mapping[str, object]) -> bool:
        try:
            self._ledger.finish(spec.job, self.config.worker_id, state, dict(fields))
        except LeaseLostError as exc:
            log.warning("lease_lost_before_finish", error=str(exc))
            return False
        return True

    def _succeeded(self, spec: JobSpec, result: JobResult) -> Settle:
        state = State.DONE if result.outcome == "done" else State.SKIPPED
        fields = {
            "output_key": result.output_key, "reason": result.reason,
            "input_bytes": result.input_bytes, "output_bytes": result.output_bytes,
            "encode_s": result.encode_s, "duration_s": result.duration_s, "progress": 100.0,
        }  # fmt: skip
        if not self._settle_ledger(spec, state, fields):
            return LOST
        self._publisher.publish(result)
        self._emit_metrics(result)
        log.info("job_finished", outcome=result.outcome, reason=result.reason)
        return ACK

    def _failed(
        self,
        msg: Received,
        spec: JobSpec,
        cls: FailureClass,
        reason: str,
        *,
        final: bool,
        exc: RetryableError | None = None,
    ) -> Settle:
        last_try = msg.receive_count >= self.pool.queue.max_receive_count
        fields: dict[str, object] = {"failure_class": cls.value, "reason": reason}
        if final or last_try:
            if not self._settle_ledger(spec, State.FAILED, fields):
                return LOST
            failure = self._failure_result(spec, cls, reason)
            self._publisher.publish(failure)
            self._emit_metrics(failure)
            log.warning("job_failed", failure_class=cls.value, reason=reason)
            return Settle(Verdict.DEAD, failure_class=cls, reason=reason)
        try:
            self._ledger.release(spec.job, self.config.worker_id, State.QUEUED, fields)
        except LeaseLostError:
            return LOST
        delay = int(exc.delay_s) if exc and exc.delay_s else retry_delay(msg.receive_count)
        log.warning("job_will_retry", failure_class=cls.value, reason=reason, delay_s=delay)
        return Settle(Verdict.RELEASE, delay_s=delay, failure_class=cls, reason=reason)

    def _interrupted(self, spec: JobSpec, exc: InterruptedJob) -> Settle:
        if isinstance(exc, LostMessageError | LeaseLostError):
            log.warning("job_abandoned", reason=str(exc))  # someone else owns it now
            return LOST
        try:
            self._ledger.release(
                spec.job, self.config.worker_id, State.INTERRUPTED, {"reason": str(exc)}
            )
        except LeaseLostError:
            return LOST
        log.info("job_interrupted", reason=str(exc))
        return Settle(Verdict.RELEASE, delay_s=0, reason=str(exc))

    def _failure_result(self, spec: JobSpec, cls: FailureClass, reason: str) -> JobResult:
        return job_result(
            spec, "failed", self.config.worker_id,
            reason=reason, failure_class=cls, input_bytes=spec.source_size,
        )  # fmt: skip
