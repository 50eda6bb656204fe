"""What a worker does with a message once its jobs are decided: the verdict and its details.

``worker.session.JobSession`` decides a ``Settle``; ``worker.consumer.Consumer`` carries it
out on the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hevcq.errors import FailureClass


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
