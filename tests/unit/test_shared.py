"""One encode for two pools: the pure rules, and a rendition worker with fakes.

A 1920x1080 H.264 source makes the same encode in the ``hevc`` and ``1080p`` pools; the
``1080p`` worker copies the ``hevc`` output once it is committed, and never encodes.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

import pytest
from structlog.testing import capture_logs

from hevcq.aws.clients import classify
from hevcq.ledger import Claimed, JobKey, LedgerItem, State
from hevcq.media.decide import KEPT_ORIGINAL, copiers_of, may_share_encode, shares_encode
from hevcq.media.model import MediaInfo
from hevcq.messages import JobResult
from hevcq.metadata import (
    META_ATTEMPT,
    META_CLIENT_SETTLED,
    META_COPIED_ETAG,
    META_COPIED_FROM,
    META_POOL,
    META_POOLS,
    META_SETTINGS,
    META_SOURCE_ETAG,
)
from hevcq.objects import ObjectStore
from hevcq.pools import Pool, Quality, QueueSpec, load_farm, primary_pool
from hevcq.worker.config import WorkerConfig
from hevcq.worker.loop import Worker
from hevcq.worker.precheck import SETTLED_EARLIER
from hevcq.worker.runner import JobContext, JobSpec, job_result
from hevcq.worker.settle import Verdict
from hevcq.worker.shared import (
    COPY_CLAIM_PREFIX,
    MAX_BLIND_WAIT_S,
    CopyAtCommit,
    CopyOutput,
    EncodeHere,
    SettleAlike,
    SharedEncode,
    Wait,
    judge,
    may_wait,
    wait_s,
)
from tests.conftest import WORKERS_DIR
from tests.fakes import (
    FakePublisher,
    FakeQueue,
    FakeStore,
    MemoryLedger,
    ScriptedRunner,
    done_result,
    present,
)
from tests.unit.media_shapes import clip
from tests.unit.test_worker import BUCKET, KEY, event

HEVC_OUT = "DONE/hevc/trip/clip.mp4"
RENDITION_OUT = "DONE/1080p/trip/clip.1080p.mp4"
FULL_HD = clip(1920, 1080)


def with_encode(pool: Pool, **encode: object) -> Pool:
    return pool.model_copy(update={"encode": pool.encode.model_copy(update=encode)})


# The pure rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "rendition", "shared"),
    [
        (FULL_HD, "1080p", True),
        (clip(1080, 1920), "1080p", True),  # portrait: 1080 on the short side
        (clip(1920, 1080, rotation=90), "1080p", True),  # a phone clip, displayed portrait
        (clip(3840, 2160), "1080p", False),  # 4K: the rendition scales
        (clip(1920, 1080), "720p", False),  # another size, another crf
        (clip(1280, 720), "720p", False),  # same size, but crf 28 against 26
        (clip(1921, 1081), "1080p", False),  # hevc crops an odd size, 1080p scales
        (clip(1920, 1080, codec="hevc"), "1080p", False),  # hevc skips: nothing to share
        (clip(1280, 720), "1080p", False),  # 1080p skips: smaller than 1080p
    ],
)
def test_the_rendition_shares_the_primary_encode_only_when_the_plans_are_equal(
    farm, info, rendition, shared
) -> None:
    assert shares_encode(info, farm["hevc"], farm[rendition], "TODO/a.mp4") is shared


@pytest.mark.parametrize(
    ("change", "shared"),
    [
        ({"crf": 24}, False),
        ({"preset": "slow"}, False),
        ({"audio_bitrate_kbps": 128}, False),  # in the plan, even where AAC is copied
        ({"x265_params": {"aq-mode": "3"}}, False),
        ({}, True),
    ],
)
def test_any_setting_that_changes_the_bytes_stops_the_sharing(farm, change, shared) -> None:
    rendition = with_encode(farm["1080p"], **change)
    assert shares_encode(FULL_HD, farm["hevc"], rendition, "TODO/a.mp4") is shared


def test_audio_encoded_at_another_bitrate_stops_the_sharing(farm) -> None:
    pcm = clip(1920, 1080, audio=("pcm_s16le",))  # not taken by MP4: encoded to AAC
    rendition = with_encode(farm["1080p"], audio_bitrate_kbps=128)
    assert shares_encode(pcm, farm["hevc"], farm["1080p"], "TODO/a.mp4")
    assert not shares_encode(pcm, farm["hevc"], rendition, "TODO/a.mp4")


def test_the_pools_that_may_copy_the_primarys_output_are_known_from_the_pools_alone(
    farm,
) -> None:
    """The ingest keeps the primary's output for these (``fetch._may_be_copied``): the
    ladder (many objects and a poster) and another codec never copy it."""
    optional = load_farm(WORKERS_DIR / "optional")
    pools = {**farm, **optional}
    assert copiers_of(farm["hevc"], pools.values()) == {"720p", "1080p"}
    assert copiers_of(None, pools.values()) == frozenset()
    for name in ("hls", "av1"):
        assert not may_share_encode(farm["hevc"], pools[name])
        assert not shares_encode(FULL_HD, farm["hevc"], pools[name], "TODO/a.mp4")
    full = farm["1080p"].model_copy(update={"verify": "full"})
    assert not may_share_encode(farm["hevc"], full)  # checked more strictly: never a copy


def test_a_rendition_checked_more_strictly_than_the_primary_encodes_itself(farm) -> None:
    full = farm["1080p"].model_copy(update={"verify": "full"})
    assert not shares_encode(FULL_HD, farm["hevc"], full, "TODO/a.mp4")
    strict_primary = farm["hevc"].model_copy(update={"verify": "full"})
    assert shares_encode(FULL_HD, strict_primary, farm["1080p"], "TODO/a.mp4")


def test_a_rendition_with_a_quality_target_of_its_own_encodes_itself(farm) -> None:
    # A copy of the primary's output would never have been scored against its target.
    target = Quality(vmaf=95)
    scored = farm["1080p"].model_copy(update={"quality": target})
    assert not shares_encode(FULL_HD, farm["hevc"], scored, "TODO/a.mp4")
    both = farm["hevc"].model_copy(update={"quality": target})
    assert shares_encode(FULL_HD, both, scored, "TODO/a.mp4")  # the same target: shared
    assert shares_encode(FULL_HD, both, farm["1080p"], "TODO/a.mp4")


def test_the_primary_is_the_one_pool_that_may_replace_originals(farm) -> None:
    assert present_pool(primary_pool(farm.values())).name == "hevc"
    assert primary_pool([farm["720p"], farm["1080p"]]) is None
    twin = farm["hevc"].model_copy(update={"name": "hevc2"})
    assert primary_pool([farm["hevc"], twin]) is None  # two would each replace: none


def present_pool(pool: Pool | None) -> Pool:
    assert pool is not None
    return pool


JOB = JobKey(KEY, "1080p", "etag1", "r-hash")


def primary_item(state: State, **kw: object) -> LedgerItem:
    values: dict[str, object] = {"etag": "etag1", "settings_hash": "p-hash"} | kw
    return LedgerItem(key=KEY, pool="hevc", state=state, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("item", "step"),
    [
        (None, Wait),
        (primary_item(State.RUNNING), Wait),
        (primary_item(State.QUEUED, attempts=1), Wait),  # a transient failure: it tries again
        (primary_item(State.INTERRUPTED), Wait),
        (primary_item(State.DONE, etag="etag0"), Wait),  # an older version: ours comes next
        (primary_item(State.DONE, output_key=HEVC_OUT, output_etag="o1"), CopyOutput),
        (primary_item(State.DONE), EncodeHere),  # done without an output: nothing to copy
        (
            primary_item(State.DONE, settings_hash="old", output_key=HEVC_OUT, output_etag="o1"),
            EncodeHere,
        ),
        (primary_item(State.SKIPPED, reason=KEPT_ORIGINAL), SettleAlike),
        (primary_item(State.SKIPPED, reason="settled in an earlier run"), EncodeHere),
        (primary_item(State.FAILED, reason="not a media file"), EncodeHere),
    ],
)
def test_what_the_rendition_does_follows_the_primary_item(item, step) -> None:
    assert type(judge(item, JOB, "p-hash")) is step


def test_the_wait_is_the_primary_encode_time_left_when_its_progress_tells() -> None:
    running = primary_item(State.RUNNING, progress=50.0, speed=2.0)
    assert wait_s(running, 120.0, 1) == 33  # 60 s of source left at 2x, plus a margin
    assert wait_s(primary_item(State.RUNNING), 120.0, 1) == 10  # no speed yet: blind
    assert [wait_s(None, None, n) for n in (1, 2, 3)] == [10, 20, 40]
    assert wait_s(None, None, 30) == MAX_BLIND_WAIT_S


def test_waiting_stops_while_the_message_keeps_a_whole_retry_budget_of_receives() -> None:
    q = QueueSpec(max_attempts=3, max_receive_count=12)
    assert [n for n in range(1, 13) if may_wait(n, q)] == [1, 2, 3, 4, 5, 6, 7, 8]


# A rendition worker with fakes ---------------------------------------------------------


@dataclass
class Rendition:
    worker: Worker
    queue: FakeQueue
    store: FakeStore
    runner: ScriptedRunner
    publisher: FakePublisher
    ledger: MemoryLedger
    hevc: Pool
    pool: Pool

    def primary_job(self) -> JobKey:
        return JobKey(KEY, "hevc", "etag1", self.hevc.settings_hash())

    def item(self) -> LedgerItem:
        return present(self.ledger.get(KEY, self.pool.name))

    def primary_claims(self) -> Claimed:
        claim = self.ledger.claim(self.primary_job(), "hevc-worker", "hevc-msg", lease_s=300)
        assert isinstance(claim, Claimed)
        return claim

    def primary_commits(self) -> str:
        claim = self.primary_claims()
        self.store.add(
            HEVC_OUT,
            etag="hevc-out-1",
            data=b"encoded once",
            meta={META_SOURCE_ETAG: "etag1", META_POOL: "hevc"},
        )
        self.ledger.finish(
            claim.lease,
            State.DONE,
            {
                "output_key": HEVC_OUT,
                "output_etag": "hevc-out-1",
                "duration_s": 12.5,
            },
        )
        return "hevc-out-1"

    def primary_ends(self, state: State, reason: str) -> None:
        claim = self.primary_claims()
        self.ledger.finish(claim.lease, state, {"reason": reason})


def encode(spec: JobSpec, ctx: JobContext) -> JobResult:
    return done_result(spec, output_bytes=100, input_bytes=5000)


def rendition(ledger: MemoryLedger, farm: dict[str, Pool], info: MediaInfo = FULL_HD) -> Rendition:
    pool, hevc = farm["1080p"], farm["hevc"]
    queue, store, pub = FakeQueue(), FakeStore(), FakePublisher()
    store.add(KEY, etag="etag1", size=5000)
    runner = ScriptedRunner(encode)

    def probe(_store: ObjectStore, key: str, etag: str, size: int) -> MediaInfo:
        assert (key, etag, size) == (KEY, "etag1", 5000)  # exactly the job's version
        return info

    cfg = WorkerConfig(
        worker_id="w1", bucket=BUCKET, poll_wait_s=0, lease_s=60, heartbeat_max_sleep_s=0.01
    )
    w = Worker(
        pool=pool,
        queue=queue,
        ledger=ledger,
        runner=runner,
        store=store,
        publisher=pub,
        config=cfg,
        stop=threading.Event(),
        emit_metrics=lambda _r: None,
        classify=classify,
        shared=SharedEncode(store, ledger, hevc, pool, probe=probe),
    )
    return Rendition(w, queue, store, runner, pub, ledger, hevc, pool)


def test_equal_plans_the_rendition_copies_the_committed_output_and_never_encodes(
    ledger, farm
) -> None:
    r = rendition(ledger, farm)
    etag = r.primary_commits()
    msg = r.queue.put(event())
    assert r.worker.handle(msg).verdict is Verdict.ACK
    assert r.runner.calls == []  # no encode
    assert r.store.copies == [(HEVC_OUT, RENDITION_OUT)]
    out = present_object(r.store, RENDITION_OUT)
    assert r.store.data[RENDITION_OUT] == b"encoded once"
    assert out.metadata[META_COPIED_FROM] == HEVC_OUT
    assert out.metadata[META_COPIED_ETAG] == etag
    # It is the rendition's own output, of this source version, under its own lease.
    assert out.metadata[META_POOL] == "1080p"
    assert out.metadata[META_SOURCE_ETAG] == "etag1"
    assert out.metadata[META_SETTINGS] == r.pool.settings_hash()
    assert out.metadata[META_ATTEMPT].startswith("w1/")
    item = r.item()
    assert (item.state, item.output_key, item.output_etag) == ("done", RENDITION_OUT, out.etag)
    assert (item.copied_from, item.copied_from_etag) == (HEVC_OUT, etag)
    (res,) = r.publisher.results
    assert (res.outcome, res.output_key, res.output_etag) == ("done", RENDITION_OUT, out.etag)
    assert (res.copied_from, res.copied_from_etag) == (HEVC_OUT, etag)
    assert r.queue.settled(msg) == "deleted"


def present_object(store: FakeStore, key: str):
    info = store.head(key)
    assert info is not None, f"no object {key}"
    return info


@pytest.mark.parametrize("primary", ["not received", "running"])
def test_primary_not_done_the_message_comes_back_later_and_nothing_is_spent(
    ledger, farm, primary
) -> None:
    r = rendition(ledger, farm)
    if primary == "running":
        r.primary_claims()
    msg = r.queue.put(event())
    assert r.worker.handle(msg).verdict is Verdict.RELEASE
    ((mid, delay),) = r.queue.released
    assert mid == msg.message_id
    assert delay >= 5
    assert r.runner.calls == []
    assert r.store.copies == []
    assert r.publisher.results == []
    item = r.item()
    assert (item.state, item.attempts, item.worker) == ("queued", 0, "w1")
    assert "waiting for pool hevc" in (item.reason or "")
    # The primary commits; the message comes back and the rendition copies.
    r.primary_commits() if primary == "not received" else _finish_running(r)
    again = r.queue.put(event(), message_id=msg.message_id, receive_count=2)
    assert r.worker.handle(again).verdict is Verdict.ACK
    assert r.runner.calls == []
    assert r.store.copies == [(HEVC_OUT, RENDITION_OUT)]
    assert (r.item().state, r.item().attempts) == ("done", 0)


def _finish_running(r: Rendition) -> None:
    item = present(r.ledger.get(KEY, "hevc"))
    r.ledger.change(
        KEY,
        "hevc",
        state=State.DONE,
        output_key=HEVC_OUT,
        output_etag="hevc-out-1",
        rvn=item.rvn + "x",
    )
    r.store.add(HEVC_OUT, etag="hevc-out-1", data=b"encoded once")


def test_primary_skipped_as_larger_than_the_source_the_rendition_settles_alike(
    ledger, farm
) -> None:
    r = rendition(ledger, farm)
    r.primary_ends(State.SKIPPED, KEPT_ORIGINAL)
    msg = r.queue.put(event())
    assert r.worker.handle(msg).verdict is Verdict.ACK
    assert r.runner.calls == []
    assert r.store.copies == []
    assert (r.item().state, r.item().reason) == ("skipped", KEPT_ORIGINAL)
    (res,) = r.publisher.results
    assert (res.outcome, res.reason) == ("skipped", KEPT_ORIGINAL)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (State.FAILED, "not a media file"),
        (State.SKIPPED, SETTLED_EARLIER),
    ],
)
def test_primary_failed_or_skipped_otherwise_the_rendition_encodes(
    ledger, farm, state, reason
) -> None:
    r = rendition(ledger, farm)
    r.primary_ends(state, reason)
    assert r.worker.handle(r.queue.put(event())).verdict is Verdict.ACK
    assert len(r.runner.calls) == 1
    assert r.store.copies == []
    assert r.item().copied_from is None


def test_primary_settings_changed_the_rendition_encodes(ledger, farm) -> None:
    r = rendition(ledger, farm)
    r.primary_commits()
    r.ledger.change(KEY, "hevc", settings_hash="an-older-hevc-file")
    assert r.worker.handle(r.queue.put(event())).verdict is Verdict.ACK
    assert len(r.runner.calls) == 1
    assert r.store.copies == []


def test_different_plans_a_4k_source_is_encoded_without_waiting(ledger, farm) -> None:
    r = rendition(ledger, farm, info=clip(3840, 2160))
    assert r.worker.handle(r.queue.put(event())).verdict is Verdict.ACK
    assert len(r.runner.calls) == 1
    assert r.queue.released == []
    assert r.store.copies == []


def test_a_primary_output_gone_before_the_copy_means_an_encode(ledger, farm) -> None:
    r = rendition(ledger, farm)
    r.primary_commits()
    r.store.delete(HEVC_OUT)  # the client fetched it and cleaned up
    assert r.worker.handle(r.queue.put(event())).verdict is Verdict.ACK
    assert len(r.runner.calls) == 1
    assert r.store.copies == []


@pytest.mark.parametrize(
    "meta",
    [{META_CLIENT_SETTLED: "hevc"}, {META_POOLS: "1080p"}],
    ids=["settled-earlier", "not-chosen"],
)
def test_a_primary_the_client_settled_is_not_waited_for(ledger, farm, meta) -> None:
    r = rendition(ledger, farm)
    r.store.add(KEY, etag="etag1", size=5000, meta=meta)
    msg = r.queue.put(event())
    assert r.worker.handle(msg).verdict is Verdict.ACK
    assert len(r.runner.calls) == 1
    assert r.queue.released == []


def test_a_rendition_the_client_settled_earlier_skips_without_waiting_or_copying(
    ledger, farm
) -> None:
    r = rendition(ledger, farm)
    r.primary_commits()
    r.store.add(KEY, etag="etag1", size=5000, meta={META_CLIENT_SETTLED: "1080p"})
    assert r.worker.handle(r.queue.put(event())).verdict is Verdict.ACK
    assert r.store.copies == []
    assert len(r.runner.calls) == 1  # the runner's precheck skips it, without a download


def test_waiting_ends_before_the_redrive_policy_and_the_rendition_encodes(ledger, farm) -> None:
    r = rendition(ledger, farm)
    q = r.pool.queue
    late = r.queue.put(event(), receive_count=q.max_receive_count - q.max_attempts)
    assert r.worker.handle(late).verdict is Verdict.ACK
    assert len(r.runner.calls) == 1
    assert r.queue.released == []


def older_version_output(r: Rendition) -> None:
    """An older version's rendition output, committed and recorded in the ledger."""
    claim = r.ledger.claim(JobKey(KEY, "1080p", "etag0", r.pool.settings_hash()), "old", "m0", 60)
    assert isinstance(claim, Claimed)
    r.store.add(RENDITION_OUT, etag="old-out", meta={"hevcq-source-key": KEY})
    r.ledger.finish(
        claim.lease, State.DONE, {"output_key": RENDITION_OUT, "output_etag": "old-out"}
    )


def test_the_copy_replaces_an_older_version_output_only_under_the_fence(ledger, farm) -> None:
    r = rendition(ledger, farm)
    # An older version's rendition output is the recorded one; a foreign write came since.
    older_version_output(r)
    r.store.add(RENDITION_OUT, etag="stale-write", meta={META_ATTEMPT: "paused-worker/x"})
    r.primary_commits()
    with capture_logs() as logs:
        assert r.worker.handle(r.queue.put(event())).verdict is Verdict.ACK
    # The compare-and-swap found bytes nobody recorded, checked the lease, replaced them.
    assert [e["found"] for e in logs if e["event"] == "output_not_as_recorded"] == ["stale-write"]
    assert r.store.copies == [(HEVC_OUT, RENDITION_OUT)]
    assert present_object(r.store, RENDITION_OUT).metadata[META_SOURCE_ETAG] == "etag1"
    assert r.runner.calls == []


def test_a_rendition_that_lost_its_lease_copies_and_publishes_nothing(ledger, farm) -> None:
    r = rendition(ledger, farm)
    r.primary_commits()
    shared = r.worker.executor.shared
    assert shared is not None

    def taken_over_meanwhile(store: ObjectStore, key: str, etag: str, size: int) -> MediaInfo:
        r.ledger.change(KEY, "1080p", worker="w2", rvn="taken-over")
        return FULL_HD

    r.worker.executor.shared = dataclasses.replace(shared, probe=taken_over_meanwhile)
    msg = r.queue.put(event())
    assert r.worker.handle(msg).verdict is Verdict.LOST
    assert r.store.copies == []
    assert r.publisher.results == []
    assert r.item().worker == "w2"
    assert r.queue.settled(msg) == "untouched"


def test_a_newer_version_supersedes_a_waiting_rendition_as_before(ledger, farm) -> None:
    r = rendition(ledger, farm)
    r.primary_claims()  # the primary runs version 1
    v1 = r.queue.put(event())
    assert r.worker.handle(v1).verdict is Verdict.RELEASE  # waits for it
    # Version 2 is uploaded; the primary encodes and commits it.
    r.store.add(KEY, etag="etag2", size=5000)
    r.ledger.change(
        KEY,
        "hevc",
        etag="etag2",
        state=State.DONE,
        output_key=HEVC_OUT,
        output_etag="hevc-out-2",
        rvn="v2",
    )
    r.store.add(HEVC_OUT, etag="hevc-out-2", data=b"version 2 encoded")
    again = r.queue.put(event(), message_id=v1.message_id, receive_count=2)
    assert r.worker.handle(again).verdict is Verdict.ACK  # version 1 is moot: dropped
    assert r.store.copies == []
    assert r.publisher.results == []
    # Version 2's own event: the probe sees version 2, the copy is version 2's output.
    shared = r.worker.executor.shared
    assert shared is not None
    r.worker.executor.shared = dataclasses.replace(shared, probe=lambda *_: FULL_HD)
    v2 = r.queue.put(event(etag="etag2"))
    assert r.worker.handle(v2).verdict is Verdict.ACK
    assert r.store.copies == [(HEVC_OUT, RENDITION_OUT)]
    out = present_object(r.store, RENDITION_OUT)
    assert (out.metadata[META_SOURCE_ETAG], out.metadata[META_COPIED_ETAG]) == (
        "etag2",
        "hevc-out-2",
    )
    assert r.store.data[RENDITION_OUT] == b"version 2 encoded"
    assert (r.item().etag, r.item().state) == ("etag2", "done")
    assert r.runner.calls == []


# --- the primary copies at its commit ----------------------------------------------------


def primary_worker(
    r: Rendition, kept_original: bool = False
) -> tuple[Worker, FakeQueue, FakePublisher]:
    """The hevc pool's worker on the same bucket and ledger, copying for ``r``'s pool;
    ``kept_original``: its encode comes out larger than the source, so it keeps it."""

    def commit(spec: JobSpec, ctx: JobContext) -> JobResult:
        if kept_original:
            return job_result(spec, "skipped", "hevc-w", reason=KEPT_ORIGINAL, input_bytes=5000)
        r.store.add(
            spec.output_key,
            etag="hevc-out-1",
            data=b"encoded once",
            meta={META_SOURCE_ETAG: spec.job.etag, META_POOL: "hevc"},
        )
        return done_result(spec, output_etag="hevc-out-1", output_bytes=12, input_bytes=5000)

    queue, pub = FakeQueue(), FakePublisher()
    w = Worker(
        pool=r.hevc,
        queue=queue,
        ledger=r.ledger,
        runner=ScriptedRunner(commit),
        store=r.store,
        publisher=pub,
        config=WorkerConfig(
            worker_id="hevc-w", bucket=BUCKET, poll_wait_s=0, lease_s=60, heartbeat_max_sleep_s=0.01
        ),
        stop=threading.Event(),
        emit_metrics=lambda _r: None,
        classify=classify,
        copies=CopyAtCommit(
            r.store, r.ledger, pub, r.hevc, (r.pool,), 60, probe=lambda *_: FULL_HD
        ),
    )
    return w, queue, pub


def test_the_primary_copies_for_the_rendition_the_moment_it_commits(ledger, farm) -> None:
    r = rendition(ledger, farm)
    primary, queue, pub = primary_worker(r)
    assert primary.handle(queue.put(event())).verdict is Verdict.ACK
    # The rendition's job is done by the time the primary's message is settled.
    assert r.store.copies == [(HEVC_OUT, RENDITION_OUT)]
    item = r.item()
    assert (item.state, item.output_key, item.copied_from) == ("done", RENDITION_OUT, HEVC_OUT)
    assert [(res.pool, res.outcome) for res in pub.results] == [("hevc", "done"), ("1080p", "done")]
    assert pub.results[1].copied_from == HEVC_OUT
    # The rendition's own message, whenever it comes, finds the job finished: no work.
    msg = r.queue.put(event())
    assert r.worker.handle(msg).verdict is Verdict.ACK
    assert r.runner.calls == []
    assert r.store.copies == [(HEVC_OUT, RENDITION_OUT)]
    assert r.queue.settled(msg) == "deleted"


def test_a_primary_that_keeps_the_original_settles_the_rendition_alike_at_once(
    ledger, farm
) -> None:
    r = rendition(ledger, farm)
    primary, queue, pub = primary_worker(r, kept_original=True)
    assert primary.handle(queue.put(event())).verdict is Verdict.ACK
    # No guessed wait: the rendition's job is settled when the primary's is.
    assert (r.item().state, r.item().reason) == ("skipped", KEPT_ORIGINAL)
    assert [(res.pool, res.outcome, res.reason) for res in pub.results] == [
        ("hevc", "skipped", KEPT_ORIGINAL),
        ("1080p", "skipped", KEPT_ORIGINAL),
    ]
    assert r.store.copies == []
    msg = r.queue.put(event())
    assert r.worker.handle(msg).verdict is Verdict.ACK
    assert r.runner.calls == []
    assert r.queue.settled(msg) == "deleted"


def test_a_rendition_with_an_older_output_is_left_to_its_own_worker_to_settle(ledger, farm) -> None:
    """Its own worker drops the older version's output as it settles; the copy does not."""
    r = rendition(ledger, farm)
    older_version_output(r)
    primary, queue, pub = primary_worker(r, kept_original=True)
    assert primary.handle(queue.put(event())).verdict is Verdict.ACK
    assert [res.pool for res in pub.results] == ["hevc"]
    assert r.item().state == "queued"  # given back untouched, nothing spent
    msg = r.queue.put(event())
    assert r.worker.handle(msg).verdict is Verdict.ACK
    assert (r.item().state, r.item().reason) == ("skipped", KEPT_ORIGINAL)
    assert r.store.head(RENDITION_OUT) is None  # the older version's output went with it


def test_the_primary_leaves_a_rendition_job_its_own_worker_holds(ledger, farm) -> None:
    r = rendition(ledger, farm)
    held = r.ledger.claim(
        JobKey(KEY, "1080p", "etag1", r.pool.settings_hash()), "w-1080p", "m-1080p", 60
    )
    assert isinstance(held, Claimed)
    primary, queue, pub = primary_worker(r)
    assert primary.handle(queue.put(event())).verdict is Verdict.ACK
    assert r.store.copies == []
    assert [res.pool for res in pub.results] == ["hevc"]
    assert r.item().worker == "w-1080p"


def test_a_copy_that_cannot_be_made_gives_the_job_back_to_the_rendition(ledger, farm) -> None:
    r = rendition(ledger, farm)
    r.store.fail[RENDITION_OUT] = RuntimeError("copy refused")
    primary, queue, pub = primary_worker(r)
    assert primary.handle(queue.put(event())).verdict is Verdict.ACK  # the primary is settled
    assert [res.pool for res in pub.results] == ["hevc"]
    item = r.item()
    assert (item.state, item.attempts) == ("queued", 0)  # nothing spent: its worker takes it
    del r.store.fail[RENDITION_OUT]
    assert r.worker.handle(r.queue.put(event())).verdict is Verdict.ACK
    assert r.item().state == "done"


def test_a_rendition_message_meeting_a_copy_in_progress_is_not_dropped(ledger, farm) -> None:
    r = rendition(ledger, farm)
    job = JobKey(KEY, "1080p", "etag1", r.pool.settings_hash())
    copying = r.ledger.claim(job, "hevc-w", COPY_CLAIM_PREFIX + "j", 60)
    assert isinstance(copying, Claimed)
    done = threading.Event()

    def copy_in_progress() -> None:  # the copying primary renews its lease: it is alive
        lease = copying.lease
        while not done.wait(0.1):
            lease = r.ledger.renew(lease)

    renewer = threading.Thread(target=copy_in_progress, daemon=True)
    renewer.start()
    msg = r.queue.put(event())
    try:
        # Held under no message of its own: the rendition's message must come back, not vanish.
        assert r.worker.handle(msg).verdict is Verdict.RELEASE
    finally:
        done.set()
        renewer.join()
    assert r.queue.settled(msg) == "released"
