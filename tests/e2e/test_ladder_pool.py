"""The hls pool through real worker processes: a ladder is one output of many objects.

Each test drives `hevcq worker` processes against the embedded endpoint and reads the
bucket as a player or `hevcq fetch` would: the master at the stable key, the manifest it
names, and every part with its ETag.
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from hevcq.aws.ledger import DynamoLedger
from hevcq.aws.s3 import S3Store
from hevcq.bundle import MASTER, Manifest, attempt_prefix, parts_prefix, token_of
from hevcq.ledger import LedgerItem
from hevcq.media.ladder import check_ladder
from hevcq.media.samples import make_clip
from hevcq.metadata import META_ATTEMPT, META_SOURCE_ETAG
from hevcq.objects import ObjectInfo
from tests.e2e.farmkit import (
    WorkerProc,
    committed,
    count_events,
    pool_dir,
    proxied_stack,
    slow_ffmpeg,
    stack,
    wait_for,
)
from tests.e2e.test_choose_pools import ingest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timed-faults")]

KEY = "TODO/trips/beach.mp4"
OUT = "DONE/hls/trips/beach.m3u8"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    d = tmp_path_factory.mktemp("clips")
    v1 = make_clip(d / "v1.mp4", width=320, height=180, seconds=2.0, fps=24)
    v2 = make_clip(d / "v2.mp4", width=256, height=144, seconds=1.5, fps=24)
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


def item_of(farm) -> LedgerItem | None:
    return DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table).get(KEY, "hls")


def done_with(farm, etag: str) -> bool:
    item = item_of(farm)
    return item is not None and (item.state, item.etag) == ("done", etag)


def read_whole(farm, dest: Path) -> tuple[ObjectInfo, Manifest]:
    """Copy the committed ladder as a reader does, checking every part against the
    manifest the master names; asserts that the ledger, the master and the parts agree."""
    found = committed(farm, KEY, "hls", OUT)
    store, master, prefix, manifest = found.store, found.output, found.prefix, found.manifest
    for part in manifest.parts:
        (dest / part.path).parent.mkdir(parents=True, exist_ok=True)
        got = store.download(prefix + part.path, dest / part.path, etag=part.etag)
        assert got.size == part.size
    return master, manifest


def content_type(farm, key: str) -> str:
    return str(farm.clients.s3.head_object(Bucket=farm.refs.bucket, Key=key)["ContentType"])


def test_a_ladder_job_commits_every_part_as_one_output_and_sweeps_abandoned_attempts(
    tmp_path: Path, clips: tuple[bytes, bytes]
) -> None:
    v1, v2 = clips
    with stack(tmp_path, pool_dir(tmp_path, ("hls",), visibility_timeout_s=20)) as farm:
        # What a worker killed half-way through its upload left behind.
        crashed = f"{parts_prefix(OUT)}{'0' * 16}/v0/seg_00000.m4s"
        farm.clients.s3.put_object(Bucket=farm.refs.bucket, Key=crashed, Body=b"half")
        worker = WorkerProc(farm, "hls", tmp_path / "w.log")
        e1 = put(farm, v1)
        assert wait_for(lambda: done_with(farm, e1), 120), worker.log.read_text()[-3000:]
        master, manifest = read_whole(farm, tmp_path / "one")
        assert master.metadata[META_SOURCE_ETAG] == e1
        assert check_ladder(tmp_path / "one") == []
        assert (tmp_path / "one" / "poster.jpg").stat().st_size > 1000
        store = S3Store(farm.clients.s3, farm.refs.bucket)
        assert {token_of(k, OUT) for k in store.list_keys(parts_prefix(OUT))} == {manifest.token}
        # Players and CDNs are told what each object is.
        prefix = attempt_prefix(OUT, manifest.token)
        assert content_type(farm, OUT) == "application/vnd.apple.mpegurl"
        segment = next(p.path for p in manifest.parts if p.path.endswith(".m4s"))
        assert content_type(farm, prefix + segment) == "video/iso.segment"
        assert content_type(farm, prefix + "poster.jpg") == "image/jpeg"
        assert content_type(farm, prefix + MASTER) == "application/vnd.apple.mpegurl"

        # A new version of the source: its ladder replaces the whole earlier one.
        e2 = put(farm, v2)
        assert wait_for(lambda: done_with(farm, e2), 120), worker.log.read_text()[-3000:]
        master2, manifest2 = read_whole(farm, tmp_path / "two")
        assert master2.metadata[META_SOURCE_ETAG] == e2
        assert check_ladder(tmp_path / "two") == []
        assert manifest2.token != manifest.token
        assert {token_of(k, OUT) for k in store.list_keys(parts_prefix(OUT))} == {manifest2.token}
        stop(worker)


def test_a_paused_ladder_worker_that_resumes_after_a_takeover_changes_nothing(
    tmp_path: Path, clips: tuple[bytes, bytes]
) -> None:
    v1, _ = clips
    with stack(tmp_path, pool_dir(tmp_path, ("hls",), visibility_timeout_s=10)) as farm:
        paused = WorkerProc(
            farm, "hls", tmp_path / "paused.log", ffmpeg=slow_ffmpeg(tmp_path, 4), lease_s=10
        )
        etag = put(farm, v1)
        assert wait_for(lambda: any(e["event"] == "transcode_started" for e in paused.events()), 60)
        paused.proc.send_signal(signal.SIGSTOP)  # its ffmpeg goes on; the worker does not
        taker = WorkerProc(farm, "hls", tmp_path / "taker.log", lease_s=10)
        assert wait_for(lambda: done_with(farm, etag), 120), taker.log.read_text()[-3000:]
        master, manifest = read_whole(farm, tmp_path / "before")
        taker_id = f"{socket.gethostname()}-{taker.proc.pid}"
        assert master.metadata[META_ATTEMPT].startswith(f"{taker_id}/")
        paused.proc.send_signal(signal.SIGCONT)  # resumes mid-job, lease long gone
        assert wait_for(
            lambda: any(e["event"] in ("job_abandoned", "commit_fenced") for e in paused.events()),
            90,
        )
        after, manifest_after = read_whole(farm, tmp_path / "after")
        assert (after.etag, manifest_after) == (master.etag, manifest)
        store = S3Store(farm.clients.s3, farm.refs.bucket)
        assert {token_of(k, OUT) for k in store.list_keys(parts_prefix(OUT))} == {manifest.token}
        assert check_ladder(tmp_path / "after") == []
        assert paused.proc.poll() is None  # it lives on
        stop(paused, taker)


def test_a_worker_paused_while_its_parts_upload_leaves_nothing_when_it_resumes(
    tmp_path: Path, clips: tuple[bytes, bytes]
) -> None:
    # A's first part uploads are held in flight, and A is paused: B takes the job over and
    # commits. Then A resumes and its held writes land: the parts it wrote are removed,
    # and the output stays B's, whole.
    v1, _ = clips
    with proxied_stack(tmp_path, pool_dir(tmp_path, ("hls",), visibility_timeout_s=10)) as farm:
        farm.proxy.hold(lambda r: r.method == "PUT" and ".parts/" in r.target)
        a = WorkerProc(farm, "hls", tmp_path / "a.log", lease_s=10)
        etag = put(farm, v1)
        assert wait_for(lambda: farm.proxy.held >= 1, 90), a.log.read_text()[-3000:]
        a.proc.send_signal(signal.SIGSTOP)
        farm.proxy.hold(lambda _r: False)  # B's writes go through; A's stay held
        b = WorkerProc(farm, "hls", tmp_path / "b.log", lease_s=10)
        assert wait_for(lambda: done_with(farm, etag), 120), b.log.read_text()[-3000:]
        master, manifest = read_whole(farm, tmp_path / "b")
        a.proc.send_signal(signal.SIGCONT)
        farm.proxy.let_go()
        assert wait_for(
            lambda: any(e["event"] == "bundle_parts_abandoned" for e in a.events()), 90
        ), a.log.read_text()[-3000:]
        after, manifest_after = read_whole(farm, tmp_path / "after")
        assert (after.etag, manifest_after) == (master.etag, manifest)
        store = S3Store(farm.clients.s3, farm.refs.bucket)
        assert {token_of(k, OUT) for k in store.list_keys(parts_prefix(OUT))} == {manifest.token}
        assert check_ladder(tmp_path / "after") == []
        stop(a, b)
    assert count_events([a.log], "job_finished") == {}


def test_ingest_with_the_hls_pool_brings_the_whole_ladder_home_as_one_folder(
    tmp_path: Path,
) -> None:
    pool_dir(tmp_path, ("hevc", "hls"))
    make_clip(tmp_path / "lib" / "trips" / "beach.mp4", width=320, height=180, seconds=2)
    done = ingest(tmp_path, "--pools", "hevc,hls")
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp_path / "out" / "hls" / "trips" / "beach.hls"
    assert (folder / MASTER).is_file()
    assert (folder / "poster.jpg").is_file()
    assert check_ladder(folder) == []  # whole: every rung decodes, aligned, rates declared
    assert (tmp_path / "out" / "hevc" / "trips" / "beach.mp4").is_file()
    assert not list((tmp_path / "out").rglob(".hevcq-fetch-*"))
    again = ingest(tmp_path, "--pools", "hevc,hls")  # a re-run: nothing to do, nothing moves
    assert again.returncode == 0, again.stdout + again.stderr
    assert check_ladder(folder) == []
