"""One encode for two pools: a pool whose encode is the primary pool's copies its output.

For an H.264 source of exactly 1920x1080 the ``1080p`` rendition's encode is the ``hevc``
pool's, argument for argument. The primary pool (``pools.primary_pool``: the one that may
replace originals) always encodes; a rendition that finds its plan equal to the primary's
(``decide.shares_encode``, from a ranged probe of the exact source version) does not. It
reads the primary's ledger item for the same source version (``judge``, pure):

- done: the primary's committed output is copied server-side into the rendition's own key
  under the same fenced rules as an encoded output, and recorded as copied;
- skipped because the output would be larger than the source: the rendition settles alike;
- not finished yet: the rendition's message comes back later (``WaitingForPrimary``): no
  worker is held and nothing of the retry budget is spent; waiting stops while the message
  still has receives to spare before SQS's redrive policy (``may_wait``);
- failed, other settings, another skip, or anything in doubt: the rendition encodes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from hevcq.errors import CopySourceChanged, WaitingForPrimary
from hevcq.keys import done_key, output_keeps_ext
from hevcq.ledger import Claimed, JobKey, Ledger, LedgerItem, State
from hevcq.media.decide import KEPT_ORIGINAL, shares_encode
from hevcq.media.model import MediaInfo
from hevcq.messages import JobResult, Publisher
from hevcq.metadata import META_COPIED_ETAG, META_COPIED_FROM, META_TARGET_VMAF, client_settled
from hevcq.objects import ObjectInfo, ObjectStore
from hevcq.pools import Pool, QueueSpec
from hevcq.worker.fence import FencedWriter
from hevcq.worker.lease import LeaseKeeper
from hevcq.worker.precheck import ranged_probe
from hevcq.worker.runner import (
    JobSpec,
    check_collision,
    job_result,
    output_is_current,
    output_metadata,
    until_cancelled,
)

log = structlog.get_logger()

# Skips of the primary that hold for the rendition too: with the same plan, the same bytes
# would come out, as large as they were.
SETTLED_ALIKE = frozenset({KEPT_ORIGINAL})
# How long a rendition leaves its message before looking again. With the primary's
# progress and speed known: the encode time it has left (plus a margin); otherwise a
# doubling from FIRST_WAIT_S. Within SQS's 12 hours counted from receipt.
FIRST_WAIT_S = 10
MIN_WAIT_S = 5
MAX_WAIT_S = 4 * 3600
MAX_BLIND_WAIT_S = 900
WAIT_MARGIN_S = 3

# (store, key, etag, size) -> the media info of that version, or None when in doubt.
SourceProbe = Callable[[ObjectStore, str, str, int], MediaInfo | None]


@dataclass(frozen=True)
class CopyOutput:
    """The primary committed its output for this version: copy it."""

    item: LedgerItem


@dataclass(frozen=True)
class SettleAlike:
    """The primary skipped for a reason that holds for this pool too."""

    item: LedgerItem


@dataclass(frozen=True)
class Wait:
    """The primary has not finished this version yet."""

    reason: str
    item: LedgerItem | None


@dataclass(frozen=True)
class EncodeHere:
    """The primary's encode will not serve: encode as usual."""

    reason: str


Step = CopyOutput | SettleAlike | Wait | EncodeHere


def judge(item: LedgerItem | None, job: JobKey, primary_hash: str) -> Step:  # noqa: PLR0911
    """What a pool making the primary's encode does, given the primary's item (pure)."""
    if item is None:
        return Wait("the primary pool has not claimed the job yet", None)
    if item.etag != job.etag or item.version_id != job.version_id:
        # An older version: the primary takes this one next. A newer one: this job is moot,
        # which the source's HEAD at the next receive tells.
        return Wait("the primary pool's item holds another version", item)
    if item.settings_hash != primary_hash:
        return EncodeHere("the primary pool's job ran with other settings")
    if item.state is State.DONE:
        if item.output_key and item.output_etag:
            return CopyOutput(item)
        return EncodeHere("the primary pool's job is done without an output")
    if item.state is State.SKIPPED:
        if item.reason in SETTLED_ALIKE:
            return SettleAlike(item)
        return EncodeHere(f"the primary pool skipped it: {item.reason}")
    if item.state is State.FAILED:
        return EncodeHere(f"the primary pool's job failed: {item.reason}")
    return Wait(f"the primary pool's job is {item.state.value}", item)


def wait_s(item: LedgerItem | None, duration_s: float | None, receive_count: int) -> int:
    """Seconds before the message comes back (pure)."""
    if item is not None and item.state is State.RUNNING and item.speed and duration_s:
        left = duration_s * (100.0 - (item.progress or 0.0)) / 100.0 / item.speed
        return int(min(max(left + WAIT_MARGIN_S, MIN_WAIT_S), MAX_WAIT_S))
    return int(min(FIRST_WAIT_S * 2 ** max(receive_count - 1, 0), MAX_BLIND_WAIT_S))


def may_wait(receive_count: int, queue: QueueSpec) -> bool:
    """Whether another wait leaves the message a whole retry budget of receives before SQS's
    redrive policy would move it to the dead-letter queue."""
    return receive_count + queue.max_attempts < queue.max_receive_count


@dataclass(frozen=True)
class SharedEncode:
    """Finds whether a job of ``pool`` can be served by ``primary``'s encode."""

    store: ObjectStore
    ledger: Ledger
    primary: Pool
    pool: Pool
    probe: SourceProbe = ranged_probe

    def step(self, spec: JobSpec) -> tuple[Step, MediaInfo] | None:
        """The step for this job; None where the pools do not share the encode."""
        source = self.store.head(spec.job.key)
        if source is None or source.etag != spec.job.etag:
            return None  # another version: the download says so
        if client_settled(source.metadata, self.pool.name) or META_TARGET_VMAF in source.metadata:
            # The client's word on this pool (the runner's precheck), or a target the
            # upload carries (each pool searches its own CRF for it).
            return None
        if client_settled(source.metadata, self.primary.name):
            log.info(
                "encode_not_shared",
                reason=f"the client settled {self.primary.name} itself: "
                "it will not encode this upload",
            )
            return None
        existing = self.store.head(spec.output_key)
        check_collision(existing, spec.job, spec.output_key)
        if output_is_current(existing, spec.job):
            return None  # the runner says so
        info = self.probe(self.store, spec.job.key, spec.job.etag, source.size)
        if info is None or not shares_encode(info, self.primary, self.pool, spec.job.key):
            return None
        item = self.ledger.get(spec.job.key, self.primary.name)
        return judge(item, spec.job, self.primary.settings_hash()), info

    def serve(
        self, spec: JobSpec, writer: FencedWriter, cancel: threading.Event, receive_count: int
    ) -> JobResult | None:
        """The job's result from the primary's encode, or None: encode as usual.

        Raises WaitingForPrimary while the primary has not finished this version.
        """
        found = self.step(spec)
        if found is None:
            return None
        step, info = found
        primary = self.primary.name
        if isinstance(step, CopyOutput):
            return self.copy(spec, writer, cancel, step.item)
        if isinstance(step, SettleAlike):
            log.info("job_skipped", reason=step.item.reason, settled_alike=primary)
            return job_result(
                spec,
                "skipped",
                writer.worker_id,
                reason=step.item.reason,
                input_bytes=spec.source_size,
            )
        if isinstance(step, Wait):
            if may_wait(receive_count, self.pool.queue):
                delay = wait_s(step.item, info.duration_s, receive_count)
                raise WaitingForPrimary(
                    f"waiting for pool {primary}'s identical encode: {step.reason}", delay
                )
            log.info("encode_not_shared", reason=f"waited for pool {primary} long enough")
            return None
        log.info("encode_not_shared", reason=step.reason)
        return None

    def copy(
        self, spec: JobSpec, writer: FencedWriter, cancel: threading.Event, item: LedgerItem
    ) -> JobResult | None:
        """The fenced copy of the primary's committed output into this job's key; None when
        the primary's output changed meanwhile (encode instead)."""
        source, etag = str(item.output_key), str(item.output_etag)
        meta = {**output_metadata(spec), META_COPIED_FROM: source, META_COPIED_ETAG: etag}
        try:
            out = until_cancelled(lambda: writer.copy(source, etag, spec.output_key, meta), cancel)
        except CopySourceChanged as exc:
            # Fetched and cleaned up, or replaced by a newer encode: encode here instead.
            log.info("encode_not_shared", reason=str(exc))
            return None
        log.info(
            "output_copied",
            output_key=spec.output_key,
            copied_from=source,
            copied_from_etag=etag,
            bytes=out.size,
        )
        return job_result(
            spec,
            "done",
            writer.worker_id,
            output_key=spec.output_key,
            output_etag=out.etag,
            input_bytes=spec.source_size,
            output_bytes=out.size,
            duration_s=item.duration_s,
            copied_from=source,
            copied_from_etag=etag,
            reason=f"the identical encode of pool {self.primary.name}, copied",
        )


# A rendition job the primary's worker copies at its commit is claimed under this message
# id: it has no message of its own, so a rendition's message finding it held must not be
# dropped as a duplicate event (the copy may still give the job back).
COPY_CLAIM_PREFIX = "copy-at-commit:"


def is_copy_claim(message_id: str) -> bool:
    """Whether a ledger item's holder is a primary copying at its commit."""
    return message_id.startswith(COPY_CLAIM_PREFIX)


@dataclass(frozen=True)
class CopyAtCommit:
    """The primary's side of one encode for two pools: the moment its output is committed,
    it makes the fenced copy for each rendition whose encode is its own.

    The copy runs under the rendition job's own lease, is recorded in that job's ledger item
    and its result published, exactly as the rendition's worker would; the rendition's
    message, when it comes back, finds the job finished. Nothing waits on a guessed delay.
    A rendition job that another worker holds, or one already finished, is left alone; a
    copy that cannot be made gives the job back for the rendition's own worker.
    """

    store: ObjectStore
    ledger: Ledger
    publisher: Publisher
    primary: Pool
    renditions: tuple[Pool, ...]
    lease_s: float
    probe: SourceProbe = ranged_probe

    def after_commit(self, spec: JobSpec, worker_id: str) -> list[JobResult]:
        """Copy the committed output of ``spec`` (a primary job) for every rendition that
        shares its encode, or settle those renditions alike when the primary kept the
        original (``SETTLED_ALIKE``); the results published. Never raises: the primary is
        settled."""
        try:
            return self._copies(spec, worker_id)
        except Exception as exc:
            log.warning("copy_at_commit_failed", error=str(exc)[:500])
            return []

    def _copies(self, spec: JobSpec, worker_id: str) -> list[JobResult]:
        item = self.ledger.get(spec.job.key, self.primary.name)
        if item is None:
            return []
        step = judge(item, spec.job, self.primary.settings_hash())
        if step not in (CopyOutput(item), SettleAlike(item)):
            return []
        source = self.store.head(spec.job.key)
        if source is None or source.etag != spec.job.etag:
            return []
        if META_TARGET_VMAF in source.metadata:
            return []  # each rendition searches its own CRF for the upload's target
        info = self.probe(self.store, spec.job.key, spec.job.etag, source.size)
        if info is None:
            return []
        results = []
        for pool in self.renditions:
            if self._client_settled(source, pool) or not shares_encode(
                info, self.primary, pool, spec.job.key
            ):
                continue
            result = self._copy_for(pool, spec, source, item, worker_id)
            if result is not None:
                results.append(result)
        return results

    def _client_settled(self, source: ObjectInfo, pool: Pool) -> bool:
        return client_settled(source.metadata, pool.name)

    def _copy_for(
        self, pool: Pool, spec: JobSpec, source: ObjectInfo, item: LedgerItem, worker_id: str
    ) -> JobResult | None:
        job = JobKey(
            spec.job.key,
            pool.name,
            spec.job.etag,
            pool.settings_hash(),
            version_id=spec.job.version_id,
            sequencer=spec.job.sequencer,
        )
        claim = self.ledger.claim(
            job,
            worker_id,
            COPY_CLAIM_PREFIX + spec.job.job_id,
            self.lease_s,
            lambda: self._still(job),
        )
        if not isinstance(claim, Claimed):
            return None  # held by the rendition's worker, finished, or superseded
        keeper = LeaseKeeper(self.ledger, claim.lease)
        output_key = done_key(
            job.key,
            pool.name,
            pool.output_suffix,
            with_source_ext=output_keeps_ext(job.key, pool.fixed_extension, source.metadata),
            extension=pool.fixed_extension,
        )
        rspec = JobSpec(job, pool, spec.bucket, output_key, source.size, source)
        try:
            existing = self.store.head(output_key)
            check_collision(existing, job, output_key)
            if item.state is State.SKIPPED:
                if existing is not None:  # an older version's output: its own worker drops it
                    keeper.release(State.QUEUED, {}, failed=False)
                    return None
                log.info("job_skipped", pool=pool.name, reason=item.reason, settled_alike=True)
                skipped = job_result(
                    rspec, "skipped", worker_id, reason=item.reason, input_bytes=source.size
                )
                keeper.finish(State.SKIPPED, settled_fields(skipped))
                self.publisher.publish(skipped)
                return skipped
            writer = FencedWriter(self.store, keeper, worker_id)
            copier = SharedEncode(self.store, self.ledger, self.primary, pool, self.probe)
            result = copier.copy(rspec, writer, threading.Event(), item)
            if result is None:
                keeper.release(State.QUEUED, {}, failed=False)
                return None
            keeper.finish(State.DONE, settled_fields(result))
        except Exception:
            with contextlib.suppress(Exception):
                keeper.release(State.QUEUED, {}, failed=False)
            raise
        self.publisher.publish(result)
        log.info("copied_at_commit", pool=pool.name, output_key=output_key)
        return result

    def _still(self, job: JobKey) -> bool:
        current = self.store.head(job.key)
        return current is not None and current.etag == job.etag


def settled_fields(result: JobResult) -> dict[str, object]:
    """What a done job's ledger item records of its result."""
    return {
        "output_key": result.output_key,
        "output_etag": result.output_etag,
        "copied_from": result.copied_from,
        "copied_from_etag": result.copied_from_etag,
        "reason": result.reason,
        "input_bytes": result.input_bytes,
        "output_bytes": result.output_bytes,
        "duration_s": result.duration_s,
        "progress": 100.0,
    }
