"""One encode for two pools, through real worker processes on the embedded endpoint.

A 1920x1080 H.264 source makes the same encode in the ``hevc`` and ``1080p`` pools: the
``1080p`` worker waits for the ``hevc`` commit and copies its output server-side.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from benchmarks.farmrun import _epoch
from benchmarks.harness import read_events

from hevcq.aws.ledger import DynamoLedger
from hevcq.library.results import Expected
from hevcq.media.samples import make_clip
from hevcq.metadata import META_COPIED_ETAG, META_COPIED_FROM, META_POOL, META_SOURCE_ETAG
from tests.e2e.farmkit import Collector, WorkerProc, count_events, hevcq_cli, pool_dir, stack

pytestmark = pytest.mark.e2e

KEY = "TODO/holiday/beach.mp4"
HEVC_OUT = "DONE/hevc/holiday/beach.mp4"
RENDITION_OUT = "DONE/1080p/holiday/beach.1080p.mp4"


def test_a_full_hd_h264_source_is_encoded_once_and_the_1080p_output_is_a_copy(
    tmp_path: Path,
) -> None:
    clip = make_clip(tmp_path / "beach.mp4", width=1920, height=1080, seconds=0.5, fps=10)
    workers_dir = pool_dir(tmp_path, ("hevc", "1080p"), visibility_timeout_s=10)
    with stack(tmp_path, workers_dir) as farm:
        assert farm.clients is not None
        assert farm.refs is not None
        s3, bucket = farm.clients.s3, farm.refs.bucket
        workers = [WorkerProc(farm, p, tmp_path / f"{p}.log") for p in ("1080p", "hevc")]
        etag = s3.put_object(Bucket=bucket, Key=KEY, Body=clip.read_bytes())["ETag"].strip('"')
        results = Collector(farm.clients, farm.refs, Expected({(KEY, "hevc"), (KEY, "1080p")}))
        assert results.wait(timeout_s=120), [w.log.read_text()[-3000:] for w in workers]
        ledger = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table)
        hevc, rendition = ledger.get(KEY, "hevc"), ledger.get(KEY, "1080p")
        primary_bytes = s3.get_object(Bucket=bucket, Key=HEVC_OUT)["Body"].read()
        copy = s3.get_object(Bucket=bucket, Key=RENDITION_OUT)
        copy_bytes = copy["Body"].read()
        for w in workers:
            w.proc.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.proc.wait(60) == 0, w.log.read_text()[-2000:]
    logs = [w.log for w in workers]
    assert sum(count_events(logs, "transcode_started").values()) == 1  # one encode
    assert count_events([workers[1].log], "transcode_started") == {KEY: 1}  # by hevc
    # The 1080p message waited for the hevc encode; the hevc worker copied at its commit,
    # so the rendition settled within a second of the primary's commit, not a guess later.
    assert count_events(logs, "output_copied") == {KEY: 1}
    events = read_events(workers[1].log)
    committed = next(_epoch(e["timestamp"]) for e in events if e.get("event") == "output_committed")
    copied = next(_epoch(e["timestamp"]) for e in events if e.get("event") == "copied_at_commit")
    assert 0 <= copied - committed < 1.0
    assert copy_bytes == primary_bytes
    assert copy["Metadata"][META_POOL] == "1080p"
    assert copy["Metadata"][META_SOURCE_ETAG] == etag
    assert hevc is not None
    assert rendition is not None
    assert (hevc.state, rendition.state) == ("done", "done")
    assert copy["Metadata"][META_COPIED_FROM] == HEVC_OUT
    assert copy["Metadata"][META_COPIED_ETAG] == hevc.output_etag
    assert (rendition.copied_from, rendition.copied_from_etag) == (HEVC_OUT, hevc.output_etag)
    assert rendition.output_etag == copy["ETag"].strip('"')
    assert rendition.attempts == 0  # the waits spent nothing
    got = results.results[(KEY, "1080p")]
    assert (got.outcome, got.output_key, got.output_etag) == (
        "done",
        RENDITION_OUT,
        rendition.output_etag,
    )
    assert (got.copied_from, got.copied_from_etag) == (HEVC_OUT, hevc.output_etag)


def test_an_ingest_of_full_hd_sources_encodes_each_once_and_brings_its_1080p_copy_home(
    tmp_path: Path,
) -> None:
    """The whole round trip, every process real: the ingest brings each ``hevc`` result
    home as it arrives, the farm's workers copy it for the ``1080p`` pool, and both come
    home, from one encode per source. (Which of the two jobs a worker takes first is up to
    its queues: the rule that keeps the output for a rendition not yet claimed when the
    ingest fetches it, ``fetch._may_be_copied``, is tested in ``tests/unit/test_fetch.py``.)"""
    pool_dir(tmp_path, ("hevc", "1080p"))
    lib, out = tmp_path / "lib", tmp_path / "out"
    names = [f"day{i}.mp4" for i in range(4)]
    for i, name in enumerate(names):  # distinct lengths: distinct content
        make_clip(lib / name, width=1920, height=1080, seconds=0.4 + 0.1 * i, fps=10)
    run = hevcq_cli(tmp_path, "ingest", str(lib), "--out", str(out), "--no-dashboard")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    for name in names:
        primary = (out / "hevc" / name).read_bytes()
        assert (out / "1080p" / name.replace(".mp4", ".1080p.mp4")).read_bytes() == primary
    logs = sorted((tmp_path / "state").rglob("logs/*.log"))
    assert logs
    encoded = count_events(logs, "transcode_started")
    assert encoded == {f"TODO/{n}": 1 for n in names}, encoded  # one encode per source
    assert count_events(logs, "output_copied") == {f"TODO/{n}": 1 for n in names}
