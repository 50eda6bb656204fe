"""The worker's seam: the consumer makes every queue call and decides nothing; the session
decides every message and makes no queue call."""

from __future__ import annotations

import threading

import pytest

from hevcq.errors import FailureClass, unclassified
from hevcq.ledger import Lease, State
from hevcq.queue import Received
from hevcq.worker.config import WorkerConfig
from hevcq.worker.consumer import Consumer
from hevcq.worker.executor import report_to
from hevcq.worker.outage import Outage
from hevcq.worker.runner import JobContext, JobSpec
from hevcq.worker.session import JobSession
from hevcq.worker.settle import ACK, LOST, Settle, Verdict
from tests.fakes import FakePublisher, FakeQueue, FakeStore, MemoryLedger
from tests.unit.test_worker import BUCKET, KEY, event

SETTLES = {
    "ack": (ACK, "deleted"),
    "dead": (Settle(Verdict.DEAD, failure_class=FailureClass.PERMANENT, reason="bad"), "dead"),
    "release": (Settle(Verdict.RELEASE, delay_s=7, reason="later"), "released"),
    "lost": (LOST, "untouched"),
}


@pytest.mark.parametrize("name", list(SETTLES))
def test_the_consumer_carries_out_each_settlement_with_one_queue_call(name: str) -> None:
    settle, expected = SETTLES[name]
    queue = FakeQueue()
    consumer = Consumer(queue, poll_wait_s=0, classify=unclassified)
    queue.put("{}")
    msg, _ = consumer.receive(Outage("receive"))
    assert msg is not None
    consumer.settle(msg, settle)
    assert queue.settled(msg) == expected
    calls = len(queue.released) + len(queue.dead) + len(queue.deleted)
    assert calls == (0 if settle is LOST else 1)
    if name == "release":
        assert queue.released == [(msg.message_id, 7)]


class NoQueue:
    """Stands where a queue would be: any call fails the test."""

    def __call__(self, msg: Received, timeout_s: int) -> None:
        raise AssertionError("the session touched the queue")


def _session(farm, ledger: MemoryLedger, ran: list[JobSpec]) -> tuple[JobSession, FakeQueue]:
    store = FakeStore()
    store.add(KEY, etag="etag1", size=5000)

    def execute(msg: Received, spec: JobSpec, lease: Lease) -> Settle:
        ran.append(spec)
        ledger.finish(lease, State.DONE, {})
        return ACK

    session = JobSession(
        pool=farm["hevc"],
        ledger=ledger,
        store=store,
        publisher=FakePublisher(),
        config=WorkerConfig(worker_id="w1", bucket=BUCKET, heartbeat_max_sleep_s=0.01),
        stop=threading.Event(),
        extend=NoQueue(),
        execute=execute,
    )
    return session, FakeQueue()


def test_the_session_decides_a_job_without_a_queue(farm, ledger) -> None:
    ran: list[JobSpec] = []
    session, queue = _session(farm, ledger, ran)
    msg = queue.put(event())
    assert session.decide(msg) is ACK
    assert [spec.job.key for spec in ran] == [KEY]
    assert ledger.get(KEY, "hevc").state is State.DONE
    assert session.decide(queue.put(event())).verdict is Verdict.ACK  # already finished
    assert len(ran) == 1
    assert queue.settled(msg) == "untouched"  # deciding is not settling


def test_the_session_decides_a_malformed_message_goes_to_the_dead_letter_queue(
    farm, ledger
) -> None:
    session, queue = _session(farm, ledger, [])
    settle = session.decide(queue.put("not json"))
    assert (settle.verdict, settle.failure_class) == (Verdict.DEAD, FailureClass.PERMANENT)


def test_a_probes_progress_is_written_beside_the_encodes_and_never_read_as_it() -> None:
    """A search's probe tells how far it has got (``probe_done``), reset as each probe
    starts; the encode's percent, which a stop's grace is measured by, is not touched."""
    ctx = JobContext()
    fields: dict[str, float | str] = {}
    grace = report_to(ctx, fields)
    ctx.on_probe(1)
    ctx.on_probe_progress(80.0)
    assert fields == {"probe": 1, "probe_done": 80.0}
    ctx.on_probe(2)
    assert fields["probe_done"] == 0.0
    assert grace == []  # the grace of a stop reads the encode alone
    ctx.on_progress(12.5)
    assert (grace, fields["progress"], fields["probe_done"]) == ([12.5], 12.5, 0.0)
