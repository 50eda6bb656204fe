"""The job side of a worker: for one message, parse it, check each announced source, claim
its job in the ledger (or wait on a holder, or take over a stale lease), hand a claimed job
to ``worker.executor.JobExecutor``, and decide how the message settles.

A session makes no queue call: it keeps a message invisible only through the ``extend``
callback it is given while it watches another worker's lease, and returns a ``Settle`` that
``worker.consumer.Consumer`` carries out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from hevcq.backoff import retry_delay
from hevcq.errors import FailureClass, LostMessageError, PermanentError, RetryableError
from hevcq.keys import done_key, output_keeps_ext
from hevcq.ledger import (
    AlreadyFinished,
    Claimed,
    HeldElsewhere,
    JobKey,
    Lease,
    Ledger,
    LedgerItem,
    State,
    Superseded,
)
from hevcq.messages import Outcome, Publisher, S3TestEvent, SourceObject, parse_records
from hevcq.metadata import client_target
from hevcq.objects import ObjectStore
from hevcq.pools import Pool
from hevcq.queue import Received
from hevcq.worker.config import WorkerConfig
from hevcq.worker.executor import Extend
from hevcq.worker.heartbeat import Heartbeat
from hevcq.worker.lease import Left, Observation, Stale, observe
from hevcq.worker.runner import JobSpec, job_result
from hevcq.worker.settle import ACK, LOST, NOTHING_TO_DO, Settle, Verdict
from hevcq.worker.shared import is_copy_claim

log = structlog.get_logger()

CLAIM_ROUNDS = 3  # claim, watch a holder, claim again: each round follows a change
WATCH_LEASES = 3  # how long to wait on an older version's live holder, in its leases
Execute = Callable[[Received, JobSpec, Lease], Settle]


class JobSession:
    """Decides one pool's messages: which jobs they announce, and who runs each."""

    def __init__(
        self,
        *,
        pool: Pool,
        ledger: Ledger,
        store: ObjectStore,
        publisher: Publisher,
        config: WorkerConfig,
        stop: threading.Event,
        extend: Extend,
        execute: Execute,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.config = config
        self.stop = stop
        self._ledger = ledger
        self._store = store
        self._publisher = publisher
        self._extend = extend
        self._execute = execute
        self._clock = clock

    def decide(self, msg: Received) -> Settle:
        """How ``msg`` settles, once every job it announces is decided (worst wins)."""
        try:
            parsed = parse_records(msg.body)
        except PermanentError as exc:
            log.warning("message_malformed", reason=str(exc), body_bytes=len(msg.body))
            settle = Settle(Verdict.DEAD, failure_class=FailureClass.PERMANENT, reason=str(exc))
            self._bind_settle_context(None, None)
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
        return settle

    def _bind_settle_context(self, key: str | None, etag: str | None) -> None:
        """Name the message's object on the settle lines (``_object`` unbinds its own)."""
        structlog.contextvars.bind_contextvars(pool=self.pool.name, key=key, etag=etag)

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
            # The uploader's naming answers ride on the source (hevcq.keys.keeps_ext).
            extension = self.pool.fixed_extension
            long_name = output_keeps_ext(obj.key, extension, current.metadata) if current else False
            output_key = done_key(
                obj.key,
                self.pool.name,
                self.pool.output_suffix,
                with_source_ext=long_name,
                extension=self.pool.fixed_extension,
            )
            # A VMAF target the upload carries (``hevcq ingest --target-vmaf``) makes this
            # job the pool's search for it: its own settings hash, so its own version.
            target = client_target(current.metadata) if current else None
        except (PermanentError, ValueError) as exc:  # ValueError: a target that is not one
            return Settle(Verdict.DEAD, failure_class=FailureClass.PERMANENT, reason=str(exc))
        except RetryableError as exc:
            return Settle(Verdict.RELEASE, delay_s=retry_delay(msg.receive_count), reason=str(exc))
        if current is None:
            log.info("source_gone", reason="the source no longer exists")
            return ACK
        if obj.etag and current.etag != obj.etag:
            log.info("source_superseded", reason="a newer upload replaced this source")
            return ACK
        pool = self.pool if target is None else self.pool.with_target(target)
        job = JobKey(
            obj.key,
            pool.name,
            current.etag,
            pool.settings_hash(),
            version_id=obj.version_id,
            sequencer=obj.sequencer,
        )
        structlog.contextvars.bind_contextvars(job_id=job.job_id, etag=job.etag)
        spec = JobSpec(job, pool, self.config.bucket, output_key, current.size, current)
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
                return self._execute(msg, spec, claim.lease)
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
        if (
            held.same_job
            and item.message_id != msg.message_id
            and not is_copy_claim(item.message_id)
        ):
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
        return self._execute(msg, spec, taken.lease)

    def _watch(self, msg: Received, item: LedgerItem) -> tuple[Observation | None, bool]:
        """Observe a lease while keeping our message invisible; (outcome, message lost)."""
        cancel = threading.Event()
        vis = self.pool.queue.visibility_timeout_s
        beat = Heartbeat(
            extend=lambda t: self._extend(msg, t),
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
