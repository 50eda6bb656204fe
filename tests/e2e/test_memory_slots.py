"""The embedded farm runs no more encodes than the memory it may use holds: `hevcq ingest`
in a real cgroup with a memory limit, as a container or a systemd service gives it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hevcq.cores import CGROUP_ROOT, CGROUP_V1, GIB, machine_cores, memory_cgroups
from hevcq.media.samples import make_clip
from tests.conftest import fast_pools

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def memory_cgroup(limit: int) -> Iterator[Path]:
    """A new cgroup v1 memory group under this process's own, limited to ``limit`` bytes:
    its ``cgroup.procs`` file. Skips the test where one cannot be made (not root, no v1
    memory controller: a cgroup v2 parent with processes of its own takes no children
    with a controller)."""
    v1 = [folder for folder, files in memory_cgroups() if files == CGROUP_V1]
    group = (v1[0] if v1 else CGROUP_ROOT / "memory") / f"hevcq-test-{os.getpid()}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"no memory cgroup can be made here: {exc}")
    try:
        (group / "memory.limit_in_bytes").write_text(str(limit))
        yield group / "cgroup.procs"
    finally:
        with contextlib.suppress(OSError):
            group.rmdir()


def ingest_limited(tmp_path: Path, limit: int, **env: str) -> subprocess.CompletedProcess[str]:
    """``hevcq ingest --pools hevc`` of ``tmp_path/library`` into ``tmp_path/out``, run in
    a memory cgroup of ``limit`` bytes, with ``env`` added to a clean environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))}
    clean |= {"HEVCQ_WORKERS_DIR": str(fast_pools(tmp_path)), "HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "hevcq", "ingest", str(tmp_path / "library"), "--pools"]
    cmd += ["hevc", "--out", str(tmp_path / "out"), "--no-dashboard", "--timeout", "120"]
    with memory_cgroup(limit) as procs:

        def join() -> None:
            procs.write_text(str(os.getpid()))  # in the child, before it runs hevcq

        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=clean | {"COLUMNS": "200", **env},
            timeout=180,
            check=False,
            preexec_fn=join,
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return proc


def _worker_logs(stdout: str) -> list[str]:
    """The run's worker logs, one per slot, in the log folder the run names (``Logs: ``)."""
    logs = Path(next(line for line in stdout.splitlines() if line.startswith("Logs: "))[6:])
    return sorted(p.name for p in logs.glob("worker-*.log"))


def test_an_ingest_limited_to_3_gib_runs_one_encode_at_a_time(tmp_path: Path) -> None:
    """Two cores would make two slots; 3 GiB holds one (``hevcq.cores.memory_slots``), and
    the run says why. The one worker still takes every job."""
    if machine_cores() < 2:
        pytest.skip("one core makes one slot whatever the memory")
    make_clip(tmp_path / "library" / "a.mp4", width=320, height=240, seconds=1)
    make_clip(tmp_path / "library" / "b.mp4", width=352, height=288, seconds=1)
    proc = ingest_limited(tmp_path, 3 * GIB)
    assert "1 encode at a time" in proc.stdout
    assert "of memory is free" in proc.stdout
    assert _worker_logs(proc.stdout) == ["worker-0.log"]
    assert sorted(p.name for p in (tmp_path / "out" / "hevc").glob("*.mp4")) == ["a.mp4", "b.mp4"]


def test_hevcq_slots_overrides_the_memory_rule(tmp_path: Path) -> None:
    """A person who sets ``HEVCQ_SLOTS`` gets that many, memory or not, and no line
    explaining a choice they made."""
    make_clip(tmp_path / "library" / "a.mp4", width=320, height=240, seconds=1)
    proc = ingest_limited(tmp_path, 3 * GIB, HEVCQ_SLOTS="2")
    assert "of memory is free" not in proc.stdout  # HEVCQ_SLOTS chose: nothing to explain
    assert _worker_logs(proc.stdout) == ["worker-0.log", "worker-1.log"]
