"""The ledger's conditional writes: one holder at a time, versions ordered, no shared clocks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from hevcq.aws.clients import Clients
from hevcq.aws.ledger import DynamoLedger
from hevcq.aws.provision import _create_ledger
from hevcq.ledger import (
    HISTORY_KEPT,
    PHASES,
    AlreadyFinished,
    Claimed,
    HeldElsewhere,
    JobKey,
    LeaseLostError,
    LedgerItem,
    State,
    Superseded,
    history_after,
    history_json,
)

JOB = JobKey("TODO/a.mp4", "hevc", "etag1", "hash1", sequencer="0055AED6DCD90281E5")
V2 = JobKey("TODO/a.mp4", "hevc", "etag2", "hash1", sequencer="0055AED6DCD90281E6")


class Clock:
    """A wall clock that tests can set anywhere, including backwards."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clients() -> Iterator[Clients]:
    with mock_aws():
        c = Clients.create(region="us-east-1")
        _create_ledger(c, "ledger")
        yield c


@pytest.fixture
def ledger(clients: Clients) -> DynamoLedger:
    return DynamoLedger(clients.dynamodb, "ledger", clock=Clock())


def claimed(result: object) -> Claimed:
    assert isinstance(result, Claimed), result
    return result


def test_first_claim_wins_and_second_worker_is_told_who_holds_it(ledger) -> None:
    first = claimed(ledger.claim(JOB, "w1", "m1", lease_s=60))
    assert first.attempt == 1
    held = ledger.claim(JOB, "w2", "m1", lease_s=60)
    assert isinstance(held, HeldElsewhere)
    assert (held.item.worker, held.item.message_id, held.same_job) == ("w1", "m1", True)
    assert held.item.rvn == first.lease.rvn
    assert held.item.lease_s == 60


def test_every_renewal_changes_the_record_version(ledger) -> None:
    lease = claimed(ledger.claim(JOB, "w1", "m1", 60)).lease
    renewed = ledger.renew(lease, {"progress": 42.0})
    assert renewed.rvn != lease.rvn
    item = ledger.get(JOB.key, JOB.pool)
    assert (item.rvn, item.progress) == (renewed.rvn, 42.0)
    with pytest.raises(LeaseLostError):
        ledger.renew(lease)  # an outdated record version is not a lease


def test_takeover_needs_the_record_version_the_taker_watched(ledger) -> None:
    lease = claimed(ledger.claim(JOB, "w1", "m1", 60)).lease
    watched = ledger.get(JOB.key, JOB.pool)
    ledger.renew(lease)  # the holder showed life after the taker started watching
    assert ledger.take_over(JOB, "w2", "m1", 60, watched) is None
    stale = ledger.get(JOB.key, JOB.pool)
    taken = ledger.take_over(JOB, "w2", "m1", 60, stale)
    assert taken is not None
    assert ledger.get(JOB.key, JOB.pool).worker == "w2"


def test_a_holder_that_was_taken_over_can_write_nothing(ledger) -> None:
    lease = claimed(ledger.claim(JOB, "w1", "m1", 60)).lease
    ledger.take_over(JOB, "w2", "m1", 60, ledger.get(JOB.key, JOB.pool))
    with pytest.raises(LeaseLostError):
        ledger.renew(lease)
    with pytest.raises(LeaseLostError):
        ledger.finish(lease, State.DONE, {"output_etag": "zombie"})
    with pytest.raises(LeaseLostError):
        ledger.release(lease, State.QUEUED, {}, failed=True)
    item = ledger.get(JOB.key, JOB.pool)
    assert (item.state, item.worker, item.output_etag) == (State.RUNNING, "w2", None)


def test_skewed_and_stepped_wall_clocks_change_nothing(clients) -> None:
    # Three workers whose wall clocks disagree by minutes, one of them stepping back: no
    # claim, renewal or takeover depends on them.
    ahead = DynamoLedger(clients.dynamodb, "ledger", clock=Clock(1_000_300.0))
    behind_clock = Clock(999_700.0)
    behind = DynamoLedger(clients.dynamodb, "ledger", clock=behind_clock)
    lease = claimed(behind.claim(JOB, "w1", "m1", 60)).lease
    assert isinstance(ahead.claim(JOB, "w2", "m1", 60), HeldElsewhere)
    behind_clock.t -= 60
    lease = behind.renew(lease)
    assert isinstance(ahead.claim(JOB, "w2", "m2", 60), HeldElsewhere)
    behind.finish(lease, State.DONE, {"output_etag": "out1"})
    assert isinstance(ahead.claim(JOB, "w2", "m3", 60), AlreadyFinished)


def test_finished_job_is_not_claimed_again(ledger) -> None:
    lease = claimed(ledger.claim(JOB, "w1", "m1", 60)).lease
    ledger.finish(lease, State.DONE, {"output_key": "DONE/hevc/a.mp4", "output_etag": "o1"})
    again = ledger.claim(JOB, "w2", "m2", 60)
    assert isinstance(again, AlreadyFinished)
    assert (again.item.output_key, again.item.output_etag) == ("DONE/hevc/a.mp4", "o1")


def test_new_version_or_new_settings_reopen_a_finished_job_and_keep_the_fence(ledger) -> None:
    lease = claimed(ledger.claim(JOB, "w1", "m1", 60)).lease
    ledger.finish(lease, State.DONE, {"output_etag": "out-v1"})
    v2 = claimed(ledger.claim(V2, "w2", "m2", 60)).lease
    assert v2.output_etag == "out-v1"  # what the new version's commit must replace
    ledger.finish(v2, State.DONE, {"output_etag": "out-v2"})
    new_settings = JobKey(V2.key, V2.pool, V2.etag, "hash2", sequencer=V2.sequencer)
    assert claimed(ledger.claim(new_settings, "w3", "m3", 60)).lease.output_etag == "out-v2"


def test_a_late_event_of_an_older_version_is_superseded(ledger) -> None:
    v2 = claimed(ledger.claim(V2, "w2", "m2", 60)).lease
    ledger.finish(v2, State.DONE, {"output_etag": "out-v2"})
    assert isinstance(ledger.claim(JOB, "w1", "m1", 60), Superseded)  # by sequencer
    unordered = JobKey(JOB.key, JOB.pool, JOB.etag, JOB.settings_hash)  # no sequencer
    assert isinstance(ledger.claim(unordered, "w1", "m1", 60, lambda: False), Superseded)
    assert ledger.get(JOB.key, JOB.pool).output_etag == "out-v2"


def test_without_sequencers_the_source_decides_which_version_is_newer(ledger) -> None:
    old = JobKey(JOB.key, JOB.pool, "etag1", "hash1")
    new = JobKey(JOB.key, JOB.pool, "etag2", "hash1")
    lease = claimed(ledger.claim(old, "w1", "m1", 60)).lease
    ledger.finish(lease, State.DONE, {"output_etag": "o1"})
    asked: list[bool] = []

    def source_shows_new() -> bool:
        asked.append(True)
        return True

    assert isinstance(ledger.claim(new, "w2", "m2", 60, source_shows_new), Claimed)
    assert asked == [True]


def test_a_newer_version_tells_the_older_holder_to_stop(ledger) -> None:
    v1 = claimed(ledger.claim(JOB, "w1", "m1", 60)).lease
    held = ledger.claim(V2, "w2", "m2", 60)
    assert isinstance(held, HeldElsewhere)
    assert not held.same_job
    ledger.signal_superseded(held.item, V2.etag)
    assert ledger.get(JOB.key, JOB.pool).rvn == v1.rvn  # watchers' count is not reset
    renewed = ledger.renew(v1)
    assert renewed.superseded_by == V2.etag
    ledger.release(renewed, State.SUPERSEDED, {}, failed=False)  # still the holder's to give
    assert ledger.get(JOB.key, JOB.pool).state is State.SUPERSEDED
    assert isinstance(ledger.claim(V2, "w2", "m2", 60), Claimed)


def test_retry_budget_counts_failed_tries_only(ledger) -> None:
    lease = claimed(ledger.claim(JOB, "w1", "m1", 60)).lease
    ledger.release(lease, State.INTERRUPTED, {"reason": "shutdown"}, failed=False)
    lease = claimed(ledger.claim(JOB, "w2", "m1", 60)).lease
    assert lease.attempts == 0
    ledger.take_over(JOB, "w3", "m1", 60, ledger.get(JOB.key, JOB.pool))  # a takeover
    lease = ledger.get(JOB.key, JOB.pool)
    assert lease.attempts == 0
    taken = ledger.take_over(JOB, "w4", "m1", 60, lease)
    assert taken is not None
    ledger.release(taken.lease, State.QUEUED, {"failure_class": "transient"}, failed=True)
    assert claimed(ledger.claim(JOB, "w5", "m1", 60)).attempt == 2


def test_failed_job_can_be_claimed_after_a_redrive_with_a_fresh_budget(ledger) -> None:
    lease = claimed(ledger.claim(JOB, "w1", "m1", 60)).lease
    ledger.finish(
        lease, State.FAILED, {"failure_class": "transient", "reason": "bad", "attempts": 3}
    )
    item = ledger.get(JOB.key, JOB.pool)
    assert (item.state, item.failure_class, item.reason) == (State.FAILED, "transient", "bad")
    assert claimed(ledger.claim(JOB, "w2", "m9", 60)).attempt == 1


def test_pools_are_independent_items(ledger) -> None:
    other = JobKey(JOB.key, "720p", JOB.etag, "h720")
    assert isinstance(ledger.claim(JOB, "w1", "m1", 60), Claimed)
    assert isinstance(ledger.claim(other, "w2", "m2", 60), Claimed)
    assert {i.pool for i in ledger.scan_items()} == {"hevc", "720p"}


def test_an_item_remembers_the_versions_and_settings_it_gave_way_to(ledger) -> None:
    lease = claimed(ledger.claim(JOB, "w1", "m1", 60)).lease
    ledger.finish(lease, State.DONE, {"output_etag": "out-v1", "encode_s": 9.5, "upload_s": 1.0})
    v2 = claimed(ledger.claim(V2, "w2", "m2", 60)).lease
    now = ledger.get(JOB.key, JOB.pool)
    assert [(v.etag, v.state, v.output_etag) for v in now.history] == [("etag1", "done", "out-v1")]
    assert all(getattr(now, p) is None for p in PHASES)  # the old version's timings went
    ledger.release(v2, State.FAILED, {"reason": "not a media file"}, failed=True)
    retried = claimed(ledger.claim(V2, "w3", "m3", 60)).lease  # a retry: not a new version
    assert len(ledger.get(JOB.key, JOB.pool).history) == 1
    ledger.finish(retried, State.DONE, {"output_etag": "out-v2"})
    new_settings = JobKey(V2.key, V2.pool, V2.etag, "hash2", sequencer=V2.sequencer)
    claimed(ledger.claim(new_settings, "w4", "m4", 60))
    history = ledger.get(JOB.key, JOB.pool).history
    assert [(v.etag, v.settings_hash, v.state) for v in history] == [
        ("etag2", "hash1", "done"),
        ("etag1", "hash1", "done"),
    ]


def test_an_item_keeps_a_bounded_history() -> None:
    item = LedgerItem(key="k", pool="hevc", state=State.DONE, etag="e0")
    for n in range(1, HISTORY_KEPT + 5):
        raw = history_json(history_after(item))
        item = LedgerItem.from_item({"pk": "k", "sk": "hevc", "etag": f"e{n}", "history": raw})
    assert len(item.history) == HISTORY_KEPT
    assert item.history[0].etag == f"e{HISTORY_KEPT + 3}"


@pytest.mark.parametrize("raw", ["", "not json", "[1, 2]", '[{"etag": "x"}]', "{}"])
def test_an_unreadable_history_is_no_history(raw: str) -> None:
    item = LedgerItem.from_item({"pk": "k", "sk": "hevc", "history": raw})
    assert item.history == ()


def test_a_run_reads_its_jobs_by_key_past_a_batch_and_misses_no_item(ledger) -> None:
    """``get_many`` stands in for the scan a run's live view made once a second."""
    jobs = [JobKey(f"TODO/clip{i:03d}.mp4", "hevc", "e" * 32, "h") for i in range(230)]
    for i, job in enumerate(jobs):
        claimed(ledger.claim(job, f"w{i}", f"m{i}", lease_s=60))
    asked = [(j.key, j.pool) for j in jobs] + [("TODO/missing.mp4", "hevc"), (jobs[0].key, "hevc")]
    got = ledger.get_many(asked)
    assert sorted((i.key, i.pool, i.worker) for i in got) == sorted(
        (j.key, j.pool, f"w{n}") for n, j in enumerate(jobs)
    )
    assert ledger.get_many([]) == []


class _Throttled:
    """A DynamoDB client whose batch reads leave keys unprocessed, as a throttled table does."""

    def __init__(self, real: Any, unprocessed_rounds: int) -> None:
        self.real, self.left_rounds, self.batches, self.gets = real, unprocessed_rounds, 0, 0

    def batch_get_item(self, **kw: Any) -> Any:
        self.batches += 1
        ((table, ask),) = kw["RequestItems"].items()
        keys = ask["Keys"]
        if self.left_rounds > 0:
            self.left_rounds -= 1
            done = self.real.batch_get_item(RequestItems={table: {"Keys": keys[:1]}})
            return {**done, "UnprocessedKeys": {table: {"Keys": keys[1:]}}}
        return self.real.batch_get_item(**kw)

    def get_item(self, **kw: Any) -> Any:
        self.gets += 1
        return self.real.get_item(**kw)


@pytest.mark.parametrize(("rounds", "batches", "gets"), [(2, 3, 0), (10, 4, 1)])
def test_keys_a_throttled_batch_leaves_are_read_again(
    clients: Clients, monkeypatch: pytest.MonkeyPatch, rounds: int, batches: int, gets: int
) -> None:
    monkeypatch.setattr("hevcq.aws.ledger.BATCH_GET_PAUSE_S", 0.0)
    jobs = [JobKey(f"TODO/clip{i}.mp4", "hevc", "e" * 32, "h") for i in range(5)]
    real = DynamoLedger(clients.dynamodb, "ledger", clock=Clock())
    for job in jobs:
        claimed(real.claim(job, "w1", "m1", lease_s=60))
    client = _Throttled(clients.dynamodb, rounds)
    got = DynamoLedger(client, "ledger").get_many([(j.key, j.pool) for j in jobs])  # type: ignore[arg-type]
    assert sorted(i.key for i in got) == sorted(j.key for j in jobs)
    assert (client.batches, client.gets) == (batches, gets)
