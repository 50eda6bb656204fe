"""The ledger's rules and their DynamoDB translation agree.

Each case is a stored item and one write made by a rule of ``hevcq.ledger``. The write is
applied twice: by its own pure ``apply`` (what the in-memory ledger does) and by
``DynamoLedger``, which turns it into one conditional UpdateItem that moto's DynamoDB
evaluates. Both must refuse it, or both must leave the same item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import fields, replace

import pytest
from moto import mock_aws

from hevcq.aws.clients import Clients
from hevcq.aws.ledger import DynamoLedger, stored
from hevcq.aws.provision import _create_ledger
from hevcq.ledger import (
    JobKey,
    Lease,
    LedgerItem,
    PastVersion,
    State,
    Write,
    claim_write,
    finish_write,
    release_write,
    renew_write,
    supersede_write,
)
from tests.fakes import MemoryLedger

JOB = JobKey("TODO/a.mp4", "hevc", "etag1", "hash1", sequencer="0A")
V2 = JobKey("TODO/a.mp4", "hevc", "etag2", "hash1", sequencer="0B")
NOW = 1_000_000.0
HELD = LedgerItem(
    key=JOB.key,
    pool=JOB.pool,
    state=State.RUNNING,
    etag=JOB.etag,
    settings_hash=JOB.settings_hash,
    worker="w1",
    rvn="r1",
    lease_s=60,
    attempts=1,
    claims=2,
    progress=40,
    history=(PastVersion(etag="etag0", settings_hash="hash1", state="done"),),
)
LEASE = Lease(JOB, "w1", "r1", 60, attempts=1)


def _claim(read: LedgerItem | None, job: JobKey = JOB) -> Write:
    return claim_write(read, job, worker="w2", message_id="m2", lease_s=60, now=NOW, rvn="n1")


OUTCOME = {
    "output_key": "DONE/hevc/a.mp4",
    "output_etag": "out1",
    "input_bytes": 1000,
    "output_bytes": 400,
    "encode_s": 12.5,
    "reason": None,
    "progress": 100,
}

CASES: dict[str, tuple[LedgerItem | None, Callable[[], Write]]] = {
    "a first claim": (None, lambda: _claim(None)),
    "a first claim where an item appeared": (HELD, lambda: _claim(None)),
    "a claim of the item as read": (
        replace(HELD, state=State.QUEUED),
        lambda: _claim(replace(HELD, state=State.QUEUED)),
    ),
    "a claim of an item changed since it was read": (
        replace(HELD, rvn="r2"),
        lambda: _claim(HELD),
    ),
    "a claim of an item from before record versions": (
        replace(HELD, rvn="", state=State.INTERRUPTED),
        lambda: _claim(replace(HELD, rvn="", state=State.INTERRUPTED)),
    ),
    "a claim of a newer version (history, phases cleared)": (
        replace(HELD, state=State.DONE, encode_s=9.0, output_etag="out0"),
        lambda: _claim(replace(HELD, state=State.DONE, encode_s=9.0, output_etag="out0"), V2),
    ),
    "a take-over of a failed job (a fresh budget)": (
        replace(HELD, state=State.FAILED, attempts=3),
        lambda: _claim(replace(HELD, state=State.FAILED, attempts=3)),
    ),
    "a renewal by the holder": (HELD, lambda: renew_write(LEASE, {"progress": 55.123}, "n1")),
    "a renewal saying the job searches": (
        HELD,
        lambda: renew_write(LEASE, {"progress": 0.0, "step": "searching"}, "n1"),
    ),
    "a take-over of a job that was searching (its step cleared)": (
        replace(HELD, state=State.INTERRUPTED, step="searching", step_at=5.0),
        lambda: _claim(replace(HELD, state=State.INTERRUPTED, step="searching", step_at=5.0)),
    ),
    "a renewal after a take-over": (
        replace(HELD, worker="w2", rvn="r7"),
        lambda: renew_write(LEASE, None, "n1"),
    ),
    "a renewal of an item another worker wrote at the same rvn": (
        replace(HELD, worker="w2"),
        lambda: renew_write(LEASE, None, "n1"),
    ),
    "a renewal of another version's item": (
        replace(HELD, etag="etag2"),
        lambda: renew_write(LEASE, None, "n1"),
    ),
    "a renewal of a finished item": (
        replace(HELD, state=State.DONE),
        lambda: renew_write(LEASE, None, "n1"),
    ),
    "a finish by the holder": (
        HELD,
        lambda: finish_write(LEASE, State.DONE, OUTCOME, now=NOW, rvn="n1"),
    ),
    "a finish after the lease was lost": (
        replace(HELD, rvn="r2"),
        lambda: finish_write(LEASE, State.DONE, OUTCOME, now=NOW, rvn="n1"),
    ),
    "a failed try given back": (
        HELD,
        lambda: release_write(
            LEASE,
            State.QUEUED,
            {"reason": "x", "failure_class": "transient"},
            rvn="n1",
            failed=True,
        ),
    ),
    "an interrupted job given back": (
        HELD,
        lambda: release_write(LEASE, State.INTERRUPTED, {"reason": "stop"}, rvn="n1", failed=False),
    ),
    "a newer version asks the holder to stop": (HELD, lambda: supersede_write(HELD, "etag2")),
    "a newer version asks a finished job to stop": (
        replace(HELD, state=State.DONE),
        lambda: supersede_write(HELD, "etag2"),
    ),
}


@pytest.fixture
def dynamo() -> Iterator[DynamoLedger]:
    with mock_aws():
        clients = Clients.create(region="us-east-1")
        _create_ledger(clients, "ledger")
        yield DynamoLedger(clients.dynamodb, "ledger")


def _seed(ledger: DynamoLedger, item: LedgerItem) -> None:
    attrs = {
        f.name: stored(getattr(item, f.name))
        for f in fields(item)
        # An empty field is no attribute, as on an item written before the field existed.
        if f.name not in ("key", "pool") and getattr(item, f.name) not in (None, "")
    }
    ledger.ddb.put_item(
        TableName=ledger.table, Item={"pk": {"S": item.key}, "sk": {"S": item.pool}, **attrs}
    )


@pytest.mark.parametrize("case", list(CASES))
def test_the_rule_and_its_dynamodb_translation_agree(dynamo: DynamoLedger, case: str) -> None:
    start, rule = CASES[case]
    memory = MemoryLedger()
    if start is not None:
        memory.put(start)
        _seed(dynamo, start)
    write = rule()
    expected = memory.write(write)
    assert dynamo.write(write) == expected
    assert dynamo.get(JOB.key, JOB.pool) == memory.get(JOB.key, JOB.pool)


def test_every_case_is_either_refused_or_applied_as_the_rule_says() -> None:
    """The cases above cover both outcomes of every rule (a table that only ever agreed on
    refusals would prove nothing)."""
    outcomes = {name: rule().apply(start) is not None for name, (start, rule) in CASES.items()}
    applied = {name for name, done in outcomes.items() if done}
    assert applied == {
        "a first claim",
        "a claim of the item as read",
        "a claim of an item from before record versions",
        "a claim of a newer version (history, phases cleared)",
        "a take-over of a failed job (a fresh budget)",
        "a renewal by the holder",
        "a renewal saying the job searches",
        "a take-over of a job that was searching (its step cleared)",
        "a finish by the holder",
        "a failed try given back",
        "an interrupted job given back",
        "a newer version asks the holder to stop",
    }


def test_a_running_jobs_step_is_written_as_it_is_and_cleared_by_the_next_claim() -> None:
    said: dict[str, float | str] = {
        "progress": 0.0,
        "step": "searching",
        "step_at": 1234.5678,
        "probe": 2,
    }
    searching = renew_write(LEASE, said, "n1").apply(HELD)
    assert searching is not None
    assert (searching.step, searching.step_at, searching.progress) == ("searching", 1234.57, 0.0)
    assert searching.probe == 2
    interrupted = replace(searching, state=State.INTERRUPTED)
    taken = _claim(interrupted).apply(interrupted)
    assert taken is not None
    assert (taken.step, taken.step_at, taken.progress, taken.probe) == (None, None, 0.0, None)


def test_the_rules_keep_counters_history_and_the_fence() -> None:
    queued = replace(HELD, state=State.QUEUED)
    after = _claim(queued).apply(queued)
    assert after is not None
    assert (after.attempts, after.claims, after.worker, after.rvn) == (1, 3, "w2", "n1")
    newer = _claim(replace(HELD, state=State.DONE, encode_s=9.0), V2).apply(
        replace(HELD, state=State.DONE, encode_s=9.0)
    )
    assert newer is not None
    assert (newer.attempts, newer.encode_s, newer.history[0].etag) == (0, None, "etag1")
    released = release_write(LEASE, State.QUEUED, {}, rvn="n1", failed=True).apply(HELD)
    assert released is not None
    assert released.attempts == 2
    flagged = supersede_write(HELD, "etag2").apply(HELD)
    assert flagged is not None
    assert (flagged.superseded_by, flagged.rvn) == ("etag2", "r1")


def test_a_write_naming_no_field_of_the_item_is_refused_when_made() -> None:
    with pytest.raises(ValueError, match="no field"):
        finish_write(LEASE, State.DONE, {"output_etg": "typo"}, now=NOW, rvn="n1")
