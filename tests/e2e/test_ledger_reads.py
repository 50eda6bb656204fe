"""What an ingest reads of the ledger: its own jobs by key, never the whole table; and
which queues its farm feeds.

On the embedded farm a scan costs about 1.5 ms of CPU per item, and the ledger holds every
job of the run: the live view's once-a-second scan took a core from the encodes by a
library of a few thousand files. The scan is counted inside a real ingest process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hevcq.farm.embedded import EmbeddedFarm
from hevcq.library.results import announced_objects
from hevcq.library.walk import OUTPUTS_MARKER
from hevcq.media.samples import make_clip
from hevcq.pools import load_farm
from hevcq.settings import Settings
from tests.e2e.farmkit import pool_dir

pytestmark = pytest.mark.e2e

# The ingest, with each whole-ledger scan counted in a file, and the running jobs read and
# a plain status line printed five times a second (off a terminal: once a second and
# every ten seconds), so a job's few seconds of running are seen.
COUNTED = """
import os
from pathlib import Path
from hevcq.aws.ledger import DynamoLedger
from hevcq.cli import live

live.PLAIN_EVERY_S = live.REFRESH_EVERY_S = 0.2
scan = DynamoLedger.scan_items
def counted(self):
    with Path(os.environ["SCANS_COUNTED_IN"]).open("a") as f:
        f.write("scan\\n")
    return scan(self)
DynamoLedger.scan_items = counted
from hevcq.cli import entry
entry()
"""


def test_an_ingest_reads_its_running_jobs_by_key_and_never_scans_the_ledger(
    tmp_path: Path,
) -> None:
    lib = tmp_path / "lib"
    # Each encode runs for seconds, well over the view's tick (a results poll of up to a
    # second): at 320x240 they took 0.8 s on a loaded machine, and fell between two ticks.
    for name, seconds in (("a", 8.0), ("b", 7.0)):
        make_clip(lib / f"{name}.mp4", width=640, height=360, seconds=seconds)
    scans = tmp_path / "scans"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))} | {
        "HOME": str(tmp_path / "home"),
        "COLUMNS": "300",
        "SCANS_COUNTED_IN": str(scans),
    }
    out = tmp_path / "out"
    args = ["ingest", str(lib), "--out", str(out), "--pools", "hevc", "--no-dashboard"]
    run = subprocess.run(
        [sys.executable, "-c", COUNTED, *args, "--timeout", "240"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(
        p.name for p in (tmp_path / "out" / "hevc").iterdir() if p.name != OUTPUTS_MARKER
    ) == ["a.mp4", "b.mp4"], run.stdout
    assert not scans.exists(), scans.read_text().count("scan")
    # The view still shows what runs, read by key: a job's name, pool and percent.
    running = [ln for ln in run.stdout.splitlines() if "; running: " in ln]
    assert any(" hevc " in ln.split("; running: ")[1] for ln in running), run.stdout


def test_an_embedded_farm_sends_upload_events_only_to_the_pools_it_runs(tmp_path: Path) -> None:
    """Through the real endpoint: the pools without workers keep their queues, empty."""
    workers = pool_dir(tmp_path, ("hevc", "720p"))
    settings = Settings(workers_dir=workers)
    with EmbeddedFarm(
        settings, load_farm(workers), tmp_path / "state", slots=0, worker_pools=["hevc"]
    ) as farm:
        assert farm.clients is not None
        assert farm.refs is not None
        clients, refs = farm.clients, farm.refs
        clients.s3.put_object(Bucket=refs.bucket, Key="TODO/clip.mp4", Body=b"x")
        for name, pr in sorted(refs.pools.items()):
            got = clients.sqs.receive_message(
                QueueUrl=pr.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1 if name == "hevc" else 0,
            )
            keys = [o.key for m in got.get("Messages", []) for o in announced_objects(m["Body"])]
            assert keys == (["TODO/clip.mp4"] if name == "hevc" else []), name
