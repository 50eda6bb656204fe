"""A queue message as hevcq sees it, and what a worker does with one (``hevcq.aws.sqs``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from hevcq.errors import FailureClass


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
