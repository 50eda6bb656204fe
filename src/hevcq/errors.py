"""The error hierarchy: each branch says what the caller should do with the job."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class FailureClass(StrEnum):
    """How a failed job is handled; carried on dead-letter messages and ledger items."""

    PERMANENT = "permanent"  # bad input: straight to the dead-letter queue, never retried
    TRANSIENT = "transient"  # retried with back-off; SQS's redrive policy caps the attempts
    STALLED = "stalled"  # ffmpeg made no progress: killed, then handled as transient
    INTERRUPTED = "interrupted"  # stopped by us (SIGTERM, scale-in): released, not counted
    # The output could not be scored under ``verify: quality`` (hevcq.media.quality): to the
    # dead-letter queue like a permanent failure, but never read as a low score or bad input.
    SCORING = "scoring"


class HevcqError(Exception):
    """Base of every error hevcq raises on purpose."""

    failure_class: FailureClass = FailureClass.PERMANENT


class ConfigError(HevcqError):
    """Settings or farm definition files are wrong; the message names the file and field."""


class RunHalted(HevcqError):
    """A run cannot go on until someone acts (a full output disk, local workers that
    cannot start): it stops at once, keeping what it did; the message says what is needed."""


class FarmConfigError(HevcqError):
    """The farm's credentials or resources are wrong (denied, expired, missing bucket or queue).

    Not the file's fault: the message goes back untouched and the worker stops, so that a
    broken deployment never dead-letters the backlog.
    """


class PermanentError(HevcqError):
    """The input can never succeed as it is (not a video, truncated, zero bytes...)."""

    failure_class = FailureClass.PERMANENT


class RetryableError(HevcqError):
    """Worth trying again later, optionally after ``delay_s`` seconds."""

    failure_class = FailureClass.TRANSIENT

    def __init__(self, message: str, delay_s: float | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class StalledError(RetryableError):
    """ffmpeg stopped making progress and was killed."""

    failure_class = FailureClass.STALLED


class VerificationError(RetryableError):
    """The encoded output is not what was planned (wrong shape, short, or does not decode)."""


class InterruptedJob(HevcqError):
    """The job was stopped by us (shutdown, lost lease, visibility budget used up)."""

    failure_class = FailureClass.INTERRUPTED


class LostMessageError(InterruptedJob):
    """The queue no longer recognises our receipt: another worker may own the job now."""


class SupersededJob(InterruptedJob):
    """A newer version of the source exists: this job's work is moot (not a failure)."""


class WaitingForPrimary(InterruptedJob):
    """The job waits for another pool's identical encode of its source version: its message
    comes back after ``delay_s`` seconds and nothing of its retry budget is spent."""

    def __init__(self, message: str, delay_s: int) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class WorkerCannotRun(InterruptedJob):
    """This worker cannot run the job (its scratch disk is too small for it): the job goes
    back for another worker, and nothing of its retry budget is spent."""


class CopySourceChanged(HevcqError):
    """The object a server-side copy was to be made from is gone or no longer that ETag."""

    failure_class = FailureClass.TRANSIENT


class WriteConflict(HevcqError):
    """A conditional write found the object changed since it was last seen."""

    failure_class = FailureClass.TRANSIENT


Classify = Callable[[BaseException, str], Exception]
"""Maps a failure of some outside service to this hierarchy (``hevcq.aws.clients.classify``)."""


def unclassified(exc: BaseException, what: str) -> Exception:  # noqa: ARG001 - a Classify
    """The classifier of code that knows no outside service: an exception stays as it is."""
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))
