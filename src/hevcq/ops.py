"""Operator views and actions: queue status, running jobs, dead letters, redrive."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hevcq.aws.sqs import ATTR_CLASS, ATTR_REASON, counts, move, peek, start_move_task
from hevcq.errors import FailureClass
from hevcq.ledger import State
from hevcq.topology import FarmRefs, PoolRefs

if TYPE_CHECKING:
    from hevcq.aws.ledger import DynamoLedger
    from hevcq.aws.sqs import SqsClient


@dataclass(frozen=True)
class QueueDepth:
    """Message counts of one pool."""

    pool: str
    visible: int
    in_flight: int
    delayed: int
    dead_letters: int


@dataclass(frozen=True)
class RunningJob:
    """A job some worker holds right now."""

    key: str
    pool: str
    worker: str
    progress: float
    age_s: float
    fps: float | None = None
    speed: float | None = None  # x real time


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter queue."""

    message_id: str
    failure_class: str
    reason: str
    body: str


def queue_depths(sqs: SqsClient, refs: FarmRefs) -> list[QueueDepth]:
    """Per pool: visible, in flight, delayed and dead-lettered messages."""
    rows = []
    for pool, pr in sorted(refs.pools.items()):
        q, d = counts(sqs, pr.queue_url), counts(sqs, pr.dlq_url)
        rows.append(
            QueueDepth(
                pool=pool,
                visible=q.get("ApproximateNumberOfMessages", 0),
                in_flight=q.get("ApproximateNumberOfMessagesNotVisible", 0),
                delayed=q.get("ApproximateNumberOfMessagesDelayed", 0),
                dead_letters=sum(d.values()),
            )
        )
    return rows


def ledger_view(
    ledger: DynamoLedger, now: float | None = None
) -> tuple[list[RunningJob], Counter[tuple[str, str]]]:
    """Running jobs and totals per (pool, state).

    A job's age is read from the wall clock its worker wrote, so it is only as right as
    that worker's clock: it is shown to people, never used to decide anything.
    """
    now = time.time() if now is None else now
    running, totals = [], Counter[tuple[str, str]]()
    for item in ledger.scan_items():
        totals[(item.pool, item.state.value)] += 1
        if item.state is State.RUNNING:
            running.append(
                RunningJob(
                    key=item.key,
                    pool=item.pool,
                    worker=item.worker,
                    progress=float(item.progress or 0),
                    age_s=max(0.0, now - (item.started_at or now)),
                    fps=item.fps,
                    speed=item.speed,
                )
            )
    return sorted(running, key=lambda r: -r.age_s), totals


def list_dead_letters(
    sqs: SqsClient, dlq_url: str, limit: int = 100, wait_s: int = 1
) -> list[DeadLetter]:
    """Dead-letter messages with class and reason; they stay in the queue."""
    return [
        DeadLetter(
            m.message_id,
            m.attributes.get(ATTR_CLASS, "unknown (moved by the redrive policy)"),
            m.attributes.get(ATTR_REASON, "received too many times without finishing"),
            m.body,
        )
        for m in peek(sqs, dlq_url, limit=limit, wait_s=wait_s)
    ]


def redrive_one_by_one(
    sqs: SqsClient, pr: PoolRefs, failure_class: FailureClass | None = None
) -> int:
    """Move dead letters (of one class, or all) back to their queue one at a time."""
    return move(
        sqs,
        pr.dlq_url,
        pr.queue_url,
        lambda m: failure_class is None or m.attributes.get(ATTR_CLASS) == failure_class.value,
    )


def redrive(
    sqs: SqsClient,
    move_sqs: SqsClient,
    refs: FarmRefs,
    pools: list[str] | None = None,
    failure_class: FailureClass | None = None,
) -> dict[str, int | str]:
    """Redrive dead letters of the given pools (all by default); a class filter moves one by one.

    ``move_sqs`` is a client without retries, so an endpoint lacking move tasks is detected
    at once.
    """
    done: dict[str, int | str] = {}
    for pool in pools or sorted(refs.pools):
        pr = refs.pools[pool]
        if failure_class is None and start_move_task(move_sqs, pr.dlq_url, pr.queue_url):
            done[pool] = "move task started"
            continue
        done[pool] = redrive_one_by_one(sqs, pr, failure_class)
    return done


def redrive_message(sqs: SqsClient, pr: PoolRefs, message_id: str) -> bool:
    """Move one dead letter back to its queue (send, then delete); False when it is not there."""
    moved = move(
        sqs,
        pr.dlq_url,
        pr.queue_url,
        lambda m: m.message_id == message_id,
        first_only=True,
        wait_s=0,
    )
    return moved == 1
