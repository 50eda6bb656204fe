"""`hevcq fetch` as a process against a moto server: real verification, --follow and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hevcq.aws.clients import Clients
from hevcq.aws.provision import provision
from hevcq.aws.s3 import S3Store
from hevcq.credentials import Credentials
from hevcq.farm.embedded import _start_moto
from hevcq.library.catalog import Catalog, library_id
from hevcq.library.scan import scan
from hevcq.library.upload import recorder, to_upload, upload_all
from hevcq.media.samples import make_clip
from hevcq.messages import JobResult
from hevcq.pools import Pool
from hevcq.topology import Names
from tests.e2e import test_full_disk

small_disk = test_full_disk.small_disk  # a nearly full tmpfs (needs root, as CI has)


@pytest.fixture
def served(farm: dict[str, Pool], tmp_path: Path):
    """A farm on a moto server another process can reach, with one uploaded clip."""
    # The key pair the test's own clients read from the environment (tests/conftest.py).
    server, endpoint = _start_moto(credentials=Credentials("testing", "testing"))
    try:
        clients = Clients.create(region="us-east-1", endpoint_url=endpoint)
        prefix = f"t{uuid.uuid4().hex[:8]}"
        refs = provision(
            clients, Names.build(prefix, f"{prefix}-media", sorted(farm)), farm, "us-east-1"
        )
        lib = tmp_path / "lib"
        make_clip(lib / "clip.mp4", width=320, height=240, seconds=1.0)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))} | {
            "AWS_ENDPOINT_URL": endpoint,
            **server.credentials.env(),
            "AWS_DEFAULT_REGION": "us-east-1",
            "HEVCQ_BUCKET": refs.bucket,
            "HEVCQ_NAME_PREFIX": prefix,
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "HOME": str(tmp_path / "home"),
            "COLUMNS": "200",
        }
        store = S3Store(clients.s3, refs.bucket)
        with Catalog.for_library(lib, tmp_path / "state" / "hevcq") as state:
            report = scan(lib, list(farm.values()), state)
            upload_all(store, lib, to_upload(report), library_id(lib), on_done=recorder(state))
        yield clients, refs, lib, env, tmp_path
    finally:
        server.stop()


def _publish_hevc_output(clients: Clients, refs, tmp: Path) -> None:
    out = make_clip(tmp / "made/out.mp4", width=320, height=240, seconds=1.0, vcodec="libx265")
    clients.s3.upload_file(str(out), refs.bucket, "DONE/hevc/clip.mp4")
    etag = clients.s3.head_object(Bucket=refs.bucket, Key="TODO/clip.mp4")["ETag"].strip('"')
    out_etag = clients.s3.head_object(Bucket=refs.bucket, Key="DONE/hevc/clip.mp4")["ETag"]
    # As a worker does: the ledger records the committed output before the result goes out.
    item = {
        "pk": "TODO/clip.mp4",
        "sk": "hevc",
        "state": "done",
        "etag": etag,
        "output_key": "DONE/hevc/clip.mp4",
        "output_etag": out_etag.strip('"'),
    }
    clients.dynamodb.put_item(
        TableName=refs.ledger_table, Item={k: {"S": v} for k, v in item.items()}
    )
    result = JobResult(
        job_id="j",
        pool="hevc",
        bucket=refs.bucket,
        source_key="TODO/clip.mp4",
        source_etag=etag,
        outcome="done",
        output_key="DONE/hevc/clip.mp4",
        output_etag=out_etag.strip('"'),
    )
    clients.sqs.send_message(QueueUrl=refs.results_queue_url, MessageBody=result.model_dump_json())


def test_follow_fetches_as_results_arrive_and_stops_cleanly_on_sigterm(served) -> None:
    clients, refs, lib, env, tmp = served
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hevcq",
            "fetch",
            str(lib),
            "--pool",
            "hevc",
            "--follow",
            "--out",
            str(tmp / "out"),
        ],
        env=env,
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)  # polling an empty queue: nothing to do yet
        assert proc.poll() is None
        _publish_hevc_output(clients, refs, tmp)
        placed = tmp / "out/hevc/clip.mp4"
        deadline = time.monotonic() + 60
        while not placed.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert placed.is_file()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stdout + stderr[-2000:]
    assert "placed" in stdout
    keys = clients.s3.list_objects_v2(Bucket=refs.bucket, Prefix="DONE/").get("Contents", [])
    assert keys == []  # the fetched output was removed from the bucket


def test_replace_is_refused_for_a_rendition_pool(served) -> None:
    _, _, lib, env, tmp = served
    proc = subprocess.run(
        [sys.executable, "-m", "hevcq", "fetch", str(lib), "--pool", "720p", "--replace"],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "--replace needs a pool" in proc.stderr


def test_a_full_out_disk_stops_fetch_with_exit_6_and_leaves_the_result(
    served, small_disk: Path
) -> None:
    clients, refs, lib, env, tmp = served
    _publish_hevc_output(clients, refs, tmp)
    out = small_disk / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "hevcq", "fetch", str(lib), "--pool", "hevc", "--out", str(out)],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 6, proc.stdout + proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.count("error:") == 1  # errors go to stderr, always
    assert "error:" not in proc.stdout
    assert f"no space left in {out / 'hevc'}" in " ".join(proc.stderr.split())
    assert not list(small_disk.rglob("*.mp4"))
    assert not list(small_disk.rglob("*.part"))
    # Nothing lost: the output stays in the bucket and the result on the queue.
    assert clients.s3.head_object(Bucket=refs.bucket, Key="DONE/hevc/clip.mp4")
    msgs = clients.sqs.receive_message(QueueUrl=refs.results_queue_url, WaitTimeSeconds=1)
    assert len(msgs.get("Messages", [])) == 1


def _ingest_wait(env: dict[str, str], lib: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hevcq",
            "ingest",
            str(lib),
            "--wait",
            "--out",
            str(out),
            "--timeout",
            "60",
        ],
        env=env,
        cwd=out.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_rerun_into_another_out_fetches_again_what_the_farm_still_holds(served) -> None:
    """A configured farm keeps its outputs: a done job whose output is not in this
    ``--out`` is brought home again from it; one the farm no longer holds is reported at
    once, never waited for."""
    clients, refs, lib, env, tmp = served
    _publish_hevc_output(clients, refs, tmp)
    for out in (tmp / "out", tmp / "elsewhere"):
        run = _ingest_wait(env, lib, out)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        assert (out / "hevc/clip.mp4").is_file(), run.stdout[-3000:]
    clients.s3.delete_object(Bucket=refs.bucket, Key="DONE/hevc/clip.mp4")
    gone = _ingest_wait(env, lib, tmp / "third")
    assert gone.returncode == 1, gone.stdout[-3000:] + gone.stderr[-2000:]
    assert "no longer in the farm" in gone.stdout
