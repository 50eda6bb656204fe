"""The queue side of a worker: every message call it makes (receive, keep invisible,
settle) and nothing else. It knows no ledger, no store and no ffmpeg.

The split follows dramatiq's worker: its consumer thread does all broker I/O and its worker
threads none. Here ``worker.session.JobSession`` decides what happens to a message and this
module does it.
"""

from __future__ import annotations

import structlog

from hevcq.backoff import retry_transient
from hevcq.errors import Classify, FailureClass, FarmConfigError, HevcqError
from hevcq.queue import Queue, Received
from hevcq.worker.outage import Outage
from hevcq.worker.settle import Settle, Verdict

log = structlog.get_logger()


class Consumer:
    """One pool queue's messages: long polls, visibility extensions and settlements."""

    def __init__(self, queue: Queue, *, poll_wait_s: int, classify: Classify) -> None:
        self._queue = queue
        self._poll_wait_s = poll_wait_s
        self._classify = classify

    @property
    def poll_wait_s(self) -> int:
        """The longest wait of one long poll."""
        return self._poll_wait_s

    def receive(self, outage: Outage, wait_s: int | None = None) -> tuple[Received | None, float]:
        """One long poll (``wait_s``, default the configured wait); on a transient fault, no
        message and how long to wait.

        A ``FarmConfigError`` (credentials refused, the queue missing) is raised.
        """
        try:
            msg = self._queue.receive(self._poll_wait_s if wait_s is None else wait_s)
        except Exception as exc:
            err = self._classify(exc, "receive")
            if isinstance(err, FarmConfigError):
                if err is exc:
                    raise
                raise err from exc
            return None, outage.failed(err)
        outage.recovered()
        return msg, 0.0

    def extend(self, msg: Received, timeout_s: int) -> None:
        """Keep ``msg`` invisible for ``timeout_s`` more seconds (the heartbeat's queue side)."""
        self._queue.extend(msg, timeout_s)

    def settle(self, msg: Received, settle: Settle) -> None:
        """Act on the queue. A transient fault is retried for a while, then left: the message
        comes back when its visibility runs out. Only a ``FarmConfigError`` is raised."""
        if settle.verdict is not Verdict.LOST:
            try:
                self._act(msg, settle)
            except FarmConfigError:
                raise
            except Exception as exc:
                log.warning(
                    "settle_failed", verdict=settle.verdict.name.lower(), error=str(exc)[:500]
                )
                return
        log.info(
            "message_settled",
            verdict=settle.verdict.name.lower(),
            delay_s=settle.delay_s,
            reason=settle.reason or None,
        )

    @retry_transient
    def _act(self, msg: Received, settle: Settle) -> None:
        try:
            if settle.verdict is Verdict.ACK:
                self._queue.delete(msg)
            elif settle.verdict is Verdict.DEAD:
                self._queue.dead_letter(
                    msg, settle.failure_class or FailureClass.PERMANENT, settle.reason
                )
            elif settle.verdict is Verdict.RELEASE:
                self._queue.release(msg, settle.delay_s)
        except HevcqError:
            raise
        except Exception as exc:
            raise self._classify(exc, f"{settle.verdict.name.lower()} message") from exc
