"""The worker loop with fakes for queue, store, runner and publisher, and the ledger's own
rules in memory (``tests.fakes.MemoryLedger``).

Each test pins one promise: what happens to the message, the ledger item and the output.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from hevcq.aws.clients import classify
from hevcq.errors import (
    FailureClass,
    InterruptedJob,
    PermanentError,
    RetryableError,
    StalledError,
)
from hevcq.ledger import QUALITY, JobKey, LedgerItem
from hevcq.media.quality import ScoringError
from hevcq.messages import JobResult
from hevcq.metadata import (
    META_NAMING,
    META_SOURCE_ETAG,
    META_SOURCE_KEY,
    META_TARGET_VMAF,
    WITH_SOURCE_EXT,
)
from hevcq.pools import Pool
from hevcq.worker.config import WorkerConfig
from hevcq.worker.loop import Worker
from hevcq.worker.protection import TaskProtection
from hevcq.worker.runner import JobContext, JobRunner, JobSpec, Runner
from hevcq.worker.settle import Verdict
from tests.fakes import (
    FakePublisher,
    FakeQueue,
    FakeStore,
    FastClock,
    MemoryLedger,
    ScriptedRunner,
    done_result,
    present,
)
from tests.unit.test_events import s3_event

BUCKET = "media"
KEY = "TODO/trip/clip.mp4"


@dataclass
class Rig:
    worker: Worker
    queue: FakeQueue
    store: FakeStore
    runner: ScriptedRunner
    publisher: FakePublisher
    ledger: MemoryLedger
    pool: Pool

    def job(self, etag: str = "etag1") -> JobKey:
        return JobKey(KEY, self.pool.name, etag, self.pool.settings_hash())

    def item(self) -> LedgerItem | None:
        return self.ledger.get(KEY, self.pool.name)


def make_rig(
    ledger: MemoryLedger,
    farm: dict[str, Pool],
    behaviour,
    *,
    worker_id: str = "w1",
    clock=time.monotonic,
    lease_s: int = 60,
    store: FakeStore | None = None,
    job_runner: Runner | None = None,
    protection: TaskProtection | None = None,
    emit_metrics=None,
    queue: FakeQueue | None = None,
    **config,
) -> Rig:
    pool = farm["hevc"]
    queue, pub = queue or FakeQueue(), FakePublisher()
    metrics: list[JobResult] = []
    if store is None:
        store = FakeStore()
        store.add(KEY, etag="etag1", size=5000)
    runner = ScriptedRunner(behaviour)
    cfg = WorkerConfig(
        worker_id=worker_id,
        bucket=BUCKET,
        poll_wait_s=0,
        lease_s=lease_s,
        heartbeat_max_sleep_s=0.01,
        **config,
    )
    w = Worker(
        pool=pool,
        queue=queue,
        ledger=ledger,
        runner=job_runner or runner,
        store=store,
        publisher=pub,
        config=cfg,
        stop=threading.Event(),
        clock=clock,
        emit_metrics=emit_metrics or metrics.append,
        classify=classify,
        protection=protection,
    )
    return Rig(w, queue, store, runner, pub, ledger, pool)


def event(key: str = KEY, bucket: str = BUCKET, etag: str = "etag1") -> str:
    doc = s3_event(key.replace(" ", "+"), bucket=bucket)
    doc["Records"][0]["s3"]["object"]["eTag"] = etag
    return json.dumps(doc)


def ok(spec: JobSpec, ctx: JobContext) -> JobResult:
    return done_result(spec, output_bytes=100, input_bytes=5000)


def test_a_job_is_run_recorded_published_and_only_then_deleted(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok)
    msg = rig.queue.put(event())
    assert rig.worker.handle(msg).verdict is Verdict.ACK
    assert rig.queue.settled(msg) == "deleted"
    assert rig.item().state == "done"
    assert [r.outcome for r in rig.publisher.results] == ["done"]
    assert rig.runner.calls[0].output_key == "DONE/hevc/trip/clip.mp4"


def test_a_source_whose_name_is_shared_gets_an_output_name_with_its_extension(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok)
    rig.store.add("TODO/trip/IMG_0001.MOV", meta={META_NAMING: WITH_SOURCE_EXT})
    rig.store.add("TODO/trip/IMG_0001.mp4")
    for key in ("TODO/trip/IMG_0001.MOV", "TODO/trip/IMG_0001.mp4"):
        assert rig.worker.handle(rig.queue.put(event(key))).verdict is Verdict.ACK
    assert [c.output_key for c in rig.runner.calls] == [
        "DONE/hevc/trip/IMG_0001.MOV.mp4",
        "DONE/hevc/trip/IMG_0001.mp4",
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("this is not json", "not JSON"),
        (json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}), "not an S3 event"),
        (event(bucket="someone-elses-bucket"), "bucket this farm does not own"),
        (event(key="DONE/hevc/loop.mp4"), "not a source key"),
        (event(key="TODO/../escape.mp4"), "not a usable relative path"),
    ],
)
def test_bad_messages_go_to_the_dead_letter_queue_with_a_reason(ledger, farm, body, reason) -> None:
    rig = make_rig(ledger, farm, ok)
    msg = rig.queue.put(body)
    rig.worker.config = dataclasses.replace(rig.worker.config, max_jobs=1)
    assert rig.worker.run() == 1  # the worker handled it and is still alive
    ((mid, cls, why),) = rig.queue.dead
    assert mid == msg.message_id
    assert cls is FailureClass.PERMANENT
    assert reason in why
    assert rig.runner.calls == []


def test_s3_test_events_are_acknowledged_without_work(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok)
    msg = rig.queue.put(
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET})
    )
    rig.worker.handle(msg)
    assert rig.queue.settled(msg) == "deleted"
    assert rig.runner.calls == []


def test_duplicate_delivery_of_a_finished_job_does_no_work_but_reports_again(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok)
    rig.worker.handle(rig.queue.put(event()))
    dup = rig.queue.put(event())
    rig.worker.handle(dup)
    assert len(rig.runner.calls) == 1
    assert rig.queue.settled(dup) == "deleted"
    assert [r.outcome for r in rig.publisher.results] == ["done", "done"]


def test_same_bytes_uploaded_again_are_not_encoded_again(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok)
    rig.worker.handle(rig.queue.put(event()))
    rig.store.add(KEY, etag="etag1", size=5000)  # re-upload: same ETag
    rig.worker.handle(rig.queue.put(event()))
    assert len(rig.runner.calls) == 1


def test_new_bytes_or_new_settings_are_encoded_again(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok)
    rig.worker.handle(rig.queue.put(event()))
    rig.store.add(KEY, etag="etag2", size=6000)
    rig.worker.handle(rig.queue.put(event(etag="etag2")))
    assert len(rig.runner.calls) == 2
    hevc = rig.pool
    new = hevc.model_copy(update={"encode": hevc.encode.model_copy(update={"crf": 20})})
    rig.worker.session.pool = rig.worker.executor.pool = new  # the pool's settings changed
    rig.worker.handle(rig.queue.put(event(etag="etag2")))
    assert len(rig.runner.calls) == 3


def test_stale_event_for_replaced_or_deleted_source_is_dropped(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok)
    rig.store.add(KEY, etag="etag2")
    stale = rig.queue.put(event(etag="etag1"))
    rig.worker.handle(stale)
    del rig.store.objects[KEY]
    gone = rig.queue.put(event(etag="etag2"))
    rig.worker.handle(gone)
    assert rig.runner.calls == []
    assert rig.queue.settled(stale) == rig.queue.settled(gone) == "deleted"
    assert rig.item() is None


def test_duplicate_event_while_another_worker_runs_the_job(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok)
    rig.ledger.claim(rig.job(), "other-worker", "original-message", lease_s=300)
    dup = rig.queue.put(event())  # a second S3 event: a different message
    rig.worker.handle(dup)
    assert rig.queue.settled(dup) == "deleted"  # the holder still has the original
    assert rig.runner.calls == []


def test_redelivered_message_of_a_live_holder_goes_back_without_work(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok)
    claim = rig.ledger.claim(rig.job(), "other-worker", "original-message", lease_s=300)
    lease, stop = claim.lease, threading.Event()

    def holder_renews() -> None:
        nonlocal lease
        while not stop.wait(0.02):
            lease = rig.ledger.renew(lease)

    beat = threading.Thread(target=holder_renews)
    beat.start()
    try:
        same = rig.queue.put(event(), message_id="original-message", receive_count=2)
        rig.worker.handle(same)  # a redelivery of the very message being worked on
    finally:
        stop.set()
        beat.join()
    ((mid, delay),) = rig.queue.released
    assert mid == "original-message"
    assert delay >= 300
    assert rig.runner.calls == []
    assert rig.item().worker == "other-worker"


def test_redelivered_message_of_a_dead_holder_is_taken_over_after_a_whole_lease(
    ledger, farm
) -> None:
    clock = FastClock(speed=1000.0)
    rig = make_rig(ledger, farm, ok, clock=clock)
    rig.ledger.claim(rig.job(), "dead-worker", "original-message", lease_s=300)
    same = rig.queue.put(event(), message_id="original-message", receive_count=2)
    started = clock()
    with capture_logs() as logs:
        assert rig.worker.handle(same).verdict is Verdict.ACK
    assert clock() - started >= 300  # watched a whole lease on its own clock
    assert len(rig.runner.calls) == 1
    assert (rig.item().state, rig.item().worker) == ("done", "w1")
    assert [e["event"] for e in logs if e["event"].startswith("job_")][:2] == [
        "job_taken_over",
        "job_finished",
    ]


def test_an_output_that_cannot_be_scored_fails_with_its_own_class(ledger, farm) -> None:
    def unscored(spec, ctx):
        raise ScoringError("scoring failed: libvmaf: model not found")

    rig = make_rig(ledger, farm, unscored)
    msg = rig.queue.put(event())
    rig.worker.handle(msg)
    reason = "scoring failed: libvmaf: model not found"
    assert rig.queue.dead == [(msg.message_id, FailureClass.SCORING, reason)]
    item = rig.item()
    assert (item.state, item.failure_class, item.attempts) == ("failed", "scoring", 1)
    (res,) = rig.publisher.results
    assert (res.outcome, res.failure_class) == ("failed", FailureClass.SCORING)


def test_permanent_failure_is_dead_lettered_recorded_and_published(ledger, farm) -> None:
    def bad(spec, ctx):
        raise PermanentError("not a media file: Invalid data")

    rig = make_rig(ledger, farm, bad)
    msg = rig.queue.put(event())
    rig.worker.handle(msg)
    assert rig.queue.dead == [
        (msg.message_id, FailureClass.PERMANENT, "not a media file: Invalid data")
    ]
    item = rig.item()
    assert (item.state, item.failure_class) == ("failed", "permanent")
    (res,) = rig.publisher.results
    assert (res.outcome, res.failure_class) == ("failed", FailureClass.PERMANENT)


@pytest.mark.parametrize("exc", [RetryableError("S3 503"), StalledError("no progress for 120 s")])
def test_transient_failures_are_released_with_growing_delays_then_dead_lettered(
    ledger, farm, exc
) -> None:
    def flaky(spec, ctx):
        raise exc

    rig = make_rig(ledger, farm, flaky)
    max_attempts = rig.pool.queue.max_attempts
    delays = []
    for _ in range(1, max_attempts):
        # The budget counts the job's failed tries in the ledger, not SQS receives.
        msg = rig.queue.put(event(), receive_count=1, message_id="m-retry")
        rig.worker.handle(msg)
        delays.append(rig.queue.released[-1][1])
        assert rig.item().state == "queued"
        assert rig.publisher.results == []
    assert delays == sorted(delays)
    assert delays[-1] > delays[0]
    last = rig.queue.put(event(), receive_count=1, message_id="m-retry")
    rig.worker.handle(last)
    ((_, cls, reason),) = rig.queue.dead
    assert cls is exc.failure_class
    assert reason == str(exc)
    assert (rig.item().state, rig.item().attempts) == ("failed", max_attempts)
    assert rig.publisher.results[-1].outcome == "failed"


def test_takeovers_and_releases_do_not_spend_the_retry_budget(ledger, farm) -> None:
    calls = []

    def fails_once(spec, ctx):
        calls.append(spec)
        if len(calls) == 1:
            raise RetryableError("S3 503")
        return ok(spec, ctx)

    clock = FastClock(speed=1000.0)
    rig = make_rig(ledger, farm, fails_once, clock=clock)
    # Two holders died in turn: each takeover came at a high receive count.
    for n, dead in enumerate(("dead-1", "dead-2"), start=1):
        if n == 1:
            rig.ledger.claim(rig.job(), dead, "m", lease_s=60)
        else:
            rig.ledger.take_over(rig.job(), dead, "m", 60, present(rig.ledger.get(KEY, "hevc")))
    msg = rig.queue.put(event(), receive_count=rig.pool.queue.max_attempts, message_id="m")
    rig.worker.handle(msg)
    assert rig.queue.settled(msg) == "released"  # a first real failure: retried
    assert rig.item().attempts == 1
    again = rig.queue.put(event(), receive_count=rig.pool.queue.max_attempts + 1, message_id="m")
    assert rig.worker.handle(again).verdict is Verdict.ACK
    assert rig.item().state == "done"


def test_an_unexpected_crash_in_a_job_does_not_kill_the_worker(ledger, farm) -> None:
    def buggy(spec, ctx):
        raise KeyError("surprise")

    rig = make_rig(ledger, farm, buggy, max_jobs=2)
    first, second = rig.queue.put(event()), rig.queue.put(event())
    with capture_logs() as logs:
        assert rig.worker.run() == 2
    assert rig.queue.settled(first) == rig.queue.settled(second) == "released"
    assert any(e["event"] == "job_crashed" for e in logs)


def test_lost_receipt_stops_the_job_without_upload_or_delete(ledger, farm) -> None:
    def long_job(spec, ctx):
        assert ctx.cancel.wait(10), "the heartbeat should have cancelled the job"
        raise PermanentError(
            "should not be reported"
        )  # what ffmpeg's stop looks like is irrelevant

    rig = make_rig(ledger, farm, long_job, clock=FastClock(speed=2000))
    rig.queue.lose_receipt_after = 1
    msg = rig.queue.put(event())
    settle = rig.worker.handle(msg)
    assert settle.verdict is Verdict.LOST
    assert rig.queue.settled(msg) == "untouched"
    assert rig.store.uploads == []
    assert rig.publisher.results == []


def test_heartbeat_keeps_a_long_job_invisible_and_renews_the_lease(ledger, farm) -> None:
    clock = FastClock(speed=1000)
    vis = farm["hevc"].queue.visibility_timeout_s

    def slow(spec, ctx):
        end = clock() + 3 * vis
        while clock() < end:
            ctx.on_progress(50.0)
            time.sleep(0.01)
        return ok(spec, ctx)

    rig = make_rig(ledger, farm, slow, clock=clock)
    msg = rig.queue.put(event())
    rig.worker.handle(msg)
    assert len(rig.queue.extended) >= 3
    assert rig.queue.settled(msg) == "deleted"
    assert rig.item().state == "done"


def test_stop_during_a_long_job_releases_it_at_once_without_counting_an_attempt(
    ledger, farm
) -> None:
    def long_job(spec, ctx):
        ctx.on_progress(5.0)
        if ctx.cancel.wait(10):
            raise InterruptedJob("stopped")
        return ok(spec, ctx)

    rig = make_rig(ledger, farm, long_job, shutdown_grace_s=0.5)
    msg = rig.queue.put(event())
    t = threading.Thread(target=rig.worker.handle, args=(msg,))
    t.start()
    assert rig.runner.started.wait(5)
    time.sleep(0.3)
    rig.worker.stop.set()
    t.join(10)
    assert rig.queue.released == [(msg.message_id, 0)]
    item = rig.item()
    assert item.state == "interrupted"
    assert item.attempts == 0
    assert rig.store.uploads == []


def test_stop_lets_a_nearly_finished_job_finish(ledger, farm) -> None:
    finished = threading.Event()

    def almost_done(spec, ctx):
        ctx.on_progress(95.0)
        time.sleep(0.6)
        assert not ctx.cancel.is_set()
        finished.set()
        return ok(spec, ctx)

    rig = make_rig(ledger, farm, almost_done, shutdown_grace_s=30)
    msg = rig.queue.put(event())
    t = threading.Thread(target=rig.worker.handle, args=(msg,))
    t.start()
    assert rig.runner.started.wait(5)
    time.sleep(0.3)
    rig.worker.stop.set()
    t.join(10)
    assert finished.is_set()
    assert rig.queue.settled(msg) == "deleted"


def test_message_received_while_stopping_is_given_back(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok)
    msg = rig.queue.put(event())
    real_receive = rig.queue.receive

    def receive_then_stop(wait_s: int):
        m = real_receive(wait_s)
        rig.worker.stop.set()  # SIGTERM arrives during the long poll
        return m

    rig.queue.receive = receive_then_stop  # type: ignore[method-assign]
    rig.worker.run()
    assert rig.queue.released == [(msg.message_id, 0)]
    assert rig.runner.calls == []


class Protection:
    def __init__(self, ok: bool) -> None:
        self.ok, self.acquired, self.released = ok, 0, 0

    def acquire(self) -> bool:
        self.acquired += 1
        return self.ok

    def renew(self) -> None:
        pass

    def release(self) -> None:
        self.released += 1


def test_worker_takes_no_work_while_protection_cannot_be_set(ledger, farm) -> None:
    prot = Protection(ok=False)
    rig = make_rig(ledger, farm, ok, protection=prot)
    msg = rig.queue.put(event())
    t = threading.Thread(target=rig.worker.run)
    t.start()
    time.sleep(0.3)
    rig.worker.stop.set()
    t.join(10)
    assert prot.acquired >= 1
    assert rig.queue.inbox == [msg]  # never received
    assert rig.runner.calls == []


def test_protection_is_held_around_each_job_and_released_after(ledger, farm) -> None:
    prot = Protection(ok=True)
    seen = []

    def check(spec, ctx):
        seen.append((prot.acquired, prot.released))
        return ok(spec, ctx)

    rig = make_rig(ledger, farm, check, max_jobs=1, protection=prot)
    rig.queue.put(event())
    rig.worker.run()
    assert seen == [(1, 0)]  # protected while the job ran
    assert (prot.acquired, prot.released) == (1, 1)


def test_each_finished_or_failed_job_emits_one_emf_metrics_line(ledger, farm, capsys) -> None:
    from hevcq.worker.metrics import print_metrics  # noqa: PLC0415 - the default under test

    def bad(spec, ctx):
        raise PermanentError("not a media file")

    rig = make_rig(ledger, farm, ok, emit_metrics=print_metrics)
    rig.worker.handle(rig.queue.put(event()))
    rig.runner.behaviour = bad
    rig.store.add(KEY, etag="etag2")
    rig.worker.handle(rig.queue.put(event(etag="etag2")))
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    assert [(ln["Pool"], ln["JobsDone"], ln["JobsFailed"]) for ln in lines] == [
        ("hevc", 1, 0),
        ("hevc", 0, 1),
    ]
    assert all(ln["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "hevcq" for ln in lines)


# --- versions and fenced commits --------------------------------------------------------


def committing(tmp: Path, gate: threading.Event | None = None):
    """A runner that waits for ``gate`` (or its cancel flag), then commits through ctx."""

    def run(spec: JobSpec, ctx: JobContext) -> JobResult:
        if gate is not None:
            while not gate.wait(0.01):
                if ctx.cancel.is_set():
                    raise InterruptedJob("cancelled")
        out = tmp / f"out-{spec.job.etag}"
        out.write_bytes(spec.job.etag.encode())
        meta = {META_SOURCE_ETAG: spec.job.etag}
        info = ctx.commit(out, spec.output_key, meta) if ctx.commit else None
        return done_result(spec, output_etag=info.etag if info else None)

    return run


def test_a_newer_version_uploaded_while_the_old_one_runs_is_the_one_encoded(
    ledger, farm, tmp_path
) -> None:
    gate = threading.Event()
    old = make_rig(ledger, farm, committing(tmp_path, gate), worker_id="w-old", lease_s=4)
    new = make_rig(
        ledger, farm, committing(tmp_path), worker_id="w-new", lease_s=4, store=old.store
    )  # one bucket, one ledger
    v1 = old.queue.put(event(etag="etag1"))
    running = threading.Thread(target=old.worker.handle, args=(v1,))
    running.start()
    assert wait_until(lambda: getattr(old.item(), "state", None) == "running")
    old.store.add(KEY, etag="etag2", size=6000)  # v2 uploaded while v1 runs
    v2 = new.queue.put(event(etag="etag2"))
    assert new.worker.handle(v2).verdict is Verdict.ACK
    running.join(10)
    assert not running.is_alive()
    assert old.queue.settled(v1) == "deleted"  # superseded: nothing left for that message
    item = old.item()
    assert (item.state, item.etag) == ("done", "etag2")
    output = old.store.objects["DONE/hevc/trip/clip.mp4"]
    assert output.metadata[META_SOURCE_ETAG] == "etag2"
    assert output.etag == item.output_etag
    assert [r.source_etag for r in old.publisher.results + new.publisher.results] == ["etag2"]


def test_a_late_event_of_an_older_version_never_overwrites_the_newer_output(
    ledger, farm, tmp_path
) -> None:
    rig = make_rig(ledger, farm, committing(tmp_path))
    rig.store.add(KEY, etag="etag2", size=6000)
    v2 = json.loads(event(etag="etag2"))
    v2["Records"][0]["s3"]["object"]["sequencer"] = "02"
    rig.worker.handle(rig.queue.put(json.dumps(v2)))
    late = json.loads(event(etag="etag1"))
    late["Records"][0]["s3"]["object"]["sequencer"] = "01"
    rig.store.add(KEY, etag="etag1", size=5000)  # even if the source went back meanwhile
    msg = rig.queue.put(json.dumps(late))
    rig.worker.handle(msg)
    assert rig.queue.settled(msg) == "deleted"
    assert rig.store.objects["DONE/hevc/trip/clip.mp4"].metadata[META_SOURCE_ETAG] == "etag2"
    assert len(rig.store.uploads) == 1


def test_a_worker_that_lost_its_lease_commits_and_publishes_nothing(ledger, farm, tmp_path) -> None:
    gate = threading.Event()
    rig = make_rig(ledger, farm, committing(tmp_path, gate))
    msg = rig.queue.put(event())
    running = threading.Thread(target=rig.worker.handle, args=(msg,))
    running.start()
    assert wait_until(lambda: getattr(rig.item(), "state", None) == "running")
    # Paused long enough for another worker to see the lease stale and take the job over.
    taken = rig.ledger.take_over(rig.job(), "taker", "m", 60, present(rig.ledger.get(KEY, "hevc")))
    assert taken is not None
    gate.set()  # the paused worker resumes and tries to commit
    running.join(10)
    assert "DONE/hevc/trip/clip.mp4" not in rig.store.objects
    assert rig.publisher.results == []
    assert rig.queue.settled(msg) == "untouched"  # the message is the new holder's now
    assert rig.item().worker == "taker"


def wait_until(pred, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_a_running_job_records_percent_fps_and_speed_in_the_ledger(ledger, farm) -> None:
    clock = FastClock(speed=1000)
    vis = farm["hevc"].queue.visibility_timeout_s
    seen: list[LedgerItem | None] = []

    def slow(spec, ctx):
        end = clock() + 2 * vis
        while clock() < end:
            ctx.on_progress(40.0)
            ctx.on_rates(48.5, 2.25)
            time.sleep(0.01)
        seen.append(rig.item())
        return ok(spec, ctx)

    rig = make_rig(ledger, farm, slow, clock=clock)
    rig.worker.handle(rig.queue.put(event()))
    [running] = seen
    assert running is not None
    assert (running.state, running.progress) == ("running", 40.0)
    assert (running.fps, running.speed) == (48.5, 2.25)


def test_progress_reaches_the_ledger_every_few_seconds_not_only_at_lease_renewals(
    ledger, farm
) -> None:
    # A 600 s lease renews every 150 s; the job lasts 30 s: only progress_every_s shows it.
    clock = FastClock(speed=100)
    seen: list[float | None] = []

    def job(spec, ctx):
        start = clock()
        while clock() - start < 30:
            ctx.on_progress(round(clock() - start, 1))
            item = rig.item()
            seen.append(item.progress if item is not None else None)
            time.sleep(0.005)
        return ok(spec, ctx)

    rig = make_rig(ledger, farm, job, clock=clock, lease_s=600, progress_every_s=5)
    rig.worker.handle(rig.queue.put(event()))
    recorded = sorted({p for p in seen if p})
    assert len(recorded) >= 3, recorded
    assert recorded[-1] > 20


def test_a_finished_job_keeps_the_seconds_of_its_steps(ledger, farm) -> None:
    def timed(spec: JobSpec, ctx: JobContext) -> JobResult:
        ctx.timings.update(download_s=0.5, probe_s=0.1, encode_s=7.25, verify_s=0.2, upload_s=0.4)
        return done_result(spec, output_bytes=100, input_bytes=5000)

    rig = make_rig(ledger, farm, timed)
    assert rig.worker.handle(rig.queue.put(event())).verdict is Verdict.ACK
    item = present(rig.item())
    seconds = (item.download_s, item.probe_s, item.encode_s, item.verify_s, item.upload_s)
    assert seconds == (0.5, 0.1, 7.25, 0.2, 0.4)


def test_a_scratch_disk_too_small_for_the_job_gives_it_back_without_spending_a_try(
    ledger, farm, tmp_path, monkeypatch
) -> None:
    # The disk is the worker's, not the job's: a job another worker can run never reaches
    # the dead-letter queue because this one is short of space, however often it is seen.
    rig = make_rig(ledger, farm, ok)
    rig.worker.executor.runner = JobRunner(
        rig.store,
        ffmpeg="ffmpeg",
        work_dir=tmp_path / "work",
        worker_id="w1",
        stall_timeout_s=5,
    )
    monkeypatch.setattr(
        "hevcq.worker.runner.shutil.disk_usage", lambda _p: shutil._ntuple_diskusage(1, 1, 0)
    )
    with capture_logs() as logs:
        for _ in range(rig.pool.queue.max_attempts + 1):
            msg = rig.queue.put(event(), receive_count=1, message_id="m-small")
            assert rig.worker.handle(msg).verdict is Verdict.RELEASE
            assert rig.queue.released[-1][1] > 0  # not straight back to this same worker
    assert rig.queue.dead == []
    item = rig.item()
    assert (item.state, item.attempts) == ("queued", 0)
    assert "scratch" in str(item.reason)
    assert "w1" in str(item.reason)
    assert rig.publisher.results == []
    small = [e for e in logs if e["event"] == "scratch_too_small"]
    assert len(small) == rig.pool.queue.max_attempts + 1
    assert small[0]["log_level"] == "warning"
    assert small[0]["need_mib"] > small[0]["have_mib"]


def test_a_source_deleted_between_claim_and_download_ends_with_a_result_the_client_hears(
    ledger, farm, tmp_path
) -> None:
    rig = make_rig(ledger, farm, ok)
    rig.worker.executor.runner = JobRunner(
        rig.store,
        ffmpeg="ffmpeg",
        work_dir=tmp_path / "work",
        worker_id="w1",
        stall_timeout_s=5,
    )
    real_download = rig.store.download

    def deleted_first(key, dest, **kw):
        rig.store.delete(KEY)  # gone after the claim's HEAD, before the GET
        return real_download(key, dest, **kw)

    rig.store.download = deleted_first  # type: ignore[method-assign]
    msg = rig.queue.put(event())
    assert rig.worker.handle(msg).verdict is Verdict.ACK
    assert rig.queue.settled(msg) == "deleted"
    assert rig.queue.dead == []
    (res,) = rig.publisher.results  # a waiting client hears of it
    assert (res.outcome, res.reason, res.source_etag) == ("failed", "source deleted", "etag1")
    item = rig.item()  # the dashboard and `status` read the same
    assert (item.state, item.reason, item.attempts) == ("failed", "source deleted", 0)


def skipped(spec: JobSpec, ctx: JobContext) -> JobResult:
    return done_result(spec).model_copy(
        update={"outcome": "skipped", "output_key": None, "reason": "already HEVC"}
    )


def not_a_video(spec: JobSpec, ctx: JobContext) -> JobResult:
    raise PermanentError("not a media file: Invalid data")


OUT = "DONE/hevc/trip/clip.mp4"


@pytest.mark.parametrize("behaviour", [skipped, not_a_video])
def test_a_version_without_an_output_removes_an_older_versions_output_the_ledger_never_recorded(
    ledger, farm, behaviour
) -> None:
    # What a superseded holder's write in flight leaves: v1's output under DONE/, which
    # the ledger never recorded (its holder let go without a record).
    rig = make_rig(ledger, farm, behaviour)
    rig.store.add(OUT, etag="out-v1", meta={META_SOURCE_KEY: KEY, META_SOURCE_ETAG: "etag1"})
    rig.store.add(KEY, etag="etag2", size=6000)
    rig.worker.handle(rig.queue.put(event(etag="etag2")))
    assert rig.item().etag == "etag2"
    assert OUT not in rig.store.objects


def test_a_version_without_an_output_leaves_another_sources_output_alone(ledger, farm) -> None:
    rig = make_rig(ledger, farm, skipped)
    other = {META_SOURCE_KEY: "TODO/trip/clip.mov", META_SOURCE_ETAG: "x"}
    rig.store.add(OUT, etag="out-other", meta=other)
    rig.worker.handle(rig.queue.put(event()))
    assert rig.item().state == "skipped"
    assert rig.store.objects[OUT].etag == "out-other"


@pytest.mark.parametrize(
    "measured",
    [
        {
            "vmaf": 95.4,
            "vmaf_low": 90.1,
            "vmaf_model": "vmaf_v0.6.1",
            "vmaf_neg": 94.7,
            "crf": 27,
        },
        {"xpsnr": 41.2, "xpsnr_low": 38.0, "crf": 27},
    ],
    ids=["vmaf", "xpsnr"],
)
def test_what_a_job_measured_of_its_output_goes_on_its_ledger_item_until_a_new_version(
    ledger, farm, measured: dict[str, object]
) -> None:
    def scored(spec: JobSpec, ctx: JobContext) -> JobResult:
        return done_result(spec, output_bytes=100, input_bytes=5000, **measured)

    rig = make_rig(ledger, farm, scored)
    rig.worker.handle(rig.queue.put(event()))
    item = rig.item()
    assert item is not None
    fields = QUALITY
    assert set(measured) <= set(fields)  # every figure measured is one the item keeps
    assert {f: getattr(item, f) for f in fields} == {f: measured.get(f) for f in fields}
    # A new version's job starts without the old output's figures.
    rig.store.add(KEY, etag="etag2", size=5000)
    rig.runner.behaviour = lambda spec, ctx: done_result(spec, output_bytes=90, input_bytes=5000)
    rig.worker.handle(rig.queue.put(event(etag="etag2")))
    item = rig.item()
    assert item is not None
    assert item.etag == "etag2"
    assert {f: getattr(item, f) for f in fields} == dict.fromkeys(fields)


def test_an_upload_with_a_vmaf_target_is_its_pools_crf_search_for_it_as_a_job_of_its_own(
    ledger, farm
) -> None:
    store = FakeStore()
    store.add(KEY, etag="etag1", size=5000, meta={META_TARGET_VMAF: "93"})
    rig = make_rig(ledger, farm, ok, store=store)
    assert rig.worker.handle(rig.queue.put(event())).verdict is Verdict.ACK
    spec = rig.runner.calls[0]
    assert spec.pool.quality is not None
    assert (spec.pool.quality.vmaf, spec.pool.quality.searches) == (93.0, True)
    # Its own settings: the output made for the target is not the pool's plain output,
    # and the client, deriving the pool the same way, agrees on the hash.
    wanted = rig.pool.with_target(93).settings_hash()
    assert spec.job.settings_hash == wanted != rig.pool.settings_hash()
    item = rig.item()
    assert item is not None
    assert (item.state, item.settings_hash) == ("done", wanted)


@pytest.mark.parametrize("raw", ["high", "0", "101", "nan", "inf", "-5"])
def test_an_upload_whose_vmaf_target_is_not_one_is_dead_lettered_with_a_one_line_reason(
    ledger, farm, raw: str
) -> None:
    store = FakeStore()
    store.add(KEY, etag="etag1", size=5000, meta={META_TARGET_VMAF: raw})
    rig = make_rig(ledger, farm, ok, store=store)
    settle = rig.worker.handle(rig.queue.put(event()))
    assert settle.verdict is Verdict.DEAD
    assert settle.failure_class is FailureClass.PERMANENT
    assert settle.reason is not None
    assert settle.reason.startswith("the upload's VMAF target")
    assert "\n" not in settle.reason
    assert rig.runner.calls == []
