"""Hand-written fakes implementing hevcq's Protocols (queue, store, ledger, runner, publisher)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hevcq.errors import (
    CopySourceChanged,
    FailureClass,
    LostMessageError,
    SupersededJob,
    WriteConflict,
)
from hevcq.ledger import LedgerItem, RuleLedger, Write
from hevcq.messages import JobResult
from hevcq.objects import ObjectInfo
from hevcq.queue import Received
from hevcq.worker.runner import JobContext, JobSpec

_ids = itertools.count(1)


@dataclass
class FakeQueue:
    """Records every queue action; ``extend`` can be made to fail."""

    inbox: list[Received] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    released: list[tuple[str, int]] = field(default_factory=list)
    extended: list[tuple[str, int]] = field(default_factory=list)
    dead: list[tuple[str, FailureClass, str]] = field(default_factory=list)
    lose_receipt_after: int | None = None

    def put(self, body: str, receive_count: int = 1, message_id: str | None = None) -> Received:
        msg = Received(
            message_id=message_id or f"m{next(_ids)}",
            body=body,
            receipt=f"r{next(_ids)}",
            receive_count=receive_count,
            received_at=time.monotonic(),
        )
        self.inbox.append(msg)
        return msg

    def receive(self, wait_s: int) -> Received | None:
        return self.inbox.pop(0) if self.inbox else None

    def extend(self, msg: Received, timeout_s: int) -> None:
        if self.lose_receipt_after is not None and len(self.extended) >= self.lose_receipt_after:
            raise LostMessageError("ReceiptHandleIsInvalid")
        self.extended.append((msg.message_id, timeout_s))

    def release(self, msg: Received, delay_s: int) -> None:
        self.released.append((msg.message_id, delay_s))

    def delete(self, msg: Received) -> None:
        self.deleted.append(msg.message_id)

    def dead_letter(self, msg: Received, failure_class: FailureClass, reason: str) -> None:
        self.dead.append((msg.message_id, failure_class, reason))

    def settled(self, msg: Received) -> str:
        """How the message ended: deleted, released, dead or untouched."""
        mid = msg.message_id
        if any(d[0] == mid for d in self.dead):
            return "dead"
        if mid in self.deleted:
            return "deleted"
        if any(r[0] == mid for r in self.released):
            return "released"
        return "untouched"


@dataclass
class FakeStore:
    """A bucket in memory (key -> info, bytes) implementing ``store.ObjectStore``.

    Every call that reads or writes is recorded (heads, downloads with what the caller
    already knew, ranged reads, uploads, copies, deletions); a key in ``fail`` makes a
    download, a ranged read or an upload of it raise that error; an object added without
    bytes reads as zeros.
    """

    objects: dict[str, ObjectInfo] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    fail: dict[str, Exception] = field(default_factory=dict)
    heads: list[str] = field(default_factory=list)
    downloads: list[tuple[str, ObjectInfo | None]] = field(default_factory=list)  # (key, known)
    ranges: list[tuple[int, int]] = field(default_factory=list)  # (start, length) read
    range_bytes: int = 0
    uploads: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    copies: list[tuple[str, str]] = field(default_factory=list)  # (source, key) copied
    gets: list[str] = field(default_factory=list)  # small objects read (records)
    lists: list[str] = field(default_factory=list)  # prefixes listed

    def add(
        self,
        key: str,
        etag: str = "etag1",
        size: int = 1000,
        data: bytes | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> None:
        if data is not None:
            self.data[key], size = data, len(data)
        self.objects[key] = ObjectInfo(key, size, etag, dict(meta or {}))

    def head(self, key: str) -> ObjectInfo | None:
        self.heads.append(key)
        return self.objects.get(key)

    def _check(self, key: str, etag: str | None) -> ObjectInfo:
        if key in self.fail:
            raise self.fail[key]
        info = self.objects.get(key)
        if info is None or (etag and info.etag != etag):
            raise SupersededJob(f"{key} is no longer version {etag}")
        return info

    def download(
        self,
        key: str,
        dest: Path,
        *,
        etag: str | None = None,
        version_id: str | None = None,
        known: ObjectInfo | None = None,
    ) -> ObjectInfo:
        self.downloads.append((key, known))
        info = self._check(key, etag)
        dest.write_bytes(self.data.get(key, b"\0" * info.size))
        return info

    def read_range(self, key: str, start: int, length: int, etag: str | None = None) -> bytes:
        info = self._check(key, etag)
        self.ranges.append((start, length))
        data = self.data.get(key, b"\0" * info.size)[start : start + length]
        self.range_bytes += len(data)
        return data

    def upload(
        self,
        src: Path,
        key: str,
        metadata: dict[str, str],
        progress: Callable[[int], None] | None = None,
    ) -> ObjectInfo:
        if key in self.fail:
            raise self.fail[key]
        self.uploads.append(key)
        etag = f"out-{key}-{len(self.uploads)}"
        self.objects[key] = ObjectInfo(key, src.stat().st_size, etag, dict(metadata))
        self.data[key] = src.read_bytes()
        if progress:  # in two parts, as a transfer reports them
            size = src.stat().st_size
            progress(size // 2)
            progress(size - size // 2)
        return self.objects[key]

    def put_if(
        self, src: Path, key: str, metadata: dict[str, str], *, expect: str | None
    ) -> ObjectInfo:
        current = self.objects.get(key)
        if (current.etag if current else None) != expect:
            raise WriteConflict(f"{key} changed since it was read")
        return self.upload(src, key, metadata)

    def copy_if(
        self,
        source: str,
        source_etag: str,
        key: str,
        metadata: dict[str, str],
        *,
        expect: str | None,
    ) -> ObjectInfo:
        """S3's CopyObject with ``x-amz-copy-source-if-match`` and a conditional write."""
        if key in self.fail:
            raise self.fail[key]
        src = self.objects.get(source)
        if src is None or src.etag != source_etag:
            raise CopySourceChanged(f"{source} is gone or no longer {source_etag}")
        current = self.objects.get(key)
        if (current.etag if current else None) != expect:
            raise WriteConflict(f"{key} changed since it was read")
        self.copies.append((source, key))
        # A single-part copy's ETag is the MD5 of the bytes: the source's own ETag.
        self.objects[key] = ObjectInfo(key, src.size, src.etag, dict(metadata))
        self.data[key] = self.data.get(source, b"\0" * src.size)
        return self.objects[key]

    def delete_if(self, key: str, etag: str) -> bool:
        current = self.objects.get(key)
        if current is None or current.etag != etag:
            return False
        del self.objects[key]
        return True

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        self.objects.pop(key, None)
        self.data.pop(key, None)

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None:
        self.add(key, etag=f"rec-{len(self.objects)}", data=body)

    def get_bytes(self, key: str) -> bytes | None:
        self.gets.append(key)
        return self.data.get(key) if key in self.objects else None

    def list_keys(self, prefix: str) -> list[str]:
        self.lists.append(prefix)
        return sorted(k for k in self.objects if k.startswith(prefix))

    def list_page(self, prefix: str, *, start_after: str | None, max_keys: int) -> list[str]:
        self.lists.append(prefix)
        keys = sorted(k for k in self.objects if k.startswith(prefix))
        return [k for k in keys if start_after is None or k > start_after][:max_keys]

    def presign_get(self, key: str, ttl_s: int) -> str:
        return f"https://fake.test/{key}?ttl={ttl_s}"

    def presign_post(
        self, key: str, fields: dict[str, str], conditions: list[Any], ttl_s: int
    ) -> tuple[str, dict[str, str]]:
        return "https://fake.test/", {**fields, "key": key}

    def reads(self) -> int:
        """Every read so far: HEADs, record reads and listings."""
        return len(self.heads) + len(self.gets) + len(self.lists)


@dataclass
class FakePublisher:
    """Collects published results."""

    results: list[JobResult] = field(default_factory=list)

    def publish(self, result: JobResult) -> None:
        self.results.append(result)


@dataclass
class ScriptedRunner:
    """A runner whose behaviour is a function of the spec and context."""

    behaviour: Callable[[JobSpec, JobContext], JobResult]
    calls: list[JobSpec] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)

    def run(self, spec: JobSpec, ctx: JobContext) -> JobResult:
        self.calls.append(spec)
        self.started.set()
        return self.behaviour(spec, ctx)


def done_result(spec: JobSpec, **kw: object) -> JobResult:
    """A successful result for a spec."""
    return JobResult(
        job_id=spec.job.job_id,
        pool=spec.pool.name,
        bucket=spec.bucket,
        source_key=spec.job.key,
        source_etag=spec.job.etag,
        outcome="done",
        output_key=spec.output_key,
        settings_hash=spec.job.settings_hash,
        **kw,
    )


class FastClock:
    """A monotonic clock running ``speed`` times faster than real time."""

    def __init__(self, speed: float = 1000.0) -> None:
        self._m0 = time.monotonic()
        self.speed = speed

    def __call__(self) -> float:
        return self._m0 + (time.monotonic() - self._m0) * self.speed


@dataclass
class MemoryLedger(RuleLedger):
    """The ledger in memory: ``hevcq.ledger``'s rules applied under a lock.

    A real second implementation of the ledger, not a mock: every claim, takeover,
    renewal and finish is the rules' code (``RuleLedger``), and each ``Write`` is applied
    by its own pure ``apply``, atomically, as DynamoDB applies the translated write.
    ``put`` seeds an item as a test needs it.
    """

    items: dict[tuple[str, str], LedgerItem] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    clock: Callable[[], float] = field(default=time.time)
    gets: int = 0  # items read one by one

    def get(self, key: str, pool: str) -> LedgerItem | None:
        with self.lock:
            self.gets += 1
            return self.items.get((key, pool))

    def write(self, write: Write) -> LedgerItem | None:
        with self.lock:
            after = write.apply(self.items.get((write.key, write.pool)))
            if after is not None:
                self.items[(write.key, write.pool)] = after
            return after

    def scan_items(self) -> list[LedgerItem]:
        with self.lock:
            return list(self.items.values())

    def put(self, item: LedgerItem) -> None:
        """Seed (or overwrite) an item, as a test's starting point."""
        with self.lock:
            self.items[(item.key, item.pool)] = item

    def change(self, key: str, pool: str, **fields: Any) -> None:
        """Change an item's fields behind every worker's back (another writer, a test's fault)."""
        with self.lock:
            self.items[(key, pool)] = replace(self.items[(key, pool)], **fields)


def present(item: LedgerItem | None) -> LedgerItem:
    """The item a test expects to be in the ledger."""
    assert item is not None, "no ledger item"
    return item
