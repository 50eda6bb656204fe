"""Worker processes against an endpoint process behind a fault proxy.

Each test names the promise it checks; the proxy refuses, fails, throttles or denies the
workers' requests while the test's own clients reach the endpoint directly.
"""

from __future__ import annotations

import json
import random
import signal
import string
import time
from datetime import datetime
from pathlib import Path

import pytest

from hevcq.aws.ledger import DynamoLedger
from hevcq.farm.client import Farm
from hevcq.jobs import QueueDepth
from hevcq.media.samples import make_clip
from tests.e2e.farmkit import (
    ProxiedFarm,
    WorkerProc,
    collector,
    pool_dir,
    proxied_stack,
    slow_ffmpeg,
    wait_for,
)

# Tests that time faults (outages, clock steps, pauses) run one after another on one
# xdist worker: two of them side by side would skew each other's timing.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timed-faults")]

EXIT_FARM_MISCONFIGURED = 3  # docs/operations.md, "Exit codes"


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "tiny.mp4"
    return make_clip(path, width=128, height=72, seconds=0.5, fps=10)


def put(farm: ProxiedFarm, key: str, body: bytes) -> str:
    resp = farm.clients.s3.put_object(Bucket=farm.refs.bucket, Key=key, Body=body)
    return resp["ETag"].strip('"')


def depth(farm: ProxiedFarm) -> QueueDepth:
    return next(d for d in Farm(farm.clients, farm.refs, label="test").depths() if d.pool == "hevc")


def events(w: WorkerProc, name: str) -> list[dict]:
    return [e for e in w.events() if e.get("event") == name]


def wall(event: dict) -> float:
    """An event's log timestamp (UTC, ISO 8601) as seconds since the epoch."""
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def started(w: WorkerProc) -> bool:
    return bool(events(w, "worker_started"))


def stop(*workers: WorkerProc) -> None:
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        assert w.proc.wait(40) == 0, w.log.read_text()[-3000:]


def assert_no_traceback(*workers: WorkerProc) -> None:
    for w in workers:
        text = w.log.read_text(errors="replace")
        assert "Traceback" not in text, text[text.index("Traceback") - 500 :][:3000]


def send_raw(farm: ProxiedFarm, body: str) -> None:
    farm.clients.sqs.send_message(QueueUrl=farm.refs.pools["hevc"].queue_url, MessageBody=body)


def test_idle_workers_survive_a_30_s_refusal_of_the_whole_endpoint_then_work(
    tmp_path: Path, tiny_clip: Path
) -> None:
    with proxied_stack(tmp_path, pool_dir(tmp_path)) as farm:
        workers = [WorkerProc(farm, "hevc", tmp_path / f"w{i}.log") for i in range(2)]
        assert wait_for(lambda: all(started(w) for w in workers), 30)
        refused_at = time.time()  # wall-clock, as the workers' log timestamps
        farm.proxy.refuse()
        time.sleep(30)
        # Each worker learns of the outage on its next failed call, which on a busy machine
        # can come late: the endpoint stays away until both have seen it.
        assert wait_for(lambda: all(events(w, "endpoint_unreachable") for w in workers), 60)
        farm.proxy.accept_again()
        listening_at = time.time()
        assert all(w.proc.poll() is None for w in workers), "a worker died in the outage"
        key = "TODO/after the outage.mp4"
        put(farm, key, tiny_clip.read_bytes())
        col = collector(farm, [key])
        assert col.wait(timeout_s=120)
        assert next(iter(col.results.values())).outcome == "done"
        assert wait_for(lambda: all(events(w, "endpoint_recovered") for w in workers), 60)
        stop(*workers)
    for w in workers:  # one line per change of state, not one per retry
        (lost,) = events(w, "endpoint_unreachable")
        (back,) = events(w, "endpoint_recovered")
        # down_s counts the whole outage the worker saw, not the time since its last retry.
        lost_at = wall(lost)
        assert refused_at - 0.5 <= lost_at < listening_at, (refused_at, lost, listening_at)
        assert back["down_s"] >= listening_at - lost_at - 1.0, (lost, back, listening_at)
        assert wall(back) >= listening_at - 0.5, (back, listening_at)
    assert_no_traceback(*workers)


def test_a_worker_started_while_the_endpoint_is_down_waits_for_it_then_works(
    tmp_path: Path, tiny_clip: Path
) -> None:
    with proxied_stack(tmp_path, pool_dir(tmp_path)) as farm:
        farm.proxy.refuse()
        w = WorkerProc(farm, "hevc", tmp_path / "w.log")
        time.sleep(15)
        assert w.proc.poll() is None, w.log.read_text()[-3000:]
        assert not started(w)
        farm.proxy.accept_again()
        assert wait_for(lambda: started(w), 60)
        key = "TODO/late endpoint.mp4"
        put(farm, key, tiny_clip.read_bytes())
        col = collector(farm, [key])
        assert col.wait(timeout_s=120)
        assert next(iter(col.results.values())).outcome == "done"
        stop(w)
    assert len(events(w, "endpoint_unreachable")) == 1
    assert len(events(w, "endpoint_recovered")) == 1
    assert_no_traceback(w)


def test_dynamodb_failing_for_12_s_mid_job_neither_ends_the_worker_nor_the_job(
    tmp_path: Path, tiny_clip: Path
) -> None:
    # A 10 s visibility timeout puts heartbeats (ledger renewals) inside the failure window.
    with proxied_stack(tmp_path, pool_dir(tmp_path, visibility_timeout_s=10)) as farm:
        w = WorkerProc(farm, "hevc", tmp_path / "w.log", ffmpeg=slow_ffmpeg(tmp_path, 25))
        key = "TODO/ledger outage.mp4"
        put(farm, key, tiny_clip.read_bytes())
        col = collector(farm, [key])
        assert wait_for(lambda: bool(events(w, "transcode_started")), 60)
        farm.proxy.set("dynamodb", "error")
        time.sleep(12)
        farm.proxy.set("dynamodb", "pass")
        assert farm.proxy.count("dynamodb", "error") >= 1
        assert col.wait(timeout_s=120)
        assert next(iter(col.results.values())).outcome == "done"
        assert w.proc.poll() is None
        stop(w)
    assert len(events(w, "output_uploaded")) == 1
    assert_no_traceback(w)


def test_refused_credentials_release_the_message_untouched_and_stop_the_worker(
    tmp_path: Path, tiny_clip: Path
) -> None:
    with proxied_stack(tmp_path, pool_dir(tmp_path)) as farm:
        # The queue answers; storage and ledger refuse the worker's credentials.
        farm.proxy.set("s3", "deny")
        farm.proxy.set("dynamodb", "deny")
        w = WorkerProc(farm, "hevc", tmp_path / "w.log")
        put(farm, "TODO/backlog.mp4", tiny_clip.read_bytes())
        assert w.proc.wait(90) == EXIT_FARM_MISCONFIGURED, w.log.read_text()[-3000:]
        d = depth(farm)
        assert (d.visible, d.dead_letters) == (1, 0)  # back at once, nothing dead-lettered
    (line,) = events(w, "farm_misconfigured")
    assert "InvalidAccessKeyId" in line["reason"] or "403" in line["reason"]
    assert not events(w, "message_dead_lettered")
    assert not events(w, "job_failed")
    assert_no_traceback(w)


def test_a_worker_whose_credentials_are_refused_everywhere_exits_at_start(
    tmp_path: Path,
) -> None:
    with proxied_stack(tmp_path, pool_dir(tmp_path)) as farm:
        farm.proxy.set("*", "deny")
        w = WorkerProc(farm, "hevc", tmp_path / "w.log")
        assert w.proc.wait(60) == EXIT_FARM_MISCONFIGURED, w.log.read_text()[-3000:]
    assert len(events(w, "farm_misconfigured")) == 1
    assert_no_traceback(w)


def test_deeply_nested_and_huge_garbage_bodies_are_dead_lettered_once_with_a_reason(
    tmp_path: Path, tiny_clip: Path
) -> None:
    rnd = random.Random(7)
    garbage = "".join(rnd.choices(string.printable, k=200 * 1024))
    with proxied_stack(tmp_path, pool_dir(tmp_path)) as farm:
        w = WorkerProc(farm, "hevc", tmp_path / "w.log")
        send_raw(farm, "[" * 10_000 + "]" * 10_000)
        send_raw(farm, garbage)
        assert wait_for(lambda: depth(farm).dead_letters >= 2, 60)
        key = "TODO/after the garbage.mp4"
        put(farm, key, tiny_clip.read_bytes())
        col = collector(farm, [key])
        assert col.wait(timeout_s=120)
        dlq = Farm(farm.clients, farm.refs, label="test").dead_letters("hevc")
        assert w.proc.poll() is None
        stop(w)
    assert len(dlq) == 2
    assert {d.failure_class for d in dlq} == {"permanent"}
    assert any("nested too deeply" in d.reason for d in dlq), [d.reason for d in dlq]
    assert any("not JSON" in d.reason for d in dlq), [d.reason for d in dlq]
    assert len(events(w, "message_dead_lettered")) == 2
    assert not events(w, "message_handling_crashed")
    assert_no_traceback(w)


def removed_event(bucket: str, key: str) -> str:
    return json.dumps(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectRemoved:Delete",
                    "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
                }
            ]
        }
    )


def test_an_object_removed_event_is_acknowledged_with_a_logged_reason(tmp_path: Path) -> None:
    with proxied_stack(tmp_path, pool_dir(tmp_path)) as farm:
        w = WorkerProc(farm, "hevc", tmp_path / "w.log")
        send_raw(farm, removed_event(farm.refs.bucket, "TODO/gone.mp4"))
        assert wait_for(lambda: bool(events(w, "event_ignored")), 60)
        assert wait_for(lambda: len(events(w, "message_settled")) >= 2, 10)
        d = depth(farm)
        stop(w)
    (ignored,) = events(w, "event_ignored")
    assert ignored["event_name"] == "ObjectRemoved:Delete"
    assert ignored["key"] == "TODO/gone.mp4"
    assert ignored["reason"]
    # (the other settled message is the test event S3 sends when notifications are set up)
    (settled,) = [
        e for e in events(w, "message_settled") if e["message_id"] == ignored["message_id"]
    ]
    assert settled["verdict"] == "ack"
    assert settled["reason"]
    assert (d.visible, d.in_flight, d.dead_letters) == (0, 0, 0)


def test_settle_lines_name_the_message_key_pool_and_source_version(
    tmp_path: Path, tiny_clip: Path
) -> None:
    with proxied_stack(tmp_path, pool_dir(tmp_path, max_attempts=1, max_receive_count=2)) as farm:
        w = WorkerProc(farm, "hevc", tmp_path / "w.log")
        good, bad = "TODO/good.mp4", "TODO/not a video.mp4"
        etags = {good: put(farm, good, tiny_clip.read_bytes()), bad: put(farm, bad, b"text\n")}
        col = collector(farm, [good, bad])
        assert col.wait(timeout_s=120)
        assert wait_for(lambda: len(events(w, "message_settled")) >= 2, 30)
        stop(w)
    settled = {e["key"]: e for e in events(w, "message_settled")}
    (dead,) = events(w, "message_dead_lettered")
    for e, key in ((settled[good], good), (settled[bad], bad), (dead, bad)):
        assert e["key"] == key
        assert e["pool"] == "hevc"
        assert e["etag"] == etags[key]
        assert e["message_id"]
    assert settled[good]["verdict"] == "ack"
    assert settled[bad]["verdict"] == "dead"
    assert dead["message_id"] == settled[bad]["message_id"]


def test_a_source_deleted_between_claim_and_download_reaches_the_waiting_client(
    tmp_path: Path, tiny_clip: Path
) -> None:
    with proxied_stack(tmp_path, pool_dir(tmp_path)) as farm:
        key = "TODO/deleted under the job.mp4"
        farm.proxy.hold(lambda r: r.method == "GET" and "/TODO/" in r.target)
        w = WorkerProc(farm, "hevc", tmp_path / "w.log")
        put(farm, key, tiny_clip.read_bytes())
        col = collector(farm, [key])
        assert wait_for(lambda: farm.proxy.held >= 1, 60)  # claimed, downloading
        farm.clients.s3.delete_object(Bucket=farm.refs.bucket, Key=key)
        farm.proxy.let_go()
        assert col.wait(timeout_s=60)
        (result,) = col.results.values()
        item = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table).get(key, "hevc")
        d = depth(farm)
        stop(w)
    assert (result.outcome, result.reason) == ("failed", "source deleted")
    assert item is not None
    assert (item.state, item.reason) == ("failed", "source deleted")  # what the dashboard shows
    assert (d.visible, d.in_flight, d.dead_letters) == (0, 0, 0)
    assert_no_traceback(w)


def test_a_publish_answered_by_an_unparsable_5xx_is_retried_at_once_without_a_traceback(
    tmp_path: Path, tiny_clip: Path
) -> None:
    with proxied_stack(tmp_path, pool_dir(tmp_path)) as farm:
        farm.proxy.set("sns", "garbled")
        w = WorkerProc(farm, "hevc", tmp_path / "w.log")
        key = "TODO/garbled answer.mp4"
        put(farm, key, tiny_clip.read_bytes())
        col = collector(farm, [key])
        assert wait_for(lambda: farm.proxy.count("sns", "garbled") >= 1, 60)
        farm.proxy.set("sns", "pass")
        answered = time.monotonic()
        assert col.wait(timeout_s=60)
        late_s = time.monotonic() - answered
        stop(w)
    assert next(iter(col.results.values())).outcome == "done"
    assert late_s < 20  # the publish itself was retried; the message did not go round again
    assert not events(w, "message_handling_crashed")
    assert_no_traceback(w)
