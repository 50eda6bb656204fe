"""The default scratch folder is this user's own, and private files and folders stay private."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from hevcq.aws.clients import Clients
from hevcq.farm.workers import build_worker
from hevcq.logs import record_crash
from hevcq.pools import load_farm
from hevcq.private import open_private, private_dir, scratch_dir
from hevcq.settings import Settings
from hevcq.topology import FarmRefs, Names, PoolRefs
from tests.conftest import fast_pools

UID = os.getuid()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _dead_pid() -> int:
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out)


def _victim(tmp_path: Path) -> Path:
    """Another user's folder holding what looks like a dead worker's scratch folder."""
    victim = tmp_path / "victim"
    job = victim / f"job-{_dead_pid()}-x"
    job.mkdir(parents=True)
    (job / "precious").write_text("not hevcq's")
    return job


def test_a_worker_never_sweeps_through_a_symlink_planted_at_the_shared_scratch_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user plants the default scratch names, pointing at a third party's files."""
    shared_tmp = tmp_path / "tmp"
    shared_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    job = _victim(tmp_path)
    for name in ("hevcq-work", f"hevcq-work-{UID}"):
        (shared_tmp / name).symlink_to(job.parent)
    endpoint = "http://127.0.0.1:9"
    refs = FarmRefs(
        names=Names.build("hevcq", "hevcq-local", ["hevc"]),
        uploads_topic_arn="arn:aws:sns:us-east-1:123456789012:hevcq-uploads",
        events_topic_arn="arn:aws:sns:us-east-1:123456789012:hevcq-events",
        results_queue_url=f"{endpoint}/1/hevcq-results",
        ledger_table="hevcq-ledger",
        pools={"hevc": PoolRefs(f"{endpoint}/1/hevc", f"{endpoint}/1/hevc-dlq")},
    )
    pool = load_farm(fast_pools(tmp_path))["hevc"]
    clients = Clients.create(region="us-east-1", endpoint_url=endpoint, retries=1)
    build_worker(Settings(), pool, clients=clients, refs=refs, stop=threading.Event())
    assert (job / "precious").read_text() == "not hevcq's"


@pytest.mark.parametrize("planted", ["other-owner", "loose-mode", "symlink", "file"])
def test_a_scratch_name_someone_else_made_is_not_used(tmp_path: Path, planted: str) -> None:
    path = tmp_path / f"hevcq-work-{UID}"
    if planted == "symlink":
        path.symlink_to(_victim(tmp_path).parent)
    elif planted == "file":
        path.write_text("x")
    else:
        path.mkdir(mode=0o700)
        path.chmod(0o777 if planted == "loose-mode" else 0o700)
    uid = UID + 1 if planted == "other-owner" else UID  # the folder belongs to someone else
    if planted == "other-owner":
        path = path.rename(tmp_path / f"hevcq-work-{uid}")
    with capture_logs() as logs:
        got = scratch_dir(tmp_path, uid)
    assert got != path
    assert got.parent == tmp_path
    assert got.name.startswith(f"hevcq-work-{uid}-")
    assert (got.lstat().st_uid, _mode(got)) == (UID, 0o700)
    [warning] = [e for e in logs if e["event"] == "scratch_folder_refused"]
    assert warning["refused"] == str(path)


def test_the_scratch_folder_is_per_user_private_and_reused(tmp_path: Path) -> None:
    first = scratch_dir(tmp_path, UID)
    assert first == tmp_path / f"hevcq-work-{UID}"
    assert _mode(first) == 0o700
    assert scratch_dir(tmp_path, UID) == first


def test_private_folders_are_made_and_tightened(tmp_path: Path) -> None:
    loose = tmp_path / "state"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    deep = private_dir(loose / "runs" / "x" / "logs")
    for folder in (loose, loose / "runs", loose / "runs" / "x", deep):
        if folder != loose:
            assert _mode(folder) == 0o700, folder
    private_dir(loose)
    assert _mode(loose) == 0o700


def test_private_files_are_made_0600_and_an_old_loose_one_is_tightened(tmp_path: Path) -> None:
    old = tmp_path / "logs" / "worker.log"
    old.parent.mkdir()
    old.write_text("old\n")
    old.chmod(0o644)
    with open_private(old, "a") as f:
        f.write("new\n")
    assert (_mode(old), old.read_text()) == (0o600, "old\nnew\n")
    assert _mode(old.parent) == 0o700


def _fail() -> None:
    raise RuntimeError("boom")


def test_the_crash_log_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    try:
        _fail()
    except RuntimeError:
        path = record_crash(state)
    assert "boom" in path.read_text()
    assert (_mode(path), _mode(state)) == (0o600, 0o700)
