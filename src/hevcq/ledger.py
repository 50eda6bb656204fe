"""The job ledger: one DynamoDB item per (source object, pool), guarded by conditional writes.

A worker claims a job only when no live lease is held by another worker, renews the lease
with each heartbeat and finishes with a write that succeeds only while it still holds it.
Duplicate S3 events and SQS redeliveries therefore become no-ops.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from hevcq.aws import error_code
from hevcq.errors import InterruptedJob

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class State(StrEnum):
    """Where a job stands."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


FINISHED = (State.DONE, State.SKIPPED)


class LeaseLostError(InterruptedJob):
    """Another worker holds the job now (our lease lapsed)."""


@dataclass(frozen=True)
class JobKey:
    """Identifies a job: a source object version in a pool."""

    key: str
    pool: str
    etag: str
    settings_hash: str

    @property
    def job_id(self) -> str:
        """A short stable id for logs and results."""
        raw = f"{self.key}\0{self.pool}\0{self.etag}\0{self.settings_hash}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Claimed:
    """We hold the job; ``attempt`` counts claims that were not interrupted."""

    attempt: int


@dataclass(frozen=True)
class AlreadyFinished:
    """The same source version was already done or skipped with the same settings."""

    state: State
    output_key: str | None
    reason: str | None


@dataclass(frozen=True)
class HeldElsewhere:
    """Another worker holds a live lease on the job."""

    worker: str
    message_id: str
    lease_left_s: float


ClaimResult = Claimed | AlreadyFinished | HeldElsewhere


class Ledger(Protocol):
    """What the worker needs from the ledger."""

    def claim(self, job: JobKey, worker: str, message_id: str, lease_s: int) -> ClaimResult: ...
    def renew(self, job: JobKey, worker: str, lease_s: int, progress: float | None) -> None: ...
    def finish(self, job: JobKey, worker: str, state: State, fields: dict[str, Any]) -> None: ...
    def release(self, job: JobKey, worker: str, state: State, fields: dict[str, Any]) -> None: ...


def _attr(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(round(value, 3)) if isinstance(value, float) else str(value)}
    return {"S": str(value)}


def _plain(attr: dict[str, Any]) -> Any:
    if "S" in attr:
        return attr["S"]
    if "N" in attr:
        n = float(attr["N"])
        return int(n) if n.is_integer() else n
    if "BOOL" in attr:
        return attr["BOOL"]
    return None


def plain_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a plain dict."""
    return {k: _plain(v) for k, v in item.items()}


CLAIMABLE = (
    "attribute_not_exists(pk)"
    " OR #state IN (:queued, :failed, :interrupted)"
    " OR (#state = :running AND lease_expires < :now)"
    " OR (#state IN (:done, :skipped) AND (etag <> :etag OR settings_hash <> :hash))"
)
HELD_BY_ME = "#state = :running AND worker = :worker"


class DynamoLedger:
    """The ledger table (hash key ``pk`` = source key, range key ``sk`` = pool)."""

    def __init__(self, ddb: DynamoDBClient, table: str, clock: Any = time.time) -> None:
        self._ddb = ddb
        self.table = table
        self._clock = clock

    def _key(self, job: JobKey) -> dict[str, Any]:
        return {"pk": {"S": job.key}, "sk": {"S": job.pool}}

    def _values(self, **kw: Any) -> dict[str, Any]:
        return {f":{k}": _attr(v) for k, v in kw.items()}

    def get(self, key: str, pool: str) -> dict[str, Any] | None:
        """One item as a plain dict."""
        resp = self._ddb.get_item(
            TableName=self.table, Key={"pk": {"S": key}, "sk": {"S": pool}}, ConsistentRead=True
        )
        return plain_item(resp["Item"]) if "Item" in resp else None

    def claim(self, job: JobKey, worker: str, message_id: str, lease_s: int) -> ClaimResult:
        """Take the job if nobody holds a live lease and it is not already finished."""
        now = self._clock()
        states = {s.value: s.value for s in State}
        try:
            resp = self._ddb.update_item(
                TableName=self.table,
                Key=self._key(job),
                UpdateExpression=(
                    "SET #state = :running, worker = :worker, message_id = :mid,"
                    " lease_expires = :lease, etag = :etag, settings_hash = :hash,"
                    " started_at = :now, progress = :zero, reason = :null, failure_class = :null,"
                    " attempts = if_not_exists(attempts, :zero) + :one, job_id = :jid"
                ),
                ConditionExpression=CLAIMABLE,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=self._values(
                    **states,
                    worker=worker,
                    mid=message_id,
                    lease=now + lease_s,
                    etag=job.etag,
                    hash=job.settings_hash,
                    now=now,
                    zero=0,
                    one=1,
                    null=None,
                    jid=job.job_id,
                ),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return self._why_not(job, now)
        return Claimed(attempt=int(_plain(dict(resp["Attributes"]["attempts"]))))

    def _why_not(self, job: JobKey, now: float) -> ClaimResult:
        item = self.get(job.key, job.pool) or {}
        state = State(item.get("state", State.RUNNING.value))
        if state in FINISHED:
            return AlreadyFinished(state, item.get("output_key"), item.get("reason"))
        return HeldElsewhere(
            worker=str(item.get("worker", "")),
            message_id=str(item.get("message_id", "")),
            lease_left_s=max(0.0, float(item.get("lease_expires", now)) - now),
        )

    def _guarded_update(
        self, job: JobKey, worker: str, sets: dict[str, Any], extra: str = ""
    ) -> None:
        names = {"#state": "state", **{f"#{k}": k for k in sets}}
        expr = "SET " + ", ".join(f"#{k} = :{k}" for k in sets) + extra
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key=self._key(job),
                UpdateExpression=expr,
                ConditionExpression=HELD_BY_ME,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=self._values(
                    running=State.RUNNING.value,
                    worker=worker,
                    **sets,
                    **({"one": 1} if extra else {}),
                ),
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise LeaseLostError(f"lease on {job.key} [{job.pool}] lost") from exc
            raise

    def renew(self, job: JobKey, worker: str, lease_s: int, progress: float | None) -> None:
        """Push the lease forward; raises LeaseLostError when another worker took over."""
        sets: dict[str, Any] = {"lease_expires": self._clock() + lease_s}
        if progress is not None:
            sets["progress"] = round(progress, 1)
        self._guarded_update(job, worker, sets)

    def finish(self, job: JobKey, worker: str, state: State, fields: dict[str, Any]) -> None:
        """Record the final state; only the lease holder can."""
        sets = {**fields, "state": state.value, "finished_at": self._clock(), "lease_expires": 0}
        self._guarded_update(job, worker, sets)

    def release(self, job: JobKey, worker: str, state: State, fields: dict[str, Any]) -> None:
        """Give the job back (queued for a retry, or interrupted without counting it)."""
        sets = {**fields, "state": state.value, "lease_expires": 0}
        extra = ", attempts = attempts - :one" if state is State.INTERRUPTED else ""
        self._guarded_update(job, worker, sets, extra)

    def scan_all(self) -> list[dict[str, Any]]:
        """Every item (status views; the table holds one item per job)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table}
        while True:
            resp = self._ddb.scan(**kwargs)
            items.extend(plain_item(i) for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
