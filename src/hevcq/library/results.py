"""Job results: what they are, where they come from, and the one consumer of their queue.

A result reaches the client three ways: as a message on the results queue (the normal
way), as a finished ledger item (a result message lost or taken by someone else), or as
a dead letter (no worker could report the job). ``drain`` is the only reader of the
results queue; what it hands results to decides what they mean: a ``Fetcher`` places or
swaps outputs in, the round trip's window streams a library, ``Expected`` just collects
a known set. It stops by one of two rules: until a stop condition says the expected set
is complete, or until the queue has nothing new (or, following, until stopped).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import structlog
from pydantic import ValidationError

from hevcq.errors import FailureClass, PermanentError
from hevcq.jobs import DeadLetter
from hevcq.ledger import FINISHED, QUALITY, LedgerItem
from hevcq.messages import JobResult, SourceObject, parse_message
from hevcq.queue import Received

if TYPE_CHECKING:
    from hevcq.farm.client import Farm

log = structlog.get_logger()

SourcePool = tuple[str, str]  # (source key, pool)

Action = Literal[
    "placed",
    "replaced",
    "skipped",
    "failed",
    "refused",
    "orphaned",
    "already",
    "retry",
    "superseded",
    "waiting",  # taken off the queue; its handler places it once the file's other pools are home
    "recorded",  # collected, nothing placed (``Expected``)
]
OK_ACTIONS = frozenset({"placed", "replaced", "skipped", "already", "superseded", "recorded"})

HOLD_S = 60  # results of other pools or libraries stay hidden this long while we run
FOLLOW_WAIT_S = 5  # long-poll length when following: also the delay before a stop is seen
DRAIN_WAIT_S = 1
DLQ_CHECK_EVERY_S = 10.0


def parse_result(body: str) -> JobResult | None:
    """A result message, or None for something else on the queue."""
    try:
        return JobResult.model_validate_json(body)
    except ValidationError:
        return None


def result_from_item(item: LedgerItem, bucket: str) -> JobResult | None:
    """A finished ledger item as a result (None while the job is still open), with what
    its output measured: a run that takes a result from the ledger before its message
    arrives says the same as one that read the message."""
    if item.state not in FINISHED:
        return None
    return JobResult(
        job_id=item.job_id,
        pool=item.pool,
        bucket=bucket,
        source_key=item.key,
        source_etag=item.etag,
        outcome=item.state.value,
        reason=item.reason or None,
        failure_class=FailureClass(item.failure_class) if item.failure_class else None,
        output_key=item.output_key or None,
        copied_from=item.copied_from,
        copied_from_etag=item.copied_from_etag,
        input_bytes=item.input_bytes,
        output_bytes=item.output_bytes,
        encode_s=item.encode_s,
        duration_s=item.duration_s,
        settings_hash=item.settings_hash,
        worker=item.worker,
        **{name: getattr(item, name) for name in QUALITY},
    )


def dead_letter_results(farm: Farm) -> list[JobResult]:
    """A failed result for every job sitting in a dead-letter queue; nothing consumed."""
    return [
        JobResult(
            job_id="",
            pool=pool,
            bucket=obj.bucket,
            source_key=obj.key,
            outcome="failed",
            failure_class=cls,
            reason=reason or "moved to the dead-letter queue after repeated failures",
        )
        for pool in sorted(farm.refs.pools)
        for obj, cls, reason in peek_dead_letters(farm.dead_letters(pool, wait_s=0))
    ]


def peek_dead_letters(
    letters: Iterable[DeadLetter],
) -> list[tuple[SourceObject, FailureClass | None, str]]:
    """The objects named by dead-letter messages, with class and reason."""
    known = {c.value for c in FailureClass}
    return [
        (obj, FailureClass(d.failure_class) if d.failure_class in known else None, d.reason)
        for d in letters
        for obj in announced_objects(d.body)
    ]


def announced_objects(body: str) -> list[SourceObject]:
    """The objects a queue message announces; none for a malformed one."""
    try:
        parsed = parse_message(body)
    except PermanentError:
        return []
    return parsed if isinstance(parsed, list) else []


@dataclass(frozen=True)
class Fetched:
    """What became of one result."""

    rel: str
    pool: str
    action: Action
    reason: str = ""
    path: Path | None = None
    result: JobResult | None = None
    source_deleted: bool = False

    @property
    def ok(self) -> bool:
        """True unless the result needs a person's attention."""
        return self.action in OK_ACTIONS


class ResultHandler(Protocol):
    """What ``drain`` hands results to: a Fetcher, the round trip's window, ``Expected``."""

    def owns(self, r: JobResult) -> bool: ...
    def process(self, r: JobResult) -> Fetched: ...


class Inbox(Protocol):
    """The results queue as its consumer sees it (``aws.sqs.SqsInbox``)."""

    def receive(self, wait_s: int) -> list[Received]: ...
    def delete(self, msg: Received) -> None: ...
    def release(self, msg: Received, delay_s: int) -> None: ...


def drain(
    inbox: Inbox,
    handler: ResultHandler,
    *,
    follow: bool,
    stop: threading.Event,
    on_item: Callable[[Fetched], None] | None = None,
    until: Callable[[], bool] | None = None,
    on_tick: Callable[[], None] | None = None,
) -> list[Fetched]:
    """Handle results until the queue has nothing new, or (following) until ``stop``.

    With ``until``, the rule is instead: until ``until()`` says the expected set is
    complete, or ``stop``; ``on_tick`` runs after every poll. Results the handler does not
    own stay hidden for ``HOLD_S`` while this runs, and are visible again when it returns.
    """
    held: dict[str, Received] = {}
    todo: list[Received] = []
    out: list[Fetched] = []
    wait_s = DRAIN_WAIT_S if until is not None or not follow else FOLLOW_WAIT_S
    try:
        while not stop.is_set() and not (until is not None and until()):
            batch = inbox.receive(wait_s)
            todo = _new_messages(inbox, batch, held)
            if on_tick:
                on_tick()
            if not todo and not follow and until is None:
                break
            while todo and not stop.is_set():
                msg = todo.pop(0)
                item = _handle(inbox, handler, msg)
                if item is None or item.action == "retry":
                    held[msg.message_id] = msg
                if item is not None:
                    out.append(item)
                    if on_item:
                        on_item(item)
    finally:
        # Visible again at once for their owners (and for the next consumer).
        for msg in [*held.values(), *todo]:
            inbox.release(msg, 0)
    return out


def _new_messages(inbox: Inbox, batch: list[Received], held: dict[str, Received]) -> list[Received]:
    """The messages not seen before; those held that came back after HOLD_S hide again."""
    for msg in batch:
        if msg.message_id in held:
            inbox.release(msg, HOLD_S)
            held[msg.message_id] = msg
    return [msg for msg in batch if msg.message_id not in held]


def _handle(inbox: Inbox, handler: ResultHandler, msg: Received) -> Fetched | None:
    result = parse_result(msg.body)
    if result is None or not handler.owns(result):
        inbox.release(msg, HOLD_S)
        return None
    try:
        item = handler.process(result)
    except BaseException:
        inbox.release(msg, 0)  # what stops the run leaves the result for the next one
        raise
    if item.action == "retry":
        inbox.release(msg, HOLD_S)
    else:
        inbox.delete(msg)
    return item


@dataclass
class Expected:
    """Collects the results of a known set of jobs, first result of each wins."""

    expected: set[SourcePool]
    results: dict[SourcePool, JobResult] = field(default_factory=dict)

    @property
    def pending(self) -> set[SourcePool]:
        """Jobs without a result yet."""
        return self.expected - self.results.keys()

    def complete(self) -> bool:
        """Every expected job has a result."""
        return not self.pending

    def owns(self, r: JobResult) -> bool:
        """Whether ``r`` is the result of one of the expected jobs."""
        return (r.source_key, r.pool) in self.expected

    def process(self, r: JobResult) -> Fetched:
        """Keep the result."""
        self.results.setdefault((r.source_key, r.pool), r)
        return Fetched(r.source_key, r.pool, "recorded", result=r)

    def take(self, results: Iterable[JobResult]) -> None:
        """Keep those of ``results`` that answer a pending job (dead letters, the ledger)."""
        for r in results:
            if (r.source_key, r.pool) in self.pending:
                self.process(r)

    def wait(
        self,
        inbox: Inbox,
        *,
        timeout_s: float | None = None,
        dead_letters: Callable[[], Iterable[JobResult]] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> bool:
        """Drain ``inbox`` until every expected job has a result; False on timeout.

        ``dead_letters`` (every ``DLQ_CHECK_EVERY_S``) answers jobs no worker could report.
        """
        stop = threading.Event()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        next_dlq = time.monotonic() + DLQ_CHECK_EVERY_S

        def tick() -> None:
            nonlocal next_dlq
            if on_tick:
                on_tick()
            if dead_letters is not None and time.monotonic() >= next_dlq:
                self.take(dead_letters())
                next_dlq = time.monotonic() + DLQ_CHECK_EVERY_S
            if deadline is not None and time.monotonic() > deadline:
                stop.set()

        drain(inbox, self, follow=True, stop=stop, until=self.complete, on_tick=tick)
        return self.complete()
