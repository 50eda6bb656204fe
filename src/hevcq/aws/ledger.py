"""The job ledger: one DynamoDB item per (source object, pool), guarded by conditional writes.

The item describes the job of the source's newest known version: its state, the worker that
holds it and a **record version number** (``rvn``) that the holder changes on every write.
Every write is conditional on the ``rvn`` it read (optimistic concurrency), so two workers
never both believe they hold a job.

Leases need no agreement between clocks (the pattern of AWS's DynamoDB Lock Client): the
holder renews by changing ``rvn`` at least every ``lease_s / RENEWALS_PER_LEASE`` seconds;
another worker may take the job over only after it has seen the same ``rvn`` unchanged for a
whole ``lease_s`` on its *own monotonic* clock (``hevcq.worker.lease.observe``). No wall-clock time
written by one machine is ever compared with another machine's clock; the wall-clock fields
(``started_at``, ``finished_at``) are for people only.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from hevcq.aws.clients import classify, error_code
from hevcq.errors import InterruptedJob

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# The holder renews this many times per lease: a few missed renewals (a slow or briefly
# unreachable endpoint) do not lose the lease.
RENEWALS_PER_LEASE = 4
# Optimistic-concurrency retries of one claim: each retry follows another writer's change.
CLAIM_ROUNDS = 5


class State(StrEnum):
    """Where a job stands."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    SUPERSEDED = "superseded"  # a newer version of the source replaced this job


FINISHED = frozenset({State.DONE, State.SKIPPED})


class LeaseLostError(InterruptedJob):
    """Another worker holds the job now, or we can no longer prove that we hold it."""


@dataclass(frozen=True)
class JobKey:
    """Identifies a job: one version of a source object, in one pool, with one settings hash."""

    key: str
    pool: str
    etag: str
    settings_hash: str
    version_id: str = ""  # the S3 VersionId, where the bucket keeps versions
    sequencer: str = ""  # the S3 event's sequencer: orders versions of one key

    @property
    def job_id(self) -> str:
        """A short stable id for logs and results."""
        raw = f"{self.key}\0{self.pool}\0{self.etag}\0{self.settings_hash}"
        if self.version_id:
            raw += f"\0{self.version_id}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def newer_sequencer(a: str, b: str) -> bool | None:
    """True when sequencer ``a`` is later than ``b``; None when they cannot be compared.

    S3 sequencers are hexadecimal strings, comparable for one key only; a shorter one is
    padded with zeros on the left (Amazon S3 User Guide, "Event message structure").
    """
    if not a or not b or a == b:
        return None
    width = max(len(a), len(b))
    return a.rjust(width, "0").upper() > b.rjust(width, "0").upper()


@dataclass(frozen=True)
class LedgerItem:
    """One ledger item, typed. ``from_item`` reads DynamoDB's attribute-value form."""

    key: str
    pool: str
    state: State
    etag: str = ""
    settings_hash: str = ""
    version_id: str = ""
    sequencer: str = ""
    job_id: str = ""
    worker: str = ""
    message_id: str = ""
    rvn: str = ""
    lease_s: float = 0.0
    attempts: int = 0  # failed tries of this version: the retry budget
    claims: int = 0
    superseded_by: str = ""  # a newer version waiting for this job to stop
    output_key: str | None = None
    output_etag: str | None = None  # the committed output under DONE/
    progress: float | None = None
    fps: float | None = None
    speed: float | None = None
    reason: str | None = None
    failure_class: str | None = None
    input_bytes: int | None = None
    output_bytes: int | None = None
    encode_s: float | None = None
    duration_s: float | None = None
    started_at: float | None = None
    finished_at: float | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> LedgerItem:
        """Parse a DynamoDB item (attribute values) or a plain dict of the same fields."""
        plain = {k: _plain(v) if isinstance(v, dict) else v for k, v in item.items()}
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in plain.items() if k in known and v is not None}
        values["key"] = str(plain.get("pk", plain.get("key", "")))
        values["pool"] = str(plain.get("sk", plain.get("pool", "")))
        values["state"] = State(plain.get("state", State.QUEUED.value))
        for name in ("attempts", "claims", "input_bytes", "output_bytes"):
            if name in values:
                values[name] = int(values[name])
        for name in ("etag", "settings_hash", "version_id", "sequencer", "job_id", "worker",
                     "message_id", "rvn", "superseded_by"):  # fmt: skip
            if name in values:
                values[name] = str(values[name])
        return cls(**values)

    def plain(self) -> dict[str, Any]:
        """The item as a plain dict with the table's key names (``pk``, ``sk``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["pk"], out["sk"] = out.pop("key"), out.pop("pool")
        out["state"] = self.state.value
        return out

    @property
    def finished(self) -> bool:
        """Done or skipped."""
        return self.state in FINISHED


@dataclass(frozen=True)
class Lease:
    """Proof of holding a job: the ``rvn`` we last wrote. Every holder write checks it."""

    job: JobKey
    worker: str
    rvn: str
    lease_s: float
    attempts: int = 0  # failed tries before this one
    output_etag: str | None = None  # the committed output when we claimed (the fence)
    superseded_by: str = ""  # a newer version is waiting: stop and release


@dataclass(frozen=True)
class Claimed:
    """We hold the job."""

    lease: Lease

    @property
    def attempt(self) -> int:
        """This try's number (1 for the first), counting failed tries only."""
        return self.lease.attempts + 1


@dataclass(frozen=True)
class AlreadyFinished:
    """The same source version was already done or skipped with the same settings."""

    item: LedgerItem

    @property
    def state(self) -> State:
        """Done or skipped."""
        return self.item.state


@dataclass(frozen=True)
class Superseded:
    """The ledger already knows a newer version of the source: this job is moot."""

    item: LedgerItem


@dataclass(frozen=True)
class HeldElsewhere:
    """Another worker holds the job (or an older version's job) under a lease."""

    item: LedgerItem
    same_job: bool  # the same version and settings, rather than an older one


ClaimResult = Claimed | AlreadyFinished | Superseded | HeldElsewhere


@dataclass(frozen=True)
class _Take:
    """A claim the judge allows."""


@dataclass(frozen=True)
class _AskSource:
    """The item holds another version and the order is unknown: ask the source (HEAD)."""


Judgement = _Take | _AskSource | AlreadyFinished | Superseded | HeldElsewhere


def judge(  # noqa: PLR0911 - one return per rule reads best
    item: LedgerItem | None, job: JobKey, *, source_is_newer: bool | None = None
) -> Judgement:
    """What a claim of ``job`` may do given the item as read (a pure function).

    ``source_is_newer`` answers ``_AskSource``: True when a fresh HEAD of the source, made
    after the item was read, still shows ``job``'s version (so ``job`` is at least as new).
    """
    if item is None:
        return _Take()
    if item.etag != job.etag or item.version_id != job.version_id:
        newer = newer_sequencer(job.sequencer, item.sequencer)
        if newer is None:
            newer = source_is_newer
        if newer is None:
            return _AskSource()
        if not newer:
            return Superseded(item)
        if item.state is State.RUNNING:
            return HeldElsewhere(item, same_job=False)
        return _Take()
    if item.superseded_by and item.superseded_by != job.etag:
        return Superseded(item)
    if item.state is State.RUNNING:
        return HeldElsewhere(item, same_job=item.settings_hash == job.settings_hash)
    if item.finished and item.settings_hash == job.settings_hash:
        return AlreadyFinished(item)
    return _Take()


class Ledger(Protocol):
    """What the worker needs from the ledger."""

    def get(self, key: str, pool: str) -> LedgerItem | None: ...
    def claim(
        self,
        job: JobKey,
        worker: str,
        message_id: str,
        lease_s: float,
        source_is_current: Callable[[], bool],
    ) -> ClaimResult: ...
    def take_over(
        self, job: JobKey, worker: str, message_id: str, lease_s: float, observed: LedgerItem
    ) -> Claimed | None: ...
    def signal_superseded(self, item: LedgerItem, newer_etag: str) -> None: ...
    def renew(self, lease: Lease, progress: Mapping[str, float] | None = None) -> Lease: ...
    def finish(self, lease: Lease, state: State, fields: Mapping[str, Any]) -> None: ...
    def release(
        self, lease: Lease, state: State, fields: Mapping[str, Any], *, failed: bool = False
    ) -> None: ...


def _attr(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(round(value, 3)) if isinstance(value, float) else str(value)}
    return {"S": str(value)}


def _plain(attr: Mapping[str, Any]) -> Any:
    if "S" in attr:
        return attr["S"]
    if "N" in attr:
        n = float(attr["N"])
        return int(n) if n.is_integer() else n
    if "BOOL" in attr:
        return attr["BOOL"]
    return None


def plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a plain dict."""
    return {k: _plain(v) for k, v in item.items()}


def new_rvn() -> str:
    """A fresh record version number."""
    return uuid.uuid4().hex


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
        attr_values = {f":set_{k}": _attr(v) for k, v in sets.items()}
        attr_values.update({f":add_{k}": _attr(v) for k, v in (add or {}).items()})
        attr_values.update({f":{k}": _attr(v) for k, v in values.items()})
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
            "state": State.RUNNING.value, "worker": worker, "message_id": message_id,
            "rvn": rvn, "lease_s": lease_s, "etag": job.etag, "settings_hash": job.settings_hash,
            "version_id": job.version_id, "sequencer": job.sequencer, "job_id": job.job_id,
            "attempts": attempts, "started_at": self.clock(), "progress": 0,
            "reason": None, "failure_class": None, "superseded_by": "",
        }  # fmt: skip
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
        for _ in range(CLAIM_ROUNDS):
            item = self.get(job.key, job.pool)
            verdict = judge(item, job)
            if isinstance(verdict, _AskSource):
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
                item.key, item.pool, {"superseded_by": newer_etag},
                "#etag = :old AND #state = :running",
                {"old": item.etag, "running": State.RUNNING.value},
            )  # fmt: skip

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
                job.key, job.pool, sets,
                "#rvn = :rvn AND #worker = :me AND #etag = :etag AND #state = :running",
                {"rvn": lease.rvn, "me": lease.worker, "etag": job.etag,
                 "running": State.RUNNING.value},
                add=add, return_new=return_new,
            )  # fmt: skip
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

    def scan_all(self) -> list[dict[str, Any]]:
        """Every item as a plain dict (status views; the table holds one item per job)."""
        return [i.plain() for i in self.scan_items()]

    def scan_items(self) -> list[LedgerItem]:
        """Every item, typed."""
        items: list[LedgerItem] = []
        kwargs: dict[str, Any] = {}
        while True:
            resp = self._call("ledger scan", self.ddb.scan, **kwargs)
            items.extend(LedgerItem.from_item(i) for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
