"""Leases without shared clocks, through real worker processes whose wall clocks lie.

libfaketime shifts a process's wall clock (``time.time``) and leaves its monotonic clock
alone, which is exactly what skewed machines and NTP steps look like to a worker.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from hevcq.aws.ledger import DynamoLedger
from hevcq.media.samples import make_clip
from tests.e2e.farmkit import WorkerProc, count_events, pool_dir, slow_ffmpeg, stack, wait_for

# Tests that time faults (outages, clock steps, pauses) run one after another on one
# xdist worker: two of them side by side would skew each other's timing.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timed-faults")]

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
# Keeps Python's sleep working under libfaketime (see its docstring).
SHIM = Path(__file__).resolve().parent / "faketime_shim"
KEY = "TODO/clock.mp4"
# Long enough that a loaded machine's slow renewals are not mistaken for a dead holder
# (that would be a correct, fenced takeover, but a second encode), and shorter than the
# skew and the step, so that comparing wall clocks would go wrong.
LEASE_S = 30

if not FAKETIME_LIB.is_file():
    if os.environ.get("CI"):
        raise RuntimeError(f"{FAKETIME_LIB} is missing: `make test` installs Debian's faketime")
    pytest.skip("libfaketime is not installed (Debian package faketime)", allow_module_level=True)


def skewed(offset: str | None = None, timestamp_file: Path | None = None) -> dict[str, str]:
    """Environment that runs a process with its wall clock shifted (monotonic untouched)."""
    path = os.pathsep.join(p for p in (str(SHIM), os.environ.get("PYTHONPATH", "")) if p)
    env = {
        "LD_PRELOAD": str(FAKETIME_LIB),
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "PYTHONPATH": path,
    }
    if offset is not None:
        env["FAKETIME"] = offset
    if timestamp_file is not None:
        env.update(FAKETIME_TIMESTAMP_FILE=str(timestamp_file), FAKETIME_NO_CACHE="1")
    return env


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    d = tmp_path_factory.mktemp("clips")
    return make_clip(d / "c.mp4", width=128, height=72, seconds=0.5, fps=10).read_bytes()


def put(farm, body: bytes) -> None:
    farm.clients.s3.put_object(Bucket=farm.refs.bucket, Key=KEY, Body=body)


def finish(farm, workers: list[WorkerProc]) -> list[Path]:
    ledger = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table)
    assert wait_for(lambda: getattr(ledger.get(KEY, "hevc"), "state", None) == "done", 120)
    for w in workers:
        w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        assert w.proc.wait(60) == 0
    return [w.log for w in workers]


def test_five_minutes_of_skew_between_workers_lets_no_one_steal_a_live_job(
    tmp_path: Path, clip: bytes
) -> None:
    with stack(tmp_path, pool_dir(tmp_path, visibility_timeout_s=10)) as farm:
        slow = slow_ffmpeg(tmp_path, 12)
        behind = WorkerProc(
            farm,
            "hevc",
            tmp_path / "behind.log",
            ffmpeg=slow,
            lease_s=LEASE_S,
            raw_env=skewed("-300s"),
        )
        put(farm, clip)
        assert wait_for(lambda: count_events([behind.log], "transcode_started"), 60)
        ahead = WorkerProc(
            farm,
            "hevc",
            tmp_path / "ahead.log",
            ffmpeg=slow,
            lease_s=LEASE_S,
            raw_env=skewed("+300s"),
        )
        put(farm, clip)  # the same bytes again: a duplicate event for the running job
        logs = finish(farm, [behind, ahead])
    assert sum(count_events(logs, "transcode_started").values()) == 1
    assert sum(count_events(logs, "job_finished").values()) == 1


def test_a_wall_clock_step_back_mid_job_changes_nothing(tmp_path: Path, clip: bytes) -> None:
    stamp = tmp_path / "faketime"
    stamp.write_text("+0s\n")
    with stack(tmp_path, pool_dir(tmp_path, visibility_timeout_s=20)) as farm:
        slow = slow_ffmpeg(tmp_path, 40)  # longer than the step plus a visibility timeout
        holder = WorkerProc(
            farm,
            "hevc",
            tmp_path / "holder.log",
            ffmpeg=slow,
            lease_s=LEASE_S,
            log_level="debug",
            raw_env=skewed(timestamp_file=stamp),
        )
        put(farm, clip)
        assert wait_for(lambda: count_events([holder.log], "transcode_started"), 60)
        stamp.write_text("-60s\n")  # NTP steps the holder's clock back a minute
        other = WorkerProc(farm, "hevc", tmp_path / "other.log", lease_s=LEASE_S)
        logs = finish(farm, [holder, other])
    assert sum(count_events(logs, "transcode_started").values()) == 1
    assert count_events(logs, "job_finished", "event") == {"job_finished": 1}
    assert sum(count_events([holder.log], "heartbeat_extended", "timeout_s").values()) >= 3
