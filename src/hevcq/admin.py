"""Operator views and actions: queue status, running jobs, dead letters, redrive."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from hevcq.errors import FailureClass
from hevcq.ledger import State
from hevcq.provision import FarmRefs, PoolRefs
from hevcq.queues import ATTR_CLASS, ATTR_REASON

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from hevcq.ledger import DynamoLedger

log = structlog.get_logger()

# SQS ReceiveMessage returns at most 10 messages per call (SQS API Reference).
MAX_BATCH = 10
REDRIVE_VISIBILITY_S = 120


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


def _counts(sqs: SQSClient, url: str) -> dict[str, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return {k: int(v) for k, v in attrs.items()}


def queue_depths(sqs: SQSClient, refs: FarmRefs) -> list[QueueDepth]:
    """Per pool: visible, in flight, delayed and dead-lettered messages."""
    rows = []
    for pool, pr in sorted(refs.pools.items()):
        q, d = _counts(sqs, pr.queue_url), _counts(sqs, pr.dlq_url)
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
    sqs: SQSClient, dlq_url: str, limit: int = 100, wait_s: int = 1
) -> list[DeadLetter]:
    """Dead-letter messages with class and reason; they stay in the queue."""
    out: dict[str, DeadLetter] = {}
    handles = []
    while len(out) < limit:
        msgs = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=MAX_BATCH, VisibilityTimeout=10,
            MessageAttributeNames=["All"], WaitTimeSeconds=wait_s,
        ).get("Messages", [])  # fmt: skip
        if not msgs:
            break
        for m in msgs:
            handles.append(m["ReceiptHandle"])
            attrs = {k: v.get("StringValue", "") for k, v in m.get("MessageAttributes", {}).items()}
            out[m["MessageId"]] = DeadLetter(
                m["MessageId"],
                attrs.get(ATTR_CLASS, "unknown (moved by the redrive policy)"),
                attrs.get(ATTR_REASON, "received too many times without finishing"),
                m.get("Body", ""),
            )
    for h in handles:
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=h, VisibilityTimeout=0)
    return list(out.values())


def _move_task(sqs: SQSClient, pr: PoolRefs) -> bool:
    """SQS's own message move task, where the endpoint implements it."""
    arn = {
        u: sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for u in (pr.dlq_url, pr.queue_url)
    }
    try:
        sqs.start_message_move_task(SourceArn=arn[pr.dlq_url], DestinationArn=arn[pr.queue_url])
    except (ClientError, BotoCoreError, NotImplementedError) as exc:
        # NotImplementedError: moto's in-process backend (its server answers HTTP 500).
        log.info("move_task_unavailable", error=str(exc))
        return False
    return True


def _matches(m: dict[str, object], failure_class: FailureClass | None) -> bool:
    if failure_class is None:
        return True
    attrs = m.get("MessageAttributes") or {}
    value = attrs.get(ATTR_CLASS, {}).get("StringValue") if isinstance(attrs, dict) else None
    return value == failure_class.value


def redrive_one_by_one(
    sqs: SQSClient, pr: PoolRefs, failure_class: FailureClass | None = None
) -> int:
    """Move dead letters back one at a time: send to the source queue, then delete.

    An interruption between the two leaves a duplicate (which the ledger makes harmless),
    never a lost job. Messages of other classes are skipped and made visible again.
    """
    moved, skipped = 0, []
    while True:
        msgs = sqs.receive_message(
            QueueUrl=pr.dlq_url, MaxNumberOfMessages=MAX_BATCH, WaitTimeSeconds=1,
            VisibilityTimeout=REDRIVE_VISIBILITY_S, MessageAttributeNames=["All"],
        ).get("Messages", [])  # fmt: skip
        if not msgs:
            break
        for m in msgs:
            if not _matches(m, failure_class):  # type: ignore[arg-type]
                skipped.append(m["ReceiptHandle"])
                continue
            sqs.send_message(QueueUrl=pr.queue_url, MessageBody=m["Body"])
            sqs.delete_message(QueueUrl=pr.dlq_url, ReceiptHandle=m["ReceiptHandle"])
            moved += 1
    for h in skipped:
        sqs.change_message_visibility(QueueUrl=pr.dlq_url, ReceiptHandle=h, VisibilityTimeout=0)
    return moved


def redrive(
    sqs: SQSClient,
    move_sqs: SQSClient,
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
        if failure_class is None and _move_task(move_sqs, pr):
            done[pool] = "move task started"
            continue
        done[pool] = redrive_one_by_one(sqs, pr, failure_class)
    return done


def redrive_message(sqs: SQSClient, pr: PoolRefs, message_id: str) -> bool:
    """Move one dead letter back to its queue (send, then delete); False when it is not there."""
    found, others = False, []
    while not found:
        msgs = sqs.receive_message(
            QueueUrl=pr.dlq_url, MaxNumberOfMessages=MAX_BATCH, WaitTimeSeconds=0,
            VisibilityTimeout=REDRIVE_VISIBILITY_S, MessageAttributeNames=["All"],
        ).get("Messages", [])  # fmt: skip
        if not msgs:
            break
        for m in msgs:
            if m["MessageId"] == message_id and not found:
                sqs.send_message(QueueUrl=pr.queue_url, MessageBody=m["Body"])
                sqs.delete_message(QueueUrl=pr.dlq_url, ReceiptHandle=m["ReceiptHandle"])
                found = True
            else:
                others.append(m["ReceiptHandle"])
    for h in others:
        sqs.change_message_visibility(QueueUrl=pr.dlq_url, ReceiptHandle=h, VisibilityTimeout=0)
    return found
