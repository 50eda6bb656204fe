"""Heartbeat arithmetic (pure) and the thread that follows it, on a fake clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import pytest
from structlog.testing import capture_logs

from hevcq.errors import LostMessageError
from hevcq.ledger import JobKey, Lease, LeaseLostError, LedgerItem, State
from hevcq.limits import MAX_VISIBILITY_TIMEOUT_S
from hevcq.worker.heartbeat import Exhausted, Extend, Heartbeat, Wait, next_action
from hevcq.worker.lease import LeaseKeeper
from tests.fakes import MemoryLedger

T = 120  # queue visibility timeout
BUDGET = MAX_VISIBILITY_TIMEOUT_S


def test_waits_while_visibility_is_comfortable() -> None:
    assert next_action(now=10, received_at=0, visible_until=120, timeout_s=T, step_s=T) == Wait(60)


def test_extends_before_expiry_by_one_step() -> None:
    action = next_action(now=61, received_at=0, visible_until=120, timeout_s=T, step_s=T)
    assert action == Extend(timeout_s=120, visible_until=181)


def test_budget_counts_from_receipt_and_last_extension_is_trimmed() -> None:
    now = BUDGET - 100  # 100 s of the 12 hours left since receipt
    action = next_action(now=now, received_at=0, visible_until=now + 30, timeout_s=T, step_s=T)
    assert action == Extend(timeout_s=100, visible_until=BUDGET)


def test_budget_exhausted_when_nothing_useful_is_left() -> None:
    now = BUDGET - 30
    action = next_action(now=now, received_at=0, visible_until=now + 10, timeout_s=T, step_s=T)
    assert isinstance(action, Exhausted)
    assert action.left_s == pytest.approx(30)


def test_budget_is_not_counted_from_send() -> None:
    # Received 11 h after it was sent: the whole 12 h budget still lies ahead.
    received = 11 * 3600.0
    action = next_action(
        now=received + 61, received_at=received, visible_until=received + T, timeout_s=T, step_s=T
    )
    assert action == Extend(timeout_s=T, visible_until=received + 61 + T)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def simulate(hb: Heartbeat, clock: FakeClock, until: float) -> None:
    """Drive the heartbeat's schedule by jumping the fake clock instead of sleeping."""
    while clock.t < until:
        delay = hb.tick()
        if delay is None:
            return
        clock.t += max(delay, 0.001)


def test_thread_keeps_a_job_invisible_for_three_timeouts() -> None:
    clock, extensions = FakeClock(), list[int]()
    hb = Heartbeat(
        extend=extensions.append,
        received_at=clock.t,
        timeout_s=T,
        step_s=T,
        cancel=threading.Event(),
        clock=clock,
    )
    simulate(hb, clock, until=clock.t + 3 * T)
    assert len(extensions) >= 5
    assert all(e == T for e in extensions)
    assert not hb.failure


def test_long_job_is_stopped_when_the_budget_runs_out() -> None:
    clock, cancel = FakeClock(), threading.Event()
    hb = Heartbeat(
        extend=lambda _t: None,
        received_at=clock.t,
        timeout_s=T,
        step_s=T,
        cancel=cancel,
        clock=clock,
    )
    with capture_logs() as logs:
        simulate(hb, clock, until=clock.t + BUDGET + 10 * T)
    assert cancel.is_set()
    assert clock.t <= 1000.0 + BUDGET  # stopped before the message could reappear
    assert any(e["event"] == "visibility_budget_exhausted" for e in logs)


def test_lost_receipt_cancels_the_job() -> None:
    clock, cancel = FakeClock(), threading.Event()

    def extend(_t: int) -> None:
        raise LostMessageError("ReceiptHandleIsInvalid")

    hb = Heartbeat(
        extend=extend, received_at=clock.t, timeout_s=T, step_s=T, cancel=cancel, clock=clock
    )
    simulate(hb, clock, until=clock.t + T)
    assert cancel.is_set()
    assert isinstance(hb.failure, LostMessageError)


def test_transient_extend_failure_is_retried() -> None:
    clock, calls = FakeClock(), []

    def extend(t: int) -> None:
        calls.append(t)
        if len(calls) == 1:
            raise ConnectionError("blip")

    hb = Heartbeat(
        extend=extend,
        received_at=clock.t,
        timeout_s=T,
        step_s=T,
        cancel=threading.Event(),
        clock=clock,
    )
    simulate(hb, clock, until=clock.t + T)
    assert len(calls) >= 2
    assert hb.failure is None


def test_lease_is_renewed_on_its_own_interval() -> None:
    clock, renewals = FakeClock(), []
    hb = Heartbeat(
        extend=lambda _t: None,
        received_at=clock.t,
        timeout_s=T,
        step_s=T,
        cancel=threading.Event(),
        renew=lambda: renewals.append(clock.t),
        renew_every_s=15,
        clock=clock,
    )
    simulate(hb, clock, until=clock.t + 60.5)
    assert [round(t - 1000) for t in renewals] == [15, 30, 45, 60]


def test_a_failing_ledger_neither_kills_the_heartbeat_nor_floods_the_log() -> None:
    clock, cancel, calls = FakeClock(), threading.Event(), []

    def renew() -> None:
        calls.append(clock.t)
        if 1010 <= clock.t < 1022:  # the ledger answers 500 for 12 s
            raise RuntimeError("InternalServerError")

    hb = Heartbeat(
        extend=lambda _t: None,
        received_at=clock.t,
        timeout_s=T,
        step_s=T,
        cancel=cancel,
        renew=renew,
        renew_every_s=5,
        clock=clock,
    )
    with capture_logs() as logs:
        simulate(hb, clock, until=clock.t + 60)
    assert not cancel.is_set()
    assert hb.failure is None
    events = [e["event"] for e in logs]
    assert events.count("heartbeat_renew_failing") == 1
    assert events.count("heartbeat_renew_recovered") == 1
    assert max(calls) > 1050  # still renewing after the outage


def test_a_lost_lease_cancels_the_job() -> None:
    clock, cancel = FakeClock(), threading.Event()

    def renew() -> None:
        raise LeaseLostError("taken over")

    hb = Heartbeat(
        extend=lambda _t: None,
        received_at=clock.t,
        timeout_s=T,
        step_s=T,
        cancel=cancel,
        renew=renew,
        renew_every_s=5,
        clock=clock,
    )
    simulate(hb, clock, until=clock.t + 30)
    assert cancel.is_set()
    assert isinstance(hb.failure, LeaseLostError)


def test_the_schedule_ignores_wall_clock_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    # The heartbeat runs on the monotonic clock: the wall clock jumping 60 s back (or 300 s
    # ahead) in the middle of a job changes neither extensions nor renewals.
    clock, extensions, renewals = FakeClock(), list[int](), list[float]()
    hb = Heartbeat(
        extend=extensions.append,
        received_at=clock.t,
        timeout_s=T,
        step_s=T,
        cancel=threading.Event(),
        renew=lambda: renewals.append(clock.t),
        renew_every_s=15,
        clock=clock,
    )
    simulate(hb, clock, until=clock.t + 100)
    monkeypatch.setattr(time, "time", lambda: 0.0)
    simulate(hb, clock, until=clock.t + 100)
    monkeypatch.setattr(time, "time", lambda: 10.0**10)
    simulate(hb, clock, until=clock.t + 100)
    assert len(renewals) == 20
    assert len(extensions) >= 4
    assert hb.failure is None


class ThrottledLedger(MemoryLedger):
    """The in-memory ledger holding the job for w1 under rvn r1, whose second renewal
    blocks (DynamoDB throttling with botocore's back-off) until ``unblock`` is set."""

    def __init__(self, job: JobKey) -> None:
        super().__init__()
        self.put(
            LedgerItem(
                key=job.key,
                pool=job.pool,
                state=State.RUNNING,
                etag=job.etag,
                worker="w1",
                rvn="r1",
            )
        )
        self.calls = 0
        self.blocked = threading.Event()
        self.unblock = threading.Event()

    def renew(self, lease: Lease, progress: Mapping[str, float | str] | None = None) -> Lease:
        self.calls += 1
        if self.calls == 2:
            self.blocked.set()
            self.unblock.wait(10)
        return super().renew(lease, progress)


def test_a_blocked_renewal_neither_holds_up_the_extension_nor_outlives_the_lease() -> None:
    job = JobKey("TODO/a.mp4", "hevc", "e1", "h")
    ledger, cancel, extensions = ThrottledLedger(job), threading.Event(), list[float]()
    keeper = LeaseKeeper(ledger, Lease(job, "w1", "r1", 1.5))
    hb = Heartbeat(
        extend=lambda _t: extensions.append(time.monotonic()),
        received_at=time.monotonic(),
        timeout_s=2,
        step_s=2,
        cancel=cancel,
        renew=keeper.renew,
        renew_every_s=0.2,
        lease_deadline=keeper.expires_at,
        max_sleep_s=0.05,
    )
    try:
        with hb:
            assert ledger.blocked.wait(5)
            blocked_at = time.monotonic()
            # The job is stopped once the lease runs out, while the renewal still hangs ...
            assert cancel.wait(5)
            assert isinstance(hb.failure, LeaseLostError)
            assert time.monotonic() - blocked_at < 1.5 + 0.5
            assert not ledger.unblock.is_set()
            # ... and the queue's extension went on meanwhile.
            assert len([t for t in extensions if t > blocked_at]) >= 1
            ledger.unblock.set()
    finally:
        ledger.unblock.set()
    with pytest.raises(LeaseLostError):  # the late answer does not revive the lease
        keeper.check()
