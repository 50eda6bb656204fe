"""Worker processes that take any pool's work, killed mid-job: every job of every pool is
done exactly once, through real processes (``hevcq worker --pool hevc --pool small``)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml
from benchmarks.harness import read_events

from hevcq.library.results import Expected
from hevcq.media.samples import make_clip
from tests.e2e.farmkit import (
    Collector,
    WorkerProc,
    count_events,
    pool_dir,
    slow_ffmpeg,
    stack,
    wait_for,
)

pytestmark = pytest.mark.e2e

POOLS = ("hevc", "small")


def two_pools(tmp: Path) -> Path:
    """hevc and a 120p rendition of it (the rendition's encode differs: it scales)."""
    workers = pool_dir(tmp, visibility_timeout_s=10, max_receive_count=10)
    doc = yaml.safe_load((workers / "hevc.yaml").read_text())
    doc |= {"output_suffix": ".120p", "description": "120p rendition"}
    doc["applies"] = {**doc.get("applies", {}), "target_height": 120}
    (workers / "small.yaml").write_text(yaml.safe_dump(doc))
    return workers


def test_a_worker_over_two_pools_killed_mid_job_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    clips = [
        make_clip(tmp_path / f"c{i}.mp4", width=320, height=240, seconds=0.5 + 0.1 * i)
        for i in range(4)
    ]
    keys = [f"TODO/clip{i}.mp4" for i in range(len(clips))]
    with stack(tmp_path, two_pools(tmp_path)) as farm:
        assert farm.clients is not None
        assert farm.refs is not None
        slow = slow_ffmpeg(tmp_path, 2)
        first = WorkerProc(farm, POOLS, tmp_path / "w0.log", ffmpeg=slow, lease_s=12)
        second = WorkerProc(farm, POOLS, tmp_path / "w1.log", ffmpeg=slow, lease_s=12)
        for key, clip in zip(keys, clips, strict=True):
            farm.clients.s3.put_object(Bucket=farm.refs.bucket, Key=key, Body=clip.read_bytes())
        col = Collector(farm.clients, farm.refs, Expected({(k, p) for k in keys for p in POOLS}))
        # SIGKILL the first while it encodes: its job is taken over by lease, its message
        # comes back after the visibility timeout.
        assert wait_for(lambda: count_events([first.log], "transcode_started"), 60)
        first.proc.kill()
        first.proc.wait(10)
        third = WorkerProc(farm, POOLS, tmp_path / "w2.log", ffmpeg=slow, lease_s=12)
        assert col.wait(timeout_s=180), f"still pending: {sorted(col.pending)}"
        for w in (second, third):
            w.proc.send_signal(signal.SIGTERM)
        for w in (second, third):
            assert w.proc.wait(60) == 0
        outputs = {
            o["Key"]
            for o in farm.clients.s3.list_objects_v2(Bucket=farm.refs.bucket, Prefix="DONE/").get(
                "Contents", []
            )
        }
    assert {r.outcome for r in col.results.values()} == {"done"}
    assert len(outputs) == 2 * len(keys)
    logs = [first.log, second.log, third.log]
    committed = [
        (str(e["pool"]), str(e["key"])) for log in logs for e in _events(log, "output_committed")
    ]
    assert sorted(committed) == sorted((p, k) for k in keys for p in POOLS)  # once each
    # The survivors took both pools' work.
    for log in (second.log, third.log):
        assert {e["pool"] for e in _events(log, "transcode_started")} <= set(POOLS)
    taken = {str(e["pool"]) for log in logs for e in _events(log, "transcode_started")}
    assert taken == set(POOLS)


def _events(log: Path, name: str) -> list[dict[str, object]]:
    return [e for e in read_events(log) if e.get("event") == name]
