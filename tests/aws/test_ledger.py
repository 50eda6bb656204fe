"""The ledger's conditional writes: one holder at a time, finished jobs stay finished."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from hevcq.aws import Clients
from hevcq.ledger import (
    AlreadyFinished,
    Claimed,
    DynamoLedger,
    HeldElsewhere,
    JobKey,
    LeaseLostError,
    State,
)
from hevcq.provision import _create_ledger

JOB = JobKey("TODO/a.mp4", "hevc", "etag1", "hash1")


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(clock: Clock) -> Iterator[DynamoLedger]:
    with mock_aws():
        c = Clients.create(region="us-east-1")
        _create_ledger(c, "ledger")
        yield DynamoLedger(c.dynamodb, "ledger", clock=clock)


def test_first_claim_wins_and_second_worker_is_told_who_holds_it(ledger, clock) -> None:
    assert ledger.claim(JOB, "w1", "m1", lease_s=60) == Claimed(attempt=1)
    held = ledger.claim(JOB, "w2", "m1", lease_s=60)
    assert isinstance(held, HeldElsewhere)
    assert held.worker == "w1"
    assert held.message_id == "m1"
    assert held.lease_left_s == pytest.approx(60)


def test_renewed_lease_keeps_others_out_and_expired_lease_lets_them_in(ledger, clock) -> None:
    ledger.claim(JOB, "w1", "m1", lease_s=60)
    clock.t += 50
    ledger.renew(JOB, "w1", 60, progress=42.0)
    clock.t += 50  # 100 s after the claim, but only 50 s after the renewal
    assert isinstance(ledger.claim(JOB, "w2", "m1", 60), HeldElsewhere)
    assert ledger.get(JOB.key, JOB.pool)["progress"] == 42
    clock.t += 61
    assert ledger.claim(JOB, "w2", "m1", 60) == Claimed(attempt=2)
    with pytest.raises(LeaseLostError):
        ledger.renew(JOB, "w1", 60, None)
    with pytest.raises(LeaseLostError):
        ledger.finish(JOB, "w1", State.DONE, {})


def test_finished_job_is_not_claimed_again(ledger) -> None:
    ledger.claim(JOB, "w1", "m1", 60)
    ledger.finish(JOB, "w1", State.DONE, {"output_key": "DONE/hevc/a.mp4"})
    again = ledger.claim(JOB, "w2", "m2", 60)
    assert again == AlreadyFinished(State.DONE, "DONE/hevc/a.mp4", None)


def test_new_upload_or_new_settings_reopen_a_finished_job(ledger) -> None:
    ledger.claim(JOB, "w1", "m1", 60)
    ledger.finish(JOB, "w1", State.DONE, {})
    new_bytes = JobKey(JOB.key, JOB.pool, "etag2", JOB.settings_hash)
    assert isinstance(ledger.claim(new_bytes, "w2", "m2", 60), Claimed)
    ledger.finish(new_bytes, "w2", State.DONE, {})
    new_settings = JobKey(JOB.key, JOB.pool, "etag2", "hash2")
    assert isinstance(ledger.claim(new_settings, "w3", "m3", 60), Claimed)


def test_interrupted_job_does_not_count_an_attempt(ledger) -> None:
    assert ledger.claim(JOB, "w1", "m1", 60) == Claimed(attempt=1)
    ledger.release(JOB, "w1", State.INTERRUPTED, {"reason": "shutdown"})
    assert ledger.claim(JOB, "w2", "m1", 60) == Claimed(attempt=1)
    ledger.release(JOB, "w2", State.QUEUED, {"reason": "throttled", "failure_class": "transient"})
    assert ledger.claim(JOB, "w3", "m1", 60) == Claimed(attempt=2)


def test_failed_job_can_be_claimed_after_a_redrive(ledger) -> None:
    ledger.claim(JOB, "w1", "m1", 60)
    ledger.finish(JOB, "w1", State.FAILED, {"failure_class": "permanent", "reason": "bad"})
    item = ledger.get(JOB.key, JOB.pool)
    assert (item["state"], item["failure_class"], item["reason"]) == ("failed", "permanent", "bad")
    assert isinstance(ledger.claim(JOB, "w2", "m9", 60), Claimed)


def test_pools_are_independent_items(ledger) -> None:
    other = JobKey(JOB.key, "720p", JOB.etag, "h720")
    assert isinstance(ledger.claim(JOB, "w1", "m1", 60), Claimed)
    assert isinstance(ledger.claim(other, "w2", "m2", 60), Claimed)
    assert {i["sk"] for i in ledger.scan_all()} == {"hevc", "720p"}
