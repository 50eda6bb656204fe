"""The job ledger: the typed item (one per source object and pool, guarded by conditional
writes), job keys, the ``LedgerReader`` and ``Ledger`` protocols, and the rules of every
write (claim, take over, renew, finish, release, supersede) as pure functions over
``LedgerItem``. ``RuleLedger`` runs those rules over any store that writes conditionally:
DynamoDB (``hevcq.aws.ledger``) translates each ``Write`` into one conditional UpdateItem,
and the tests' in-memory ledger applies it under a lock.

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

import hashlib
import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, Protocol

from hevcq.errors import InterruptedJob

# The holder renews this many times per lease: a few missed renewals (a slow or briefly
# unreachable endpoint) do not lose the lease.
RENEWALS_PER_LEASE = 4
# Optimistic-concurrency retries of one claim: each retry follows another writer's change.
CLAIM_WRITE_ROUNDS = 5


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
TERMINAL = FINISHED | {State.FAILED}  # no worker changes these; a redrive may


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


# A finished job's steps, each timed by the worker and kept on its item.
PHASES = ("download_s", "probe_s", "encode_s", "verify_s", "upload_s")
# What a finished job measured of its output (a pool with a quality target): its VMAF
# (mean, worst 1 %, model, NEG) or its XPSNR (pooled, worst 1 %), the CRF it was encoded at
# and the size the CRF search predicted. Written with every finish, cleared when another
# version is claimed.
QUALITY = (
    "vmaf",
    "vmaf_low",
    "vmaf_model",
    "vmaf_neg",
    "xpsnr",
    "xpsnr_low",
    "crf",
    "predicted_bytes",
)
# A running job's step (``LedgerItem.step``) where its encode's progress says nothing:
# before the encode (a quality target's CRF search, a per-title ladder's probes), during
# it, and after it (verifying the output and measuring its quality, which can take a
# minute at 100 %).
SEARCHING = "searching"
ENCODING = "encoding"
VERIFYING = "verifying"
STEPS = (SEARCHING, ENCODING, VERIFYING)
HISTORY_KEPT = 20  # earlier versions an item remembers; older ones are dropped


@dataclass(frozen=True, kw_only=True)
class PastVersion:
    """An earlier version (or settings) of a job's source, as its item last recorded it."""

    etag: str
    settings_hash: str
    state: str
    finished_at: float | None = None
    output_etag: str | None = None
    reason: str | None = None


def _history(raw: object) -> tuple[PastVersion, ...]:
    """The item's ``history`` attribute (a JSON list); anything unreadable is no history."""
    if not isinstance(raw, str) or not raw:
        return ()
    try:
        entries = json.loads(raw)
        return tuple(PastVersion(**e) for e in entries if isinstance(e, dict))
    except (ValueError, TypeError):
        return ()


def history_after(item: LedgerItem) -> tuple[PastVersion, ...]:
    """The item's history once its version gives way to another, newest first."""
    past = PastVersion(
        etag=item.etag,
        settings_hash=item.settings_hash,
        state=item.state.value,
        finished_at=item.finished_at,
        output_etag=item.output_etag,
        reason=item.reason,
    )
    return (past, *item.history)[:HISTORY_KEPT]


def history_json(history: tuple[PastVersion, ...]) -> str:
    """The ``history`` attribute as stored: a JSON list."""
    return json.dumps([asdict(v) for v in history], separators=(",", ":"))


@dataclass(frozen=True, kw_only=True)
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
    # An output copied from another pool's identical encode: that output's key and ETag.
    copied_from: str | None = None
    copied_from_etag: str | None = None
    progress: float | None = None
    # What a running job is doing where its encode's progress says nothing (``STEPS``);
    # None for a job that reported none.
    step: str | None = None
    step_at: float | None = None  # when the step began, on the worker's wall clock
    probe: int | None = None  # while searching: the probe encode running (1, 2, ...)
    probe_done: float | None = None  # while searching: the percent of that probe done
    fps: float | None = None
    speed: float | None = None
    reason: str | None = None
    failure_class: str | None = None
    input_bytes: int | None = None
    output_bytes: int | None = None
    # Wall seconds of a finished job's steps (PHASES): where its time went.
    download_s: float | None = None
    probe_s: float | None = None
    encode_s: float | None = None
    verify_s: float | None = None
    upload_s: float | None = None
    duration_s: float | None = None
    vmaf: float | None = None
    vmaf_low: float | None = None
    vmaf_model: str | None = None
    vmaf_neg: float | None = None
    xpsnr: float | None = None
    xpsnr_low: float | None = None
    crf: int | None = None
    predicted_bytes: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    # Earlier versions (or settings) of this source in this pool, newest first.
    history: tuple[PastVersion, ...] = ()

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> LedgerItem:
        """Parse a DynamoDB item (attribute values) or a plain dict of the same fields."""
        plain = {k: _plain(v) if isinstance(v, dict) else v for k, v in item.items()}
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in plain.items() if k in known and v is not None}
        values["key"] = str(plain.get("pk", plain.get("key", "")))
        values["pool"] = str(plain.get("sk", plain.get("pool", "")))
        values["state"] = State(plain.get("state", State.QUEUED.value))
        values["history"] = _history(plain.get("history"))
        for name in ("attempts", "claims", "input_bytes", "output_bytes", "crf", "predicted_bytes"):
            if name in values:
                values[name] = int(values[name])
        try:  # shown to people while a job runs: a number, or nothing
            values["probe"] = int(values["probe"]) if "probe" in values else None
        except (TypeError, ValueError):
            values.pop("probe")
        try:  # weighs the time left while a job runs: a number, or nothing
            if "probe_done" in values:
                values["probe_done"] = float(values["probe_done"])
        except (TypeError, ValueError):
            values.pop("probe_done")
        for name in (
            "etag",
            "settings_hash",
            "version_id",
            "sequencer",
            "job_id",
            "worker",
            "message_id",
            "rvn",
            "superseded_by",
        ):
            if name in values:
                values[name] = str(values[name])
        return cls(**values)

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
class Take:
    """A claim the judge allows."""


@dataclass(frozen=True)
class AskSource:
    """The item holds another version and the order is unknown: ask the source (HEAD)."""


Judgement = Take | AskSource | AlreadyFinished | Superseded | HeldElsewhere


def judge(  # noqa: PLR0911 - one return per rule reads best
    item: LedgerItem | None, job: JobKey, *, source_is_newer: bool | None = None
) -> Judgement:
    """What a claim of ``job`` may do given the item as read (a pure function).

    ``source_is_newer`` answers ``AskSource``: True when a fresh HEAD of the source, made
    after the item was read, still shows ``job``'s version (so ``job`` is at least as new).
    """
    if item is None:
        return Take()
    if item.etag != job.etag or item.version_id != job.version_id:
        newer = newer_sequencer(job.sequencer, item.sequencer)
        if newer is None:
            newer = source_is_newer
        if newer is None:
            return AskSource()
        if not newer:
            return Superseded(item)
        if item.state is State.RUNNING:
            return HeldElsewhere(item, same_job=False)
        return Take()
    if item.superseded_by and item.superseded_by != job.etag:
        return Superseded(item)
    if item.state is State.RUNNING:
        return HeldElsewhere(item, same_job=item.settings_hash == job.settings_hash)
    if item.finished and item.settings_hash == job.settings_hash:
        return AlreadyFinished(item)
    return Take()


def finished_version(item: LedgerItem | None, etag: str) -> bool:
    """Whether a pool finished (done or skipped) the job of the source version ``etag``.

    The one rule behind letting a source go: the ``raw: delete-when-settled`` policy and a
    fetch's ``--cleanup`` both ask it. An empty ``etag`` (a result naming no version)
    matches any version.
    """
    return item is not None and item.state in FINISHED and (not etag or item.etag == etag)


class LedgerReader(Protocol):
    """Reads one job's item (one item per source key and pool); the web and fetch need no more."""

    def get(self, key: str, pool: str) -> LedgerItem | None: ...


class Ledger(LedgerReader, Protocol):
    """What the worker needs from the ledger: reads, claims, leases and settling."""

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
    def renew(self, lease: Lease, progress: Mapping[str, float | str] | None = None) -> Lease: ...
    def finish(self, lease: Lease, state: State, fields: Mapping[str, Any]) -> None: ...
    def release(
        self, lease: Lease, state: State, fields: Mapping[str, Any], *, failed: bool = False
    ) -> None: ...


def to_attribute(value: Any) -> dict[str, Any]:
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


def new_rvn() -> str:
    """A fresh record version number."""
    return uuid.uuid4().hex


# ---- The rules of every write, as pure functions over LedgerItem ----------------------

# The item's fields a write may set; ``key`` and ``pool`` name the item and never change.
WRITABLE = frozenset(f.name for f in fields(LedgerItem)) - {"key", "pool"}
COUNTERS = frozenset({"attempts", "claims"})


@dataclass(frozen=True)
class Expect:
    """What the item must be for a write to apply, checked atomically where it is stored.

    ``absent``: there is no item yet. ``rvn`` ``""`` means an item written before record
    versions existed (it has none). Fields left ``None`` are not checked.
    """

    absent: bool = False
    rvn: str | None = None
    worker: str | None = None
    etag: str | None = None
    state: State | None = None

    def holds(self, item: LedgerItem | None) -> bool:
        """Whether the stored ``item`` (None: no item) meets this expectation."""
        if self.absent or item is None:
            return self.absent and item is None
        wanted = (self.rvn, self.worker, self.etag, self.state)
        found = (item.rvn, item.worker, item.etag, item.state)
        return all(w is None or w == f for w, f in zip(wanted, found, strict=True))


@dataclass(frozen=True)
class Write:
    """One conditional write of one item: when ``expect`` holds, ``sets`` replace those
    fields and ``adds`` are added to the counters; otherwise nothing changes."""

    key: str
    pool: str
    expect: Expect
    sets: Mapping[str, object]
    adds: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = (set(self.sets) - WRITABLE) | (set(self.adds) - COUNTERS)
        if unknown:
            raise ValueError(f"a ledger write names no field of the item: {sorted(unknown)}")

    def apply(self, item: LedgerItem | None) -> LedgerItem | None:
        """The item after this write, or None when ``expect`` does not hold (pure)."""
        if not self.expect.holds(item):
            return None
        base = item or LedgerItem(key=self.key, pool=self.pool, state=State.QUEUED)
        counted = {name: getattr(base, name) + n for name, n in self.adds.items()}
        return replace(base, **{**self.sets, **counted})


def _carries_budget(read: LedgerItem | None, job: JobKey) -> bool:
    """The retry budget carries over only while the same version is retried: a new
    version, new settings or a redriven failure start afresh."""
    return (
        read is not None
        and (read.etag, read.settings_hash) == (job.etag, job.settings_hash)
        and read.state in (State.QUEUED, State.INTERRUPTED, State.RUNNING)
    )


def claim_write(
    read: LedgerItem | None,
    job: JobKey,
    *,
    worker: str,
    message_id: str,
    lease_s: float,
    now: float,
    rvn: str,
) -> Write:
    """Write ``worker`` in as the holder of ``job``, if the item is still as ``read``."""
    attempts = read.attempts if read is not None and _carries_budget(read, job) else 0
    sets: dict[str, object] = {
        "state": State.RUNNING,
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
        "started_at": now,
        "progress": 0.0,
        "step": None,
        "step_at": None,
        "probe": None,
        "probe_done": None,
        "reason": None,
        "failure_class": None,
        "superseded_by": "",
    }
    if read is not None and (read.etag, read.settings_hash) != (job.etag, job.settings_hash):
        # Another version or other settings: the item remembers what the last one did.
        sets["history"] = history_after(read)
        sets.update(dict.fromkeys(PHASES))
        sets.update(dict.fromkeys(QUALITY))
    expect = Expect(absent=True) if read is None else Expect(rvn=read.rvn)
    return Write(job.key, job.pool, expect, sets, {"claims": 1})


def claimed(read: LedgerItem | None, job: JobKey, worker: str, rvn: str, lease_s: float) -> Claimed:
    """The lease a successful ``claim_write`` gives: its fence is the output ``read`` named."""
    attempts = read.attempts if read is not None and _carries_budget(read, job) else 0
    output_etag = read.output_etag if read is not None else None
    return Claimed(Lease(job, worker, rvn, lease_s, attempts, output_etag))


def supersede_write(item: LedgerItem, newer_etag: str) -> Write:
    """Tell the holder of an older version's job that a newer version waits.

    The record version is left alone: the holder sees the flag on its next renewal and
    stops, and an observer's count is not reset by it.
    """
    expect = Expect(etag=item.etag, state=State.RUNNING)
    return Write(item.key, item.pool, expect, {"superseded_by": newer_etag})


def holder_expect(lease: Lease) -> Expect:
    """What every holder write requires: the item is still the one this lease last wrote."""
    return Expect(rvn=lease.rvn, worker=lease.worker, etag=lease.job.etag, state=State.RUNNING)


def renew_write(lease: Lease, progress: Mapping[str, float | str] | None, rvn: str) -> Write:
    """Change the record version (proof of life), with the job's progress (numbers, and
    the step it is at)."""
    sets: dict[str, object] = {"rvn": rvn}
    for name, value in (progress or {}).items():
        sets[name] = value if isinstance(value, str) else round(value, 2)
    return Write(lease.job.key, lease.job.pool, holder_expect(lease), sets)


def renewed(lease: Lease, rvn: str, after: LedgerItem) -> Lease:
    """The lease after a renewal: it says whether a newer version asked the job to stop."""
    newer = after.superseded_by
    return replace(lease, rvn=rvn, superseded_by="" if newer == lease.job.etag else newer)


def finish_write(
    lease: Lease, state: State, outcome: Mapping[str, object], *, now: float, rvn: str
) -> Write:
    """Record the final state; only the holder can, and only while it holds the lease."""
    sets = {**outcome, "state": state, "finished_at": now, "rvn": rvn}
    return Write(lease.job.key, lease.job.pool, holder_expect(lease), sets)


def release_write(
    lease: Lease, state: State, outcome: Mapping[str, object], *, rvn: str, failed: bool
) -> Write:
    """Give the job back; ``failed`` spends one try of its retry budget."""
    sets = {**outcome, "state": state, "rvn": rvn}
    adds = {"attempts": 1} if failed else {}
    return Write(lease.job.key, lease.job.pool, holder_expect(lease), sets, adds)


class RuleLedger(ABC):
    """The ledger's rules over a store that writes conditionally.

    A store reads one item consistently (``get``), applies one ``Write`` atomically
    (``write``: the item after it, or None when its expectation failed) and lists every
    item (``scan_items``). ``clock`` is wall-clock time, written for people
    (``started_at``, ``finished_at``) and never compared with anything.
    """

    clock: Callable[[], float] = time.time

    @abstractmethod
    def get(self, key: str, pool: str) -> LedgerItem | None:
        """One item, read consistently."""

    @abstractmethod
    def write(self, write: Write) -> LedgerItem | None:
        """Apply ``write`` atomically: the item after it, or None when ``expect`` failed."""

    @abstractmethod
    def scan_items(self) -> list[LedgerItem]:
        """Every item (status views; the table holds one item per job)."""

    def get_many(self, jobs: Iterable[tuple[str, str]]) -> list[LedgerItem]:
        """The items of these (source key, pool) jobs that exist, not read consistently:
        what a view of a run's own jobs reads instead of scanning the whole table."""
        return [item for key, pool in jobs if (item := self.get(key, pool)) is not None]

    def _claim_write(
        self, job: JobKey, worker: str, message_id: str, lease_s: float, read: LedgerItem | None
    ) -> Claimed | None:
        rvn = new_rvn()
        write = claim_write(
            read,
            job,
            worker=worker,
            message_id=message_id,
            lease_s=lease_s,
            now=self.clock(),
            rvn=rvn,
        )
        if self.write(write) is None:
            return None  # someone wrote in between: read again
        return claimed(read, job, worker, rvn, lease_s)

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
            taken = self._claim_write(job, worker, message_id, lease_s, item)
            if taken is not None:
                return taken
        raise LeaseLostError(f"the ledger item of {job.key} [{job.pool}] keeps changing")

    def take_over(
        self, job: JobKey, worker: str, message_id: str, lease_s: float, observed: LedgerItem
    ) -> Claimed | None:
        """Take a job whose holder left ``observed.rvn`` unchanged for a whole lease."""
        return self._claim_write(job, worker, message_id, lease_s, observed)

    def signal_superseded(self, item: LedgerItem, newer_etag: str) -> None:
        """Ask the holder of an older version's job to stop (``supersede_write``).

        A failed expectation means the holder finished or released meanwhile: the next
        read says so.
        """
        self.write(supersede_write(item, newer_etag))

    def _holder_write(self, lease: Lease, write: Write) -> LedgerItem:
        after = self.write(write)
        if after is None:
            raise LeaseLostError(f"lease on {lease.job.key} [{lease.job.pool}] lost")
        return after

    def renew(self, lease: Lease, progress: Mapping[str, float | str] | None = None) -> Lease:
        """Change the record version (proof of life); raises LeaseLostError."""
        rvn = new_rvn()
        return renewed(lease, rvn, self._holder_write(lease, renew_write(lease, progress, rvn)))

    def finish(self, lease: Lease, state: State, fields: Mapping[str, Any]) -> None:
        """Record the final state; raises LeaseLostError when the lease is no longer ours."""
        self._holder_write(
            lease, finish_write(lease, state, fields, now=self.clock(), rvn=new_rvn())
        )

    def release(
        self, lease: Lease, state: State, fields: Mapping[str, Any], *, failed: bool = False
    ) -> None:
        """Give the job back; ``failed`` spends one try of its retry budget."""
        self._holder_write(lease, release_write(lease, state, fields, rvn=new_rvn(), failed=failed))
