"""Workers under stress: long jobs, SIGTERM, SIGKILL chaos and a corpus of bad input."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hevcq.aws.ledger import DynamoLedger
from hevcq.aws.s3 import S3Store
from hevcq.bundle import parts_prefix, token_of
from hevcq.farm.client import Farm
from hevcq.jobs import DeadLetter, QueueDepth
from hevcq.library.results import peek_dead_letters
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.samples import make_clip
from hevcq.metadata import META_PARTS, META_SOURCE_ETAG
from tests.e2e.farmkit import (
    WorkerProc,
    collector,
    count_events,
    pool_dir,
    proxied_stack,
    slow_ffmpeg,
    stack,
    wait_for,
)
from tests.e2e.test_still_pictures import make_picture

# The suite runs both chaos acts at a size that keeps it within its time budget;
# `make chaos` runs them at the size the promise was first proven at (CHAOS_JOBS=100).
CHAOS_JOBS = int(os.environ.get("CHAOS_JOBS", "0"))
# Each act runs with a file pool and with the ladder pool (an output of many objects).
# The ladder's second act is `make chaos`'s only: the suite keeps to its time budget.
CHAOS_POOLS = ["hevc", "hls"]
ACT_TWO_POOLS = [
    "hevc",
    pytest.param(
        "hls",
        marks=pytest.mark.skipif(not CHAOS_JOBS, reason="`make chaos` runs it (CHAOS_JOBS)"),
    ),
]

# Tests that time faults (outages, clock steps, pauses) run one after another on one
# xdist worker: two of them side by side would skew each other's timing.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timed-faults")]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "tiny.mp4"
    return make_clip(path, width=128, height=72, seconds=0.5, fps=10)


def put(farm, key: str, body: bytes) -> str:
    resp = farm.clients.s3.put_object(Bucket=farm.refs.bucket, Key=key, Body=body)
    return resp["ETag"].strip('"')


def client(farm) -> Farm:
    """The test's own view of the farm (its clients talk to the endpoint directly)."""
    return Farm(farm.clients, farm.refs, label="test")


def depth(farm, pool: str = "hevc") -> QueueDepth:
    return next(d for d in client(farm).depths() if d.pool == pool)


def dead_letters(farm, pool: str = "hevc") -> list[DeadLetter]:
    return client(farm).dead_letters(pool, wait_s=0)


def test_job_three_times_the_visibility_timeout_runs_on_exactly_one_of_two_workers(
    tmp_path: Path, tiny_clip: Path
) -> None:
    vis = 10
    with stack(tmp_path, pool_dir(tmp_path, visibility_timeout_s=vis)) as farm:
        slow = slow_ffmpeg(tmp_path, 3 * vis + 2)
        workers = [
            WorkerProc(farm, "hevc", tmp_path / f"w{i}.log", ffmpeg=slow, log_level="debug")
            for i in range(2)
        ]
        key = "TODO/long job.mp4"
        put(farm, key, tiny_clip.read_bytes())
        col = collector(farm, [key])
        assert col.wait(timeout_s=120)
        for w in workers:
            w.proc.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.proc.wait(30) == 0
    logs = [w.log for w in workers]
    assert sum(count_events(logs, "transcode_started").values()) == 1
    assert sum(count_events(logs, "output_uploaded").values()) == 1
    assert sum(count_events(logs, "heartbeat_extended", "timeout_s").values()) >= 5
    (result,) = col.results.values()
    assert result.outcome == "done"


# SIGHUP: a worker started from a terminal that closed (an ssh session dropped).
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_releases_the_job_at_once_and_cleans_up(
    tmp_path: Path, tiny_clip: Path, sig: signal.Signals
) -> None:
    with stack(tmp_path, pool_dir(tmp_path, visibility_timeout_s=60)) as farm:
        work = tmp_path / "work"
        w = WorkerProc(
            farm,
            "hevc",
            tmp_path / "w.log",
            ffmpeg=slow_ffmpeg(tmp_path, 120),
            shutdown_grace_s=1,
            work_dir=work,
        )
        key = "TODO/interrupted.mp4"
        put(farm, key, tiny_clip.read_bytes())
        ledger = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table)
        assert wait_for(lambda: getattr(ledger.get(key, "hevc"), "state", None) == "running", 30)
        assert wait_for(lambda: any(e["event"] == "transcode_started" for e in w.events()), 30)
        w.proc.send_signal(sig)
        assert w.proc.wait(20) == 0
        item = ledger.get(key, "hevc")
        assert item is not None
        assert item.state == "interrupted"
        assert item.attempts == 0
        # Visible again at once, not after the 60 s visibility timeout.
        msgs = farm.clients.sqs.receive_message(
            QueueUrl=farm.refs.pools["hevc"].queue_url, WaitTimeSeconds=2
        ).get("Messages", [])
        assert len(msgs) == 1
        assert list(work.iterdir()) == []  # scratch files removed


class Chaos:
    """Worker processes that a driver SIGKILLs mid-encode and replaces."""

    def __init__(self, farm, tmp: Path, n_workers: int, seed: int, pool: str = "hevc") -> None:
        self.farm, self.tmp, self.rnd, self.pool = farm, tmp, random.Random(seed), pool
        self.slow = slow_ffmpeg(tmp, 1.0)  # long enough that kills land mid-encode
        self.logs: list[Path] = []
        self.kills = 0
        self.encodes_killed = 0  # kills that landed while an encode ran (each costs one)
        # Jobs whose worker was killed while it uploaded: it may have committed the output
        # before its "output_uploaded" line (the job is then settled, not encoded again).
        self.killed_uploading: set[str] = set()
        self.workers = [self._spawn() for _ in range(n_workers)]

    def _spawn(self) -> WorkerProc:
        self.logs.append(self.tmp / f"worker-{len(self.logs)}.log")
        return WorkerProc(self.farm, self.pool, self.logs[-1], lease_s=12, ffmpeg=self.slow)

    def maybe_kill(self, max_kills: int) -> None:
        """Now and then, SIGKILL a worker in the middle of a job (claimed, encoding or
        checking, or uploading) and start a replacement."""
        busy = [i for i, w in enumerate(self.workers) if _mid_job(w)]
        if self.kills >= max_kills or not busy or self.rnd.random() >= 0.5:
            return
        victim = self.rnd.choice(busy)
        # Seen before the kill. An encode cannot reach its commit in the moment between
        # (an upload follows it), so a kill seen encoding costs that encode. A kill seen
        # uploading may land before the commit (the job is encoded again) or after it
        # (the job is settled as it is): it counts as neither.
        last = self.workers[victim].events()[-1]
        self.workers[victim].proc.send_signal(signal.SIGKILL)
        self.workers[victim].proc.wait()
        self.kills += 1
        self.encodes_killed += last.get("event") == "transcode_started"
        if last.get("event") == "transcode_finished":
            self.killed_uploading.add(str(last.get("key")))
        self.workers[victim] = self._spawn()

    def stop(self) -> None:
        for w in self.workers:
            w.proc.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.proc.wait(30)
            except subprocess.TimeoutExpired:
                w.proc.kill()


# A worker's last line while it holds a job: claimed it, encoding (a ladder's check runs
# before its ``transcode_finished``), or encoded and uploading.
_MID_JOB = frozenset({"job_claimed", "transcode_started", "transcode_finished"})


def _last_event(w: WorkerProc) -> str | None:
    events = [e.get("event") for e in w.events()]
    return events[-1] if events else None


def _mid_job(w: WorkerProc) -> bool:
    return _last_event(w) in _MID_JOB


def _encoding(w: WorkerProc) -> bool:
    events = [e.get("event") for e in w.events()]
    return bool(events) and events[-1] == "transcode_started"


@pytest.mark.parametrize("pool", CHAOS_POOLS)
def test_chaos_sigkill_workers_mid_job_loses_and_duplicates_nothing(
    tmp_path: Path, tiny_clip: Path, pool: str
) -> None:
    # Enough work that every kill lands on a running encode.
    n_jobs = CHAOS_JOBS or (30 if pool == "hevc" else 16)
    max_kills = max(8, n_jobs * 15 // 100)
    wdir = pool_dir(tmp_path, (pool,), visibility_timeout_s=10, max_receive_count=10)
    with stack(tmp_path, wdir) as farm:
        chaos = Chaos(farm, tmp_path, n_workers=3, seed=1234, pool=pool)
        keys = [f"TODO/chaos/clip {i:03d}.mp4" for i in range(n_jobs)]
        body = tiny_clip.read_bytes()
        for k in keys:
            put(farm, k, body)
        col = collector(farm, keys, pool)
        col.wait(timeout_s=600, on_tick=lambda: chaos.maybe_kill(max_kills=max_kills))
        chaos.stop()
        dead = {o.key for o, _, _ in peek_dead_letters(dead_letters(farm, pool))}
        strays = stray_parts(farm, keys, pool)
    done = {k for (k, _), r in col.results.items() if r.outcome == "done"}
    missing = set(keys) - done - dead
    uploads = count_events(chaos.logs, "output_uploaded")
    started = count_events(chaos.logs, "transcode_started")
    finished = count_events(chaos.logs, "transcode_finished")
    print(  # the counts the issue asks to see
        f"\nchaos [{pool}]: jobs={n_jobs} done={len(done)} dead_lettered={len(dead)}"
        f" missing={len(missing)}"
        f" kills={chaos.kills} encodes_killed={chaos.encodes_killed}"
        f" encodes_started={sum(started.values())}"
        f" encodes_finished={sum(finished.values())} uploads={sum(uploads.values())}"
        f" keys_uploaded_twice={sum(1 for v in uploads.values() if v > 1)}"
        f" stray_parts={len(strays)}"
    )
    assert chaos.kills >= 8
    assert not strays  # a ladder's folder holds the parts of its committed attempt only
    # Every kill after an encode started cost that encode, never the job.
    assert sum(started.values()) >= n_jobs + chaos.encodes_killed
    assert not missing
    # Each done job's output was uploaded once; none is logged when its worker was killed
    # between the commit and the log line (the next worker then found it committed).
    assert all(uploads[k] <= 1 for k in done), "an output was encoded and uploaded twice"
    assert all(uploads[k] == 1 or k in chaos.killed_uploading for k in done)
    assert all(uploads[k] == 0 for k in dead - done)


def _dash_naming(path: Path) -> bytes:
    """A DASH manifest whose one representation is ``path``."""
    return (
        '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static"'
        ' profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" mediaPresentationDuration="PT1S"'
        ' minBufferTime="PT1S"><Period><AdaptationSet mimeType="video/mp4"><Representation'
        f' id="1" bandwidth="1000" codecs="avc1.64000b"><BaseURL>{path}</BaseURL>'
        "</Representation></AdaptationSet></Period></MPD>\n"
    ).encode()


def test_bad_input_corpus_gets_defined_outcomes_and_healthy_jobs_finish(
    tmp_path: Path, tiny_clip: Path
) -> None:
    healthy = {
        "TODO/été 🎥 clip.mp4",
        "TODO/with spaces.mp4",
        "TODO/-leading-dash.mp4",
        "TODO/100%.mp4",
        "TODO/#hash.mp4",
        "TODO/a&b.mp4",
        "TODO/a+b=c?.mp4",
    }
    body = tiny_clip.read_bytes()
    photo = make_picture(tmp_path, "photo.jpg").read_bytes()
    failing = {
        "TODO/zero.mp4": (b"", "empty file"),
        "TODO/truncated.mp4": (body[: len(body) // 2], "truncated"),
        "TODO/text.mp4": (b"hello, this is not a video\n" * 10, "not a media file"),
        # Directions to other inputs (hevcq.media.demuxers): a file on the worker's disk,
        # and the downloaded object itself, which would be opened until no descriptor is left.
        "TODO/manifest.mp4": (_dash_naming(tiny_clip), "not a media file: a DASH manifest"),
        "TODO/self.mp4": (b"ffconcat version 1.0\nfile source\n" * 2, "a concat script"),
        # A photo is not a video, under its own name or a video's.
        "TODO/photo.jpg": (photo, "not a video: a still picture (JPEG)"),
        "TODO/photo.mp4": (photo, "not a video: a still picture (JPEG)"),
    }
    with stack(tmp_path, pool_dir(tmp_path, max_attempts=1, max_receive_count=2)) as farm:
        w = WorkerProc(farm, "hevc", tmp_path / "w.log")
        audio = tmp_path / "audio.mp4"
        subprocess.run(
            [
                find_ffmpeg(),
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "sine=d=0.5",
                "-c:a",
                "aac",
                str(audio),
            ],
            check=True,
        )
        put(farm, "TODO/audio only.mp4", audio.read_bytes())
        for k in healthy:
            put(farm, k, body)
        for k, (data, _) in failing.items():
            put(farm, k, data)
        sqs, url = farm.clients.sqs, farm.refs.pools["hevc"].queue_url
        for bad in [
            "not json at all",
            '{"Records": [{"eventName": "ObjectCreated:Put"}]}',
            json.dumps(
                {
                    "Records": [
                        {
                            "eventName": "ObjectCreated:Put",
                            "s3": {
                                "bucket": {"name": "someone-else"},
                                "object": {"key": "TODO/x.mp4"},
                            },
                        }
                    ]
                }
            ),
        ]:
            sqs.send_message(QueueUrl=url, MessageBody=bad)
        col = collector(farm, [*healthy, *failing, "TODO/audio only.mp4"])
        assert col.wait(timeout_s=120)
        assert wait_for(lambda: depth(farm).dead_letters >= len(failing) + 3, 30)
        dlq = client(farm).dead_letters("hevc")
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(30) == 0
    res = {k: r for (k, _), r in col.results.items()}
    assert {k for k in healthy if res[k].outcome == "done"} == healthy
    assert res["TODO/audio only.mp4"].outcome == "skipped"
    assert "no video stream" in (res["TODO/audio only.mp4"].reason or "")
    for k, (_, reason) in failing.items():
        assert res[k].outcome == "failed", k
        assert reason in (res[k].reason or ""), (k, res[k].reason)
        assert res[k].failure_class == "permanent"
    reasons = sorted(d.reason for d in dlq)
    assert len(dlq) == len(failing) + 3
    assert all(d.failure_class == "permanent" for d in dlq)
    assert any("not JSON" in r for r in reasons)
    assert any("not an S3 event" in r for r in reasons)
    assert any("does not own" in r for r in reasons)


MIN_PAUSES = 6
COMMIT_EVENTS = ("output_committed", "output_uploaded")  # the first one the logs use counts


def duplicate_commits(logs: list[Path]) -> int:
    """Commits beyond the first for one job id (a job id names key, pool, source ETag and
    settings, so: one job version), counted from the workers' commit events."""
    for name in COMMIT_EVENTS:
        per_job = count_events(logs, name, "job_id")
        if per_job:
            return sum(n - 1 for n in per_job.values())
    return 0


def output_key(key: str, pool: str) -> str:
    """The output of ``key`` in ``pool`` (a ladder's is its master playlist)."""
    out = key.replace("TODO/", f"DONE/{pool}/", 1)
    return out.removesuffix(".mp4") + ".m3u8" if pool == "hls" else out


def stray_parts(farm, keys: list[str], pool: str) -> list[str]:
    """Parts under a ladder's folder that its committed master does not name: an abandoned
    attempt's, or an earlier output's (none for a file pool)."""
    if pool != "hls":
        return []
    store = S3Store(farm.clients.s3, farm.refs.bucket)
    strays: list[str] = []
    for k in keys:
        out = output_key(k, pool)
        master = store.head(out)
        token = master.metadata.get(META_PARTS) if master else None
        strays += [p for p in store.list_keys(parts_prefix(out)) if token_of(p, out) != token]
    return strays


def output_state(
    farm, keys: list[str], newest: dict[str, str], pool: str = "hevc"
) -> tuple[set[str], set[str]]:
    """(keys whose newest version has no committed output, DONE objects of older versions)."""
    missing, stale = set(), set()
    s3, bucket = farm.clients.s3, farm.refs.bucket
    for k in keys:
        out = output_key(k, pool)
        try:
            meta = s3.head_object(Bucket=bucket, Key=out)["Metadata"]
        except s3.exceptions.ClientError:
            missing.add(k)
            continue
        if meta.get(META_SOURCE_ETAG) != newest[k]:
            stale.add(out)
            missing.add(k)
    return missing, stale


class PausingChaos:
    """Worker processes that a driver pauses (SIGSTOP) and resumes (SIGCONT) at random."""

    def __init__(
        self, farm, tmp: Path, n_workers: int, rnd: random.Random, pool: str = "hevc"
    ) -> None:
        slow = slow_ffmpeg(tmp, 2.0)  # long enough that pauses and new versions land mid-job
        self.logs = [tmp / f"worker-{i}.log" for i in range(n_workers)]
        self.workers = [WorkerProc(farm, pool, log, lease_s=12, ffmpeg=slow) for log in self.logs]
        self.rnd = rnd
        self.paused: dict[int, float] = {}  # worker index -> monotonic time to resume
        self.pauses = 0

    def step(self, now: float, max_pauses: int) -> None:
        """Resume what is due; now and then pause a busy worker for 3 to 20 s."""
        for i, until in list(self.paused.items()):
            if now >= until:
                self.workers[i].proc.send_signal(signal.SIGCONT)
                del self.paused[i]
        if self.pauses >= max_pauses or self.paused or self.rnd.random() >= 0.3:
            return
        busy = [i for i, w in enumerate(self.workers) if _encoding(w)]
        i = self.rnd.choice(busy or range(len(self.workers)))
        self.workers[i].proc.send_signal(signal.SIGSTOP)
        self.paused[i] = now + self.rnd.uniform(3, 20)
        self.pauses += 1

    def encoding_keys(self) -> set[str]:
        """Keys some worker is encoding right now."""
        out = set()
        for w in self.workers:
            events = w.events()
            if events and events[-1].get("event") == "transcode_started":
                out.add(str(events[-1].get("key")))
        return out

    def stop(self) -> None:
        for w in self.workers:
            w.proc.send_signal(signal.SIGCONT)
            w.proc.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.proc.wait(40)
            except subprocess.TimeoutExpired:
                w.proc.kill()


@pytest.mark.parametrize("pool", ACT_TWO_POOLS)
def test_chaos_act_two_pauses_an_outage_and_new_versions_leave_every_newest_version_encoded_once(
    tmp_path: Path, tiny_clip: Path, pool: str
) -> None:
    """45 sources (``CHAOS_JOBS``) on three workers; meanwhile workers are paused and resumed
    at random (past their lease, sometimes), the whole endpoint refuses connections for 30 s,
    and a quarter of the sources are overwritten by a new version (other bytes) while the run goes.

    Printed and checked at the end:
    - ``missing``: sources whose newest version has no output in DONE/ made from it;
    - ``stale_outputs``: DONE/ objects whose ``hevcq-source-etag`` is not the source's newest
      ETag (an older version's output that stayed, or came back, as the current one);
    - ``duplicate_commits``: commits beyond the first for one job version, counted from the
      workers' commit events (``output_committed`` where logged, else ``output_uploaded``)
      per job id, which names key, pool, source ETag and settings.
    """
    rnd = random.Random(2026)
    n_jobs = CHAOS_JOBS or 45
    n_new = n_jobs // 4
    # Other bytes that still encode smaller than the source: a new version whose encode would
    # be larger is settled as "kept original" and has no output to count.
    v2_clip = make_clip(tmp_path / "v2.mp4", width=192, height=108, seconds=0.5, fps=10)
    wdir = pool_dir(tmp_path, (pool,), visibility_timeout_s=10, max_receive_count=10)
    with proxied_stack(tmp_path, wdir) as farm:
        chaos = PausingChaos(farm, tmp_path, n_workers=3, rnd=rnd, pool=pool)
        keys = [f"TODO/chaos2/clip {i:03d}.mp4" for i in range(n_jobs)]
        newest = {k: put(farm, k, tiny_clip.read_bytes()) for k in keys}
        # When to overwrite a source; the source is one being encoded at that moment
        # where there is one, so that new versions land on running jobs.
        pending = sorted(rnd.uniform(5, 45) for _ in range(n_new))
        fresh = set(keys)
        t0 = time.monotonic()
        refused = False
        missing: set[str] = set(keys)
        while time.monotonic() - t0 < 300:
            now = time.monotonic()
            chaos.step(now, max_pauses=10)
            if not refused and now - t0 >= 25:
                farm.proxy.refuse_for(30)
                refused = True
            while pending and now - t0 >= pending[0]:
                pending.pop(0)
                running = sorted(chaos.encoding_keys() & fresh)
                k = rnd.choice(running or sorted(fresh))
                fresh.discard(k)
                newest[k] = put(farm, k, v2_clip.read_bytes())
            quiet = not chaos.paused and refused and not farm.proxy.refusing
            if not pending and quiet and chaos.pauses >= MIN_PAUSES:
                missing, stale = output_state(farm, keys, newest, pool)
                if not missing:
                    break
            time.sleep(1)
        chaos.stop()
        missing, stale = output_state(farm, keys, newest, pool)
        dead = list(peek_dead_letters(dead_letters(farm, pool)))
        strays = stray_parts(farm, keys, pool)
    dupes = duplicate_commits(chaos.logs)
    print(  # the counts the reliability promise is judged by
        f"\nchaos act two [{pool}]: jobs={n_jobs} versions={n_jobs + n_new} missing={len(missing)}"
        f" stale_outputs={len(stale)} duplicate_commits={dupes} dead_lettered={len(dead)}"
        f" pauses={chaos.pauses} refusals=1 overwrites={n_new}"
        f" elapsed_s={time.monotonic() - t0:.0f} stray_parts={len(strays)}"
    )
    assert not strays
    assert chaos.pauses >= MIN_PAUSES
    assert len(missing) == 0
    assert len(stale) == 0
    assert dupes == 0
