"""The ``raw: delete-when-settled`` policy: drop a source once the farm is finished with it.

A source is settled when every pool's ledger item is done or skipped *for the object's
current ETag*, and every done pool's output exists. A running, queued, interrupted or
failed pool, or a pool with no item yet, keeps the source: a failed job may be redriven,
and a held job still reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import structlog

from hevcq.ledger import FINISHED, TERMINAL, LedgerItem, LedgerReader, State, finished_version
from hevcq.objects import ObjectInfo, ObjectStore

log = structlog.get_logger()


@dataclass(frozen=True)
class Verdict:
    """Whether a source may go, and if not, why."""

    settled: bool
    reason: str


def verdict(
    source: ObjectInfo, items: Mapping[str, LedgerItem | None], outputs: Iterable[str]
) -> Verdict:
    """Pure: is the source settled by every pool? ``outputs`` are the output keys present."""
    present = set(outputs)
    for pool, item in sorted(items.items()):
        if item is None or not finished_version(item, source.etag):
            return Verdict(False, f"{pool}: {_unsettled(item)}")
        out = item.output_key
        if item.state is State.DONE and (not out or out not in present):
            return Verdict(False, f"{pool}: output missing")
    return Verdict(True, "every pool settled")


def _unsettled(item: LedgerItem | None) -> str:
    """Why a pool's item does not settle the source."""
    if item is None:
        return "no job yet"
    if item.state not in FINISHED:
        return item.state.value
    return "settled an older version"


def in_flight(
    source: ObjectInfo | None, items: Mapping[str, LedgerItem | None], expired: bool
) -> bool:
    """Pure: does an upload still count against its owner's quota?

    Until every pool has ended its job on the current version (done, skipped or failed:
    no worker will touch it again unless an operator redrives it), yes. With no source,
    only while its presigned POST may still be used (``expired`` is False) and not every
    pool has ended a job on it (the raw policy deleted it).
    """
    ended = all(i is not None and i.state in TERMINAL for i in items.values())
    if source is None:
        return not expired and not ended
    return not (ended and all(i is not None and i.etag == source.etag for i in items.values()))


def settle_raw(store: ObjectStore, ledger: LedgerReader, key: str, pools: Iterable[str]) -> Verdict:
    """Delete ``key`` when every pool settled it; the one call the policy makes."""
    source = store.head(key)
    if source is None:
        return Verdict(False, "source already gone")
    items = {pool: ledger.get(key, pool) for pool in pools}
    outs = [i.output_key for i in items.values() if i and i.output_key]
    v = verdict(source, items, [o for o in outs if store.head(o) is not None])
    if not v.settled:
        return v
    # The ETag again right before deleting: a new upload to the same key starts over.
    again = store.head(key)
    if again is None or again.etag != source.etag:
        return Verdict(False, "source changed")
    store.delete(key)
    log.info("raw_deleted", key=key)
    return v
