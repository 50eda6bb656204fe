"""One worker process over several pools' queues (``hevcq.worker.loop.Loop``): it takes
every pool's work, starves none, never waits while a queue has work, and its slots and
threads follow the machine's cores (``hevcq.cores``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest

from hevcq.cores import default_slots, threads_per_slot
from hevcq.errors import unclassified
from hevcq.pools import Pool
from hevcq.queue import Received
from hevcq.worker.config import WorkerConfig
from hevcq.worker.consumer import Consumer
from hevcq.worker.loop import BACKLOG_FRESH_S, Loop, Worker
from hevcq.worker.protection import NoProtection
from hevcq.worker.settle import ACK
from tests.fakes import FakeQueue


@dataclass
class WaitingQueue(FakeQueue):
    """A FakeQueue that records how long each poll would have waited."""

    waits: list[int] = field(default_factory=list)

    def receive(self, wait_s: int) -> Received | None:
        self.waits.append(wait_s)
        return super().receive(wait_s)


class Lane:
    """Stands for one pool's ``Worker``: handling a message records it and acks it."""

    def __init__(
        self, name: str, queue: FakeQueue, config: WorkerConfig, stop, log, *, protection=None
    ) -> None:
        self.pool = SimpleNamespace(name=name)
        self.queue = queue
        self.consumer = Consumer(queue, poll_wait_s=config.poll_wait_s, classify=unclassified)
        self.config = config
        self.stop = stop
        self.protection = protection or NoProtection()
        self._log = log

    def handle_safely(self, msg: Received) -> None:
        self._log.append((self.pool.name, msg.body))
        self.consumer.settle(msg, ACK)


def loop(
    queues: Mapping[str, FakeQueue],
    *,
    backlog: Callable[[Pool], int | None] | None = None,
    clock: Callable[[], float] | None = None,
    **config: Any,
) -> tuple[Loop, list[tuple[str, str]]]:
    cfg = WorkerConfig(worker_id="w1", bucket="b", poll_wait_s=config.pop("poll_wait_s", 6))
    cfg = WorkerConfig(**{**cfg.__dict__, **config})
    stop = threading.Event()
    handled: list[tuple[str, str]] = []
    protection = NoProtection()  # one per process, as build_workers gives it
    lanes = [Lane(name, q, cfg, stop, handled, protection=protection) for name, q in queues.items()]
    kwargs: dict[str, Any] = {"backlog": backlog}
    if clock is not None:
        kwargs["clock"] = clock
    return Loop(cast(list[Worker], lanes), **kwargs), handled


def fill(queue: FakeQueue, name: str, n: int) -> None:
    for i in range(n):
        queue.put(f"{name}{i}")


def counted(queues: Mapping[str, FakeQueue]) -> Callable[[Pool], int | None]:
    return lambda pool: len(queues[pool.name].inbox)


def test_one_process_takes_every_pools_work_taking_turns_while_both_have_some() -> None:
    queues = {"hevc": FakeQueue(), "720p": FakeQueue()}
    fill(queues["hevc"], "h", 4)
    fill(queues["720p"], "s", 2)
    ticks = iter(range(1000))
    w, handled = loop(queues, backlog=counted(queues), clock=lambda: next(ticks), idle_exit_s=0)
    assert w.run() == 6
    assert [b for _, b in handled] == ["h0", "s0", "h1", "s1", "h2", "h3"]
    assert all(not q.inbox for q in queues.values())


def test_a_long_queue_does_not_starve_a_pool_whose_work_arrives_later() -> None:
    queues = {"hevc": FakeQueue(), "720p": FakeQueue()}
    fill(queues["hevc"], "h", 10)
    ticks = iter(range(1000))
    w, handled = loop(queues, backlog=counted(queues), clock=lambda: next(ticks), max_jobs=3)
    w.run()
    fill(queues["720p"], "s", 1)
    w.config = WorkerConfig(**{**w.config.__dict__, "max_jobs": 5})
    w.handled = 0
    w._readings.clear()  # the next reading sees the new message
    w.run()
    assert [b for _, b in handled][3:5] == ["s0", "h3"]


def test_a_queue_the_count_calls_empty_is_still_reached_in_turn() -> None:
    """Counts are approximate: a message the count has not seen yet is found by the idle
    round of long polls, each queue in turn."""
    queues = {"hevc": WaitingQueue(), "720p": WaitingQueue()}
    fill(queues["720p"], "s", 1)
    w, handled = loop(queues, backlog=lambda pool: 0, max_jobs=1)
    w.run()
    assert handled == [("720p", "s0")]
    # The idle round: each queue long-polled for its share of the configured 6 s wait.
    assert queues["hevc"].waits == [3]
    assert queues["720p"].waits == [3]


def test_a_pool_with_work_is_polled_without_waiting_out_an_idle_queue_first() -> None:
    queues = {"hevc": WaitingQueue(), "720p": WaitingQueue()}
    fill(queues["720p"], "s", 1)
    w, handled = loop(queues, backlog=counted(queues), max_jobs=1)
    w.run()
    assert handled == [("720p", "s0")]
    assert queues["hevc"].waits == []  # its count said empty: not asked
    assert queues["720p"].waits == [1]  # returns at once when the message is there


def test_counts_that_cannot_be_read_leave_polling_to_find_the_work() -> None:
    queues = {"hevc": FakeQueue(), "720p": FakeQueue()}
    fill(queues["hevc"], "h", 2)
    fill(queues["720p"], "s", 2)

    def broken(pool: Pool) -> int | None:
        raise OSError("endpoint hiccup")

    w, handled = loop(queues, backlog=broken, idle_exit_s=0)
    assert w.run() == 4
    assert sorted(b for _, b in handled) == ["h0", "h1", "s0", "s1"]


def test_a_burst_worker_over_several_pools_exits_only_when_every_queue_is_empty() -> None:
    queues = {"hevc": FakeQueue(), "720p": FakeQueue(), "1080p": FakeQueue()}
    fill(queues["1080p"], "f", 2)
    w, handled = loop(queues, backlog=lambda pool: None, idle_exit_s=0)
    assert w.run() == 2
    assert handled == [("1080p", "f0"), ("1080p", "f1")]


def test_a_reading_is_reused_for_a_few_seconds_not_asked_every_turn() -> None:
    queues = {"hevc": FakeQueue(), "720p": FakeQueue()}
    fill(queues["hevc"], "h", 3)
    asked: list[str] = []
    now = [0.0]

    def backlog(pool: Pool) -> int | None:
        asked.append(pool.name)
        return len(queues[pool.name].inbox)

    w, _ = loop(queues, backlog=backlog, clock=lambda: now[0], max_jobs=3)
    w.run()
    assert asked.count("720p") == 1  # read once within BACKLOG_FRESH_S
    now[0] += BACKLOG_FRESH_S
    w.order()
    assert asked.count("720p") == 2


def test_a_single_pool_worker_long_polls_its_queue_for_the_whole_wait() -> None:
    queue = WaitingQueue()
    w, _ = loop({"hevc": queue}, backlog=lambda pool: 0, idle_exit_s=0)
    w.run()
    assert queue.waits == [6]


def test_a_loop_needs_a_pool() -> None:
    with pytest.raises(ValueError, match="at least one pool"):
        Loop([])


def test_the_pools_of_one_process_share_its_one_task_protection() -> None:
    """A job of any pool renews the protection the loop set: separate objects would leave
    a long job of the second pool unrenewed, open to scale-in once it expires."""
    cfg = WorkerConfig(worker_id="w1", bucket="b")
    stop = threading.Event()
    lanes = [Lane(name, FakeQueue(), cfg, stop, []) for name in ("hevc", "720p")]
    with pytest.raises(ValueError, match="share its task protection"):
        Loop(cast(list[Worker], lanes))


@pytest.mark.parametrize(
    ("cores", "slots", "threads"),
    [(1, 1, 1), (2, 2, 1), (4, 4, 1), (8, 4, 2), (16, 4, 4), (64, 16, 4)],
)
def test_slots_and_threads_follow_the_cores(cores: int, slots: int, threads: int) -> None:
    assert default_slots(cores) == slots
    assert threads_per_slot(cores, slots) == threads
    assert slots * threads <= cores  # never more encode threads than cores


def test_chosen_slots_share_the_cores_and_never_get_less_than_a_thread() -> None:
    assert threads_per_slot(2, 1) == 2  # HEVCQ_SLOTS=1 on two cores: one encode, both cores
    assert threads_per_slot(2, 3) == 1


def test_a_stop_is_not_kept_waiting_by_polls_of_the_other_queues() -> None:
    """A stop that comes during one queue's poll ends the loop before the next poll."""
    queues: dict[str, WaitingQueue] = {"hevc": WaitingQueue(), "720p": WaitingQueue()}
    w, handled = loop(queues, backlog=lambda pool: None)

    def stop_during_poll(wait_s: int) -> Received | None:
        queues["hevc"].waits.append(wait_s)
        w.stop.set()  # SIGTERM arrives while this poll waits
        return None

    queues["hevc"].receive = stop_during_poll  # type: ignore[method-assign]
    assert w.run() == 0
    assert handled == []
    assert queues["hevc"].waits == [1]
    assert queues["720p"].waits == []  # not polled once the stop was set
