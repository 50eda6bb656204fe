"""Collecting job results from the results queue, and downloading outputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from pydantic import ValidationError

from hevcq.admin import list_dead_letters
from hevcq.errors import FailureClass, PermanentError
from hevcq.events import SourceObject, parse_message
from hevcq.keys import DONE_PREFIX
from hevcq.messages import JobResult
from hevcq.provision import FarmRefs

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = structlog.get_logger()

JobId = tuple[str, str]  # (source key, pool)
DLQ_CHECK_EVERY_S = 10.0


def parse_result(body: str) -> JobResult | None:
    """A result message, or None for something else on the queue."""
    try:
        return JobResult.model_validate_json(body)
    except ValidationError:
        return None


@dataclass
class ResultCollector:
    """Waits for the results of a known set of jobs.

    Jobs that a worker could not report (it crashed every time, so SQS's redrive policy
    moved the message) are found in the dead-letter queues and reported as failed.
    """

    sqs: SQSClient
    refs: FarmRefs
    expected: set[JobId]

    def __post_init__(self) -> None:
        self.results: dict[JobId, JobResult] = {}

    @property
    def pending(self) -> set[JobId]:
        """Jobs without a result yet."""
        return self.expected - self.results.keys()

    def _take(self, result: JobResult) -> bool:
        jid = (result.source_key, result.pool)
        if jid not in self.expected:
            return False
        self.results.setdefault(jid, result)
        return True

    def poll(self, wait_s: int = 5) -> None:
        """Read one batch of results; messages for other jobs are left for their owners."""
        resp = self.sqs.receive_message(
            QueueUrl=self.refs.results_queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_s,
            VisibilityTimeout=30,
        )
        for m in resp.get("Messages", []):
            result = parse_result(m.get("Body", ""))
            if result is not None and self._take(result):
                self.sqs.delete_message(
                    QueueUrl=self.refs.results_queue_url, ReceiptHandle=m["ReceiptHandle"]
                )
            else:
                self.sqs.change_message_visibility(
                    QueueUrl=self.refs.results_queue_url,
                    ReceiptHandle=m["ReceiptHandle"],
                    VisibilityTimeout=0,
                )

    def check_dead_letters(self) -> None:
        """Report pending jobs whose messages sit in a dead-letter queue."""
        for pool, pr in self.refs.pools.items():
            for obj, cls, reason in peek_dead_letters(self.sqs, pr.dlq_url):
                jid = (obj.key, pool)
                if jid in self.pending:
                    self._take(
                        JobResult(
                            job_id="",
                            pool=pool,
                            bucket=obj.bucket,
                            source_key=obj.key,
                            outcome="failed",
                            failure_class=cls,
                            reason=reason
                            or "moved to the dead-letter queue after repeated failures",
                        )
                    )

    def wait(
        self, timeout_s: float | None = None, on_tick: Callable[[], None] | None = None
    ) -> bool:
        """Poll until every expected job has a result; False on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        next_dlq = time.monotonic() + DLQ_CHECK_EVERY_S
        while self.pending:
            if deadline is not None and time.monotonic() > deadline:
                return False
            self.poll()
            if on_tick:
                on_tick()
            if time.monotonic() >= next_dlq:
                self.check_dead_letters()
                next_dlq = time.monotonic() + DLQ_CHECK_EVERY_S
        return True


def result_from_item(item: dict[str, object], bucket: str) -> JobResult | None:
    """A finished ledger item as a result (None while the job is still open)."""
    state = str(item.get("state", ""))
    if state not in ("done", "skipped", "failed"):
        return None
    cls = item.get("failure_class")

    def num(name: str) -> float | None:
        v = item.get(name)
        return float(v) if isinstance(v, int | float) else None

    out_bytes, in_bytes = num("output_bytes"), num("input_bytes")
    return JobResult(
        job_id=str(item.get("job_id", "")),
        pool=str(item["sk"]),
        bucket=bucket,
        source_key=str(item["pk"]),
        source_etag=str(item.get("etag", "")),
        outcome=state,
        reason=str(item["reason"]) if item.get("reason") else None,
        failure_class=FailureClass(str(cls)) if cls else None,
        output_key=str(item["output_key"]) if item.get("output_key") else None,
        input_bytes=int(in_bytes) if in_bytes is not None else None,
        output_bytes=int(out_bytes) if out_bytes is not None else None,
        encode_s=num("encode_s"),
        duration_s=num("duration_s"),
        settings_hash=str(item.get("settings_hash", "")),
        worker=str(item.get("worker", "")),
    )


def peek_dead_letters(
    sqs: SQSClient, dlq_url: str, limit: int = 100
) -> list[tuple[SourceObject, FailureClass | None, str]]:
    """The objects named by dead-letter messages, with class and reason; nothing consumed."""
    known = {c.value for c in FailureClass}
    return [
        (obj, FailureClass(d.failure_class) if d.failure_class in known else None, d.reason)
        for d in list_dead_letters(sqs, dlq_url, limit, wait_s=0)
        for obj in announced_objects(d.body)
    ]


def announced_objects(body: str) -> list[SourceObject]:
    """The objects a queue message announces; none for a malformed one."""
    try:
        parsed = parse_message(body)
    except PermanentError:
        return []
    return parsed if isinstance(parsed, list) else []


def download_outputs(
    s3: object, bucket: str, results: list[JobResult], out_dir: Path
) -> dict[JobId, Path]:
    """Download each done job's output to ``out_dir/<pool>/<library path>`` atomically."""
    placed: dict[JobId, Path] = {}
    for r in results:
        if r.outcome != "done" or not r.output_key:
            continue
        rel = r.output_key[len(DONE_PREFIX) :]
        dest = out_dir.joinpath(*rel.split("/"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.hevcq-partial")
        s3.download_file(bucket, r.output_key, str(tmp))  # type: ignore[attr-defined]
        tmp.replace(dest)
        placed[(r.source_key, r.pool)] = dest
    return placed
