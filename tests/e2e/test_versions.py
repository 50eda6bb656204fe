"""Versions and fences through real worker processes: a changed source, a paused worker.

Each test drives `hevcq worker` processes against the embedded endpoint and checks the
three records that must agree: the object under DONE/, the ledger item and the results.
"""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from hevcq.aws.ledger import DynamoLedger
from hevcq.aws.s3 import S3Store
from hevcq.ledger import LedgerItem
from hevcq.media.samples import make_clip
from hevcq.metadata import META_ATTEMPT, META_SOURCE_ETAG
from hevcq.objects import ObjectInfo
from tests.e2e.farmkit import (
    WorkerProc,
    count_events,
    pool_dir,
    proxied_stack,
    slow_ffmpeg,
    stack,
    wait_for,
)

# Tests that time faults (outages, clock steps, pauses) run one after another on one
# xdist worker: two of them side by side would skew each other's timing.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timed-faults")]

KEY = "TODO/phone/clip.mp4"
OUT = "DONE/hevc/phone/clip.mp4"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    d = tmp_path_factory.mktemp("clips")
    v1 = make_clip(d / "v1.mp4", width=160, height=96, seconds=1.0, fps=10)
    v2 = make_clip(d / "v2.mp4", width=176, height=144, seconds=0.5, fps=10)
    return v1.read_bytes(), v2.read_bytes()


def put(farm, body: bytes) -> str:
    resp = farm.clients.s3.put_object(Bucket=farm.refs.bucket, Key=KEY, Body=body)
    return str(resp["ETag"]).strip('"')


def stop(*workers: WorkerProc) -> None:
    for w in workers:
        w.proc.send_signal(signal.SIGCONT)
        w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        assert w.proc.wait(60) == 0, w.log.read_text()[-2000:]


def agree(farm, etag: str) -> tuple[LedgerItem, ObjectInfo]:
    """The ledger item and the output; asserts they agree with each other and with ``etag``."""
    item = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table).get(KEY, "hevc")
    out = S3Store(farm.clients.s3, farm.refs.bucket).head(OUT)
    assert item is not None
    assert out is not None
    assert (item.state, item.etag) == ("done", etag)
    assert out.metadata[META_SOURCE_ETAG] == etag
    assert out.etag == item.output_etag
    return item, out


def test_a_new_version_uploaded_while_the_old_one_encodes_is_encoded_and_wins(
    tmp_path: Path, clips: tuple[bytes, bytes]
) -> None:
    v1, v2 = clips
    with stack(tmp_path, pool_dir(tmp_path, visibility_timeout_s=10)) as farm:
        slow = slow_ffmpeg(tmp_path, 6)
        workers = [
            WorkerProc(farm, "hevc", tmp_path / f"w{i}.log", ffmpeg=slow, lease_s=10)
            for i in range(2)
        ]
        ledger = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table)
        e1 = put(farm, v1)
        assert wait_for(lambda: getattr(ledger.get(KEY, "hevc"), "state", None) == "running", 60)
        e2 = put(farm, v2)
        assert wait_for(lambda: getattr(ledger.get(KEY, "hevc"), "etag", None) == e2, 60)
        assert wait_for(lambda: getattr(ledger.get(KEY, "hevc"), "state", None) == "done", 90)
        agree(farm, e2)
        stop(*workers)
    logs = [w.log for w in workers]
    finished = count_events(logs, "job_finished", "etag")
    assert finished == {e2: 1}  # v1 stopped as superseded; v2 committed exactly once
    assert sum(count_events(logs, "job_superseded").values()) >= 1
    assert e1 not in count_events(logs, "result_published", "etag")


def test_a_paused_worker_that_resumes_after_a_takeover_changes_nothing(
    tmp_path: Path, clips: tuple[bytes, bytes]
) -> None:
    v1, _ = clips
    with stack(tmp_path, pool_dir(tmp_path, visibility_timeout_s=10)) as farm:
        paused = WorkerProc(
            farm, "hevc", tmp_path / "paused.log", ffmpeg=slow_ffmpeg(tmp_path, 4), lease_s=10
        )
        ledger = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table)
        etag = put(farm, v1)
        assert wait_for(lambda: any(e["event"] == "transcode_started" for e in paused.events()), 60)
        paused.proc.send_signal(signal.SIGSTOP)  # its ffmpeg goes on; the worker does not
        taker = WorkerProc(farm, "hevc", tmp_path / "taker.log", lease_s=10)
        assert wait_for(lambda: getattr(ledger.get(KEY, "hevc"), "state", None) == "done", 120)
        item, out = agree(farm, etag)
        taker_id = f"{socket.gethostname()}-{taker.proc.pid}"
        assert out.metadata[META_ATTEMPT].startswith(f"{taker_id}/")
        paused.proc.send_signal(signal.SIGCONT)  # resumes mid-job, lease long gone
        assert wait_for(
            lambda: any(e["event"] in ("job_abandoned", "commit_fenced") for e in paused.events()),
            60,
        )
        item_after, out_after = agree(farm, etag)
        assert (item_after.output_etag, out_after.etag) == (item.output_etag, out.etag)
        assert paused.proc.poll() is None  # it lives on, and takes the next job
        stop(paused, taker)
    assert count_events([paused.log], "job_finished") == {}
    assert count_events([paused.log], "result_published") == {}
    assert sum(count_events([taker.log], "job_taken_over").values()) == 1


def state_of(ledger: DynamoLedger) -> tuple[str, str] | None:
    item = ledger.get(KEY, "hevc")
    return (item.state, item.etag) if item else None


def test_a_superseded_upload_in_flight_never_outlives_the_newer_version_that_has_no_output(
    tmp_path: Path, clips: tuple[bytes, bytes]
) -> None:
    # v1's output write is held in flight (the proxy answers it only when told) while v2,
    # which is not a video, arrives: v2 fails without an output, and DONE/ must not end up
    # offering v1's encode whichever of the two writes and the settle comes first.
    v1, _ = clips
    with proxied_stack(tmp_path, pool_dir(tmp_path, visibility_timeout_s=10)) as farm:
        farm.proxy.hold(lambda r: r.method == "PUT" and "/DONE/" in r.target)
        a = WorkerProc(farm, "hevc", tmp_path / "a.log", lease_s=10)
        ledger = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table)
        put(farm, v1)
        assert wait_for(lambda: farm.proxy.held == 1, 60)  # A's output is on its way
        b = WorkerProc(farm, "hevc", tmp_path / "b.log", lease_s=10)
        assert wait_for(lambda: any(e["event"] == "worker_started" for e in b.events()), 30)
        e2 = put(farm, b"not a video at all")
        assert wait_for(
            lambda: any(e["event"] == "heartbeat_lease_lost" for e in a.events()), 30
        )  # A has seen the supersession while its write is still in flight
        time.sleep(1)
        farm.proxy.let_go()
        assert wait_for(lambda: farm.proxy.held_answered == 1, 30)
        assert wait_for(lambda: state_of(ledger) == ("failed", e2), 60)
        time.sleep(1)  # anything still on its way lands now
        assert S3Store(farm.clients.s3, farm.refs.bucket).head(OUT) is None
        stop(a, b)
    assert count_events([a.log], "upload_ended_after_stop") == {KEY: 1}  # waited for it
    assert count_events([a.log], "job_superseded") == {KEY: 1}
    assert count_events([b.log], "stale_output_removed") == {KEY: 1}
    assert count_events([b.log], "job_failed") == {KEY: 1}
