"""The SQS adapter: every call hevcq makes to SQS's messages goes through this module.

A worker's pool queue (``SqsQueue``: receive one, extend, release, delete, dead-letter),
the results queue read in batches (``SqsInbox``), and the dead-letter queues read without
consuming (``peek``), moved back (``move``, ``start_move_task``) and counted (``counts``).
Every received message is one type, ``Received``; only this module reads receipt handles.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from hevcq.aws.clients import error_code
from hevcq.errors import FailureClass, LostMessageError
from hevcq.limits import MAX_VISIBILITY_TIMEOUT_S, MAX_WAIT_TIME_S
from hevcq.queue import Received

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

    # The client as the rest of hevcq names it when it hands one to this module.
    SqsClient: TypeAlias = SQSClient

log = structlog.get_logger()

MAX_BATCH = 10  # ReceiveMessage returns at most 10 messages per call (SQS API Reference)
PEEK_VISIBILITY_S = 10  # how long a peeked message is hidden before it is put back
MOVE_VISIBILITY_S = 120  # a message being moved stays ours this long

MAX_MESSAGE_ATTRIBUTE_BYTES = 1024  # our own cap for a reason string on a DLQ message

ATTR_CLASS = "hevcq.failure_class"
ATTR_REASON = "hevcq.reason"
ATTR_SOURCE = "hevcq.source_queue"

# Error codes meaning "this receipt handle is no longer ours".
LOST_RECEIPT_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "InvalidParameterValue",
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
    }
)


def _string_attr(value: str) -> MessageAttributeValueTypeDef:
    return {"DataType": "String", "StringValue": value}


class SqsQueue:
    """A pool queue and its dead-letter queue."""

    def __init__(
        self, sqs: SQSClient, url: str, dlq_url: str, clock: object = time.monotonic
    ) -> None:
        self._sqs = sqs
        self.url = url
        self.dlq_url = dlq_url
        self._clock = clock

    def receive(self, wait_s: int) -> Received | None:
        """Long-poll for one message."""
        got = _receive(self._sqs, self.url, limit=1, wait_s=wait_s, clock=self._now)
        return got[0] if got else None

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def _change_visibility(self, msg: Received, timeout_s: int) -> None:
        _change_visibility(self._sqs, self.url, msg, timeout_s)

    def extend(self, msg: Received, timeout_s: int) -> None:
        """Keep the message invisible for ``timeout_s`` more seconds from now."""
        self._change_visibility(msg, timeout_s)

    def release(self, msg: Received, delay_s: int) -> None:
        """Make the message visible again after ``delay_s`` seconds (0: at once)."""
        self._change_visibility(msg, max(0, min(delay_s, MAX_VISIBILITY_TIMEOUT_S)))

    def delete(self, msg: Received) -> None:
        """Acknowledge the message."""
        _delete(self._sqs, self.url, msg)

    def dead_letter(self, msg: Received, failure_class: FailureClass, reason: str) -> None:
        """Send the message to the dead-letter queue with its class and reason, then delete it.

        Send comes before delete: a crash in between leaves a duplicate, never a loss.
        """
        reason = reason.encode()[:MAX_MESSAGE_ATTRIBUTE_BYTES].decode(errors="ignore") or "-"
        self._sqs.send_message(
            QueueUrl=self.dlq_url,
            MessageBody=msg.body or "{}",
            MessageAttributes={
                ATTR_CLASS: _string_attr(failure_class.value),
                ATTR_REASON: _string_attr(reason),
                ATTR_SOURCE: _string_attr(self.url),
            },
        )
        self.delete(msg)
        log.info("message_dead_lettered", failure_class=failure_class.value, reason=reason)


@dataclass
class SqsInbox:
    """A queue read ten at a time by one consumer: the results queue (``library.results.drain``)."""

    sqs: SQSClient
    url: str
    visibility_s: int = 900  # one download and full decode of a large output

    def receive(self, wait_s: int) -> list[Received]:
        """Up to ten messages, hidden from others for ``visibility_s``."""
        return _receive(
            self.sqs, self.url, limit=MAX_BATCH, wait_s=wait_s, visibility_s=self.visibility_s
        )

    def delete(self, msg: Received) -> None:
        """Remove a handled message."""
        _delete(self.sqs, self.url, msg)

    def release(self, msg: Received, delay_s: int) -> None:
        """Make the message visible again after ``delay_s`` seconds (0: at once)."""
        _change_visibility(self.sqs, self.url, msg, max(0, min(delay_s, MAX_VISIBILITY_TIMEOUT_S)))


def peek(sqs: SQSClient, url: str, *, limit: int = 100, wait_s: int = 1) -> list[Received]:
    """Up to ``limit`` messages of a queue, left in it and visible again when this returns."""
    seen: dict[str, Received] = {}
    taken: list[Received] = []
    while len(seen) < limit:
        batch = _receive(sqs, url, limit=MAX_BATCH, wait_s=wait_s, visibility_s=PEEK_VISIBILITY_S)
        if not batch:
            break
        taken.extend(batch)
        for m in batch:
            seen.setdefault(m.message_id, m)
    for m in taken:
        _change_visibility(sqs, url, m, 0)
    return list(seen.values())[:limit]


def move(
    sqs: SQSClient,
    from_url: str,
    to_url: str,
    pick: Callable[[Received], bool],
    *,
    first_only: bool = False,
    wait_s: int = 1,
) -> int:
    """Move the messages ``pick`` chooses: send to ``to_url``, then delete from ``from_url``.

    An interruption between the two leaves a duplicate (which the ledger makes harmless),
    never a lost job. Messages not picked are made visible again at the end.
    """
    moved, others = 0, []
    while not (first_only and moved):
        batch = _receive(
            sqs, from_url, limit=MAX_BATCH, wait_s=wait_s, visibility_s=MOVE_VISIBILITY_S
        )
        if not batch:
            break
        for m in batch:
            if (first_only and moved) or not pick(m):
                others.append(m)
                continue
            sqs.send_message(QueueUrl=to_url, MessageBody=m.body)
            _delete(sqs, from_url, m)
            moved += 1
    for m in others:
        _change_visibility(sqs, from_url, m, 0)
    return moved


def start_move_task(sqs: SQSClient, from_url: str, to_url: str) -> bool:
    """SQS's own message move task, where the endpoint implements it; False where not."""
    arn = {
        u: sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for u in (from_url, to_url)
    }
    try:
        sqs.start_message_move_task(SourceArn=arn[from_url], DestinationArn=arn[to_url])
    except (ClientError, BotoCoreError, NotImplementedError) as exc:
        # NotImplementedError: moto's in-process backend (its server answers HTTP 500).
        log.info("move_task_unavailable", error=str(exc))
        return False
    return True


def counts(sqs: SQSClient, url: str) -> dict[str, int]:
    """Approximate numbers of visible, in-flight and delayed messages."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return {k: int(v) for k, v in attrs.items()}


def _receive(
    sqs: SQSClient,
    url: str,
    *,
    limit: int,
    wait_s: int,
    visibility_s: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[Received]:
    extra = {} if visibility_s is None else {"VisibilityTimeout": visibility_s}
    resp = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=limit,
        WaitTimeSeconds=min(wait_s, MAX_WAIT_TIME_S),
        MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        MessageAttributeNames=["All"],
        **extra,  # type: ignore[arg-type]
    )
    now = clock()
    out = []
    for m in resp.get("Messages", []):
        attrs = m.get("Attributes", {})
        out.append(
            Received(
                message_id=m["MessageId"],
                body=m.get("Body", ""),
                receipt=m["ReceiptHandle"],
                receive_count=int(attrs.get("ApproximateReceiveCount", "1")),
                received_at=now,
                sent_at=int(attrs.get("SentTimestamp", "0")) / 1000.0,
                attributes={
                    k: v.get("StringValue", "") for k, v in m.get("MessageAttributes", {}).items()
                },
            )
        )
    return out


def _change_visibility(sqs: SQSClient, url: str, msg: Received, timeout_s: int) -> None:
    try:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=msg.receipt, VisibilityTimeout=timeout_s
        )
    except ClientError as exc:
        if error_code(exc) in LOST_RECEIPT_CODES:
            raise LostMessageError(f"receipt no longer valid: {error_code(exc)}") from exc
        raise


def _delete(sqs: SQSClient, url: str, msg: Received) -> None:
    sqs.delete_message(QueueUrl=url, ReceiptHandle=msg.receipt)
