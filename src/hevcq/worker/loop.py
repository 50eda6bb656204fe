"""The worker loop: receive a message, claim its job, run it under a heartbeat, settle it.

Receiving is not running: this module holds the receipt and talks to the queue and the
ledger; ``worker.runner.JobRunner`` does the work and never sees either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

import structlog

from hevcq.backoff import retry_delay, retry_transient
from hevcq.errors import (
    Classify,
    FailureClass,
    FarmConfigError,
    HevcqError,
    InterruptedJob,
    LostMessageError,
    PermanentError,
    RetryableError,
    SupersededJob,
    WaitingForPrimary,
    WorkerCannotRun,
    unclassified,
)
from hevcq.keys import done_key, keeps_source_ext
from hevcq.ledger import (
    PHASES,
    AlreadyFinished,
    Claimed,
    HeldElsewhere,
    JobKey,
    Lease,
    LeaseLostError,
    Ledger,
    LedgerItem,
    State,
    Superseded,
)
from hevcq.limits import MAX_WAIT_TIME_S
from hevcq.messages import JobResult, Outcome, Publisher
from hevcq.objects import META_SOURCE_ETAG, META_SOURCE_KEY, ObjectStore
from hevcq.pools import Pool
from hevcq.queue import Queue, Received
from hevcq.worker.fence import FencedWriter
from hevcq.worker.heartbeat import Heartbeat
from hevcq.worker.lease import LeaseKeeper, Left, Observation, Stale, observe
from hevcq.worker.metrics import job_metrics_line
from hevcq.worker.outage import Outage
from hevcq.worker.protection import NoProtection, TaskProtection
from hevcq.worker.runner import JobContext, JobSpec, Runner, job_result
from hevcq.worker.s3events import S3TestEvent, SourceObject, parse_records
from hevcq.worker.shared import SharedEncode

log = structlog.get_logger()

CLAIM_ROUNDS = 3  # claim, watch a holder, claim again: each round follows a change
SOURCE_DELETED = "source deleted"  # the reason of a job whose source went away under it
WATCH_LEASES = 3  # how long to wait on an older version's live holder, in its leases


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
    poll_wait_s: int = MAX_WAIT_TIME_S
    lease_s: int = 240
    shutdown_grace_s: float = 60.0
    max_jobs: int | None = None
    idle_exit_s: float | None = None  # burst mode: exit after this long with no message
    heartbeat_max_sleep_s: float = 5.0
    # A running job's progress reaches the ledger with each lease renewal; renewing at least
    # this often keeps the figures that `status`, the live view and the dashboard show fresh.
    progress_every_s: float = 10.0


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
    ) -> None:
        self.pool = pool
        self._queue = queue
        self._ledger = ledger
        self._runner = runner
        self._classify = classify
        self._store = store
        self._publisher = publisher
        self.config = config
        self.stop = stop
        self._protection = protection or NoProtection()
        self._clock = clock
        self._emit_metrics = emit_metrics or print_metrics
        # Where another pool's identical encode can serve this pool's jobs (worker.shared).
        self._shared = shared
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
            err = self._classify(exc, "receive")
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
            err = self._classify(exc, "handling the message")
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
            log.info(
                "test_event_ignored",
                bucket=parsed.bucket,
                reason="S3 sends a test event when notifications are set up",
            )
            settle = Settle(Verdict.ACK, reason="test event")
            self._bind_settle_context(None, None)
        else:
            for rec in parsed.ignored:
                log.info("event_ignored", event_name=rec.event_name, key=rec.key, reason=rec.reason)
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
                log.warning(
                    "settle_failed", verdict=settle.verdict.name.lower(), error=str(exc)[:500]
                )
                return
        log.info(
            "message_settled",
            verdict=settle.verdict.name.lower(),
            delay_s=settle.delay_s,
            reason=settle.reason or None,
        )

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
            raise self._classify(exc, f"{settle.verdict.name.lower()} message") from exc

    def _object(self, msg: Received, obj: SourceObject) -> Settle:
        structlog.contextvars.bind_contextvars(key=obj.key, pool=self.pool.name)
        try:
            return self._object_inner(msg, obj)
        except RetryableError as exc:
            # The ledger, the bucket or the topic did not answer in time: nothing of the
            # job was recorded under our name, so the message simply comes back later.
            delay = retry_delay(msg.receive_count)
            log.warning("farm_unavailable", reason=str(exc), delay_s=delay)
            return Settle(Verdict.RELEASE, delay_s=delay, reason=str(exc))
        finally:
            structlog.contextvars.unbind_contextvars("key", "pool", "job_id", "etag")

    def _object_inner(self, msg: Received, obj: SourceObject) -> Settle:
        if obj.bucket != self.config.bucket:
            reason = f"object from a bucket this farm does not own: {obj.bucket!r}"
            return Settle(Verdict.DEAD, failure_class=FailureClass.PERMANENT, reason=reason)
        try:
            current = self._store.head(obj.key)
            # The uploader's naming answer rides on the source (hevcq.keys.sharing_sources).
            long_name = keeps_source_ext(current.metadata) if current else False
            output_key = done_key(
                obj.key, self.pool.name, self.pool.output_suffix, with_source_ext=long_name
            )
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
        job = JobKey(
            obj.key,
            self.pool.name,
            current.etag,
            self.pool.settings_hash(),
            version_id=obj.version_id,
            sequencer=obj.sequencer,
        )
        structlog.contextvars.bind_contextvars(job_id=job.job_id, etag=job.etag)
        spec = JobSpec(job, self.pool, self.config.bucket, output_key, current.size, current)
        return self._claim_and_run(msg, spec)

    def _source_is(self, job: JobKey) -> bool:
        """True while the source object is still ``job``'s version (a fresh HEAD)."""
        current = self._store.head(job.key)
        return current is not None and current.etag == job.etag

    def _claim_and_run(self, msg: Received, spec: JobSpec) -> Settle:
        me, lease_s = self.config.worker_id, self.config.lease_s
        for _ in range(CLAIM_ROUNDS):
            claim = self._ledger.claim(
                spec.job, me, msg.message_id, lease_s, lambda: self._source_is(spec.job)
            )
            if isinstance(claim, Claimed):
                log.info("job_claimed", attempt=claim.attempt, receive_count=msg.receive_count)
                return self._run_claimed(msg, spec, claim.lease)
            if isinstance(claim, AlreadyFinished):
                return self._already_finished(spec, claim.item)
            if isinstance(claim, Superseded):
                log.info(
                    "job_superseded",
                    reason="the ledger knows a newer version",
                    newer_etag=claim.item.etag,
                )
                return ACK
            settle = self._held(msg, spec, claim)
            if settle is not None:
                return settle
        return Settle(
            Verdict.RELEASE,
            delay_s=retry_delay(msg.receive_count),
            reason="the job's ledger item keeps changing",
        )

    def _already_finished(self, spec: JobSpec, item: LedgerItem) -> Settle:
        # No work, but say so again: whoever re-sent the file is waiting for a result.
        log.info("job_already_finished", state=item.state.value)
        outcome: Outcome = "done" if item.state is State.DONE else "skipped"
        self._publisher.publish(
            job_result(
                spec,
                outcome,
                self.config.worker_id,
                output_key=item.output_key,
                output_etag=item.output_etag,
                reason=item.reason,
                copied_from=item.copied_from,
                copied_from_etag=item.copied_from_etag,
            )
        )
        return ACK

    def _held(self, msg: Received, spec: JobSpec, held: HeldElsewhere) -> Settle | None:
        """Another worker holds the job (or an older version's job): wait, or take it over.

        Returns None to claim again (the holder left, or its lease went stale and the
        takeover lost a race), or how to settle the message.
        """
        item = held.item
        if held.same_job and item.message_id != msg.message_id:
            # The holder has its own message, which comes back if the holder dies.
            log.info(
                "duplicate_event_dropped",
                holder=item.worker,
                reason="the same version is held under another message",
            )
            return ACK
        if not held.same_job and item.etag != spec.job.etag:
            log.info("older_version_held", holder=item.worker, older_etag=item.etag)
            self._ledger.signal_superseded(item, spec.job.etag)
        seen, watched_s = item, 0.0
        while watched_s <= WATCH_LEASES * max(item.lease_s, 1.0):
            started = time.monotonic()
            outcome, lost = self._watch(msg, seen)
            watched_s += time.monotonic() - started
            if lost:
                return LOST
            if outcome is None:  # stopping: give the message back untouched
                return Settle(Verdict.RELEASE, delay_s=0, reason="worker stopping")
            if isinstance(outcome, Left | Stale):
                return self._take_over(msg, spec, outcome)
            if held.same_job:
                break  # the holder is alive and works on this very job
            seen = outcome.item  # an older version's holder: it stops at its next renewal
        delay = int(item.lease_s) + 5
        log.info(
            "job_held_elsewhere",
            holder=item.worker,
            delay_s=delay,
            reason="the holder is alive; the message comes back later",
        )
        return Settle(Verdict.RELEASE, delay_s=delay, reason="held by a live worker")

    def _take_over(self, msg: Received, spec: JobSpec, outcome: Left | Stale) -> Settle | None:
        """Run the job if its lease went stale and we win the takeover; None: claim again."""
        if isinstance(outcome, Left):
            return None
        taken = self._ledger.take_over(
            spec.job, self.config.worker_id, msg.message_id, self.config.lease_s, outcome.item
        )
        if taken is None:
            return None
        log.info("job_taken_over", holder=outcome.item.worker, attempt=taken.attempt)
        return self._run_claimed(msg, spec, taken.lease)

    def _watch(self, msg: Received, item: LedgerItem) -> tuple[Observation | None, bool]:
        """Observe a lease while keeping our message invisible; (outcome, message lost)."""
        cancel = threading.Event()
        vis = self.pool.queue.visibility_timeout_s
        beat = Heartbeat(
            extend=lambda t: self._queue.extend(msg, t),
            received_at=msg.received_at,
            timeout_s=vis,
            step_s=vis,
            cancel=cancel,
            clock=self._clock,
            max_sleep_s=self.config.heartbeat_max_sleep_s,
        )
        with beat:
            outcome = observe(
                self._ledger,
                item,
                stop=self.stop,
                cancel=cancel,
                clock=self._clock,
                max_wait_s=self.config.heartbeat_max_sleep_s,
            )
        return outcome, isinstance(beat.failure, LostMessageError)

    def _run_claimed(self, msg: Received, spec: JobSpec, lease: Lease) -> Settle:
        keeper = LeaseKeeper(self._ledger, lease, clock=self._clock)
        writer = FencedWriter(self._store, keeper, self.config.worker_id)
        ctx = JobContext(commit=writer.put)
        progress: list[float] = []

        def on_progress(pct: float) -> None:
            progress.append(pct)
            keeper.progress["progress"] = pct

        def on_rates(fps: float | None, speed: float | None) -> None:
            for name, value in (("fps", fps), ("speed", speed)):
                if value is not None:
                    keeper.progress[name] = value

        ctx.on_progress = on_progress
        ctx.on_rates = on_rates
        q = self.pool.queue

        def renew() -> None:
            keeper.renew()
            self._protection.renew()

        beat = Heartbeat(
            extend=lambda t: self._queue.extend(msg, t),
            received_at=msg.received_at,
            timeout_s=q.visibility_timeout_s,
            step_s=q.visibility_timeout_s,
            cancel=ctx.cancel,
            renew=renew,
            renew_every_s=min(keeper.renew_every_s, self.config.progress_every_s),
            lease_deadline=keeper.expires_at,
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
                served = None
                if self._shared is not None:
                    served = self._shared.serve(spec, writer, ctx.cancel, msg.receive_count)
                result = served if served is not None else self._runner.run(spec, ctx)
        except Exception as exc:  # every failure is settled; see _settle_failure
            return self._settle_failure(keeper, spec, exc, beat.failure, msg.receive_count)
        finally:
            done.set()
            watcher.join()
        if beat.failure is not None:
            return self._interrupted(keeper, beat.failure)
        return self._succeeded(keeper, spec, result, ctx.timings)

    def _settle_failure(
        self,
        keeper: LeaseKeeper,
        spec: JobSpec,
        exc: Exception,
        beat_failure: InterruptedJob | None,
        receive_count: int = 1,
    ) -> Settle:
        """Map a job's exception to its failure class and what happens to the message."""
        # Once the heartbeat lost the message or the lease, whatever the job raised while
        # being stopped is moot: the job belongs to someone else now.
        if beat_failure is None and isinstance(exc, WorkerCannotRun):
            return self._given_back(keeper, exc, retry_delay(receive_count))
        if isinstance(beat_failure or exc, SupersededJob) and self._source_deleted(spec):
            return self._ended_by_deletion(keeper, spec)
        if beat_failure is not None or isinstance(exc, InterruptedJob):
            return self._interrupted(keeper, beat_failure or exc)  # type: ignore[arg-type]
        if isinstance(exc, FarmConfigError):  # not the job's fault: see _handle_safely
            self._give_back_quietly(keeper, exc)
            raise exc
        if isinstance(exc, RetryableError):
            return self._failed(keeper, spec, exc.failure_class, str(exc), exc=exc)
        if isinstance(exc, HevcqError):
            return self._failed(keeper, spec, FailureClass.PERMANENT, str(exc), final=True)
        log.exception("job_crashed", error=str(exc))
        reason = f"internal error: {type(exc).__name__}: {exc}"
        return self._failed(keeper, spec, FailureClass.TRANSIENT, reason)

    def _give_back_quietly(self, keeper: LeaseKeeper, exc: FarmConfigError) -> None:
        """Free the lease, if the ledger still answers, so that a fixed farm starts at once."""
        try:
            keeper.release(State.INTERRUPTED, {"reason": str(exc)}, failed=False)
        except Exception as err:
            log.warning("lease_release_failed", error=str(err)[:500])

    def _watch_shutdown(
        self, ctx: JobContext, done: threading.Event, progress: list[float]
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
            if self.stop.is_set():
                break
        if done.is_set():
            return
        grace = self.config.shutdown_grace_s
        if ctx.phase == "encode":
            elapsed = time.monotonic() - started
            pct = progress[-1] if progress else 0.0
            remaining = elapsed * (100 - pct) / pct if pct > 0 else float("inf")
            left = round(remaining) if remaining != float("inf") else None
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

    def _settle_ledger(
        self, keeper: LeaseKeeper, state: State, fields: Mapping[str, object]
    ) -> bool:
        try:
            keeper.finish(state, fields)
        except LeaseLostError as exc:
            # Fenced: whatever this worker wrote is not the record; it publishes nothing.
            log.warning(
                "commit_fenced", reason="lease lost before the ledger record", error=str(exc)
            )
            return False
        return True

    def _drop_stale_output(self, keeper: LeaseKeeper, spec: JobSpec) -> dict[str, object]:
        """A newer version ended without an output: any older version's output must go,
        the one the ledger recorded or one a superseded holder's write left since."""
        old = keeper.lease.output_etag
        cleared: dict[str, object] = {"output_key": None, "output_etag": None} if old else {}
        current = self._store.head(spec.output_key)
        if current is None or current.metadata.get(META_SOURCE_ETAG) == spec.job.etag:
            return cleared
        if current.etag != old and current.metadata.get(META_SOURCE_KEY) != spec.job.key:
            return cleared  # another source's output (check_collision's case): never ours
        keeper.check()
        if self._store.delete_if(spec.output_key, current.etag):
            log.info(
                "stale_output_removed",
                output_key=spec.output_key,
                output_etag=current.etag,
                older_etag=current.metadata.get(META_SOURCE_ETAG),
                reason="the source's newest version has no output",
            )
        return cleared

    def _succeeded(
        self, keeper: LeaseKeeper, spec: JobSpec, result: JobResult, timings: dict[str, float]
    ) -> Settle:
        state = State.DONE if result.outcome == "done" else State.SKIPPED
        fields: dict[str, object] = {
            **{p: timings.get(p) for p in PHASES},
            "output_key": result.output_key,
            "output_etag": result.output_etag,
            "copied_from": result.copied_from,
            "copied_from_etag": result.copied_from_etag,
            "reason": result.reason,
            "input_bytes": result.input_bytes,
            "output_bytes": result.output_bytes,
            "encode_s": result.encode_s if result.encode_s is not None else timings.get("encode_s"),
            "duration_s": result.duration_s,
            "progress": 100.0,
        }
        if state is State.SKIPPED:
            fields.update(self._drop_stale_output(keeper, spec))
        if not self._settle_ledger(keeper, state, fields):
            return LOST
        if result.output_etag:
            # The commit proper: the ledger now names this output; nobody else's can be.
            log.info(
                "output_committed", output_key=result.output_key, output_etag=result.output_etag
            )
        self._publisher.publish(result)
        self._emit_metrics(result)
        log.info(
            "job_finished",
            outcome=result.outcome,
            reason=result.reason,
            output_etag=result.output_etag,
        )
        return ACK

    def _failed(
        self,
        keeper: LeaseKeeper,
        spec: JobSpec,
        cls: FailureClass,
        reason: str,
        *,
        final: bool = False,
        exc: RetryableError | None = None,
    ) -> Settle:
        tries = keeper.lease.attempts + 1
        last_try = tries >= self.pool.queue.max_attempts
        fields: dict[str, object] = {"failure_class": cls.value, "reason": reason}
        try:
            if final or last_try:
                fields.update(self._drop_stale_output(keeper, spec))
                if not self._settle_ledger(keeper, State.FAILED, {**fields, "attempts": tries}):
                    return LOST
                failure = self._failure_result(spec, cls, reason)
                self._publisher.publish(failure)
                self._emit_metrics(failure)
                log.warning("job_failed", failure_class=cls.value, reason=reason, tries=tries)
                return Settle(Verdict.DEAD, failure_class=cls, reason=reason)
            keeper.release(State.QUEUED, fields, failed=True)
        except InterruptedJob:
            return LOST
        delay = int(exc.delay_s) if exc and exc.delay_s else retry_delay(tries)
        log.warning(
            "job_will_retry",
            failure_class=cls.value,
            reason=reason,
            delay_s=delay,
            tries=tries,
            max_attempts=self.pool.queue.max_attempts,
        )
        return Settle(Verdict.RELEASE, delay_s=delay, failure_class=cls, reason=reason)

    def _source_deleted(self, spec: JobSpec) -> bool:
        """True when the source is gone (not replaced): no newer version will report."""
        try:
            return self._store.head(spec.job.key) is None
        except HevcqError as exc:  # cannot tell: treat it as replaced, as before
            log.warning("source_check_failed", error=str(exc)[:500])
            return False

    def _ended_by_deletion(self, keeper: LeaseKeeper, spec: JobSpec) -> Settle:
        """The source was deleted under the job: recorded and published as failed, so that
        a client waiting for this version settles it, and acknowledged (nothing to redo)."""
        fields = {"failure_class": FailureClass.PERMANENT.value, "reason": SOURCE_DELETED}
        if not self._settle_ledger(keeper, State.FAILED, fields):
            return LOST
        failure = self._failure_result(spec, FailureClass.PERMANENT, SOURCE_DELETED)
        self._publisher.publish(failure)
        self._emit_metrics(failure)
        log.warning("job_failed", failure_class=FailureClass.PERMANENT.value, reason=SOURCE_DELETED)
        return Settle(Verdict.ACK, failure_class=FailureClass.PERMANENT, reason=SOURCE_DELETED)

    def _given_back(self, keeper: LeaseKeeper, exc: WorkerCannotRun, delay_s: int) -> Settle:
        """This worker cannot run the job: queued again for another, no try spent."""
        try:
            keeper.release(State.QUEUED, {"reason": str(exc)}, failed=False)
        except InterruptedJob:
            return LOST
        # Hidden for a while (growing with its receives), so that another worker's receive,
        # not this one's next poll, is likely to find it.
        log.warning("job_given_back", reason=str(exc), delay_s=delay_s)
        return Settle(Verdict.RELEASE, delay_s=delay_s, reason=str(exc))

    def _interrupted(self, keeper: LeaseKeeper, exc: InterruptedJob) -> Settle:
        if isinstance(exc, LostMessageError | LeaseLostError):
            log.warning("job_abandoned", reason=str(exc))  # someone else owns it now
            return LOST
        superseded = isinstance(exc, SupersededJob)
        state = State.SUPERSEDED if superseded else State.INTERRUPTED
        waiting = exc if isinstance(exc, WaitingForPrimary) else None
        try:
            keeper.release(State.QUEUED if waiting else state, {"reason": str(exc)}, failed=False)
        except InterruptedJob:
            return LOST
        if waiting is not None:
            # Like a job held elsewhere: the message comes back later, nothing spent.
            log.info("job_waits_for_primary", reason=str(exc), delay_s=waiting.delay_s)
            return Settle(Verdict.RELEASE, delay_s=waiting.delay_s, reason=str(exc))
        if superseded:
            # The newer version's own event brings it here; this message has nothing left.
            log.info("job_superseded", reason=str(exc))
            return ACK
        log.info("job_interrupted", reason=str(exc))
        return Settle(Verdict.RELEASE, delay_s=0, reason=str(exc))

    def _failure_result(self, spec: JobSpec, cls: FailureClass, reason: str) -> JobResult:
        return job_result(
            spec,
            "failed",
            self.config.worker_id,
            reason=reason,
            failure_class=cls,
            input_bytes=spec.source_size,
        )
