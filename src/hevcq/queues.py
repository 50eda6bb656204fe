"""The SQS side of a worker: receive, extend, release, delete, dead-letter.

Only this module (and the worker loop that holds a ``Received``) ever sees receipt handles.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import structlog
from botocore.exceptions import ClientError

from hevcq.aws import error_code
from hevcq.errors import FailureClass, LostMessageError
from hevcq.limits import MAX_VISIBILITY_TIMEOUT_S, MAX_WAIT_TIME_S

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

log = structlog.get_logger()

MAX_MESSAGE_ATTRIBUTE_BYTES = 1024  # our own cap for a reason string on a DLQ message

ATTR_CLASS = "hevcq.failure_class"
ATTR_REASON = "hevcq.reason"
ATTR_SOURCE = "hevcq.source_queue"

# Error codes meaning "this receipt handle is no longer ours".
LOST_RECEIPT_CODES = frozenset(
    {"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight",
     "AWS.SimpleQueueService.MessageNotInflight"}
)  # fmt: skip


@dataclass(frozen=True)
class Received:
    """A received message; ``received_at`` is this process's monotonic clock at receipt."""

    message_id: str
    body: str
    receipt: str
    receive_count: int
    received_at: float
    sent_at: float = 0.0
    attributes: dict[str, str] = field(default_factory=dict)


class Queue(Protocol):
    """What a worker needs from its queue."""

    def receive(self, wait_s: int) -> Received | None: ...
    def extend(self, msg: Received, timeout_s: int) -> None: ...
    def release(self, msg: Received, delay_s: int) -> None: ...
    def delete(self, msg: Received) -> None: ...
    def dead_letter(self, msg: Received, failure_class: FailureClass, reason: str) -> None: ...


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
        resp = self._sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=min(wait_s, MAX_WAIT_TIME_S),
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            MessageAttributeNames=["All"],
        )
        messages = resp.get("Messages", [])
        if not messages:
            return None
        m = messages[0]
        attrs = m.get("Attributes", {})
        return Received(
            message_id=m["MessageId"],
            body=m.get("Body", ""),
            receipt=m["ReceiptHandle"],
            receive_count=int(attrs.get("ApproximateReceiveCount", "1")),
            received_at=self._now(),
            sent_at=int(attrs.get("SentTimestamp", "0")) / 1000.0,
            attributes={
                k: v.get("StringValue", "") for k, v in m.get("MessageAttributes", {}).items()
            },
        )

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def _change_visibility(self, msg: Received, timeout_s: int) -> None:
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=msg.receipt, VisibilityTimeout=timeout_s
            )
        except ClientError as exc:
            if error_code(exc) in LOST_RECEIPT_CODES:
                raise LostMessageError(f"receipt no longer valid: {error_code(exc)}") from exc
            raise

    def extend(self, msg: Received, timeout_s: int) -> None:
        """Keep the message invisible for ``timeout_s`` more seconds from now."""
        self._change_visibility(msg, timeout_s)

    def release(self, msg: Received, delay_s: int) -> None:
        """Make the message visible again after ``delay_s`` seconds (0: at once)."""
        self._change_visibility(msg, max(0, min(delay_s, MAX_VISIBILITY_TIMEOUT_S)))

    def delete(self, msg: Received) -> None:
        """Acknowledge the message."""
        self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=msg.receipt)

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
