"""A claimed job, run to its end: under a visibility heartbeat and the ledger lease, its
output committed through the fence, and its settlement decided.

This module touches the queue only through the ``extend`` callback it is given (the
heartbeat keeps the message invisible); ``worker.consumer.Consumer`` carries out the
``Settle`` it returns. ``worker.runner.JobRunner`` does the work and sees neither.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

import structlog

from hevcq.backoff import retry_delay
from hevcq.bundle import is_bundle_key
from hevcq.errors import (
    FailureClass,
    FarmConfigError,
    HevcqError,
    InterruptedJob,
    LostMessageError,
    RetryableError,
    SupersededJob,
    WaitingForPrimary,
    WorkerCannotRun,
)
from hevcq.ledger import PHASES, QUALITY, Lease, LeaseLostError, Ledger, State
from hevcq.messages import JobResult, Publisher
from hevcq.metadata import META_PARTS, META_SOURCE_ETAG, META_SOURCE_KEY
from hevcq.objects import ObjectStore
from hevcq.pools import Pool
from hevcq.queue import Received
from hevcq.worker.config import WorkerConfig
from hevcq.worker.fence import FencedWriter, sweep_parts
from hevcq.worker.grace import watch_shutdown
from hevcq.worker.heartbeat import Heartbeat
from hevcq.worker.lease import LeaseKeeper
from hevcq.worker.metrics import print_metrics
from hevcq.worker.protection import NoProtection, TaskProtection
from hevcq.worker.runner import JobContext, JobSpec, Runner, job_result
from hevcq.worker.settle import ACK, LOST, Settle, Verdict
from hevcq.worker.shared import SETTLED_ALIKE, CopyAtCommit, SharedEncode

log = structlog.get_logger()

SOURCE_DELETED = "source deleted"  # the reason of a job whose source went away under it
Extend = Callable[[Received, int], None]


class JobExecutor:
    """Runs claimed jobs of one pool and decides how each one's message settles."""

    def __init__(
        self,
        *,
        pool: Pool,
        ledger: Ledger,
        runner: Runner,
        store: ObjectStore,
        publisher: Publisher,
        config: WorkerConfig,
        stop: threading.Event,
        extend: Extend,
        protection: TaskProtection | None = None,
        clock: Callable[[], float] = time.monotonic,
        emit_metrics: Callable[[JobResult], None] | None = None,
        shared: SharedEncode | None = None,
        copies: CopyAtCommit | None = None,
    ) -> None:
        self.pool = pool
        self.config = config
        self.stop = stop
        self.runner = runner
        self.store = store
        self.protection = protection or NoProtection()
        self.emit_metrics = emit_metrics or print_metrics
        # Where another pool's identical encode can serve this pool's jobs (worker.shared).
        self.shared = shared
        # The primary pool's worker: renditions that share its encode, copied at its commit.
        self.copies = copies
        self._ledger = ledger
        self._publisher = publisher
        self._extend = extend
        self._clock = clock

    def run(self, msg: Received, spec: JobSpec, lease: Lease) -> Settle:
        """Run a claimed job to its end; how its message settles."""
        keeper = LeaseKeeper(self._ledger, lease, clock=self._clock)
        writer = FencedWriter(self.store, keeper, self.config.worker_id)
        ctx = JobContext(
            commit=writer.put,
            commit_bundle=writer.put_bundle,
            commit_with_parts=writer.put_with_parts,
        )
        progress = report_to(ctx, keeper.progress)
        q = self.pool.queue

        def renew() -> None:
            keeper.renew()
            self.protection.renew()

        beat = Heartbeat(
            extend=lambda t: self._extend(msg, t),
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
            target=watch_shutdown,
            args=(ctx, done, progress, self.stop, self.config.shutdown_grace_s),
            daemon=True,
        )
        watcher.start()
        try:
            with beat:
                served = None
                if self.shared is not None:
                    served = self.shared.serve(spec, writer, ctx.cancel, msg.receive_count)
                result = served if served is not None else self.runner.run(spec, ctx)
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
        if isinstance(exc, FarmConfigError):  # not the job's fault: see Worker.handle_safely
            self._give_back_quietly(keeper, exc)
            raise exc
        if isinstance(exc, RetryableError):
            return self._failed(keeper, spec, exc.failure_class, str(exc), exc=exc)
        if isinstance(exc, HevcqError):
            # An output that could not be scored (media.quality.ScoringError) keeps its own
            # class: never mistaken for bad input or a low score. Everything else is final.
            scoring = exc.failure_class is FailureClass.SCORING
            cls = FailureClass.SCORING if scoring else FailureClass.PERMANENT
            return self._failed(keeper, spec, cls, str(exc), final=True)
        log.exception("job_crashed", error=str(exc))
        reason = f"internal error: {type(exc).__name__}: {exc}"
        return self._failed(keeper, spec, FailureClass.TRANSIENT, reason)

    def _give_back_quietly(self, keeper: LeaseKeeper, exc: FarmConfigError) -> None:
        """Free the lease, if the ledger still answers, so that a fixed farm starts at once."""
        try:
            keeper.release(State.INTERRUPTED, {"reason": str(exc)}, failed=False)
        except Exception as err:
            log.warning("lease_release_failed", error=str(err)[:500])

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

    def _sweep_bundle(self, keeper: LeaseKeeper, spec: JobSpec, etag: str) -> None:
        """Under the lease, before the ledger record: remove every part of an output with
        parts (a ladder, a file with its poster) that the committed output does not name
        (earlier outputs, abandoned attempts).

        Done while the lease is held, so no later holder's parts can be taken for stale
        ones; a reader still copying an earlier output finds its parts gone and reads the
        master again (``hevcq.library.fetch``), never a mix."""
        current = self.store.head(spec.output_key)
        if current is None or current.etag != etag:
            return  # not ours to judge: the next commit of this output sweeps
        keeper.check()
        sweep_parts(self.store, spec.output_key, current.metadata.get(META_PARTS))

    def _drop_stale_output(self, keeper: LeaseKeeper, spec: JobSpec) -> dict[str, object]:
        """A newer version ended without an output: any older version's output must go,
        the one the ledger recorded or one a superseded holder's write left since."""
        old = keeper.lease.output_etag
        cleared: dict[str, object] = {"output_key": None, "output_etag": None} if old else {}
        current = self.store.head(spec.output_key)
        bundle = has_parts(spec) or (current is not None and META_PARTS in current.metadata)
        if current is None and bundle:
            keeper.check()
            sweep_parts(self.store, spec.output_key, None)  # attempts that never committed
        if current is None or current.metadata.get(META_SOURCE_ETAG) == spec.job.etag:
            return cleared
        if current.etag != old and current.metadata.get(META_SOURCE_KEY) != spec.job.key:
            return cleared  # another source's output (check_collision's case): never ours
        keeper.check()
        if self.store.delete_if(spec.output_key, current.etag):
            log.info(
                "stale_output_removed",
                output_key=spec.output_key,
                output_etag=current.etag,
                older_etag=current.metadata.get(META_SOURCE_ETAG),
                reason="the source's newest version has no output",
            )
            if bundle:
                sweep_parts(self.store, spec.output_key, None)  # the master went first
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
            **{q: getattr(result, q) for q in QUALITY},
        }
        if state is State.SKIPPED:
            fields.update(self._drop_stale_output(keeper, spec))
        elif has_parts(spec) and result.output_etag:
            try:
                self._sweep_bundle(keeper, spec, result.output_etag)
            except (LeaseLostError, SupersededJob) as exc:
                log.warning("commit_fenced", reason="lease lost before the sweep", error=str(exc))
                return LOST
        if not self._settle_ledger(keeper, state, fields):
            return LOST
        if result.output_etag:
            # The commit proper: the ledger now names this output; nobody else's can be.
            log.info(
                "output_committed", output_key=result.output_key, output_etag=result.output_etag
            )
        self._publisher.publish(result)
        self.emit_metrics(result)
        log.info(
            "job_finished",
            outcome=result.outcome,
            reason=result.reason,
            output_etag=result.output_etag,
        )
        alike = result.outcome == "skipped" and result.reason in SETTLED_ALIKE
        if self.copies is not None and (result.output_etag or alike) and not result.copied_from:
            self.copies.after_commit(spec, self.config.worker_id)
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
                self.emit_metrics(failure)
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
            return self.store.head(spec.job.key) is None
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
        self.emit_metrics(failure)
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


def has_parts(spec: JobSpec) -> bool:
    """Whether the job's output is committed with parts of its own (``hevcq.bundle``): a
    ladder, or a file of a pool that stores a poster with it."""
    return is_bundle_key(spec.output_key) or spec.pool.poster


def report_to(ctx: JobContext, fields: dict[str, float | str]) -> list[float]:
    """Point the job's reports at ``fields``, the progress its lease keeper writes with
    each renewal; the encode's percents are also kept in the list returned, for the
    grace a stop gives (``worker.grace``)."""
    progress: list[float] = []

    def on_progress(pct: float) -> None:
        progress.append(pct)
        fields["progress"] = pct

    def on_rates(fps: float | None, speed: float | None) -> None:
        for name, value in (("fps", fps), ("speed", speed)):
            if value is not None:
                fields[name] = value

    def on_step(step: str) -> None:
        fields["step"] = step
        fields["step_at"] = time.time()  # shown to people, as started_at is

    def on_probe(n: int) -> None:
        fields["probe"] = n
        fields["probe_done"] = 0.0

    def on_probe_progress(pct: float) -> None:
        fields["probe_done"] = pct

    ctx.on_progress = on_progress
    ctx.on_rates = on_rates
    ctx.on_step = on_step
    ctx.on_probe = on_probe
    ctx.on_probe_progress = on_probe_progress
    return progress
