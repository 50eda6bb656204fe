"""Leases without shared clocks: the judge of a claim, sequencers, and the observer's steps."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import pytest

from hevcq.errors import SupersededJob
from hevcq.ledger import (
    AlreadyFinished,
    AskSource,
    HeldElsewhere,
    JobKey,
    Lease,
    LeaseLostError,
    LedgerItem,
    State,
    Superseded,
    Take,
    judge,
    newer_sequencer,
)
from hevcq.worker.lease import Alive, LeaseKeeper, Left, Stale, Watching, observe, observe_step
from tests.fakes import MemoryLedger

JOB = JobKey("TODO/a.mp4", "hevc", "e1", "h1", sequencer="0A")


def item(**kw: object) -> LedgerItem:
    base: dict[str, object] = {
        "key": JOB.key,
        "pool": JOB.pool,
        "state": State.RUNNING,
        "etag": "e1",
        "settings_hash": "h1",
        "worker": "w1",
        "rvn": "r1",
        "lease_s": 60.0,
        "sequencer": "0A",
        "message_id": "m1",
    }
    return LedgerItem(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("0B", "0A", True),
        ("0A", "0B", False),
        ("100", "FF", True),  # shorter ones are padded on the left
        ("0a", "0B", False),  # case does not matter
        ("", "0A", None),
        ("0A", "0A", None),
    ],
)
def test_sequencers_order_versions_of_one_key(a: str, b: str, expected: bool | None) -> None:
    assert newer_sequencer(a, b) is expected


@pytest.mark.parametrize(
    ("stored", "job", "expected"),
    [
        (None, JOB, Take),
        (item(state=State.DONE), JOB, AlreadyFinished),
        (item(state=State.SKIPPED), JOB, AlreadyFinished),
        (item(state=State.DONE, settings_hash="h0"), JOB, Take),
        (item(), JOB, HeldElsewhere),
        (item(state=State.FAILED), JOB, Take),
        (item(state=State.INTERRUPTED), JOB, Take),
        (item(state=State.DONE, etag="e0", sequencer="09"), JOB, Take),
        (item(state=State.DONE, etag="e2", sequencer="0B"), JOB, Superseded),
        (item(etag="e0", sequencer="09"), JOB, HeldElsewhere),
        (item(state=State.DONE, etag="e0", sequencer=""), JOB, AskSource),
        (item(superseded_by="e2", state=State.SUPERSEDED), JOB, Superseded),
    ],
)
def test_judge(stored: LedgerItem | None, job: JobKey, expected: type) -> None:
    assert isinstance(judge(stored, job), expected)


def test_judge_asks_the_source_only_when_versions_cannot_be_ordered() -> None:
    stored = item(state=State.DONE, etag="e0", sequencer="")
    assert isinstance(judge(stored, JOB, source_is_newer=True), Take)
    assert isinstance(judge(stored, JOB, source_is_newer=False), Superseded)


def test_observer_waits_a_whole_lease_on_its_own_clock_before_calling_it_stale() -> None:
    seen = item()
    assert isinstance(observe_step(seen, since=100.0, now=100.0, item=seen), Watching)
    assert isinstance(observe_step(seen, since=100.0, now=159.9, item=seen), Watching)
    assert isinstance(observe_step(seen, since=100.0, now=160.0, item=seen), Stale)


def test_observer_sees_life_and_departure() -> None:
    seen = item()
    assert isinstance(observe_step(seen, 0.0, 1.0, item(rvn="r2")), Alive)
    assert isinstance(observe_step(seen, 0.0, 1.0, item(state=State.DONE)), Left)
    assert isinstance(observe_step(seen, 0.0, 1.0, item(worker="w9", rvn="r9")), Left)
    assert isinstance(observe_step(seen, 0.0, 1.0, None), Left)


def test_wall_clock_in_the_item_is_never_read_by_the_observer() -> None:
    # started_at written by a machine 300 s ahead, or 60 s behind: the verdict is the same.
    for started in (10_000_300.0, 9_999_940.0):
        seen = item(started_at=started)
        assert isinstance(observe_step(seen, 0.0, 59.0, seen), Watching)
        assert isinstance(observe_step(seen, 0.0, 60.0, seen), Stale)


class StubLedger(MemoryLedger):
    """The in-memory ledger holding JOB for w1 under rvn r1; its reads follow a script (the
    item as other workers change it) and its renewals can be made to fail."""

    def __init__(self, items: list[LedgerItem | None] | None = None) -> None:
        super().__init__()
        self.put(item())
        self.script = items or []
        self.renewals = 0
        self.fail_with: Exception | None = None

    def get(self, key: str, pool: str) -> LedgerItem | None:
        if self.script:
            seen = self.script.pop(0) if len(self.script) > 1 else self.script[0]
            if seen is None:
                self.items.pop((key, pool), None)
            else:
                self.put(seen)
        return super().get(key, pool)

    def renew(self, lease: Lease, progress: Mapping[str, float | str] | None = None) -> Lease:
        if self.fail_with is not None:
            raise self.fail_with
        self.renewals += 1
        return super().renew(lease, progress)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_observe_reports_a_stale_lease_after_a_lease_of_its_own_time() -> None:
    clock, seen = Clock(), item(lease_s=2.0)
    ledger = StubLedger([seen])
    stop = threading.Event()

    def advancing() -> float:
        clock.t += 0.5
        return clock.t

    result = observe(ledger, seen, stop=stop, cancel=threading.Event(), clock=advancing)
    assert isinstance(result, Stale)


def test_keeper_treats_a_lease_it_could_not_renew_for_a_whole_lease_as_lost() -> None:
    clock = Clock()
    ledger = StubLedger()
    keeper = LeaseKeeper(ledger, Lease(JOB, "w1", "r1", 60.0), clock=clock)
    keeper.renew()
    ledger.fail_with = ConnectionError("refused")
    clock.t = 30.0
    with pytest.raises(ConnectionError):
        keeper.renew()  # transient: the heartbeat retries
    clock.t = 61.0
    with pytest.raises(LeaseLostError):
        keeper.renew()


def test_keeper_stops_a_superseded_job_but_keeps_its_lease_to_release_it() -> None:
    ledger = StubLedger()
    ledger.signal_superseded(item(), "e2")  # a newer version waits
    keeper = LeaseKeeper(ledger, Lease(JOB, "w1", "r1", 60.0))
    with pytest.raises(SupersededJob):
        keeper.check()
    assert keeper.lease.rvn != "r1"  # renewed: the lease is still ours to release
    keeper.release(State.SUPERSEDED, {}, failed=False)
    assert ledger.items[(JOB.key, JOB.pool)].state is State.SUPERSEDED


def test_a_check_before_a_commit_waits_for_a_hanging_renewal_no_longer_than_the_lease() -> None:
    class Hanging(StubLedger):
        def __init__(self) -> None:
            super().__init__()
            self.entered, self.answer = threading.Event(), threading.Event()

        def renew(self, lease: Lease, progress: Mapping[str, float | str] | None = None) -> Lease:
            self.entered.set()
            self.answer.wait(10)
            return super().renew(lease, progress)

    ledger = Hanging()
    keeper = LeaseKeeper(ledger, Lease(JOB, "w1", "r1", 0.5))
    late: list[BaseException] = []

    def heartbeats_renewal() -> None:
        try:
            keeper.renew()
        except LeaseLostError as exc:  # its answer came after the lease ran out
            late.append(exc)

    heartbeat = threading.Thread(target=heartbeats_renewal)
    heartbeat.start()
    try:
        assert ledger.entered.wait(5)
        started = time.monotonic()
        with pytest.raises(LeaseLostError):
            keeper.check()  # the job's own renewal, right before its write
        assert time.monotonic() - started < 1.0
    finally:
        ledger.answer.set()
        heartbeat.join(5)
    assert len(late) == 1
