"""The job ledger on DynamoDB (``hevcq.ledger`` holds its model and rules).

Every write is a conditional write on the record version number (``rvn``) it read.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from hevcq.aws.clients import classify, error_code
from hevcq.ledger import (
    CLAIM_WRITE_ROUNDS,
    PHASES,
    AlreadyFinished,
    AskSource,
    Claimed,
    ClaimResult,
    HeldElsewhere,
    JobKey,
    Lease,
    LeaseLostError,
    LedgerItem,
    State,
    Superseded,
    history_after,
    judge,
    new_rvn,
    to_attribute,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass
class DynamoLedger:
    """The ledger table (hash key ``pk`` = source key, range key ``sk`` = pool).

    ``clock`` is wall-clock time, written for people (``started_at``, ``finished_at``) and
    never compared with anything.
    """

    ddb: DynamoDBClient
    table: str
    clock: Callable[[], float] = field(default=time.time)

    def _key(self, key: str, pool: str) -> dict[str, Any]:
        return {"pk": {"S": key}, "sk": {"S": pool}}

    def _call(self, what: str, fn: Callable[..., Any], **kw: Any) -> Any:
        """One DynamoDB call; transient faults become RetryableError, config faults their own."""
        try:
            return fn(TableName=self.table, **kw)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise
            raise classify(exc, what) from exc
        except BotoCoreError as exc:
            raise classify(exc, what) from exc

    def get(self, key: str, pool: str) -> LedgerItem | None:
        """One item, read consistently."""
        resp = self._call(
            "ledger read", self.ddb.get_item, Key=self._key(key, pool), ConsistentRead=True
        )
        return LedgerItem.from_item(resp["Item"]) if "Item" in resp else None

    def _write(
        self,
        key: str,
        pool: str,
        sets: Mapping[str, Any],
        condition: str,
        values: Mapping[str, Any],
        *,
        add: Mapping[str, int] | None = None,
        remove: tuple[str, ...] = (),
        return_new: bool = False,
    ) -> LedgerItem | None:
        """A conditional UpdateItem; False condition raises ConditionalCheckFailedException."""
        expr = "SET " + ", ".join(f"#{k} = :set_{k}" for k in sets)
        if add:
            expr += " ADD " + ", ".join(f"#{k} :add_{k}" for k in add)
        if remove:
            expr += " REMOVE " + ", ".join(f"#{k}" for k in remove)
        # DynamoDB rejects names that the expressions do not use.
        names = {tok: tok[1:] for tok in re.findall(r"#\w+", f"{expr} {condition}")}
        attr_values = {f":set_{k}": to_attribute(v) for k, v in sets.items()}
        attr_values.update({f":add_{k}": to_attribute(v) for k, v in (add or {}).items()})
        attr_values.update({f":{k}": to_attribute(v) for k, v in values.items()})
        resp = self._call(
            "ledger write",
            self.ddb.update_item,
            Key=self._key(key, pool),
            UpdateExpression=expr,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=attr_values,
            ReturnValues="ALL_NEW" if return_new else "NONE",
        )
        return LedgerItem.from_item(resp["Attributes"]) if return_new else None

    def _claim_write(
        self,
        job: JobKey,
        worker: str,
        message_id: str,
        lease_s: float,
        read: LedgerItem | None,
    ) -> Claimed | None:
        """Write ourselves in as holder, if the item is still as we read it."""
        rvn = new_rvn()
        # The retry budget carries over only while the same version is retried; a new
        # version, new settings or a redriven failure start afresh.
        carries = (
            read is not None
            and (read.etag, read.settings_hash) == (job.etag, job.settings_hash)
            and read.state in (State.QUEUED, State.INTERRUPTED, State.RUNNING)
        )
        attempts = read.attempts if read is not None and carries else 0
        sets: dict[str, Any] = {
            "state": State.RUNNING.value,
            "worker": worker,
            "message_id": message_id,
            "rvn": rvn,
            "lease_s": lease_s,
            "etag": job.etag,
            "settings_hash": job.settings_hash,
            "version_id": job.version_id,
            "sequencer": job.sequencer,
            "job_id": job.job_id,
            "attempts": attempts,
            "started_at": self.clock(),
            "progress": 0,
            "reason": None,
            "failure_class": None,
            "superseded_by": "",
        }
        if read is not None and (read.etag, read.settings_hash) != (
            job.etag,
            job.settings_hash,
        ):
            # Another version or other settings: the item remembers what the last one did.
            sets["history"] = history_after(read)
            sets.update(dict.fromkeys(PHASES))
        if read is None:
            condition, values = "attribute_not_exists(pk)", {}
        else:
            condition, values = "#rvn = :seen", {"seen": read.rvn}
            if not read.rvn:  # an item written before record versions existed
                condition = "attribute_not_exists(#rvn)"
                values = {}
        try:
            self._write(job.key, job.pool, sets, condition, values, add={"claims": 1})
        except ClientError:
            return None  # someone wrote in between: read again
        output_etag = read.output_etag if read is not None else None
        return Claimed(Lease(job, worker, rvn, lease_s, attempts, output_etag))

    def claim(
        self,
        job: JobKey,
        worker: str,
        message_id: str,
        lease_s: float,
        source_is_current: Callable[[], bool] = lambda: True,
    ) -> ClaimResult:
        """Take the job if nobody holds it, it is not finished, and no newer version is known."""
        for _ in range(CLAIM_WRITE_ROUNDS):
            item = self.get(job.key, job.pool)
            verdict = judge(item, job)
            if isinstance(verdict, AskSource):
                verdict = judge(item, job, source_is_newer=source_is_current())
            if isinstance(verdict, AlreadyFinished | Superseded | HeldElsewhere):
                return verdict
            claimed = self._claim_write(job, worker, message_id, lease_s, item)
            if claimed is not None:
                return claimed
        raise LeaseLostError(f"the ledger item of {job.key} [{job.pool}] keeps changing")

    def take_over(
        self, job: JobKey, worker: str, message_id: str, lease_s: float, observed: LedgerItem
    ) -> Claimed | None:
        """Take a job whose holder left ``observed.rvn`` unchanged for a whole lease."""
        return self._claim_write(job, worker, message_id, lease_s, observed)

    def signal_superseded(self, item: LedgerItem, newer_etag: str) -> None:
        """Tell the holder of an older version's job that a newer version waits.

        The record version is left alone: the holder sees the flag on its next renewal and
        stops; an observer's count is not reset by it.
        """
        # A failed condition means the holder finished or released meanwhile: the next
        # read says so.
        with contextlib.suppress(ClientError):
            self._write(
                item.key,
                item.pool,
                {"superseded_by": newer_etag},
                "#etag = :old AND #state = :running",
                {"old": item.etag, "running": State.RUNNING.value},
            )

    def _holder_write(
        self,
        lease: Lease,
        sets: Mapping[str, Any],
        *,
        add: Mapping[str, int] | None = None,
        return_new: bool = False,
    ) -> LedgerItem | None:
        job = lease.job
        try:
            return self._write(
                job.key,
                job.pool,
                sets,
                "#rvn = :rvn AND #worker = :me AND #etag = :etag AND #state = :running",
                {
                    "rvn": lease.rvn,
                    "me": lease.worker,
                    "etag": job.etag,
                    "running": State.RUNNING.value,
                },
                add=add,
                return_new=return_new,
            )
        except ClientError as exc:
            raise LeaseLostError(f"lease on {job.key} [{job.pool}] lost") from exc

    def renew(self, lease: Lease, progress: Mapping[str, float] | None = None) -> Lease:
        """Change the record version (proof of life); raises LeaseLostError.

        The renewed lease says whether a newer version asked this job to stop.
        """
        rvn = new_rvn()
        sets: dict[str, Any] = {"rvn": rvn}
        for name, value in (progress or {}).items():
            sets[name] = round(value, 2)
        item = self._holder_write(lease, sets, return_new=True)
        newer = item.superseded_by if item is not None else ""
        return replace(lease, rvn=rvn, superseded_by="" if newer == lease.job.etag else newer)

    def finish(self, lease: Lease, state: State, fields: Mapping[str, Any]) -> None:
        """Record the final state; only the holder can, and only while it holds the lease."""
        sets = {**fields, "state": state.value, "finished_at": self.clock(), "rvn": new_rvn()}
        self._holder_write(lease, sets)

    def release(
        self, lease: Lease, state: State, fields: Mapping[str, Any], *, failed: bool = False
    ) -> None:
        """Give the job back; ``failed`` spends one try of its retry budget."""
        sets = {**fields, "state": state.value, "rvn": new_rvn()}
        self._holder_write(lease, sets, add={"attempts": 1} if failed else None)

    def scan_items(self) -> list[LedgerItem]:
        """Every item (status views; the table holds one item per job)."""
        items: list[LedgerItem] = []
        kwargs: dict[str, Any] = {}
        while True:
            resp = self._call("ledger scan", self.ddb.scan, **kwargs)
            items.extend(LedgerItem.from_item(i) for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
